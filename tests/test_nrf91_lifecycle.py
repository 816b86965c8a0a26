"""The lifecycle on the nRF91 fakes' real-board behaviours (issue 10), with a real mosquitto.

Each test puts the fake in one state a real board gets into (sockets left by a dead host,
a modem-core fault, data mode left on, a CR-terminated build, a build too old) and checks
that the bridge reaches online and a message it publishes reaches a subscriber, or that it
refuses with a message that names the version and the minimum.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from atbridge.bridge import Bridge
from atbridge.dialects.nrf91 import NordicDialect
from atbridge.errors import Failed, UnsupportedFirmware
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.fakes.grammar import Command, HandlerResult
from tests.fakes.nrf91_slm import LEGACY_NCS_VERSION, slm_build, start_in_data_mode
from tests.fakes.nrf91_sm import sm_build
from tests.fakes.nrf91_sockets import MAX_SOCKETS, modem_fault, sockets_of
from tests.fakes.registry import Dialect
from tests.pty_client import Client
from tests.test_fsm import config, creds, states

NORDIC = ("nrf91-slm", "nrf91-sm")
WAIT = 30.0


async def publish_and_receive(bridge: Bridge, paho: PahoPeer, topic: str) -> None:
    """A QoS 1 message through the bridge reaches the subscriber."""
    await bridge.publish(topic, b"\x00+++ through\r\nOK", qos=1)
    received = await asyncio.to_thread(paho.wait_for, 1)
    assert [(t, p) for t, p, _q in received] == [(topic, b"\x00+++ through\r\nOK")]


@pytest.mark.parametrize("dialect", NORDIC)
async def test_sockets_left_by_dead_hosts_are_closed_and_the_bridge_gets_online(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe(f"left/{dialect}", qos=1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        client = Client(fake.port)  # earlier hosts, all killed: every socket is taken
        line_end = b"\r\n" if dialect == "nrf91-slm" else b"\r"
        try:
            for handle in range(MAX_SOCKETS):
                client.write(b"AT#XSOCKET=1,1,0" + line_end)
                await client.read_until(b"#XSOCKET: %d,1,6\r\n\r\nOK\r\n" % handle)
        finally:
            client.close()
        cfg = config(fake, broker.port, credentials=creds(broker.port, f"left-{dialect}"))
        async with Bridge(config=cfg) as bridge:
            assert len(sockets_of(fake).sockets) == 1  # the bridge's own
            await publish_and_receive(bridge, paho, f"left/{dialect}")


@pytest.mark.parametrize("dialect", NORDIC)
async def test_a_modem_core_fault_is_recovered_like_a_reboot(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe(f"fault/{dialect}", qos=1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, f"fault-{dialect}"))
        async with Bridge(config=cfg) as bridge:
            before = len(states(bridge))
            arming = fake.commands.count("AT+CGEREP=1")
            modem_fault(fake)
            await bridge.lifecycle.wait_for_state("probing", timeout=WAIT)
            await bridge.lifecycle.wait_for_state("online", timeout=WAIT)
            assert "attaching" in states(bridge)[before:]
            # Every notification is armed again, the radio is on, the socket reopened.
            assert fake.commands.count("AT+CGEREP=1") > arming
            assert fake.state.cfun == 1 and fake.state.cereg_n > 0
            await publish_and_receive(bridge, paho, f"fault/{dialect}")


@pytest.mark.usefixtures("short_escape_guard")
@pytest.mark.parametrize("left", [b"half a messa", b"+", b"half a terminator ++"])
async def test_an_slm_left_in_data_mode_by_a_dead_host_gets_online(
    left: bytes, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("datamode", qos=1)
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        await start_in_data_mode(fake, left)
        cfg = config(fake, broker.port, credentials=creds(broker.port, "datamode"))
        async with Bridge(config=cfg) as bridge:
            assert sockets_of(fake).data_mode is None
            await publish_and_receive(bridge, paho, "datamode")


async def enter_data_mode_without_ok(fake: FakeModem, cmd: Command) -> HandlerResult:
    """``AT#XSEND`` whose ``OK`` is lost on the line: the modem is in data mode, the host
    never hears so (the fake's build-before-#7951 behaviour, for this one command)."""
    state = sockets_of(fake)
    state.legacy_datamode = True
    try:
        result = fake.run_default(cmd)
        return await result if inspect.isawaitable(result) else result
    finally:
        state.legacy_datamode = False


@pytest.mark.usefixtures("short_escape_guard")
async def test_a_lost_ok_to_xsend_while_online_is_escaped_and_the_message_arrives(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("lost-ok", qos=1)
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, "lost-ok"))
        async with Bridge(config=cfg) as bridge:
            before = len(states(bridge))
            dialect = bridge.lifecycle.dialect
            assert isinstance(dialect, NordicDialect)
            dialect.data_mode_entry_timeout = 1.0  # the OK is lost: no need to wait 10 s
            fake.on_command("#XSEND", enter_data_mode_without_ok, times=1)
            await bridge.publish("lost-ok", b"\x00+++ through\r\nOK", qos=1)
            received = await asyncio.to_thread(paho.wait_for, 1, 60.0)
            assert [p for _t, p, _q in received] == [b"\x00+++ through\r\nOK"]
            assert "opening_socket" in states(bridge)[before:]  # the socket was reopened
            await bridge.lifecycle.wait_for_state("online", timeout=WAIT)
            assert sockets_of(fake).data_mode is None


async def test_a_cr_terminated_slm_with_line_ending_cr_gets_online(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("cr", qos=1)
    async with FakeModem(dialect=slm_build(terminator="CR"), registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, "cr"), line_ending="cr")
        async with Bridge(config=cfg) as bridge:
            await publish_and_receive(bridge, paho, "cr")
            assert not any(c.startswith("\n") for c in fake.commands)


@pytest.mark.parametrize(
    "build",
    [slm_build(terminator="CR"), slm_build(terminator="LF"), sm_build(terminator="CRLF")],
    ids=["slm-cr", "slm-lf", "sm-crlf"],
)
async def test_a_non_default_build_without_line_ending_is_detected_and_gets_online(
    build: Dialect, broker: Mosquitto, paho: PahoPeer
) -> None:
    topic = f"detect/{build.name}/{build.terminator}"
    paho.subscribe(topic, qos=1)
    async with FakeModem(dialect=build, registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, topic.replace("/", "-")))
        async with Bridge(config=cfg) as bridge:
            await publish_and_receive(bridge, paho, topic)


async def test_an_slm_older_than_ncs_2_1_is_refused_with_the_version_and_the_minimum(
    broker: Mosquitto,
) -> None:
    build = slm_build(ncs_version=LEGACY_NCS_VERSION, legacy_datamode=True)
    async with FakeModem(dialect=build, registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, broker.port))
        with pytest.raises(Failed) as caught:
            async with bridge:
                pass
    message = str(caught.value)
    assert "2.0.2" in message and "2.1.0 or later" in message
    refusal = caught.value.cause
    assert isinstance(refusal, UnsupportedFirmware)
    assert (refusal.version, refusal.minimum) == ("2.0.2", "2.1.0")
    assert bridge.state == "failed"
    assert states(bridge).count("probing") == 1  # refused once, not retried


@pytest.mark.parametrize("dialect", NORDIC)
async def test_a_second_run_does_not_set_the_apn_again(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe(f"apn/{dialect}", qos=1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cfg = config(
            fake, broker.port, credentials=creds(broker.port, f"apn-{dialect}"), apn="my.apn"
        )
        async with Bridge(config=cfg):
            pass
        async with Bridge(config=cfg) as bridge:
            await publish_and_receive(bridge, paho, f"apn/{dialect}")
    assert [c for c in fake.commands if c.startswith("AT+CGDCONT=")] == [
        'AT+CGDCONT=0,"IP","my.apn"'
    ]
