"""The floor client: the same AT exchanges as atbridge, with nothing but ``os.read``/``os.write``.

Theory of operation
-------------------
A benchmark that measures atbridge on an unpaced line (a pty with no pacing, as a USB
modem) also measures the rig: the fake modem's own Python, the two pty hops, the
broker. The floor client shows how fast the rig alone is, in the same run, so a fake
that is the bottleneck is visible.

It does not know any dialect. :class:`Recorder` wraps the AT channel's transport while
atbridge runs a phase and notes every write, with how many bytes the modem had sent
until then. :func:`replay` then takes the same open port (atbridge's reading paused,
its file descriptor switched to blocking) and plays the recording back: before each
write it reads until the modem has sent as many bytes as atbridge had seen before
that write, then writes the same bytes. So it makes the same exchanges, byte for byte,
on the same fake, socket and broker, with no parsing, no event loop, no timers: one
``os.read`` per chunk that arrives and one ``os.write`` per write. What it cannot do
faster is the rig.

Replayed QoS 0 publishes are the same frames again (the broker gets each payload
twice; the counts of the phase come from atbridge's own run). QoS 1 frames replayed
carry the packet identifiers atbridge used, which the broker has acknowledged and
freed, so they are valid too; but the modem may batch the broker's PUBACKs into
notifications differently when the timing differs, so a wait for a byte count may not
be met exactly. A wait that sees nothing for :data:`STALL_SECONDS` gives up on that
count and goes on; such stalls are counted and printed, and a floor with stalls is
marked as not comparable (its time includes the stall).

Used by ``bench/unpaced.py``; importable from the other benchmarks.
"""

from __future__ import annotations

import os
import termios
import time
from dataclasses import dataclass, field
from typing import Any

#: Seconds of silence after which a wait for a byte count gives up (a different batching).
STALL_SECONDS = 0.5


@dataclass
class Recording:
    """What atbridge wrote during a phase: ``(bytes read before it, data)`` per write."""

    writes: list[tuple[int, bytes]] = field(default_factory=list)
    read_start: int = 0
    read_end: int = 0

    @property
    def bytes_written(self) -> int:
        return sum(len(data) for _, data in self.writes)

    @property
    def bytes_read(self) -> int:
        return self.read_end - self.read_start


class Recorder:
    """Notes every write of ``modem`` (an :class:`atbridge.modem.Modem`) while active."""

    def __init__(self, modem: Any) -> None:
        self.modem = modem
        self.recording = Recording()
        self._transport: Any = None
        self._write: Any = None

    def __enter__(self) -> Recording:
        modem = self.modem
        transport = modem._transport
        self._transport, self._write = transport, transport.write
        recording = self.recording
        recording.read_start = modem.bytes_read
        writes = recording.writes
        original = self._write

        def write(data: bytes) -> None:
            writes.append((modem.bytes_read - recording.read_start, bytes(data)))
            original(data)

        transport.write = write
        return recording

    def __exit__(self, *exc_info: object) -> None:
        self.recording.read_end = self.modem.bytes_read
        del self._transport.write  # back to the class's method


@dataclass
class FloorResult:
    seconds: float
    cpu_seconds: float
    reads: int
    writes: int
    stalls: int


def _fd_of(modem: Any) -> int:
    serial = modem._transport.serial
    fd: int = serial.fd
    return fd


def replay(modem: Any, recording: Recording) -> FloorResult:
    """Play ``recording`` back on ``modem``'s port with ``os.read``/``os.write`` alone.

    Call it from the loop's thread with nothing else using the modem: it blocks (that is
    the point: a client with no loop). atbridge's reading is paused meanwhile and the
    bytes the floor reads never reach atbridge's parser.
    """
    transport = modem._transport
    fd = _fd_of(modem)
    transport.pause_reading()
    saved = termios.tcgetattr(fd)
    stalling = list(saved)
    stalling[6] = list(saved[6])
    # A blocking read that returns as soon as a byte is in, or empty after the stall time:
    # one system call per wait (termios VMIN 0, VTIME in tenths of a second).
    stalling[6][termios.VMIN] = 0
    stalling[6][termios.VTIME] = round(STALL_SECONDS * 10)
    termios.tcsetattr(fd, termios.TCSANOW, stalling)
    os.set_blocking(fd, True)
    read = 0
    reads = stalls = 0
    total = recording.bytes_read
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        for before, data in recording.writes:
            while read < before:
                chunk = _read(fd)
                if chunk is None:
                    stalls += 1
                    break
                read += len(chunk)
                reads += 1
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        while read < total:
            chunk = _read(fd)
            if chunk is None:
                stalls += 1
                break
            read += len(chunk)
            reads += 1
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        os.set_blocking(fd, False)
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        transport.resume_reading()
    return FloorResult(seconds, cpu, reads, len(recording.writes), stalls)


def _read(fd: int) -> bytes | None:
    """One blocking ``os.read``; ``None`` after :data:`STALL_SECONDS` of silence."""
    return os.read(fd, 65536) or None
