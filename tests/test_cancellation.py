"""Cancellation leaves no dirty state (issue 12, defect 5).

A caller may be cancelled at any await point of its bring-up (``async with Bridge``), a
publish, a subscribe or a ``close()`` (a timeout around it, Ctrl-C). Whatever the point:

- no atbridge task is left behind once the bridge is closed (a ``close()`` that was itself
  cancelled still finishes on its own);
- no file descriptor is left open (``/proc/self/fd`` counts the same as before);
- the modem is left usable: the next bridge on the same fake gets online and publishes
  (no socket left open on it that a real modem would run out of, no SLM left in data mode).

The points are random but seeded (:data:`SEED`), so a failure reproduces; the loop is
bounded (:data:`ROUNDS` per dialect). A :class:`~atbridge.bridge.Bridge` whose
``wait_online`` was cancelled and that was then dropped without ``close()`` is closed when
it goes away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import random
from collections.abc import Awaitable, Coroutine
from typing import Any

import pytest

from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig
from atbridge.dialects import DIALECTS
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config, creds

SEED = 20261203
ROUNDS = 16
#: Seconds within which every atbridge task must be gone (a bound, never an expectation).
SETTLE = 20.0
OPERATIONS = ("connect", "publish", "subscribe", "close")


def atbridge_tasks() -> list[asyncio.Task[object]]:
    """The running tasks whose coroutine is atbridge's own (not the test's, not the fake's)."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if not task.done() and code is not None and f"{os.sep}atbridge{os.sep}" in code.co_filename:
            found.append(task)
    return found


async def settled() -> None:
    """Wait (bounded) until no atbridge task runs; fail naming those left."""
    try:
        async with asyncio.timeout(SETTLE):
            while tasks := atbridge_tasks():  # those may start others: until none is left
                await asyncio.wait(tasks)
    except TimeoutError:
        left = [task.get_coro() for task in atbridge_tasks()]
        raise AssertionError(f"atbridge tasks left behind: {left}") from None


def open_fds() -> collections.Counter[str]:
    """What the process's file descriptors point at (``/proc/self/fd``), counted."""
    targets: collections.Counter[str] = collections.Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            targets[os.readlink(f"/proc/self/fd/{fd}")] += 1
    return targets


async def loop_settled_in() -> None:
    """Let the loop take the descriptors it keeps for its whole life before they are counted:
    libuv (uvloop) opens one ``/dev/null`` at its first listening socket, its spare for
    ``EMFILE`` (``uv__emfile_trick``); the standard loop keeps none."""
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    server.close()
    await server.wait_closed()


def leaked(before: collections.Counter[str]) -> collections.Counter[str]:
    """Descriptors open now beyond those open ``before`` (sockets and ptys by name)."""
    return open_fds() - before


async def cancelled_after(delay: float, work: Awaitable[object]) -> bool:
    """Run ``work``, cancelling it after ``delay`` s; True if it was cancelled."""
    try:
        async with asyncio.timeout(delay):
            await work
    except TimeoutError:
        return True
    return False


async def cancelled_at_turn(turns: int, work: Coroutine[Any, Any, object]) -> bool:
    """Run ``work`` as a task and cancel it after ``turns`` turns of the event loop (an await
    point counted, not a time); True if it was cancelled before it finished."""
    task = asyncio.ensure_future(work)
    for _ in range(turns):
        if task.done():
            break
        await asyncio.sleep(0)
    if task.done():
        task.result()
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True


async def one_round(rng: random.Random, cfg: BridgeConfig, topic: str) -> str:
    """One operation cancelled at a random point; returns what was done, for the message."""
    operation = rng.choice(OPERATIONS)
    bridge = Bridge(config=cfg)
    if operation == "connect":
        # The bring-up on a fake takes a few hundred ms: points all along it.
        cancelled = await cancelled_after(rng.uniform(0.0, 0.3), bridge.__aenter__())
        if not cancelled:
            await bridge.close()
        return f"connect cancelled={cancelled}"
    await bridge.__aenter__()
    # A publish, a subscribe or a close takes some 20 to 150 turns of the loop on a fake.
    turns = rng.randrange(0, 120)
    if operation == "publish":
        cancelled = await cancelled_at_turn(turns, bridge.publish(topic, b"x" * 3000, qos=1))
    elif operation == "subscribe":
        cancelled = await cancelled_at_turn(turns, bridge.subscribe(f"{topic}/down", qos=1))
    else:
        # A cancelled close() is not called again: it must finish on its own.
        return f"close at turn {turns} cancelled={await cancelled_at_turn(turns, bridge.close())}"
    await bridge.close()
    return f"{operation} at turn {turns} cancelled={cancelled}"


@pytest.mark.usefixtures("short_escape_guard")
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_random_cancellation_leaves_no_task_no_fd_and_a_usable_modem(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    topic = f"cancel/{dialect}"
    paho.subscribe(topic, qos=1)
    rng = random.Random(f"{SEED}-{dialect}")
    await loop_settled_in()
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, f"cancel-{dialect}"))
        before = open_fds()
        done = []
        for _ in range(ROUNDS):
            done.append(await one_round(rng, cfg, topic))
            await settled()
            assert not leaked(before), done
        async with Bridge(config=cfg) as bridge:  # the modem is still usable
            await bridge.publish(topic, b"after the cancellations", qos=1)
        await settled()
        assert not leaked(before), done
    payloads = [payload for _t, payload, _q in paho.wait_for(1)]
    assert b"after the cancellations" in payloads


async def test_a_dropped_bridge_whose_wait_online_was_cancelled_is_closed(
    broker: Mosquitto,
) -> None:
    """Before, its lifecycle went on for ever, holding the port and opening sockets."""
    async with FakeModem(dialect="sim7080", registration_delay=3600) as fake:
        before = open_fds()
        bridge = Bridge(config=config(fake, broker.port))
        await bridge.start()
        with contextlib.suppress(TimeoutError):
            await bridge.wait_online(timeout=0.3)  # never registers: cancelled
        lifecycle = bridge.lifecycle
        assert lifecycle.running
        del bridge
        gc.collect()
        await settled()
        assert not lifecycle.running and lifecycle.state == "disconnected"
        assert not leaked(before)
