"""``atbridge subscribe``: go online, subscribe to topic filters, print what arrives.

As ``mosquitto_sub`` does, each message is its payload on one line of stdout
(``-v``: ``<topic> <payload>``; ``-N``: no newline after it), the payload as text
when it is printable UTF-8 (tab, CR and LF shown as ``\\t``, ``\\r``, ``\\n``),
else ``hex:<hex digits>``. ``--json`` prints one JSON object per message:
``topic``, ``payload``, ``encoding`` (``utf-8`` or ``hex``), ``bytes``,
``qos``, ``retain``. ``-t`` may be repeated: every filter is subscribed.

When it ends:

- ``-C/--count N``: after N messages (exit 0);
- ``-W/--timeout S``: S seconds after the broker granted the subscriptions:
  exit 5 (timeout) if fewer than ``--count`` messages arrived, or, without
  ``--count``, if none arrived at all (mosquitto_sub exits 27 there; atbridge's
  one timeout code is 5); else exit 0;
- neither: on Ctrl-C or SIGTERM (exit 130: interrupted, as every command).

The other options of ``mosquitto_sub`` work as they do there: ``-q``,
``-h``/``-p``, ``-u``/``-P``, ``-i``, ``-k``, ``-V``, ``-d``; ``--help`` alone is
help (``-h`` is the host).

Getting online is bounded by ``--give-up-after`` (default 300 s).
"""

from __future__ import annotations

import argparse

from atbridge.commands.options import (
    DEFAULT_GIVE_UP,
    EXIT_CODES_EPILOG,
    bridge_options,
    help_option,
    output_options,
    positive_int,
    positive_seconds,
    qos,
)
from atbridge.commands.session import run_bridge_command

HELP = "go online, subscribe to a topic filter and print the messages that arrive"

EPILOG = f"""\
output: one line per message, its payload (-v: "<topic> <payload>", -N: no
newline): the payload as text when it is printable UTF-8, else "hex:<hex
digits>"; --json: one JSON object per message (topic, payload, encoding "utf-8"
or "hex", bytes, qos, retain).

ends after -C messages (exit 0), or -W seconds after the subscriptions were
granted (exit 5 if -C was not reached, or nothing arrived at all), or on Ctrl-C.

example (the options of mosquitto_sub work here):
  atbridge subscribe --port /dev/ttyACM0 -h broker.example -t 'cmd/#' -t status -v -C 10

{EXIT_CODES_EPILOG}
"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker, MQTT session, lifecycle, output."""
    return [
        bridge_options(give_up_default=DEFAULT_GIVE_UP, mosquitto=True),
        output_options(quiet=True, what="message", short_quiet=False, verbose=False),
    ]


#: ``-h`` is the broker's host, as in mosquitto_sub: the parser gets ``--help`` alone.
ADD_HELP = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    help_option(parser)
    what = parser.add_argument_group("what to receive")
    what.add_argument(
        "-t",
        "--topic",
        dest="topics",
        action="append",
        required=True,
        metavar="FILTER",
        help="topic filter (+ and # allowed); repeat for several",
    )
    what.add_argument(
        "-q",
        "--qos",
        type=qos,
        default=1,
        metavar="0|1",
        help="QoS of the subscriptions (default 1)",
    )
    what.add_argument("-C", "--count", type=positive_int, metavar="N", help="exit after N messages")
    what.add_argument(
        "-v",
        "--verbose",
        dest="print_topic",
        action="store_true",
        help="print the topic before each payload",
    )
    what.add_argument(
        "-N", dest="no_newline", action="store_true", help="no newline after each payload"
    )
    what.add_argument(
        "-W",
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="exit S seconds after the subscriptions were granted (exit 5 if -C messages "
        "did not arrive, or none at all)",
    )


def run(args: argparse.Namespace) -> int:
    return run_bridge_command(lambda: _main(args))


async def _main(args: argparse.Namespace) -> int:
    import asyncio

    from atbridge.at_mqtt import validate_topic_filter
    from atbridge.commands.output import Output, message_object, payload_text
    from atbridge.commands.session import Interrupted, Session
    from atbridge.commands.settings import bridge_config
    from atbridge.errors import StepTimeout

    for topic in args.topics:
        validate_topic_filter(topic)
    config = bridge_config(args)
    output = Output(json_lines=args.json, progress="none" if args.quiet else "stderr")
    received = 0
    enough = asyncio.Event()

    async with Session(config, output) as session:
        bridge = session.bridge

        async def consume() -> None:
            nonlocal received
            async for message in bridge.messages():
                text = payload_text(message.payload)
                if args.print_topic:
                    text = f"{message.topic} {text}"
                if args.no_newline and not args.json:
                    output.text(text)
                else:
                    output.result(text, message_object(message))
                received += 1
                if args.count is not None and received >= args.count:
                    enough.set()
                    return

        try:
            await session.wait_online()
            session.background(consume())
            for topic in args.topics:
                granted = await session.guard(bridge.subscribe(topic, qos=args.qos))
                output.note(
                    "subscribed",
                    f"subscribed to {topic} (QoS {granted})",
                    {"event": "subscribed", "filter": topic, "qos": granted},
                )
            deadline = asyncio.timeout(args.timeout)
            try:
                async with deadline:
                    await session.guard(enough.wait())
            except TimeoutError:
                if not deadline.expired():
                    raise
        except Interrupted:
            return 130  # stopped before the goal (-C reached, or -W ended): interrupted
    wanted = 1 if args.count is None else args.count
    if received < wanted:
        filters = ", ".join(args.topics)
        of = f" of {args.count}" if args.count is not None else ""
        raise StepTimeout(
            f"received {received}{of} messages on {filters} within {args.timeout:g} s",
            hint="raise -W/--timeout, or check that something publishes to the topic",
        )
    return 0
