"""``atbridge watch``: signal, cell and registration as JSON lines, until told to stop.

One JSON object per line (JSONL) on stdout, or in ``--output FILE``: a sample
every ``--interval`` seconds (the dialect's signal and serving-cell queries and a
registration read on each registration source) and a record for every
notification the modem sends (``+CEREG``, ``%CESQ``, ``%MDMEV``, ``+CSCON``...).
:mod:`atbridge.watch` builds the records and runs the loop; this module opens
the port, binds the dialect, turns the notifications on (and says so once on
stderr: they are the modem's settings), and sets them back at the end.

Without ``--mqtt-rtt`` nothing but the reporting settings is changed: the dialect
is bound without its initialisation (no socket or receive-mode settings) and no
socket left on the modem is closed. ``--mqtt-rtt`` brings the link online with
the public bring-up steps (:mod:`atbridge.steps`: probe, APN, attach, data,
socket, CONNECT) and adds a PINGREQ round trip (``mqtt_rtt_ms``) to each sample;
a radio it had to turn on is turned off again at the end.

The watch ends after ``--count`` samples, after ``--duration`` seconds, or on
Ctrl-C / SIGTERM (exit 0 in all three: it is how a watch ends); every line is
flushed as it is written. A live one-line summary of the last sample is shown
on stderr when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Coroutine
from typing import IO, TYPE_CHECKING, Any

from atbridge.commands.options import (
    EXIT_CODES_EPILOG,
    bridge_options,
    command_timeout_option,
    positive_int,
    positive_seconds,
)

if TYPE_CHECKING:
    import asyncio

    from atbridge.at_mqtt import MqttSession
    from atbridge.config import BridgeConfig
    from atbridge.dialects.base import Dialect
    from atbridge.modem import Modem
    from atbridge.steps import SocketLink
    from atbridge.watch import Record, SettingChange

HELP = "sample signal, cell and registration (and every notification) as JSON lines"

EPILOG = f"""\
each line is one JSON object: time (ISO 8601 UTC), t_s (seconds since the start),
kind ("sample" or "urc"), the decoded fields (rsrp_dbm, rsrq_db, snr_db, stat,
registered, roaming, tac, cell_id, pci, earfcn, band, act, plmn...), handover
(true when the serving cell changed; previous_cell_id), raw (the modem's lines),
errors (a query that failed) and, with --mqtt-rtt, mqtt_rtt_ms.

example:
  atbridge watch --port /dev/ttyACM0 --interval 5 --output drive.jsonl
  atbridge plot drive.jsonl -o drive.png

{EXIT_CODES_EPILOG}
"""


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: modem, broker (for --mqtt-rtt), per-command --timeout."""
    return [bridge_options(give_up_default=None), command_timeout_option()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_argument_group("watch")
    what.add_argument(
        "--interval",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds between samples (default 10)",
    )
    what.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S seconds")
    what.add_argument("--count", type=positive_int, metavar="N", help="stop after N samples")
    what.add_argument(
        "--output", "-o", metavar="FILE", help="write the JSON lines to FILE (default stdout)"
    )
    what.add_argument(
        "--json",
        action="store_true",
        help="with --output, write the JSON lines to stdout as well",
    )
    what.add_argument(
        "--mqtt-rtt",
        action="store_true",
        help="go online (broker options as for publish) and add a PINGREQ round trip "
        "(mqtt_rtt_ms) to every sample",
    )
    what.add_argument(
        "--no-notifications",
        action="store_true",
        help="do not turn the modem's notifications on (samples only; nothing is changed)",
    )


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    return eventloop.run(_main(args))


class Sink:
    """Where the records go: JSON lines to a file and/or stdout, the summary to a terminal."""

    def __init__(self, output: str | None, *, tee: bool, live: bool) -> None:
        from atbridge.errors import ConfigurationError

        self.streams: list[IO[str]] = []
        self._file: IO[str] | None = None
        if output is not None:
            try:
                self._file = open(output, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot write the output file {output}: {exc.strerror}",
                    hint="give --output a file in a folder that exists and is writable",
                ) from None
            self.streams.append(self._file)
        if output is None or tee:
            self.streams.append(sys.stdout)
        self.live = live
        self.samples = 0
        self.broken = False
        self._shown = False

    def __call__(self, record: Record) -> None:
        from atbridge.watch import json_line, summary

        line = json_line(record) + "\n"
        for stream in self.streams:
            try:
                stream.write(line)
                stream.flush()
            except (BrokenPipeError, ValueError):
                self.broken = True  # the reader went away (watch | head): stop
        if record.get("kind") == "sample":
            self.samples += 1
            if self.live:
                self.status(summary(record, self.samples))

    def status(self, text: str) -> None:
        import shutil

        width = shutil.get_terminal_size().columns
        if len(text) >= width:
            text = text[: max(width - 2, 1)] + "…"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
            self._shown = True

    def note(self, text: str) -> None:
        """A line on stderr (the live summary is ended first)."""
        self.end_status()
        print(f"atbridge: {text}", file=sys.stderr, flush=True)

    def end_status(self) -> None:
        if self._shown:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("\n")
                sys.stderr.flush()
            self._shown = False

    def close(self) -> None:
        self.end_status()
        if self._file is not None:
            self._file.close()


async def _main(args: argparse.Namespace) -> int:
    import asyncio

    from atbridge.watch import Plan, watch

    sink = Sink(args.output, tee=args.json, live=sys.stderr.isatty())
    stop = asyncio.Event()
    reason: list[str] = []
    unhook = _on_signals(stop, reason)
    online: Online | None = None
    modem: Modem | None = None
    dialect: Dialect | None = None
    changes: list[SettingChange] = []
    try:
        if args.mqtt_rtt:
            online = Online(_mqtt_config(args))
            modem, dialect = await online.start(sink)
        else:
            modem, dialect = await _open_read_only(args)
        if not args.no_notifications:
            changes += await _notifications_on(modem, dialect, args.timeout, sink)
        if online is not None and not await _unless_stopped(stop, online.go_online(changes, sink)):
            sink.note(f"watch stopped by {reason[0]} before it was online")
            return 130
        plan = Plan(
            sample_queries=tuple(dialect.sample_queries),
            registration_sources=tuple(dialect.registration_sources),
            prefixes=_prefixes(dialect, args.no_notifications),
            interval=args.interval,
            count=args.count,
            duration=args.duration,
            timeout=args.timeout,
        )

        def emit(record: Record) -> None:
            sink(record)
            if sink.broken:
                stop.set()

        samples = await watch(
            modem, plan, emit, stop=stop, ping=online.ping if online is not None else None
        )
        if reason:  # --count / --duration end it by themselves: a signal interrupted it
            sink.note(f"watch stopped by {reason[0]} after {samples} samples")
            return 130
        return 0
    finally:
        unhook()
        if online is not None:  # a bring-up that failed half-way still holds the port
            modem, dialect = modem or online.modem, dialect or online.dialect
        await _close(modem, dialect, online, changes, args.timeout, sink)
        sink.close()


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Await ``work`` unless ``stop`` is set first (then cancel it); whether it finished."""
    import asyncio

    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (task, stopped):
            if not future.done():
                future.cancel()
        await asyncio.gather(stopped, return_exceptions=True)
    if not task.done() or task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()  # its error, if it failed
    return True


def _prefixes(dialect: Dialect, quiet: bool) -> tuple[str, ...]:
    from atbridge.watch import notification_prefixes

    commands = () if quiet else dialect.watch_notifications
    return notification_prefixes(commands, dialect.registration_sources)


def _on_signals(stop: asyncio.Event, reason: list[str]) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop`` (a second one stops waiting: KeyboardInterrupt)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def handler(name: str) -> None:
        if stop.is_set() and reason:
            raise KeyboardInterrupt
        reason.append(name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler, signal.Signals(signum).name)
            installed.append(signum)

    def unhook() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return unhook


async def _open_read_only(args: argparse.Namespace) -> tuple[Modem, Dialect]:
    """Open the port and bind the dialect's data without initialising it (nothing sent
    but the identification queries)."""
    from atbridge.commands.settings import open_modem
    from atbridge.dialects import dialect_class, identify

    modem = await open_modem(args)
    try:
        name = args.dialect or "auto"
        if name == "auto":
            name = (await identify(modem)).dialect
        return modem, dialect_class(name)(modem)
    except BaseException:
        await modem.close()
        raise


async def _notifications_on(
    modem: Modem, dialect: Dialect, timeout: float, sink: Sink
) -> list[SettingChange]:
    from atbridge.watch import enable_notifications

    changes = await enable_notifications(
        modem,
        sources=dialect.registration_sources,
        commands=dialect.watch_notifications,
        timeout=timeout,
    )
    if changes:
        sent = ", ".join(change.command for change in changes)
        sink.note(
            f"watch turned on the modem's notifications ({sent}); they are set back when "
            "it ends (--no-notifications: samples only)"
        )
    return changes


def _mqtt_config(args: argparse.Namespace) -> BridgeConfig:
    from atbridge.commands.settings import bridge_config
    from atbridge.errors import ConfigurationError

    config = bridge_config(args)  # no broker given: its ConfigurationError says so
    keepalive = config.credentials.keepalive
    if keepalive and args.interval >= keepalive:
        raise ConfigurationError(
            f"--interval {args.interval:g} is not below the MQTT keep alive ({keepalive} s): "
            "the broker would drop the connection between two pings",
            hint="shorten --interval or raise --keepalive",
        )
    return config


class Online:
    """The link through the modem for ``--mqtt-rtt``: the bring-up steps, then pings."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.modem: Modem | None = None
        self.dialect: Dialect | None = None
        self.socket: SocketLink | None = None
        self.session: MqttSession | None = None

    async def start(self, sink: Sink) -> tuple[Modem, Dialect]:
        """Open the port and probe (bind and initialise the dialect)."""
        from atbridge import steps
        from atbridge.dialects.base import Dialect

        self.modem = await steps.open_port(self.config)
        probed = await steps.probe(
            self.modem, self.config.dialect, timeout=self.config.timeouts.probe
        )
        assert isinstance(probed.dialect, Dialect)
        self.dialect = probed.dialect
        sink.note(f"mqtt-rtt: probed {probed.dialect_name} ({probed.seconds:.1f} s)")
        return self.modem, self.dialect

    async def go_online(self, changes: list[SettingChange], sink: Sink) -> None:
        """APN, attach (the radio on: recorded in ``changes``), data, socket, CONNECT."""
        from atbridge import steps
        from atbridge.at_mqtt import MqttSession
        from atbridge.online import connect_packet
        from atbridge.survey import ask
        from atbridge.watch import SettingChange

        assert self.modem is not None and self.dialect is not None
        config, t = self.config, self.config.timeouts
        creds = config.credentials
        assert creds.host is not None
        cfun = await ask(self.modem, "AT+CFUN?", timeout=10)
        mode = (cfun.fields or {}).get("functional_mode")
        if isinstance(mode, int) and mode != 1:
            changes.append(SettingChange("AT+CFUN=1", f"AT+CFUN={mode}"))
            sink.note(
                f"mqtt-rtt: turning the radio on (AT+CFUN=1; it was {mode}, set back at the end)"
            )
        await steps.configure(self.dialect, config.apn, timeout=t.configure)
        attached = await steps.attach(self.dialect, timeout=t.attach)
        await steps.activate_data(self.dialect, timeout=t.activate)
        opened = await steps.open_socket(
            self.dialect,
            creds.host,
            creds.port,
            tls=steps.tls_setting(creds),  # host-side TLS: its TlsClient; one socket per run
            timeout=t.open_socket,
        )
        self.socket = opened.socket
        self.session = MqttSession(connect_packet(config), topic_aliases=False)
        connected = await steps.mqtt_connect(self.socket, self.session, timeout=t.connack)
        sink.note(
            f"mqtt-rtt: online ({attached.registration.describe()}; CONNACK from "
            f"{creds.host}:{creds.port} in {connected.seconds * 1000:.0f} ms)"
        )

    async def ping(self) -> float:
        """One PINGREQ round trip in seconds (raises when no PINGRESP came)."""
        from atbridge import steps
        from atbridge.errors import CloseReason, SocketClosed

        if self.socket is None or self.session is None:
            raise SocketClosed(CloseReason.LOCAL, "the watch closed it")
        pinged = await steps.ping(self.socket, self.session, timeout=self.config.timeouts.connack)
        return pinged.round_trip

    async def close(self) -> None:
        """DISCONNECT and close the socket (bounded; a dead link is left as it is)."""
        import asyncio
        import time

        from atbridge.errors import AtBridgeError
        from atbridge.tls import TlsSocket

        sock, session, self.socket = self.socket, self.session, None
        if sock is None or session is None or sock.closed is not None:
            return
        with contextlib.suppress(AtBridgeError, TimeoutError, OSError):
            async with asyncio.timeout(self.config.timeouts.close):
                data = b""
                if session.state.value == "connected":
                    session.disconnect()
                    data = session.data_to_send(time.monotonic())
                if isinstance(sock, TlsSocket):  # DISCONNECT and close_notify in one send
                    await sock.close(final=data)
                    return
                if data:
                    await sock.send(data)
                await sock.close()


async def _close(
    modem: Modem | None,
    dialect: Dialect | None,
    online: Online | None,
    changes: list[SettingChange],
    timeout: float,
    sink: Sink,
) -> None:
    """Disconnect, set back what was changed, let go of the modem (each step bounded)."""
    from atbridge.errors import AtBridgeError
    from atbridge.watch import restore_notifications

    if online is not None:
        await online.close()
    if modem is not None and modem.is_open and changes:
        try:
            failed = await restore_notifications(modem, changes, timeout=timeout)
        except AtBridgeError as exc:
            failed = [exc.message]
        if failed:
            sink.note("could not set back: " + "; ".join(failed))
    if dialect is not None:
        with contextlib.suppress(Exception):
            await dialect.aclose()
    if modem is not None:
        await modem.close()
