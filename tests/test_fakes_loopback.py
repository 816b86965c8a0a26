"""The fake network both modem families share (``tests.fakes.loopback``): names and connections."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.fakes import FakeModem
from tests.fakes.loopback import LoopbackConnection, add_host, resolve


class Recorder:
    """A receiver that writes down what its connection tells it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.changed = asyncio.Event()

    def on_connected(self, conn: LoopbackConnection) -> None:
        self.events.append("connected")

    def on_data(self, data: bytes) -> None:
        self.data += data
        self.changed.set()

    def on_eof(self) -> None:
        self.events.append("eof")

    def on_lost(self, exc: Exception | None) -> None:
        self.events.append("lost" if exc is None else "reset")
        self.changed.set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_names_resolve_to_loopback_only() -> None:
    fake = FakeModem("generic")
    assert resolve(fake, "127.0.0.1") == "127.0.0.1"
    assert resolve(fake, "LOCALHOST") == "127.0.0.1"
    assert resolve(fake, "broker.example") is None
    add_host(fake, "Broker.Example", "127.0.0.2")
    assert resolve(fake, "broker.example") == "127.0.0.2"
    assert resolve(FakeModem("generic"), "broker.example") is None  # a hosts table per fake
    with pytest.raises(ValueError):
        add_host(fake, "outside", "192.0.2.1")


async def test_a_connection_carries_bytes_and_the_peers_close() -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        receiver = Recorder()
        conn = LoopbackConnection(receiver)
        assert await conn.connect("127.0.0.1", port, timeout=5)
        reader, writer = await asyncio.wait_for(accepted.get(), 5)
        conn.write(b"up")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"up"
        writer.write(b"down")
        writer.close()
        async with asyncio.timeout(5):
            while "lost" not in receiver.events:
                receiver.changed.clear()
                await receiver.changed.wait()
        assert receiver.data == b"down"
        assert receiver.events == ["connected", "eof", "lost"]
        assert conn.closing
        await conn.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_refused_and_outside_connections_fail() -> None:
    refused = LoopbackConnection(Recorder())
    assert not await refused.connect("127.0.0.1", free_port(), timeout=5)
    assert refused.lost.done()  # wait_closed() returns at once
    outside = LoopbackConnection(Recorder())
    assert not await outside.connect("192.0.2.1", 80, timeout=5)  # never leaves the host
    assert outside.closing
