"""``atbridge watch`` (atbridge/watch.py, atbridge/commands/watch.py).

The pure part from byte strings (answers and notification lines as the modems print
them, per 3GPP TS 27.007 and the vendors' AT references); then the command end to end
on every dialect against the fake modem on a real pty: the JSON lines checked field by
field against the fake's network and signal, a scripted RSRP series, a handover, the
notifications, ``--output``, and ``--mqtt-rtt`` through a real local mosquitto.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from atbridge.commands import watch as watch_command
from atbridge.diagnostics import decode_answer
from atbridge.modem import Modem
from atbridge.survey import Answer
from atbridge.watch import (
    CellTracker,
    Plan,
    SettingChange,
    enable_notifications,
    iso_time,
    json_line,
    notification_prefixes,
    restore_notifications,
    sample_record,
    setting_name,
    urc_record,
    watch,
)
from tests.brokers import Mosquitto
from tests.fakes import FakeModem

DIALECTS = ("nrf91-slm", "nrf91-sm", "sim7000", "sim7080", "sim7600")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WAIT = 30.0  # the bound on any one wait
ROOT = Path(__file__).resolve().parent.parent


def answer(command: str, *lines: str, final: str = "OK", decode: bool = True) -> Answer:
    """An Answer as atbridge.survey.ask builds it from the modem's lines."""
    fields = decode_answer(command, lines) if decode and final == "OK" else None
    error = None if final == "OK" else final
    return Answer(command, 0.0, 0.01, tuple(lines), final, fields, error)


# -- the pure part ---------------------------------------------------------------------------


def test_a_sample_merges_signal_and_registration_into_the_vocabulary() -> None:
    """+CESQ (TS 27.007 §8.69) and the +CEREG read form at level 2 (§10.1.22)."""
    record = sample_record(
        [answer("AT+CESQ", "+CESQ: 99,99,255,255,31,62")],
        [answer("AT+CEREG?", '+CEREG: 2,1,"0A1B","01A2B3C4",7')],
        t_s=1.2345,
        wall=1_700_000_000.5,
    )
    assert record["time"] == "2023-11-14T22:13:20.500Z"
    assert record["t_s"] == 1.234 or record["t_s"] == 1.235  # rounded to the millisecond
    assert record["kind"] == "sample"
    assert record["rsrp_dbm"] == -78 and record["rsrp_index"] == 62
    assert record["rsrq_db"] == -4.0 and record["rsrq_index"] == 31
    assert record["stat"] == 1 and record["registered"] is True and record["roaming"] is False
    assert record["tac"] == "0A1B" and record["tac_int"] == 0x0A1B
    assert record["cell_id"] == "01A2B3C4" and record["cell_id_int"] == 0x01A2B3C4
    assert record["act"] == 7
    assert record["registration_source"] == "+CEREG"
    assert "n" not in record  # the reporting level is a setting, not a measurement
    assert record["raw"] == ["+CESQ: 99,99,255,255,31,62", '+CEREG: 2,1,"0A1B","01A2B3C4",7']
    assert "errors" not in record
    assert list(record)[:3] == ["time", "t_s", "kind"]


def test_the_registration_that_counts_is_the_first_registered_source() -> None:
    """A SIM7000 on GPRS: +CEREG says not registered, +CGREG registered (AcT 0)."""
    record = sample_record(
        [answer("AT+CSQ", "+CSQ: 20,99")],
        [
            answer("AT+CEREG?", "+CEREG: 0,0"),
            answer("AT+CGREG?", '+CGREG: 2,1,"1A2B","00C0FFEE",0'),
        ],
        t_s=0.0,
        wall=0.0,
    )
    assert record["registration_source"] == "+CGREG"
    assert record["stat"] == 1 and record["registered"] is True
    assert record["act"] == 0 and record["cell_id"] == "00C0FFEE"
    assert record["rssi_dbm"] == -73 and record["rssi_index"] == 20


def test_a_refused_or_undecoded_query_is_kept_with_its_reason() -> None:
    undecoded = Answer("AT+XYZ?", 0.0, 0.0, ("+XYZ: 1,2",), "OK", None, "not decoded: +XYZ")
    record = sample_record(
        [answer("AT%XMONITOR", final="ERROR"), undecoded],
        [answer("AT+CEREG?", "+CEREG: 0,4")],
        t_s=0.0,
        wall=0.0,
    )
    assert record["errors"] == {"AT%XMONITOR": "ERROR", "AT+XYZ?": "not decoded: +XYZ"}
    assert record["raw"] == ["+XYZ: 1,2", "+CEREG: 0,4"]
    assert record["stat"] == 4 and record["registered"] is False


def test_a_notification_is_decoded_in_its_urc_form() -> None:
    """+CEREG URC at level 2: ``+CEREG: <stat>,"<tac>","<ci>",<AcT>`` (no <n>)."""
    record = urc_record('+CEREG: 5,"0A1B","01A2B3C5",9', t_s=2.0, wall=0.0)
    assert record["kind"] == "urc" and record["urc"] == "+CEREG"
    assert record["stat"] == 5 and record["registered"] and record["roaming"]
    assert record["cell_id"] == "01A2B3C5" and record["act"] == 9
    assert record["raw"] == ['+CEREG: 5,"0A1B","01A2B3C5",9']
    assert "n" not in record
    rrc = urc_record("+CSCON: 1", t_s=3.0, wall=0.0)
    assert rrc["urc"] == "+CSCON" and rrc["rrc_state"] == 1


def test_a_notification_that_does_not_decode_keeps_its_line() -> None:
    record = urc_record("#XUNKNOWN: 7,abc", t_s=1.0, wall=0.0)
    assert record["urc"] == "#XUNKNOWN"
    assert record["error"].startswith("not decoded")
    assert record["raw"] == ["#XUNKNOWN: 7,abc"]


def test_a_cell_change_is_marked_with_the_previous_cell() -> None:
    tracker = CellTracker()
    first = tracker.mark({"cell_id": "01A2B3C4", "cell_id_int": 0x01A2B3C4})
    same = tracker.mark({"cell_id": "1A2B3C4", "cell_id_int": 0x01A2B3C4})  # 7 digits
    unknown = tracker.mark({"cell_id": "FFFFFFFF", "cell_id_int": 0xFFFFFFFF})
    none = tracker.mark({"rsrp_dbm": -90})
    moved = tracker.mark({"cell_id": "01A2B3C5", "cell_id_int": 0x01A2B3C5})
    assert [r["handover"] for r in (first, same, unknown, none, moved)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert moved["previous_cell_id"] == "1A2B3C4"
    assert "previous_cell_id" not in first


def test_records_are_one_json_line_each() -> None:
    record = urc_record('+CEREG: 1,"0A1B","01A2B3C5",7', t_s=0.5, wall=0.0)
    line = json_line(record)
    assert "\n" not in line
    assert json.loads(line) == record
    assert iso_time(0.0) == "1970-01-01T00:00:00.000Z"


def test_the_notifications_listened_for_come_from_the_settings() -> None:
    assert setting_name("AT%CESQ=1") == "%CESQ"
    assert setting_name("AT+CSCON=1") == "+CSCON"
    assert setting_name("AT+CESQ") is None
    assert notification_prefixes(("AT%CESQ=1", "AT%MDMEV=1"), ("+CEREG",)) == (
        "+CEREG",
        "+CGREG",
        "+CREG",
        "%CESQ",
        "%MDMEV",
    )


# -- against the fake ------------------------------------------------------------------------


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(parents=watch_command.parents())
    watch_command.configure(parser)
    return parser.parse_args(list(argv))


def read_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, "no line was written"
    return [json.loads(line) for line in lines]


def check_header(records: list[dict[str, Any]]) -> None:
    times = [r["t_s"] for r in records]
    assert times == sorted(times)
    for record in records:
        assert ISO.match(record["time"]), record["time"]
        assert record["kind"] in ("sample", "urc")
        assert isinstance(record["raw"], list) and record["raw"]
        assert isinstance(record["handover"], bool)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_watch_writes_samples_on_every_dialect(
    dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three samples with --count: each line JSON, the fields those of the fake's cell."""
    out = tmp_path / "watch.jsonl"
    async with FakeModem(dialect=dialect) as fake:
        fake.set_signal(57, 25)  # RSRP -83 dBm, RSRQ -7 dB
        fake.set_registration(1)
        args = parse_args("--port", fake.port, "--interval", "0.01", "--count", "3", "-o", str(out))
        assert await watch_command._main(args) == 0
        network = fake.network
    records = read_lines(out)
    check_header(records)
    samples = [r for r in records if r["kind"] == "sample"]
    assert len(samples) == 3
    for sample in samples:
        assert sample["stat"] == 1 and sample["registered"] is True
        assert sample["roaming"] is False
        assert sample["registration_source"] in ("+CEREG", "+CGREG", "+CREG")
        assert sample["rsrp_dbm"] == 57 - 140
        assert sample["cell_id_int"] == int(network.ci, 16)
        assert sample["tac_int"] == int(network.tac, 16)
        assert sample["handover"] is False
    err = capsys.readouterr().err
    assert "watch turned on the modem's notifications" in err


async def test_a_scripted_rsrp_series_appears_in_order() -> None:
    """The fake's signal stepped after each sample: the samples follow it in order."""
    series = [-85, -97, -104, -92, -110]
    async with FakeModem(dialect="nrf91-slm") as fake:
        fake.set_registration(1)
        fake.set_signal(series[0] + 140, 25)
        async with await Modem.open(fake.port) as modem:
            steps = iter(series[1:])
            records: list[dict[str, Any]] = []

            def emit(record: dict[str, Any]) -> None:
                records.append(record)
                if record["kind"] == "sample":
                    step = next(steps, None)
                    if step is not None:
                        fake.set_signal(step + 140, 25)

            plan = Plan(("AT+CESQ",), ("+CEREG",), ("+CEREG",), interval=0.01, count=5)
            assert await watch(modem, plan, emit) == 5
    assert [r["rsrp_dbm"] for r in records if r["kind"] == "sample"] == series


async def test_a_handover_and_the_notifications_are_recorded() -> None:
    """+CEREG URCs (level 5 after watch turned reports on) are ``urc`` records; the cell
    change they carry is marked, and the next sample on the new cell is not."""
    async with FakeModem(dialect="nrf91-slm") as fake:
        fake.set_registration(1)
        async with await Modem.open(fake.port) as modem:
            changes = await enable_notifications(modem, sources=("+CEREG",), commands=())
            assert [c.command for c in changes] == ["AT+CEREG=5"]
            records: list[dict[str, Any]] = []
            samples = 0

            def emit(record: dict[str, Any]) -> None:
                nonlocal samples
                records.append(record)
                if record["kind"] == "sample":
                    samples += 1
                    if samples == 2:
                        fake.set_registration(1, ci="0BADCAFE")
                    if samples == 4:
                        fake.set_registration(5, ci="0BADCAFE")

            plan = Plan(("AT+CESQ",), ("+CEREG",), ("+CEREG",), interval=0.01, count=6)
            await watch(modem, plan, emit)
            assert await restore_notifications(modem, changes) == []
            assert fake.state.level("+CEREG") == 0
    check_header(records)
    urcs = [r for r in records if r["kind"] == "urc"]
    assert [u["urc"] for u in urcs] == ["+CEREG", "+CEREG"]
    assert urcs[0]["cell_id"] == "0BADCAFE" and urcs[0]["handover"] is True
    assert urcs[0]["previous_cell_id"] == "01234567"
    assert urcs[1]["stat"] == 5 and urcs[1]["roaming"] is True
    assert urcs[1]["handover"] is False
    samples_after = [r for r in records if r["kind"] == "sample"][2:]
    assert all(s["cell_id"] == "0BADCAFE" and not s["handover"] for s in samples_after)


async def test_a_setting_is_set_back_to_what_it_was() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake, await Modem.open(fake.port) as modem:
        await modem.command("AT+CEREG=2")
        changes = await enable_notifications(modem, sources=("+CEREG",), commands=("AT+CSCON=1",))
        assert changes == [
            SettingChange("AT+CEREG=5", "AT+CEREG=2"),
            SettingChange("AT+CSCON=1", "AT+CSCON=0"),
        ]
        assert fake.state.level("+CEREG") == 5
        assert await restore_notifications(modem, changes) == []
        assert fake.state.level("+CEREG") == 2


async def test_no_notifications_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    async with FakeModem(dialect="sim7080") as fake:
        fake.set_registration(1)
        args = parse_args(
            "--port", fake.port, "--interval", "0.01", "--count", "2", "--no-notifications",
            "-o", str(out),
        )  # fmt: skip
        assert await watch_command._main(args) == 0
        sent = list(fake.commands)
    setup = {"ATE0", "AT+CMEE=1"}  # the AT channel's own session setup on its first sync
    assert not [c for c in sent if "=" in c and c not in setup], sent  # reads only
    assert len([r for r in read_lines(out) if r["kind"] == "sample"]) == 2


async def test_stdout_gets_the_lines_without_output(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeModem(dialect="nrf91-sm") as fake:
        args = parse_args("--port", fake.port, "--interval", "0.01", "--count", "1")
        assert await watch_command._main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    record = json.loads(lines[-1])
    assert record["kind"] == "sample" and record["stat"] == 0 and record["registered"] is False


@pytest.fixture(scope="module")
def mosquitto() -> Any:
    with Mosquitto() as broker:
        yield broker


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_mqtt_rtt_adds_a_ping_round_trip(
    dialect: str, mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rtt.jsonl"
    async with FakeModem(dialect=dialect) as fake:
        args = parse_args(
            "--port", fake.port, "--dialect", dialect, "--broker", f"127.0.0.1:{mosquitto.port}",
            "--mqtt-rtt", "--interval", "0.01", "--count", "2", "-o", str(out),
        )  # fmt: skip
        assert await watch_command._main(args) == 0
        cfun_after, boot_cfun = fake.state.cfun, fake.dialect.boot_cfun
    samples = [r for r in read_lines(out) if r["kind"] == "sample"]
    assert len(samples) == 2
    for sample in samples:
        assert isinstance(sample["mqtt_rtt_ms"], float) and sample["mqtt_rtt_ms"] >= 0
        assert "mqtt_error" not in sample
        assert sample["registered"] is True
    err = capsys.readouterr().err
    assert "mqtt-rtt: online" in err
    assert cfun_after == boot_cfun  # the radio left as it was found


def test_mqtt_rtt_needs_a_broker_and_an_interval_below_the_keep_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from atbridge.errors import ConfigurationError

    for name in [n for n in os.environ if n.startswith("ATBRIDGE_")]:
        monkeypatch.delenv(name)
    no_broker = parse_args("--port", "/dev/null", "--mqtt-rtt")
    with pytest.raises(ConfigurationError, match="no broker given"):
        asyncio.run(watch_command._main(no_broker))
    slow = ["--interval", "10", "--keepalive", "5", "--broker", "127.0.0.1:1"]
    too_slow = parse_args("--port", "/dev/null", "--mqtt-rtt", *slow)
    with pytest.raises(ConfigurationError, match="keep alive"):
        asyncio.run(watch_command._main(too_slow))


async def test_the_nrf91_notifications_are_urc_records() -> None:
    """With the nRF91's notifications on (AT%CESQ=1, AT%MDMEV=1, AT+CSCON=1 and +CEREG=5),
    the radio coming up and the signal changing arrive as decoded ``urc`` records."""
    from atbridge.dialects import dialect_class

    nrf91 = dialect_class("nrf91-slm")
    async with FakeModem(dialect="nrf91-slm") as fake, await Modem.open(fake.port) as modem:
        changes = await enable_notifications(
            modem, sources=("+CEREG",), commands=nrf91.watch_notifications
        )
        assert [c.command for c in changes] == [
            "AT+CEREG=5",
            "AT%CESQ=1",
            "AT%MDMEV=1",
            "AT+CSCON=1",
        ]
        records: list[dict[str, Any]] = []
        samples = 0

        def emit(record: dict[str, Any]) -> None:
            nonlocal samples
            records.append(record)
            if record["kind"] == "sample":
                samples += 1
                if samples == 2:
                    fake.set_signal(40, 10)  # -100 dBm: a %CESQ notification

        prefixes = notification_prefixes(nrf91.watch_notifications, ("+CEREG",))
        plan = Plan(nrf91.sample_queries, ("+CEREG",), prefixes, interval=0.01, count=3)
        await modem.command("AT+CFUN=1")  # the radio on: +CEREG, %MDMEV, +CSCON follow
        await watch(modem, plan, emit)
        await restore_notifications(modem, changes)
    check_header(records)
    urcs = {r["urc"]: r for r in records if r["kind"] == "urc"}
    assert {"+CEREG", "%CESQ", "%MDMEV", "+CSCON"} <= set(urcs)
    assert urcs["+CEREG"]["stat"] == 1 and urcs["+CSCON"]["rrc_state"] == 1
    assert all("error" not in r for r in urcs.values())
    last = [r for r in records if r["kind"] == "urc" and r["urc"] == "%CESQ"][-1]
    assert last["rsrp_dbm"] == -100
    final = [r for r in records if r["kind"] == "sample"][-1]
    assert final["rsrp_dbm"] == -100 and final["band"] == fake.network.band
    assert final["pci"] == fake.network.pci and final["earfcn"] == fake.network.earfcn


async def test_duration_ends_the_watch(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    async with FakeModem(dialect="sim7600") as fake:
        args = parse_args(
            "--port", fake.port, "--interval", "0.02", "--duration", "0.1", "-o", str(out)
        )
        assert await watch_command._main(args) == 0
    assert [r for r in read_lines(out) if r["kind"] == "sample"]


async def test_sigterm_ends_it_cleanly_with_the_settings_set_back() -> None:
    """``python -m atbridge watch`` as a process: SIGTERM after two lines, exit 130, every
    line whole JSON, +CEREG reporting set back to the level it had."""
    import signal
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATBRIDGE_")}
    async with FakeModem(dialect="nrf91-sm") as fake:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "atbridge", "watch", "--port", fake.port,
            "--interval", "0.05",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(WAIT):
                first = [await proc.stdout.readline() for _ in range(2)]
                assert await fake.wait_for_command("AT+CEREG=5")
                proc.send_signal(signal.SIGTERM)
                rest, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        level = fake.state.level("+CEREG")
    assert proc.returncode == 130, err.decode()  # interrupted: no --count or --duration ended it
    lines = b"".join(first).decode().splitlines() + rest.decode().splitlines()
    assert all(json.loads(line)["kind"] in ("sample", "urc") for line in lines)
    assert "watch stopped by SIGTERM" in err.decode()
    assert level == 0


def test_the_live_summary_is_one_rewritten_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    sink = watch_command.Sink(None, tee=False, live=True)
    record = sample_record(
        [answer("AT+CESQ", "+CESQ: 99,99,255,255,31,62")],
        [answer("AT+CEREG?", '+CEREG: 2,5,"0A1B","01A2B3C4",7')],
        t_s=1.0,
        wall=0.0,
    )
    sink(CellTracker().mark(record))
    sink.close()
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rsrp_dbm"] == -78
    assert captured.err.startswith("\r\x1b[K")
    assert "RSRP -78 dBm excellent" in captured.err
    assert "cell 01A2B3C4" in captured.err and "registered (roaming)" in captured.err
    assert captured.err.endswith("\n")


async def test_a_signal_while_attaching_stops_it_and_turns_the_radio_back_off(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mqtt-rtt on a network that never registers: SIGTERM during the attach ends the
    watch (exit 0) and the radio it turned on is off again."""
    import signal

    async with FakeModem(dialect="nrf91-slm", registration_delay=3600) as fake:
        args = parse_args(
            "--port", fake.port, "--dialect", "nrf91-slm", "--mqtt-rtt",
            "--broker", f"127.0.0.1:{mosquitto.port}", "--interval", "0.01",
        )  # fmt: skip
        watching = asyncio.ensure_future(watch_command._main(args))
        try:
            async with asyncio.timeout(WAIT):
                await fake.wait_for_command("AT+CFUN=1")
                os.kill(os.getpid(), signal.SIGTERM)  # the watch's handler takes it
                assert await watching == 130
        finally:
            watching.cancel()
        assert fake.state.cfun == fake.dialect.boot_cfun == 0
    assert "watch stopped by SIGTERM before it was online" in capsys.readouterr().err
