"""The SIMCom families on the fakes' real-board behaviours (issue 10): each reaches online and
publishes a message the subscriber receives, or is refused at once with the reason.

SIM800 (no ``+CEREG``, auto-bauding, on GPRS), A7672 (``*ATREADY: 1``, a reboot that forgets
echo-off and manual receive), late boot lines, restart without a boot banner, the SIM800's
send size, left-over sockets closed by a new process, TLS offload refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from atbridge.bridge import Bridge
from atbridge.credentials import MqttCredentials
from atbridge.dialects import open_dialect
from atbridge.dialects.simcom import SimcomDialect
from atbridge.errors import ConfigurationError, Failed, LinkLost
from atbridge.modem import Modem
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import Dialect, FakeModem
from tests.fakes import sim7000 as fake_sim7000
from tests.fakes import sim7080 as fake_sim7080
from tests.fakes import sim7600 as fake_sim7600
from tests.test_fakes_simcom import Peer
from tests.test_fsm import config, creds, states

SIMCOM = ("sim7000", "sim7080", "sim7600")
#: Seconds from power-on to the late boot lines: they land while the lifecycle is under way.
LATE = 0.2


async def publish_and_check(bridge: Bridge, paho: PahoPeer, topic: str, payload: bytes) -> None:
    """Publish ``payload`` (QoS 1); the subscriber receives it (the next message it gets)."""
    before = len(paho.messages)
    await bridge.publish(topic, payload, qos=1)
    received = await asyncio.to_thread(paho.wait_for, before + 1)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, payload)]


async def test_sim800_on_gprs_gets_online_without_cereg_and_publishes(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """No +CEREG (it answers ERROR) and no RDY (auto-bauding): +CGREG registers; a payload
    longer than the SIM800's send size goes out in sends of that size."""
    paho.subscribe("up/sim800", qos=1)
    payload = bytes(range(256)) * 12  # 3072 bytes: an MQTT PUBLISH over three sends
    async with (
        FakeModem(dialect="sim800", rat="gprs", registration_delay=0.05) as fake,
        Bridge(config=config(fake, broker.port, credentials=creds(broker.port, "sim800"))) as b,
    ):
        assert b.state == "online"
        registration = b.lifecycle.registration
        assert registration is not None and registration.source == "+CGREG"
        assert not any(cmd.startswith("AT+CEREG") for cmd in fake.commands)
        await publish_and_check(b, paho, "up/sim800", payload)
        size = fake_sim7000.SIM800_SEND_SIZE
        assert f"AT+CIPSEND=0,{size}" in fake.commands
        assert not any(
            cmd.startswith("AT+CIPSEND=0,") and int(cmd.rpartition(",")[2]) > size
            for cmd in fake.commands
        )


async def test_a7672_gets_online_and_recovers_from_its_atready_reboot(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """Identified as sim7600; after a reboot (``*ATREADY: 1``, echo on, push mode) the
    session is rebuilt with manual receive before the network and the socket are opened."""
    paho.subscribe("up/a7672", qos=1)
    async with (
        FakeModem(dialect="a7672", registration_delay=0.05) as fake,
        Bridge(config=config(fake, broker.port, credentials=creds(broker.port, "a7672"))) as b,
    ):
        assert b.state == "online"
        assert b.lifecycle.dialect is not None and b.lifecycle.dialect.name == "sim7600"
        await publish_and_check(b, paho, "up/a7672", b"before")
        fake.commands.clear()
        fake.reboot()
        await b.lifecycle.wait_for_state("probing", timeout=20)
        await b.wait_online(timeout=30)
        after = fake.commands
        assert "ATE0" in after
        # Manual receive again after the reboot, right before the network opens, and once
        # (issue 16: not a second time before the open; nothing reset it in between).
        netopen = after.index("AT+NETOPEN")
        assert after[netopen - 1] == "AT+CIPRXGET=1"
        last_open = max(i for i, cmd in enumerate(after) if cmd.startswith("AT+CIPOPEN="))
        assert after[netopen:last_open].count("AT+CIPRXGET=1") == 0
        assert await b.subscribe("down/a7672", qos=1) == 1
        paho.publish("down/a7672", b"manual receive", qos=1)
        message = await asyncio.wait_for(anext(b.messages()), 20)
        assert message.payload == b"manual receive"
        await publish_and_check(b, paho, "up/a7672", b"after")


@pytest.mark.parametrize(
    "dialect",
    [
        fake_sim7600.model(late_boot=LATE),
        fake_sim7600.model("A7672", late_boot=LATE),
        fake_sim7000.model("SIM800", autobaud=False, late_boot=LATE),
    ],
    ids=["sim7600", "a7672", "sim800"],
)
async def test_late_boot_lines_do_not_disturb_the_way_online(
    dialect: Dialect, broker: Mosquitto, paho: PahoPeer
) -> None:
    topic = f"up/late/{dialect.name}"
    paho.subscribe(topic, qos=1)
    async with (
        FakeModem(dialect=dialect, rat="gprs", registration_delay=LATE) as fake,
        Bridge(config=config(fake, broker.port, credentials=creds(broker.port, topic))) as b,
    ):
        assert b.state == "online"
        await publish_and_check(b, paho, topic, b"booted late")
        assert states(b).count("probing") == 1  # the late lines were not taken for a reboot


@pytest.mark.parametrize(
    "dialect",
    [
        fake_sim7000.model(autobaud=True),
        fake_sim7000.model("SIM800"),
        fake_sim7080.model(autobaud=True),
        fake_sim7600.model(autobaud=True),
    ],
    ids=["sim7000", "sim800", "sim7080", "sim7600"],
)
async def test_restart_of_an_auto_bauding_module_polls_at_instead_of_waiting_for_rdy(
    dialect: Dialect,
) -> None:
    """No banner after the reset: ``AT`` is polled, the answer counts as the reboot (the
    channel's session setup runs again: echo off), and the modem is usable at once."""
    async with FakeModem(dialect=dialect) as fake:
        modem = await Modem.open(fake.port)
        try:
            bound, _identity = await open_dialect(modem)
            assert isinstance(bound, SimcomDialect)
            bound.boot_quiet = 0.05
            reboots: list[str] = []
            modem.on_reboot(reboots.append)
            await bound.restart(timeout=10)  # the 60 s wait for RDY would fail this
            assert reboots and "auto-bauding" in reboots[0]
            response = await modem.command("AT+CGMM")
            assert response.final == "OK"
            assert not fake.state.echo
        finally:
            await modem.close()


@pytest.mark.parametrize("dialect", SIMCOM)
async def test_a_restart_that_re_enumerates_the_usb_device_ends_with_link_lost_at_once(
    dialect: str, tmp_path: Path
) -> None:
    """On USB the reset takes the device node away: the wait for the banner (never coming on
    the old node) ends with LinkLost, so the lifecycle reopens the name without waiting."""
    async with FakeModem(dialect=dialect, by_id=tmp_path) as fake:
        modem = await Modem.open(await fake.wait_for_device())
        try:
            bound, _identity = await open_dialect(modem)
            assert isinstance(bound, SimcomDialect)
            bound.boot_quiet = 3600  # only the link loss can end the wait in time
            with pytest.raises(LinkLost, match="lost after the reset"):
                async with asyncio.timeout(30):
                    await bound.restart(timeout=3600)
        finally:
            await modem.close()


@pytest.mark.parametrize("dialect", SIMCOM)
async def test_sockets_left_by_an_earlier_process_are_closed_and_reopened(dialect: str) -> None:
    """A process that dies leaves its connection open on the modem; the next one closes it
    (count 1) and opens the same connection id again."""
    peer = Peer()
    await peer.start()
    try:
        async with FakeModem(dialect=dialect) as fake:
            first = await Modem.open(fake.port)
            bound, _ = await open_dialect(first, dialect)
            await bound.activate_data()
            old = await bound.open_socket("127.0.0.1", peer.port)
            await peer.accept()
            await first.close()  # killed: nothing closed on the modem
            second = await Modem.open(fake.port)
            try:
                again, _ = await open_dialect(second, dialect)
                assert await again.close_leftover_sockets() == 1
                assert await again.close_leftover_sockets() == 0
                await again.activate_data()
                sock = await again.open_socket("127.0.0.1", peer.port)
                assert sock.handle == old.handle
                conn = await peer.accept()
                await sock.send(b"hello again")
                assert await conn.read_exactly(11) == b"hello again"
                await sock.close()
            finally:
                await second.close()
    finally:
        await peer.close()


#: The SIMCom families whose TLS offload atbridge does not drive (the SIM7080 and the
#: SIM7600 offload: tests/test_tls_offload_sim7080.py, test_tls_offload_sim7600.py).
REFUSING_OFFLOAD = ("sim7000",)


@pytest.mark.parametrize("dialect", REFUSING_OFFLOAD)
async def test_tls_offload_is_refused_at_once_with_the_reason(
    dialect: str, broker: Mosquitto
) -> None:
    credentials = MqttCredentials.plain(
        client_id="tls", host="127.0.0.1", port=broker.port, tls="modem", sec_tag=7
    )
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, broker.port, credentials=credentials))
        with pytest.raises(Failed) as caught:
            async with bridge:
                pass
        failure = bridge.failure
        assert isinstance(failure, ConfigurationError), caught.value
        assert f'TLS on the modem (tls = "modem") is not supported on the {dialect}' in str(failure)
        assert "--tls host" in failure.hint  # host-side TLS works through every modem
        assert not any("SSL" in cmd or "CCH" in cmd for cmd in fake.commands)


async def test_sim7000_sets_up_the_ip_stack_after_cipshut_as_tinygsm_does(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """AT+CIPSHUT, then multi-IP, quick send and manual receive, then the APN and bearer:
    on a module an earlier process left out of IP INITIAL (here multi-IP and IP START,
    after its AT+CSTT). A fresh module has nothing to shut: tests/test_simcom_bringup16.py."""
    paho.subscribe("up/order", qos=1)
    async with FakeModem(dialect="sim7000", registration_delay=0.05) as fake:
        earlier = await Modem.open(fake.port)
        await earlier.command("AT+CIPMUX=1")
        await earlier.command('AT+CSTT="internet"')
        await earlier.close()  # killed: the IP stack stays in IP START
        fake.commands.clear()
        async with Bridge(
            config=config(fake, broker.port, credentials=creds(broker.port, "order"))
        ) as b:
            commands = fake.commands
            shut = commands.index("AT+CIPSHUT")
            assert commands[shut - 1] == "AT+CIFSR"  # the probe: ERROR, no bearer up
            after = [cmd.partition("=")[0] for cmd in commands[shut:]]
            expected = [
                "AT+CIPSHUT",
                "AT+CIPMUX",
                "AT+CIPQSEND",
                "AT+CIPRXGET",
                "AT+CSTT",
                "AT+CIICR",
            ]
            assert [cmd for cmd in after if cmd in expected][: len(expected)] == expected
            await publish_and_check(b, paho, "up/order", b"in order")


#: The family's one command that lists the connections open on the modem.
LISTING = {"sim7000": "AT+CIPSTATUS", "sim7600": "AT+CIPCLOSE?"}


@pytest.mark.parametrize("dialect", sorted(LISTING))
async def test_the_left_over_check_is_one_command_and_none_after_a_fresh_bearer(
    dialect: str,
) -> None:
    """One listing command (the SIM7000's connection lines after its OK, not one question
    per connection); nothing asked after SHUT OK / +NETOPEN: 0 until a connection opens;
    asked again once one is open (our own socket is closed by it)."""
    peer = Peer()
    await peer.start()
    try:
        async with FakeModem(dialect=dialect) as fake:
            modem = await Modem.open(fake.port)
            try:
                bound, _ = await open_dialect(modem, dialect)
                fake.commands.clear()
                assert await bound.close_leftover_sockets() == 0
                assert fake.commands == [LISTING[dialect]]
                bearer = await bound.activate_data()
                assert not bearer.already_active
                fake.commands.clear()
                assert await bound.close_leftover_sockets() == 0
                assert fake.commands == []
                sock = await bound.open_socket("127.0.0.1", peer.port)
                await peer.accept()
                fake.commands.clear()
                assert await bound.close_leftover_sockets() == 1
                assert LISTING[dialect] in fake.commands
                assert sock.closed is not None
            finally:
                await modem.close()
    finally:
        await peer.close()


async def test_a_sim800_is_asked_its_model_once_and_offers_connections_0_to_5() -> None:
    """The model comes from the identity step (one AT+CGMM); SIM800 manual: ``<n>`` 0-5."""
    async with FakeModem(dialect="sim800") as fake:
        modem = await Modem.open(fake.port)
        try:
            bound, identity = await open_dialect(modem)
            assert isinstance(bound, SimcomDialect) and bound.name == "sim7000"
            assert "SIM800" in identity.model.upper()
            assert fake.commands.count("AT+CGMM") == 1
            assert bound.links == range(6)
        finally:
            await modem.close()
