"""``atbridge subscribe``: go online, subscribe to a topic filter, print what arrives.

Each message is one line on stdout: ``<topic>  <payload>``, the payload as text
when it is printable UTF-8 (tab, CR and LF shown as ``\\t``, ``\\r``, ``\\n``),
else ``hex:<hex digits>``. ``--json`` prints one JSON object per message:
``topic``, ``payload``, ``encoding`` (``utf-8`` or ``hex``), ``bytes``,
``qos``, ``retain``.

When it ends:

- ``--count N``: after N messages (exit 0);
- ``--timeout S``: S seconds after the broker granted the subscription: exit 5
  if ``--count`` was given and fewer than N messages arrived, else exit 0;
- neither: on Ctrl-C or SIGTERM (exit 0; 130 when ``--count`` was not reached).

Getting online is bounded by ``--give-up-after`` (default 300 s).
"""

from __future__ import annotations

import argparse

from atbridge.commands.options import (
    DEFAULT_GIVE_UP,
    EXIT_CODES_EPILOG,
    bridge_options,
    output_options,
    positive_int,
    positive_seconds,
)
from atbridge.commands.session import run_bridge_command

HELP = "go online, subscribe to a topic filter and print the messages that arrive"

EPILOG = f"""\
output: one line per message, "<topic>  <payload>": the payload as text when it
is printable UTF-8, else "hex:<hex digits>"; --json: one JSON object per message
(topic, payload, encoding "utf-8" or "hex", bytes, qos, retain).

ends after --count messages (exit 0), or --timeout seconds after the subscription
was granted (exit 5 if --count was given and not reached, else 0), or on Ctrl-C.

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
    what = parser.add_argument_group("what to receive")
    what.add_argument(
        "--topic", required=True, metavar="FILTER", help="topic filter (+ and # allowed)"
    )
    what.add_argument(
        "--qos", type=int, choices=(0, 1), default=1, help="QoS of the subscription (default 1)"
    )
    what.add_argument("--count", type=positive_int, metavar="N", help="exit after N messages")
    what.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="exit S seconds after the subscription was granted (exit 5 if --count "
        "messages did not arrive, else 0)",
    )


def run(args: argparse.Namespace) -> int:
    return run_bridge_command(lambda: _main(args))


async def _main(args: argparse.Namespace) -> int:
    import asyncio

    from atbridge.at_mqtt import validate_topic_filter
    from atbridge.commands.output import Output, message_object, message_text
    from atbridge.commands.session import Interrupted, Session
    from atbridge.commands.settings import bridge_config
    from atbridge.errors import StepTimeout

    validate_topic_filter(args.topic)
    config = bridge_config(args)
    output = Output(json_lines=args.json, progress="none" if args.quiet else "stderr")
    received = 0
    enough = asyncio.Event()

    async with Session(config, output) as session:
        bridge = session.bridge

        async def consume() -> None:
            nonlocal received
            async for message in bridge.messages():
                output.result(message_text(message), message_object(message))
                received += 1
                if args.count is not None and received >= args.count:
                    enough.set()
                    return

        try:
            await session.wait_online()
            session.background(consume())
            granted = await session.guard(bridge.subscribe(args.topic, qos=args.qos))
            output.note(
                "subscribed",
                f"subscribed to {args.topic} (QoS {granted})",
                {"event": "subscribed", "filter": args.topic, "qos": granted},
            )
            deadline = asyncio.timeout(args.timeout)
            try:
                async with deadline:
                    await session.guard(enough.wait())
            except TimeoutError:
                if not deadline.expired():
                    raise
        except Interrupted:
            return 0 if args.count is None else 130
    if args.count is not None and received < args.count:
        raise StepTimeout(
            f"received {received} of {args.count} messages on {args.topic} "
            f"within {args.timeout:g} s",
            hint="raise --timeout, or check that something publishes to the topic",
        )
    return 0
