"""Every dialect carries MQTT to a real mosquitto through the fake modem's real TCP socket.

Per dialect: the fake modem on a pty, ``auto`` identification, attach, data bearer,
a socket to a mosquitto started on a free loopback port, then raw MQTT frames built
by ``at_mqtt``: CONNECT -> CONNACK, SUBSCRIBE -> SUBACK, PUBLISH out (a paho-mqtt
subscriber checks the exact payload) and PUBLISH in (from a paho-mqtt publisher).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge.at_mqtt import (
    ConnAck,
    Connect,
    Packet,
    PacketDecoder,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    encode,
)
from atbridge.dialects import DIALECTS, open_dialect
from atbridge.dialects.base import Dialect, ModemSocket
from atbridge.errors import CloseReason, SocketClosed
from atbridge.modem import Modem
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem

ALL_BYTES = bytes(range(256))
NASTY = b"OK\r\n+++\r\nERROR\r\n" * 64
BIG = bytes((i * 7 + 3) % 256 for i in range(64 * 1024))


class Link:
    """A dialect socket with an MQTT stream decoder on top."""

    def __init__(self, dialect: Dialect, sock: ModemSocket, fake: FakeModem) -> None:
        self.dialect = dialect
        self.sock = sock
        self.fake = fake
        self.decoder = PacketDecoder(max_packet_size=1 << 20)

    async def send(self, packet: Packet) -> None:
        await self.sock.send(encode(packet))

    async def next_packet(self, timeout: float = 20.0) -> Packet:
        import asyncio

        async with asyncio.timeout(timeout):
            while True:
                packet = self.decoder.next_packet()
                if packet is not None:
                    return packet
                self.decoder.receive_data(await self.sock.receive())


@pytest.fixture(params=sorted(DIALECTS))
async def link(request: pytest.FixtureRequest, broker: Mosquitto) -> AsyncIterator[Link]:
    name: str = request.param
    async with FakeModem(dialect=name, registration_delay=0.05) as fake:
        modem = await Modem.open(fake.port)
        try:
            dialect, identity = await open_dialect(modem, "auto")
            assert identity is not None and identity.dialect == name
            await dialect.configure_pdp("iot.example")
            await dialect.attach(timeout=20)
            await dialect.activate_data()
            sock = await dialect.open_socket("127.0.0.1", broker.port, timeout=20)
            yield Link(dialect, sock, fake)
            if sock.closed is None:
                await sock.close()
        finally:
            await modem.close()


async def connect(link: Link, client_id: str) -> None:
    await link.send(Connect(client_id=client_id, keepalive=60))
    connack = await link.next_packet()
    assert connack == ConnAck(session_present=False, reason_code=0)


async def test_connect_subscribe_publish_both_ways(link: Link, paho: PahoPeer) -> None:
    name = link.dialect.name
    await connect(link, f"atbridge-{name}")
    paho.subscribe(f"up/{name}", qos=1)
    await link.send(Subscribe(1, (Subscription(f"down/{name}", qos=1),)))
    assert await link.next_packet() == SubAck(1, (1,))

    for packet_id, payload in enumerate((b"21.5", ALL_BYTES, NASTY, BIG), start=10):
        await link.send(Publish(f"up/{name}", payload, qos=1, packet_id=packet_id))
        assert await link.next_packet() == PubAck(packet_id)
    received = paho.wait_for(4, timeout=30)
    assert [payload for _topic, payload, _qos in received] == [b"21.5", ALL_BYTES, NASTY, BIG]

    for payload in (ALL_BYTES, NASTY, BIG):
        paho.publish(f"down/{name}", payload, qos=1)
        incoming = await link.next_packet(timeout=30)
        assert isinstance(incoming, Publish)
        assert (incoming.topic, incoming.payload, incoming.qos) == (f"down/{name}", payload, 1)
        assert incoming.packet_id is not None
        await link.send(PubAck(incoming.packet_id))


async def test_broker_closing_the_connection_is_noticed(link: Link) -> None:
    await connect(link, f"atbridge-close-{link.dialect.name}")
    # A second CONNECT is a protocol violation [MQTT-3.1.0-2]: the broker disconnects.
    await link.send(Connect(client_id="again"))
    with pytest.raises(SocketClosed) as caught:
        await link.next_packet(timeout=20)
    assert caught.value.reason is CloseReason.PEER
    assert link.sock.closed is not None


SEND_COMMANDS = {
    "nrf91-slm": "AT#XSEND",
    "nrf91-sm": "AT#XSEND=",
    "sim7080": "AT+CASEND=",
    "sim7600": "AT+CIPSEND=",
    "sim7000": "AT+CIPSEND=",
}


async def test_a_send_cancelled_halfway_still_completes_and_nothing_wedges(
    link: Link, paho: PahoPeer
) -> None:
    import asyncio

    name = link.dialect.name
    await connect(link, f"atbridge-cancel-{name}")
    paho.subscribe(f"cancel/{name}", qos=0)
    start = len(link.fake.commands)
    sending = asyncio.create_task(link.send(Publish(f"cancel/{name}", BIG, qos=0)))
    prefix = SEND_COMMANDS[name]
    await link.fake.wait_for_command(lambda c: c.startswith(prefix), start=start, timeout=10)
    sending.cancel()  # the caller gives up while the modem waits for payload bytes
    with pytest.raises(asyncio.CancelledError):
        await sending
    await link.send(Publish(f"cancel/{name}", b"after", qos=0))
    received = await asyncio.to_thread(paho.wait_for, 2, 60)
    payloads = [payload for _t, payload, _q in received]
    assert payloads == [BIG, b"after"]


async def test_concurrent_sends_never_interleave(link: Link, paho: PahoPeer) -> None:
    import asyncio

    name = link.dialect.name
    await connect(link, f"atbridge-concurrent-{name}")
    paho.subscribe(f"both/{name}", qos=0)
    first, second = BIG, bytes(reversed(BIG))
    await asyncio.gather(
        link.send(Publish(f"both/{name}", first, qos=0)),
        link.send(Publish(f"both/{name}", second, qos=0)),
    )
    received = await asyncio.to_thread(paho.wait_for, 2, 60)
    assert sorted(payload for _t, payload, _q in received) == sorted([first, second])
