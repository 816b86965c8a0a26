"""The asyncio floor: the floor client's replay, through an event loop.

Theory of operation
-------------------
``bench/floor_client.py`` replays atbridge's AT exchanges with blocking ``os.read`` and
``os.write``: no event loop at all. A driver that serves a modem beside the rest of an
application (other modems, a broker connection, a user's tasks) needs one, and the
loop's own cost per exchange (a turn, a ``select``, a callback, a future) is paid by
any asyncio driver, atbridge or not. :func:`replay_async` plays the same
:class:`~floor_client.Recording` back on the same port through the running loop with
the least a loop allows: one reader callback that does one ``os.read`` and counts the
bytes, one future per wait for a byte count, one ``os.write`` per write. No parsing, no
timers but the stall guard, no tasks.

Its figure, printed beside the blocking floor's, splits the gap between atbridge and
the floor in two: what the event loop costs (blocking floor over asyncio floor) and what
atbridge's own work per exchange costs (asyncio floor over atbridge).

Used by ``bench/unpaced.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from floor_client import STALL_SECONDS, FloorResult, Recording


async def replay_async(modem: Any, recording: Recording) -> FloorResult:
    """Play ``recording`` back on ``modem``'s port through the running event loop.

    atbridge's reading is paused meanwhile (the bytes read here never reach its parser);
    a wait that sees nothing for :data:`~floor_client.STALL_SECONDS` gives up on its
    count (a stall, counted).
    """
    loop = asyncio.get_running_loop()
    transport = modem._transport
    fd: int = transport.serial.fd
    transport.pause_reading()
    state = {"read": 0, "reads": 0}
    #: The byte count being waited for, and the future that says whether it came.
    waiting: list[tuple[int, asyncio.Future[bool]]] = []

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        state["read"] += len(chunk)
        state["reads"] += 1
        if waiting and state["read"] >= waiting[0][0]:
            _count, future = waiting.pop()
            if not future.done():
                future.set_result(True)

    def stalled(future: asyncio.Future[bool]) -> None:
        waiting.clear()
        if not future.done():
            future.set_result(False)

    async def reach(count: int) -> bool:
        """Until ``count`` bytes were read; False after a stall."""
        if state["read"] >= count:
            return True
        future: asyncio.Future[bool] = loop.create_future()
        waiting.append((count, future))
        timer = loop.call_at(loop.time() + STALL_SECONDS, stalled, future)
        try:
            return await future
        finally:
            timer.cancel()

    loop.add_reader(fd, readable)
    stalls = 0
    try:
        c0, t0 = time.thread_time(), time.perf_counter()
        for before, data in recording.writes:
            if not await reach(before):
                stalls += 1
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    await asyncio.sleep(0)
        if not await reach(recording.bytes_read):
            stalls += 1
        seconds = time.perf_counter() - t0
        cpu = time.thread_time() - c0
    finally:
        loop.remove_reader(fd)
        transport.resume_reading()
    return FloorResult(seconds, cpu, state["reads"], len(recording.writes), stalls)
