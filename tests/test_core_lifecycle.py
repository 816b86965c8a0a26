"""Issue 10 end to end on the shared parts: a real board's behaviour, the lifecycle online,
and a message a subscriber receives.

- Registration outside LTE: a SIM7000 camped on GPRS registers on ``+CGREG`` only.
- Sockets outlive the host: ten ``atbridge publish`` processes on one fake, the first nine
  killed with SIGKILL while online, the tenth publishes (every dialect).
- USB re-enumeration: the dialect's own reset command (``AT+CFUN=1,1``, ``AT#XRESET``) makes
  the device node vanish and come back under the same by-id name; the bridge reopens it.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from atbridge.bridge import Bridge
from atbridge.dialects import DIALECTS, dialect_class
from atbridge.dialects.base import Dialect
from atbridge.errors import CloseReason
from atbridge.modem import Modem
from atbridge.steps import open_port
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.fakes.nrf91_slm import slm_build, start_in_data_mode
from tests.test_commands_bridge import Cli, StartCli, atbridge  # noqa: F401  (the fixture)
from tests.test_fsm import config, creds, online_after_a_restart, states

KILLED_RUNS = 9


async def test_gprs_only_registration_gets_online_and_publishes(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """SIM7000 on GPRS: ``+CEREG`` never registers, ``+CGREG`` does (AcT 0)."""
    paho.subscribe("up/gprs", qos=1)
    seen: list[str] = []
    async with FakeModem(dialect="sim7000", rat="gprs", registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, broker.port, credentials=creds(broker.port, "gprs")))
        bridge.lifecycle.on_progress(lambda _state, text: seen.append(text))
        async with bridge:
            assert bridge.state == "online"
            registration = bridge.lifecycle.registration
            assert registration is not None and registration.source == "+CGREG"
            await bridge.publish("up/gprs", b"over gprs", qos=1)
            assert [p for _t, p, _q in paho.wait_for(1)] == [b"over gprs"]
    assert "registered on +CGREG (GPRS)" in seen
    assert "attaching" in states(bridge)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.timeout(240)  # ten processes, each through the whole bring-up (a bound)
async def test_ten_publish_runs_the_first_nine_killed_while_online(
    dialect: str,
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,  # noqa: F811
) -> None:
    """The fake outlives the processes, so every killed run leaves its socket open on it:
    each new run closes what it finds before it opens (the nRF91 has 8 sockets; SIMCom
    refuses to reopen an open link or cid), and the tenth still publishes. The line ending
    is given (found on the first sync, it costs the SLM's CR LF a silent try each run)."""
    topic = f"up/killed/{dialect}"
    ending = {b"\r\n": "crlf", b"\r": "cr", b"\n": "lf"}[dialect_class(dialect).line_ending]
    await asyncio.to_thread(paho.subscribe, topic, 1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        common = [
            "--port", fake.port, "--broker", f"127.0.0.1:{broker.port}",
            "--give-up-after", "30", "--client-id", f"killed-{dialect}",
            "--qos", "1", "--line-ending", ending,
        ]  # fmt: skip
        for run in range(KILLED_RUNS):
            # lines from stdin: publish reads the first before going online, then stays
            # online for the next (to another topic, so only the tenth run's reaches paho)
            cli = await atbridge("publish", *common, "--topic", f"{topic}/killed")
            await cli.send(b"a killed run\n")
            await cli.wait_for("online")
            cli.proc.kill()
            assert await cli.finish(close_stdin=False) == -signal.SIGKILL, f"run {run + 1}"
        last = await atbridge("publish", *common, "--topic", topic, "-m", "the tenth run")
        assert await last.finish() == 0, last.stderr
        assert "socket(s) left open on the modem" in last.stderr
    got = await asyncio.to_thread(paho.wait_for, 1, 30)
    assert [p for t, p, _q in got if t == topic] == [b"the tenth run"]


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_a_reset_that_re_enumerates_the_usb_device_is_reopened_by_name(
    dialect: str, broker: Mosquitto, paho: PahoPeer, tmp_path: Path
) -> None:
    """Attach keeps failing, so the lifecycle restarts the modem with the dialect's reset
    command; on USB that takes the device node away and brings it back under the same
    /dev/serial/by-id/ name. The bridge reopens that name and gets online again."""
    topic = f"up/usb/{dialect}"
    paho.subscribe(topic, qos=1)
    async with FakeModem(dialect=dialect, registration_delay=3600, by_id=tmp_path) as fake:
        bridge = await online_after_a_restart(
            fake,
            broker,
            port=await fake.wait_for_device(),  # the by-id name, as a user gives it
            credentials=creds(broker.port, f"usb-{dialect}"),
        )
        try:
            assert fake.enumerations >= 1
            await bridge.publish(topic, b"back on the same name", qos=1)
            assert [p for _t, p, _q in paho.wait_for(1)] == [b"back on the same name"]
        finally:
            await bridge.close()


async def test_the_cli_says_which_command_registered(
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,  # noqa: F811
) -> None:
    topic = "up/cli/gprs"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    async with FakeModem(dialect="sim7000", rat="gprs", registration_delay=0.05) as fake:
        cli = await atbridge(
            "publish", "--port", fake.port, "--broker", f"127.0.0.1:{broker.port}",
            "--give-up-after", "30", "--topic", topic, "--qos", "1", "-m", "via the CLI",
        )  # fmt: skip
        assert await cli.finish() == 0, cli.stderr
    assert "registered on +CGREG (GPRS)" in cli.stderr
    got = await asyncio.to_thread(paho.wait_for, 1, 30)
    assert [p for t, p, _q in got if t == topic] == [b"via the CLI"]


@pytest.mark.usefixtures("short_escape_guard")
@pytest.mark.parametrize("terminator", ["CR", "LF", "CRLF"])
async def test_an_slm_left_in_data_mode_is_escaped_and_its_line_ending_found(
    terminator: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    """A host died mid-send: the SLM takes every ``AT`` as payload. The first sync gets no
    answer, escapes (silence, ``+++``, silence: ``CONFIG_SLM_DATAMODE_SILENCE``), finds the
    build's line ending (no ``--line-ending`` given) and the bridge gets online."""
    topic = f"up/escaped/{terminator}"
    paho.subscribe(topic, qos=1)
    build = slm_build(terminator=terminator)  # type: ignore[arg-type]
    async with FakeModem(dialect=build, registration_delay=0.05) as fake:
        await start_in_data_mode(fake)
        cfg = config(fake, broker.port, credentials=creds(broker.port, f"escaped-{terminator}"))
        async with Bridge(config=cfg) as bridge:
            assert isinstance(bridge.modem, Modem)
            ending = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}[terminator]
            assert (bridge.modem.line_ending, bridge.modem.line_ending_origin) == (
                ending,
                "detected",
            )
            await bridge.publish(topic, b"out of data mode", qos=1)
            assert [p for _t, p, _q in paho.wait_for(1)] == [b"out of data mode"]


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_a_modem_core_reset_without_a_banner_recovers_like_a_reboot(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    """A family reports ``#XMODEM: FAULT`` (no ``Ready``) with ``modem_reset``: the socket ends
    with REBOOT, the lifecycle probes again (notifications re-armed), re-attaches, reopens."""
    topic = f"up/reset/{dialect}"
    paho.subscribe(topic, qos=1)
    async with (
        FakeModem(dialect=dialect, registration_delay=0.05) as fake,
        Bridge(config=config(fake, broker.port, credentials=creds(broker.port, topic))) as bridge,
    ):
        bound = bridge.lifecycle.dialect
        assert isinstance(bound, Dialect)
        online_at = len(bridge.history)
        closed = asyncio.get_running_loop().create_future()
        next(iter(bound.sockets.values())).on_close(closed.set_result)
        bound.modem_reset("#XMODEM: FAULT,0x00000001,0x00001234")
        assert (await asyncio.wait_for(closed, 10)).reason is CloseReason.REBOOT
        await bridge.lifecycle.wait_for_state("probing", timeout=30)
        await bridge.wait_online(timeout=30)
        assert "attaching" in states(bridge)[online_at:]
        await bridge.publish(topic, b"after the fault", qos=1)
        assert [p for _t, p, _q in paho.wait_for(1)] == [b"after the fault"]


@pytest.mark.parametrize(("given", "sent"), [("crlf", b"\r\n"), ("cr", b"\r")])
async def test_the_configured_line_ending_is_used_whatever_the_dialect_says(
    given: str, sent: bytes
) -> None:
    """``line_ending = "crlf"`` on an nRF91 Serial Modem (its default: CR) stays CR LF."""
    async with FakeModem(dialect="nrf91-sm") as fake:
        cfg = config(fake, 1883, line_ending=given)
        modem = await open_port(cfg)
        try:
            dialect_class("nrf91-sm")(modem)
            assert (modem.line_ending, modem.line_ending_origin) == (sent, "given")
            fake.commands.clear()
            await modem.command("AT+CGMM")
            assert fake.commands == ["AT+CGMM"]
        finally:
            await modem.close()
