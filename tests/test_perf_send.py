"""A socket's two ways to send (issue 16): ``send`` in a task of its own, ``send_unshielded``
in the caller's task.

Both cut what they send into the dialect's largest chunks, in order, one send at a time;
a send of one chunk hands the caller's bytes over as they are. ``send`` finishes when its
caller is cancelled; ``send_unshielded`` (for a caller nobody cancels mid-send) closes the
socket when a cancellation does cut a send short, so nothing can follow half a message,
and leaves it open when the cancellation came before any byte went.
"""

from __future__ import annotations

import asyncio

import pytest

from atbridge.dialects.base import Dialect, ModemSocket
from atbridge.errors import CloseReason, SocketClosed
from atbridge.modem import Modem


class Recording(Dialect):
    """A dialect whose sends are noted; a send can be held until released."""

    name = "recording"
    max_send = 4

    def __init__(self, modem: Modem) -> None:
        super().__init__(modem)
        self.chunks: list[bytes] = []
        self.hold: asyncio.Event | None = None
        self.sending = asyncio.Event()

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        self.sending.set()
        if self.hold is not None:
            await self.hold.wait()
        self.chunks.append(chunk)

    async def _close(self, sock: ModemSocket) -> None:
        pass


def rig() -> tuple[Recording, ModemSocket]:
    dialect = Recording(Modem())
    return dialect, dialect._adopt(ModemSocket(dialect, 0, "127.0.0.1", 1883))


@pytest.mark.parametrize("how", ["send", "send_unshielded"])
async def test_both_cut_into_the_dialects_chunks_in_order(how: str) -> None:
    dialect, sock = rig()
    await getattr(sock, how)(b"0123456789")
    assert dialect.chunks == [b"0123", b"4567", b"89"]
    assert sock.bytes_sent == 10


@pytest.mark.parametrize("how", ["send", "send_unshielded"])
async def test_one_chunk_is_the_callers_bytes_as_they_are(how: str) -> None:
    dialect, sock = rig()
    data = b"abc"
    await getattr(sock, how)(data)
    assert dialect.chunks[0] is data


async def test_a_bytearray_is_copied_before_it_is_sent() -> None:
    dialect, sock = rig()
    data = bytearray(b"abc")
    await sock.send_unshielded(data)  # type: ignore[arg-type]
    data[0] = 0x7A
    assert dialect.chunks == [b"abc"]


async def test_send_finishes_when_its_caller_is_cancelled() -> None:
    dialect, sock = rig()
    dialect.hold = asyncio.Event()
    caller = asyncio.ensure_future(sock.send(b"0123456789"))
    await dialect.sending.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    dialect.hold.set()
    await asyncio.gather(*sock._sends)
    assert dialect.chunks == [b"0123", b"4567", b"89"]
    assert sock.closed is None


async def test_an_unshielded_send_cut_short_closes_the_socket() -> None:
    dialect, sock = rig()
    dialect.hold = asyncio.Event()
    caller = asyncio.ensure_future(sock.send_unshielded(b"0123456789"))
    await dialect.sending.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sock.closed is not None and sock.closed.reason is CloseReason.ERROR
    with pytest.raises(SocketClosed):
        await sock.send_unshielded(b"more")
    assert dialect.chunks == []


async def test_an_unshielded_send_cancelled_before_any_byte_leaves_the_socket_open() -> None:
    dialect, sock = rig()
    dialect.hold = asyncio.Event()
    first = asyncio.ensure_future(sock.send_unshielded(b"first"))
    await dialect.sending.wait()
    waiting = asyncio.ensure_future(sock.send_unshielded(b"second"))
    await asyncio.sleep(0)  # it waits for the send lock the first one holds
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sock.closed is None
    dialect.hold.set()
    await first
    assert dialect.chunks == [b"firs", b"t"]
