"""The MQTT session served over the modem's socket: what the lifecycle does while online.

Theory of operation
-------------------
:class:`OnlineSession` owns the :class:`~atbridge.at_mqtt.MqttSession` (sans-IO:
packet ids, the QoS 1 window, the keep-alive clock) and everything that waits on
it: the QoS 1 acknowledgements, the SUBACKs, the subscriptions to restore, the
messages received. The lifecycle (:mod:`atbridge.fsm`) gives it a socket once the
CONNACK is in (:meth:`~OnlineSession.restore`), and :meth:`~OnlineSession.serve`
runs two tasks on it until something breaks, which it returns for the recovery
policy to judge:

- the *reader* feeds what the socket receives to the session and resolves the
  waiters of the events that come out (PUBACK, SUBACK, PINGRESP, PUBLISH);
- the *pinger* sends PINGREQ when nothing was sent for the Keep Alive and
  reports a :class:`~atbridge.errors.PingTimeout` when a PINGRESP is late;
- the dialect's registration reports: a lost registration breaks the session.

:meth:`~OnlineSession.publish` and :meth:`~OnlineSession.subscribe` are the API's
operations. :func:`connect_packet` builds the session's CONNECT through the
credentials (:meth:`~atbridge.credentials.MqttCredentials.connect_packet`) from
the config: MQTT 3.1.1 or 5.0, the Will, the 5.0 Session Expiry Interval.

Offline, QoS 1 messages wait in the session's queue (bounded by ``queue_size``:
raise or wait) and go out after the next CONNACK, those in flight again with
DUP; QoS 0 raises :class:`~atbridge.errors.Offline` or is counted as dropped. A
send that fails online is the connection's problem, not the message's: it goes
to the serving loop, and the message stays in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from atbridge.at_mqtt import (
    NO_PROPERTIES,
    Connect,
    MessageReceived,
    MqttSession,
    PongReceived,
    Properties,
    PropertyId,
    ProtocolVersion,
    PublishAcknowledged,
    Subscribed,
    Will,
    validate_topic_filter,
)
from atbridge.config import BridgeConfig
from atbridge.decode import Registration
from atbridge.errors import (
    AtBridgeError,
    Failed,
    Offline,
    PingTimeout,
    PublishRefused,
    QueueFull,
    RegistrationLost,
    SubscribeRefused,
)
from atbridge.steps import DialectLink, SocketLink


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscription."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def connect_packet(config: BridgeConfig) -> Connect:
    """The CONNECT of ``config``: through its credentials, with its MQTT version and Will.

    In MQTT 5.0 a ``session_expiry`` keeps the broker's session across connections:
    the CONNECT carries it as the Session Expiry Interval and asks to resume (Clean
    Start 0), so QoS 1 messages sent to the device while it was away are delivered.
    Without one, every connection starts clean, as in 3.1.1.
    """
    will = None
    if config.will_topic is not None:
        will = Will(
            config.will_topic, config.will_message.encode(), config.will_qos, config.will_retain
        )
    if config.mqtt_version != "5":
        return config.credentials.connect_packet(will=will)
    properties = NO_PROPERTIES
    if config.session_expiry is not None:
        properties = Properties({PropertyId.SESSION_EXPIRY_INTERVAL: config.session_expiry})
    return config.credentials.connect_packet(
        clean_session=not config.session_expiry,
        will=will,
        protocol=ProtocolVersion.MQTT_5_0,
        properties=properties,
    )


class OnlineSession:
    """The session and its waiters; ``state()`` is the lifecycle's state, ``failure()``
    why it gave up (``None`` until then); ``on_pong`` sees every PINGRESP."""

    def __init__(
        self,
        config: BridgeConfig,
        session: MqttSession,
        *,
        clock: Callable[[], float],
        state: Callable[[], str],
        failure: Callable[[], BaseException | None],
        on_pong: Callable[[PongReceived], None],
    ) -> None:
        self.config = config
        self.session = session
        self.clock = clock
        self._state = state
        self._failure = failure
        self._on_pong = on_pong
        self.socket: SocketLink | None = None
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.subscriptions: dict[str, int] = {}
        self.dropped_qos0 = 0
        self.send_lock = asyncio.Lock()
        self._acks: dict[int, asyncio.Future[PublishAcknowledged]] = {}
        self._subacks: dict[int, asyncio.Future[Subscribed]] = {}
        self._sub_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._queue_space = asyncio.Condition()
        self._problem: asyncio.Future[BaseException] | None = None

    @property
    def waiting_qos1(self) -> int:
        """QoS 1 messages waiting for their PUBACK (in flight, or queued while offline)."""
        return len(self._acks)

    # -- serving -------------------------------------------------------------------------

    async def restore(self) -> None:
        """After a CONNACK: subscribe again, and release what queued while offline."""
        for topic_filter, qos in self.subscriptions.items():
            packet_id = self.session.subscribe(topic_filter, qos=qos)
            self._subacks[packet_id] = asyncio.get_running_loop().create_future()
        await self.flush()

    async def serve(self, dialect: DialectLink) -> BaseException:
        """Serve the session on :attr:`socket` until something breaks; return what broke it."""
        assert self.socket is not None
        loop = asyncio.get_running_loop()
        problem: asyncio.Future[BaseException] = loop.create_future()
        self._problem = problem

        def on_registration(registration: Registration) -> None:
            if not registration.registered:
                self.stop(RegistrationLost(f"registration lost: {registration.describe()}"))

        unhook = dialect.on_registration(on_registration)
        reader = loop.create_task(self._read_loop(self.socket))
        pinger = loop.create_task(self._ping_loop())
        self._drain_events()  # what came with the CONNACK (SUBACKs, messages)
        try:
            return await problem
        finally:
            unhook()
            self._problem = None
            for task in (reader, pinger):
                task.cancel()
            for task in (reader, pinger):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def stop(self, reason: BaseException) -> None:
        """End :meth:`serve` with ``reason`` (the first reason wins)."""
        if self._problem is not None and not self._problem.done():
            self._problem.set_result(reason)

    async def _read_loop(self, sock: SocketLink) -> None:
        try:
            while True:
                data = await sock.receive()
                self.session.receive_data(data, self.clock())
                self._drain_events()
                await self.flush()  # acknowledgements
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stop(error)

    async def _ping_loop(self) -> None:
        session = self.session
        try:
            while True:
                now = self.clock()
                if session.is_link_dead(now):
                    self.stop(PingTimeout(f"no PINGRESP within {session.ping_grace:g} s"))
                    return
                due = session.next_ping_due(now)
                if due is not None and due <= now:
                    session.ping()
                    await self.flush()
                    continue
                wait = (due - now) if due is not None else session.ping_grace / 4
                await asyncio.sleep(min(max(wait, 0.01), session.ping_grace / 4 or 1.0))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stop(error)

    def _drain_events(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, MessageReceived):
                self.messages.put_nowait(
                    Message(event.topic, event.payload, event.qos, event.retain)
                )
            elif isinstance(event, PublishAcknowledged):
                future = self._acks.pop(event.packet_id, None)
                if future is not None and not future.done():
                    future.set_result(event)
                self._notify_queue_space()
            elif isinstance(event, PongReceived):
                self._on_pong(event)
            elif isinstance(event, Subscribed):
                future_sub = self._subacks.pop(event.packet_id, None)
                if future_sub is not None and not future_sub.done():
                    future_sub.set_result(event)
                for sub, granted in zip(event.subscriptions, event.reason_codes, strict=False):
                    for waiter in self._sub_waiters.pop(sub.topic_filter, []):
                        if not waiter.done():
                            waiter.set_result(granted)

    async def flush(self) -> None:
        """Send what the session queued, in order."""
        async with self.send_lock:
            data = self.session.data_to_send(self.clock())
            if data and self.socket is not None:
                await self.socket.send(data)

    async def _flush_or_report(self) -> None:
        """Flush; a transport failure goes to the serving loop instead of the caller."""
        try:
            await self.flush()
        except AtBridgeError as error:
            self.stop(error)

    async def close_socket(self, *, graceful: bool, timeout: float) -> None:
        """Close the socket (after a DISCONNECT when ``graceful``); SUBACK waits are cancelled."""
        sock, self.socket = self.socket, None
        if sock is not None and sock.closed is None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    if graceful and self.session.state.value == "connected":
                        self.session.disconnect()
                        data = self.session.data_to_send(self.clock())
                        if data:
                            await sock.send(data)
                    await sock.close()
        self.session.connection_lost()
        for future in self._subacks.values():
            if not future.done():
                future.cancel()
        self._subacks.clear()

    def fail_waiters(self, error: Failed) -> None:
        """The lifecycle gave up: every publish and subscribe waiting raises ``error``."""
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

    # -- the API's operations ------------------------------------------------------------------

    def _online(self) -> bool:
        return self._state() == "online"

    def _raise_if_failed(self) -> None:
        failure = self._failure()
        if failure is not None:
            raise Failed(failure)

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish; QoS 1 returns on PUBACK (raises :class:`PublishRefused` on a refusal)."""
        self._raise_if_failed()
        if qos == 0:
            if not self._online():
                if self.config.qos0_offline == "drop":
                    self.dropped_qos0 += 1
                    return
                raise Offline(
                    f"cannot publish to {topic!r} at QoS 0: the bridge is {self._state()}"
                )
            self.session.publish(topic, payload, 0, retain)
            await self.flush()
            return
        await self._wait_for_queue_space(topic)
        packet_id = self.session.publish(topic, payload, qos, retain)
        assert packet_id is not None
        ack: asyncio.Future[PublishAcknowledged] = asyncio.get_running_loop().create_future()
        self._acks[packet_id] = ack
        if self._online():
            await self._flush_or_report()
        result = await ack
        if not result.succeeded:
            detail = f": {result.reason_string}" if result.reason_string else ""
            raise PublishRefused(result.reason_code, f"{topic!r}: {result.reason}{detail}")

    async def _wait_for_queue_space(self, topic: str) -> None:
        def has_space() -> bool:
            return len(self._acks) < self.config.queue_size or self._failure() is not None

        if has_space():
            return
        if self.config.queue_full == "raise":
            raise QueueFull(
                f"{len(self._acks)} QoS 1 messages are already waiting; {topic!r} was not queued"
            )
        async with self._queue_space:
            await self._queue_space.wait_for(has_space)
        self._raise_if_failed()

    async def subscribe(self, topic_filter: str, qos: int) -> int:
        """Subscribe (restored after every reconnect); the granted QoS."""
        validate_topic_filter(topic_filter)
        self._raise_if_failed()
        self.subscriptions[topic_filter] = qos
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._sub_waiters.setdefault(topic_filter, []).append(waiter)
        if self._online():
            packet_id = self.session.subscribe(topic_filter, qos=qos)
            self._subacks[packet_id] = asyncio.get_running_loop().create_future()
            await self._flush_or_report()
        granted = await waiter
        if granted >= 0x80:
            self.subscriptions.pop(topic_filter, None)
            raise SubscribeRefused(granted, f"{topic_filter!r} (granted QoS 0x{granted:02X})")
        return granted


__all__ = ["Message", "OnlineSession", "connect_packet"]
