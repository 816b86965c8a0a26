"""Options and helpers shared by the commands that go online: publish, subscribe, run.

Where each setting comes from, later winning: the defaults of
:class:`~atbridge.config.BridgeConfig`, the ``--config`` TOML file (``[bridge]``,
``[bridge.timeouts]`` and an ``[mqtt]`` or ``[aliyun]`` table), the environment
(``ATBRIDGE_PORT``, ``ATBRIDGE_APN``... and ``ATBRIDGE_MQTT_PASSWORD``...), then
the options. That is why every option here defaults to "not given" rather than
to a value: a default would hide the file and the environment.

The credentials come from ``--credentials FILE`` (an ``[mqtt]`` or ``[aliyun]``
table), or ``--broker HOST:PORT`` with ``--client-id``/``--username`` and the
password from ``$ATBRIDGE_MQTT_PASSWORD``, ``--password-file`` or (visible to
other users in the process list, so last) ``--password``; or from the
``--config`` file's table. No secret is ever printed.

Progress: every lifecycle transition is shown as it happens, and while attaching
every registration status the modem reports (``attaching: not registered,
searching (stat 2)``); a long wait repeats what it is waiting for every
:data:`TICK` seconds. ``publish`` and ``subscribe`` show it on stderr, ``run``
on stdout (a live status line on a terminal).

Nothing but the standard library is imported at module level: ``atbridge
--help`` never loads asyncio, serial or transitions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from atbridge.commands.common import LINE_ENDINGS

if TYPE_CHECKING:
    import asyncio

    from atbridge.bridge import Bridge
    from atbridge.config import BridgeConfig
    from atbridge.credentials import MqttCredentials
    from atbridge.decode import Registration
    from atbridge.dialects.base import Dialect
    from atbridge.errors import AtBridgeError, Failed
    from atbridge.fsm import Message, Transition

T = TypeVar("T")

#: ``--give-up-after`` of the commands that must end (publish, subscribe).
DEFAULT_GIVE_UP = 300.0
#: Seconds between "still waiting" lines while a state lasts.
TICK = 15.0
#: States in which the lifecycle is waiting for something.
WAITING = ("probing", "configuring", "attaching", "opening_socket", "mqtt_connecting")

EXIT_CODES_EPILOG = """\
exit codes: 0 ok, 2 bad usage or configuration, 3 modem or network failure,
  4 broker refused (the reason is printed), 5 timeout, 130 interrupted"""


# -- option parsing ------------------------------------------------------------------------


def seconds(text: str) -> float:
    """argparse type: a non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a positive number of seconds."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_bridge_options(parser: argparse.ArgumentParser, *, give_up_default: float | None) -> None:
    """The modem, broker and lifecycle options of publish, subscribe and run.

    The port options are those of :func:`atbridge.commands.common.add_port_options`
    minus ``--timeout`` (the bridge has a timeout per state instead, and
    ``subscribe`` needs ``--timeout`` for itself), none of them required or
    defaulted here: the port may come from ``$ATBRIDGE_PORT`` or the ``--config``
    file.
    """
    from atbridge.dialects import DIALECTS  # light: no asyncio, serial or transitions

    parser.set_defaults(give_up_default=give_up_default)
    modem = parser.add_argument_group("modem")
    modem.add_argument(
        "--port",
        metavar="URL",
        help="serial device (/dev/ttyACM0, a pty), or a board exported by ser2net as "
        "socket://host:port or rfc2217://host:port?ign_set_control; default $ATBRIDGE_PORT "
        "or [bridge] port in --config",
    )
    modem.add_argument("--baud", type=positive_int, metavar="N", help="baud rate (default 115200)")
    modem.add_argument(
        "--rtscts", action="store_true", default=None, help="hardware flow control (RTS/CTS)"
    )
    modem.add_argument(
        "--line-ending",
        choices=sorted(LINE_ENDINGS),
        help="what ends a command line: crlf (default) or cr (V.250, nRF91 Serial Modem)",
    )
    modem.add_argument(
        "--dialect",
        metavar="D",
        choices=("auto", *DIALECTS),
        help=f"modem family: auto (default: ask the modem), {', '.join(DIALECTS)}",
    )
    modem.add_argument("--apn", metavar="A", help="access point name (default: the network's)")
    modem.add_argument(
        "--transcript",
        metavar="FILE",
        help="append a timestamped record of every byte in both directions to FILE "
        "(secrets masked)",
    )

    broker = parser.add_argument_group("broker and credentials")
    source = broker.add_mutually_exclusive_group()
    source.add_argument(
        "--credentials",
        metavar="FILE",
        help="TOML file with an [mqtt] or [aliyun] table (see atbridge creds)",
    )
    source.add_argument(
        "--broker",
        metavar="HOST:PORT",
        help="any MQTT broker (port default 1883); with --client-id, --username and the "
        "password from $ATBRIDGE_MQTT_PASSWORD or --password-file",
    )
    broker.add_argument(
        "--client-id", metavar="ID", help="MQTT client id (default atbridge-<pid>-<random>)"
    )
    broker.add_argument("--username", metavar="U", help="MQTT user name")
    password = broker.add_mutually_exclusive_group()
    password.add_argument(
        "--password-file", metavar="F", help="read the MQTT password from the first line of F"
    )
    password.add_argument(
        "--password",
        metavar="P",
        help="MQTT password; prefer $ATBRIDGE_MQTT_PASSWORD or --password-file, since "
        "options are visible in the process list and the shell history",
    )
    broker.add_argument(
        "--keepalive", type=positive_int, metavar="S", help="MQTT Keep Alive in seconds"
    )

    lifecycle = parser.add_argument_group("lifecycle")
    lifecycle.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with a [bridge] table (port, dialect, apn, backoff..., "
        "[bridge.timeouts]) and the credentials' [mqtt] or [aliyun] table",
    )
    lifecycle.add_argument(
        "--attach-timeout",
        type=positive_seconds,
        metavar="S",
        help="how long one registration attempt may take (default 600: a first scan can "
        "take minutes)",
    )
    shown = f"{give_up_default:g} s" if give_up_default is not None else "never"
    lifecycle.add_argument(
        "--give-up-after",
        type=seconds,
        metavar="S",
        help=f"stop (exit 5 or the failure's code) when not online for S seconds; "
        f"0 = never (default {shown})",
    )


def parse_broker(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as (host, port or None)."""
    from atbridge.errors import ConfigurationError

    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigurationError(f"--broker {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigurationError(f"--broker {text!r}: expected :PORT after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ConfigurationError(f"--broker {text!r} names no host", hint="use HOST:PORT")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigurationError(
            f"--broker {text!r}: the port must be a number in 1..65535", hint="use HOST:PORT"
        )
    return host, int(port_text)


def _peek_toml(path: str | None) -> dict[str, Any]:
    """The parsed file, or {} when unreadable (the loader then says why, properly)."""
    if path is None:
        return {}
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def build_credentials(args: argparse.Namespace, env: Mapping[str, str]) -> MqttCredentials:
    """The MQTT credentials the options, the environment and the files describe."""
    import secrets

    from atbridge.credentials import env_variable, load_credentials
    from atbridge.errors import ConfigurationError

    password: str | None = args.password
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                password = handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(
                f"cannot read the password file {args.password_file}: {reason}"
            ) from None
    overrides: dict[str, object] = {
        "client_id": args.client_id,
        "username": args.username,
        "password": password,
        "keepalive": args.keepalive,
    }
    path: str | None = args.credentials
    if path is None and args.config is not None:
        document = _peek_toml(args.config)
        if "mqtt" in document or "aliyun" in document:
            path = args.config
    document = _peek_toml(path)

    table: str | None
    if args.broker is not None:
        host, port = parse_broker(args.broker)
        overrides.update(host=host, port=port)
        table = "mqtt"
        if "mqtt" not in document:
            path, document = None, {}
    elif path is not None:
        if ("mqtt" in document) != ("aliyun" in document):
            table = "mqtt" if "mqtt" in document else "aliyun"
        else:
            table = None  # unreadable, neither table or both: the loader says which
    elif env_variable("mqtt", "host") in env:
        table = "mqtt"
    elif env_variable("aliyun", "product_key") in env:
        table = "aliyun"
    else:
        raise ConfigurationError(
            "no broker given",
            hint="pass --broker HOST:PORT or --credentials FILE (or a --config FILE with an "
            "[mqtt] or [aliyun] table)",
        )

    if table == "aliyun":
        for name in ("username", "password"):
            if overrides.pop(name) is not None:
                raise ConfigurationError(
                    f"--{name} does not apply to [aliyun] credentials",
                    hint="the user name and the password are derived from the device triple",
                )
    elif table == "mqtt":
        table_values = document.get("mqtt")
        has_client_id = (
            args.client_id is not None
            or env_variable("mqtt", "client_id") in env
            or (isinstance(table_values, dict) and "client_id" in table_values)
        )
        if not has_client_id:
            overrides["client_id"] = f"atbridge-{os.getpid()}-{secrets.token_hex(3)}"
    return load_credentials(path, table=table, env=env, overrides=overrides)


def build_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """The :class:`~atbridge.config.BridgeConfig` of the bridge options (see the module doc)."""
    from dataclasses import replace

    from atbridge.config import load_config

    environment = os.environ if env is None else env
    credentials = build_credentials(args, environment)
    config = load_config(
        args.config,
        env=environment,
        credentials=credentials,
        port=args.port,
        dialect=args.dialect,
        apn=args.apn,
        baudrate=args.baud,
        rtscts=args.rtscts,
        line_ending=args.line_ending,
        transcript=args.transcript,
    )
    if args.give_up_after is not None:
        config = replace(config, give_up_after=args.give_up_after or None)
    elif config.give_up_after is None and args.give_up_default is not None:
        config = replace(config, give_up_after=args.give_up_default)
    if args.attach_timeout is not None:
        config = replace(config, timeouts=replace(config.timeouts, attach=args.attach_timeout))
    return config


# -- running a command ---------------------------------------------------------------------


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM asked the command to stop."""


def run_bridge_command(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``asyncio.run(main())``; a :class:`~atbridge.fsm.Failed` becomes its cause.

    The exit code then follows the cause (broker refused 4, timeout 5, ...) rather
    than the generic "the bridge stopped" (3).
    """
    import asyncio

    from atbridge.errors import Failed

    try:
        return asyncio.run(main())
    except Failed as failed:
        raise unwrap(failed) from None


def unwrap(failed: Failed) -> AtBridgeError:
    """The error to report for a lifecycle that gave up: its cause, when it is ours."""
    from atbridge.errors import AtBridgeError, StepTimeout

    cause = failed.cause
    if isinstance(cause, AtBridgeError):
        return cause
    if isinstance(cause, TimeoutError):
        return StepTimeout(failed.message)
    return failed


# -- output --------------------------------------------------------------------------------


def render_payload(payload: bytes) -> tuple[str, str]:
    """``(text, "utf-8")`` when the payload is printable UTF-8 text, else ``(hex, "hex")``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.hex(), "hex"
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return text, "utf-8"
    return payload.hex(), "hex"


def message_object(message: Message) -> dict[str, Any]:
    """The JSON object of a received message."""
    payload, encoding = render_payload(message.payload)
    return {
        "topic": message.topic,
        "payload": payload,
        "encoding": encoding,
        "bytes": len(message.payload),
        "qos": message.qos,
        "retain": message.retain,
    }


def message_text(message: Message) -> str:
    """``<topic>  <payload>``: text with \\t, \\r, \\n escaped, or ``hex:<hex>``."""
    payload, encoding = render_payload(message.payload)
    if encoding == "hex":
        return f"{message.topic}  hex:{payload}"
    escaped = payload.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
    return f"{message.topic}  {escaped}"


class Output:
    """Where a command's lines go.

    ``progress`` is where lifecycle progress goes: ``"stderr"`` (plain lines,
    publish and subscribe), ``"stdout"`` (plain ``state`` lines, run when piped),
    ``"status"`` (one live line rewritten with ``\\r``, run on a terminal),
    ``"json"`` (JSON objects on stdout, run --json) or ``"none"``.
    """

    def __init__(self, *, json_lines: bool, progress: str) -> None:
        self.json_lines = json_lines
        self.progress_mode = progress
        self.started = time.monotonic()
        self._status: str | None = None

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:7.1f}s]"

    def progress(self, state: str, detail: str, event: dict[str, Any]) -> None:
        """A state change, a registration status, or a "still waiting" line."""
        mode = self.progress_mode
        if mode == "stderr":
            self._write(sys.stderr, f"{self.elapsed()} {state}: {detail}\n")
        elif mode == "stdout":
            self.line(f"{'state':<10} {state}: {detail}")
        elif mode == "json":
            self.line(json.dumps(event))
        elif mode == "status":
            self._status = f"{state}: {detail}"
            self._draw()

    def note(self, kind: str, text: str, event: dict[str, Any]) -> None:
        """Something the user should know that is not a result (a subscription granted)."""
        mode = self.progress_mode
        if mode == "stderr":
            self._write(sys.stderr, f"{self.elapsed()} {text}\n")
        elif mode == "json":
            self.line(json.dumps(event))
        elif mode in ("stdout", "status"):
            self.line(f"{kind:<10} {text}")

    def result(self, text: str, event: dict[str, Any]) -> None:
        """One result on stdout: ``event`` as JSON with --json, else ``text``."""
        self.line(json.dumps(event) if self.json_lines else text)

    def line(self, text: str) -> None:
        """A whole line on stdout (above the live status line, if one is shown)."""
        if self._status is not None:
            self._write(sys.stdout, "\r\x1b[K" + text + "\n")
            self._draw()
        else:
            self._write(sys.stdout, text + "\n")

    def error(self, text: str) -> None:
        if self._status is not None:
            self._write(sys.stdout, "\r\x1b[K")
        self._write(sys.stderr, f"atbridge: {text}\n")
        if self._status is not None:
            self._draw()

    def close(self) -> None:
        """End the live status line, if any."""
        if self._status is not None:
            self._status = None
            self._write(sys.stdout, "\n")

    def _draw(self) -> None:
        import shutil

        assert self._status is not None
        width = shutil.get_terminal_size().columns
        text = f"{self.elapsed()} {self._status}"
        if len(text) >= width:
            text = text[: max(width - 2, 1)] + "…"
        self._write(sys.stdout, "\r\x1b[K" + text)

    @staticmethod
    def _write(stream: Any, text: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.write(text)
            stream.flush()


class Progress:
    """Shows the lifecycle of ``bridge`` as it goes (see the module doc)."""

    def __init__(self, bridge: Bridge, output: Output, *, tick: float = TICK) -> None:
        self.bridge = bridge
        self.output = output
        self.tick = tick
        self.shown = 0
        self._last_line = time.monotonic()
        self._entered = time.monotonic()
        self._registration: str | None = None
        self._dialect: Dialect | None = None
        self._unhook: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Follow the transitions from now on (call before ``bridge.start()``)."""
        import asyncio

        stream = self.bridge.transitions()  # listens from this call on

        async def follow() -> None:
            async for transition in stream:
                self._show(transition)

        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(follow()), loop.create_task(self._ticker())]

    async def stop(self) -> None:
        """Stop following; show the transitions not shown yet (closing, disconnected)."""
        import asyncio

        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for transition in self.bridge.history[self.shown :]:
            self._show(transition)
        self._release()

    def _show(self, transition: Transition) -> None:
        self.shown += 1
        self._last_line = self._entered = time.monotonic()
        if transition.new == "attaching":
            self._registration = None
        self._hook()
        self.output.progress(
            transition.new,
            transition.cause,
            {
                "event": "state",
                "old": transition.old,
                "new": transition.new,
                "cause": transition.cause,
                "time": transition.time,
            },
        )

    def _hook(self) -> None:
        """Listen to the registration reports of the lifecycle's current dialect."""
        dialect = self.bridge.lifecycle.dialect
        if dialect is None or dialect is self._dialect:
            return
        self._release()
        self._dialect = dialect
        self._unhook = dialect.on_registration(self._on_registration)

    def _release(self) -> None:
        unhook, self._unhook, self._dialect = self._unhook, None, None
        if unhook is not None:
            with contextlib.suppress(ValueError):
                unhook()

    def _on_registration(self, registration: Registration) -> None:
        state = self.bridge.state
        text = registration.describe()
        if state != "attaching" or text == self._registration:
            return
        self._registration = text
        self._last_line = time.monotonic()
        self.output.progress(
            state,
            text,
            {
                "event": "registration",
                "state": state,
                "stat": registration.stat,
                "status": registration.status_text,
                "reject_cause": registration.reject_cause,
                "detail": text,
            },
        )

    async def _ticker(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.tick / 3)
            now = time.monotonic()
            state = self.bridge.state
            if state not in WAITING or now - self._last_line < self.tick:
                continue
            self._last_line = now
            waited = now - self._entered
            detail = f"still waiting after {waited:.0f} s"
            registration = self.bridge.lifecycle.registration
            if state == "attaching" and registration is not None:
                detail += f"; the modem reports {registration.describe()}"
            self.output.progress(
                state,
                detail,
                {"event": "waiting", "state": state, "seconds": round(waited, 1), "detail": detail},
            )


class Session:
    """A bridge with its progress display and stop signals, for one command.

    ``async with Session(config, output) as session:`` starts the lifecycle
    (without waiting for it); leaving the block disconnects cleanly and shows the
    last transitions. :meth:`guard` runs an awaitable but raises
    :class:`~atbridge.fsm.Failed` when the lifecycle gives up,
    :class:`Interrupted` on SIGINT or SIGTERM, and the error of a
    :meth:`background` task that failed.
    """

    def __init__(self, config: BridgeConfig, output: Output) -> None:
        import asyncio

        from atbridge.bridge import Bridge

        self.config = config
        self.output = output
        self.bridge = Bridge(config=config)
        self.progress = Progress(self.bridge, output)
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self._fatal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._background: list[asyncio.Task[None]] = []
        self._signals: list[int] = []

    async def __aenter__(self) -> Session:
        import asyncio

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._on_signal)
                self._signals.append(signum)
        self.progress.start()
        await self.bridge.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        import asyncio

        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self.bridge.close()
        finally:
            await self.progress.stop()
            self.output.close()
            self._remove_signal_handlers()
            if not self._fatal.done():
                self._fatal.cancel()
            elif not self._fatal.cancelled():
                self._fatal.exception()  # raised by guard() or superseded: mark it seen

    def _on_signal(self) -> None:
        if self.stop.is_set():  # a second Ctrl-C: stop waiting for the clean shutdown
            self._remove_signal_handlers()
            raise KeyboardInterrupt
        self.stop.set()

    def _remove_signal_handlers(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals = []

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the command; its error ends the command (via :meth:`guard`)."""
        import asyncio

        async def watched() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                if not self._fatal.done():
                    self._fatal.set_exception(error)

        self._background.append(asyncio.get_running_loop().create_task(watched()))

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, unless the lifecycle fails, a signal comes, or work fails."""
        import asyncio

        from atbridge.errors import Failed

        work = asyncio.ensure_future(awaitable)
        failed = asyncio.ensure_future(self.bridge.lifecycle.wait_for_state("failed"))
        stopped = asyncio.ensure_future(self.stop.wait())
        watched: set[asyncio.Future[Any]] = {work, failed, stopped, self._fatal}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            if self._fatal.done():
                self._fatal.result()  # raises the background task's error
            if failed.done():
                failure = self.bridge.lifecycle.failure
                assert failure is not None
                raise Failed(failure)
            raise Interrupted()
        finally:
            for task in (work, failed, stopped):
                if not task.done():
                    task.cancel()
            await asyncio.gather(work, failed, stopped, return_exceptions=True)

    async def wait_online(self) -> None:
        """Wait until online, within ``give_up_after`` of the start (when set)."""
        import asyncio

        from atbridge.errors import StepTimeout

        limit = self.config.give_up_after
        remaining = None if limit is None else max(limit - (time.monotonic() - self.started), 0)
        deadline = asyncio.timeout(remaining)
        try:
            async with deadline:
                await self.guard(self.bridge.wait_online())
        except TimeoutError:
            if not deadline.expired():
                raise
            registration = self.bridge.lifecycle.registration
            last = f"; the modem reports {registration.describe()}" if registration else ""
            assert limit is not None
            raise StepTimeout(
                f"not online after {limit:g} s (still {self.bridge.state}{last})",
                hint="raise --give-up-after (and --attach-timeout: a first network scan can "
                "take minutes), check the antenna, the SIM and the APN",
            ) from None


# -- publishing ----------------------------------------------------------------------------


def stdin_lines(
    queue: asyncio.Queue[bytes | None], *, limit: int | None = None, skip_empty: bool = True
) -> None:
    """Feed stdin's lines (without the line ending) to ``queue``, then ``None``.

    A daemon thread reads, so a blocked read never holds up the exit. Blank lines
    are skipped when ``skip_empty``; at most ``limit`` lines are taken.
    """
    import asyncio
    import threading

    loop = asyncio.get_running_loop()

    def put(item: bytes | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the command is over
            return False
        return True

    def reader() -> None:
        taken = 0
        try:
            for raw in sys.stdin.buffer:
                line = raw.rstrip(b"\r\n")
                if skip_empty and not line.strip():
                    continue
                taken += 1
                if not put(line):
                    return
                if limit is not None and taken >= limit:
                    break  # do not wait for a line nobody asked for
        except (OSError, ValueError):
            pass
        put(None)

    threading.Thread(target=reader, name="atbridge-stdin", daemon=True).start()


async def publish_from(
    session: Session,
    queue: asyncio.Queue[bytes | None],
    *,
    topic: str,
    qos: int,
    retain: bool,
    on_result: Callable[[int, bytes, BaseException | None], None],
    keep_going: bool,
) -> tuple[int, int]:
    """Publish each payload of ``queue`` (``None`` ends it) in order; ``(sent, failed)``.

    QoS 1 publishes are pipelined up to the in-flight window; each result is
    reported through ``on_result(index, payload, error)`` in order. A QoS 0
    message waits until the bridge is online. Without ``keep_going`` the first
    failure is raised; with it only the lifecycle's :class:`Failed` is.
    """
    import asyncio
    from collections import deque

    from atbridge.errors import Failed

    bridge = session.bridge
    window = bridge.config.max_inflight if qos else 1
    pending: deque[tuple[int, bytes, asyncio.Task[None]]] = deque()
    getter: asyncio.Task[bytes | None] | None = None
    index = sent = failed = 0
    ended = False

    async def send(payload: bytes) -> None:
        if qos == 0 and bridge.state != "online":
            await bridge.wait_online()
        await bridge.publish(topic, payload, qos=qos, retain=retain)

    try:
        while not ended or pending:
            if not ended and getter is None and len(pending) < window:
                getter = asyncio.ensure_future(queue.get())
            waits: set[asyncio.Future[Any]] = {getter} if getter is not None else set()
            if pending:
                waits.add(pending[0][2])
            await session.guard(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED))
            while pending and pending[0][2].done():
                number, payload, task = pending.popleft()
                error = task.exception()
                on_result(number, payload, error)
                if error is None:
                    sent += 1
                    continue
                failed += 1
                if not keep_going or isinstance(error, Failed):
                    raise error
            if getter is not None and getter.done():
                item, getter = getter.result(), None
                if item is None:
                    ended = True
                else:
                    index += 1
                    pending.append((index, item, asyncio.ensure_future(send(item))))
    finally:
        leftovers: list[asyncio.Future[Any]] = [item[2] for item in pending]
        if getter is not None:
            leftovers.append(getter)
        for future in leftovers:
            future.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
    return sent, failed


def describe_error(error: BaseException) -> str:
    """One line for an error: the message of ours (and of a Failed, its cause's)."""
    from atbridge.errors import AtBridgeError, Failed

    if isinstance(error, Failed):
        error = unwrap(error)
    if isinstance(error, AtBridgeError):
        return error.message
    return f"{type(error).__name__}: {error}"
