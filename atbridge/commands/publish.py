"""``atbridge publish``: go online, publish messages to one topic, disconnect.

The messages are ``-m/--message M``, the bytes of ``-f/--file F`` (``-``: all
of stdin; ``-s`` is the same), an empty message (``-n``), each sent ``--count``
times (default once), or else (``-l``, the default) the lines read from stdin,
one message each (line endings removed, blank lines skipped, at most
``--count``). Standard input with no line at all is an error (exit 2) found
before going online. Messages go out in order; at QoS 1 up to the in-flight
window wait for their PUBACK at the same time.

The options of ``mosquitto_pub`` work as they do there: ``-t`` (once: a second
``-t`` or ``-m`` is an error, not "the last one wins"), ``-m``, ``-f``, ``-s``,
``-l``, ``-n``, ``-q`` QoS, ``-r``, ``-h``/``-p`` host and port, ``-u``/``-P``,
``-i``, ``-k``, ``-V mqttv311|mqttv5``, ``-d``; ``--help`` alone is help
(``-h`` is the host).

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
    Once,
    bridge_options,
    help_option,
    output_options,
    positive_int,
    qos,
)
from atbridge.commands.session import run_bridge_command

if TYPE_CHECKING:
    import asyncio

    from atbridge.commands.output import Output
    from atbridge.config import BridgeConfig

HELP = "go online, publish messages to a topic (QoS 0 or 1) and disconnect"

EPILOG = f"""\
messages: -m M, -f F (- or -s: all of stdin) or -n (empty) is sent --count
times (default once); otherwise (-l) every line of stdin is one message (blank
lines skipped, at most --count; no line at all: exit 2). Exit 0 only when every
message was handed over (QoS 1: acknowledged by the broker).

examples (the options of mosquitto_pub work here):
  ATBRIDGE_MQTT_PASSWORD=... atbridge publish --port /dev/ttyACM0 --apn iot.example \\
      -h broker.example -p 1883 -u dev1 -t sensors/t -m 21.5 -q 1
  sensor-reader | atbridge publish --port /dev/ttyACM0 -h broker.example -t sensors/t -l

{EXIT_CODES_EPILOG}
"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker, MQTT session, lifecycle, output."""
    return [
        bridge_options(give_up_default=DEFAULT_GIVE_UP, mosquitto=True),
        output_options(quiet=True, what="message", short_quiet=False),
    ]


#: ``-h`` is the broker's host, as in mosquitto_pub: the parser gets ``--help`` alone.
ADD_HELP = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    help_option(parser)
    what = parser.add_argument_group("what to publish")
    what.add_argument(
        "-t", "--topic", required=True, action=Once, metavar="T", help="topic to publish to"
    )
    source = what.add_mutually_exclusive_group()
    source.add_argument(
        "-m", "--message", action=Once, metavar="M", help="the message (UTF-8 text)"
    )
    source.add_argument(
        "-f",
        "--file",
        "--message-file",
        dest="message_file",
        action=Once,
        metavar="F",
        help="the message is the bytes of F (- for stdin)",
    )
    source.add_argument(
        "-s",
        "--stdin-file",
        dest="message_file",
        action="store_const",
        const="-",
        help="the message is all of stdin",
    )
    source.add_argument(
        "-l",
        "--stdin-line",
        dest="lines",
        action="store_true",
        help="each line of stdin is a message (the default without -m/-f/-s/-n)",
    )
    source.add_argument(
        "-n", "--null-message", dest="null", action="store_true", help="an empty message"
    )
    what.add_argument(
        "-q", "--qos", type=qos, default=0, metavar="0|1", help="QoS 0 (default) or 1"
    )
    what.add_argument("-r", "--retain", action="store_true", help="ask the broker to retain it")
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

    if args.null:
        return b""
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


_INTERRUPTED = object()


async def _first_line(lines: asyncio.Queue[bytes | None], *, quiet: bool) -> object:
    """The first line of stdin, ``None`` at its end, or :data:`_INTERRUPTED` on a signal.

    Read before going online, so that nothing to send is an error found at once
    (and no cellular data is spent on it); Ctrl-C or SIGTERM meanwhile ends cleanly.
    """
    import asyncio

    from atbridge.commands.session import catch_stop_signals

    waiting = asyncio.ensure_future(lines.get())

    def stop(_signum: int) -> None:
        waiting.cancel()

    uncatch = catch_stop_signals(stop)
    try:
        if not quiet:
            hint = "; Ctrl-D to end" if sys.stdin.isatty() else ""
            print(f"atbridge: one message per line of stdin{hint}", file=sys.stderr, flush=True)
        return await waiting
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        return _INTERRUPTED
    finally:
        uncatch()


async def _main(args: argparse.Namespace) -> int:
    import asyncio

    from atbridge.at_mqtt import validate_topic_name
    from atbridge.commands.output import Output
    from atbridge.commands.settings import bridge_config
    from atbridge.commands.stdin import stdin_lines
    from atbridge.errors import ConfigurationError

    validate_topic_name(args.topic)
    config = bridge_config(args)
    message = _read_message(args)
    output = Output(json_lines=args.json, progress="none" if args.quiet else "stderr")
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    relaying: asyncio.Task[None] | None = None
    if message is not None:
        for _ in range(args.count or 1):
            queue.put_nowait(message)
        queue.put_nowait(None)
    else:
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        stdin_lines(lines, limit=args.count)
        first = await _first_line(lines, quiet=args.quiet)
        if first is _INTERRUPTED:
            print("atbridge: interrupted after 0 messages", file=sys.stderr)
            return 130
        if first is None:
            raise ConfigurationError(
                "nothing to publish: standard input ended without a line",
                hint="pipe the messages in, one per line, or give -m MESSAGE, -f FILE or -n",
            )
        assert isinstance(first, bytes)
        queue.put_nowait(first)

        async def relay() -> None:
            while (item := await lines.get()) is not None:
                queue.put_nowait(item)
            queue.put_nowait(None)

        relaying = asyncio.create_task(relay())

    try:
        return await _publish(args, config, output, queue)
    finally:
        if relaying is not None:
            relaying.cancel()


async def _publish(
    args: argparse.Namespace,
    config: BridgeConfig,
    output: Output,
    queue: asyncio.Queue[bytes | None],
) -> int:
    """Go online and publish what ``queue`` gives until its ``None``."""
    from atbridge.commands.output import describe_error
    from atbridge.commands.publishing import publish_from
    from atbridge.commands.session import Interrupted, Session

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
    return 0
