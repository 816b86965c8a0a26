"""Issue 12, the MQTT side: no message, broker or flood wedges the bridge or grows its memory.

Each test is the regression test of one defect, and failed before its fix:

1. a poison QoS 1 message (one the broker drops the connection over) is refused at
   publish() when we can tell, and taken out of the queue after ``poison_after``
   disconnects in a row when we cannot; the backoff is not reset by a CONNACK alone;
2. a malformed packet right after the CONNACK, while the subscriptions are being
   restored, is a reason to reconnect, never to give up;
3. a PUBLISH flood from the broker fills at most ``receive_queue`` messages: QoS 0
   oldest dropped and counted, QoS 1 held back at the broker and delivered in order;
   messages on topics we never subscribed to are dropped and counted.

Brokers are a real mosquitto (tests/brokers.py) or, for the hostile one, a small
asyncio server on 127.0.0.1 that the fake modem reaches through its loopback
network. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from atbridge.at_mqtt import (
    Connect,
    MqttSession,
    PacketDecoder,
    PublishAbandoned,
    encode,
)
from atbridge.bridge import Bridge
from atbridge.errors import LocalProtocolError, PublishRefused
from atbridge.mqtt.packets import (
    ConnAck,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    topic_matches,
)
from atbridge.mqtt.wire import ProtocolVersion
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config, creds

WAIT = 30.0  # the bound on any one wait; the fake and the local broker take well under 1 s


async def until(bridge: Bridge, condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``condition()`` holds, looking again at every message received."""
    received = bridge.lifecycle.link.received
    try:
        async with asyncio.timeout(WAIT):
            while True:
                received.clear()
                if condition():
                    return
                await received.wait()
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


# -- 1a. what brokers refuse is refused before it is queued -------------------------------

REFUSED_TOPICS = {
    "a control character": "up/\x01/x",
    "a newline": "up/line\nbreak",
    "DEL": "up/\x7f",
    "a C1 control": "up/\x85",
    "a non-character": "up/\ufdd0",
    "U+FFFF": "up/\uffff",
    "a plane-1 non-character": "up/\U0001fffe",
    "U+0000": "up/\x00",
    "a wildcard": "up/+/x",
    "nothing": "",
    "a lone surrogate": "up/\udc80",
    "65,536 bytes": "x" * 65536,
}


def online_session() -> MqttSession:
    session = MqttSession(Connect("c", keepalive=30))
    session.connect()
    session.data_to_send(0.0)
    session.receive_data(encode(ConnAck()), 0.0)
    assert session.next_event() is not None
    return session


@pytest.mark.parametrize("kind", sorted(REFUSED_TOPICS))
def test_publish_refuses_a_topic_brokers_drop_the_connection_over(kind: str) -> None:
    session = online_session()
    with pytest.raises(LocalProtocolError) as raised:
        session.publish(REFUSED_TOPICS[kind], b"x", qos=1)
    assert "MQTT" in str(raised.value)
    assert session.queued == 0 and session.in_flight == ()
    assert session.data_to_send(1.0) == b""


def test_the_refusal_names_the_character_and_where_it_is() -> None:
    with pytest.raises(LocalProtocolError, match=r"control character, U\+0001 at index 3"):
        online_session().publish("up/\x01", b"x", qos=1)


def test_mosquitto_does_drop_the_connection_over_a_control_character(
    broker: Mosquitto,
) -> None:
    """The premise of 1a, on the real broker: the same PUBLISH with a printable topic is
    acknowledged, with U+0001 in it the connection is closed."""
    good = encode(Publish("up/ab", b"x", 1, False, False, 1))
    bad = bytearray(good)
    bad[bad.index(b"ab") + 1] = 0x01
    answers = []
    for frame in (good, bytes(bad)):
        with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT) as sock:
            sock.sendall(encode(Connect("premise", keepalive=30)))
            assert sock.recv(4) == b"\x20\x02\x00\x00"
            sock.sendall(frame)
            try:
                answers.append(sock.recv(4))
            except ConnectionResetError:
                answers.append(b"")
    assert answers == [b"\x40\x02\x00\x01", b""]


# -- 1b/1c. a message the broker drops the connection over is abandoned -------------------


def test_a_message_that_precedes_n_disconnects_is_abandoned_in_memory() -> None:
    session = MqttSession(Connect("c", keepalive=30), poison_after=3)
    poison = session.publish("up/big", b"x", qos=1)
    later = session.publish("up/next", b"y", qos=1)
    for attempt in range(1, 4):
        session.connection_lost()
        session.connect()
        session.data_to_send(0.0)
        session.receive_data(encode(ConnAck()), 0.0)
        session.next_event()  # Connected
        assert session.in_flight[0] == poison, attempt
        session.data_to_send(0.0)  # the poison goes out first: the broker hangs up
        session.connection_lost()
        session.connection_lost()  # (the owner may say so twice: counted once)
    assert session.next_event() == PublishAbandoned(poison, "up/big", 3)
    assert session.in_flight == (later,)


def test_a_disconnect_after_the_broker_answered_is_not_the_messages_fault() -> None:
    session = MqttSession(Connect("c", keepalive=30), poison_after=2)
    first = session.publish("up/a", b"x", qos=1)
    for _ in range(4):
        session.connection_lost()
        session.connect()
        session.data_to_send(0.0)
        session.receive_data(encode(ConnAck()), 0.0)
        session.next_event()
        session.data_to_send(0.0)
        session.ping()
        session.data_to_send(0.0)
        session.receive_data(encode(PingResp()), 0.0)  # the broker read past our message
        session.next_event()
        session.connection_lost()
    assert session.next_event() is None
    assert session.in_flight == (first,)


def poison_broker() -> Mosquitto:
    """mosquitto that drops every client whose packet exceeds 512 bytes (which an MQTT
    3.1.1 client cannot be told: the poison a broker can hand any message)."""
    broker = Mosquitto()
    broker.config.write_text(broker.config.read_text() + "max_packet_size 512\n")
    return broker


@pytest.fixture
def small_broker() -> Iterator[Mosquitto]:
    with poison_broker() as broker:
        yield broker


async def test_a_poison_message_is_abandoned_and_the_messages_behind_it_delivered(
    small_broker: Mosquitto,
) -> None:
    paho = await asyncio.to_thread(PahoPeer, small_broker.port, "poison-peer")
    try:
        await asyncio.to_thread(paho.subscribe, "up/#", 1)
        async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
            cfg = config(fake, small_broker.port, credentials=creds(small_broker.port, "poison"))
            async with Bridge(config=cfg) as bridge:
                attempts: list[int] = []
                stream = bridge.transitions()

                async def watch() -> None:
                    async for transition in stream:
                        if transition.new == "opening_socket":
                            attempts.append(bridge.lifecycle.backoff.attempt)

                watcher = asyncio.create_task(watch())
                poison = asyncio.create_task(bridge.publish("up/big", b"x" * 2000, qos=1))
                behind = [
                    asyncio.create_task(bridge.publish("up/small", b"%d" % n, qos=1))
                    for n in range(3)
                ]
                with pytest.raises(PublishRefused, match="dropped the connection 3 times"):
                    await asyncio.wait_for(poison, WAIT)
                await asyncio.wait_for(asyncio.gather(*behind), WAIT)
                got = await asyncio.to_thread(paho.wait_for, 3, WAIT)
                assert [payload for _t, payload, _q in got] == [b"0", b"1", b"2"]
                assert bridge.counters.abandoned_qos1 == 1
                assert bridge.failure is None and bridge.state == "online"
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        # 1c: each CONNACK that was followed by a drop left the backoff growing.
        assert attempts[:3] == [1, 2, 3]
    finally:
        await asyncio.to_thread(paho.close)


# -- 2. a hostile broker: CONNACK, then garbage ----------------------------------------------


class HostileBroker:
    """A scripted MQTT 3.1.1 broker on 127.0.0.1: connection number ``n`` in ``garbage``
    gets CONNACK and garbage in one write; the others a working session (SUBACK,
    PINGRESP), and the PUBLISHes in ``deliver`` after their first SUBACK."""

    def __init__(self, garbage: set[int], deliver: list[Publish] | None = None) -> None:
        self.garbage = garbage
        self.deliver = deliver or []
        self.connections = 0
        self.subscribes: list[tuple[int, tuple[str, ...]]] = []
        self.acked: list[int] = []
        self.changed = asyncio.Condition()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> HostileBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def hang_up(self) -> None:
        """Close every open connection (a broker restart)."""
        for writer in self._writers:
            writer.close()

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT), self.changed:
                await self.changed.wait_for(condition)
        except TimeoutError:
            raise AssertionError(f"the hostile broker never saw {what}") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        async with self.changed:
            self.connections += 1
            number = self.connections
            self.changed.notify_all()
        decoder = PacketDecoder(ProtocolVersion.MQTT_3_1_1)
        delivered = False
        try:
            while data := await reader.read(4096):
                decoder.receive_data(data)
                while (packet := decoder.next_packet()) is not None:
                    if isinstance(packet, Connect):
                        extra = b"\x00\x00" if number in self.garbage else b""
                        writer.write(encode(ConnAck()) + extra)
                    elif isinstance(packet, Subscribe):
                        codes = tuple(sub.qos for sub in packet.subscriptions)
                        writer.write(encode(SubAck(packet.packet_id, codes)))
                        if not delivered:
                            delivered = True
                            writer.write(b"".join(encode(p) for p in self.deliver))
                        async with self.changed:
                            filters = tuple(s.topic_filter for s in packet.subscriptions)
                            self.subscribes.append((number, filters))
                            self.changed.notify_all()
                    elif isinstance(packet, PingReq):
                        writer.write(encode(PingResp()))
                    elif isinstance(packet, PubAck):
                        async with self.changed:
                            self.acked.append(packet.packet_id)
                            self.changed.notify_all()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def hostile() -> AsyncIterator[HostileBroker]:
    async with HostileBroker(garbage={2}) as server:
        yield server


async def test_a_malformed_packet_while_restoring_subscriptions_reconnects(
    hostile: HostileBroker,
) -> None:
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        cfg = config(fake, hostile.port, credentials=creds(hostile.port, "hostile"))
        async with Bridge(config=cfg) as bridge:
            assert await bridge.subscribe("down/#", qos=1) == 1
            await hostile.hang_up()  # connection 2 answers its CONNECT with CONNACK + garbage
            await hostile.wait(lambda: (3, ("down/#",)) in hostile.subscribes, "a third session")
            await bridge.wait_for_state("online", timeout=WAIT)
            assert bridge.failure is None
            causes = [t.cause for t in bridge.history if t.new == "backing_off"]
            assert any("MQTT" in cause or "packet" in cause for cause in causes), causes
            assert hostile.connections == 3


async def test_messages_on_topics_never_subscribed_to_are_dropped_and_counted() -> None:
    stray = Publish("other/topic", b"stray", 1, False, False, 7)
    wanted = Publish("down/x", b"wanted", 1, False, False, 8)
    stray0 = Publish("other/topic", b"stray0", 0, False, False, None)
    async with (
        HostileBroker(garbage=set(), deliver=[stray, stray0, wanted]) as server,
        FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake,
    ):
        cfg = config(fake, server.port, credentials=creds(server.port, "strays"))
        async with Bridge(config=cfg) as bridge:
            await bridge.subscribe("down/#", qos=1)
            message = await asyncio.wait_for(anext(bridge.messages()), WAIT)
            assert (message.topic, message.payload) == ("down/x", b"wanted")
            await server.wait(lambda: server.acked == [7, 8], "both PUBACKs")
            assert bridge.counters.dropped_unsubscribed == 2
            assert bridge.counters.received_waiting == 0


def test_topic_filters_match_as_the_spec_says() -> None:
    assert topic_matches("a/#", "a") and topic_matches("a/#", "a/b/c")
    assert topic_matches("+/b", "a/b") and not topic_matches("+/b", "a/b/c")
    assert topic_matches("a/+", "a/") and not topic_matches("a", "a/b")
    assert not topic_matches("#", "$SYS/load") and topic_matches("$SYS/#", "$SYS/load")
    assert topic_matches("$share/group/a/+", "a/x")


# -- 3. a flood from the broker --------------------------------------------------------------


async def test_a_flood_fills_at_most_the_receive_queue_and_loses_no_qos1(
    broker: Mosquitto,
) -> None:
    capacity = 5
    paho = await asyncio.to_thread(PahoPeer, broker.port, "flood-peer")
    try:
        async with FakeModem(dialect="sim7600", registration_delay=0.05) as fake:
            cfg = config(
                fake,
                broker.port,
                credentials=creds(broker.port, "flooded"),
                receive_queue=capacity,
            )
            async with Bridge(config=cfg) as bridge:
                await bridge.subscribe("flood/#", qos=1)

                # QoS 0, nobody reading: the oldest go, each counted; a QoS 1 marker last.
                def flood_qos0() -> None:
                    for n in range(40):
                        paho.client.publish("flood/q0", b"q0-%d" % n, 0)
                    paho.publish("flood/q0", b"marker", 1)

                await asyncio.to_thread(flood_qos0)
                await until(
                    bridge,
                    lambda: bridge.counters.dropped_received == 36,
                    "36 QoS 0 messages dropped",
                )
                messages = bridge.messages()
                got = [(await anext(messages)).payload for _ in range(capacity)]
                assert got == [b"q0-36", b"q0-37", b"q0-38", b"q0-39", b"marker"]

                # QoS 1, nobody reading: held back at the broker, then all of it, in order.
                total = 100

                def flood_qos1() -> None:
                    for n in range(total):
                        paho.publish("flood/q1", b"%d" % n, 1)

                await asyncio.to_thread(flood_qos1)
                await until(
                    bridge, lambda: bridge.counters.received_waiting == capacity, "a full queue"
                )
                assert bridge.lifecycle.link.session.receive_held
                seen = [int((await anext(messages)).payload) for _ in range(total)]
                assert seen == list(range(total))
                assert bridge.lifecycle.link.messages.high_water == capacity
                assert bridge.counters.dropped_received == 36
                assert bridge.failure is None and bridge.state == "online"
    finally:
        await asyncio.to_thread(paho.close)


async def test_a_publish_above_max_publish_size_is_refused_before_it_is_queued(
    small_broker: Mosquitto,
) -> None:
    """1a for the broker's packet limit: told it, the bridge refuses a larger PUBLISH at
    once and stays online; the same message at the limit is delivered."""
    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        cfg = config(
            fake,
            small_broker.port,
            credentials=creds(small_broker.port, "limited"),
            max_publish_size=512,
        )
        async with Bridge(config=cfg) as bridge:
            with pytest.raises(LocalProtocolError, match=r"at most 512 \(max_publish_size\)"):
                await bridge.publish("up/big", b"x" * 600, qos=1)
            assert bridge.counters.waiting_qos1 == 0
            await asyncio.wait_for(bridge.publish("up/fits", b"x" * 400, qos=1), WAIT)
            assert "backing_off" not in [t.new for t in bridge.history]
