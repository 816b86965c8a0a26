"""A rebooting fake is deaf while it boots: bytes sent before its banner are lost.

A real module's UART is not running while it boots (SIM800 Hardware Design V1.09 §4.2.1: the
serial port is undefined for more than 1.4 s, then ``RDY``; the nRF91 SLM/SM print ``Ready``
once the AT host runs again after ``AT#XRESET``). The fake keeps its UART dead for
``boot_time`` seconds after a reboot, then sends the banner (``tests/fakes/core.py``). Every
expectation is the exact bytes through the pty; the windows are long enough that bytes written
right after the reset surely arrive inside them, and nothing waits on a clock.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakes import Command, Dialect, FakeModem, sim7080
from tests.fakes.__main__ import main, spawn
from tests.fakes.core import BOOT_TIME
from tests.pty_client import Client

OK = b"\r\nOK\r\n"
SIM7080_BANNER = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n"
#: Long enough that a write right after the reset arrives inside it on a loaded machine.
WINDOW = 0.5

Start = Callable[..., Awaitable[tuple[FakeModem, Client]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    running: list[tuple[FakeModem, Client]] = []

    async def begin(dialect: str | Dialect = "sim7080", **kwargs: Any) -> tuple[FakeModem, Client]:
        fake = FakeModem(dialect, **kwargs)
        await fake.start()
        client = Client(fake.port, read_timeout=5.0)
        running.append((fake, client))
        return fake, client

    yield begin
    for fake, client in running:
        client.close()
        await fake.stop()


async def test_bytes_sent_while_it_boots_are_lost(start: Start) -> None:
    fake, client = await start(boot_time=WINDOW, echo=False)
    await client.expect(SIM7080_BANNER)
    await client.ask(b"AT+CFUN=4\r", OK)
    fake.reboot()
    assert fake.booting
    assert fake.state.cfun == 1  # the power-on state is there at once
    client.write(b"AT+CFUN=0\rAT\r")  # into a UART that is not running yet
    await client.expect(SIM7080_BANNER)
    assert not fake.booting
    await client.ask(b"AT+CFUN?\r", b"\r\n+CFUN: 1\r\n" + OK)  # AT+CFUN=0 never ran
    assert fake.commands == ["AT+CFUN=4", "AT+CFUN?"]
    assert client.pending() == b""


async def test_a_reset_command_answers_ok_then_the_line_is_dead_until_the_banner(
    start: Start,
) -> None:
    fake, client = await start(boot_time=WINDOW, echo=False)
    await client.expect(SIM7080_BANNER)
    await client.ask(b"AT+CFUN=1,1\r", OK)
    client.write(b"AT+CGMM\r")  # right behind the OK: the module is resetting
    await client.expect(SIM7080_BANNER)
    await client.ask(b"AT\r", OK)
    assert fake.commands == ["AT+CFUN=1,1", "AT"]


async def test_a_payload_written_after_a_prompt_never_runs_if_the_modem_reboots(
    start: Start,
) -> None:
    """The hazard of a reboot as a send begins: the host writes its payload on the prompt;
    the modem reset as it asked for it, so the payload meets a UART that is not running,
    and the banner comes after the prompt, in a read of its own."""
    fake, client = await start(boot_time=WINDOW, echo=False)
    await client.expect(SIM7080_BANNER)

    def send(modem: FakeModem, _cmd: Command) -> None:
        modem.write_raw(b"\r\n> ")
        modem.after_output(modem.reboot)

    fake.on_command("+XSEND", send)
    client.write(b"AT+XSEND=0,12\r")
    await client.expect(b"\r\n> ")
    client.write(b"AT+CFUN=0\rX\r")  # a payload that is also a command line
    await client.expect(SIM7080_BANNER)
    assert fake.commands == ["AT+XSEND=0,12"]
    assert fake.state.cfun == 1


async def test_without_a_window_the_banner_follows_at_once(start: Start) -> None:
    fake, client = await start(boot_time=0, echo=False)
    await client.expect(SIM7080_BANNER)
    fake.reboot()
    assert not fake.booting
    await client.expect(SIM7080_BANNER)
    await client.ask(b"AT\r", OK)


async def test_the_default_window_is_short_and_only_for_a_modem_with_a_banner() -> None:
    assert 0 < BOOT_TIME < 0.2
    assert FakeModem("sim7080").boot_time == BOOT_TIME
    assert FakeModem("nrf91-slm").boot_time == BOOT_TIME
    # An auto-bauding module prints nothing: its host syncs with AT, so no window by default.
    assert FakeModem(sim7080.model(autobaud=True)).boot_time == 0
    assert FakeModem(sim7080.model(autobaud=True), boot_time=0.3).boot_time == 0.3
    with pytest.raises(ValueError, match="boot_time must be 0 or more"):
        FakeModem("sim7080", boot_time=-1)


async def test_start_has_no_window(start: Start) -> None:
    """``start()`` is a modem that booted before the port was opened."""
    fake, client = await start("nrf91-sm", boot_time=WINDOW)
    assert not fake.booting
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT\r", OK)


async def test_the_nrf91_reset_is_deaf_until_ready(start: Start) -> None:
    fake, client = await start("nrf91-sm", boot_time=WINDOW)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT#XRESET\r", OK)
    client.write(b"AT+CFUN=1\r")
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CFUN?\r", b"\r\n+CFUN: 0\r\n" + OK)
    assert fake.commands == ["AT#XRESET", "AT+CFUN?"]


async def test_the_command_line_sets_the_window() -> None:
    proc = await spawn("--dialect", "sim7080", "--boot-time", str(WINDOW), "--no-echo")
    try:
        assert proc.stdout is not None
        port = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert re.fullmatch(r"/dev/pts/\d+", port)
        client = Client(port, read_timeout=5.0)
        try:
            await client.expect(SIM7080_BANNER)  # from start(), waiting in the pty
            await client.ask(b"AT+CFUN=1,1\r", OK)
            client.write(b"AT+CGMM\r")  # lost: the module is booting
            await client.expect(SIM7080_BANNER)
            await client.ask(b"AT\r", OK)
            assert client.pending() == b""
        finally:
            client.close()
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr
    assert b"Traceback" not in stderr


def test_a_negative_window_on_the_command_line_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--dialect", "sim7080", "--boot-time", "-1"]) == 2
    assert "boot_time must be 0 or more seconds" in capsys.readouterr().err


def test_the_help_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--boot-time" in capsys.readouterr().out
