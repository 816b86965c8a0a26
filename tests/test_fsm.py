"""The lifecycle against the fake modem on a pty and a real mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atbridge.bridge import Bridge
from atbridge.config import Backoff, BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.decode import Registration
from atbridge.dialects import DIALECTS, dialect_class
from atbridge.errors import (
    BrokerRefused,
    CloseReason,
    ConfigurationError,
    Failed,
    ModemRebooted,
    Offline,
    PublishRefused,
    SocketClosed,
)
from atbridge.fsm import STATES, TRANSITIONS, Recovery, State, mermaid, recovery
from atbridge.steps import SocketOpened
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem

FAST = Timeouts(probe=10, configure=10, attach=10, activate=10, open_socket=10, connack=10, close=5)


def creds(port: int, client_id: str = "atbridge-test", **kw: object) -> MqttCredentials:
    return MqttCredentials.plain(client_id=client_id, host="127.0.0.1", port=port, **kw)  # type: ignore[arg-type]


def config(fake: FakeModem, broker_port: int, **kw: object) -> BridgeConfig:
    options: dict[str, object] = {
        "timeouts": FAST,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "give_up_after": 30.0,
    }
    options.update(kw)
    credentials = options.pop("credentials", None) or creds(broker_port)
    port = options.pop("port", None) or fake.port
    return BridgeConfig(port=port, credentials=credentials, **options)  # type: ignore[arg-type]


@pytest.fixture(params=sorted(DIALECTS))
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeModem]:
    """A fake modem of each dialect in turn: every lifecycle test runs on all five."""
    async with FakeModem(dialect=request.param, registration_delay=0.05) as fake:
        yield fake


def states(bridge: Bridge) -> list[str]:
    return [t.new for t in bridge.history]


# -- the machine as data --------------------------------------------------------------------


def test_every_transition_names_declared_states() -> None:
    for transition in TRANSITIONS:
        sources = transition["source"]
        for source in sources if isinstance(sources, list) else [sources]:
            assert source in STATES
        assert transition["dest"] in STATES


def test_mermaid_diagram_is_drawn_from_the_table() -> None:
    diagram = mermaid()
    assert diagram.splitlines()[4].strip() == "stateDiagram-v2" or "stateDiagram-v2" in diagram
    for transition in TRANSITIONS:
        assert f"--> {transition['dest']}: {transition['trigger']}" in diagram
    # a diagram of the table has no current state: none of the library's colouring is left
    assert "s_active" not in diagram and "classDef" not in diagram and "Class " not in diagram


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.5, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1
    jittered = Backoff(initial=1.0, maximum=8.0, jitter=0.5, rng=lambda: 1.0)
    assert jittered.next_delay() == 0.5


@pytest.mark.parametrize(
    ("error", "step"),
    [
        (SocketClosed(CloseReason.PEER), Recovery.SOCKET),
        (SocketClosed(CloseReason.NETWORK), Recovery.ATTACH),
        (SocketClosed(CloseReason.REBOOT), Recovery.PROBE),
        (SocketClosed(CloseReason.LINK), Recovery.REOPEN),
        (ModemRebooted("Ready"), Recovery.PROBE),
        (BrokerRefused(3, "server unavailable"), Recovery.SOCKET),
        (BrokerRefused(4, "bad user name or password"), Recovery.FAIL),
        (BrokerRefused(5, "not authorized"), Recovery.FAIL),
        (ConfigurationError("bad"), Recovery.FAIL),
    ],
)
def test_recovery_goes_back_as_far_as_the_failure_needs(error: Exception, step: Recovery) -> None:
    assert recovery(error) is step


def test_config_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="no broker host"):
        BridgeConfig(port="/dev/null", credentials=MqttCredentials.plain(client_id="x"))
    with pytest.raises(ConfigurationError, match="queue_size"):
        BridgeConfig(port="/dev/x", credentials=creds(1883), queue_size=0)
    with pytest.raises(ConfigurationError, match="timeout attach"):
        Timeouts(attach=0)


# -- power-on to online ------------------------------------------------------------------


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_power_on_to_online_publish_and_receive(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe(f"up/{dialect}", qos=1)
    async with (
        FakeModem(dialect=dialect, registration_delay=0.05) as fake,
        Bridge(config=config(fake, broker.port, credentials=creds(broker.port, dialect))) as bridge,
    ):
        assert bridge.state == "online"
        assert states(bridge) == [
            "probing",
            "configuring",
            "attaching",
            "opening_socket",
            "mqtt_connecting",
            "online",
        ]
        assert await bridge.subscribe(f"down/{dialect}", qos=1) == 1
        await bridge.publish(f"up/{dialect}", b"qos0", qos=0)
        await bridge.publish(f"up/{dialect}", bytes(range(256)), qos=1)
        received = paho.wait_for(2)
        assert sorted(payload for _t, payload, _q in received) == sorted(
            [b"qos0", bytes(range(256))]
        )
        paho.publish(f"down/{dialect}", b"hello device", qos=1)
        message = await asyncio.wait_for(anext(bridge.messages()), 20)
        assert (message.topic, message.payload, message.qos) == (
            f"down/{dialect}",
            b"hello device",
            1,
        )
    assert bridge.state == "disconnected"


async def test_qos1_publishes_are_pipelined(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("pipe", qos=1)
    async with Bridge(config=config(fake, broker.port)) as bridge:
        await asyncio.gather(*(bridge.publish("pipe", b"%d" % i, qos=1) for i in range(30)))
    assert sorted(int(p) for _t, p, _q in paho.wait_for(30)) == list(range(30))


async def test_qos0_while_offline_raises_or_is_counted(fake: FakeModem, broker: Mosquitto) -> None:
    bridge = Bridge(config=config(fake, broker.port))
    with pytest.raises(Offline, match="QoS 0"):
        await bridge.publish("t", b"x", qos=0)
    dropping = Bridge(config=config(fake, broker.port, qos0_offline="drop"))
    await dropping.publish("t", b"x", qos=0)
    assert dropping.counters.dropped_qos0 == 1


# -- recovery ------------------------------------------------------------------------------


async def test_broker_outage_loses_no_qos1_message(fake: FakeModem) -> None:
    with Mosquitto(persistence=True) as broker:
        observer = PahoPeer(broker.port, "observer", clean_session=False)
        observer.subscribe("outage", qos=1)
        try:
            async with Bridge(config=config(fake, broker.port, give_up_after=60.0)) as bridge:
                await bridge.publish("outage", b"before", qos=1)
                broker.stop()
                during = asyncio.create_task(bridge.publish("outage", b"during", qos=1))
                await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
                broker.start()
                await asyncio.wait_for(during, 60)
                await bridge.publish("outage", b"after", qos=1)
                assert bridge.state == "online"
                new_states = states(bridge)[6:]
                assert new_states[0] == "backing_off"
                assert new_states[-2:] == ["mqtt_connecting", "online"]
                assert "opening_socket" in new_states
            received = observer.wait_for(3, timeout=30)
        finally:
            observer.close()
    payloads = [payload for _t, payload, _q in received]
    assert sorted(set(payloads)) == [b"after", b"before", b"during"]


async def test_modem_reboot_mid_session_recovers(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("reboot", qos=1)
    async with Bridge(config=config(fake, broker.port)) as bridge:
        await bridge.publish("reboot", b"one", qos=1)
        fake.reboot()
        await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
        await bridge.wait_online(timeout=30)
        await bridge.publish("reboot", b"two", qos=1)
        causes = [t.cause for t in bridge.history if t.new == "backing_off"]
        assert any("reboot" in cause for cause in causes)
        assert "probing" in states(bridge)[6:]
    assert [p for _t, p, _q in paho.wait_for(2)] == [b"one", b"two"]


async def test_registration_lost_and_regained_recovers(fake: FakeModem, broker: Mosquitto) -> None:
    async with Bridge(config=config(fake, broker.port)) as bridge:
        fake.set_registration(2)
        await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
        fake.set_registration(1)
        await bridge.wait_online(timeout=30)
        assert "attaching" in states(bridge)[6:]
        await bridge.publish("regained", b"x", qos=1)


async def test_missing_pingresp_is_a_dead_link_and_reconnects(fake: FakeModem) -> None:
    with Mosquitto() as broker:
        cfg = config(fake, broker.port, credentials=creds(broker.port, keepalive=1), ping_grace=0.5)
        async with Bridge(config=cfg) as bridge:
            assert broker._proc is not None
            os.kill(broker._proc.pid, signal.SIGSTOP)  # the broker stops answering
            try:
                await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
            finally:
                os.kill(broker._proc.pid, signal.SIGCONT)
            assert any("PINGRESP" in t.cause for t in bridge.history)
            await bridge.wait_online(timeout=30)


async def test_wrong_password_fails_with_the_reason_and_no_storm(fake: FakeModem) -> None:
    with Mosquitto(users={"device": "right"}) as broker:
        cfg = config(
            fake,
            broker.port,
            credentials=creds(broker.port, username="device", password="Wr0ng-s3cret"),
        )
        bridge = Bridge(config=cfg)
        with pytest.raises(Failed) as caught:
            async with bridge:
                pass
    message = str(caught.value)
    assert "not authori" in message or "user name or password" in message
    assert bridge.state == "failed"
    assert states(bridge).count("mqtt_connecting") == 1
    assert "Wr0ng-s3cret" not in message


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_registration_that_never_completes_times_out_with_the_last_status(
    dialect: str, broker: Mosquitto
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=3600) as fake:
        cfg = config(
            fake,
            broker.port,
            timeouts=Timeouts(attach=0.5, probe=10, configure=10),
            give_up_after=0.1,
        )
        bridge = Bridge(config=cfg)
        with pytest.raises(Failed) as caught:
            async with bridge:
                pass
    assert "not registered after 0.5 s" in str(caught.value)
    assert "searching" in str(caught.value)


async def test_pdp_context_dropped_recovers(fake: FakeModem, broker: Mosquitto) -> None:
    async with Bridge(config=config(fake, broker.port)) as bridge:
        fake.drop_pdp()  # the network deactivates the data context, each family its way
        await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
        await bridge.wait_online(timeout=30)
        after = states(bridge)[6:]
        assert after[0] == "backing_off" and "attaching" in after and after[-1] == "online"
        await bridge.publish("pdp", b"back", qos=1)


async def test_progress_reports_registration_while_attaching(
    fake: FakeModem, broker: Mosquitto
) -> None:
    seen: list[tuple[str, str]] = []
    bridge = Bridge(config=config(fake, broker.port))
    bridge.lifecycle.on_progress(lambda state, text: seen.append((state, text)))
    async with bridge:
        pass
    assert ("attaching", "registration: not registered, searching (stat 2)") in seen
    assert any(text.startswith("registration: registered") for _state, text in seen)


async def test_config_from_toml_environment_and_arguments(tmp_path: Path) -> None:
    from atbridge.config import load_config

    path = tmp_path / "atbridge.toml"
    path.write_text(
        '[bridge]\nport = "/dev/ttyACM0"\napn = "from-file"\nqueue_size = 5\n'
        "[bridge.timeouts]\nattach = 300\n"
        '[mqtt]\nclient_id = "dev1"\nhost = "broker.example"\n'
    )
    cfg = load_config(path, env={"ATBRIDGE_APN": "from-env"}, dialect="nrf91-sm")
    assert (cfg.port, cfg.apn, cfg.dialect, cfg.queue_size) == (
        "/dev/ttyACM0",
        "from-env",
        "nrf91-sm",
        5,
    )
    assert cfg.timeouts.attach == 300
    assert cfg.credentials.host == "broker.example"
    path.write_text('[bridge]\nport = "/dev/x"\nqueue_size = "many"\n[mqtt]\nclient_id = "d"\n')
    with pytest.raises(ConfigurationError, match=r"queue_size='many' in .*atbridge.toml"):
        load_config(path, env={})
    path.write_text('[bridge]\nprot = "/dev/x"\n[mqtt]\nclient_id = "d"\n')
    with pytest.raises(ConfigurationError, match=r"prot in .* is not a known field"):
        load_config(path, env={})


async def test_repeated_socket_failures_escalate_to_reattach(fake: FakeModem) -> None:
    with Mosquitto() as broker:
        async with Bridge(config=config(fake, broker.port, give_up_after=60.0)) as bridge:
            online_at = len(bridge.history)
            broker.stop()
            # Three failed reconnects in a row, then the modem re-attaches.
            async with asyncio.timeout(30):
                while "attaching" not in states(bridge)[online_at:]:
                    await bridge.lifecycle.wait_for_state("attaching", "opening_socket")
                    await bridge.lifecycle.wait_for_state("backing_off", "online", "attaching")
            broker.start()
            await bridge.wait_online(timeout=30)
            after = states(bridge)[online_at:]
            assert after.index("attaching") > after.index("opening_socket")
            assert after.count("opening_socket") >= 3


async def online_after_a_restart(fake: FakeModem, broker: Mosquitto, **kw: object) -> Bridge:
    """A started bridge on ``fake`` (a network never found) whose attach fails until the
    lifecycle restarts the modem with the dialect's reset command; then the network is found
    and the bridge is online again. The caller closes it."""
    cfg = config(
        fake,
        broker.port,
        timeouts=Timeouts(attach=0.3, probe=10, configure=10),
        attach_failures_before_restart=2,
        give_up_after=60.0,
        **kw,
    )
    bridge = Bridge(config=cfg)
    await bridge.start()
    try:
        await fake.wait_for_command(dialect_class(fake.dialect.name).reset_command, timeout=30)
        fake.registration_delay = 0.05  # after the restart the network is found
        await bridge.wait_online(timeout=30)
    except BaseException:
        await bridge.close()
        raise
    return bridge


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_repeated_attach_failures_restart_the_modem(dialect: str, broker: Mosquitto) -> None:
    async with FakeModem(dialect=dialect, registration_delay=3600) as fake:
        bridge = await online_after_a_restart(fake, broker)
        try:
            after_reset = states(bridge)
            assert after_reset.count("attaching") >= 3
            assert "probing" in after_reset[after_reset.index("backing_off") :]
        finally:
            await bridge.close()


async def test_offline_qos1_queue_is_bounded_and_drains_when_online(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer
) -> None:
    from atbridge.errors import QueueFull

    paho.subscribe("queued", qos=1)
    bridge = Bridge(config=config(fake, broker.port, queue_size=2))
    waiting = [asyncio.create_task(bridge.publish("queued", b"%d" % i, qos=1)) for i in range(2)]
    await asyncio.sleep(0)  # let both enter the queue
    with pytest.raises(QueueFull, match="2 QoS 1 messages are already waiting"):
        await bridge.publish("queued", b"too many", qos=1)
    async with bridge:
        await asyncio.wait_for(asyncio.gather(*waiting), 30)
    received = await asyncio.to_thread(paho.wait_for, 2, 30)
    assert sorted(payload for _t, payload, _q in received) == [b"0", b"1"]


async def test_subscriptions_are_restored_after_a_reconnect(fake: FakeModem) -> None:
    with Mosquitto() as broker:  # no persistence: the restarted broker forgets every session
        async with Bridge(config=config(fake, broker.port, give_up_after=60.0)) as bridge:
            await bridge.subscribe("restored/+", qos=1)
            broker.stop()
            await bridge.lifecycle.wait_for_state("backing_off", timeout=20)
            broker.start()
            await bridge.wait_online(timeout=30)
            publisher = PahoPeer(broker.port, "restore-publisher")
            try:
                # The SUBACK of the restored subscription may still be on its way: publish
                # until one arrives (QoS 1 at the publisher, bounded).
                message = None
                for _attempt in range(50):
                    await asyncio.to_thread(publisher.publish, "restored/x", b"again", 1)
                    try:
                        message = await asyncio.wait_for(anext(bridge.messages()), 0.2)
                        break
                    except TimeoutError:
                        continue
            finally:
                publisher.close()
            assert message is not None
            assert (message.topic, message.payload) == ("restored/x", b"again")


# -- MQTT 5.0 and the Will ------------------------------------------------------------------


async def test_mqtt5_online_publish_and_receive(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer
) -> None:
    client_id = f"atbridge-v5-{fake.dialect.name}"
    paho.subscribe(f"v5/{fake.dialect.name}/up", qos=1)
    cfg = config(
        fake,
        broker.port,
        credentials=creds(broker.port, client_id),
        mqtt_version="5",
        session_expiry=60,
    )
    async with Bridge(config=cfg) as bridge:
        assert "(p5," in broker.wait_for_log(f" as {client_id} ")  # mosquitto: protocol 5
        assert await bridge.subscribe(f"v5/{fake.dialect.name}/down", qos=1) == 1
        await bridge.publish(f"v5/{fake.dialect.name}/up", b"five \x00\xff", qos=1)
        # Repeated topics go out as MQTT 5.0 topic aliases; paho sees the full topic.
        await bridge.publish(f"v5/{fake.dialect.name}/up", b"again", qos=0)
        await bridge.publish(f"v5/{fake.dialect.name}/up", b"and again", qos=1)
        received = await asyncio.to_thread(paho.wait_for, 3, 20)
        assert {topic for topic, _p, _q in received} == {f"v5/{fake.dialect.name}/up"}
        assert sorted(payload for _t, payload, _q in received) == [
            b"again",
            b"and again",
            b"five \x00\xff",
        ]
        paho.publish(f"v5/{fake.dialect.name}/down", b"to the device", qos=1)
        message = await asyncio.wait_for(anext(bridge.messages()), 20)
        assert (message.payload, message.qos) == (b"to the device", 1)


def will_config(fake: FakeModem, broker: Mosquitto, name: str, mqtt_version: str) -> BridgeConfig:
    """Client ``atbridge-will-<name>`` with a QoS 1 Will on ``will/<name>``."""
    return config(
        fake,
        broker.port,
        credentials=creds(broker.port, f"atbridge-will-{name}"),
        mqtt_version=mqtt_version,
        will_topic=f"will/{name}",
        will_message="the device is gone",
        will_qos=1,
    )


@pytest.mark.parametrize("mqtt_version", ["3.1.1", "5"])
async def test_will_is_delivered_when_the_modem_dies_without_disconnect(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, mqtt_version: str
) -> None:
    name = f"{fake.dialect.name}-{mqtt_version}"
    paho.subscribe(f"will/{name}", qos=1)
    cfg = will_config(fake, broker, name, mqtt_version)
    async with Bridge(config=cfg) as bridge:
        fake.reboot()  # power lost: the modem's TCP connection ends without a DISCONNECT
        received = await asyncio.to_thread(paho.wait_for, 1, 20)
        assert received == [(f"will/{name}", b"the device is gone", 1)]
        await bridge.wait_online(timeout=30)


@pytest.mark.parametrize("mqtt_version", ["3.1.1", "5"])
async def test_no_will_after_a_clean_close(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, mqtt_version: str
) -> None:
    name = f"{fake.dialect.name}-{mqtt_version}-clean"
    client_id = f"atbridge-will-{name}"
    paho.subscribe(f"will/{name}", qos=1)
    cfg = will_config(fake, broker, name, mqtt_version)
    async with Bridge(config=cfg):
        pass
    # The broker took the DISCONNECT (a Will would be published by now), then a marker.
    await asyncio.to_thread(broker.wait_for_log, f"Client {client_id} disconnected")
    paho.publish(f"will/{name}", b"marker", qos=1)
    received = await asyncio.to_thread(paho.wait_for, 1, 20)
    assert received == [(f"will/{name}", b"marker", 1)]


async def test_mqtt5_refused_publish_carries_the_reason_and_the_session_stays(
    fake: FakeModem,
) -> None:
    with Mosquitto(acl="topic readwrite allowed/#\n") as broker:
        cfg = config(fake, broker.port, mqtt_version="5")
        async with Bridge(config=cfg) as bridge:
            with pytest.raises(PublishRefused, match=r"(?i)not authori") as refused:
                await bridge.publish("denied/up", b"x", qos=1)
            assert refused.value.code == 0x87
            await bridge.publish("allowed/up", b"fine", qos=1)
            assert bridge.state == "online"


async def test_observer_api_reports_identity_registration_steps_and_counters(
    fake: FakeModem, broker: Mosquitto
) -> None:
    reports: list[Registration] = []
    bridge = Bridge(config=config(fake, broker.port, qos0_offline="drop"))
    unhook = bridge.on_registration(reports.append)
    await bridge.publish("dropped", b"x", qos=0)  # offline: counted, not sent
    async with bridge:
        assert await bridge.wait_for_state("online", timeout=1) == State.online
        assert bridge.identity is not None and bridge.identity.dialect == fake.dialect.name
        assert bridge.registration is not None and bridge.registration.registered
        assert reports and reports[-1].registered
        assert bridge.dialect is not None and bridge.modem is not None
        assert list(bridge.steps) == [
            "probe",
            "configure",
            "attach",
            "activate_data",
            "open_socket",
            "mqtt_connect",
        ]
        opened = bridge.steps["open_socket"]
        assert isinstance(opened, SocketOpened) and opened.port == broker.port
        assert bridge.counters.dropped_qos0 == 1
        assert bridge.failure is None
    unhook()
    assert bridge.dialect is None and bridge.modem is None


async def test_a_port_that_vanishes_and_returns_is_reopened(
    fake: FakeModem, broker: Mosquitto, tmp_path: Path
) -> None:
    """A USB modem re-enumerating: its device node goes away, then comes back (a symlink
    like /dev/serial/by-id/... names the first fake, then a second one)."""
    by_id = tmp_path / "usb-modem"
    by_id.symlink_to(fake.port)
    cfg = BridgeConfig(
        port=str(by_id),
        credentials=creds(broker.port, f"atbridge-replug-{fake.dialect.name}"),
        timeouts=FAST,
        backoff_initial=0.05,
        backoff_max=0.2,
        give_up_after=60.0,
    )
    async with (
        Bridge(config=cfg) as bridge,
        FakeModem(dialect=fake.dialect.name, registration_delay=0.05) as replugged,
    ):
        transitions = bridge.transitions()
        by_id.unlink()
        fake.drop_link()  # unplugged: the port is gone
        async with asyncio.timeout(30):
            async for transition in transitions:  # reopening fails while the node is missing
                if transition.new == "backing_off" and str(by_id) in transition.cause:
                    break
        await transitions.aclose()  # type: ignore[attr-defined]
        assert bridge.state != "failed"
        by_id.symlink_to(replugged.port)  # the modem is back, under the same name
        await bridge.wait_online(timeout=30)
        await bridge.publish("replugged", b"back", qos=1)


async def test_mqtt5_session_expiry_keeps_what_came_while_offline(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer
) -> None:
    client_id = f"atbridge-expiry-{fake.dialect.name}"
    topic = f"expiry/{fake.dialect.name}/down"
    cfg = config(
        fake,
        broker.port,
        credentials=creds(broker.port, client_id),
        mqtt_version="5",
        session_expiry=300,
    )
    async with Bridge(config=cfg) as bridge:
        assert await bridge.subscribe(topic, qos=1) == 1
        searching = asyncio.Event()
        bridge.on_registration(lambda r: searching.set() if not r.registered else None)
        fake.registration_delay = 3600  # after the reboot the modem finds no network...
        fake.reboot()
        await asyncio.to_thread(broker.wait_for_log, f"Client {client_id} closed its connection")
        await asyncio.wait_for(searching.wait(), 20)  # radio on again, searching
        paho.publish(topic, b"while you were away", qos=1)  # the broker keeps it
        fake.set_registration(1)  # ...until now
        await bridge.wait_online(timeout=30)
        message = await asyncio.wait_for(anext(bridge.messages()), 20)
        assert (message.topic, message.payload) == (topic, b"while you were away")
