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

A session counts as *healthy* once the broker has answered something we sent on
it (a PUBACK, SUBACK or PINGRESP) or it has stayed up ``healthy_after`` seconds:
then ``on_healthy`` is called, and the lifecycle resets its backoff. A CONNACK
alone proves nothing: a broker that accepts the connection and drops it over the
first message would otherwise be reconnected to as fast as the network allows.

Received messages wait in :attr:`OnlineSession.messages`, a
:class:`ReceiveQueue` of ``receive_queue`` messages. When it is full:

- a QoS 0 message pushes out the oldest QoS 0 message waiting (or is dropped
  itself when none waits); each is counted in ``dropped_received`` and logged
  once per burst;
- QoS 1 and 2 get back-pressure, never loss: the MQTT session stops decoding
  (``receive_window``), so the messages behind stay unacknowledged, and the reader
  stops reading the socket until the application takes a message. The broker
  holds what it cannot send (its in-flight limit per client), nothing is dropped,
  and the order is kept. Read the messages: while the session holds them back,
  what the broker sent after them (the PUBACKs of our own QoS 1 publishes, the
  PINGRESP) waits too; the keep-alive does not count that time against the link.

A message that matches none of our subscriptions is dropped, counted in
``dropped_unsubscribed`` and logged once per topic (for the first 100 topics),
unless the broker resumed a stored session (Session Present), whose subscriptions
may be older than this process, or its topic matches a filter the application
said to expect without subscribing (:meth:`OnlineSession.expect_unsubscribed`):
some brokers publish to a client that never asked, as Aliyun's dynamic
registration sends its reply on ``/ext/register`` right after the CONNACK.

Offline, QoS 1 messages wait in the session's queue (bounded by ``queue_size``:
raise or wait) and go out after the next CONNACK, those in flight again with
DUP; QoS 0 raises :class:`~atbridge.errors.Offline` or is counted as dropped. A
send that fails online is the connection's problem, not the message's: it goes
to the serving loop, and the message stays in flight.

Closing gracefully sends a DISCONNECT first. Over host-side TLS
(:class:`~atbridge.tls.TlsSocket`) the DISCONNECT and the ``close_notify`` go out in
one send (``close(final=...)``): a broker closes as soon as it reads a DISCONNECT
(MQTT 3.1.1 §3.14.4), so a ``close_notify`` sent after it would meet a closed socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from atbridge.at_mqtt import (
    NO_PROPERTIES,
    Connect,
    MessageReceived,
    MqttSession,
    PongReceived,
    Properties,
    PropertyId,
    ProtocolVersion,
    PublishAbandoned,
    PublishAcknowledged,
    SessionState,
    Subscribed,
    Will,
    validate_topic_filter,
)
from atbridge.config import BridgeConfig
from atbridge.decode import Registration
from atbridge.dialects.base import ModemSocket
from atbridge.errors import (
    AtBridgeError,
    Failed,
    Offline,
    PingTimeout,
    PublishRefused,
    QueueFull,
    RegistrationLost,
    RemoteProtocolError,
    SubscribeRefused,
)
from atbridge.mqtt.packets import topic_matches
from atbridge.steps import DialectLink, SocketLink
from atbridge.tls import TlsSocket

log = logging.getLogger(__name__)

#: Topics whose unsubscribed messages are logged (each once); later ones are only counted.
_LOGGED_TOPICS = 100


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscription."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class ReceiveQueue:
    """The received messages, at most ``capacity`` of them (see the module comment).

    ``on_taken`` is called with every message :meth:`get` hands out.
    """

    def __init__(self, capacity: int, on_taken: Callable[[Message], None]) -> None:
        self.capacity = capacity
        self._items: deque[Message] = deque()
        self._on_taken = on_taken
        self._nonempty = asyncio.Event()
        #: The most messages that ever waited at once.
        self.high_water = 0

    def qsize(self) -> int:
        """How many messages wait."""
        return len(self._items)

    def full(self) -> bool:
        """True when a QoS 0 message would push another out."""
        return len(self._items) >= self.capacity

    def put(self, message: Message) -> Message | None:
        """Queue ``message``; the QoS 0 message dropped to make room, if one was.

        When full, the oldest QoS 0 message waiting makes room; with none waiting a
        QoS 0 ``message`` is dropped itself. A QoS 1/2 message is always kept: the
        session's ``receive_window`` (the same capacity) holds the next ones back,
        so the queue never holds more than ``capacity``.
        """
        dropped = None
        if self.full():
            oldest = next((m for m in self._items if m.qos == 0), None)
            if oldest is None and message.qos == 0:
                return message
            if oldest is not None:
                self._items.remove(oldest)
                dropped = oldest
        self._items.append(message)
        self.high_water = max(self.high_water, len(self._items))
        self._nonempty.set()
        return dropped

    def get_nowait(self) -> Message:
        """The oldest message; raises :class:`asyncio.QueueEmpty` when none waits."""
        if not self._items:
            raise asyncio.QueueEmpty
        message = self._items.popleft()
        if not self._items:
            self._nonempty.clear()
        self._on_taken(message)
        return message

    async def get(self) -> Message:
        """The oldest message, waiting for one."""
        while not self._items:
            await self._nonempty.wait()
        return self.get_nowait()


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


class _Flush:
    """A flush task and the futures of the callers waiting for it (see OnlineSession.flush)."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[asyncio.Future[None]] = []

    def end(
        self, session: OnlineSession, error: Exception | None, *, cancelled: bool = False
    ) -> None:
        """The flush is over: resolve its waiters (those still waiting) with its outcome."""
        if session._waiting_flush is self:  # cancelled before it took the lock
            session._waiting_flush = None
        if self.task is not None:
            session._tasks.discard(self.task)
        for waiter in self.waiters:
            if waiter.done():
                continue
            if cancelled:
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)


class OnlineSession:
    """The session and its waiters; ``state()`` is the lifecycle's state, ``failure()``
    why it gave up (``None`` until then); ``on_pong`` sees every PINGRESP; ``on_healthy``
    is called once per connection when it proves itself (module comment)."""

    def __init__(
        self,
        config: BridgeConfig,
        session: MqttSession,
        *,
        clock: Callable[[], float],
        state: Callable[[], str],
        failure: Callable[[], BaseException | None],
        on_pong: Callable[[PongReceived], None],
        on_healthy: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.session = session
        self.clock = clock
        self._state = state
        self._failure = failure
        self._on_pong = on_pong
        self.socket: SocketLink | None = None
        self._on_healthy = on_healthy
        self.messages = ReceiveQueue(config.receive_queue, self._taken)
        self.subscriptions: dict[str, int] = {}
        #: Topic filters whose messages are delivered with no subscription (module doc).
        self.unsubscribed_accepted: set[str] = set()
        self.dropped_qos0 = 0
        #: QoS 0 messages received and dropped because the receive queue was full.
        self.dropped_received = 0
        #: Messages received on topics that match none of our subscriptions.
        self.dropped_unsubscribed = 0
        #: QoS 1/2 messages taken out of the queue as ones the broker refuses.
        self.abandoned = 0
        self._dropping = False
        self._logged_topics: set[str] = set()
        self._healthy = True  # until restore(): nothing to prove
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: The flush waiting for send_lock, not yet holding it (see flush).
        self._waiting_flush: _Flush | None = None
        #: Set whenever a message arrives (queued or dropped): clear it, then wait.
        self.received = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self._acks: dict[int, asyncio.Future[PublishAcknowledged]] = {}
        self._subacks: dict[int, asyncio.Future[Subscribed]] = {}
        self._sub_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._queue_space = asyncio.Condition()
        #: Publishes waiting in _wait_for_queue_space (none: no notification task).
        self._space_waiters = 0
        self._problem: asyncio.Future[BaseException] | None = None

    @property
    def waiting_qos1(self) -> int:
        """QoS 1 messages waiting for their PUBACK (in flight, or queued while offline)."""
        return len(self._acks)

    # -- serving -------------------------------------------------------------------------

    async def restore(self) -> None:
        """After a CONNACK: subscribe again, and release what queued while offline.

        What arrived with the CONNACK may already have ended the session (a
        malformed packet): that error is raised here, a reason to reconnect.
        """
        self._healthy = False
        self._drain_events()  # raises what broke the session, if anything did
        if self.session.state != SessionState.CONNECTED:
            raise RemoteProtocolError(
                f"the MQTT session ended right after its CONNACK ({self.session.state.value})"
            )
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
        proof = loop.call_later(self.config.healthy_after, self._proven)
        try:
            self._drain_events()  # what came with the CONNACK (SUBACKs, messages)
            return await problem
        finally:
            proof.cancel()
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
                while self.session.receive_held:  # back-pressure: see the module comment
                    self._room.clear()
                    await self._room.wait()
                data = await sock.receive()
                self.session.receive_data(data, self.clock())
                self._drain_events()
                if self.session.has_data_to_send:
                    # Acknowledgements and what the window let out: sent by their own task
                    # (a failure stops this loop), while the next read goes on.
                    self._flush_task()
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

    def _proven(self) -> None:
        """The session proved itself (module comment): tell the lifecycle, once."""
        if not self._healthy:
            self._healthy = True
            self._on_healthy()

    def _taken(self, message: Message) -> None:
        """The application took ``message`` from the queue: release its hold, if any."""
        if not self.messages.full():
            self._dropping = False
        if message.qos == 0 or not self.session.release_message(self.clock()):
            return
        self._room.set()
        try:
            self._drain_events()
        except Exception as error:  # what the released bytes held broke the session
            self.stop(error)
            return
        self._background(self._flush_or_report())  # the acknowledgements of what was held

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task, kept referenced until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def expect_unsubscribed(self, topic_filter: str) -> None:
        """Deliver messages matching ``topic_filter`` although nothing subscribed to it
        (a broker that publishes unasked: module doc). No SUBSCRIBE is sent."""
        validate_topic_filter(topic_filter)
        self.unsubscribed_accepted.add(topic_filter)

    def _subscribed_to(self, topic: str) -> bool:
        return (
            self.session.session_present
            or any(topic_matches(topic_filter, topic) for topic_filter in self.subscriptions)
            or any(topic_matches(accepted, topic) for accepted in self.unsubscribed_accepted)
        )

    def _received(self, event: MessageReceived) -> None:
        self.received.set()
        if not self._subscribed_to(event.topic):
            self.dropped_unsubscribed += 1
            if event.qos:
                self.session.release_message(self.clock())
            topics = self._logged_topics
            if event.topic not in topics and len(topics) < _LOGGED_TOPICS:
                topics.add(event.topic)
                log.warning("dropped a message on %r: it matches no subscription", event.topic)
            return
        dropped = self.messages.put(Message(event.topic, event.payload, event.qos, event.retain))
        if dropped is not None:
            self.dropped_received += 1
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "the receive queue is full (%d messages): dropping the oldest QoS 0 "
                    "messages until the application reads (counted in dropped_received)",
                    self.messages.capacity,
                )

    def _drain_events(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, MessageReceived):
                self._received(event)
            elif isinstance(event, PublishAcknowledged):
                future = self._acks.pop(event.packet_id, None)
                if future is not None and not future.done():
                    future.set_result(event)
                self._notify_queue_space()
                self._proven()
            elif isinstance(event, PublishAbandoned):
                self.abandoned += 1
                log.warning(
                    "gave up on a QoS 1 message to %r: the broker dropped the connection "
                    "%d times in a row right after it went out",
                    event.topic,
                    event.disconnects,
                )
                future = self._acks.pop(event.packet_id, None)
                if future is not None and not future.done():
                    future.set_exception(
                        PublishRefused(
                            0x80,
                            f"{event.topic!r}: the broker dropped the connection "
                            f"{event.disconnects} times in a row right after this message "
                            "went out; it was taken out of the queue",
                        )
                    )
                self._notify_queue_space()
            elif isinstance(event, PongReceived):
                self._on_pong(event)
                self._proven()
            elif isinstance(event, Subscribed):
                self._proven()
                future_sub = self._subacks.pop(event.packet_id, None)
                if future_sub is not None and not future_sub.done():
                    future_sub.set_result(event)
                for sub, granted in zip(event.subscriptions, event.reason_codes, strict=False):
                    for waiter in self._sub_waiters.pop(sub.topic_filter, []):
                        if not waiter.done():
                            waiter.set_result(granted)

    async def flush(self) -> None:
        """Send what the session queued, in order.

        The sending is a task of its own, holding :attr:`send_lock` until the socket took
        the bytes: a caller cancelled while it waits stops waiting, never the send (half a
        packet would corrupt the stream, or leave the modem waiting for payload), and
        :meth:`close_socket` takes the lock, so no send outlives the socket. A failure
        nobody waits for any more goes to the serving loop. With nothing queued and no send
        in progress there is nothing to wait for: no task (most flushes after a PUBACK).
        A flush task still waiting for the lock has taken nothing yet and will take all
        that is queued then: later callers wait for that one instead of starting their own.

        Each caller waits on a future of its own that the flush task resolves as its last
        step (:class:`_Flush`): what ``asyncio.shield`` does, one turn of the event loop
        sooner (issue 16).
        """
        if not self.session.has_data_to_send and not self.send_lock.locked():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_task().waiters.append(waiter)
        await waiter

    def _flush_task(self) -> _Flush:
        """The flush that will send what is queued now: the one waiting for the lock, else
        a new one (see :meth:`flush`); its failure goes to the serving loop."""
        flush = self._waiting_flush
        if flush is None or flush.task is None or flush.task.done():
            # (A task cancelled before its first step never ran _flush_now: done, not ended.)
            flush = _Flush()
            flush.task = asyncio.get_running_loop().create_task(self._flush_now(flush))
            self._waiting_flush = flush
            self._tasks.add(flush.task)
        return flush

    async def _flush_now(self, flush: _Flush) -> None:
        try:
            async with self.send_lock:
                if self._waiting_flush is flush:
                    self._waiting_flush = None  # from here on, bytes queued need another flush
                data = self.session.data_to_send(self.clock())
                sock = self.socket
                if data and sock is not None:
                    # This task is never cancelled mid-send (its callers wait on futures of
                    # their own): a modem socket sends in it, without a send task of its
                    # own (two event loop turns less per send, issue 16).
                    if isinstance(sock, ModemSocket):
                        await sock.send_unshielded(data)
                    else:
                        await sock.send(data)
        except Exception as error:
            flush.end(self, error)
            self.stop(error)  # its callers may have been cancelled: the serving loop hears it
            return
        except BaseException:
            flush.end(self, None, cancelled=True)
            raise
        flush.end(self, None)

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
                    # What is being sent goes out whole first (flush holds the lock).
                    async with self.send_lock:
                        data = b""
                        if graceful and self.session.state.value == "connected":
                            self.session.disconnect()
                            data = self.session.data_to_send(self.clock())
                        if isinstance(sock, TlsSocket):
                            # The DISCONNECT and close_notify in one send: the broker
                            # closes as soon as it reads the DISCONNECT.
                            await sock.close(final=data)
                        elif data:
                            await sock.send(data)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await sock.close()  # even when the DISCONNECT could not go out
        self._healthy = True  # nothing more to prove on this connection
        self.session.connection_lost()
        while True:  # PublishAbandoned, and what came before the end
            try:
                self._drain_events()
                break
            except AtBridgeError:  # an old error: this connection is over anyway
                continue
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
        if not self._space_waiters:
            return  # a publish that comes later checks for space before it waits

        async def notify() -> None:
            async with self._queue_space:
                self._queue_space.notify_all()

        self._background(notify())

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
        if self._online() and self.session.has_data_to_send:
            # Only the PUBACK is awaited (it comes after the send). A send that fails stops
            # the serving loop (_Flush.end); the message is resent after the reconnect.
            self._flush_task()
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
        self._space_waiters += 1
        try:
            async with self._queue_space:
                await self._queue_space.wait_for(has_space)
        finally:
            self._space_waiters -= 1
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


__all__ = ["Message", "OnlineSession", "ReceiveQueue", "connect_packet"]
