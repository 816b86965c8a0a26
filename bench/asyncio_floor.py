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

Used by ``bench/unpaced.py --asyncio-floor`` (QoS 0 phases).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from floor_client import STALL_SECONDS, FloorResult, Recording

#: Stalls after which a replay stops (each costs STALL_SECONDS; the result is marked).
MAX_STALLS = 5
#: Silence that ends :func:`_settle`, and the longest it waits for it (seconds).
SETTLE_QUIET = 0.05
SETTLE_MAX = 2.0


async def _settle(state: dict[str, int]) -> None:
    """Let what an earlier replay set going finish before this one counts bytes.

    The blocking floor's replay ends once it has read as many bytes as atbridge did; the
    broker's answers to what it replayed (PUBACKs, and the modem's notifications of them)
    may come a little later, batched differently. Counted here, they would let a wait end
    before the byte it waits for, and a payload go before its prompt: the modem would take
    it for a command line and then wait for a payload that never comes. So the line must
    be quiet for :data:`SETTLE_QUIET` first (read and dropped, as the floor drops what it
    reads); the count starts after.
    """
    deadline = time.perf_counter() + SETTLE_MAX
    while time.perf_counter() < deadline:
        before = state["read"]
        await asyncio.sleep(SETTLE_QUIET)
        if state["read"] == before:
            break
    state["read"] = state["reads"] = 0


async def replay_async(modem: Any, recording: Recording) -> FloorResult:
    """Play ``recording`` back on ``modem``'s port through the running event loop.

    atbridge's reading is paused meanwhile (the bytes read here never reach its parser);
    a wait that sees nothing for :data:`~floor_client.STALL_SECONDS` gives up on its
    count (a stall, counted); after :data:`MAX_STALLS` the replay stops there (the modem
    answers this replay differently from atbridge's run: its figure is no floor, and is
    marked so), rather than wait out every exchange.
    """
    loop = asyncio.get_running_loop()
    transport = modem._transport
    fd: int = transport.serial.fd
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

    # The replay runs in the loop, beside atbridge's own tasks (its receivers' polls, the
    # pinger): they must not write into the middle of it, nor wait for an answer that the
    # replay would read. Holding the channel (taken before atbridge's reading is paused, so
    # a command in flight gets its answer first) makes them wait for it instead: a
    # command's timer starts once it has the channel.
    stalls = 0
    async with modem.exclusive():
        transport.pause_reading()
        loop.add_reader(fd, readable)
        try:
            await _settle(state)
            c0, t0 = time.thread_time(), time.perf_counter()
            for before, data in recording.writes:
                if not await reach(before):
                    stalls += 1
                    if stalls > MAX_STALLS:
                        break  # the modem answers differently: this replay is no floor
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:
                        await asyncio.sleep(0)
            if stalls <= MAX_STALLS and not await reach(recording.bytes_read):
                stalls += 1
            seconds = time.perf_counter() - t0
            cpu = time.thread_time() - c0
        finally:
            loop.remove_reader(fd)
            transport.resume_reading()
    return FloorResult(seconds, cpu, state["reads"], len(recording.writes), stalls)
