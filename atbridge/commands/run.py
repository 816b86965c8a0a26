"""``atbridge run``: go online and stay online, showing every state change as it happens.

On a terminal the state is one live status line (rewritten in place with
``\\r``, redrawn every second while a state lasts, so its time ticks); piped,
every change is a line ``state      <state>: <cause>``, and every line starts
with its UTC time (``2026-01-31T12:00:00.123Z``). When the lines to publish are
typed on the terminal (``--topic`` with stdin a terminal), whole lines are
printed instead of the live line, which would erase what is being typed. With
``--topic T`` every line of stdin (blank lines skipped) is published to T, and
the command ends at the end of stdin once every line was handed over. Each
``--subscribe FILTER`` prints the messages that arrive, one line each,
``message    <topic>  <payload>`` (payload as in ``atbridge subscribe``).
``--json`` prints every event as one JSON object with an ``event`` key:
``state``, ``registration``, ``waiting``, ``subscribed``, ``message``, ``sent``.

Ctrl-C or SIGTERM ends it cleanly (DISCONNECT, close the socket and the port),
exit 130 (interrupted: ``run`` has no goal of its own but the end of stdin); a
second Ctrl-C quits at once. The bridge retries for ever unless
``--give-up-after`` is given; a refusal that retrying cannot fix (wrong
password) ends it with exit 4. Exit 3
when a line could not be published (each one is reported on stderr).
"""

from __future__ import annotations

import argparse

from atbridge.commands.options import EXIT_CODES_EPILOG, bridge_options, output_options
from atbridge.commands.session import run_bridge_command

HELP = "go online and stay online: show each state change, publish stdin, print messages"

EPILOG = f"""\
output (stdout): on a terminal a live status line; piped, one line per event,
each after its UTC time (2026-01-31T12:00:00.123Z):
  state      <state>: <cause>
  subscribed <filter> (QoS n)
  message    <topic>  <payload>
  sent       <n>: <bytes> bytes to <topic> (QoS n, ...)
--json: one JSON object per event instead (key "event").

ends: at the end of stdin when --topic is given (every line handed over): exit 0,
or 3 when a line could not be published; on Ctrl-C / SIGTERM: exit 130 (a second
Ctrl-C quits without the clean shutdown). Retries for ever unless
--give-up-after; a refusal retrying cannot fix ends it (exit 4).

{EXIT_CODES_EPILOG}
"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker, MQTT session, lifecycle, output."""
    return [bridge_options(give_up_default=None), output_options(quiet=False, what="event")]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_argument_group("messages")
    what.add_argument("--topic", metavar="T", help="publish each line of stdin to T")
    what.add_argument(
        "--qos", type=int, choices=(0, 1), default=0, help="QoS of --topic (default 0)"
    )
    what.add_argument("--retain", action="store_true", help="publish the lines retained")
    what.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="FILTER",
        help="print the messages on FILTER (repeatable)",
    )
    what.add_argument(
        "--subscribe-qos",
        type=int,
        choices=(0, 1),
        default=1,
        help="QoS of the subscriptions (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    return run_bridge_command(lambda: _main(args))


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from atbridge.at_mqtt import validate_topic_filter, validate_topic_name
    from atbridge.commands.output import Output, describe_error, message_object, message_text
    from atbridge.commands.publishing import publish_from
    from atbridge.commands.session import Interrupted, Session
    from atbridge.commands.settings import bridge_config
    from atbridge.commands.stdin import stdin_lines

    if args.topic is not None:
        validate_topic_name(args.topic)
    for topic_filter in args.subscribe:
        validate_topic_filter(topic_filter)
    config = bridge_config(args)
    if args.json:
        mode = "json"
    elif sys.stdout.isatty() and not (args.topic is not None and sys.stdin.isatty()):
        mode = "status"  # not while a person types the lines: a redraw would erase them
    else:
        mode = "stdout"
    output = Output(json_lines=args.json, progress=mode, timestamps=mode == "stdout")
    failed = 0
    interrupted = False

    async with Session(config, output) as session:
        bridge = session.bridge

        async def print_messages() -> None:
            async for message in bridge.messages():
                event = {"event": "message", **message_object(message)}
                output.result(f"{'message':<10} {message_text(message)}", event)

        async def subscribe(topic_filter: str) -> None:
            granted = await bridge.subscribe(topic_filter, qos=args.subscribe_qos)
            output.note(
                "subscribed",
                f"{topic_filter} (QoS {granted})",
                {"event": "subscribed", "filter": topic_filter, "qos": granted},
            )

        def report(index: int, payload: bytes, error: BaseException | None) -> None:
            event = {
                "event": "sent",
                "index": index,
                "topic": args.topic,
                "bytes": len(payload),
                "qos": args.qos,
                "retain": args.retain,
                "ok": error is None,
            }
            if error is not None:
                event["error"] = describe_error(error)
                output.error(f"line {index} was not published: {event['error']}")
                if args.json:
                    output.result("", event)
                return
            how = "acknowledged" if args.qos else "accepted by the modem"
            output.result(
                f"{'sent':<10} {index}: {len(payload)} bytes to {args.topic} "
                f"(QoS {args.qos}, {how})",
                event,
            )

        if args.subscribe:
            session.background(print_messages())
        for topic_filter in args.subscribe:
            session.background(subscribe(topic_filter))
        try:
            if args.topic is None:
                await session.guard(asyncio.Event().wait())  # until Ctrl-C or a failure
            else:
                queue: asyncio.Queue[bytes | None] = asyncio.Queue()
                stdin_lines(queue)
                _sent, failed = await publish_from(
                    session,
                    queue,
                    topic=args.topic,
                    qos=args.qos,
                    retain=args.retain,
                    on_result=report,
                    keep_going=True,
                )
        except Interrupted:
            interrupted = True
    if interrupted:
        return 130
    return 3 if failed else 0
