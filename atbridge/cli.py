"""The ``atbridge`` command line.

The parser is built from the command modules in :mod:`atbridge.commands`, which
import only the standard library at import time: ``atbridge --help`` never loads
asyncio, serial or transitions. Errors become one line on stderr (what happened,
then what to try) and a documented exit code:

==  ==========================================================
0   success
1   unexpected internal error (a bug: the traceback is printed; please report it)
2   bad usage or configuration
3   the modem or the network failed (modem error, link lost, reboot)
4   the MQTT broker refused the connection
5   a step timed out
130 interrupted (Ctrl-C)
==  ==========================================================
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from atbridge import __version__

COMMANDS = (
    "at",
    "info",
    "ports",
    "creds",
    "publish",
    "subscribe",
    "run",
    "fsm",
    "explain",
    "watch",
    "plot",
    "diag",
    "certs",
    "register",
    "completion",
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MODEM = 3
EXIT_BROKER = 4
EXIT_TIMEOUT = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atbridge",
        description="Drive a cellular modem over AT commands: nRF91 Serial LTE Modem / "
        "Serial Modem, SIMCom SIM7xxx.",
        epilog="exit codes: 0 ok, 1 internal error (a bug), 2 usage/configuration, "
        "3 modem/network failure, 4 broker refused, 5 timeout, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default=None,
        help="the asyncio event loop to run on: uvloop (pip install 'atbridge[fast]') costs "
        "20-30%% less CPU per message; auto (the default, or $ATBRIDGE_EVENT_LOOP) takes "
        "uvloop when it is installed",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"atbridge.commands.{name}")
        parents = module.parents() if hasattr(module, "parents") else []
        command = sub.add_parser(
            name,
            parents=parents,
            add_help=getattr(module, "ADD_HELP", True),
            # argparse %-formats a subcommand's help (not its description): %XMONITOR is text.
            help=getattr(module, "HELP", "").replace("%", "%%") or None,
            description=getattr(module, "HELP", None),
        )
        module.configure(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atbridge`` console script."""
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (atbridge completion)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "format", None) == "json":
        args.json = True
    _log_setup(args)
    from atbridge.errors import (
        AtBridgeError,
        BrokerRefused,
        ConfigurationError,
        LocalProtocolError,
        StepTimeout,
    )

    try:
        from atbridge import eventloop

        eventloop.select(args.event_loop)
        return int(args.run(args))
    except BrokenPipeError:  # the reader went away (`atbridge fsm --mermaid | head`): done
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        print("atbridge: interrupted", file=sys.stderr)
        return _failed(args, "interrupted", "KeyboardInterrupt", None, 130)
    except AtBridgeError as exc:
        print(f"atbridge: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  what to try: {exc.hint}", file=sys.stderr)
        if isinstance(exc, ConfigurationError | LocalProtocolError):
            code = EXIT_USAGE
        elif isinstance(exc, BrokerRefused):
            code = EXIT_BROKER
        elif isinstance(exc, StepTimeout):
            code = EXIT_TIMEOUT
        else:
            code = EXIT_MODEM
        return _failed(args, exc.message, type(exc).__name__, exc.hint, code)
    except Exception as exc:  # a bug: show where it happened, never retry it
        import traceback

        traceback.print_exc()
        print(
            "atbridge: internal error (a bug in atbridge: please report it with the "
            "traceback above)",
            file=sys.stderr,
        )
        return _failed(args, f"internal error: {exc!r}", type(exc).__name__, None, EXIT_INTERNAL)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of a closed pipe is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _failed(args: argparse.Namespace, message: str, kind: str, hint: str | None, code: int) -> int:
    """With ``--json``, the failure as one JSON object on stdout too; returns ``code``."""
    if getattr(args, "json", False):
        import json

        error = {"error": message, "kind": kind, "hint": hint, "exit_code": code}
        print(json.dumps(error), flush=True)
    return code


def _log_setup(args: argparse.Namespace) -> None:
    """``-v``: the lifecycle's decisions on stderr; ``-d``: those and the AT transcript."""
    debug = bool(getattr(args, "debug", False))
    if not (debug or getattr(args, "log_decisions", False)):
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger("atbridge")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if debug and hasattr(args, "transcript") and args.transcript is None:
        args.transcript = "/dev/stderr"  # the masked, timestamped record of every byte


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
