"""``atbridge ports`` (atbridge/commands/ports.py): ports, USB ids, by-id names, guesses, --probe.

No USB modem is attached here, so pyserial's port list is replaced by one that names the
fake modem's real pty with the USB ids a real board reports; the by-id directory is a
temporary folder with a real symlink. ``--probe`` talks to the fake over the pty.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture
from serial.tools.list_ports_common import ListPortInfo

from atbridge.commands import ports
from tests.fakes import FakeModem


def _port(device: str, vid: int | None, pid: int | None, serial: str | None) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number = vid, pid, serial
    info.description = "n/a" if vid is None else "USB device"
    return info


@pytest.mark.parametrize(
    ("vid", "pid", "expected"),
    [
        (0x1E0E, 0x9001, "sim7600"),  # Linux option.c: SIMCom SIM7500/SIM7600
        (0x1E0E, 0x9206, "sim7080"),  # option.c: SIM7070/SIM7080/SIM7090 AT-only mode
        (0x1E0E, 0x1234, "family unknown"),
        (0x1915, 0x910A, "Nordic"),  # Thingy:91 X
        (0x1366, 0x1055, "J-Link"),
        (0x10C4, 0xEA60, "CP210x"),
    ],
)
def test_the_usb_ids_name_the_family_they_can(vid: int, pid: int, expected: str) -> None:
    guess = ports.guess_family(vid, pid)
    assert guess is not None and expected in guess


def test_unknown_or_missing_usb_ids_guess_nothing() -> None:
    assert ports.guess_family(0x8086, 0x0001) is None
    assert ports.guess_family(None, None) is None


def test_by_id_names_map_real_devices_to_their_stable_names(tmp_path: Path) -> None:
    target = tmp_path / "ttyACM0"
    target.touch()
    (tmp_path / "by-id").mkdir()
    link = tmp_path / "by-id" / "usb-Nordic_Thingy91-if01"
    link.symlink_to(target)
    assert ports.by_id_names(str(tmp_path / "by-id")) == {str(target): str(link)}
    assert ports.by_id_names(str(tmp_path / "missing")) == {}


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="sim7080") as fake:
        yield fake


def _args(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ports.configure(parser)
    return parser.parse_args(list(words))


async def _run(args: argparse.Namespace) -> int:
    # run() drives its own event loop for --probe; keep the fake's loop free meanwhile.
    return await asyncio.to_thread(ports.run, args)


async def test_listing_shows_usb_ids_serial_and_by_id_name(
    fake: FakeModem, tmp_path: Path, mocker: MockerFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "usb-SIMCOM_SIM7080-if02"
    link.symlink_to(Path(fake.port).resolve())  # noqa: ASYNC240 - a local symlink, instant
    mocker.patch.object(ports, "BY_ID_DIR", str(tmp_path))
    mocker.patch(
        "serial.tools.list_ports.comports",
        return_value=[
            _port(fake.port, 0x1E0E, 0x9206, "SN123"),
            _port("/dev/ttyS0", None, None, None),
        ],
    )
    assert await _run(_args("--json")) == 0
    listed = json.loads(capsys.readouterr().out)["ports"]
    by_device = {entry["device"]: entry for entry in listed}
    entry = by_device[fake.port]
    assert entry["vid"] == "1e0e" and entry["pid"] == "9206"
    assert entry["serial_number"] == "SN123"
    assert entry["by_id"] == str(link)
    assert "SIM7080" in entry["guess"]
    assert entry["probe"] is None
    assert by_device["/dev/ttyS0"]["guess"] is None
    assert by_device["/dev/ttyS0"]["description"] is None  # pyserial's "n/a" is no description

    assert await _run(_args()) == 0
    table = capsys.readouterr().out
    assert "1e0e:9206" in table and "usb-SIMCOM_SIM7080-if02" in table
    assert "survive re-plugging" in table


async def test_probe_asks_the_modem_who_it_is(
    fake: FakeModem, mocker: MockerFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    mocker.patch(
        "serial.tools.list_ports.comports",
        return_value=[_port(fake.port, 0x10C4, 0xEA60, None)],
    )
    assert await _run(_args("--probe", "--json")) == 0
    (entry,) = json.loads(capsys.readouterr().out)["ports"]
    assert entry["probe"]["dialect"] == "sim7080"
    assert entry["probe"]["model"] == fake.dialect.identity.model
    assert "CP210x" in entry["guess"]


async def test_probe_of_a_port_that_does_not_answer_says_so(
    tmp_path: Path, mocker: MockerFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    mocker.patch("serial.tools.list_ports.comports", return_value=[])
    missing = str(tmp_path / "ttyUSB9")
    assert await _run(_args("--probe", "--port", missing, "--json")) == 0
    (entry,) = json.loads(capsys.readouterr().out)["ports"]
    assert entry["device"] == missing
    assert entry["probe"]["error"]


async def test_no_ports_says_where_modems_appear(
    mocker: MockerFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    mocker.patch("serial.tools.list_ports.comports", return_value=[])
    assert await _run(_args()) == 0
    assert "no serial ports found" in capsys.readouterr().err
