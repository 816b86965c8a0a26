"""One bridge for one command: progress shown, stop signals caught, failures raised.

Theory of operation
-------------------
``async with Session(config, output) as session:`` starts the lifecycle without
waiting for it and installs handlers for SIGINT and SIGTERM; leaving the block
disconnects cleanly (DISCONNECT, close the socket and the port), shows the last
transitions and removes the handlers. In between, a command awaits its work
through :meth:`Session.guard`, which returns the work's result unless first:

- the lifecycle gives up: :class:`~atbridge.errors.Failed` is raised;
- a signal comes: :class:`Interrupted` is raised at once, after a line on stderr
  saying what stopping abandons (going online, QoS 1 messages not acknowledged:
  :func:`abandoned`); a second signal stops waiting for the clean shutdown
  (``KeyboardInterrupt``, exit 130) and says so;
- a :meth:`Session.background` task fails: its error is raised.

The signals are handled by the event loop, so a signal never interrupts
Python code half-way (the stdin reader is a thread on the raw file descriptor,
:mod:`atbridge.commands.stdin`, so no buffered stream is left locked at exit).

:class:`Progress` shows every lifecycle transition as it happens, and while
attaching every registration status the modem reports (``attaching: not
registered, searching (stat 2)``); a long wait repeats what it is waiting for
every :data:`TICK` seconds; a live status line is redrawn every
:data:`STATUS_TICK` seconds, so the time in the state ticks. The lifecycle says
"closed by the user" for any close; the ``closing`` line says why the command
closes instead (:func:`closing_reason`: ``done``, ``stopped by Ctrl-C``,
``giving up: ...``). It uses only :class:`~atbridge.bridge.Bridge`'s observer API.

A command that is not online within ``give_up_after`` raises
:class:`~atbridge.errors.StepTimeout` with :func:`give_up_advice`: the last error
(the cause of the last retry, and the state it failed in) and the hint that fits
it — a modem that never answered ``AT``, a forced dialect the modem refuses, a
broker the modem cannot reach, a network that does not register — not one hint
for all.

:func:`run_bridge_command` runs a command's coroutine: a lifecycle that gave up
is reported as its cause (so the exit code follows the cause: broker refused 4,
timeout 5), and a cause that is not an :class:`~atbridge.errors.AtBridgeError`
is a bug, raised as it is for the CLI to print with its traceback (exit 1).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

    from atbridge.bridge import Bridge
    from atbridge.commands.output import Output
    from atbridge.config import BridgeConfig
    from atbridge.decode import Registration
    from atbridge.dialects.base import Identity
    from atbridge.fsm import Counters, Transition

T = TypeVar("T")

#: Seconds between "still waiting" lines while a state lasts.
TICK = 15.0
#: Seconds between redraws of a live status line (its elapsed times tick).
STATUS_TICK = 1.0
#: States in which the lifecycle is waiting for something.
WAITING = ("probing", "configuring", "attaching", "opening_socket", "mqtt_connecting")


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM asked the command to stop."""


def run_bridge_command(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``main()`` on the chosen event loop (:mod:`atbridge.eventloop`); a
    :class:`~atbridge.errors.Failed` is raised as its cause."""
    from atbridge import eventloop
    from atbridge.commands.output import unwrap
    from atbridge.errors import Failed

    try:
        return eventloop.run(main())
    except Failed as failed:
        cause = unwrap(failed)
        if cause is failed.cause:
            raise cause from None  # its own traceback: a bug's shows where it happened
        raise cause from failed


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
        self._unhook: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Why the command closes the bridge, shown instead of the lifecycle's
        #: "closed by the user" (which it says for any close() call).
        self.closing_reason: str | None = None

    def start(self) -> None:
        """Follow the transitions from now on (call before ``bridge.start()``)."""
        import asyncio

        stream = self.bridge.transitions()  # listens from this call on
        self._unhook = self.bridge.on_registration(self._on_registration)

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
        unhook, self._unhook = self._unhook, None
        if unhook is not None:
            with contextlib.suppress(ValueError):
                unhook()

    def _show(self, transition: Transition) -> None:
        self.shown += 1
        self._last_line = self._entered = time.monotonic()
        if transition.new == "attaching":
            self._registration = None
        cause = transition.cause
        if transition.new == "closing" and cause == "closed by the user" and self.closing_reason:
            cause = self.closing_reason
        self.output.progress(
            transition.new,
            cause,
            {
                "event": "state",
                "old": transition.old,
                "new": transition.new,
                "cause": cause,
                "time": transition.time,
            },
        )

    def _on_registration(self, registration: Registration) -> None:
        state = self.bridge.state
        text = registration.describe()
        if registration.registered:
            text += f"; registered on {registration.where()}"
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
                "source": registration.source,
                "rat": registration.rat,
                "detail": text,
            },
        )

    async def _ticker(self) -> None:
        import asyncio

        step = min(self.tick / 3, STATUS_TICK) if self.output.live else self.tick / 3
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            state = self.bridge.state
            if self.output.live:
                self.output.redraw(seconds_in_state=now - self._entered)
            if state not in WAITING or now - self._last_line < self.tick:
                continue
            self._last_line = now
            waited = now - self._entered
            detail = f"still waiting after {waited:.0f} s"
            registration = self.bridge.registration
            if state == "attaching" and registration is not None:
                detail += f"; the modem reports {registration.describe()}"
            self.output.progress(
                state,
                detail,
                {"event": "waiting", "state": state, "seconds": round(waited, 1), "detail": detail},
            )


class Session:
    """A bridge with its progress display and stop signals, for one command (module doc)."""

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
        self._uncatch: Callable[[], None] = lambda: None
        #: The signal that stopped the command (``"Ctrl-C"``, ``"SIGTERM"``), if one did.
        self.signal_name: str | None = None

    async def __aenter__(self) -> Session:

        self._uncatch = catch_stop_signals(self._on_signal)
        self.progress.start()
        await self.bridge.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: object
    ) -> None:
        import asyncio

        if self.progress.closing_reason is None:
            self.progress.closing_reason = closing_reason(error)
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

    def _on_signal(self, signum: int = signal.SIGINT) -> None:
        name = _signal_name(signum)
        if self.stop.is_set():  # a second Ctrl-C: stop waiting for the clean shutdown
            self._remove_signal_handlers()
            self.output.error(
                f"second {name}: quitting at once, without the clean shutdown (no "
                "DISCONNECT: the broker publishes the Will, if one was set)"
            )
            raise KeyboardInterrupt
        self.signal_name = name
        self.progress.closing_reason = f"stopped by {name}"
        self.output.error(
            f"{name}: stopping; {abandoned(str(self.bridge.state), self.bridge.counters)} "
            f"({name} again quits at once)"
        )
        self.stop.set()

    def _remove_signal_handlers(self) -> None:
        self._uncatch()

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
        failed = asyncio.ensure_future(self.bridge.wait_for_state("failed"))
        stopped = asyncio.ensure_future(self.stop.wait())
        watched: set[asyncio.Future[Any]] = {work, failed, stopped, self._fatal}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            if self._fatal.done():
                self._fatal.result()  # raises the background task's error
            if failed.done():
                failure = self.bridge.failure
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
            assert limit is not None
            message, hint = give_up_advice(
                limit=limit,
                state=str(self.bridge.state),
                history=self.bridge.history,
                registration=self.bridge.registration,
                answered=_answered(self.bridge),
                port=self.config.port,
                dialect=self.config.dialect,
                broker=_broker(self.config),
                identity=self.bridge.identity,
            )
            raise StepTimeout(message, hint=hint) from None


# -- why it gave up: the last error and the hint that fits it (pure) ------------------------

#: States where the modem is on the network and the failure is on the way to the broker.
_BROKER_STATES = ("opening_socket", "mqtt_connecting")


def _answered(bridge: Bridge) -> bool | None:
    """Whether the modem sent any byte on the port open now (``None``: no port open)."""
    modem = bridge.modem
    if modem is None or not modem.is_open:
        return None
    return modem.bytes_read > 0


def _broker(config: BridgeConfig) -> str:
    credentials = config.credentials
    return f"{credentials.host or '?'}:{credentials.port}"


def last_failure(history: Sequence[Transition]) -> Transition | None:
    """The last ``lost`` transition (into ``backing_off``): where and why the last try failed."""
    for transition in reversed(history):
        if transition.new == "backing_off":
            return transition
    return None


def fitting_dialect(identity: Identity | None) -> str | None:
    """The dialect whose identification matches what the modem said it is, if any."""
    if identity is None or not (identity.manufacturer or identity.model):
        return None
    from atbridge.dialects import registry

    for cls in registry():
        if cls.identifies(identity.manufacturer, identity.model):
            return cls.name
    return None


def give_up_advice(
    *,
    limit: float,
    state: str,
    history: Sequence[Transition],
    registration: Registration | None,
    answered: bool | None,
    port: str,
    dialect: str,
    broker: str,
    identity: Identity | None = None,
) -> tuple[str, str]:
    """``(message, hint)`` for a command that was not online after ``limit`` seconds.

    The message says the last error (the cause of the last retry and the state it
    happened in) or, when nothing failed, what it was still waiting for; the hint
    fits what happened: a modem that never answered, a forced dialect the modem
    refuses, a broker the modem cannot reach, a network that does not register.
    """
    failure = last_failure(history)
    where = failure.old if failure is not None else state
    reports = f"; the modem reports {registration.describe()}" if registration else ""
    if failure is not None:
        message = (
            f"not online after {limit:g} s; the last try failed while "
            f"{where.replace('_', ' ')}: {failure.cause}{reports}"
        )
    else:
        message = f"not online after {limit:g} s (still {state}{reports})"
    more_time = "raise --give-up-after"
    # The port is the lifecycle's only once the first AT was answered (None until then).
    if where == "probing" and answered is not True:
        message = f"not online after {limit:g} s: the modem never answered AT on {port}"
        return message, (
            "check --port (`atbridge ports` lists the serial ports), that the modem is "
            "powered and not held by another program, the baud rate (--baud) and the line "
            "ending; a ser2net/RFC 2217 port must pass the bytes through"
        )
    if where in ("probing", "configuring") and dialect != "auto" and failure is not None:
        fits = fitting_dialect(identity)
        said = ""
        if identity is not None and (identity.manufacturer or identity.model):
            said = f" (it says it is {identity.manufacturer} {identity.model})".replace("  ", " ")
        if fits is not None and fits != dialect:
            hint = f"--dialect {dialect} does not fit this modem{said}: use --dialect {fits}"
            return message, f"{hint} (or auto)"
        return message, (
            f"the modem refuses what --dialect {dialect} sends{said}: check that the dialect "
            "fits the modem, or use --dialect auto"
        )
    if where in _BROKER_STATES:
        if where == "opening_socket":
            return message, (
                f"the modem is on the network but could not open a connection to the broker "
                f"{broker}: check --broker (host and port), that the broker is listening and "
                "reachable from the mobile network (firewall, a private APN); or "
                f"{more_time}"
            )
        return message, (
            f"the modem reached {broker} but the MQTT session did not open: check that the "
            "port speaks MQTT (TLS or not), --mqtt-version and the credentials"
        )
    if where == "attaching" or state == "attaching":
        if registration is not None and registration.stat == 3:
            return message, (
                "the network denied the registration: check that the SIM is active and "
                "allowed on this network (data plan, roaming), and the bands and RAT"
            )
        return message, (
            f"{more_time} (and --attach-timeout: a first network scan can take minutes), "
            "check the antenna, the SIM and the APN"
        )
    if where == "configuring":
        return message, (
            "check the SIM (inserted, PIN) and the APN (--apn); run with -v to see each step"
        )
    if where == "probing":
        return message, (
            "the modem answers but the probe did not finish: check the transcript "
            "(--transcript or -d), the line ending and the firmware"
        )
    return message, f"{more_time}; run with -v to see why each try failed"


# -- stopping: what a signal abandons, why the bridge closes (pure) --------------------------


def catch_stop_signals(callback: Callable[[int], None]) -> Callable[[], None]:
    """Call ``callback(signum)`` on Ctrl-C or SIGTERM, from the event loop (never in the
    middle of a statement); the function returned removes the handlers (again: nothing)."""
    import asyncio

    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, callback, signum)
            installed.append(signum)

    def uncatch() -> None:
        while installed:
            loop.remove_signal_handler(installed.pop())

    return uncatch


def _signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def abandoned(state: str, counters: Counters) -> str:
    """What stopping now gives up: going online, or the messages not acknowledged yet."""
    waiting = counters.waiting_qos1
    parts = []
    if state != "online":
        parts.append(f"abandoning going online (it was {state.replace('_', ' ')})")
    if waiting:
        parts.append(f"abandoning {waiting} QoS 1 message{'s' * (waiting != 1)} not acknowledged")
    return "; ".join(parts) or "nothing was waiting"


def closing_reason(error: BaseException | None) -> str:
    """The ``closing`` line's cause for a command that leaves its session with ``error``."""
    from atbridge.errors import describe_error

    if error is None:
        return "done"
    if isinstance(error, Interrupted):
        return "stopped by a signal"
    if isinstance(error, Exception):
        return f"giving up: {describe_error(error).split('; ')[0]}"
    return "interrupted"
