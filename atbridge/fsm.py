"""The connection lifecycle: from power-on to an MQTT session that stays up.

Theory of operation
-------------------
The lifecycle is one state machine, declared as data and run by a
``transitions`` :class:`AsyncMachine`:

- :class:`State` names the states (a ``StrEnum``: ``state == "online"`` holds);
- :data:`TRANSITIONS` is the diagram: the bring-up edges, ``lost`` (to
  ``backing_off``), ``give_up`` (to ``failed``), ``close``, and the ``retry``
  edges out of ``backing_off``, one per :class:`Recovery`, each guarded by a
  condition the machine evaluates (so the machine picks where a retry resumes);
- :data:`POLICY` is the recovery policy: which failure class, in which states,
  goes back to which :class:`Recovery` (first matching :class:`Rule` wins);
  :data:`RESUMES_FROM` bounds how far forward a failure in a state may resume
  (a probe that failed cannot "reconnect the socket"), and :data:`ESCALATIONS`
  say when repeated failures go further back (socket failures in a row ->
  re-attach; attach timeouts in a row -> restart the modem), counted by one
  :class:`Escalation` object. :func:`decide` is the whole policy as a pure
  function; :func:`recovery` is its first half (no counters).

A retry resumes as its :class:`Recovery` says: ``REOPEN`` closes and reopens the
port, then probes; ``RESTART`` restarts the modem (``AT+CFUN=1,1``/``AT#XRESET``),
then probes; ``PROBE`` syncs, identifies and configures again; ``ATTACH`` turns the
radio off (``AT+CFUN=4``) and attaches, so a data context the network dropped
comes back; ``SOCKET`` opens the socket again and sends CONNECT.

The same tables draw the diagram (:func:`mermaid`, ``atbridge fsm --mermaid``);
the ``retry`` and ``give_up`` edges are labelled with the failures that lead
there.

One task, the *runner*, walks the machine. In each bring-up state it runs that
state's steps (:mod:`atbridge.steps`: public, single-shot, timed; their last
results are in :attr:`Lifecycle.steps`) as a task of their own (so ``close()``
can stop a long step), then fires the state's trigger. Online, a reader and a
pinger serve the session until something breaks. A failure is looked up in the
policy before anything is fired: a :class:`Recovery` fires ``lost``, waits in
``backing_off`` (exponential backoff with jitter and a cap, reset once a session
proves itself: a PUBACK, SUBACK or PINGRESP, or ``healthy_after`` seconds up; a
CONNACK alone does not, so a broker that drops every connection over its first
message is not hammered)
and fires ``retry``; ``FAIL`` (a refusal retrying cannot fix, a bad local
setting, a SIM that is absent or locked, or a bug — any exception the policy does
not know, kept with its traceback as :attr:`Lifecycle.failure`), or
``give_up_after`` seconds without a good session, fires ``give_up``. The machine's
callbacks only record what happened, so none of transitions' asyncio pitfalls can
wedge it. Every
transition becomes a :class:`Transition` in :attr:`Lifecycle.history` and on
the event stream.

The port and the dialect come from an injected opener (``open_port`` and
``bind_dialect``, the real ones from :mod:`atbridge.steps` by default), so every
recovery rule is tested in memory. A port that opened once and is then missing
(a USB modem re-enumerating after its own reset) is a lost link: back off and
reopen. A port that never opened is a usage error.

Host-side TLS: the :class:`~atbridge.tls.TlsClient` (``steps.tls_setting``) is made
once, on the first socket, and kept for the lifecycle's life, so every reconnect offers
its last TLS session (a resumed handshake carries no certificate chain); a CA file that
cannot be read is a ConfigurationError there, and the policy stops on it.

:meth:`Lifecycle.close` runs as one task of its own that every caller waits for: a
caller cancelled while it waits (a timeout, Ctrl-C) stops waiting, never the closing, so
the socket on the modem and the port are always closed and the last transitions fire
once. Sends are tasks of their own too (:meth:`~atbridge.online.OnlineSession.flush`), and
closing the socket waits for the one under way, so none outlives ``close()``.

Online, :class:`~atbridge.online.OnlineSession` (its own module) serves the MQTT
session on the socket: reader, keep-alive, acknowledgements, the offline QoS 1
queue, publish and subscribe; what breaks it comes back here for the policy.

Layout: :mod:`atbridge.steps` (the bring-up steps), this module (the table, the
policy and the runner: one job, about 890 lines because the policy is written
out as data next to the table it drives), :mod:`atbridge.online` (serving the
session), :mod:`atbridge.bridge` (the public :class:`~atbridge.bridge.Bridge` and
its observer API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, ClassVar

from transitions.extensions.asyncio import AsyncMachine

from atbridge import steps
from atbridge.at_mqtt import (
    MqttSession,
)
from atbridge.config import Backoff, BridgeConfig
from atbridge.decode import Registration
from atbridge.dialects.base import Identity
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
    NotConnected,
    PortNotFound,
    RegistrationLost,
    SimNotReady,
    SocketClosed,
    SocketError,
    StepTimeout,
    TlsError,
    describe_error,
)
from atbridge.online import Message, OnlineSession, connect_packet
from atbridge.steps import DialectBinder, DialectLink, ModemPort, PortOpener

log = logging.getLogger(__name__)

# -- the machine, as data ----------------------------------------------------------------


class State(StrEnum):
    """The lifecycle's states (names equal values, so the diagram reads the same)."""

    disconnected = "disconnected"
    probing = "probing"
    configuring = "configuring"
    attaching = "attaching"
    opening_socket = "opening_socket"
    mqtt_connecting = "mqtt_connecting"
    online = "online"
    backing_off = "backing_off"
    closing = "closing"
    failed = "failed"


S = State
WORKING = [S.probing, S.configuring, S.attaching, S.opening_socket, S.mqtt_connecting, S.online]
STATES: list[State] = list(State)


class Recovery(Enum):
    """Where the runner goes back to after a failure, deepest first."""

    REOPEN = "reopen the port"
    RESTART = "restart the modem"
    PROBE = "probe"
    ATTACH = "re-attach"
    SOCKET = "reconnect the socket"
    FAIL = "give up"


#: The condition (a method of the machine's model) that sends ``retry`` to each recovery.
RETRY_CONDITIONS: dict[Recovery, str] = {
    Recovery.REOPEN: "reopen_the_port",
    Recovery.RESTART: "restart_the_modem",
    Recovery.PROBE: "probe_again",
    Recovery.ATTACH: "reattach",
    Recovery.SOCKET: "reconnect_the_socket",
}
_RETRY_DEST = {
    Recovery.REOPEN: S.probing,
    Recovery.RESTART: S.probing,
    Recovery.PROBE: S.probing,
    Recovery.ATTACH: S.attaching,
    Recovery.SOCKET: S.opening_socket,
}

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": S.disconnected, "dest": S.probing},
    {"trigger": "probed", "source": S.probing, "dest": S.configuring},
    {"trigger": "configured", "source": S.configuring, "dest": S.attaching},
    {"trigger": "attached", "source": S.attaching, "dest": S.opening_socket},
    {"trigger": "socket_opened", "source": S.opening_socket, "dest": S.mqtt_connecting},
    {"trigger": "connack", "source": S.mqtt_connecting, "dest": S.online},
    {"trigger": "lost", "source": WORKING, "dest": S.backing_off},
    *(
        {
            "trigger": "retry",
            "source": S.backing_off,
            "dest": _RETRY_DEST[recovery],
            "conditions": condition,
        }
        for recovery, condition in RETRY_CONDITIONS.items()
    ),
    {"trigger": "give_up", "source": [*WORKING, S.backing_off], "dest": S.failed},
    {"trigger": "close", "source": [*WORKING, S.backing_off, S.disconnected], "dest": S.closing},
    {"trigger": "closed", "source": S.closing, "dest": S.disconnected},
]

#: In each bring-up state: the trigger its steps fire when they succeed.
BRING_UP: dict[State, str] = {
    S.probing: "probed",
    S.configuring: "configured",
    S.attaching: "attached",
    S.opening_socket: "socket_opened",
    S.mqtt_connecting: "connack",
}


# -- the recovery policy, as data ---------------------------------------------------------

#: (failure, whether the port was ever open) -> does the rule apply?
Condition = Callable[[BaseException, bool], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """A failure of class ``failure`` in one of ``states`` (any, if empty) goes back
    to ``recovery`` — when ``when`` (if given) holds. ``label`` names it on the diagram."""

    failure: type[BaseException] | tuple[type[BaseException], ...]
    recovery: Recovery
    label: str
    states: frozenset[State] = frozenset()
    when: Condition | None = None

    def matches(self, error: BaseException, state: State, port_was_open: bool) -> bool:
        return (
            isinstance(error, self.failure)
            and (not self.states or state in self.states)
            and (self.when is None or self.when(error, port_was_open))
        )


def _closed_by(*reasons: CloseReason) -> Condition:
    return lambda error, _open: isinstance(error, SocketClosed) and error.reason in reasons


POLICY: tuple[Rule, ...] = (
    Rule(
        PortNotFound,
        Recovery.REOPEN,
        "PortNotFound once the port was open (USB re-enumerating)",
        frozenset({S.probing}),
        lambda _error, port_was_open: port_was_open,
    ),
    Rule(ConfigurationError, Recovery.FAIL, "ConfigurationError"),
    # The session ended under an operation of the lifecycle's own (the peer broke it):
    # a connection problem, not a bad local setting.
    Rule(NotConnected, Recovery.SOCKET, "NotConnected"),
    Rule(LocalProtocolError, Recovery.FAIL, "LocalProtocolError"),
    Rule(
        BrokerRefused,
        Recovery.SOCKET,
        "BrokerRefused retryable",
        when=lambda error, _open: isinstance(error, BrokerRefused) and error.retryable,
    ),
    Rule(BrokerRefused, Recovery.FAIL, "BrokerRefused not retryable"),
    Rule(
        SocketClosed, Recovery.ATTACH, "SocketClosed network", when=_closed_by(CloseReason.NETWORK)
    ),
    Rule(SocketClosed, Recovery.PROBE, "SocketClosed reboot", when=_closed_by(CloseReason.REBOOT)),
    Rule(SocketClosed, Recovery.REOPEN, "SocketClosed link", when=_closed_by(CloseReason.LINK)),
    Rule(SocketClosed, Recovery.SOCKET, "SocketClosed peer/local/error"),
    Rule(LinkLost, Recovery.REOPEN, "LinkLost"),
    Rule((ModemRebooted, AtTimeout), Recovery.PROBE, "ModemRebooted, AtTimeout"),
    Rule(RegistrationLost, Recovery.ATTACH, "RegistrationLost"),
    # No SIM, or one that wants a PIN: no retry brings it back (exit 3, not a storm).
    Rule(SimNotReady, Recovery.FAIL, "SimNotReady"),
    Rule(
        AtBridgeError,
        Recovery.SOCKET,
        "PingTimeout, StepTimeout, RemoteProtocolError (MalformedPacket...), other AtBridgeError",
    ),
    Rule(OSError, Recovery.REOPEN, "OSError of the port"),
    Rule(BaseException, Recovery.FAIL, "any other exception (a bug, kept with its traceback)"),
)

#: The furthest a failure in each state may resume from (a failed probe probes again).
RESUMES_FROM: dict[State, Recovery] = {
    S.probing: Recovery.PROBE,
    S.configuring: Recovery.PROBE,
    S.attaching: Recovery.ATTACH,
    S.opening_socket: Recovery.SOCKET,
    S.mqtt_connecting: Recovery.SOCKET,
    S.online: Recovery.SOCKET,
}
_DEPTH = {recovery: depth for depth, recovery in enumerate(Recovery)}


@dataclass(frozen=True, slots=True)
class Escalate:
    """``recovery`` for ``failure`` in ``states``, counted in ``counter``: the
    ``limit``-th (a :class:`BridgeConfig` field) in a row goes to ``to`` instead."""

    counter: str
    recovery: Recovery
    states: frozenset[State]
    failure: type[BaseException]
    limit: str
    to: Recovery


ESCALATIONS: tuple[Escalate, ...] = (
    Escalate(
        "socket_failures",
        Recovery.SOCKET,
        frozenset({S.opening_socket, S.mqtt_connecting, S.online}),
        BaseException,
        "socket_failures_before_reattach",
        Recovery.ATTACH,
    ),
    Escalate(
        "attach_failures",
        Recovery.ATTACH,
        frozenset({S.attaching}),
        StepTimeout,
        "attach_failures_before_restart",
        Recovery.RESTART,
    ),
)


@dataclass
class Escalation:
    """The escalation counters: failures in a row of each kind in :data:`ESCALATIONS`."""

    socket_failures: int = 0
    attach_failures: int = 0

    def escalate(
        self, recovery: Recovery, state: State, error: BaseException, config: BridgeConfig
    ) -> tuple[Recovery, Escalate | None]:
        """Count this failure; the recovery to use, and the escalation that changed it."""
        for rule in ESCALATIONS:
            if (
                recovery is rule.recovery
                and state in rule.states
                and isinstance(error, rule.failure)
            ):
                count = getattr(self, rule.counter) + 1
                if count >= getattr(config, rule.limit):
                    setattr(self, rule.counter, 0)
                    return rule.to, rule
                setattr(self, rule.counter, count)
        return recovery, None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one failure, and which lines of it did."""

    recovery: Recovery
    rule: Rule
    escalation: Escalate | None = None


def decide(
    error: BaseException,
    state: State,
    *,
    port_was_open: bool = True,
    escalation: Escalation | None = None,
    config: BridgeConfig | None = None,
) -> Decision:
    """The recovery policy: where to go back to after ``error`` in ``state``.

    The first :data:`POLICY` rule that matches, bounded by :data:`RESUMES_FROM`,
    then (with ``escalation`` and ``config``) the :data:`ESCALATIONS`.
    """
    rule = next(r for r in POLICY if r.matches(error, state, port_was_open))
    chosen = rule.recovery
    furthest = RESUMES_FROM.get(state)
    if chosen is not Recovery.FAIL and furthest is not None:
        chosen = min(chosen, furthest, key=_DEPTH.__getitem__)
    if escalation is None or config is None or chosen is Recovery.FAIL:
        return Decision(chosen, rule)
    escalated, by = escalation.escalate(chosen, state, error, config)
    return Decision(escalated, rule, by)


def recovery(
    error: BaseException, state: State = S.online, *, port_was_open: bool = True
) -> Recovery:
    """Where to go back to after ``error`` in ``state`` (before the escalation counters)."""
    return decide(error, state, port_was_open=port_was_open).recovery


def _edge_labels() -> dict[tuple[str, str | None], str]:
    """The ``retry``/``give_up`` edge labels: which failures lead there."""
    by_recovery: dict[Recovery, list[str]] = {r: [] for r in Recovery}
    for rule in POLICY:
        by_recovery[rule.recovery].append(rule.label)
    for esc in ESCALATIONS:
        by_recovery[esc.to].append(f"{esc.limit} reached")
    by_recovery[Recovery.FAIL].append("give_up_after passed")
    labels: dict[tuple[str, str | None], str] = {
        ("retry", condition): f"retry [{condition}] after {', '.join(by_recovery[r])}"
        for r, condition in RETRY_CONDITIONS.items()
    }
    labels[("give_up", None)] = f"give_up after {', '.join(by_recovery[Recovery.FAIL])}"
    return labels


def mermaid() -> str:
    """The lifecycle diagram (Mermaid ``stateDiagram-v2``), drawn from the tables above."""
    from transitions.extensions import GraphMachine

    class _Drawing:
        pass

    labels = _edge_labels()
    drawn = []
    for transition in TRANSITIONS:
        key = (transition["trigger"], transition.get("conditions"))
        label = labels.get(key)
        drawn.append({**transition, "label": label} if label else transition)
    machine = GraphMachine(
        model=_Drawing(),
        states=State,
        transitions=drawn,
        initial=S.disconnected,
        auto_transitions=False,
        graph_engine="mermaid",
        title="atbridge lifecycle",
    )
    drawn_text = str(machine.get_graph().draw(None))
    # The library colours its model's current state ("active") and the others; a diagram
    # of the table has no current state: its class lines go.
    kept = [
        line
        for line in drawn_text.splitlines()
        if not line.strip().startswith(("classDef s_", "Class "))
    ]
    return "\n".join(kept) + "\n"


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of the lifecycle: from ``old`` to ``new`` because of ``cause``."""

    old: State
    new: State
    cause: str
    time: float

    def __str__(self) -> str:
        return f"{self.old} -> {self.new}: {self.cause}"


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
    #: QoS 0 messages received and dropped because the receive queue was full.
    dropped_received: int = 0
    #: Messages received on topics that match none of the subscriptions, dropped.
    dropped_unsubscribed: int = 0
    #: QoS 1 messages the broker dropped the connection over ``poison_after`` times,
    #: taken out of the queue (their publish() raised PublishRefused).
    abandoned_qos1: int = 0
    #: Received messages waiting for the application.
    received_waiting: int = 0


# -- the lifecycle -------------------------------------------------------------------------


class _Model:
    """The machine's model: its state, and the conditions of the ``retry`` edges."""

    state: State
    #: Where the next ``retry`` resumes; the state's work consumes it (None: a first pass).
    resume: Recovery | None = None

    def reopen_the_port(self, _event: Any) -> bool:
        return self.resume is Recovery.REOPEN

    def restart_the_modem(self, _event: Any) -> bool:
        return self.resume is Recovery.RESTART

    def probe_again(self, _event: Any) -> bool:
        return self.resume is Recovery.PROBE

    def reattach(self, _event: Any) -> bool:
        return self.resume is Recovery.ATTACH

    def reconnect_the_socket(self, _event: Any) -> bool:
        return self.resume is Recovery.SOCKET


class Lifecycle:
    """Runs the state machine for one modem and one broker. Used through :class:`Bridge`.

    ``open_port`` and ``bind_dialect`` are the opener (the real serial port and
    dialect by default; tests inject in-memory ones). ``clock`` is monotonic.
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        open_port: PortOpener = steps.open_port,
        bind_dialect: DialectBinder = steps.bind_dialect,
    ):
        self.config = config
        self.clock = clock
        self._open_port = open_port
        self._bind_dialect = bind_dialect
        self.model = _Model()
        self.machine = AsyncMachine(
            model=self.model,
            states=State,
            transitions=TRANSITIONS,
            initial=S.disconnected,
            auto_transitions=False,
            queued=True,
            after_state_change=self._record,
            send_event=True,
        )
        self.history: list[Transition] = []
        self.identity: Identity | None = None
        self.registration: Registration | None = None
        self.failure: BaseException | None = None
        self.modem: ModemPort | None = None
        self.dialect: DialectLink | None = None
        #: The last result of every bring-up step, by step name (see :mod:`atbridge.steps`).
        self.steps: dict[str, steps.StepResult] = {}
        self.escalation = Escalation()
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        session = MqttSession(
            connect_packet(config),
            max_inflight=config.max_inflight,
            ping_grace=config.ping_grace,
            topic_aliases=config.topic_aliases,
            poison_after=config.poison_after,
            receive_window=config.receive_queue,
            max_publish_size=config.max_publish_size,
        )
        #: The MQTT session and its waiters, served on the socket while online.
        self.link = OnlineSession(
            config,
            session,
            clock=clock,
            state=lambda: self.state,
            failure=lambda: self.failure,
            on_pong=lambda pong: self._done(steps.Pinged("ping", pong.round_trip, pong.round_trip)),
            on_healthy=self._healthy,
        )
        self._port_was_open = False
        #: Online at least once (a broker that refuses after that is retried whatever the
        #: configuration says: it was reachable).
        self._been_online = False
        #: What ``steps.open_socket`` takes as ``tls``, made once on the first socket: the
        #: host-side :class:`~atbridge.tls.TlsClient` (its session resumes on reconnects),
        #: or the modem's :class:`~atbridge.tls.ModemTls` (offload).
        self._tls: steps.TlsSetting | None = None
        self._cause = "start"
        self._listeners: list[asyncio.Queue[Transition]] = []
        self._progress_listeners: list[Callable[[str, str], None]] = []
        self._registration_listeners: list[Callable[[Registration], None]] = []
        self._state_changed = asyncio.Condition()
        self._runner: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._work: asyncio.Task[str] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._last_good = self.clock()

    # -- observation -------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.model.state

    def _record(self, event: Any) -> None:
        source, dest = event.transition.source, event.transition.dest  # state names
        transition = Transition(State(source), State(dest), self._cause, time.time())
        self.history.append(transition)
        log.info("%s", transition)
        for queue in list(self._listeners):
            queue.put_nowait(transition)

        async def notify() -> None:
            async with self._state_changed:
                self._state_changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def listen(self) -> asyncio.Queue[Transition]:
        """A queue that gets every transition from now on (stop with :meth:`unlisten`)."""
        queue: asyncio.Queue[Transition] = asyncio.Queue()
        self._listeners.append(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[Transition]) -> None:
        """Stop feeding ``queue`` (from :meth:`listen`)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(queue)

    async def wait_for_state(self, *states: str, timeout: float | None = None) -> State:
        """Wait until the state is one of ``states``; the state reached."""
        async with asyncio.timeout(timeout), self._state_changed:
            await self._state_changed.wait_for(lambda: self.state in states)
        return self.state

    async def _go(self, trigger: str, cause: str) -> None:
        self._cause = cause
        if not await self.model.trigger(trigger):  # type: ignore[attr-defined]
            raise RuntimeError(f"lifecycle bug: {trigger!r} is not allowed from {self.state}")

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner (it goes on until :meth:`close` or ``failed``)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="atbridge")

    async def close(self) -> None:
        """Disconnect cleanly (DISCONNECT, close the socket and the port).

        Closing runs as a task of its own (:meth:`_close`): a caller cancelled while it
        waits (a timeout around ``close()``, Ctrl-C) stops waiting, never the closing, so
        the socket on the modem and the port are closed all the same. Every call waits
        for that one task; once it is done, ``close()`` returns at once.
        """
        task = self._close_task
        if task is None:
            loop = asyncio.get_running_loop()
            task = self._close_task = loop.create_task(self._close(), name="atbridge-close")
            task.add_done_callback(_log_failure)
        await asyncio.shield(task)

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`close` is called."""
        return self._runner is not None and self._close_task is None

    async def _close(self) -> None:
        self._closing = True
        self._wake.set()
        self.link.stop(_Closing())
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
        if self.state not in (S.disconnected, S.failed, S.closing):
            await self._go("close", "closed by the user")
        if self.state is S.closing:
            await self._go("closed", "closed")

    async def _run(self) -> None:
        await self._go("start", "start")
        while not self._closing:
            try:
                while self.state is not S.online:
                    state = self.state
                    cause = await self._step(self._STATE_WORK[state](self))
                    await self._go(BRING_UP[state], cause)
                raise await self._online()
            except _Closing:
                break
            except asyncio.CancelledError:
                if self._closing:
                    break  # close() stopped a long step
                raise
            except Exception as failure:  # the policy decides where to go back to
                if self._closing or not await self._recover(failure):
                    break
        if self.state not in (S.closing, S.disconnected, S.failed):
            await self._go("close", "closed by the user")

    async def _recover(self, failure: Exception) -> bool:
        """Back off and fire ``retry`` as the policy decides; False once failed."""
        error = self._explain(failure)
        decision = decide(
            error,
            self.state,
            port_was_open=self._port_was_open,
            escalation=self.escalation,
            config=self.config,
        )
        limit = self.config.give_up_after
        given_up = limit is not None and self.clock() - self._last_good > limit
        if decision.recovery is Recovery.FAIL or given_up or self._unreachable(error):
            self.failure = error
            await self._teardown(graceful=False)
            await self._go("give_up", describe_error(error))
            self.link.fail_waiters(Failed(error))
            return False
        await self._go("lost", describe_error(error))
        await self._teardown(graceful=False, keep_modem=decision.recovery is not Recovery.REOPEN)
        self.model.resume = decision.recovery
        delay = self.backoff.next_delay()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        if self._closing:
            return False
        await self._go("retry", decision.recovery.value)
        return True

    def _unreachable(self, error: BaseException) -> bool:
        """The broker could not be reached before the bridge was ever online, and the
        configuration says not to retry that (``retry_unreachable_broker``: one-shot
        commands)."""
        return (
            not self.config.retry_unreachable_broker
            and not self._been_online
            and self.state is S.opening_socket
            and isinstance(error, SocketError)
            and not isinstance(error, TlsError)
        )

    async def _step(self, work: Coroutine[Any, Any, str]) -> str:
        """Run one state's work as its own task, so close() can stop just the work."""
        task = asyncio.get_running_loop().create_task(work)
        self._work = task
        try:
            return await task
        except asyncio.CancelledError:
            task.cancel()  # the runner itself was cancelled: take the step down with it
            raise
        finally:
            self._work = None

    _STATE_TIMEOUTS: ClassVar[dict[State, str]] = {
        S.probing: "probe",
        S.configuring: "configure",
        S.attaching: "activate",
        S.opening_socket: "open_socket",
        S.mqtt_connecting: "connack",
    }

    def _explain(self, failure: Exception) -> Exception:
        """A bare TimeoutError from a state's time limit, told in the state's words."""
        if isinstance(failure, TimeoutError) and not isinstance(failure, AtBridgeError):
            name = self._STATE_TIMEOUTS.get(self.state, "")
            limit = getattr(self.config.timeouts, name, None)
            within = f" within {limit:g} s" if limit is not None else ""
            return StepTimeout(
                f"{self.state.replace('_', ' ')} did not finish{within}",
                hint=f"raise the {name or 'step'} timeout, or check the transcript "
                "for what the modem answered",
            )
        return failure

    def _done(self, result: steps.StepResult) -> None:
        self.steps[result.step] = result

    # -- each state's work (the steps of atbridge.steps, in order) ----------------------------

    async def _probing(self) -> str:
        resume, self.model.resume = self.model.resume, None
        if self._tls is None and self.config.credentials.host is not None:
            # A CA file that cannot be read, offload without a security tag: a
            # ConfigurationError (FAIL) before the port is opened, not after attaching.
            self._tls = steps.tls_setting(self.config.credentials)
        async with asyncio.timeout(self.config.timeouts.probe):
            if resume is Recovery.REOPEN or self.modem is None or not self.modem.is_open:
                await self._close_port()
                self.modem = await self._open_port(self.config)
                self._port_was_open = True
            if resume is Recovery.RESTART and self.dialect is not None:
                await self.dialect.restart()
            if self.dialect is not None:
                self.dialect.detach_from_modem()
                self.dialect = None
            probed = await steps.probe(self.modem, self.config.dialect, bind=self._bind_dialect)
        self._done(probed)
        self.dialect = probed.dialect
        self.identity = probed.identity or self.identity
        self.dialect.on_registration(self._on_registration)
        found = self.identity.describe() if self.identity else f"dialect {probed.dialect_name}"
        return found + _leftovers(probed.leftover_sockets)

    async def _configuring(self) -> str:
        assert self.dialect is not None
        apn = self.config.apn
        self._done(await steps.configure(self.dialect, apn, timeout=self.config.timeouts.configure))
        return f"APN {apn}" if apn else "modem's own APN"

    async def _attaching(self) -> str:
        assert self.dialect is not None
        t = self.config.timeouts
        resume, self.model.resume = self.model.resume, None
        if resume is Recovery.ATTACH:  # a re-attach: radio off first, so the bearer comes back
            await self.dialect.detach()
        attached = await steps.attach(
            self.dialect, timeout=t.attach, progress=self._on_registration
        )
        self._done(attached)
        self.escalation.attach_failures = 0
        self._done(await steps.activate_data(self.dialect, timeout=t.activate))
        return self.registration.describe() if self.registration else "registered"

    async def _opening_socket(self) -> str:
        assert self.dialect is not None
        creds = self.config.credentials
        assert creds.host is not None
        if self._tls is None:  # a CA file that cannot be read: ConfigurationError, FAIL
            self._tls = steps.tls_setting(creds)
        opened = await steps.open_socket(
            self.dialect,
            creds.host,
            creds.port,
            tls=self._tls,
            timeout=self.config.timeouts.open_socket,
        )
        self._done(opened)
        self.link.socket = opened.socket
        tls = " (TLS)" if creds.tls else ""
        cleaned = _leftovers(opened.leftover_sockets)
        return f"TCP connected to {creds.host}:{creds.port}{tls}{cleaned}"

    async def _mqtt_connecting(self) -> str:
        link = self.link
        assert link.socket is not None
        async with link.send_lock:
            connected = await steps.mqtt_connect(
                link.socket, link.session, timeout=self.config.timeouts.connack, clock=self.clock
            )
        self._done(connected)
        self.escalation.socket_failures = 0
        await link.restore()
        return "CONNACK accepted"

    def _healthy(self) -> None:
        """The session proved itself (a PUBACK, SUBACK, PINGRESP, or ``healthy_after`` up)."""
        self.backoff.reset()
        self._last_good = self.clock()

    _STATE_WORK: ClassVar[dict[State, Callable[[Lifecycle], Coroutine[Any, Any, str]]]] = {
        S.probing: _probing,
        S.configuring: _configuring,
        S.attaching: _attaching,
        S.opening_socket: _opening_socket,
        S.mqtt_connecting: _mqtt_connecting,
    }

    async def _close_port(self) -> None:
        if self.dialect is not None:
            self.dialect.detach_from_modem()
            self.dialect = None
        if self.modem is not None:
            modem, self.modem = self.modem, None
            await modem.close()

    async def _online(self) -> BaseException:
        """Serve the session until something breaks; return what broke it."""
        assert self.dialect is not None
        if self._closing:  # close() came while the runner was on its way here
            raise _Closing()
        self._been_online = True
        return await self.link.serve(self.dialect)

    async def _teardown(self, *, graceful: bool, keep_modem: bool = True) -> None:
        await self.link.close_socket(graceful=graceful, timeout=self.config.timeouts.close)
        if not keep_modem or graceful:
            await self._close_port()

    @property
    def counters(self) -> Counters:
        """A snapshot of the counters (dropped QoS 0, failures in a row, QoS 1 waiting)."""
        return Counters(
            dropped_qos0=self.link.dropped_qos0,
            socket_failures=self.escalation.socket_failures,
            attach_failures=self.escalation.attach_failures,
            waiting_qos1=self.link.waiting_qos1,
            dropped_received=self.link.dropped_received,
            dropped_unsubscribed=self.link.dropped_unsubscribed,
            abandoned_qos1=self.link.abandoned,
            received_waiting=self.link.messages.qsize(),
        )

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]:
        """Call ``callback`` with every registration report of whichever dialect is bound."""
        self._registration_listeners.append(callback)
        return lambda: self._registration_listeners.remove(callback)

    def _on_registration(self, registration: Registration) -> None:
        for listener in list(self._registration_listeners):
            try:
                listener(registration)
            except Exception:
                log.exception("registration listener %r failed", listener)
        if registration == self.registration:
            return
        was_registered = self.registration is not None and self.registration.registered
        self.registration = registration
        self._progress(f"registration: {registration.describe()}")
        if registration.registered and not was_registered:
            self._progress(f"registered on {registration.where()}")

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


def _log_failure(task: asyncio.Task[None]) -> None:
    """A close nobody waited for (its caller was cancelled) still says how it failed."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("closing the bridge failed: %s", describe_error(error), exc_info=error)


def _leftovers(count: int) -> str:
    """What a step's text says about the sockets it found left open on the modem."""
    return f"; closed {count} socket(s) left open on the modem" if count else ""


class _Closing(Exception):
    """Raised inside the runner when the user closes the bridge."""


__all__ = [
    "BRING_UP",
    "ESCALATIONS",
    "POLICY",
    "RESUMES_FROM",
    "STATES",
    "TRANSITIONS",
    "Counters",
    "Decision",
    "Escalate",
    "Escalation",
    "Lifecycle",
    "Message",
    "Recovery",
    "Rule",
    "State",
    "Transition",
    "connect_packet",
    "decide",
    "mermaid",
    "recovery",
]
