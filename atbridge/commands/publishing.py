"""Publishing a stream of payloads in order, pipelined at QoS 1 (publish, run).

:func:`publish_from` takes payloads from a queue (``None`` ends it: the
:mod:`~atbridge.commands.stdin` reader's, or the one message of ``publish``)
and keeps up to the bridge's in-flight window of QoS 1 publishes waiting for
their PUBACK at once, reporting each result in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from atbridge.commands.session import Session


async def publish_from(
    session: Session,
    queue: asyncio.Queue[bytes | None],
    *,
    topic: str,
    qos: int,
    retain: bool,
    on_result: Callable[[int, bytes, BaseException | None], None],
    keep_going: bool,
) -> tuple[int, int]:
    """Publish each payload of ``queue`` (``None`` ends it) in order; ``(sent, failed)``.

    QoS 1 publishes are pipelined up to the in-flight window; each result is
    reported through ``on_result(index, payload, error)`` in order. A QoS 0
    message waits until the bridge is online. Without ``keep_going`` the first
    failure is raised; with it only the lifecycle's :class:`Failed` is.
    """
    import asyncio
    from collections import deque

    from atbridge.errors import Failed

    bridge = session.bridge
    window = bridge.config.max_inflight if qos else 1
    pending: deque[tuple[int, bytes, asyncio.Task[None]]] = deque()
    getter: asyncio.Task[bytes | None] | None = None
    index = sent = failed = 0
    ended = False

    async def send(payload: bytes) -> None:
        if qos == 0 and bridge.state != "online":
            await bridge.wait_online()
        await bridge.publish(topic, payload, qos=qos, retain=retain)

    try:
        while not ended or pending:
            if not ended and getter is None and len(pending) < window:
                getter = asyncio.ensure_future(queue.get())
            waits: set[asyncio.Future[Any]] = {getter} if getter is not None else set()
            if pending:
                waits.add(pending[0][2])
            await session.guard(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED))
            while pending and pending[0][2].done():
                number, payload, task = pending.popleft()
                error = task.exception()
                on_result(number, payload, error)
                if error is None:
                    sent += 1
                    continue
                failed += 1
                if not keep_going or isinstance(error, Failed):
                    raise error
            if getter is not None and getter.done():
                item, getter = getter.result(), None
                if item is None:
                    ended = True
                else:
                    index += 1
                    pending.append((index, item, asyncio.ensure_future(send(item))))
    finally:
        leftovers: list[asyncio.Future[Any]] = [item[2] for item in pending]
        if getter is not None:
            leftovers.append(getter)
        for future in leftovers:
            future.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
    return sent, failed
