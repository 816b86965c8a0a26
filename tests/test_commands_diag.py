"""``atbridge diag`` end to end: the fake modem on a real pty, a real local mosquitto.

Each run goes through the command's own parser and coroutine (``diag._main``, as
``test_commands_info`` runs ``info``) on the test's event loop, which also serves the fake,
so the fake's state and command log can be checked afterwards: that ``--no-attach`` sent no
command that changes the modem, that the radio was put back as found. The usage errors go
through :func:`atbridge.cli.main`, and ``--help`` runs in a child process (rich must not be
imported). Every wait is bounded by the fake's short registration delay and ``--timeout``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atbridge.cli import build_parser, main
from atbridge.commands import diag as diag_command
from atbridge.diag import LAYERS
from tests.brokers import Certificates, Mosquitto, free_port
from tests.fakes import FakeModem
from tests.fakes.loopback import add_host

ROOT = Path(__file__).resolve().parent.parent
DIALECTS = ("nrf91-slm", "nrf91-sm", "sim7000", "sim7080", "sim7600")
#: Commands that only read (or set up the AT channel itself, as every command does).
CHANNEL_SETUP = {"AT", "ATE0", "AT+CMEE=1", "AT+CGSN=1", "AT+CGCONTRDP=0"}


def changes_state(command: str) -> bool:
    """A command line that sets something (``AT+CFUN=1``, ``AT#XSOCKET=1,1,0``...)."""
    return "=" in command and not command.endswith("=?") and command not in CHANNEL_SETUP


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


async def run_diag(
    capsys: pytest.CaptureFixture[str], fake: FakeModem, *options: str
) -> tuple[int, dict[str, Any]]:
    """``atbridge diag --json`` on ``fake``: the exit code and the report."""
    capsys.readouterr()
    args = build_parser().parse_args(
        ["diag", "--port", fake.port, "--json", "--timeout", "5", "--attach-timeout", "5", *options]
    )
    code = await diag_command._main(args)
    return code, json.loads(capsys.readouterr().out)


def layer(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in report["layers"] if entry["name"] == name)


def step(report: dict[str, Any], layer_name: str, name: str) -> dict[str, Any]:
    return next(entry for entry in layer(report, layer_name)["steps"] if entry["name"] == name)


def check_timings(report: dict[str, Any]) -> None:
    """Every offset and duration >= 0; steps in order within a layer; answers within steps."""
    for entry in report["layers"]:
        assert entry["started_s"] >= 0 and entry["duration_s"] >= 0
        starts = [s["started_s"] for s in entry["steps"]]
        assert starts == sorted(starts), entry["name"]
        for item in entry["steps"]:
            assert item["started_s"] >= 0 and item["duration_s"] >= 0
            begins = [a["started_s"] for a in item["answers"]]
            assert begins == sorted(begins)
            for answer in item["answers"]:
                assert answer["duration_s"] >= 0
                assert answer["started_s"] >= item["started_s"] - 0.001
                assert (
                    answer["started_s"] + answer["duration_s"]
                    <= item["started_s"] + item["duration_s"] + 0.002
                )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_all_good_is_online_on_every_dialect(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, cfun=0) as fake:
        broker_at = f"127.0.0.1:{broker.port}"
        code, report = await run_diag(
            capsys, fake, "--broker", broker_at, "--echo-topic", f"diag/{dialect}"
        )
        assert fake.state.cfun == 0  # put back as found
        assert fake.state.cereg_n == 0
    assert code == 0, report["verdict"]
    verdict = report["verdict"]
    assert verdict["status"] == "online" and verdict["layer"] is None
    ping = step(report, "mqtt", "ping")["fields"]["round_trip_ms"]
    echo = step(report, "mqtt", "echo")["fields"]["round_trip_ms"]
    assert verdict["text"].startswith(f"online: MQTT round trip {ping:g} ms, echo {echo:g} ms")
    assert report["port"] == fake.port and report["dialect"] == dialect
    assert [entry["name"] for entry in report["layers"]] == list(LAYERS)
    assert all(entry["status"] in ("ok", "warn") for entry in report["layers"])
    check_timings(report)
    probe = step(report, "device", "probe")
    assert probe["fields"]["dialect"] == dialect
    assert probe["fields"]["manufacturer"] == fake.identity.manufacturer
    sim = step(report, "device", "sim")
    assert sim["fields"]["pin_state"] == "READY"
    assert any(fake.identity.imsi in line for a in sim["answers"] for line in a["raw"])
    power = step(report, "device", "power")
    assert power["answers"][0]["command"] == "AT+CFUN?"
    assert power["fields"]["functional_mode"] == 0
    assert step(report, "radio", "functional_mode")["fields"]["functional_mode"] == 1
    attach = step(report, "network", "attach")
    assert attach["status"] == "ok" and attach["fields"]["radio_was_on"] is False
    assert attach["fields"]["registered_after_s"] >= 0
    registration = step(report, "network", "registration")
    assert registration["fields"]["registered"] is True
    assert registration["fields"]["registered_after_s"] == attach["fields"]["registered_after_s"]
    assert registration["answers"] and registration["answers"][0]["raw"]
    resolve = step(report, "internet", "resolve")
    assert resolve["fields"] == {"host": "127.0.0.1", "addresses": ["127.0.0.1"]}
    opened = step(report, "internet", "open_socket")["fields"]
    assert opened == {"host": "127.0.0.1", "port": broker.port, "tls": False}
    connack = step(report, "mqtt", "mqtt_connect")
    assert connack["fields"]["return_code"] == 0
    for entry in report["layers"][:3]:  # the read layers keep every raw answer
        for item in entry["steps"]:
            for answer in item["answers"]:
                assert set(answer) == {
                    "command",
                    "started_s",
                    "duration_s",
                    "raw",
                    "final",
                    "fields",
                    "error",
                }
    assert "AT+CFUN=1 (radio on; it was CFUN=0)" in report["changes"]
    assert "restored: AT+CFUN=0" in report["changes"]
    assert any(change.startswith("socket opened to 127.0.0.1:") for change in report["changes"])


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7600"])
async def test_no_attach_leaves_the_modem_unchanged(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, cfun=0) as fake:
        code, report = await run_diag(
            capsys, fake, "--no-attach", "--broker", f"127.0.0.1:{broker.port}"
        )
        assert fake.state.cfun == 0
        assert [c for c in fake.commands if changes_state(c)] == []
    assert code == 3
    assert report["verdict"]["text"] == "radio: the radio is off (CFUN=0, minimum functionality)"
    assert report["verdict"]["hint"] == "run without --no-attach, or send AT+CFUN=1"
    assert report["changes"] == []
    registration = step(report, "network", "registration")
    assert registration["fields"]["registered"] is False  # reported as it is
    for name in ("internet", "mqtt"):
        assert layer(report, name)["status"] == "skipped"
        assert layer(report, name)["verdict"] == "--no-attach is read only"
    check_timings(report)


async def test_no_attach_on_a_registered_modem_reports_it_online_as_far_as_it_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Powered on in CFUN=1 with no registration delay: registered before the first query.
    async with FakeModem(dialect="sim7080", registration_delay=0.0) as fake:
        code, report = await run_diag(capsys, fake, "--no-attach")
        assert [c for c in fake.commands if changes_state(c)] == []
    assert code == 0, report["verdict"]
    assert report["verdict"]["status"] == "ok"
    assert step(report, "network", "registration")["status"] == "ok"


async def test_steps_stops_after_the_named_layer(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeModem(dialect="sim7080", registration_delay=0.0) as fake:
        code, report = await run_diag(capsys, fake, "--steps", "device,radio")
        assert not any(changes_state(c) for c in fake.commands)  # no attach: network not asked
    assert code == 0
    assert [layer(report, n)["status"] for n in ("network", "internet", "mqtt")] == ["skipped"] * 3
    assert layer(report, "network")["verdict"] == "not asked (--steps)"
    assert report["verdict"]["text"].startswith("no problem found up to radio")
    assert step(report, "radio", "signal")["status"] in ("ok", "warn")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_dns_failure_names_the_internet_layer(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        code, report = await run_diag(capsys, fake, "--broker", f"broker.invalid:{broker.port}")
    assert code == 3
    verdict = report["verdict"]
    assert verdict["layer"] == "internet"
    assert verdict["text"].startswith("internet: DNS lookup of broker.invalid failed")
    assert verdict["hint"] == "check the APN's DNS servers or use the broker's IP address"
    assert step(report, "internet", "resolve")["status"] == "fail"
    assert layer(report, "mqtt")["steps"][0]["verdict"] == "skipped: the internet layer failed"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_unreachable_broker_fails_the_tcp_connect(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        add_host(fake, "broker.test")
        code, report = await run_diag(capsys, fake, "--broker", f"broker.test:{closed}")
    assert code == 3
    verdict = report["verdict"]
    assert verdict["layer"] == "internet"
    assert verdict["text"].startswith(f"internet: TCP connect to broker.test:{closed} failed")
    assert "port" in verdict["hint"]
    assert step(report, "internet", "resolve")["fields"]["addresses"] == ["127.0.0.1"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_refused_connack_names_the_mqtt_layer_and_exits_4(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Mosquitto(users={"dev1": "right-password"}) as secured:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            code, report = await run_diag(
                capsys,
                fake,
                "--broker",
                f"127.0.0.1:{secured.port}",
                "--username",
                "dev1",
                "--password",
                "wrong-password",
            )
    assert code == 4
    verdict = report["verdict"]
    assert verdict["layer"] == "mqtt"
    assert verdict["text"].startswith("mqtt: the broker refused the connection")
    assert "password" in verdict["hint"]
    connect = step(report, "mqtt", "mqtt_connect")
    assert connect["error"] == "ConnectRefused"
    assert "wrong-password" not in json.dumps(report)


@pytest.mark.parametrize("dialect", ["nrf91-sm", "sim7000"])
async def test_no_sim_is_the_device_layer(dialect: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, sim=False) as fake:
        code, report = await run_diag(capsys, fake)
        assert "AT+CFUN=1" not in fake.commands  # no attach without a SIM
    assert code == 3
    assert report["verdict"]["text"] == "device: no SIM (SIM not inserted)"
    assert step(report, "network", "attach")["status"] == "skipped"


# -- the command line ------------------------------------------------------------------------


def test_help_imports_neither_rich_nor_asyncio() -> None:
    probe = (
        "import sys\n"
        "from atbridge.cli import main\n"
        "for argv in (['--help'], ['diag', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('rich', 'asyncio', 'serial', 'transitions')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, cwd=ROOT
    ).stdout
    assert "usage: atbridge diag" in out
    assert "--no-attach" in out and "--echo-topic" in out
    assert "LOADED []" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "/dev/atbridge-no-such-port"], "/dev/atbridge-no-such-port"),
        (["--port", "/dev/null", "--steps", "radio,bogus"], "bogus is not a layer"),
        (["--port", "/dev/null", "--no-attach", "--apn", "iot"], "--apn"),
        (["--port", "/dev/null", "--no-attach", "--echo-topic", "t"], "--echo-topic"),
        (["--port", "/dev/null", "--broker", "h", "--echo-topic", "a/#"], "a/#"),
    ],
)
def test_bad_options_are_a_clear_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diag", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


# -- the fakes' field scenarios (tests/fakes/scenarios.py) --------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_deny_names_the_network_layer_and_the_cause(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, cfun=0, deny=15) as fake:
        code, report = await run_diag(capsys, fake)
        assert fake.state.cfun == 0
    assert code == 3
    assert report["verdict"]["text"] == (
        "network: registration denied (EMM cause 15: No suitable cells in tracking area)"
    )
    assert "band lock" in report["verdict"]["hint"]
    registration = step(report, "network", "registration")["fields"]
    assert (registration["stat"], registration["reject_cause"]) == (3, 15)
    assert registration["cause_type"] == 0


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_no_service_is_the_radio_layer(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, no_service=True) as fake:
        code, report = await run_diag(capsys, fake, "--attach-timeout", "0.3")
    assert code == 3
    verdict = report["verdict"]
    assert verdict["layer"] == "radio"
    assert verdict["text"] in (
        "radio: no signal: the modem measures no cell",
        "radio: no service: the modem finds no cell",
    )
    assert "antenna" in verdict["hint"]
    assert step(report, "network", "attach")["error"] == "StepTimeout"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_roaming_is_online_with_a_warning(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, roaming=True) as fake:
        code, report = await run_diag(capsys, fake, "--broker", f"127.0.0.1:{broker.port}")
    assert code == 0
    verdict = report["verdict"]
    assert verdict["status"] == "online"
    assert "(warnings: network: registered, roaming" in verdict["text"]
    registration = step(report, "network", "registration")
    assert registration["status"] == "warn"
    assert registration["fields"]["roaming"] is True
    assert registration["fields"]["plmn"] != "26201"  # the visited network, not the home one


@pytest.mark.parametrize("dialect", ["nrf91-slm", "nrf91-sm", "sim7000", "sim7080"])
async def test_scenario_nbiot_reports_act_9(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, cfun=0, rat="nbiot") as fake:
        code, report = await run_diag(capsys, fake, "--steps", "network")
    assert code == 0, report["verdict"]
    assert step(report, "network", "registration")["fields"]["act"] == 9


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7080"])
async def test_scenario_psm_granted_differs_from_requested(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device asked for PSM (T3412 ext 1 h, T3324 1 min); the network grants 20 s / 1 h."""
    from atbridge.modem import Modem

    grant = ("00001010", "00100001")  # T3324 10 x 2 s, T3412 ext 1 x 1 h
    async with FakeModem(dialect=dialect, registration_delay=0.05, cfun=0, psm_grant=grant) as fake:
        async with await Modem.open(fake.port) as modem:
            await modem.command('AT+CPSMS=1,,,"00100001","00100001"')
        code, report = await run_diag(capsys, fake, "--steps", "network")
    assert code == 0, report["verdict"]
    psm = step(report, "network", "psm")["fields"]
    assert psm["requested_active_time_s"] == 60
    assert psm["granted_active_time_s"] == 20
    assert psm["requested_periodic_tau_s"] == psm["granted_periodic_tau_s"] == 3600


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_dns_fail_is_the_internet_layer(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, dns_fail=True) as fake:
        add_host(fake, "broker.test")
        code, report = await run_diag(capsys, fake, "--broker", f"broker.test:{broker.port}")
    assert code == 3
    assert report["verdict"]["text"].startswith("internet: DNS lookup of broker.test failed")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_broker_unreachable_is_the_internet_layer(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, broker_unreachable=True) as fake:
        code, report = await run_diag(capsys, fake, "--broker", f"127.0.0.1:{broker.port}")
    assert code == 3
    assert report["verdict"]["text"].startswith(
        f"internet: TCP connect to 127.0.0.1:{broker.port} failed"
    )
    assert step(report, "internet", "resolve")["status"] == "ok"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scenario_connack_refused_is_the_mqtt_layer(
    dialect: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05, connack_refused=5) as fake:
        code, report = await run_diag(capsys, fake, "--broker", f"127.0.0.1:{broker.port}")
    assert code == 4
    verdict = report["verdict"]
    assert verdict["text"] == "mqtt: the broker refused the connection: not authorized (code 5)"
    assert "check the user name and password" in verdict["hint"]


class Terminal(io.StringIO):
    """A stdout that says it is a terminal: diag shows live progress and rich tables."""

    def isatty(self) -> bool:
        return True


async def test_on_a_terminal_the_report_is_rich_tables_under_the_verdict(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "200")
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        args = build_parser().parse_args(
            ["diag", "--port", fake.port, "--broker", f"127.0.0.1:{broker.port}"]
        )
        assert await diag_command._main(args) == 0
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # colours, cursor
    first = next(line for line in out.splitlines() if line.startswith("verdict:"))
    assert first.startswith("verdict: online: MQTT round trip ")
    for name in LAYERS:
        assert f"{name}: ok" in out or f"{name}: warn" in out
    assert "rsrp_dbm -78 dBm  excellent" in out  # a value with its rating
    assert "restored: AT+CFUN=0" in out


async def test_not_a_terminal_the_report_is_plain_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with FakeModem(dialect="sim7080", registration_delay=0.0) as fake:
        args = build_parser().parse_args(["diag", "--port", fake.port, "--steps", "network"])
        assert await diag_command._main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("verdict: no problem found up to network")
    assert any(line.startswith("network   ok") for line in lines)
    assert "\x1b" not in "\n".join(lines)  # no live status, no colour


# -- host-side TLS ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7080"])
async def test_tls_to_the_broker_is_online_with_an_echo(
    dialect: str,
    tls_broker: Mosquitto,
    certs: Certificates,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        code, report = await run_diag(
            capsys, fake, "--broker", f"localhost:{tls_broker.port}", "--tls",
            "--cafile", str(certs.cafile), "--echo-topic", f"diag/tls/{dialect}",
        )  # fmt: skip
    assert code == 0, report["verdict"]
    assert report["verdict"]["status"] == "online"
    opened = step(report, "internet", "open_socket")["fields"]
    assert opened == {"host": "localhost", "port": tls_broker.port, "tls": True}
    assert step(report, "mqtt", "echo")["status"] == "ok"


async def test_a_ca_that_did_not_sign_the_broker_fails_the_socket_with_its_hint(
    tls_broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Certificates()
    try:
        async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
            code, report = await run_diag(
                capsys, fake, "--broker", f"localhost:{tls_broker.port}", "--tls",
                "--cafile", str(other.cafile),
            )  # fmt: skip
    finally:
        other.remove()
    assert code == 3
    verdict = report["verdict"]
    assert verdict["layer"] == "internet"
    assert "not signed by a CA you trust" in verdict["text"]
    assert "--cafile" in verdict["hint"]
    assert step(report, "internet", "open_socket")["error"] == "TlsRefused"
