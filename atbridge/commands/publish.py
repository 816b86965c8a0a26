"""``atbridge publish``: go online, publish messages to one topic, disconnect.

The messages are ``--message M`` or the bytes of ``--message-file F`` (``-``:
all of stdin), each sent ``--count`` times (default once), or else the lines
read from stdin, one message each (line endings removed, blank lines skipped,
at most ``--count``). Messages go out in order; at QoS 1 up to the in-flight
window wait for their PUBACK at the same time.

Exit 0 only when every message was handed over: at QoS 0 accepted by the modem,
at QoS 1 acknowledged by the broker. The first failure stops the command with
its exit code. ``--json`` prints one JSON object per message: ``index``,
``topic``, ``bytes``, ``qos``, ``retain``, ``ok``, ``acknowledged`` and, when
it failed, ``error``. Ctrl-C or SIGTERM (reading stdin or not) disconnects
cleanly and exits 130, saying how many messages were sent.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from atbridge.commands.options import (
    DEFAULT_GIVE_UP,
    EXIT_CODES_EPILOG,
    bridge_options,
    output_options,
    positive_int,
)
from atbridge.commands.session import run_bridge_command

if TYPE_CHECKING:
    import asyncio

HELP = "go online, publish messages to a topic (QoS 0 or 1) and disconnect"

EPILOG = f"""\
messages: --message M or --message-file F (- for all of stdin) is sent --count
times (default once); without either, every line of stdin is one message (blank
lines skipped, at most --count). Exit 0 only when every message was handed over
(QoS 1: acknowledged by the broker).

example:
  ATBRIDGE_MQTT_PASSWORD=... atbridge publish --port /dev/ttyACM0 --apn iot.example \\
      --broker broker.example:1883 --username dev1 --topic sensors/t --message 21.5 --qos 1

{EXIT_CODES_EPILOG}
"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker, MQTT session, lifecycle, output."""
    return [
        bridge_options(give_up_default=DEFAULT_GIVE_UP),
        output_options(quiet=True, what="message"),
    ]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_argument_group("what to publish")
    what.add_argument("--topic", required=True, metavar="T", help="topic to publish to")
    source = what.add_mutually_exclusive_group()
    source.add_argument("--message", "-m", metavar="M", help="the message (UTF-8 text)")
    source.add_argument(
        "--message-file", metavar="F", help="the message is the bytes of F (- for stdin)"
    )
    what.add_argument("--qos", type=int, choices=(0, 1), default=0, help="QoS (default 0)")
    what.add_argument("--retain", action="store_true", help="ask the broker to retain it")
    what.add_argument(
        "--count",
        type=positive_int,
        metavar="N",
        help="send the message N times; with stdin, at most N lines",
    )


def run(args: argparse.Namespace) -> int:
    return run_bridge_command(lambda: _main(args))


def _read_message(args: argparse.Namespace) -> bytes | None:
    """The one message of --message/--message-file, or None to read lines from stdin."""
    from atbridge.errors import ConfigurationError

    if args.message is not None:
        return str(args.message).encode()
    if args.message_file is None:
        return None
    if args.message_file == "-":
        from atbridge.commands.stdin import read_all

        return read_all()
    try:
        with open(args.message_file, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the message file {args.message_file}: {exc.strerror}"
        ) from None


async def _main(args: argparse.Namespace) -> int:
    import asyncio

    from atbridge.at_mqtt import validate_topic_name
    from atbridge.commands.output import Output, describe_error
    from atbridge.commands.publishing import publish_from
    from atbridge.commands.session import Interrupted, Session
    from atbridge.commands.settings import bridge_config
    from atbridge.commands.stdin import stdin_lines

    validate_topic_name(args.topic)
    config = bridge_config(args)
    message = _read_message(args)
    output = Output(json_lines=args.json, progress="none" if args.quiet else "stderr")
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    if message is not None:
        for _ in range(args.count or 1):
            queue.put_nowait(message)
        queue.put_nowait(None)
    else:
        if sys.stdin.isatty() and not args.quiet:
            print("atbridge: one message per line; Ctrl-D to end", file=sys.stderr, flush=True)
        stdin_lines(queue, limit=args.count)

    acknowledged = args.qos == 1
    sent = 0

    def report(index: int, payload: bytes, error: BaseException | None) -> None:
        event = {
            "index": index,
            "topic": args.topic,
            "bytes": len(payload),
            "qos": args.qos,
            "retain": args.retain,
            "ok": error is None,
            "acknowledged": acknowledged and error is None,
        }
        nonlocal sent
        if error is not None:
            event["error"] = describe_error(error)
            if args.json:
                output.result("", event)
            return
        sent += 1
        how = "acknowledged" if acknowledged else "accepted by the modem"
        output.result(
            f"sent {index}: {len(payload)} bytes to {args.topic} (QoS {args.qos}, {how})", event
        )

    async with Session(config, output) as session:
        try:
            await session.wait_online()
            await publish_from(
                session,
                queue,
                topic=args.topic,
                qos=args.qos,
                retain=args.retain,
                on_result=report,
                keep_going=False,
            )
        except Interrupted:
            print(f"atbridge: interrupted after {sent} messages", file=sys.stderr)
            return 130
    if sent == 0 and not args.quiet:
        print("atbridge: nothing to publish (stdin had no lines)", file=sys.stderr)
    return 0
