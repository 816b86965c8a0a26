"""Serve a fake modem from a shell until SIGINT or SIGTERM.

    python -m tests.fakes --dialect nrf91-slm [--registration-delay S] [--baud N [--hot-line]]
                          [--echo | --no-echo] [--cfun N] [--no-sim] [--rat RAT]
                          [--by-id DIR] [--boot-time S] [--option NAME=VALUE ...]
                          [--terminator CR|LF|CRLF] [--ncs-version V] [--legacy-datamode]
                          [--start-in-data-mode PAYLOAD]
                          [--autobaud | --no-autobaud] [--late-boot S]
                          [--deny CAUSE | --no-service] [--roaming]
                          [--rsrp-series DBM,DBM,... [--series-period S]]
                          [--handover-after S] [--psm-grant T3324,T3412]
                          [--dns-fail] [--broker-unreachable] [--connack-refused RC] [-v]

The first line of standard output is the path to open: the pty (``/dev/pts/N``), or with
``--by-id`` the stable symlink to it, which vanishes and comes back on every reset as a USB
modem's ``/dev/serial/by-id/...`` name does. ``--option`` passes a dialect's own option
(``--option model=SIM800``). ``--boot-time S`` is how long a reboot keeps the UART dead
(``FakeModem(boot_time=S)``: bytes sent meanwhile are lost, then the banner; default: a few
tens of milliseconds when the dialect prints a banner, else 0).

The firmware builds and models of the Python API are flags here: ``--terminator`` (nRF91
SLM/SM: ``slm_build``/``sm_build``), ``--ncs-version`` and ``--legacy-datamode`` (SLM),
``--autobaud``/``--late-boot`` (SIMCom: each family's ``model``). ``--start-in-data-mode``
leaves the SLM in data mode before the path is printed (``start_in_data_mode``), as a host
that died mid-send does. SIGUSR1 makes a running nRF91 fake's modem core fault
(``modem_fault``: ``#XMODEM: FAULT``, no ``Ready``); other dialects log that they have none.
A flag the dialect does not have exits with status 2.

The field scenarios (``scenarios.Scenario``, the ``FakeModem`` keywords of the same names):
``--deny CAUSE`` (registration denied with that EMM cause), ``--no-service`` (searches for
ever), ``--roaming`` (registers roaming on a visited PLMN), ``--rat nbiot`` (an NB-IoT cell),
``--rsrp-series -85,-97,-112`` (the RSRP steps through these dBm values every
``--series-period`` seconds), ``--handover-after S`` (a cell change S seconds after
registering), ``--psm-grant T3324,T3412`` (the network grants these PSM timers),
``--dns-fail``, ``--broker-unreachable`` (every TCP connect refused) and
``--connack-refused RC`` (every connection reaches a stand-in broker that refuses the MQTT
CONNECT with return code RC).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import DIALECTS, FakeModem, nrf91_slm, nrf91_sm, sim7000, sim7080, sim7600
from .core import RATS
from .nrf91_sockets import modem_fault
from .registry import Dialect

#: The SIMCom dialects by name: the family's ``model()`` and its model name.
_SIMCOM_MODELS: dict[str, Callable[..., Dialect]] = {
    "sim7000": lambda **kw: sim7000.model("SIM7000", **kw),
    "sim800": lambda **kw: sim7000.model("SIM800", **kw),
    "sim7080": lambda **kw: sim7080.model(**kw),
    "sim7600": lambda **kw: sim7600.model("SIM7600", **kw),
    "a7672": lambda **kw: sim7600.model("A7672", **kw),
}
#: The dialects with a modem core fault (SIGUSR1).
_FAULTS: dict[str, Callable[[FakeModem], None]] = {
    "nrf91-slm": modem_fault,
    "nrf91-sm": modem_fault,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes",
        description="Serve a fake cellular modem on a pty; prints the pty path first.",
    )
    parser.add_argument("--dialect", choices=sorted(DIALECTS), default="nrf91-slm")
    parser.add_argument(
        "--registration-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds from AT+CFUN=1 to +CEREG stat 1 (default 0)",
    )
    parser.add_argument(
        "--baud", type=int, default=None, metavar="N", help="pace both directions at N baud"
    )
    parser.add_argument(
        "--hot-line",
        action="store_true",
        help="with --baud: poll the pty instead of sleeping between bytes, so the fake's "
        "wake-up latency is not charged to the line (for benchmarks; costs a CPU core)",
    )
    parser.add_argument(
        "--echo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="command echo at power-on (default: the dialect's)",
    )
    parser.add_argument(
        "--cfun", type=int, default=None, metavar="N", help="CFUN at power-on (default: dialect's)"
    )
    parser.add_argument("--no-sim", action="store_true", help="no SIM card inserted")
    parser.add_argument(
        "--rat",
        choices=sorted(RATS),
        default="lte",
        help="the radio it camps on: lte (LTE-M) or nbiot (NB-IoT) on +CEREG, gprs/wcdma "
        "(+CGREG, +CREG), gsm (+CREG)",
    )
    parser.add_argument(
        "--by-id",
        metavar="DIR",
        default=None,
        help="serve through a symlink in DIR that vanishes and returns on every reset",
    )
    parser.add_argument(
        "--boot-time",
        type=float,
        default=None,
        metavar="S",
        help="seconds a reboot keeps the UART dead (input lost) before the banner "
        "(default: the fake's, a few tens of ms with a banner, 0 without)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the dialect (repeatable), e.g. model=SIM800",
    )
    parser.add_argument(
        "--terminator",
        choices=("CR", "LF", "CRLF"),
        default=None,
        help="nrf91-slm/nrf91-sm: the command line ending the firmware was built with "
        "(default: the build's, SLM CRLF, SM CR)",
    )
    parser.add_argument(
        "--ncs-version",
        default=None,
        metavar="V",
        help=f"nrf91-slm: the NCS version AT#XSLMVER reports (default {nrf91_slm.SLM_NCS_VERSION})",
    )
    parser.add_argument(
        "--legacy-datamode",
        action="store_true",
        help="nrf91-slm: a build from before sdk-nrf PR #7951 (no OK on entering data mode, OK "
        "instead of #XDATAMODE on leaving it); give it --ncs-version "
        f"{nrf91_slm.LEGACY_NCS_VERSION}",
    )
    parser.add_argument(
        "--start-in-data-mode",
        default=None,
        metavar="PAYLOAD",
        help="nrf91-slm: left in data mode with a socket open and PAYLOAD sent (may be empty), "
        "as by a host that died mid-send",
    )
    parser.add_argument(
        "--autobaud",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SIMCom: auto-bauding (no RDY at power-on or reset; default: the model's)",
    )
    parser.add_argument(
        "--late-boot",
        type=float,
        default=None,
        metavar="S",
        help="SIMCom: the late boot lines (SMS Ready, SMS DONE...) S seconds after power-on "
        "(default: with the banner)",
    )
    _scenario_arguments(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every byte to standard error"
    )
    parser.epilog = (
        "SIGUSR1: the modem core of a running nrf91-slm/nrf91-sm faults (#XMODEM: FAULT, "
        "SHUTDOWN, INIT; no Ready; sockets, CFUN and registration lost). SIGINT/SIGTERM: stop."
    )
    return parser


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "field scenarios", "what the network does (every dialect; see tests/fakes/scenarios.py)"
    )
    group.add_argument(
        "--deny", type=int, default=None, metavar="CAUSE", help="registration denied (EMM cause)"
    )
    group.add_argument("--no-service", action="store_true", help="no cell: searches for ever")
    group.add_argument("--roaming", action="store_true", help="registers roaming (stat 5)")
    group.add_argument(
        "--rsrp-series",
        default=None,
        metavar="DBM,...",
        help="scripted RSRP in dBm, one step every --series-period, e.g. -85,-97,-112",
    )
    group.add_argument(
        "--series-period",
        type=float,
        default=None,
        metavar="S",
        help="seconds per --rsrp-series step (default 1)",
    )
    group.add_argument(
        "--handover-after",
        type=float,
        default=None,
        metavar="S",
        help="the serving cell changes S seconds after registering",
    )
    group.add_argument(
        "--psm-grant",
        default=None,
        metavar="T3324,T3412",
        help="PSM timers the network grants (8-bit strings), e.g. 00100001,00000110",
    )
    group.add_argument("--dns-fail", action="store_true", help="every DNS lookup fails")
    group.add_argument(
        "--broker-unreachable", action="store_true", help="every TCP connect is refused"
    )
    group.add_argument(
        "--connack-refused",
        type=int,
        default=None,
        metavar="RC",
        help="a stand-in broker refuses every MQTT CONNECT with return code RC (1-5)",
    )


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not a comma-separated list of integers") from None


def _scenario(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario flags as ``FakeModem`` keywords (only those given)."""
    options: dict[str, Any] = {}
    if args.deny is not None:
        options["deny"] = args.deny
    for flag in ("no_service", "roaming", "dns_fail", "broker_unreachable"):
        if getattr(args, flag):
            options[flag] = True
    if args.rsrp_series is not None:
        options["rsrp_series"] = _int_list(args.rsrp_series, "--rsrp-series")
    if args.series_period is not None:
        if args.rsrp_series is None:
            raise ValueError("--series-period needs --rsrp-series")
        options["series_period"] = args.series_period
    if args.handover_after is not None:
        options["handover_after"] = args.handover_after
    if args.psm_grant is not None:
        timers = args.psm_grant.split(",")
        if len(timers) != 2:
            raise ValueError(f"--psm-grant {args.psm_grant!r} is not T3324,T3412")
        options["psm_grant"] = tuple(timers)
    if args.connack_refused is not None:
        options["connack_refused"] = args.connack_refused
    return options


def _dialect(args: argparse.Namespace) -> str | Dialect:
    """The dialect the flags ask for: the registered one, or a build/model of it. A flag
    the dialect does not have is a ValueError."""
    name: str = args.dialect
    given = {
        flag: value
        for flag, value in (
            ("--terminator", args.terminator),
            ("--ncs-version", args.ncs_version),
            ("--legacy-datamode", args.legacy_datamode or None),
            ("--start-in-data-mode", args.start_in_data_mode),
            ("--autobaud", args.autobaud),
            ("--late-boot", args.late_boot),
        )
        if value is not None
    }
    allowed = {
        "nrf91-slm": {"--terminator", "--ncs-version", "--legacy-datamode", "--start-in-data-mode"},
        "nrf91-sm": {"--terminator"},
    }.get(name, {"--autobaud", "--late-boot"} if name in _SIMCOM_MODELS else set())
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{name} has no {', '.join(unknown)}")
    if name == "nrf91-slm" and given.keys() - {"--start-in-data-mode"}:
        return nrf91_slm.slm_build(
            terminator=args.terminator or "CRLF",
            ncs_version=args.ncs_version or nrf91_slm.SLM_NCS_VERSION,
            legacy_datamode=args.legacy_datamode,
        )
    if name == "nrf91-sm" and given:
        return nrf91_sm.sm_build(terminator=args.terminator)
    if name in _SIMCOM_MODELS and given:
        model: dict[str, Any] = {"late_boot": args.late_boot}
        if args.autobaud is not None:
            model["autobaud"] = args.autobaud
        return _SIMCOM_MODELS[name](**model)
    return name


def _options(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as the dialect's own FakeModem keywords (values are strings)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--option {pair!r} is not NAME=VALUE")
        options[name.replace("-", "_")] = value
    return options


async def _serve(args: argparse.Namespace) -> int:
    fake = FakeModem(
        _dialect(args),
        registration_delay=args.registration_delay,
        baud=args.baud,
        hot_line=args.hot_line,
        echo=args.echo,
        cfun=args.cfun,
        sim=not args.no_sim,
        rat=args.rat,
        by_id=args.by_id,
        boot_time=args.boot_time,
        **_scenario(args),
        **_options(args.option),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await fake.start()
    loop.add_signal_handler(signal.SIGUSR1, _fault, fake)
    try:
        if args.start_in_data_mode is not None:
            await nrf91_slm.start_in_data_mode(fake, args.start_in_data_mode.encode())
        print(fake.device, flush=True)
        await stop.wait()
    finally:
        await fake.stop()
    return 0


def _fault(fake: FakeModem) -> None:
    """SIGUSR1: the dialect's modem core fault, if it has one."""
    fault = _FAULTS.get(fake.dialect.name)
    if fault is None:
        print(f"{fake.dialect.name} has no modem fault: SIGUSR1 ignored", file=sys.stderr)
    else:
        fault(fake)


#: Where ``python -m tests.fakes`` runs from.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """Start ``python -m tests.fakes *args`` from the project root, stdout and stderr piped
    (for tests that need a fake in a process of its own)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes",
        *args,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _joined_negative_values(argv: list[str]) -> list[str]:
    """``--rsrp-series -85,-97`` as ``--rsrp-series=-85,-97`` (argparse would take a value
    starting with ``-`` for an option)."""
    out: list[str] = []
    pending = False
    for token in argv:
        if pending:
            out[-1] += "=" + token
            pending = False
        else:
            out.append(token)
            pending = token == "--rsrp-series"
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(_joined_negative_values(sys.argv[1:] if argv is None else argv))
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
    try:
        return asyncio.run(_serve(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
