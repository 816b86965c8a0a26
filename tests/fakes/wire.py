"""The wire: how bytes cross the fake's serial line, in both directions.

Theory of operation
-------------------
Bytes flow through two ``Pacer`` objects, one per direction. Without a baud rate a pacer passes
bytes straight through. With one, it models an 8N1 line (10 bits per byte): input bytes reach
the interpreter, and output bytes reach the pty, only when their last bit would have crossed the
wire, scheduled against a running deadline (batches of about 4 ms of line time, each released
when its last byte is due, never early; epoll's 1 ms timer granularity is bridged by yielding
with ``call_soon`` for the last millisecond, so the pacing costs no extra millisecond a wait).

``LineReader`` is the modem's command-line reader: it cuts the next command line out of the
receive buffer (the UART FIFO) with a dialect's rules: terminator (CR, LF or CR LF), quote
awareness, backspace, maximum length; CR and LF before a line are skipped and empty lines
ignored. It is incremental: bytes already scanned are not scanned again.

``Pty`` is the modem's end of the line: a pty pair whose slave path the host opens. The slave
fd stays open for the fake's whole life (so the master never sees EIO when a client closes and
reopens the port); the master is read and written without blocking from the loop.

``HotLine`` (benchmarks only) keeps the loop polling for a few milliseconds after each byte, so
the wake-up latency of a sleeping process is not charged to a paced line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Callable
from typing import Final, Literal

from .grammar import CR, LF

__all__ = ["HOT_LINE_SECONDS", "HotLine", "LineReader", "Pacer", "Pty"]

log = logging.getLogger("tests.fakes")

#: How long ``HotLine`` keeps polling after the last byte in or out.
HOT_LINE_SECONDS: Final = 0.005


class LineReader:
    """Cuts command lines out of the receive buffer, incrementally, with a dialect's rules."""

    def __init__(
        self,
        terminator: Literal["CR", "LF", "CRLF"],
        *,
        quote_aware: bool,
        backspace: bytes,
        max_line: int,
    ) -> None:
        self._mode = terminator
        self._quote_aware = quote_aware
        self._backspace = frozenset(backspace)
        self._max = max_line
        self.reset()

    def reset(self) -> None:
        """Forget the partial line (a reboot, or raw bytes taken past the reader)."""
        self._pos = 0
        self._start = -1
        self._buf = bytearray()
        self._length = 0
        self._in_quotes = False
        self._prev = 0

    def next_line(self, rx: bytearray) -> tuple[bytes, bytes, bool] | None:
        """Remove the next complete line from ``rx``: (echo bytes, command, overflowed)."""
        i = self._pos
        end = len(rx)
        while i < end:
            byte = rx[i]
            i += 1
            if self._start < 0:
                if byte in (CR, LF):
                    continue  # stray line ending between command lines
                self._start = i - 1
            if byte in self._backspace:
                if self._length > 0:
                    self._length -= 1
                    if len(self._buf) > self._length:
                        removed = self._buf.pop()
                        if removed == 0x22:
                            self._in_quotes = not self._in_quotes
                    self._prev = self._buf[-1] if self._buf else 0
                continue
            done = False
            if not (self._quote_aware and self._in_quotes):
                if self._mode == "CR":
                    done = byte == CR
                elif self._mode == "LF":
                    done = byte == LF
                elif byte == LF and self._length > 0 and self._prev == CR:
                    self._length -= 1
                    if len(self._buf) > self._length:
                        self._buf.pop()
                    done = True
            if done and self._length == 0:
                del rx[:i]  # an empty command line is ignored
                self.reset()
                i, end = 0, len(rx)
                continue
            if done:
                echo = bytes(rx[self._start : i])
                line = bytes(self._buf)
                overflow = self._length > len(self._buf)
                del rx[:i]
                self.reset()
                return echo, line, overflow
            if len(self._buf) < self._max:
                self._buf.append(byte)
            self._length += 1
            if byte == 0x22:
                self._in_quotes = not self._in_quotes
            self._prev = byte
        if self._start < 0:
            del rx[:i]
            i = 0
        self._pos = i
        return None


class Pacer:
    """Passes bytes to ``sink`` no faster than a serial line at ``rate`` bytes/s would.

    Bytes go out in batches of about ``_BATCH_SECONDS`` of line time, each released when its
    last byte is due. Event loop timers are coarse (epoll rounds a timeout up to the next
    millisecond), so a wait sleeps on a timer until ``_SPIN_SECONDS`` before the due time and
    covers the rest by re-queuing itself with ``call_soon``: precise, never early, and other
    callbacks keep running in between.
    """

    _BATCH_SECONDS: Final = 0.004
    _SPIN_SECONDS: Final = 0.0011

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._sink = sink
        self._rate: float | None = None
        self._pending = bytearray()
        self._clock = 0.0  # loop time at which the last released byte was fully on the wire
        self._handle: asyncio.Handle | None = None
        self._due = 0.0

    @property
    def rate(self) -> float | None:
        """Bytes per second, None when unpaced."""
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Pace at ``rate`` bytes/s from now on (None: release everything pending now)."""
        self._rate = rate
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if rate is None:
            if self._pending:
                data = bytes(self._pending)
                self._pending.clear()
                self._sink(data)
        else:
            self._clock = max(self._clock, self._loop.time())
            if self._pending:
                self._schedule()

    def push(self, data: bytes, since: float | None = None) -> None:
        """Queue ``data``; on an idle line its first byte starts at ``since`` (loop time, the
        default now), never before the line's previous byte is through."""
        if not data:
            return
        if self._rate is None:
            self._sink(data)
            return
        if not self._pending:
            self._clock = max(self._clock, self._loop.time() if since is None else since)
        self._pending += data
        if self._handle is None:
            self._schedule()

    def wire_time(self) -> float:
        """Loop time at which the bytes released last were through (now when unpaced)."""
        return self._loop.time() if self._rate is None else self._clock

    def drained_at(self) -> float:
        """Loop time at which everything pushed so far will have been released."""
        if self._rate is None or not self._pending:
            return self._loop.time()
        return self._clock + len(self._pending) / self._rate

    def clear(self) -> None:
        """Drop every byte not released yet (a reboot)."""
        self._pending.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._rate is not None
        batch = min(len(self._pending), max(1, int(self._rate * self._BATCH_SECONDS)))
        self._due = self._clock + batch / self._rate
        self._wait()

    def _wait(self) -> None:
        wake = self._due - self._SPIN_SECONDS
        if wake > self._loop.time():
            self._handle = self._loop.call_at(wake, self._wait)
        elif self._loop.time() < self._due:
            self._handle = self._loop.call_soon(self._wait)
        else:
            self._handle = None
            self._release()

    def _release(self) -> None:
        if self._rate is None:
            return
        elapsed_bytes = (self._loop.time() - self._clock) * self._rate
        due = min(int(elapsed_bytes + 1e-9), len(self._pending))
        if due > 0:
            data = bytes(self._pending[:due])
            del self._pending[:due]
            self._clock += due / self._rate
            self._sink(data)
        if self._pending and self._handle is None:
            self._schedule()


class HotLine:
    """Polls the loop for ``HOT_LINE_SECONDS`` after each ``poke()`` instead of sleeping in the
    kernel: a modem's UART takes a byte the moment it arrives, while a process woken from sleep
    takes tens of microseconds (more in a virtual machine) that a benchmark would charge to the
    line. Costs a CPU core while hot."""

    def __init__(self, loop: asyncio.AbstractEventLoop, alive: Callable[[], bool]) -> None:
        self._loop = loop
        self._alive = alive
        self._until = 0.0
        self._spinner: asyncio.Handle | None = None

    def poke(self) -> None:
        """A byte went in or out: stay hot a little longer."""
        self._until = self._loop.time() + HOT_LINE_SECONDS
        if self._spinner is None:
            self._spinner = self._loop.call_soon(self._spin)

    @property
    def spinning(self) -> bool:
        """True while the loop is being kept busy."""
        return self._spinner is not None

    def cancel(self) -> None:
        """Stop polling now."""
        if self._spinner is not None:
            self._spinner.cancel()
            self._spinner = None

    def _spin(self) -> None:
        if self._alive() and self._loop.time() < self._until:
            self._spinner = self._loop.call_soon(self._spin)
        else:
            self._spinner = None


class Pty:
    """The modem's end of a pty pair (raw mode): bytes read go to ``on_bytes``, ``write`` never
    blocks (what the pty cannot take now waits in a buffer), ``on_activity`` hears of every
    byte in or out. ``close()`` hangs the line up: the host then reads end of file."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_bytes: Callable[[bytes], None],
        *,
        on_activity: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._on_bytes = on_bytes
        self._on_activity = on_activity
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self.bytes_in = 0
        self.bytes_out = 0
        self.is_open = True
        self._wbuf = bytearray()
        loop.add_reader(master, self._on_readable)

    def write(self, data: bytes) -> None:
        """Write bytes to the host (dropped once closed)."""
        if not self.is_open:
            return
        self._on_activity()
        log.debug("-> %r", data)
        if self._wbuf:
            self._wbuf += data
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            return
        self.bytes_out += written
        if written < len(data):
            self._wbuf += data[written:]
            self._loop.add_writer(self._master, self._on_writable)

    def discard_output(self) -> None:
        """Forget what the pty has not taken yet (a reboot)."""
        self._wbuf.clear()
        if self.is_open:
            self._loop.remove_writer(self._master)

    def close(self) -> None:
        """Close both ends of the pair; safe to call twice."""
        if not self.is_open:
            return
        self.is_open = False
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        os.close(self._master)
        os.close(self._slave)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO cannot happen while we hold the slave, but never crash
            log.debug("pty read failed: %s", exc)
            return
        if not data:
            return
        self._on_activity()
        self.bytes_in += len(data)
        log.debug("<- %r", data)
        self._on_bytes(data)

    def _on_writable(self) -> None:
        try:
            written = os.write(self._master, self._wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            written = len(self._wbuf)
        self.bytes_out += written
        del self._wbuf[:written]
        if not self._wbuf:
            self._loop.remove_writer(self._master)
