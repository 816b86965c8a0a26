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

:func:`replay_concurrently` plays several recordings back at once, each on its own port
and in its own thread (``bench/many_modems.py``: eight floor clients against eight fakes,
to show whether the rig itself scales).

Used by ``bench/unpaced.py`` and ``bench/many_modems.py``.
"""

from __future__ import annotations

import os
import termios
import threading
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
    """One replay: its wall time, the floor thread's CPU time, and its reads, writes and
    stalls."""

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
    return replay_concurrently([(modem, recording)]).results[0]


@dataclass
class ConcurrentFloor:
    """Several floor clients at once: each one's result, and the time from their common
    start until the last was done."""

    results: list[FloorResult]
    seconds: float


def replay_concurrently(pairs: list[tuple[Any, Recording]]) -> ConcurrentFloor:
    """Play each ``(modem, recording)`` back on its own port at the same time, each in a
    thread of its own (blocked in ``os.read``/``os.write`` they release the GIL, so they
    run in parallel as separate clients would), started together.

    Call it from the loop's thread (the modems' reading is paused and resumed there); it
    blocks until the last is done. One pair is :func:`replay` in the calling thread.
    """
    prepared: list[tuple[tuple[int, Any, list[Any]], Recording]] = []
    try:
        for modem, recording in pairs:
            prepared.append((_take_port(modem), recording))
        if len(prepared) == 1:
            fd, recording = prepared[0][0][0], prepared[0][1]
            t0 = time.perf_counter()
            alone = _play(fd, recording)
            return ConcurrentFloor([alone], time.perf_counter() - t0)
        barrier = threading.Barrier(len(prepared) + 1)
        slots: list[FloorResult | BaseException | None] = [None] * len(prepared)

        def run(index: int, fd: int, recording: Recording) -> None:
            barrier.wait()
            try:
                slots[index] = _play(fd, recording)
            except BaseException as error:  # handed to the caller below
                slots[index] = error

        threads = [
            threading.Thread(target=run, args=(i, port[0], rec), name=f"floor-{i}", daemon=True)
            for i, (port, rec) in enumerate(prepared)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - t0
        results: list[FloorResult] = []
        for slot in slots:
            if not isinstance(slot, FloorResult):
                raise RuntimeError(f"a floor client failed: {slot!r}")
            results.append(slot)
        return ConcurrentFloor(results, seconds)
    finally:
        for (fd, transport, saved), _ in prepared:
            _give_port_back(fd, transport, saved)


def _take_port(modem: Any) -> tuple[int, Any, list[Any]]:
    """Pause atbridge's reading and make the port a blocking one whose read returns as
    soon as a byte is in, or empty after the stall time: one system call per wait (termios
    VMIN 0, VTIME in tenths of a second). Returns what :func:`_give_port_back` needs."""
    transport = modem._transport
    fd = _fd_of(modem)
    transport.pause_reading()
    saved = termios.tcgetattr(fd)
    stalling = list(saved)
    stalling[6] = list(saved[6])
    stalling[6][termios.VMIN] = 0
    stalling[6][termios.VTIME] = round(STALL_SECONDS * 10)
    termios.tcsetattr(fd, termios.TCSANOW, stalling)
    os.set_blocking(fd, True)
    return fd, transport, saved


def _give_port_back(fd: int, transport: Any, saved: list[Any]) -> None:
    os.set_blocking(fd, False)
    termios.tcsetattr(fd, termios.TCSANOW, saved)
    transport.resume_reading()


def _play(fd: int, recording: Recording) -> FloorResult:
    """The floor client proper: wait for each byte count, write, with nothing else; then
    wait for the bytes atbridge read after its last write."""
    read = reads = stalls = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    for before, data in recording.writes:
        read, reads, stalls = _read_until(fd, before, read, reads, stalls)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    read, reads, stalls = _read_until(fd, recording.bytes_read, read, reads, stalls)
    seconds = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    return FloorResult(seconds, cpu, reads, len(recording.writes), stalls)


def _read_until(fd: int, count: int, read: int, reads: int, stalls: int) -> tuple[int, int, int]:
    """Read until ``count`` bytes have arrived in all (``read`` so far), or a stall gives up
    on that count; returns the new (bytes read, reads, stalls)."""
    while read < count:
        chunk = _read(fd)
        if chunk is None:
            return read, reads, stalls + 1
        read += len(chunk)
        reads += 1
    return read, reads, stalls


def _read(fd: int) -> bytes | None:
    """One blocking ``os.read``; ``None`` after :data:`STALL_SECONDS` of silence."""
    return os.read(fd, 65536) or None
