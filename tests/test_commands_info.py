"""``atbridge info`` (atbridge/commands/info.py): data from the modem, rendered by the command."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

import pytest

from atbridge.commands import info
from atbridge.commands.info import ModemInfo, Unavailable, gather_info
from atbridge.decode import Registration, Signal
from atbridge.modem import Modem
from tests.fakes import FakeModem


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


async def test_gather_info_returns_typed_data(fake: FakeModem) -> None:
    async with await Modem.open(fake.port) as modem:
        found = await gather_info(modem)
    assert isinstance(found, ModemInfo)
    assert found.manufacturer == "Nordic Semiconductor ASA"
    assert isinstance(found.registration, Registration)
    assert not found.registration.registered
    assert isinstance(found.signal, Signal | Unavailable)
    assert found.slm_version is not None  # a Nordic modem is asked its firmware version
    rendered = found.rendered()
    assert rendered["registration"] == found.registration.describe()
    assert "sm_version" not in rendered  # the Serial LTE Modem refuses AT#XSMVER: not shown


async def test_a_query_the_modem_refuses_is_unavailable_with_the_reason(fake: FakeModem) -> None:
    async with await Modem.open(fake.port) as modem:
        fake.set_sim(False)
        found = await gather_info(modem)
    assert isinstance(found.imsi, Unavailable)
    assert str(found.imsi).startswith("unavailable (")


@pytest.mark.parametrize("as_json", [False, True])
async def test_the_command_renders_a_table_or_json(
    as_json: bool, fake: FakeModem, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(parents=info.parents())
    info.configure(parser)
    args = parser.parse_args(["--port", fake.port, *(["--json"] if as_json else [])])
    assert await info._main(args) == 0
    out = capsys.readouterr().out
    if as_json:
        report = json.loads(out)
        assert report["manufacturer"] == "Nordic Semiconductor ASA"
        assert report["registration"].startswith("not registered")
    else:
        assert "manufacturer     Nordic Semiconductor ASA" in out.splitlines()[0]
        assert any(line.startswith("registration ") for line in out.splitlines())


async def test_info_says_which_command_registered_and_the_rat() -> None:
    """A SIM7000 camped on GPRS: +CEREG says not registered, +CGREG registered (AcT 0)."""
    async with (
        FakeModem(dialect="sim7000", rat="gprs") as fake,
        await Modem.open(fake.port) as modem,
    ):
        found = await gather_info(modem)
    assert isinstance(found.registration, Registration)
    assert found.registration.registered and found.registration.source == "+CGREG"
    assert found.registered_on == "+CGREG (GPRS)"
    assert isinstance(found.circuit_service, Registration)
    assert found.circuit_service.registered
    rendered = found.rendered()
    assert rendered["registered_on"] == "+CGREG (GPRS)"
    assert rendered["registration"].startswith("registered, home network")


async def test_info_on_lte_names_cereg(fake: FakeModem) -> None:
    async with await Modem.open(fake.port) as modem:
        await modem.command("AT+CFUN=1")
        await fake.wait_for_command("AT+CFUN=1")
        found = await gather_info(modem)
    assert found.registered_on == "+CEREG (LTE)"
    assert isinstance(found.packet_service, Registration)
    assert not found.packet_service.registered
