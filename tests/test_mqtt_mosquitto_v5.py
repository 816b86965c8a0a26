"""MqttSession speaking MQTT 5.0 to a real mosquitto, through a plain asyncio TCP socket.

No modem here: the session's bytes go straight to the broker on 127.0.0.1, and a
paho-mqtt subscriber on the same broker checks what arrives. Topic aliases, the
broker's limits from CONNACK and refusals are the broker's own, not a model of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from atbridge.at_mqtt import (
    Connect,
    Connected,
    Event,
    MqttSession,
    Properties,
    PropertyId,
    ProtocolVersion,
    PublishAcknowledged,
)
from atbridge.errors import ConnectRefused
from tests.brokers import Mosquitto, PahoPeer

V5 = ProtocolVersion.MQTT_5_0
TOPIC = "/a1X2bEnP82z/sensor-north-0042/user/update"
WAIT = 10.0  # seconds: the bound on every wait for the broker


class Link:
    """One network connection of a session to the broker, counting the bytes it sends."""

    def __init__(
        self, session: MqttSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.session = session
        self.reader = reader
        self.writer = writer
        self.bytes_sent = 0

    async def flush(self) -> None:
        data = self.session.data_to_send(asyncio.get_running_loop().time())
        if data:
            self.bytes_sent += len(data)
            self.writer.write(data)
            await self.writer.drain()

    async def next_event(self) -> Event:
        """The session's next event, reading from the broker as needed (bounded)."""
        while (event := self.session.next_event()) is None:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.session.receive_data(data, asyncio.get_running_loop().time())
            await self.flush()
        return event


@asynccontextmanager
async def online(port: int, session: MqttSession) -> AsyncIterator[tuple[Link, Connected]]:
    """Connect ``session`` to the broker; DISCONNECT and close on the way out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    link = Link(session, reader, writer)
    try:
        session.connect()
        await link.flush()
        connected = await link.next_event()
        assert isinstance(connected, Connected)
        yield link, connected
        session.disconnect()
        await link.flush()
    finally:
        writer.close()
        await writer.wait_closed()


async def publish_all(link: Link, messages: list[tuple[str, bytes]]) -> list[PublishAcknowledged]:
    """Publish each message at QoS 1 and wait for every acknowledgement."""
    ids = [link.session.publish(topic, payload, qos=1) for topic, payload in messages]
    await link.flush()
    acks: list[PublishAcknowledged] = []
    while len(acks) < len(ids):
        event = await link.next_event()
        if isinstance(event, PublishAcknowledged):
            acks.append(event)
    assert sorted(ack.packet_id for ack in acks) == sorted(i for i in ids if i is not None)
    return acks


def session_for(client_id: str, *, topic_aliases: bool = True) -> MqttSession:
    return MqttSession(Connect(client_id, protocol=V5), topic_aliases=topic_aliases)


async def test_repeated_topic_goes_as_an_alias_and_every_message_arrives_on_its_topic(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe(TOPIC, qos=1)
    sent: dict[bool, int] = {}
    for aliases in (True, False):
        session = session_for(f"alias-{aliases:d}", topic_aliases=aliases)
        async with online(broker.port, session) as (link, connected):
            maximum = connected.properties.get(PropertyId.TOPIC_ALIAS_MAXIMUM)
            assert isinstance(maximum, int) and maximum > 0
            messages = [(TOPIC, f"{aliases:d}-{n:02d}".encode()) for n in range(20)]
            acks = await publish_all(link, messages)
            assert all(ack.succeeded for ack in acks)
            sent[aliases] = link.bytes_sent
    received = await asyncio.to_thread(paho.wait_for, 40, WAIT)
    assert received == [
        (TOPIC, f"{aliases:d}-{n:02d}".encode(), 1) for aliases in (True, False) for n in range(20)
    ]
    # Same CONNECT size and payload sizes both ways: the difference is that 19 of the
    # 20 PUBLISHes carry an empty topic, and all 20 a 3-byte Topic Alias property.
    assert sent[False] - sent[True] == 19 * len(TOPIC) - 20 * 3


async def test_more_topics_than_the_brokers_alias_maximum_all_arrive_on_their_topics(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("fleet/#", qos=1)
    async with online(broker.port, session_for("many-topics")) as (link, connected):
        maximum = connected.properties.get(PropertyId.TOPIC_ALIAS_MAXIMUM)
        assert isinstance(maximum, int)
        topics = [f"fleet/device-{n:02d}/telemetry" for n in range(maximum + 3)]
        messages = [(topic, f"{round_}".encode()) for round_ in range(2) for topic in topics]
        acks = await publish_all(link, messages)
        assert all(ack.succeeded for ack in acks)
    received = await asyncio.to_thread(paho.wait_for, len(messages), WAIT)
    assert sorted(received) == sorted((topic, payload, 1) for topic, payload in messages)


async def test_a_refused_connect_carries_the_brokers_reason_code(broker: Mosquitto) -> None:
    # mosquitto without an auth plugin refuses any Authentication Method (0x8C).
    connect = Connect(
        "refused",
        protocol=V5,
        properties=Properties({PropertyId.AUTHENTICATION_METHOD: "no-such-method"}),
    )
    session = MqttSession(connect)
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    link = Link(session, reader, writer)
    try:
        session.connect()
        await link.flush()
        with pytest.raises(ConnectRefused) as info:
            await link.next_event()
        assert info.value.code == 0x8C
        assert "Bad authentication method" in str(info.value)
    finally:
        writer.close()
        await writer.wait_closed()
