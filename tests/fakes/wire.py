"""The wire: how bytes cross the fake's serial line, in both directions.

Theory of operation
-------------------
Bytes flow through two ``Pacer`` objects, one per direction. Without a baud rate a pacer passes
bytes straight through. With one, it models an 8N1 line (10 bits per byte): input bytes reach
the interpreter, and output bytes reach the pty, only when their last bit would have crossed the
wire, scheduled against a running deadline (batches of about 4 ms of line time, each released
when its last byte is due, never early). A wait sleeps on a timer and yields with ``call_soon``
for its last moments, so the pacing costs neither epoll's 1 ms timer granularity nor the loop's
wake-up latency: on Linux the timer is a ``FineTimer`` (a ``timerfd``, microsecond resolution)
and the spin covers the last 0.1 ms; elsewhere the loop's own timer, and the spin the last
1.1 ms, which at 921600 baud is all of a short message (a CPU core while bytes are in flight).

``LineReader`` is the modem's command-line reader: it cuts the next command line out of the
receive buffer (the UART FIFO) with a dialect's rules: terminator (CR, LF or CR LF), quote
awareness, backspace, maximum length; CR and LF before a line are skipped and empty lines
ignored. It is incremental: bytes already scanned are not scanned again, and a line that is all
in the buffer is cut out with ``find``, without a Python step per byte.

``Pty`` is the modem's end of the line: a pty pair whose slave path the host opens. The slave
fd stays open for the fake's whole life (so the master never sees EIO when a client closes and
reopens the port); the master is read and written without blocking from the loop.

``HotLine`` (benchmarks only) keeps the loop polling for a few milliseconds after each byte, so
the wake-up latency of a sleeping process is not charged to a paced line.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import sys
import time
import tty
from collections.abc import Callable
from typing import Final, Literal

from .grammar import CR, LF

__all__ = ["HOT_LINE_SECONDS", "FineTimer", "HotLine", "LineReader", "Pacer", "Pty"]

#: What ends a command line in each terminator mode (CRLF: an LF right after a CR).
_TERMINATORS: Final = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}

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
        if self._start < 0:
            found = self._whole_line(rx)
            if found is not None:
                return found
        return self._scan(rx)

    def _whole_line(self, rx: bytearray) -> tuple[bytes, bytes, bool] | None:
        """The fast path of :meth:`next_line` (the same result, without a Python step per
        byte): no partial line pending, and the next line is all in ``rx`` with no
        backspace in it and, for a quote-aware reader, its quotes closed before the first
        terminator. None when that is not so (``_scan`` then reads it byte by byte)."""
        start = 0
        end = len(rx)
        while start < end and rx[start] in (CR, LF):
            start += 1
        if start == end:
            return None
        mode = self._mode
        stop = rx.find(_TERMINATORS[mode], start)
        if stop < 0:
            return None
        for byte in self._backspace:
            if rx.find(byte, start, stop) >= 0:
                return None
        if self._quote_aware and rx.count(0x22, start, stop) % 2:
            return None
        after = stop + (2 if mode == "CRLF" else 1)
        echo = bytes(rx[start:after])
        length = stop - start
        line = echo[: min(length, self._max)]
        del rx[:after]
        return echo, line, length > self._max

    def _scan(self, rx: bytearray) -> tuple[bytes, bytes, bool] | None:
        """:meth:`next_line` byte by byte, carrying a partial line across calls."""
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


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> ctypes.CDLL | None:
    """The C library, if it has ``timerfd_create`` (Linux); else None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
    except (OSError, AttributeError):
        return None
    return libc


_LIBC: Final = _libc() if sys.platform.startswith("linux") else None
_TFD_TIMER_ABSTIME: Final = 1


class FineTimer:
    """A one-shot timer of the loop with the kernel's resolution: a Linux ``timerfd`` on
    ``CLOCK_MONOTONIC`` (the clock of ``loop.time()``), read by the loop like any file, so a
    wait of 200 µs is not rounded up to epoll's millisecond. ``create`` gives None where there
    is none (not Linux, or a loop with a clock of its own)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[[], None]):
        self._loop = loop
        self._fd = fd
        self._callback = callback
        self._armed = False
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._on_expired)

    @classmethod
    def create(
        cls, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
    ) -> FineTimer | None:
        """A timer calling ``callback`` when it expires, or None if this loop can have none."""
        if _LIBC is None or not isinstance(loop, asyncio.BaseEventLoop):
            return None
        if type(loop).time is not asyncio.BaseEventLoop.time:
            return None  # a clock that is not time.monotonic()
        fd = _LIBC.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        return cls(loop, fd, callback)

    def arm(self, when: float) -> None:
        """Call back at loop time ``when`` (at once if it has passed), replacing any earlier
        setting."""
        assert _LIBC is not None
        seconds = int(when)
        nanoseconds = max(1, math.ceil((when - seconds) * 1e9))  # rounded up: never early
        if nanoseconds >= 1_000_000_000:
            seconds, nanoseconds = seconds + 1, nanoseconds - 1_000_000_000
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = seconds, nanoseconds
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed = True

    def cancel(self) -> None:
        """Do not call back (a disarmed timer's expiry may still be read: it is ignored)."""
        self._armed = False

    def close(self) -> None:
        """Release the file descriptor; the timer is unusable afterwards."""
        self._armed = False
        self._loop.remove_reader(self._fd)
        os.close(self._fd)

    def _on_expired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        if self._armed:
            self._armed = False
            self._callback()


class Pacer:
    """Passes bytes to ``sink`` no faster than a serial line at ``rate`` bytes/s would.

    Bytes go out in batches of about ``_BATCH_SECONDS`` of line time, each released when its
    last byte is due: precise, never early, and other callbacks keep running in between. A
    wait sleeps on a timer until a little before the due time and covers the rest by
    re-queuing itself with ``call_soon`` (a spin: a loop woken from sleep is late by its
    wake-up latency). The loop's own timers are coarse (epoll rounds a timeout up to the next
    millisecond), so with them the spin covers the last ``_SPIN_SECONDS``; with a
    :class:`FineTimer` (Linux) only the last ``_FINE_SPIN_SECONDS``, which costs a fraction
    of the CPU: at 921600 baud a short message is shorter than a millisecond, and the coarse
    timer would spin for all of it. ``fine_timer=False`` keeps to the loop's timers (a hot
    line: the loop is polled anyway, see :class:`HotLine`).
    """

    _BATCH_SECONDS: Final = 0.004
    _SPIN_SECONDS: Final = 0.0011
    _FINE_SPIN_SECONDS: Final = 0.0001

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: Callable[[bytes], None],
        *,
        fine_timer: bool = True,
    ) -> None:
        self._loop = loop
        self._sink = sink
        self._rate: float | None = None
        self._pending = bytearray()
        self._clock = 0.0  # loop time at which the last released byte was fully on the wire
        self._handle: asyncio.Handle | FineTimer | None = None
        self._due = 0.0
        self._fine: FineTimer | None = None
        self._fine_tried = not fine_timer

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

    def close(self) -> None:
        """Drop what is pending and release the fine timer (the line is gone)."""
        self.clear()
        if self._fine is not None:
            self._fine.close()
            self._fine = None
        self._fine_tried = True  # a closed pacer that is used again waits on loop timers

    def _fine_timer(self) -> FineTimer | None:
        if not self._fine_tried:
            self._fine_tried = True
            self._fine = FineTimer.create(self._loop, self._wait)
        return self._fine

    def _wait(self) -> None:
        fine = self._fine_timer()
        wake = self._due - (self._SPIN_SECONDS if fine is None else self._FINE_SPIN_SECONDS)
        if wake > self._loop.time():
            if fine is None:
                self._handle = self._loop.call_at(wake, self._wait)
            else:
                fine.arm(wake)
                self._handle = fine
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
