"""The public :class:`Bridge`: a modem, online, speaking MQTT.

A :class:`Bridge` owns one :class:`~atbridge.fsm.Lifecycle` (the state machine
that brings the modem online and keeps it there) and is the only thing callers
need: the commands, ``hil/``, the demo and the benchmarks use the observer API
below and never reach into ``bridge.lifecycle``.

Observer API (all read-only views of the lifecycle):

- ``state`` — the current state, a :class:`~atbridge.fsm.State` (a ``StrEnum``:
  ``bridge.state == "online"`` holds);
- ``history`` — every :class:`~atbridge.fsm.Transition` so far;
  ``transitions()`` — the transitions from now on, as an async iterator;
- ``await wait_for_state(*states, timeout=None)`` — the state reached;
- ``failure`` — the error that made the lifecycle give up (``None`` until then);
- ``identity`` — the modem's :class:`~atbridge.dialects.base.Identity` once probed;
- ``registration`` — the last :class:`~atbridge.decode.Registration` reported;
- ``on_progress(callback(state, text))`` — what a long wait is seeing;
- ``on_registration(callback(registration))`` — every registration report of
  whichever dialect is bound (re-hooked across reopen and re-probe);
- ``steps`` — the last result of every bring-up step, by name
  (:mod:`atbridge.steps`: timings and what each step learnt);
- ``counters`` — a :class:`~atbridge.fsm.Counters` snapshot (dropped QoS 0,
  failures in a row, QoS 1 messages waiting, received messages dropped or waiting,
  QoS 1 messages abandoned as ones the broker refuses);
- ``dialect`` / ``modem`` — the bound dialect and AT channel while there is one
  (for actions on the modem itself, e.g. a HIL test restarting it, and byte
  counters); ``None`` between attempts.

Each of these callbacks returns a function that removes it.

A :class:`Bridge` dropped without :meth:`~Bridge.close` (its ``wait_online`` cancelled by
a timeout, and the object forgotten) would otherwise keep its lifecycle running, holding
the port and reconnecting with sockets of its own until the modem has none left: when the
object goes away while its lifecycle still runs, it is closed (logged as the caller's bug).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any

from atbridge.config import BridgeConfig
from atbridge.credentials import MqttCredentials
from atbridge.decode import Registration
from atbridge.dialects.base import Identity
from atbridge.errors import ConfigurationError, Failed
from atbridge.fsm import Counters, Lifecycle, Message, State, Transition
from atbridge.steps import DialectLink, ModemPort, StepResult

log = logging.getLogger(__name__)

#: Closes of lifecycles whose Bridge was dropped while running, kept until they are done.
_ORPHAN_CLOSES: set[asyncio.Task[None]] = set()


def _close_orphan(lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop) -> None:
    """The Bridge of ``lifecycle`` went away while it ran: close it on its loop."""
    if not lifecycle.running or loop.is_closed():
        return
    log.warning(
        "a Bridge was dropped without close() while %s: closing its lifecycle "
        "(use `async with Bridge(...)` or call close())",
        lifecycle.state,
    )

    def close() -> None:
        task = loop.create_task(lifecycle.close(), name="atbridge-orphan-close")
        _ORPHAN_CLOSES.add(task)
        task.add_done_callback(_ORPHAN_CLOSES.discard)

    loop.call_soon_threadsafe(close)


# ------------------------------------------------------------------------


class Bridge:
    """A modem, online, speaking MQTT: the API most users want.

    ::

        async with Bridge(port="/dev/ttyACM0", credentials=creds, apn="iot.example") as bridge:
            await bridge.subscribe("/pk/dn/user/get", qos=1)
            await bridge.publish("/pk/dn/user/update", b"21.5", qos=1)
            async for message in bridge.messages():
                ...

    Entering the block starts the lifecycle and waits until it is online (or has
    failed, which raises). Leaving it disconnects cleanly.
    """

    def __init__(
        self,
        port: str | None = None,
        *,
        credentials: MqttCredentials | None = None,
        dialect: str = "auto",
        apn: str | None = None,
        config: BridgeConfig | None = None,
        online_timeout: float | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            if credentials is None or port is None:
                raise ConfigurationError(
                    "a Bridge needs a port and credentials (or a BridgeConfig)",
                    hint="Bridge(port='/dev/ttyACM0', credentials=MqttCredentials.plain(...))",
                )
            config = BridgeConfig(
                port=port, credentials=credentials, dialect=dialect, apn=apn, **options
            )
        elif options or credentials is not None or port is not None:
            config = replace(
                config,
                **{
                    k: v
                    for k, v in {"port": port, "credentials": credentials, **options}.items()
                    if v is not None
                },
            )
        self.config = config
        self.online_timeout = online_timeout
        self.lifecycle = Lifecycle(config)
        self._orphan: weakref.finalize[Any, Any] | None = None

    # -- observing ---------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The lifecycle state (``online``, ``backing_off``, ...; compares equal to its name)."""
        return self.lifecycle.state

    @property
    def history(self) -> list[Transition]:
        """Every transition so far."""
        return self.lifecycle.history

    def transitions(self) -> AsyncIterator[Transition]:
        """The transitions from now on, as they happen."""
        queue = self.lifecycle.listen()

        async def stream() -> AsyncIterator[Transition]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self.lifecycle.unlisten(queue)

        return stream()

    async def wait_for_state(self, *states: str, timeout: float | None = None) -> State:
        """Wait until the lifecycle is in one of ``states``; return the state reached.

        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: no limit).
        """
        return await self.lifecycle.wait_for_state(*states, timeout=timeout)

    @property
    def failure(self) -> BaseException | None:
        """Why the lifecycle gave up (the state is ``failed``), else ``None``."""
        return self.lifecycle.failure

    @property
    def identity(self) -> Identity | None:
        """Who answered the last probe (manufacturer, model, revision, dialect)."""
        return self.lifecycle.identity

    @property
    def registration(self) -> Registration | None:
        """The last network registration the modem reported."""
        return self.lifecycle.registration

    def on_progress(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``callback(state, text)`` with what a long wait is seeing; returns the unhook."""
        return self.lifecycle.on_progress(callback)

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]:
        """Call ``callback`` with every registration report; returns the unhook."""
        return self.lifecycle.on_registration(callback)

    @property
    def steps(self) -> Mapping[str, StepResult]:
        """The last result of each bring-up step by step name (see :mod:`atbridge.steps`)."""
        return self.lifecycle.steps

    @property
    def counters(self) -> Counters:
        """Counters: dropped QoS 0, socket/attach failures in a row, QoS 1 waiting."""
        return self.lifecycle.counters

    @property
    def dialect(self) -> DialectLink | None:
        """The dialect bound to the modem right now (``None`` between attempts)."""
        return self.lifecycle.dialect

    @property
    def modem(self) -> ModemPort | None:
        """The AT channel right now (``None`` between attempts): byte counters, transcript."""
        return self.lifecycle.modem

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the lifecycle without waiting for it."""
        self.lifecycle.start()
        if self._orphan is None:
            # Not a method of self: the finalizer must not keep the Bridge alive.
            self._orphan = weakref.finalize(
                self, _close_orphan, self.lifecycle, asyncio.get_running_loop()
            )
            self._orphan.atexit = False

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until online; raise :class:`Failed` if the lifecycle gives up first."""
        state = await self.lifecycle.wait_for_state("online", "failed", timeout=timeout)
        if state == "failed":
            assert self.lifecycle.failure is not None
            raise Failed(self.lifecycle.failure)

    async def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish; QoS 1 returns on PUBACK, QoS 0 when the modem accepted the bytes."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        await self.lifecycle.link.publish(topic, data, qos, retain)

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> int:
        """Subscribe (restored after every reconnect); returns the granted QoS."""
        return await self.lifecycle.link.subscribe(topic_filter, qos)

    def expect_unsubscribed(self, topic_filter: str) -> None:
        """Deliver messages on ``topic_filter`` without subscribing to it: for a broker
        that publishes unasked (Aliyun's registration reply on ``/ext/register``).
        Call it before :meth:`start`, as the reply may come with the CONNACK."""
        self.lifecycle.link.expect_unsubscribed(topic_filter)

    def take_message(self) -> Message | None:
        """The oldest message waiting, without waiting for one (``None``: none waits)."""
        queue = self.lifecycle.link.messages
        return queue.get_nowait() if queue.qsize() else None

    async def messages(self) -> AsyncIterator[Message]:
        """Messages on the subscriptions, as they arrive.

        At most ``receive_queue`` wait for you: beyond that QoS 0 messages are
        dropped (oldest first, counted) and QoS 1/2 ones held back at the broker
        until you read (see :mod:`atbridge.online`).
        """
        while True:
            yield await self.lifecycle.link.messages.get()

    async def close(self) -> None:
        """Disconnect cleanly and close the port."""
        await self.lifecycle.close()

    async def __aenter__(self) -> Bridge:
        await self.start()
        try:
            await self.wait_online(self.online_timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["Bridge"]
