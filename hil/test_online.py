"""Through the modem to the broker: a TCP socket, an MQTT round trip, recovery after a restart."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from atbridge import steps
from atbridge.at_mqtt import MqttSession
from atbridge.bridge import Bridge
from atbridge.credentials import MqttCredentials
from atbridge.farm.plugin import Board, Endpoint
from atbridge.fsm import Transition
from tests.brokers import PahoPeer


async def test_tcp_socket_to_the_broker(
    board: Board, apn: str | None, broker: Endpoint, credentials: MqttCredentials
) -> None:
    """A TCP connection through the modem reaches the broker: CONNECT gets CONNACK accepted
    (a refusal would raise), and a PINGREQ its PINGRESP."""
    async with board.open() as link:
        await link.bring_up_data(apn)
        opened = await steps.open_socket(
            link.dialect, broker.host, broker.port, timeout=board.timeouts.open_socket
        )
        session = MqttSession(credentials.connect_packet())
        connected = await steps.mqtt_connect(opened.socket, session, timeout=board.timeouts.connack)
        pinged = await steps.ping(opened.socket, session, timeout=board.timeouts.connack)
        await opened.socket.close()
    assert connected.connack.session_present is False
    assert 0 <= pinged.round_trip <= board.timeouts.connack


async def test_mqtt_round_trip(
    board: Board,
    apn: str | None,
    credentials: MqttCredentials,
    paho: PahoPeer,
    topic: str,
) -> None:
    """The Bridge gets online; a QoS 1 publish reaches paho, paho's message reaches the device."""
    paho.subscribe(f"{topic}/up", qos=1)
    config = board.bridge_config(credentials, apn)
    started = time.monotonic()
    async with Bridge(config=config, online_timeout=board.online_timeout) as bridge:
        board.record("time_to_online_s", round(time.monotonic() - started, 3))
        board.strategy.ready()
        assert await bridge.subscribe(f"{topic}/down", qos=1) == 1
        await bridge.publish(f"{topic}/up", b"hello broker \x00\xff", qos=1)
        assert paho.wait_for(1, timeout=board.timeouts.connack) == [
            (f"{topic}/up", b"hello broker \x00\xff", 1)
        ]
        paho.publish(f"{topic}/down", b"hello device", qos=1)
        async with asyncio.timeout(board.timeouts.connack):
            message = await anext(bridge.messages())
        assert (message.topic, message.payload, message.qos) == (
            f"{topic}/down",
            b"hello device",
            1,
        )
    assert bridge.state == "disconnected"


async def test_recovers_after_a_modem_restart(
    board: Board,
    apn: str | None,
    credentials: MqttCredentials,
    paho: PahoPeer,
    topic: str,
) -> None:
    """The modem restarts under an online Bridge; the lifecycle brings it back online."""
    paho.subscribe(f"{topic}/up", qos=1)
    config = board.bridge_config(credentials, apn)
    async with Bridge(config=config, online_timeout=board.online_timeout) as bridge:
        board.strategy.ready()
        await bridge.publish(f"{topic}/up", b"before", qos=1)
        transitions = bridge.transitions()
        dialect = bridge.dialect
        assert dialect is not None
        await dialect.restart(timeout=board.timeouts.probe)
        seen: list[Transition] = []
        async with asyncio.timeout(board.online_timeout):
            async for transition in transitions:
                seen.append(transition)
                if transition.new == "online":
                    break
        await transitions.aclose()  # type: ignore[attr-defined]
        assert seen[0].old == "online" and seen[0].new == "backing_off", seen
        assert "probing" in [t.new for t in seen], seen
        await bridge.publish(f"{topic}/up", b"after", qos=1)
        received = paho.wait_for(2, timeout=board.timeouts.connack)
    assert [payload for _t, payload, _q in received] == [b"before", b"after"]


async def test_soak_online_round_trips(
    board: Board,
    apn: str | None,
    credentials: MqttCredentials,
    paho: PahoPeer,
    topic: str,
    hil_soak: int,
) -> None:
    """``--hil-soak N``: N QoS 1 publishes, each waited for at paho; loss and latency recorded
    (``soak_sent``, ``soak_lost``, ``soak_p50_s``, ``soak_p90_s``, ``soak_max_s``). On the
    fake modem it runs a few by default; on a real board only when asked."""
    if hil_soak <= 0:
        pytest.skip("a soak costs air time on a real board: give --hil-soak N to run it")
    paho.subscribe(f"{topic}/soak", qos=1)
    config = board.bridge_config(credentials, apn)
    latencies: list[float] = []
    lost = 0
    async with Bridge(config=config, online_timeout=board.online_timeout) as bridge:
        board.strategy.ready()
        for number in range(hil_soak):
            sent = time.monotonic()
            await bridge.publish(f"{topic}/soak", f"{number}".encode(), qos=1)
            try:
                await asyncio.to_thread(paho.wait_for, len(latencies) + 1, board.timeouts.connack)
            except TimeoutError:
                lost += 1
                continue
            latencies.append(time.monotonic() - sent)
    board.record("soak_sent", hil_soak)
    board.record("soak_lost", lost)
    if latencies:
        cuts = statistics.quantiles(latencies, n=10) if len(latencies) > 1 else latencies * 9
        board.record("soak_p50_s", round(statistics.median(latencies), 4))
        board.record("soak_p90_s", round(cuts[8], 4))
        board.record("soak_max_s", round(max(latencies), 4))
    print(f"soak {board.name}: {hil_soak} sent, {lost} lost, latencies {sorted(latencies)[:3]}...")
    assert lost == 0, f"{lost} of {hil_soak} round trips lost"
