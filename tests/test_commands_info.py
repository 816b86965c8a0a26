"""``atbridge info`` (atbridge/commands/info.py): data in the diagnostics vocabulary.

The gathering is tested on the test's event loop (which also serves the fake); the
command itself as a real process (``python -m atbridge info``, the fixtures of
``test_commands_bridge``), in JSON and as the table a person reads.
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from atbridge.commands.info import ModemInfo, gather_info
from atbridge.modem import Modem
from tests.fakes import FakeModem
from tests.test_commands_bridge import StartCli, atbridge, run_cli  # noqa: F401 - fixtures


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


async def info_json(atbridge: StartCli, port: str, *extra: str) -> dict[str, object]:
    cli = await run_cli(atbridge, "info", "--port", port, "--json", *extra)
    assert cli.proc.returncode == 0, cli.stderr
    report = json.loads(cli.stdout)
    assert isinstance(report, dict)
    return report


async def test_json_is_vocabulary_data_with_errors_in_their_own_field(
    fake: FakeModem, atbridge: StartCli
) -> None:
    """The nRF91 fake starts at CFUN=0: the SIM queries fail, and say so apart from data."""
    report = await info_json(atbridge, fake.port)
    assert report["dialect"] == "nrf91-slm" and report["dialect_chosen_by"] == "auto"
    assert report["manufacturer"] == "Nordic Semiconductor ASA"
    assert report["firmware"] == "mfw_nrf9160_1.3.5"
    assert report["imei"] == "352656100367872"
    assert report["slm_version"] == "2.5.0,2.5.0-lte-5ccd2d4dd54c"
    assert report["functional_mode"] == 0  # a number, not prose
    assert report["registration"] == {
        "source": "+CEREG", "n": 0, "stat": 0, "registered": False, "roaming": False,
    }  # fmt: skip
    assert report["registered_on"] is None
    assert report["imsi"] is None and report["iccid"] is None
    errors = report["errors"]
    assert isinstance(errors, dict)
    assert errors["imsi"] == (
        "+CME ERROR: 13 (SIM failure); at CFUN=0 (radio off) the SIM may not be powered"
    )
    assert set(errors) == {"imsi", "iccid", "pin_state"}
    signal = report["signal"]
    assert isinstance(signal, dict)
    assert signal["rsrp_index"] == 255 and signal["rsrp_dbm"] is None  # unknown is null
    cell = report["serving_cell"]  # %XMONITOR: 0, not registered
    assert isinstance(cell, dict)
    assert (cell["stat"], cell["cell_id"], cell["rsrp_dbm"]) == (0, None, None)


async def test_json_of_a_registered_simcom_strips_prefixes_and_has_the_iccid(
    atbridge: StartCli,
) -> None:
    async with FakeModem(dialect="sim7600") as fake:
        report = await info_json(atbridge, fake.port)
    assert report["dialect"] == "sim7600"
    assert report["firmware"] == "LE20B04SIM7600G22"  # not "+CGMR: LE20B04SIM7600G22"
    assert report["iccid"] == "89490200001234567891"
    assert report["pin_state"] == "READY"
    assert report["functional_mode"] == 1
    registration = report["registration"]
    assert isinstance(registration, dict)
    assert (registration["stat"], registration["registered"], registration["act"]) == (1, True, 7)
    assert report["registered_on"] == "+CEREG (LTE)"
    assert report["operator"] == {"mode": 0, "format": 2, "plmn": "26201", "act": 7}
    cell = report["serving_cell"]
    assert isinstance(cell, dict)
    assert (cell["band"], cell["rsrp_dbm"], cell["cell_id"]) == (20, -78.0, "01234567")
    assert report["errors"] == {}
    text = json.dumps(report)
    assert "+CGMR" not in text and "+ICCID" not in text


async def test_a_forced_dialect_is_reported_as_chosen_by_the_option(
    fake: FakeModem, atbridge: StartCli
) -> None:
    report = await info_json(atbridge, fake.port, "--dialect", "NRF91-SLM")
    assert (report["dialect"], report["dialect_chosen_by"]) == ("nrf91-slm", "--dialect")
    assert "slm_version" not in report  # only identifying asks the application version
    cli = await run_cli(atbridge, "info", "--port", fake.port, "--dialect", "sim9999")
    assert cli.proc.returncode == 2
    assert "--dialect 'sim9999' is not a modem family" in cli.stderr


async def test_the_table_reads_for_a_person(atbridge: StartCli) -> None:
    async with FakeModem(dialect="sim7600") as fake:
        cli = await run_cli(atbridge, "info", "--port", fake.port)
    assert cli.proc.returncode == 0, cli.stderr
    rows = {line[:16].strip(): line[16:].strip() for line in cli.out}
    assert rows["dialect"] == "sim7600 (chosen by auto)"
    assert rows["firmware"] == "LE20B04SIM7600G22"
    assert rows["functional mode"] == "1  full functionality"
    assert rows["registration"].startswith("registered, home network (stat 1)")
    assert rows["signal"] == "rssi -59 dBm  excellent"
    assert rows["pin state"].startswith("READY  ")


async def test_a_refused_query_is_shown_in_its_row(fake: FakeModem, atbridge: StartCli) -> None:
    cli = await run_cli(atbridge, "info", "--port", fake.port)
    assert cli.proc.returncode == 0, cli.stderr
    (imsi,) = [line for line in cli.out if line.startswith("imsi ")]
    assert imsi.split(None, 1)[1].startswith("unavailable (+CME ERROR: 13 (SIM failure)")


async def test_gathering_names_which_command_registered_and_the_rat() -> None:
    """A SIM7000 camped on GPRS: +CEREG says not registered, +CGREG registered (AcT 0)."""
    async with (
        FakeModem(dialect="sim7000", rat="gprs") as fake,
        await Modem.open(fake.port) as modem,
    ):
        found = await gather_info(modem)
    assert isinstance(found, ModemInfo)
    registration = found.data["registration"]
    assert registration["source"] == "+CGREG" and registration["registered"]
    assert found.data["registered_on"] == "+CGREG (GPRS)"
    assert found.data["circuit_service"]["registered"]
    rendered = found.rendered()
    assert rendered["registered_on"] == "+CGREG (GPRS)"
    assert rendered["registration"].startswith("registered, home network")


async def test_gathering_on_lte_names_cereg(fake: FakeModem) -> None:
    async with await Modem.open(fake.port) as modem:
        await modem.command("AT+CFUN=1")
        await fake.wait_for_command("AT+CFUN=1")
        found = await gather_info(modem)
    assert found.data["registered_on"] == "+CEREG (LTE)"
    assert not found.data["packet_service"]["registered"]
    assert found.data["functional_mode"] == 1
