"""One bridge for one command: progress shown, stop signals caught, failures raised.

Theory of operation
-------------------
``async with Session(config, output) as session:`` starts the lifecycle without
waiting for it and installs handlers for SIGINT and SIGTERM; leaving the block
disconnects cleanly (DISCONNECT, close the socket and the port), shows the last
transitions and removes the handlers. In between, a command awaits its work
through :meth:`Session.guard`, which returns the work's result unless first:

- the lifecycle gives up: :class:`~atbridge.errors.Failed` is raised;
- a signal comes: :class:`Interrupted` is raised (a second signal stops waiting
  for the clean shutdown: ``KeyboardInterrupt``);
- a :meth:`Session.background` task fails: its error is raised.

The signals are handled by the event loop, so a signal never interrupts
Python code half-way (the stdin reader is a thread on the raw file descriptor,
:mod:`atbridge.commands.stdin`, so no buffered stream is left locked at exit).

:class:`Progress` shows every lifecycle transition as it happens, and while
attaching every registration status the modem reports (``attaching: not
registered, searching (stat 2)``); a long wait repeats what it is waiting for
every :data:`TICK` seconds. It uses only :class:`~atbridge.bridge.Bridge`'s
observer API.

:func:`run_bridge_command` runs a command's coroutine: a lifecycle that gave up
is reported as its cause (so the exit code follows the cause: broker refused 4,
timeout 5), and a cause that is not an :class:`~atbridge.errors.AtBridgeError`
is a bug, raised as it is for the CLI to print with its traceback (exit 1).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

    from atbridge.bridge import Bridge
    from atbridge.commands.output import Output
    from atbridge.config import BridgeConfig
    from atbridge.decode import Registration
    from atbridge.fsm import Transition

T = TypeVar("T")

#: Seconds between "still waiting" lines while a state lasts.
TICK = 15.0
#: States in which the lifecycle is waiting for something.
WAITING = ("probing", "configuring", "attaching", "opening_socket", "mqtt_connecting")


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM asked the command to stop."""


def run_bridge_command(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``asyncio.run(main())``; a :class:`~atbridge.errors.Failed` is raised as its cause."""
    import asyncio

    from atbridge.commands.output import unwrap
    from atbridge.errors import Failed

    try:
        return asyncio.run(main())
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

        while True:
            await asyncio.sleep(self.tick / 3)
            now = time.monotonic()
            state = self.bridge.state
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
            registration = self.bridge.registration
            last = f"; the modem reports {registration.describe()}" if registration else ""
            assert limit is not None
            raise StepTimeout(
                f"not online after {limit:g} s (still {self.bridge.state}{last})",
                hint="raise --give-up-after (and --attach-timeout: a first network scan can "
                "take minutes), check the antenna, the SIM and the APN",
            ) from None
