"""The recovery policy, in memory: every failure class in every state, no pty, no broker.

A scripted stand-in for the port, the dialect and the socket (:class:`Script`) is
injected into :class:`~atbridge.fsm.Lifecycle` through its opener. Each test makes
one operation fail once (or a few times) with one error, then watches where the
lifecycle goes: which state ``retry`` resumes in, whether the port was reopened or
the modem restarted, or that it gave up at once with that very error.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from atbridge.at_mqtt import ProtocolVersion
from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.decode import Registration
from atbridge.dialects.base import DataBearer, Identity
from atbridge.errors import (
    AtTimeout,
    CloseReason,
    ConfigurationError,
    ConnectRefused,
    Failed,
    LinkLost,
    LocalProtocolError,
    MalformedPacket,
    ModemError,
    ModemRebooted,
    NotConnected,
    PingTimeout,
    PortNotFound,
    RegistrationLost,
    SimNotReady,
    SocketClosed,
    StepTimeout,
)
from atbridge.fsm import (
    POLICY,
    STATES,
    WORKING,
    Lifecycle,
    Recovery,
    State,
    decide,
    mermaid,
)
from atbridge.online import connect_packet
from atbridge.steps import (
    Attached,
    DialectLink,
    ModemPort,
    MqttConnected,
    Pinged,
    Probed,
    SocketLink,
    open_port,
)

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
PINGRESP = b"\xd0\x00"


class MemoryPort:
    """The AT channel: open until closed."""

    def __init__(self) -> None:
        self.is_open = True
        self.bytes_written = 0
        self.bytes_read = 0

    async def close(self) -> None:
        self.is_open = False


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """The (first byte, body) of each MQTT packet in ``data``."""
    found, pos = [], 0
    while pos < len(data):
        first, length, shift, pos = data[pos], 0, 0, pos + 1
        while True:
            byte, pos = data[pos], pos + 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        found.append((first, data[pos : pos + length]))
        pos += length
    return found


class MemorySocket:
    """A socket to a broker that accepts every CONNECT and answers every PINGREQ."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.closed: SocketClosed | None = None
        self.sent: list[bytes] = []
        self.pinged = asyncio.Event()
        self._incoming: asyncio.Queue[bytes | BaseException] = asyncio.Queue()

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        for first, body in packets(data):
            if first == 0x10:  # CONNECT
                failure = self.script.take("connack")
                self._incoming.put_nowait(failure if failure is not None else CONNACK_ACCEPTED)
            elif first == 0xC0:  # PINGREQ
                self._incoming.put_nowait(PINGRESP)
                self.pinged.set()
            elif first & 0xF6 == 0x32:  # PUBLISH at QoS 1: PUBACK its packet id
                topic_length = int.from_bytes(body[:2], "big")
                packet_id = body[2 + topic_length : 4 + topic_length]
                self._incoming.put_nowait(b"\x40\x02" + packet_id)

    async def receive(self, max_bytes: int = 1 << 20) -> bytes:
        item = await self._incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def fail(self, error: BaseException) -> None:
        """The next receive raises ``error`` (what breaks an online session)."""
        self._incoming.put_nowait(error)

    async def close(self) -> None:
        self.closed = SocketClosed(CloseReason.LOCAL)


class MemoryDialect:
    """A modem family whose every operation succeeds unless the script says otherwise."""

    name = "memory"

    def __init__(self, script: Script) -> None:
        self.script = script
        self._listeners: list[Callable[[Registration], None]] = []

    def detach_from_modem(self) -> None:
        self._listeners.clear()

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def restart(self, timeout: float = 60.0) -> None:
        self.script.calls.append("restart")

    async def detach(self) -> None:
        self.script.calls.append("detach")

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None:
        self.script.run("configure")

    async def attach(
        self,
        timeout: float = 600.0,
        *,
        poll_interval: float = 10.0,
        progress: Callable[[Registration], None] | None = None,
    ) -> Registration:
        self.script.run("attach")
        registration = Registration(stat=1)
        for listener in list(self._listeners):
            listener(registration)
        return registration

    async def activate_data(self, timeout: float = 60.0) -> DataBearer:
        self.script.run("activate")
        return DataBearer("10.0.0.7")

    async def resolve_addresses(self, host: str, timeout: float = 30.0) -> tuple[str, ...]:
        self.script.run("resolve")
        return ("127.0.0.1",)

    async def open_socket(
        self, host: str, port: int, *, tls: bool = False, timeout: float = 60.0
    ) -> SocketLink:
        self.script.run("open_socket")
        self.script.socket = MemorySocket(self.script)
        return self.script.socket

    async def close_leftover_sockets(self) -> int:
        return 0


@dataclass
class Script:
    """What fails next: ``failures[operation]`` is consumed one error per call."""

    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    socket: MemorySocket | None = None

    def fail(self, operation: str, *errors: BaseException) -> None:
        self.failures.setdefault(operation, []).extend(errors)

    def take(self, operation: str) -> BaseException | None:
        pending = self.failures.get(operation)
        return pending.pop(0) if pending else None

    def run(self, operation: str) -> None:
        self.calls.append(operation)
        error = self.take(operation)
        if error is not None:
            raise error

    async def open_port(self, config: BridgeConfig) -> ModemPort:
        self.run("open_port")
        return MemoryPort()

    async def bind_dialect(self, modem: ModemPort, name: str) -> tuple[DialectLink, Identity]:
        self.run("probe")
        return MemoryDialect(self), Identity("Memory", "M1", "1.0", "memory")


def memory_config(**kw: object) -> BridgeConfig:
    options: dict[str, object] = {
        "timeouts": Timeouts(
            probe=5, configure=5, attach=5, activate=5, open_socket=5, connack=5, close=2
        ),
        "backoff_initial": 0.001,
        "backoff_max": 0.002,
        "give_up_after": 60.0,
    }
    options.update(kw)
    credentials = MqttCredentials.plain(
        client_id="memory", host="127.0.0.1", port=1883, keepalive=60
    )
    return BridgeConfig(port="/dev/memory", credentials=credentials, **options)  # type: ignore[arg-type]


@pytest.fixture
async def script() -> AsyncIterator[Script]:
    yield Script()


def lifecycle_on(script: Script, config: BridgeConfig | None = None, **kw: object) -> Lifecycle:
    return Lifecycle(
        config or memory_config(),
        open_port=script.open_port,
        bind_dialect=script.bind_dialect,
        **kw,  # type: ignore[arg-type]
    )


async def run_until(lifecycle: Lifecycle, *states: str) -> State:
    return await lifecycle.wait_for_state(*states, timeout=10)


def resumed_in(lifecycle: Lifecycle) -> list[State]:
    """The state each ``retry`` out of ``backing_off`` went to, in order."""
    return [t.new for t in lifecycle.history if t.old == State.backing_off]


# -- every failure class in every state ---------------------------------------------------

#: Probe again, re-Attach, reConnect the socket, Failed.
P, A, C, F = State.probing, State.attaching, State.opening_socket, State.failed

#: The operation that fails in each working state.
FAILING_IN: dict[State, str] = {
    State.probing: "probe",
    State.configuring: "configure",
    State.attaching: "attach",
    State.opening_socket: "open_socket",
    State.mqtt_connecting: "connack",
    State.online: "online",
}

#: failure -> where the retry resumes (or failed) after it happens in each working state
#: (probing, configuring, attaching, opening_socket, mqtt_connecting, online), and
#: whether the port is reopened.
EXPECTED: dict[str, tuple[Callable[[], BaseException], tuple[State, ...], bool]] = {
    "peer closed": (lambda: SocketClosed(CloseReason.PEER), (P, P, A, C, C, C), False),
    "socket error": (lambda: SocketClosed(CloseReason.ERROR), (P, P, A, C, C, C), False),
    "network dropped the socket": (
        lambda: SocketClosed(CloseReason.NETWORK),
        (P, P, A, A, A, A),
        False,
    ),
    "socket lost to a reboot": (lambda: SocketClosed(CloseReason.REBOOT), (P,) * 6, False),
    "socket lost with the link": (lambda: SocketClosed(CloseReason.LINK), (P,) * 6, True),
    "serial link lost": (lambda: LinkLost("the port went away"), (P,) * 6, True),
    "port I/O error": (lambda: OSError(5, "Input/output error"), (P,) * 6, True),
    "modem rebooted": (lambda: ModemRebooted("READY"), (P,) * 6, False),
    "AT command timeout": (lambda: AtTimeout("AT", 1.0, b""), (P,) * 6, False),
    "registration lost": (lambda: RegistrationLost("searching"), (P, P, A, A, A, A), False),
    "missing PINGRESP": (lambda: PingTimeout("no PINGRESP"), (P, P, A, C, C, C), False),
    "step timeout": (lambda: StepTimeout("slow"), (P, P, A, C, C, C), False),
    "modem said ERROR": (lambda: ModemError("AT+X", "ERROR"), (P, P, A, C, C, C), False),
    # No SIM (or a PIN wanted): no retry brings it back, stop with exit 3 (issue 14).
    "SIM not ready": (
        lambda: SimNotReady("AT+CPIN?", "+CME ERROR: 10", kind="CME", code=10),
        (F,) * 6,
        False,
    ),
    "broker unavailable": (
        lambda: ConnectRefused(3, "server unavailable"),
        (P, P, A, C, C, C),
        False,
    ),
    "bad password": (lambda: ConnectRefused(4, "bad user name or password"), (F,) * 6, False),
    "not authorized": (lambda: ConnectRefused(5, "not authorized"), (F,) * 6, False),
    "configuration": (lambda: ConfigurationError("bad APN"), (F,) * 6, False),
    "our own protocol error": (lambda: LocalProtocolError("bad topic"), (F,) * 6, False),
    # The peer broke the protocol: reconnect, never give up (issue 12, defect 2).
    "malformed packet": (lambda: MalformedPacket("garbage"), (P, P, A, C, C, C), False),
    "session ended under us": (lambda: NotConnected("ended"), (P, P, A, C, C, C), False),
    "a bug": (lambda: RuntimeError("a bug"), (F,) * 6, False),
}


def test_the_matrix_covers_every_rule_and_working_state() -> None:
    assert set(FAILING_IN) == set(WORKING)
    covered = {decide(make(), state).rule for make, _, _ in EXPECTED.values() for state in WORKING}
    missing = [rule.label for rule in POLICY if rule not in covered]
    # PortNotFound has tests of its own (it can only happen when the port opens).
    assert missing == ["PortNotFound once the port was open (USB re-enumerating)"]


@pytest.mark.parametrize("state", WORKING, ids=str)
@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_every_failure_in_every_state_goes_where_the_policy_says(
    script: Script, kind: str, state: State
) -> None:
    make, destinations, reopens = EXPECTED[kind]
    expected = destinations[WORKING.index(state)]
    error = make()
    lifecycle = lifecycle_on(script)
    if state is State.online:
        lifecycle.start()
        await run_until(lifecycle, "online")
        assert script.socket is not None
        script.socket.fail(error)
    else:
        script.fail(FAILING_IN[state], error)
        lifecycle.start()
    try:
        if expected is F:
            assert await run_until(lifecycle, "failed") == "failed"
            assert lifecycle.failure is error
            assert "backing_off" not in [t.new for t in lifecycle.history]
        else:
            await run_until(lifecycle, "backing_off")
            assert await run_until(lifecycle, "online") == "online"
            assert resumed_in(lifecycle) == [expected]
            assert script.calls.count("open_port") == (2 if reopens else 1)
            # A re-attach turns the radio off first (AT+CFUN=4), so the data bearer comes back.
            assert ("detach" in script.calls) == (expected is A)
    finally:
        await lifecycle.close()


# -- escalation -----------------------------------------------------------------------------


async def test_socket_failures_in_a_row_escalate_to_reattach(script: Script) -> None:
    lifecycle = lifecycle_on(script, memory_config(socket_failures_before_reattach=3))
    script.fail("open_socket", *(SocketClosed(CloseReason.PEER) for _ in range(3)))
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert resumed_in(lifecycle) == [C, C, A]
        assert lifecycle.counters.socket_failures == 0
    finally:
        await lifecycle.close()


async def test_a_connack_resets_the_socket_failure_count(script: Script) -> None:
    lifecycle = lifecycle_on(script, memory_config(socket_failures_before_reattach=3))
    script.fail("open_socket", *(SocketClosed(CloseReason.PEER) for _ in range(2)))
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert lifecycle.counters.socket_failures == 0
        assert script.socket is not None
        script.socket.fail(SocketClosed(CloseReason.PEER))
        await run_until(lifecycle, "backing_off")
        await run_until(lifecycle, "online")
        assert resumed_in(lifecycle) == [C, C, C]  # 2 + 1, never 3 in a row
    finally:
        await lifecycle.close()


async def test_attach_timeouts_in_a_row_restart_the_modem(script: Script) -> None:
    lifecycle = lifecycle_on(script, memory_config(attach_failures_before_restart=2))
    script.fail("attach", StepTimeout("not registered"), StepTimeout("not registered"))
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert resumed_in(lifecycle) == [A, P]
        assert script.calls.count("restart") == 1
        assert script.calls.index("restart") > script.calls.index("attach")
    finally:
        await lifecycle.close()


async def test_give_up_after_bounds_the_retries(script: Script) -> None:
    now = [0.0]
    lifecycle = lifecycle_on(script, memory_config(give_up_after=10.0), clock=lambda: now[0])
    script.fail("open_socket", SocketClosed(CloseReason.PEER))
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        now[0] = 100.0  # 100 s after the last CONNACK, every reconnect refused
        script.fail("open_socket", *(SocketClosed(CloseReason.PEER) for _ in range(5)))
        assert script.socket is not None
        script.socket.fail(SocketClosed(CloseReason.PEER))
        assert await run_until(lifecycle, "failed") == "failed"
        assert isinstance(lifecycle.failure, SocketClosed)
    finally:
        await lifecycle.close()


# -- bug: a port that vanishes at reopen --------------------------------------------------


async def test_a_port_missing_at_reopen_is_a_lost_link_retried(script: Script) -> None:
    """A USB modem re-enumerating after its reset: the port is gone for a moment."""
    lifecycle = lifecycle_on(script)
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        script.fail("open_port", PortNotFound("/dev/memory is not there"))
        script.fail("open_port", PortNotFound("/dev/memory is not there"))
        assert script.socket is not None
        script.socket.fail(LinkLost("the port went away"))
        await run_until(lifecycle, "backing_off")
        assert await run_until(lifecycle, "online", "failed") == "online"
        assert resumed_in(lifecycle) == [P, P, P]
        assert script.calls.count("open_port") == 4
    finally:
        await lifecycle.close()


async def test_a_port_that_stays_missing_gives_up_after_the_bound(script: Script) -> None:
    now = [0.0]
    lifecycle = lifecycle_on(script, memory_config(give_up_after=10.0), clock=lambda: now[0])
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        script.fail("open_port", PortNotFound("gone"), PortNotFound("gone"))
        assert script.socket is not None
        script.socket.fail(LinkLost("the port went away"))
        await run_until(lifecycle, "backing_off")
        now[0] = 100.0
        assert await run_until(lifecycle, "failed") == "failed"
        assert isinstance(lifecycle.failure, PortNotFound)
    finally:
        await lifecycle.close()


async def test_a_port_missing_at_start_is_a_usage_error(script: Script) -> None:
    script.fail("open_port", PortNotFound("/dev/ttyACM9 is not there"))
    lifecycle = lifecycle_on(script)
    lifecycle.start()
    try:
        assert await run_until(lifecycle, "failed") == "failed"
        assert isinstance(lifecycle.failure, PortNotFound)
        assert [t.new for t in lifecycle.history] == ["probing", "failed"]
    finally:
        await lifecycle.close()


# -- bug: an unexpected exception while probing -------------------------------------------


async def test_a_bug_while_probing_stops_at_once_with_its_traceback(script: Script) -> None:
    def broken() -> None:
        raise OverflowError("signed integer is greater than maximum")

    try:
        broken()
    except OverflowError as error:
        bug = error
    script.fail("probe", bug)
    bridge = Bridge(config=memory_config())
    bridge.lifecycle = lifecycle_on(script)
    with pytest.raises(Failed) as caught:
        async with bridge:
            pass
    assert caught.value.cause is bug
    assert bridge.failure is bug
    assert bridge.state == "failed"
    frames = traceback.extract_tb(bug.__traceback__)
    assert any(frame.name == "broken" for frame in frames)
    assert "backing_off" not in [t.new for t in bridge.history]


async def test_an_unwritable_transcript_is_a_configuration_error() -> None:
    config = memory_config(transcript="/nonexistent/dir/x.log")
    with pytest.raises(ConfigurationError, match="cannot write the transcript"):
        await open_port(config)


async def test_a_bad_local_setting_while_probing_fails_at_once(script: Script) -> None:
    script.fail("open_port", ConfigurationError("cannot write the transcript"))
    lifecycle = lifecycle_on(script)
    lifecycle.start()
    try:
        assert await run_until(lifecycle, "failed") == "failed"
        assert isinstance(lifecycle.failure, ConfigurationError)
        assert script.calls.count("open_port") == 1
    finally:
        await lifecycle.close()


# -- the table, the diagram, the steps, the CONNECT -----------------------------------------


async def test_transitions_carry_states_that_compare_with_their_names(script: Script) -> None:
    lifecycle = lifecycle_on(script)
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        first = lifecycle.history[0]
        assert (first.old, first.new) == (State.disconnected, State.probing)
        assert first.new is State.probing and first.new == "probing"
        assert str(first) == "disconnected -> probing: start"
    finally:
        await lifecycle.close()


def test_states_compare_with_their_names() -> None:
    assert State.online == "online"
    assert [str(s) for s in STATES][:2] == ["disconnected", "probing"]
    assert f"{State.backing_off:>12}" == " backing_off"


def test_diagram_labels_the_retry_edges_with_the_failures_that_lead_there() -> None:
    diagram = mermaid()
    assert "backing_off --> opening_socket: retry [reconnect_the_socket]" in diagram
    assert "LinkLost" in diagram.split("retry [reopen_the_port]")[1].split("|")[0]
    assert "socket_failures_before_reattach" in diagram.split("retry [reattach]")[1]


def test_decide_names_the_escalation_that_changed_the_recovery() -> None:
    from atbridge.fsm import Escalation

    escalation = Escalation()
    config = memory_config(socket_failures_before_reattach=2)
    error = SocketClosed(CloseReason.PEER)
    first = decide(error, State.online, escalation=escalation, config=config)
    second = decide(error, State.online, escalation=escalation, config=config)
    assert (first.recovery, first.escalation) == (Recovery.SOCKET, None)
    assert second.recovery is Recovery.ATTACH
    assert second.escalation is not None and second.escalation.counter == "socket_failures"


async def test_every_step_result_is_recorded_with_its_timing(script: Script) -> None:
    lifecycle = lifecycle_on(script)
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert set(lifecycle.steps) == {
            "probe",
            "configure",
            "attach",
            "activate_data",
            "open_socket",
            "mqtt_connect",
        }
        assert all(result.seconds >= 0 for result in lifecycle.steps.values())
        probed, attached, connected = (
            lifecycle.steps[name] for name in ("probe", "attach", "mqtt_connect")
        )
        assert isinstance(probed, Probed) and probed.identity is not None
        assert probed.identity.model == "M1"
        assert isinstance(attached, Attached) and attached.registration.registered
        assert isinstance(connected, MqttConnected) and not connected.session_present
    finally:
        await lifecycle.close()


def test_connect_is_built_by_the_credentials_with_will_and_version() -> None:
    plain = connect_packet(memory_config())
    assert plain.protocol == ProtocolVersion.MQTT_3_1_1 and plain.will is None
    five = connect_packet(
        memory_config(
            mqtt_version="5",
            will_topic="dev/status",
            will_message="offline",
            will_qos=1,
            will_retain=True,
            session_expiry=120,
        )
    )
    assert five.protocol == ProtocolVersion.MQTT_5_0
    assert five.clean_session is False  # a session that outlives the connection is resumed
    assert connect_packet(memory_config(mqtt_version="5")).clean_session is True
    assert five.will is not None
    assert (five.will.topic, five.will.payload, five.will.qos, five.will.retain) == (
        "dev/status",
        b"offline",
        1,
        True,
    )
    assert ("SESSION_EXPIRY_INTERVAL", 120) in [(p.name, v) for p, v in five.properties.items]


async def test_pings_are_recorded_as_the_ping_step(script: Script) -> None:
    now = [0.0]
    lifecycle = lifecycle_on(script, memory_config(ping_grace=0.05), clock=lambda: now[0])
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert "ping" not in lifecycle.steps
        now[0] = 60.0  # the Keep Alive (60 s) passed with nothing sent: the pinger sends PINGREQ
        assert script.socket is not None
        await script.socket.pinged.wait()
        # A QoS 1 publish's PUBACK comes after the PINGRESP: once it is in, so is the ping.
        await asyncio.wait_for(lifecycle.link.publish("t", b"x", 1, False), 5)
        ping = lifecycle.steps["ping"]
        assert isinstance(ping, Pinged) and ping.round_trip == 0.0
    finally:
        await lifecycle.close()


# -- issue 12, defect 1c: only a session that proved itself resets the backoff ---------------


async def test_a_connack_alone_does_not_reset_the_backoff_but_a_puback_does(
    script: Script,
) -> None:
    lifecycle = lifecycle_on(script)
    script.fail("open_socket", SocketClosed(CloseReason.PEER), SocketClosed(CloseReason.PEER))
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        assert lifecycle.backoff.attempt == 2  # two CONNACK-less failures, one CONNACK since
        await lifecycle.link.publish("up/proof", b"1", 1, False)  # the MemorySocket PUBACKs it
        assert lifecycle.backoff.attempt == 0
    finally:
        await lifecycle.close()


async def test_a_session_that_stays_up_healthy_after_resets_the_backoff(script: Script) -> None:
    lifecycle = lifecycle_on(script, memory_config(healthy_after=0.05))
    script.fail("open_socket", SocketClosed(CloseReason.PEER))
    proven = asyncio.Event()
    healthy = lifecycle.link._on_healthy

    def observed() -> None:  # the lifecycle's own callback, watched
        healthy()
        proven.set()

    lifecycle.link._on_healthy = observed
    lifecycle.start()
    try:
        await run_until(lifecycle, "online")
        await asyncio.wait_for(proven.wait(), 10)  # no packet from the broker: the timer
        assert lifecycle.backoff.attempt == 0
    finally:
        await lifecycle.close()
