"""Serve a fake modem from a shell until SIGINT or SIGTERM.

    python -m tests.fakes --dialect nrf91-slm [--registration-delay S] [--baud N [--hot-line]]
                          [--echo | --no-echo] [--cfun N] [--no-sim] [--rat RAT]
                          [--by-id DIR] [--option NAME=VALUE ...] [-v]

The first line of standard output is the path to open: the pty (``/dev/pts/N``), or with
``--by-id`` the stable symlink to it, which vanishes and comes back on every reset as a USB
modem's ``/dev/serial/by-id/...`` name does. ``--option`` passes a dialect's own option
(``--option model=SIM800``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from . import DIALECTS, FakeModem
from .core import RATS


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
        help="the radio it camps on: lte (+CEREG), gprs/wcdma (+CGREG, +CREG), gsm (+CREG)",
    )
    parser.add_argument(
        "--by-id",
        metavar="DIR",
        default=None,
        help="serve through a symlink in DIR that vanishes and returns on every reset",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the dialect (repeatable), e.g. model=SIM800",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every byte to standard error"
    )
    return parser


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
        args.dialect,
        registration_delay=args.registration_delay,
        baud=args.baud,
        hot_line=args.hot_line,
        echo=args.echo,
        cfun=args.cfun,
        sim=not args.no_sim,
        rat=args.rat,
        by_id=args.by_id,
        **_options(args.option),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await fake.start()
    try:
        print(fake.device, flush=True)
        await stop.wait()
    finally:
        await fake.stop()
    return 0


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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
    try:
        return asyncio.run(_serve(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
