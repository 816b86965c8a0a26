"""The socket receiver every dialect uses, in memory: notified reads, the safety net, the
announced end, and errors (a bug ends the socket with the error, never silently)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import pytest

from atbridge.dialects.base import Dialect, ModemSocket
from atbridge.dialects.receiver import Receiver, Receivers
from atbridge.errors import CloseReason, LinkLost, ModemError, SocketClosed

WAIT = 5.0  # bound on every wait


@dataclass
class Owner:
    """What a ModemSocket needs of its dialect."""

    name: str = "memory"
    max_send: int = 1024
    forgotten: list[ModemSocket] = field(default_factory=list)

    def _forget(self, sock: ModemSocket) -> None:
        self.forgotten.append(sock)


@dataclass
class Script:
    """A drain whose every round is recorded and can be told what to do."""

    sock: ModemSocket
    rounds: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)
    actions: list[Callable[[ModemSocket], Awaitable[None]]] = field(default_factory=list)

    async def __call__(self, checking: bool) -> None:
        await self.rounds.put(checking)
        if self.actions:
            await self.actions.pop(0)(self.sock)

    async def next_round(self) -> bool:
        async with asyncio.timeout(WAIT):
            return await self.rounds.get()


def new_socket() -> ModemSocket:
    return ModemSocket(cast(Dialect, Owner()), 3, "127.0.0.1", 1883)


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    receivers = Receivers()
    yield receivers
    tasks = receivers.stop_all()
    await asyncio.gather(*tasks, return_exceptions=True)


def start(
    receivers: Receivers,
    *,
    interval: float = 3600.0,
    check_at_start: bool = False,
) -> tuple[Receiver, Script]:
    sock = new_socket()
    script = Script(sock)
    receiver = Receiver(sock, script, poll_interval=lambda: interval, check_at_start=check_at_start)
    receivers.add(receiver)
    receivers.start(receiver)
    return receiver, script


async def ended(sock: ModemSocket) -> SocketClosed:
    with pytest.raises(SocketClosed) as caught:
        async with asyncio.timeout(WAIT):
            while True:
                await sock.receive()
    return caught.value


async def test_a_notification_runs_a_round(receivers: Receivers) -> None:
    receiver, script = start(receivers)
    receiver.wake()
    assert await script.next_round() is False  # notified: no "is anything there?" first
    assert receiver.sock.closed is None


async def test_the_safety_net_reads_without_a_notification(receivers: Receivers) -> None:
    _, script = start(receivers, interval=0.0)
    assert await script.next_round() is True
    assert await script.next_round() is True


async def test_the_first_round_can_check_at_once(receivers: Receivers) -> None:
    _, script = start(receivers, check_at_start=True)
    assert await script.next_round() is True


async def test_an_announced_end_closes_after_the_data_read_since(receivers: Receivers) -> None:
    receiver, script = start(receivers)

    async def deliver(sock: ModemSocket) -> None:
        sock.data_received(b"last words")

    script.actions.append(deliver)
    receiver.end(CloseReason.PEER, "+IPCLOSE: 3,1")
    receiver.end(CloseReason.ERROR, "a later report does not replace the first")
    assert await script.next_round() is False
    assert await receiver.sock.receive() == b"last words"
    closed = await ended(receiver.sock)
    assert closed.reason is CloseReason.PEER and "+IPCLOSE: 3,1" in str(closed)


@pytest.mark.parametrize(
    ("error", "reason", "detail"),
    [
        (KeyError("a bug"), CloseReason.ERROR, "the receiver failed: KeyError('a bug')"),
        (LinkLost("the port is closed"), CloseReason.LINK, "the port is closed"),
    ],
)
async def test_a_bug_or_a_lost_link_ends_the_socket_with_it(
    receivers: Receivers, error: Exception, reason: CloseReason, detail: str
) -> None:
    receiver, script = start(receivers)

    async def fail(sock: ModemSocket) -> None:
        raise error

    script.actions.append(fail)
    receiver.wake()
    closed = await ended(receiver.sock)
    assert closed.reason is reason and detail in str(closed)


async def test_a_refused_read_is_tried_again_on_the_next_round(receivers: Receivers) -> None:
    receiver, script = start(receivers)

    async def refused(sock: ModemSocket) -> None:
        raise ModemError("AT+CIPRXGET=2,3,1460", "ERROR")

    script.actions.append(refused)
    receiver.wake()
    assert await script.next_round() is False
    receiver.wake()
    assert await script.next_round() is False
    assert receiver.sock.closed is None


async def test_a_closed_socket_stops_its_receiver(receivers: Receivers) -> None:
    receiver, _ = start(receivers)
    receiver.sock.mark_closed(CloseReason.LOCAL)
    receivers.forget(receiver.sock)
    assert receivers.get(receiver.sock.handle) is None
    assert receiver.task is not None
    async with asyncio.timeout(WAIT):
        await receiver.task
