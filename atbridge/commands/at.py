"""``atbridge at``: send AT commands and print the answers, or an interactive console."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from atbridge.commands.options import command_timeout_option, port_options

if TYPE_CHECKING:
    from atbridge.modem import Modem, Urc

HELP = "send AT commands and print the responses (a console when none are given)"


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: the modem's port (and --config)."""
    return [port_options(), command_timeout_option()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "commands",
        nargs="*",
        metavar="COMMAND",
        help='AT command lines, e.g. AT+CGMM "AT+CGDCONT?"; none: read commands from stdin',
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from atbridge.commands.settings import open_modem

    modem = await open_modem(args)
    try:
        modem.subscribe(None, _print_urc)
        if args.commands:
            failures = 0
            for line in args.commands:
                failures += not await _send(modem, line)
            return 3 if failures else 0
        return await _console(modem)
    finally:
        await modem.close()


async def _send(modem: Modem, line: str) -> bool:
    """Send one line, print the answer like a terminal would; True if it succeeded."""
    from atbridge.errors import AtTimeout, ConfigurationError, ModemError

    try:
        response = await modem.command(line)
    except ModemError as exc:
        print(_error_line(exc), flush=True)
        return False
    except (AtTimeout, ConfigurationError) as exc:
        print(f"atbridge: {exc}", file=sys.stderr, flush=True)
        return False
    for text in response.lines:
        print(text)
    if response.data is not None:
        print(f"<{len(response.data)} bytes of data: {response.data!r}>")
    print(response.final, flush=True)
    return True


def _error_line(exc: object) -> str:
    from atbridge.errors import ModemError

    assert isinstance(exc, ModemError)
    if exc.text and exc.code is not None:
        return f"{exc.final}  ({exc.text})"
    return exc.final


def _print_urc(urc: Urc) -> None:
    print(urc.text, flush=True)
    if urc.data is not None:
        print(f"<{len(urc.data)} bytes of data: {urc.data!r}>", flush=True)


async def _console(modem: Modem) -> int:
    """Read command lines from stdin until EOF, ``exit`` or ``quit``."""
    import asyncio

    interactive = sys.stdin.isatty()
    if interactive:
        print(f"connected to {modem.port}; type AT commands, 'exit' to quit", flush=True)
    from atbridge.commands.stdin import stdin_lines

    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    stdin_lines(lines, skip_empty=False)
    failures = 0
    while True:
        if interactive:
            print("AT> ", end="", flush=True)
        raw = await lines.get()
        if raw is None:
            break
        line = raw.decode(errors="replace").strip()
        if line.lower() in ("exit", "quit"):
            break
        if line:
            failures += not await _send(modem, line)
    return 3 if failures and not interactive else 0
