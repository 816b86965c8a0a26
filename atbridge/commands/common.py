"""Options and helpers shared by the commands that talk to a modem."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atbridge.modem import Modem

LINE_ENDINGS = {"crlf": "\r\n", "cr": "\r", "lf": "\n"}


def add_port_options(parser: argparse.ArgumentParser) -> None:
    """``--port``, ``--baud``, ``--line-ending``, ``--timeout``, ``--transcript``."""
    group = parser.add_argument_group("modem connection")
    group.add_argument(
        "--port",
        default=os.environ.get("ATBRIDGE_PORT"),
        required="ATBRIDGE_PORT" not in os.environ,
        metavar="URL",
        help="serial device (/dev/ttyACM0, a pty), or a board exported by ser2net as "
        "socket://host:port or rfc2217://host:port?ign_set_control; default $ATBRIDGE_PORT",
    )
    group.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    group.add_argument("--rtscts", action="store_true", help="hardware flow control (RTS/CTS)")
    group.add_argument(
        "--line-ending",
        choices=sorted(LINE_ENDINGS),
        default="crlf",
        help="what ends a command line: crlf (default; Serial LTE Modem, SIMCom) or cr "
        "(V.250, nRF91 Serial Modem)",
    )
    group.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="per-command timeout (default 10)"
    )
    group.add_argument(
        "--transcript",
        metavar="FILE",
        help="append a timestamped record of every byte in both directions to FILE",
    )


async def open_modem(args: argparse.Namespace) -> Modem:
    """Open and synchronise the modem the port options name."""
    from atbridge.modem import Modem

    return await Modem.open(
        args.port,
        baudrate=args.baud,
        rtscts=args.rtscts,
        line_ending=LINE_ENDINGS[args.line_ending],
        transcript=args.transcript,
        default_timeout=args.timeout,
    )
