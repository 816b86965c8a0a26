"""The connection lifecycle: from power-on to an MQTT session that stays up.

Theory of operation
-------------------
The lifecycle is one state machine, declared as data in :data:`STATES` and
:data:`TRANSITIONS` and run by a ``transitions`` :class:`AsyncMachine`. The same
table draws the diagram (:func:`mermaid`, ``atbridge fsm --mermaid``)::

    disconnected -> probing -> configuring -> attaching -> opening_socket
                 -> mqtt_connecting -> online
    any working state -> backing_off -> (probing | attaching | opening_socket)
    any state -> failed (a reason retrying cannot fix) ; any state -> closing -> disconnected

One task, the *runner*, walks the machine: it fires a trigger, then does that
state's work under the state's own timeout (:class:`Timeouts`). The machine's
callbacks only record what happened, so none of transitions' asyncio pitfalls
(cancelled callbacks, swallowed cancellation) can wedge it. Every transition
becomes a :class:`Transition` (old state, new state, cause, time) in
:attr:`Lifecycle.history` and on the event stream.

When a step fails, the runner decides how far back to go (:func:`recovery`):

- the socket or the broker failed (peer closed, CONNACK "server unavailable",
  PINGRESP missing, open failed) -> open the socket again; after
  ``socket_failures_before_reattach`` in a row -> re-attach (``AT+CFUN=4``, then
  attach);
- the network dropped registration or the PDP context -> re-attach; after
  ``attach_failures_before_restart`` attach failures in a row -> restart the modem;
- the modem rebooted, or the AT channel lost sync -> probe again (sync, identify,
  configure);
- the serial link went away -> reopen the port, then probe;
- a refusal that retrying cannot fix (bad user name or password, not authorised,
  identifier rejected, banned) or a configuration error -> ``failed`` with that reason.

Between attempts it waits in ``backing_off``: exponential backoff with jitter and
a cap (:class:`Backoff`), reset after a good session (a CONNACK).

Online, the session (:class:`~atbridge.at_mqtt.MqttSession`) keeps packet ids,
the QoS 1 in-flight window and the keep-alive clock. A PINGREQ goes out when
nothing was sent for the keep-alive interval; a missing PINGRESP declares the
link dead. QoS 1 messages published while offline wait in the session's queue
(bounded by :attr:`BridgeConfig.queue_size`) and go out after the next CONNACK,
those that were in flight again with DUP. Subscriptions are restored after every
reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from transitions.extensions.asyncio import AsyncMachine

from atbridge.at_mqtt import (
    Connect,
    Connected,
    MessageReceived,
    MqttSession,
    PublishAcknowledged,
    Subscribed,
)
from atbridge.config import Backoff, BridgeConfig
from atbridge.decode import Registration
from atbridge.dialects import open_dialect
from atbridge.dialects.base import Dialect, Identity, ModemSocket
from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    BrokerRefused,
    CloseReason,
    ConfigurationError,
    Failed,
    LinkLost,
    LocalProtocolError,
    ModemRebooted,
    Offline,
    PingTimeout,
    PublishRefused,
    QueueFull,
    RegistrationLost,
    SocketClosed,
    StepTimeout,
    SubscribeRefused,
    describe_error,
)
from atbridge.modem import Modem

log = logging.getLogger(__name__)

# -- the machine, as data ----------------------------------------------------------------

WORKING = ["probing", "configuring", "attaching", "opening_socket", "mqtt_connecting", "online"]

STATES: list[str] = [
    "disconnected",
    *WORKING,
    "backing_off",
    "closing",
    "failed",
]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": "disconnected", "dest": "probing"},
    {"trigger": "probed", "source": "probing", "dest": "configuring"},
    {"trigger": "configured", "source": "configuring", "dest": "attaching"},
    {"trigger": "attached", "source": "attaching", "dest": "opening_socket"},
    {"trigger": "socket_opened", "source": "opening_socket", "dest": "mqtt_connecting"},
    {"trigger": "connack", "source": "mqtt_connecting", "dest": "online"},
    {"trigger": "lost", "source": WORKING, "dest": "backing_off"},
    {"trigger": "reprobe", "source": "backing_off", "dest": "probing"},
    {"trigger": "reattach", "source": "backing_off", "dest": "attaching"},
    {"trigger": "reconnect", "source": "backing_off", "dest": "opening_socket"},
    {"trigger": "give_up", "source": [*WORKING, "backing_off"], "dest": "failed"},
    {"trigger": "close", "source": [*WORKING, "backing_off", "disconnected"], "dest": "closing"},
    {"trigger": "closed", "source": "closing", "dest": "disconnected"},
]


def mermaid() -> str:
    """The lifecycle diagram (Mermaid ``stateDiagram-v2``), drawn from the table above."""
    from transitions.extensions import GraphMachine

    class _Model:
        pass

    machine = GraphMachine(
        model=_Model(),
        states=STATES,
        transitions=TRANSITIONS,
        initial="disconnected",
        auto_transitions=False,
        graph_engine="mermaid",
        title="atbridge lifecycle",
    )
    return str(machine.get_graph().draw(None))


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of the lifecycle: from ``old`` to ``new`` because of ``cause``."""

    old: str
    new: str
    cause: str
    time: float

    def __str__(self) -> str:
        return f"{self.old} -> {self.new}: {self.cause}"


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscription."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class Step(Enum):
    """Where the runner goes back to after a failure."""

    REOPEN = "reopen the port"
    PROBE = "probe"
    ATTACH = "re-attach"
    RESTART = "restart the modem"
    SOCKET = "reconnect the socket"
    FAIL = "give up"


@dataclass(frozen=True, slots=True)
class Counters:
    """What the lifecycle has counted so far (a snapshot)."""

    #: QoS 0 messages dropped while offline (``qos0_offline="drop"``).
    dropped_qos0: int
    #: Socket or broker failures in a row (reset by a CONNACK, or by re-attaching).
    socket_failures: int
    #: Attach timeouts in a row (reset by a registration, or by restarting the modem).
    attach_failures: int
    #: QoS 1 messages waiting for their PUBACK (in flight or queued while offline).
    waiting_qos1: int


_LINE_ENDINGS = {"crlf": "\r\n", "cr": "\r", "lf": "\n"}


def recovery(error: BaseException) -> Step:
    """Where to go back to after ``error`` (before escalation counters apply)."""
    if isinstance(error, BrokerRefused):
        return Step.SOCKET if error.retryable else Step.FAIL
    if isinstance(error, ConfigurationError | LocalProtocolError):
        return Step.FAIL
    if isinstance(error, SocketClosed):
        return {
            CloseReason.PEER: Step.SOCKET,
            CloseReason.LOCAL: Step.SOCKET,
            CloseReason.ERROR: Step.SOCKET,
            CloseReason.NETWORK: Step.ATTACH,
            CloseReason.REBOOT: Step.PROBE,
            CloseReason.LINK: Step.REOPEN,
        }[error.reason]
    if isinstance(error, LinkLost):
        return Step.REOPEN
    if isinstance(error, ModemRebooted | AtTimeout):
        return Step.PROBE
    if isinstance(error, RegistrationLost):
        return Step.ATTACH
    return Step.SOCKET


# -- the lifecycle -------------------------------------------------------------------------


class _Model:
    state: str


class Lifecycle:
    """Runs the state machine for one modem and one broker. Used through :class:`Bridge`."""

    def __init__(self, config: BridgeConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.model = _Model()
        self.machine = AsyncMachine(
            model=self.model,
            states=STATES,
            transitions=TRANSITIONS,
            initial="disconnected",
            auto_transitions=False,
            queued=True,
            after_state_change=self._record,
            send_event=True,
        )
        self.history: list[Transition] = []
        self.identity: Identity | None = None
        self.registration: Registration | None = None
        self.failure: BaseException | None = None
        self.modem: Modem | None = None
        self.dialect: Dialect | None = None
        self.socket: ModemSocket | None = None
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        creds = config.credentials
        self.session = MqttSession(
            Connect(
                client_id=creds.client_id,
                clean_session=True,
                keepalive=creds.keepalive,
                username=creds.username,
                password=creds.password.reveal().encode() if creds.password else None,
            ),
            max_inflight=config.max_inflight,
            ping_grace=config.ping_grace,
        )
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.subscriptions: dict[str, int] = {}
        self.dropped_qos0 = 0
        #: The last result of every bring-up step, by step name (see :mod:`atbridge.steps`).
        self.steps: dict[str, Any] = {}
        self._socket_failures = 0
        self._attach_failures = 0
        self._registration_listeners: list[Callable[[Registration], None]] = []
        self._cause = "start"
        self._listeners: list[asyncio.Queue[Transition]] = []
        self._progress_listeners: list[Callable[[str, str], None]] = []
        self._acks: dict[int, asyncio.Future[PublishAcknowledged]] = {}
        self._subacks: dict[int, asyncio.Future[Subscribed]] = {}
        self._sub_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._state_changed = asyncio.Condition()
        self._send_lock = asyncio.Lock()
        self._queue_space = asyncio.Condition()
        self._runner: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._online_problem: asyncio.Future[BaseException] | None = None
        self._last_good = self.clock()

    # -- observation -------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.model.state

    def _record(self, event: Any) -> None:
        transition = Transition(
            event.transition.source, event.transition.dest, self._cause, time.time()
        )
        self.history.append(transition)
        log.info("%s", transition)
        for queue in list(self._listeners):
            queue.put_nowait(transition)

        async def notify() -> None:
            async with self._state_changed:
                self._state_changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def listen(self) -> asyncio.Queue[Transition]:
        queue: asyncio.Queue[Transition] = asyncio.Queue()
        self._listeners.append(queue)
        return queue

    async def wait_for_state(self, *states: str, timeout: float | None = None) -> str:
        async with asyncio.timeout(timeout), self._state_changed:
            await self._state_changed.wait_for(lambda: self.state in states)
        return self.state

    async def _go(self, trigger: str, cause: str) -> None:
        self._cause = cause
        if not await self.model.trigger(trigger):  # type: ignore[attr-defined]
            raise RuntimeError(f"lifecycle bug: {trigger!r} is not allowed from {self.state}")

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="atbridge")

    async def close(self) -> None:
        """Disconnect cleanly (DISCONNECT, close the socket and the port)."""
        self._closing = True
        self._wake.set()
        if self._online_problem is not None and not self._online_problem.done():
            self._online_problem.set_result(_Closing())
        runner, self._runner = self._runner, None
        work = self._work
        if work is not None and not work.done():
            # In a long step (registration can take minutes): stop the step now. Only
            # the step's own task is cancelled, never the runner inside a transition.
            work.cancel()
        if runner is not None:
            try:
                async with asyncio.timeout(self.config.timeouts.close + 5):
                    await asyncio.shield(runner)
            except TimeoutError:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        await self._teardown(graceful=True)
        if self.state not in ("disconnected", "failed"):
            if self.state != "closing":
                await self._go("close", "closed by the user")
            await self._go("closed", "closed")

    async def _run(self) -> None:
        step = Step.PROBE
        await self._go("start", "start")
        while not self._closing:
            try:
                if step in (Step.REOPEN, Step.PROBE, Step.RESTART):
                    if self.state != "probing":
                        await self._go("reprobe", step.value)
                    await self._step(
                        self._probe(reopen=step is Step.REOPEN, restart=step is Step.RESTART)
                    )
                    await self._go("probed", self._describe_identity())
                    await self._step(self._configure())
                    apn = self.config.apn
                    await self._go("configured", f"APN {apn}" if apn else "modem's own APN")
                    step = Step.ATTACH
                if step is Step.ATTACH:
                    if self.state != "attaching":
                        await self._go("reattach", "re-attach")
                    await self._step(self._attach())
                    self._attach_failures = 0
                    await self._go("attached", self._describe_registration())
                    step = Step.SOCKET
                if step is Step.SOCKET:
                    if self.state != "opening_socket":
                        await self._go("reconnect", "reconnect")
                    await self._step(self._open_socket())
                    await self._go("socket_opened", f"TCP connected to {self._endpoint()}")
                    await self._step(self._mqtt_connect())
                    self._socket_failures = 0
                    self.backoff.reset()
                    self._last_good = self.clock()
                    await self._go("connack", "CONNACK accepted")
                    problem = await self._online()
                    raise problem
            except _Closing:
                break
            except asyncio.CancelledError:
                if self._closing:
                    break  # close() stopped a long step
                raise
            except Exception as failure:  # every failure decides where to go back to
                if self._closing:
                    break
                error = self._explain(failure)
                step = recovery(error)
                if step is Step.SOCKET and self.state in (
                    "opening_socket",
                    "mqtt_connecting",
                    "online",
                ):
                    self._socket_failures += 1
                    if self._socket_failures >= self.config.socket_failures_before_reattach:
                        self._socket_failures = 0
                        step = Step.ATTACH
                if self.state == "attaching" and step in (Step.SOCKET, Step.ATTACH):
                    step = Step.ATTACH
                if isinstance(error, StepTimeout) and self.state == "attaching":
                    self._attach_failures += 1
                    if self._attach_failures >= self.config.attach_failures_before_restart:
                        self._attach_failures = 0
                        step = Step.RESTART
                given_up = (
                    self.config.give_up_after is not None
                    and self.clock() - self._last_good > self.config.give_up_after
                )
                if step is Step.FAIL or given_up:
                    self.failure = error
                    await self._teardown(graceful=False)
                    await self._go("give_up", describe_error(error))
                    self._fail_waiters(Failed(error))
                    return
                await self._go("lost", describe_error(error))
                await self._teardown(graceful=False, keep_modem=step is not Step.REOPEN)
                delay = self.backoff.next_delay()
                self._cause = f"retry in {delay:.1f} s: {step.value}"
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        if self.state not in ("closing", "disconnected", "failed"):
            await self._go("close", "closed by the user")

    async def _step(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one step's work as its own task, so close() can stop just the step."""
        task = asyncio.get_running_loop().create_task(work)
        self._work = task
        try:
            await task
        except asyncio.CancelledError:
            task.cancel()  # the runner itself was cancelled: take the step down with it
            raise
        finally:
            self._work = None

    _STEP_TIMEOUTS: ClassVar[dict[str, str]] = {
        "probing": "probe",
        "configuring": "configure",
        "attaching": "activate",
        "opening_socket": "open_socket",
        "mqtt_connecting": "connack",
    }

    def _explain(self, failure: Exception) -> Exception:
        """A bare TimeoutError from a step's time limit, told in the step's words."""
        if isinstance(failure, TimeoutError) and not isinstance(failure, AtBridgeError):
            name = self._STEP_TIMEOUTS.get(self.state, "")
            limit = getattr(self.config.timeouts, name, None)
            within = f" within {limit:g} s" if limit is not None else ""
            return StepTimeout(
                f"{self.state.replace('_', ' ')} did not finish{within}",
                hint=f"raise the {name or 'step'} timeout, or check the transcript "
                "for what the modem answered",
            )
        return failure

    # -- the steps ---------------------------------------------------------------------------

    async def _probe(self, *, reopen: bool, restart: bool) -> None:
        t = self.config.timeouts
        async with asyncio.timeout(t.probe):
            if reopen or self.modem is None or not self.modem.is_open:
                if self.modem is not None:
                    await self.modem.close()
                    self.modem = None
                self.dialect = None
                self.modem = await Modem.open(
                    self.config.port,
                    baudrate=self.config.baudrate,
                    rtscts=self.config.rtscts,
                    line_ending=_LINE_ENDINGS.get(
                        (self.config.line_ending or "crlf").lower(), self.config.line_ending or ""
                    ),
                    transcript=self.config.transcript,
                )
                for secret in self.config.credentials.secrets():
                    self.modem.add_secret(secret)
            if restart and self.dialect is not None:
                await self.dialect.restart()
            if self.dialect is not None:
                self.dialect.detach_from_modem()
            self.dialect, identity = await open_dialect(self.modem, self.config.dialect)
            self.identity = identity or self.identity
            self.dialect.on_registration(self._on_registration)

    async def _configure(self) -> None:
        assert self.dialect is not None
        async with asyncio.timeout(self.config.timeouts.configure):
            await self.dialect.configure_pdp(self.config.apn)

    async def _attach(self) -> None:
        assert self.dialect is not None
        t = self.config.timeouts
        await self.dialect.attach(timeout=t.attach, progress=self._on_registration)
        async with asyncio.timeout(t.activate):
            await self.dialect.activate_data(timeout=t.activate)

    async def _open_socket(self) -> None:
        assert self.dialect is not None
        creds = self.config.credentials
        assert creds.host is not None
        self.socket = await self.dialect.open_socket(
            creds.host, creds.port, tls=creds.tls, timeout=self.config.timeouts.open_socket
        )

    async def _mqtt_connect(self) -> None:
        assert self.socket is not None
        session = self.session
        session.connection_lost()
        session.connect()
        await self._flush()
        async with asyncio.timeout(self.config.timeouts.connack):
            while True:
                data = await self.socket.receive()
                session.receive_data(data, self.clock())
                event = session.next_event()  # raises BrokerRefused
                if isinstance(event, Connected):
                    break
        # Restore the subscriptions and release what queued while offline.
        for topic_filter, qos in self.subscriptions.items():
            packet_id = session.subscribe(topic_filter, qos=qos)
            self._subacks[packet_id] = asyncio.get_running_loop().create_future()
        await self._flush()

    async def _online(self) -> BaseException:
        """Serve the session until something breaks; return what broke it."""
        assert self.socket is not None and self.dialect is not None
        loop = asyncio.get_running_loop()
        problem: asyncio.Future[BaseException] = loop.create_future()
        self._online_problem = problem
        if self._closing:  # close() came while the runner was on its way here
            problem.set_result(_Closing())

        def report(error: BaseException) -> None:
            if not problem.done():
                problem.set_result(error)

        def on_registration(registration: Registration) -> None:
            if not registration.registered:
                report(RegistrationLost(f"registration lost: {registration.describe()}"))

        unhook = self.dialect.on_registration(on_registration)
        reader = loop.create_task(self._read_loop(report))
        pinger = loop.create_task(self._ping_loop(report))
        # Anything events produced before online (SUBACKs in the CONNACK read).
        self._drain_events()
        try:
            return await problem
        finally:
            unhook()
            self._online_problem = None
            for task in (reader, pinger):
                task.cancel()
            for task in (reader, pinger):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_loop(self, report: Callable[[BaseException], None]) -> None:
        assert self.socket is not None
        try:
            while True:
                data = await self.socket.receive()
                self.session.receive_data(data, self.clock())
                self._drain_events()
                await self._flush()  # acknowledgements
        except asyncio.CancelledError:
            raise
        except Exception as error:
            report(error)

    async def _ping_loop(self, report: Callable[[BaseException], None]) -> None:
        session = self.session
        try:
            while True:
                now = self.clock()
                if session.is_link_dead(now):
                    report(PingTimeout(f"no PINGRESP within {session.ping_grace:g} s"))
                    return
                due = session.next_ping_due(now)
                if due is not None and due <= now:
                    session.ping()
                    await self._flush()
                    continue
                wait = (due - now) if due is not None else session.ping_grace / 4
                await asyncio.sleep(min(max(wait, 0.01), session.ping_grace / 4 or 1.0))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            report(error)

    def _drain_events(self) -> None:
        while True:
            event = self.session.next_event()
            if event is None:
                return
            if isinstance(event, MessageReceived):
                self.messages.put_nowait(
                    Message(event.topic, event.payload, event.qos, event.retain)
                )
            elif isinstance(event, PublishAcknowledged):
                future = self._acks.pop(event.packet_id, None)
                if future is not None and not future.done():
                    future.set_result(event)
                self._notify_queue_space()
            elif isinstance(event, Subscribed):
                future_sub = self._subacks.pop(event.packet_id, None)
                if future_sub is not None and not future_sub.done():
                    future_sub.set_result(event)
                for sub, granted in zip(event.subscriptions, event.reason_codes, strict=False):
                    topic_filter = sub.topic_filter
                    for waiter in self._sub_waiters.pop(topic_filter, []):
                        if not waiter.done():
                            waiter.set_result(granted)
            # PongReceived needs nothing: the session already cleared its ping deadline.

    async def _flush_or_report(self) -> None:
        """Flush; a transport failure goes to the online loop instead of the caller."""
        try:
            await self._flush()
        except AtBridgeError as error:
            problem = self._online_problem
            if problem is None or problem.done():
                return
            problem.set_result(error)

    async def _flush(self) -> None:
        """Send what the session queued, in order."""
        async with self._send_lock:
            data = self.session.data_to_send(self.clock())
            if data and self.socket is not None:
                await self.socket.send(data)

    async def _teardown(self, *, graceful: bool, keep_modem: bool = True) -> None:
        sock, self.socket = self.socket, None
        if sock is not None and sock.closed is None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.config.timeouts.close):
                    if graceful and self.session.state.value == "connected":
                        self.session.disconnect()
                        data = self.session.data_to_send(self.clock())
                        if data:
                            await sock.send(data)
                    await sock.close()
        self.session.connection_lost()
        self._fail_subacks()
        if not keep_modem or graceful:
            if self.dialect is not None:
                self.dialect.detach_from_modem()
                self.dialect = None
            if self.modem is not None:
                await self.modem.close()
                self.modem = None

    def _fail_subacks(self) -> None:
        for future in self._subacks.values():
            if not future.done():
                future.cancel()
        self._subacks.clear()

    def _fail_waiters(self, error: Failed) -> None:
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(error)
        self._acks.clear()
        for waiters in self._sub_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        self._sub_waiters.clear()
        self._notify_queue_space()

    def _notify_queue_space(self) -> None:
        async def notify() -> None:
            async with self._queue_space:
                self._queue_space.notify_all()

        asyncio.get_running_loop().create_task(notify())

    @property
    def counters(self) -> Counters:
        """A snapshot of the counters (dropped QoS 0, failures in a row, QoS 1 waiting)."""
        return Counters(
            dropped_qos0=self.dropped_qos0,
            socket_failures=self._socket_failures,
            attach_failures=self._attach_failures,
            waiting_qos1=len(self._acks),
        )

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]:
        """Call ``callback`` with every registration report of whichever dialect is bound."""
        self._registration_listeners.append(callback)
        return lambda: self._registration_listeners.remove(callback)

    def unlisten(self, queue: asyncio.Queue[Transition]) -> None:
        """Stop feeding ``queue`` (from :meth:`listen`)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(queue)

    def _on_registration(self, registration: Registration) -> None:
        for listener in list(self._registration_listeners):
            try:
                listener(registration)
            except Exception:
                log.exception("registration listener %r failed", listener)
        if registration == self.registration:
            return
        self.registration = registration
        self._progress(f"registration: {registration.describe()}")

    def on_progress(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``callback(state, text)`` with what a long wait is seeing (registration...)."""
        self._progress_listeners.append(callback)
        return lambda: self._progress_listeners.remove(callback)

    def _progress(self, text: str) -> None:
        for listener in list(self._progress_listeners):
            try:
                listener(self.state, text)
            except Exception:
                log.exception("progress listener %r failed", listener)

    def _describe_identity(self) -> str:
        if self.identity is not None:
            return self.identity.describe()
        return f"dialect {self.dialect.name if self.dialect else '?'}"

    def _describe_registration(self) -> str:
        return self.registration.describe() if self.registration else "registered"

    def _endpoint(self) -> str:
        creds = self.config.credentials
        return f"{creds.host}:{creds.port}{' (TLS)' if creds.tls else ''}"

    # -- the API's operations ------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self.failure is not None:
            raise Failed(self.failure)
        online = self.state == "online"
        if qos == 0:
            if not online:
                if self.config.qos0_offline == "drop":
                    self.dropped_qos0 += 1
                    return
                raise Offline(f"cannot publish to {topic!r} at QoS 0: the bridge is {self.state}")
            self.session.publish(topic, payload, 0, retain)
            await self._flush()
            return
        await self._wait_for_queue_space(topic)
        packet_id = self.session.publish(topic, payload, qos, retain)
        assert packet_id is not None
        ack: asyncio.Future[PublishAcknowledged] = asyncio.get_running_loop().create_future()
        self._acks[packet_id] = ack
        if self.state == "online":
            # A failed send is the connection's problem, not this message's: it
            # stays in flight and goes out again (DUP) after the reconnect.
            await self._flush_or_report()
        result = await ack
        if not result.succeeded:
            raise PublishRefused(result.reason_code, f"{topic!r}: {result.reason}")

    async def _wait_for_queue_space(self, topic: str) -> None:
        def has_space() -> bool:
            return len(self._acks) < self.config.queue_size or self.failure is not None

        if has_space():
            return
        if self.config.queue_full == "raise":
            raise QueueFull(
                f"{len(self._acks)} QoS 1 messages are already waiting; {topic!r} was not queued"
            )
        async with self._queue_space:
            await self._queue_space.wait_for(has_space)
        if self.failure is not None:
            raise Failed(self.failure)

    async def subscribe(self, topic_filter: str, qos: int) -> int:
        from atbridge.at_mqtt import validate_topic_filter

        validate_topic_filter(topic_filter)
        if self.failure is not None:
            raise Failed(self.failure)
        self.subscriptions[topic_filter] = qos
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._sub_waiters.setdefault(topic_filter, []).append(waiter)
        if self.state == "online":
            packet_id = self.session.subscribe(topic_filter, qos=qos)
            self._subacks[packet_id] = asyncio.get_running_loop().create_future()
            await self._flush_or_report()
        granted = await waiter
        if granted >= 0x80:
            self.subscriptions.pop(topic_filter, None)
            raise SubscribeRefused(granted, f"{topic_filter!r} (granted QoS 0x{granted:02X})")
        return granted


class _Closing(Exception):
    """Raised inside the runner when the user closes the bridge."""


__all__ = [
    "STATES",
    "TRANSITIONS",
    "Lifecycle",
    "Message",
    "Step",
    "Transition",
    "mermaid",
    "recovery",
]
