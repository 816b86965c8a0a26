"""``atbridge diag``: why can't this device get online? Every layer, every step timed, a verdict.

Runs :mod:`atbridge.diag` on the modem the port options name: device, radio,
network (attach, registration on every source, reject cause, PSM/eDRX, PDP),
internet (data bearer, DNS of the broker, TCP) and MQTT (CONNACK, PINGREQ round
trip, ``--echo-topic``). The verdict line comes first: the first layer that
failed and what to try, or ``online: MQTT round trip N ms``.

Output: on a terminal, a live line says which step runs (``rich``, imported in
``run`` only, so ``--help`` stays instant), then the report: the verdict, and
per layer a table of its steps (status, start offset, duration, the key values
with their meaning and rating, the hint). ``--json`` (or not a terminal with
``--json``) prints ONE object and nothing live: ``verdict`` {status, layer,
text, hint, exit_code}, ``started_at``, ``port``, ``dialect``, ``changes``,
``layers`` [{name, status, started_s, duration_s, verdict, hint, steps
[{name, status, started_s, duration_s, answers [{command, started_s,
duration_s, raw, final, fields, error}], fields, verdict, hint, error}]}].

``--no-attach`` is read only (queries only; the internet and MQTT layers are
not run). Otherwise ``changes`` lists what diag changed, and what it could put
back is put back at the end unless ``--no-restore`` (see :mod:`atbridge.diag`).
Without a broker (``--broker`` / ``--credentials``) the internet and MQTT layers
are skipped and say so.

Exit codes: 0 no layer failed (warnings such as roaming allowed); 2 bad usage or
configuration, a port that cannot be opened; 3 the device, radio, network or
internet layer failed; 4 the broker refused the connection; 5 the failing step
timed out; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from atbridge.commands.options import bridge_options, output_options, positive_seconds

if TYPE_CHECKING:
    from atbridge.config import BridgeConfig
    from atbridge.diag import Options, Report
    from atbridge.modem import Modem

HELP = "diagnose why the device cannot get online: each layer and step timed, with a verdict"

LAYER_NAMES = ("device", "radio", "network", "internet", "mqtt")

EPILOG = """\
layers: device (identity, SIM, supply), radio (mode, RAT, band, signal, cell),
network (attach, registration and reject cause, PSM/eDRX, PDP, DNS servers),
internet (data bearer, DNS of the broker, TCP), mqtt (CONNACK, ping, echo).

--no-attach is read only: queries only, no radio on, no socket. Otherwise diag
says what it changed and puts back what it can (radio off again if it was off,
the notification levels) unless --no-restore.

example:
  atbridge diag --port /dev/ttyACM0 --broker broker.example:1883 --echo-topic diag/echo

exit codes: 0 no layer failed (warnings allowed), 2 bad usage or configuration,
  3 device/radio/network/internet layer failed, 4 broker refused, 5 the failing
  step timed out, 130 interrupted"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker, MQTT session, lifecycle; --json."""
    return [bridge_options(give_up_default=None), output_options(quiet=False, what="report")]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    diag = parser.add_argument_group("diagnostics")
    diag.add_argument(
        "--steps",
        metavar="LAYERS",
        help=f"comma-separated layers ({','.join(LAYER_NAMES)}): stop after the last one "
        "named (the layers before it run too: each needs the one before)",
    )
    diag.add_argument(
        "--no-attach",
        action="store_true",
        help="read only: never change the modem's state (no radio on, no data, no socket); "
        "registration is reported as it is",
    )
    diag.add_argument(
        "--no-restore",
        action="store_true",
        help="leave the modem as diag left it (radio on, notifications) instead of putting "
        "back what it changed",
    )
    diag.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="time limit of each step and query (default 30); registration waits "
        "--attach-timeout (default 600: a first scan can take minutes)",
    )
    diag.add_argument(
        "--echo-topic",
        metavar="T",
        help="after the ping, subscribe to T, publish to it and time the echo",
    )


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    return eventloop.run(_main(args))


def parse_layers(text: str | None) -> tuple[str, ...]:
    """``--steps radio,network`` as layer names, or a ConfigurationError naming the bad one."""
    from atbridge.errors import ConfigurationError

    if text is None:
        return LAYER_NAMES
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in LAYER_NAMES]
    if unknown or not names:
        raise ConfigurationError(
            f"--steps {text!r}: {', '.join(unknown) or 'no layer'} is not a layer",
            hint=f"name layers from: {', '.join(LAYER_NAMES)}",
        )
    return names


def diag_options(args: argparse.Namespace) -> tuple[Options, BridgeConfig | None]:
    """The run's :class:`~atbridge.diag.Options` and the bridge config (None: no broker)."""
    from atbridge.at_mqtt import validate_topic_name
    from atbridge.commands.settings import bridge_config, port_settings
    from atbridge.diag import Options
    from atbridge.errors import ConfigurationError

    layers = parse_layers(args.steps)
    if args.no_attach and args.apn is not None:
        raise ConfigurationError(
            "--apn changes the modem's PDP context: it cannot go with --no-attach",
            hint="drop --apn, or run without --no-attach",
        )
    if args.echo_topic is not None:
        if args.no_attach:
            raise ConfigurationError(
                "--echo-topic needs the MQTT layer, which --no-attach does not run",
                hint="drop --echo-topic, or run without --no-attach",
            )
        validate_topic_name(args.echo_topic)
    config: BridgeConfig | None = None
    reason, hint = "no broker given", "pass --broker HOST:PORT (or --credentials FILE)"
    try:
        config = bridge_config(args)
    except ConfigurationError as error:
        if args.broker is not None or args.credentials is not None:
            raise
        reason, hint = f"not run: {error.message}", error.hint or hint
    if config is not None:
        creds = config.credentials
        assert creds.host is not None
        broker: tuple[str, int, bool] | None = (creds.host, creds.port, creds.tls)
        port, dialect, apn = config.port, config.dialect, config.apn
        attach_timeout = config.timeouts.attach
    else:
        settings = port_settings(args)
        broker, port = None, settings.port
        dialect, apn = args.dialect or "auto", args.apn
        attach_timeout = args.attach_timeout or 600.0
    options = Options(
        port=port,
        dialect=dialect,
        read_only=args.no_attach,
        restore=not args.no_restore,
        layers=layers,
        timeout=args.timeout,
        attach_timeout=attach_timeout,
        apn=apn,
        broker=broker,
        no_broker_reason=reason,
        no_broker_hint=hint,
        echo_topic=args.echo_topic,
    )
    return options, config


async def _open(args: argparse.Namespace, config: BridgeConfig | None) -> Modem:
    from atbridge.commands.settings import open_modem
    from atbridge.steps import open_port

    if config is not None:
        return await open_port(config)
    return await open_modem(args)


async def _main(args: argparse.Namespace) -> int:
    options, config = diag_options(args)
    modem = await _open(args, config)
    live = not args.json and sys.stdout.isatty()
    try:
        if live:
            report = await _with_live_status(modem, options, config)
        else:
            from atbridge.diag import diagnose

            report = await diagnose(modem, options, config=config)
    finally:
        await modem.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif live:
        _print_rich(report)
    else:
        print(render_text(report))
    return report.verdict.exit_code


async def _with_live_status(modem: Modem, options: Options, config: BridgeConfig | None) -> Report:
    """The run with one live status line on the terminal (rich, imported here only)."""
    import time

    from rich.console import Console

    from atbridge.diag import diagnose

    console = Console()
    started = time.monotonic()
    with console.status("diag: starting") as status:

        def progress(text: str) -> None:
            status.update(f"[{time.monotonic() - started:6.1f}s] {text}")

        return await diagnose(modem, options, config=config, progress=progress)


# -- rendering ---------------------------------------------------------------------------


def key_values(fields: dict[str, Any], limit: int = 12) -> list[str]:
    """The step's scalar fields with their meaning and rating (``rsrp_dbm -87 dBm  fair``)."""
    from atbridge.diagnostics import describe_field

    shown: list[str] = []
    for name, value in fields.items():
        if value is None or name.endswith("_int") or name.endswith("_raw"):
            continue
        if isinstance(value, dict):
            shown.append(f"{name}: {len(value)} entries")
        elif isinstance(value, list):
            if value and all(isinstance(item, str | int | float) for item in value):
                shown.append(f"{name} {', '.join(str(item) for item in value)}")
            else:
                shown.append(f"{name}: {len(value)}")
        else:
            try:
                shown.append(f"{name} {describe_field(name, value, fields)}")
            except Exception:  # a value a describer does not expect: show it as it is
                shown.append(f"{name} {value}")
    if len(shown) > limit:
        shown = [*shown[:limit], f"... {len(shown) - limit} more (--json has all)"]
    return shown


def render_text(report: Report) -> str:
    """The report as plain text: verdict first, then each layer's steps."""
    lines = [f"verdict: {report.verdict.text}"]
    if report.verdict.hint:
        lines.append(f"  what to try: {report.verdict.hint}")
    lines.append(
        f"port {report.port}  dialect {report.dialect or 'unknown'}  started {report.started_at}"
    )
    for layer in report.layers:
        lines.append("")
        lines.append(
            f"{layer.name:<9} {layer.status:<7} {layer.started_s:8.3f} s  "
            f"{layer.duration_s:7.3f} s  {'' if layer.verdict == 'ok' else layer.verdict}".rstrip()
        )
        for step in layer.steps:
            lines.append(
                f"  {step.name:<22} {step.status:<7} {step.started_s:8.3f} s  "
                f"{step.duration_s:7.3f} s  {step.verdict}".rstrip()
            )
            for value in key_values(dict(step.fields)):
                lines.append(f"      {value}")
            if step.hint:
                lines.append(f"      what to try: {step.hint}")
    if report.changes:
        lines.append("")
        lines.append("changes:")
        lines += [f"  {change}" for change in report.changes]
    return "\n".join(lines)


def _print_rich(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    style = {"fail": "bold red", "warn": "yellow", "online": "bold green", "ok": "green"}
    console.print(f"verdict: {report.verdict.text}", style=style.get(report.verdict.status))
    if report.verdict.hint:
        console.print(f"  what to try: {report.verdict.hint}")
    console.print(f"port {report.port}  dialect {report.dialect or 'unknown'}", style="dim")
    for layer in report.layers:
        if not layer.steps:
            console.print(f"{layer.name}: {layer.status} — {layer.verdict}", style="dim")
            continue
        table = Table(
            title=f"{layer.name}: {layer.status}"
            + ("" if layer.verdict == "ok" else f" — {layer.verdict}"),
            title_justify="left",
        )
        for column in ("step", "status", "start s", "duration s", "values", "hint"):
            table.add_column(column, overflow="fold")
        for step in layer.steps:
            table.add_row(
                step.name,
                step.status,
                f"{step.started_s:.3f}",
                f"{step.duration_s:.3f}",
                "\n".join([step.verdict, *key_values(dict(step.fields))]).strip(),
                step.hint,
                style=style.get(step.status),
            )
        console.print(table)
    if report.changes:
        console.print("changes: " + "; ".join(report.changes))
