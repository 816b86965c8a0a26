"""The fakes' shared options, driven with raw bytes (no atbridge): the radio access technology
a fake camps on (``rat``) and a USB device node that re-enumerates on reset (``by_id``).

Facts (TS 27.007): ``+CREG`` (§7.2) reports circuit-switched registration, ``+CGREG``
(§10.1.20) GPRS/EDGE/UMTS packet service with ``<rac>`` after ``<AcT>``, ``+CEREG`` (§10.1.22)
EPS (LTE); AcT 0 is a GSM cell, 2 UTRAN, 7 E-UTRAN. A SIM7000 camped on GPRS answers
``+CEREG`` "not registered" and ``+CGREG`` registered (SIMCom SIM7000 series AT manual;
TinyGSM asks CEREG then CGREG for the SIM70xx, CREG for the SIM800).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeModem
from tests.fakes.__main__ import spawn
from tests.pty_client import Client

OK = b"\r\nOK\r\n"
CELL = b'"0A1B","01234567"'


def urc(line: bytes) -> bytes:
    return b"\r\n" + line + b"\r\n"


def link_target(path: str) -> str | None:
    """What the symlink ``path`` names (its real path), or None when it is not there."""
    return os.path.realpath(path) if os.path.islink(path) else None


@pytest.fixture
async def radio_off() -> AsyncIterator[list[FakeModem]]:
    """Fakes to start (radio off at power-on); each is stopped afterwards."""
    fakes: list[FakeModem] = []
    yield fakes
    for fake in fakes:
        await fake.stop()


async def camped(fakes: list[FakeModem], rat: str) -> Client:
    """A generic fake on ``rat``, echo off, notifications on (level 2) for all three."""
    fake = FakeModem("generic", cfun=0, echo=False, rat=rat)
    await fake.start()
    fakes.append(fake)
    client = Client(fake.port)
    for command in (b"AT+CEREG=2\r", b"AT+CGREG=2\r", b"AT+CREG=2\r"):
        await client.ask(command, OK)
    return client


@pytest.mark.parametrize(
    ("rat", "cereg", "cgreg", "creg"),
    [
        ("lte", b"1," + CELL + b",7", b"0", b"0"),
        ("gprs", b"0", b"1," + CELL + b',0,"01"', b"1," + CELL + b",0"),
        ("gsm", b"0", b"0", b"1," + CELL + b",0"),
        ("wcdma", b"0", b"1," + CELL + b',2,"01"', b"1," + CELL + b",2"),
    ],
)
async def test_each_rat_registers_on_its_own_commands_with_its_act(
    radio_off: list[FakeModem], rat: str, cereg: bytes, cgreg: bytes, creg: bytes
) -> None:
    client = await camped(radio_off, rat)
    try:
        client.write(b"AT+CFUN=1\r")
        await client.expect(OK)
        # Searching shows on every command, then each says what it carries.
        await client.expect(urc(b"+CEREG: 2") + urc(b"+CGREG: 2") + urc(b"+CREG: 2"))
        await client.expect(
            urc(b"+CEREG: " + cereg) + urc(b"+CGREG: " + cgreg) + urc(b"+CREG: " + creg)
        )
        await client.ask(b"AT+CEREG?\r", urc(b"+CEREG: 2," + cereg) + OK)
        await client.ask(b"AT+CGREG?\r", urc(b"+CGREG: 2," + cgreg) + OK)
        await client.ask(b"AT+CREG?\r", urc(b"+CREG: 2," + creg) + OK)
    finally:
        client.close()


async def test_registration_commands_at_level_one_and_radio_off(
    radio_off: list[FakeModem],
) -> None:
    fake = FakeModem("generic", cfun=0, echo=False, rat="gprs")
    await fake.start()
    radio_off.append(fake)
    client = Client(fake.port)
    try:
        await client.ask(b"AT+CGREG=1\r", OK)
        await client.ask(b"AT+CGREG?\r", urc(b"+CGREG: 1,0") + OK)
        await client.ask(b"AT+CREG=?\r", urc(b"+CREG: (0-3)") + OK)
        client.write(b"AT+CFUN=1\r")
        await client.expect(OK + urc(b"+CGREG: 2") + urc(b"+CGREG: 1"))
        await client.ask(b"AT+CGREG=4\r", b"\r\nERROR\r\n")
    finally:
        client.close()


def test_unknown_rat_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rat 'umts'"):
        FakeModem("generic", rat="umts")
    with pytest.raises(ValueError, match="generic has no option model"):
        FakeModem("generic", model="SIM800")


async def test_a_reset_re_enumerates_the_device_under_the_same_by_id_name(
    tmp_path: Path,
) -> None:
    """``AT#XRESET`` on an nRF91 DK on USB: the by-id symlink goes, the old tty hangs up, and
    the same name comes back on a new tty, where the SLM boots (``Ready``)."""
    fake = FakeModem("nrf91-slm", by_id=tmp_path)
    await fake.start()
    try:
        name = await fake.wait_for_device()
        first = link_target(name)
        assert Path(name).parent == tmp_path and first is not None
        client = Client(name)
        hung_up = asyncio.Event()
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(client.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(client.fd)
                hung_up.set()

        try:
            await client.read_until(b"Ready\r\n")
            client.write(b"AT#XRESET\r\n")
            await client.read_until(OK)
            loop.remove_reader(client.fd)
            loop.add_reader(client.fd, readable)
            async with asyncio.timeout(5):
                await hung_up.wait()
        finally:
            client.close()
        again = await fake.wait_for_device()
        # A new tty (the kernel may reuse the old number, as it does for ttyACM*).
        assert again == name and link_target(again) is not None
        assert fake.enumerations == 1
        client = Client(again)
        try:
            await client.expect(b"Ready\r\n")
            await client.ask(b"AT\r\n", OK)
        finally:
            client.close()
    finally:
        await fake.stop()
    assert link_target(name) is None


async def test_command_line_serves_rat_and_by_id(tmp_path: Path) -> None:
    proc = await spawn(
        "--dialect", "generic", "--rat", "gsm", "--by-id", str(tmp_path), "--no-echo",
        "--cfun", "0",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        device = first.decode().strip()
        assert Path(device).parent == tmp_path and link_target(device) is not None
        client = Client(device)
        try:
            await client.ask(b"AT+CREG=1\r", OK)
            await client.ask(b"AT+CFUN=1\r", OK + urc(b"+CREG: 2") + urc(b"+CREG: 1"))
            await client.ask(b"AT+CREG?\r", urc(b"+CREG: 1,1") + OK)
            await client.ask(b"AT+CGREG?\r", urc(b"+CGREG: 0,0") + OK)
        finally:
            client.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


async def test_command_line_refuses_an_option_the_dialect_does_not_have() -> None:
    proc = await spawn("--dialect", "generic", "--option", "model=SIM800")
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"generic has no option model" in err
