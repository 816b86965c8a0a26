"""The MQTT client session that rides on the modem socket (sans-IO), and the MQTT names users need.

Theory of operation
-------------------
:class:`MqttSession` is modelled on h11 and mqttproto: it does no I/O (no sockets,
no asyncio, no serial); bytes and the current time come in as arguments, bytes and
events go out. Operations (:meth:`~MqttSession.connect`,
:meth:`~MqttSession.publish`, :meth:`~MqttSession.subscribe`, ...) only queue bytes;
:meth:`~MqttSession.data_to_send` hands them to the caller. Received bytes go in
with :meth:`~MqttSession.receive_data`; results come out of
:meth:`~MqttSession.next_event` as events, in order, and a refused CONNACK or a
protocol violation is raised from ``next_event`` *after* the events that preceded
it. The session

- allocates packet identifiers, never reusing one that is still in use;
- keeps QoS 1 and QoS 2 messages in flight until acknowledged, at most
  ``max_inflight`` at a time (lowered to the broker's Receive Maximum in 5.0);
  messages beyond the window, or published while offline, wait in order and go
  out as slots free up;
- after a reconnect, re-sends every unacknowledged PUBLISH with DUP set and its
  original packet identifier, and every PUBREL [MQTT-4.4.0-1];
- answers the broker's QoS 1 / QoS 2 deliveries by itself (PUBACK, PUBREC,
  PUBCOMP) and delivers a QoS 2 message once;
- in MQTT 5.0, when the broker's CONNACK allows topic aliases (Topic Alias
  Maximum > 0) and ``topic_aliases`` is on, sends repeated topics as a two-byte
  alias instead of the whole name, to save bytes on the air. The first
  Topic-Alias-Maximum distinct topics of a connection (longer than 3 bytes, the
  size of the alias property) get aliases 1, 2, ... for the life of that
  connection; later topics go out in full. The first PUBLISH of a topic carries
  the name and its alias, the following ones an empty name and the alias
  (MQTT 5.0 §3.3.2.3.4). Aliases belong to one network connection
  [MQTT-3.3.2-7]: they are forgotten when it ends, and a PUBLISH re-sent with DUP
  after a reconnect carries its full topic;
- takes a QoS 1/2 message out of the queue when the broker drops the connection
  ``poison_after`` times in a row right after it went out, with nothing heard
  from the broker since: mosquitto, for one, closes the connection over a PUBLISH
  it will not take (a topic with a control character, a packet above its
  ``max_packet_size``), and resending that message first after every reconnect
  would block every later one for ever. The caller gets
  :class:`PublishAbandoned` instead of an acknowledgement;
- with a ``receive_window``, applies back-pressure to the broker: once that many
  QoS 1/2 deliveries are out and not yet released by the owner
  (:meth:`~MqttSession.release_message`), it stops decoding what arrives, so
  those messages stay unacknowledged in the broker's hands (the broker stops
  sending at its in-flight limit), and :attr:`~MqttSession.receive_held` tells
  the owner to stop reading the socket. QoS 0 deliveries are not held back;
- keeps the keep-alive books from the caller's clock:
  :meth:`~MqttSession.next_ping_due` says when a PINGREQ must go out (Keep Alive
  seconds after the last packet sent [MQTT-3.1.2-23]) and
  :meth:`~MqttSession.is_link_dead` says when the link must be presumed dead: no
  PINGRESP within ``ping_grace`` of our PINGREQ, or nothing sent for 1.5 x Keep
  Alive, after which the broker has dropped us [MQTT-3.1.2-24].

States: DISCONNECTED -> connect() -> CONNECTING -> CONNACK accepted -> CONNECTED;
disconnect(), connection_lost(), a refusal or a broker DISCONNECT lead back to
DISCONNECTED; a protocol violation leads to ERROR, left with connection_lost() once
the caller has closed the socket.

Packets, the codec, properties and the stream decoder live in :mod:`atbridge.mqtt`
(see its docstring for the layout); this module re-exports the names callers use,
so ``from atbridge.at_mqtt import Publish, encode`` keeps working. What is left here
is one job, the session with its events, about 1,000 lines: its handlers share
the session's books (ids, in-flight window, aliases, keep-alive), so they stay together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import ClassVar, Literal, overload

from atbridge.errors import (
    CONNACK_REFUSALS,
    AtBridgeError,
    BrokerRefused,
    ConnectRefused,
    LocalProtocolError,
    MalformedPacket,
    NotConnected,
    PacketTooLarge,
    RemoteProtocolError,
)
from atbridge.mqtt.codec import decode, encode
from atbridge.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
    connack_reason,
    refused_code_point_problem,
    validate_topic_filter,
    validate_topic_name,
)
from atbridge.mqtt.properties import (
    NO_PROPERTIES,
    Properties,
    PropertyId,
    PropertyValue,
    reason_name,
)
from atbridge.mqtt.stream import DEFAULT_MAX_PACKET_SIZE, PacketDecoder
from atbridge.mqtt.wire import MAX_REMAINING_LENGTH, PacketType, ProtocolVersion

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "MAX_REMAINING_LENGTH",
    "NO_PROPERTIES",
    "Auth",
    "BrokerDisconnected",
    "ConnAck",
    "Connect",
    "Connected",
    "Disconnect",
    "Event",
    "MalformedPacket",
    "MessageReceived",
    "MqttSession",
    "NotConnected",
    "Packet",
    "PacketDecoder",
    "PacketTooLarge",
    "PacketType",
    "PingReq",
    "PingResp",
    "PongReceived",
    "Properties",
    "PropertyId",
    "PropertyValue",
    "ProtocolVersion",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "PublishAbandoned",
    "PublishAcknowledged",
    "SessionState",
    "SubAck",
    "Subscribe",
    "Subscribed",
    "Subscription",
    "UnsubAck",
    "Unsubscribe",
    "Unsubscribed",
    "Will",
    "connack_reason",
    "decode",
    "encode",
    "reason_name",
    "validate_topic_filter",
    "validate_topic_name",
]

_V5 = ProtocolVersion.MQTT_5_0


class SessionState(Enum):
    """Where the MQTT session stands (see the module comment)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Connected:
    """The broker accepted the session (CONNACK 0)."""

    session_present: bool
    keepalive: int
    properties: Properties = NO_PROPERTIES

    @property
    def assigned_client_id(self) -> str | None:
        """MQTT 5.0: the client id the broker chose when we sent an empty one."""
        value = self.properties.get(PropertyId.ASSIGNED_CLIENT_IDENTIFIER)
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The broker delivered a message (already acknowledged by the session)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PublishAcknowledged:
    """A QoS 1 or 2 publish finished: PUBACK, PUBCOMP, or a 5.0 refusal (code >= 0x80)."""

    packet_id: int
    reason_code: int = 0
    reason_string: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when the broker took the message."""
        return self.reason_code < 0x80

    @property
    def reason(self) -> str:
        """The spec's name of the reason code."""
        return reason_name(self.reason_code, PacketType.PUBACK)


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The SUBACK for one subscribe() call: one code per filter, in order."""

    packet_id: int
    subscriptions: tuple[Subscription, ...]
    reason_codes: tuple[int, ...]
    reason_string: str | None = None

    @property
    def granted_qos(self) -> tuple[int | None, ...]:
        """Granted QoS per filter, ``None`` where the broker refused it."""
        return tuple(code if code < 0x80 else None for code in self.reason_codes)

    @property
    def refused(self) -> tuple[tuple[str, str], ...]:
        """``(filter, reason)`` for each refused filter."""
        return tuple(
            (sub.topic_filter, reason_name(code, PacketType.SUBACK))
            for sub, code in zip(self.subscriptions, self.reason_codes, strict=True)
            if code >= 0x80
        )


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The UNSUBACK for one unsubscribe() call (codes only in MQTT 5.0)."""

    packet_id: int
    topic_filters: tuple[str, ...]
    reason_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PongReceived:
    """PINGRESP arrived; ``round_trip`` is seconds since our PINGREQ left."""

    round_trip: float


@dataclass(frozen=True, slots=True)
class BrokerDisconnected:
    """MQTT 5.0: the broker sent DISCONNECT; read ``reason`` and ``reason_string``."""

    reason_code: int
    reason_string: str | None = None
    server_reference: str | None = None

    @property
    def reason(self) -> str:
        """The spec's name of the reason code."""
        return reason_name(self.reason_code, PacketType.DISCONNECT)


@dataclass(frozen=True, slots=True)
class PublishAbandoned:
    """A QoS 1/2 message taken out of the queue: the broker dropped the connection
    ``disconnects`` times in a row right after it went out (see the module comment)."""

    packet_id: int
    topic: str
    disconnects: int


Event = (
    Connected
    | MessageReceived
    | PublishAcknowledged
    | Subscribed
    | Unsubscribed
    | PongReceived
    | BrokerDisconnected
    | PublishAbandoned
)


@dataclass(slots=True)
class _Outgoing:
    publish: Publish
    awaiting: PacketType  # PUBACK, PUBREC or PUBCOMP
    #: The bytes of its first transmission, until it is sent (``None`` after).
    encoded: bytes | None = None
    #: The connection on which its bytes last went to data_to_send(), and how many
    #: packets had been received by then (see MqttSession._judge_disconnect).
    sent_on: int = -1
    heard_mark: int = 0
    #: Disconnects in a row right after it went out, with nothing heard since.
    strikes: int = 0


def _with_alias(publish: Publish, alias: int) -> Properties:
    return Properties((*publish.properties.items, (PropertyId.TOPIC_ALIAS, alias)))


#: CONNACK codes about the credentials (3.1.1: 4 bad user name or password, 5 not authorised;
#: 5.0: 0x86, 0x87): the refusal says which user name the CONNECT carried.
_ABOUT_CREDENTIALS = frozenset({4, 5, 0x86, 0x87})


def _refusal(code: int, protocol: ProtocolVersion, props: Properties) -> ConnectRefused:
    reason = connack_reason(code, protocol)
    extra = props.get(PropertyId.REASON_STRING)
    if isinstance(extra, str) and extra:
        reason = f"{reason}: {extra}"
    known = CONNACK_REFUSALS.get(code) if protocol == _V5 or code < 0x80 else None
    hint = known.hint if known is not None else ""
    reference = props.get(PropertyId.SERVER_REFERENCE)
    if isinstance(reference, str) and reference:
        hint = f"{hint} ({reference})" if hint else f"server reference: {reference}"
    return ConnectRefused(code, reason, hint=hint)


class MqttSession:
    """A sans-IO MQTT client session (see the module comment for the whole picture).

    ``connect`` is the CONNECT to send on every (re)connection; its protocol
    level is the session's. ``max_inflight`` bounds unacknowledged QoS 1/2
    publishes. ``ping_grace`` is how long a PINGREQ may wait for its PINGRESP
    before :meth:`is_link_dead` says so (default: half the Keep Alive, or 30 s
    with Keep Alive off). ``max_packet_size`` bounds incoming packets.
    ``topic_aliases`` (MQTT 5.0) sends repeated topics as aliases when the broker
    allows them: the first Topic-Alias-Maximum distinct topics of each connection
    (those longer than 3 bytes) get one, for the life of that connection (see the
    module comment); with it on, the session owns the Topic Alias property and a
    publish() that sets one is refused. ``poison_after`` (``None``: never) and
    ``receive_window`` (``None``: no bound) are described in the module comment.
    ``max_publish_size`` is the broker's packet limit where it cannot announce one
    (3.1.1): a larger PUBLISH is refused by :meth:`publish`, as one above the 5.0
    Maximum Packet Size is.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        max_inflight: int = 10,
        ping_grace: float | None = None,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        topic_aliases: bool = True,
        poison_after: int | None = 3,
        receive_window: int | None = None,
        max_publish_size: int | None = None,
    ) -> None:
        if max_inflight < 1:
            raise LocalProtocolError("max_inflight must be at least 1")
        if poison_after is not None and poison_after < 1:
            raise LocalProtocolError("poison_after must be at least 1 (or None: never)")
        if receive_window is not None and receive_window < 1:
            raise LocalProtocolError("receive_window must be at least 1 (or None: no bound)")
        if ping_grace is not None and ping_grace <= 0:
            raise LocalProtocolError("ping_grace must be positive seconds")
        encode(connect)  # validate now, before the first connection attempt
        self._connect = connect
        self.protocol = ProtocolVersion(connect.protocol)
        self.max_inflight = max_inflight
        self._ping_grace = ping_grace
        self._decoder = PacketDecoder(self.protocol, max_packet_size)
        self._state = SessionState.DISCONNECTED
        self._out: list[bytes] = []
        self._events: deque[Event | AtBridgeError] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self._pending: deque[_Outgoing] = deque()
        self._subscribing: dict[int, Subscribe] = {}
        self._unsubscribing: dict[int, Unsubscribe] = {}
        self._incoming_qos2: set[int] = set()
        self._topic_aliases: dict[int, str] = {}
        self.topic_aliases = topic_aliases
        self._alias_maximum = 0
        self._outgoing_aliases: dict[str, int] = {}
        self._next_id = 1
        self._busy_ids: set[int] = set()
        self._keepalive = connect.keepalive
        self._receive_maximum = 0xFFFF
        self._broker_max_packet: int | None = None
        self._last_sent: float | None = None
        self._ping_queued = False
        self._ping_sent_at: float | None = None
        self.poison_after = poison_after
        self.max_publish_size = max_publish_size
        self.receive_window = receive_window
        self._connection = 0  # counts connect() calls
        self._heard = 0  # packets received on this connection, but a DISCONNECT
        self._unsent: list[_Outgoing] = []  # in flight, their bytes in _out
        self._undelivered = 0  # QoS 1/2 deliveries not yet released by the owner
        self._session_present = False

    # -- introspection --

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return self._state

    @property
    def keepalive(self) -> int:
        """Keep Alive in force: ours, or the broker's Server Keep Alive (5.0)."""
        return self._keepalive

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Packet ids of QoS 1/2 publishes sent and not yet acknowledged, oldest first."""
        return tuple(self._inflight)

    @property
    def queued(self) -> int:
        """QoS 1/2 publishes waiting for a free slot in the window (or for a connection)."""
        return len(self._pending)

    @property
    def session_present(self) -> bool:
        """The last CONNACK's Session Present flag: the broker kept our session."""
        return self._session_present

    @property
    def receive_held(self) -> bool:
        """True while ``receive_window`` QoS 1/2 deliveries await :meth:`release_message`:
        received bytes stay undecoded (and unacknowledged); stop reading the socket."""
        return self.receive_window is not None and self._undelivered >= self.receive_window

    @property
    def window(self) -> int:
        """How many QoS 1/2 publishes may be in flight at once."""
        return min(self.max_inflight, self._receive_maximum)

    # -- operations: each queues bytes for data_to_send() --

    def connect(self) -> None:
        """Queue CONNECT for a fresh network connection (state DISCONNECTED -> CONNECTING)."""
        if self._state != SessionState.DISCONNECTED:
            raise LocalProtocolError(
                f"connect() needs a DISCONNECTED session, this one is {self._state.value}",
                hint="call connection_lost() after closing the old socket",
            )
        self._decoder = PacketDecoder(self.protocol, self._decoder.max_packet_size)
        self._out.clear()
        self._unsent.clear()
        self._connection += 1
        self._heard = 0
        self._topic_aliases.clear()
        self._forget_outgoing_aliases()
        self._ping_queued = False
        self._ping_sent_at = None
        self._out.append(encode(self._connect))
        self._state = SessionState.CONNECTING

    @overload
    def publish(
        self,
        topic: str,
        payload: bytes = ...,
        qos: Literal[0] = ...,
        retain: bool = ...,
        properties: Properties = ...,
    ) -> None: ...

    @overload
    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: Literal[1, 2],
        retain: bool = ...,
        properties: Properties = ...,
    ) -> int: ...

    @overload
    def publish(
        self,
        topic: str,
        payload: bytes = ...,
        *,
        qos: Literal[1, 2],
        retain: bool = ...,
        properties: Properties = ...,
    ) -> int: ...

    @overload
    def publish(
        self,
        topic: str,
        payload: bytes = ...,
        qos: int = ...,
        retain: bool = ...,
        properties: Properties = ...,
    ) -> int | None: ...

    def publish(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
    ) -> int | None:
        """Publish a message; returns its packet id (``None`` at QoS 0).

        QoS 1/2 messages are queued if the window is full or the session is
        offline and sent in order later; QoS 0 needs a connected session.
        Raises LocalProtocolError before queueing anything invalid, or anything
        brokers refuse by dropping the connection: a topic with a control character
        or a non-character (U+0001..U+001F, U+007F..U+009F, U+FDD0..U+FDEF,
        U+nFFFE/U+nFFFF), a packet above the broker's Maximum Packet Size (5.0) or
        ``max_publish_size``.
        """
        if self.topic_aliases and properties.get(PropertyId.TOPIC_ALIAS) is not None:
            raise LocalProtocolError(
                "(MQTT 5.0 §3.3.2.3.4) this session assigns topic aliases itself",
                hint="create the MqttSession with topic_aliases=False to set Topic Alias",
            )
        problem = refused_code_point_problem(topic, "the topic name")
        if problem:
            raise LocalProtocolError(problem, hint="publish to a topic of printable characters")
        # Built once with the id it will carry, and encoded once: its bytes are the first
        # transmission too unless a topic alias applies (_first_send).
        packet_id = self._peek_id() if qos else None
        publish = Publish(topic, payload, qos, retain, False, packet_id, properties)
        data = encode(publish, self.protocol)
        size = len(data)
        if self._broker_max_packet is not None and size > self._broker_max_packet:
            raise LocalProtocolError(
                f"[MQTT-3.2.2-15] this PUBLISH is {size} bytes; the broker accepts at most "
                f"{self._broker_max_packet} (its Maximum Packet Size)"
            )
        if self.max_publish_size is not None and size > self.max_publish_size:
            raise LocalProtocolError(
                f"this PUBLISH is {size:,} bytes; the broker takes at most "
                f"{self.max_publish_size:,} (max_publish_size), and drops the connection "
                "over a larger one",
                hint="send a smaller payload, or raise max_publish_size with the broker's limit",
            )
        if qos == 0:
            self._require_connected("publish at QoS 0")
            self._out.append(self._first_send(publish, data))
            return None
        assert packet_id is not None
        self._claim_id(packet_id)
        item = _Outgoing(publish, PacketType.PUBACK if qos == 1 else PacketType.PUBREC, data)
        self._pending.append(item)
        self._pump()
        return packet_id

    def subscribe(
        self,
        *subscriptions: Subscription | str,
        qos: int = 0,
        properties: Properties = NO_PROPERTIES,
    ) -> int:
        """Subscribe to one or more filters (a ``str`` gets ``qos``); returns the packet id."""
        self._require_connected("subscribe")
        subs = tuple(
            s if isinstance(s, Subscription) else Subscription(s, qos) for s in subscriptions
        )
        packet = Subscribe(self._peek_id(), subs, properties)
        data = encode(packet, self.protocol)
        self._claim_id(packet.packet_id)
        self._subscribing[packet.packet_id] = packet
        self._out.append(data)
        return packet.packet_id

    def unsubscribe(self, *topic_filters: str, properties: Properties = NO_PROPERTIES) -> int:
        """Unsubscribe from one or more filters; returns the packet id."""
        self._require_connected("unsubscribe")
        packet = Unsubscribe(self._peek_id(), tuple(topic_filters), properties)
        data = encode(packet, self.protocol)
        self._claim_id(packet.packet_id)
        self._unsubscribing[packet.packet_id] = packet
        self._out.append(data)
        return packet.packet_id

    def ping(self) -> bool:
        """Queue a PINGREQ; False (nothing queued) when one is already outstanding."""
        self._require_connected("ping")
        if self._ping_queued or self._ping_sent_at is not None:
            return False
        self._out.append(b"\xc0\x00")
        self._ping_queued = True
        return True

    def disconnect(self, reason_code: int = 0, properties: Properties = NO_PROPERTIES) -> None:
        """Queue DISCONNECT and end the session (in-flight messages are kept for later)."""
        self._out.append(encode(Disconnect(reason_code, properties), self.protocol))
        self._state = SessionState.DISCONNECTED
        self._forget_outgoing_aliases()
        self._ping_queued = False
        self._ping_sent_at = None

    def connection_lost(self) -> None:
        """The network connection is gone (or was closed after an error).

        Unsent bytes are dropped; unacknowledged publishes stay and are re-sent
        with DUP after the next CONNACK, except one that the broker has now
        dropped ``poison_after`` connections over in a row (a
        :class:`PublishAbandoned` event). Pending SUBSCRIBE / UNSUBSCRIBE calls
        are forgotten: subscribe again after reconnecting.
        """
        if self._state in (SessionState.CONNECTED, SessionState.ERROR):
            self._judge_disconnect()
        self._state = SessionState.DISCONNECTED
        self._out.clear()
        self._unsent.clear()
        self._forget_outgoing_aliases()
        for packet_id in (*self._subscribing, *self._unsubscribing):
            self._release_id(packet_id)
        self._subscribing.clear()
        self._unsubscribing.clear()
        self._ping_queued = False
        self._ping_sent_at = None

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` would return bytes (it takes them)."""
        return bool(self._out)

    def data_to_send(self, now: float) -> bytes:
        """Everything queued for the broker; ``now`` is when the caller sends it."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        for item in self._unsent:
            item.sent_on = self._connection
            item.heard_mark = self._heard
        self._unsent.clear()
        self._last_sent = now
        if self._ping_queued:
            self._ping_queued = False
            self._ping_sent_at = now
        return data

    # -- input --

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes received from the broker at time ``now``.

        Packets are handled at once (acknowledgements are queued for
        data_to_send()); their events, and any error, come out of next_event().
        Bytes arriving while DISCONNECTED or in ERROR are ignored.
        """
        if self._state in (SessionState.DISCONNECTED, SessionState.ERROR):
            return
        self._decoder.receive_data(data)
        self._process(now)

    def release_message(self, now: float) -> bool:
        """The owner handed one QoS 1/2 delivery on (``receive_window``, module comment).

        Returns True when this lifted the hold: buffered packets were handled, so
        read next_event() and send data_to_send() (their acknowledgements) again.
        """
        held = self.receive_held
        self._undelivered = max(0, self._undelivered - 1)
        if not held or self.receive_held:
            return False
        if self._ping_sent_at is not None:
            self._ping_sent_at = now  # a PINGRESP may wait behind what was held
        self._process(now)
        return True

    def _process(self, now: float) -> None:
        while self._state in (SessionState.CONNECTING, SessionState.CONNECTED):
            if self.receive_held:
                return
            try:
                packet = self._decoder.next_packet()
                if packet is None:
                    return
                self._handle(packet, now)
            except BrokerRefused as exc:
                self._state = SessionState.DISCONNECTED
                self._events.append(exc)
            except RemoteProtocolError as exc:
                self._state = SessionState.ERROR
                self._events.append(exc)

    def next_event(self) -> Event | None:
        """The next event, or None. Raises BrokerRefused / RemoteProtocolError in order."""
        if not self._events:
            return None
        item = self._events.popleft()
        if isinstance(item, AtBridgeError):
            raise item
        return item

    # -- keep-alive --

    def next_ping_due(self, now: float) -> float | None:
        """When the next PINGREQ must be sent (``now`` if overdue).

        None when Keep Alive is off, the session is not connected, or a PINGREQ
        is already outstanding (then watch :meth:`is_link_dead`).
        """
        if (
            self._state != SessionState.CONNECTED
            or not self._keepalive
            or self._ping_queued
            or self._ping_sent_at is not None
            or self._last_sent is None
        ):
            return None
        return max(now, self._last_sent + self._keepalive)

    def is_link_dead(self, now: float) -> bool:
        """True when the connection must be presumed dead at ``now``.

        Either our PINGREQ has waited ``ping_grace`` seconds for its PINGRESP,
        or nothing was sent for 1.5 x Keep Alive, so the broker has already
        closed the session [MQTT-3.1.2-24].
        """
        if self._state != SessionState.CONNECTED or self.receive_held:
            return False  # held: the owner is the bottleneck, the books resume on release
        if self._ping_sent_at is not None and now - self._ping_sent_at >= self.ping_grace:
            return True
        return bool(
            self._keepalive
            and self._last_sent is not None
            and now - self._last_sent >= 1.5 * self._keepalive
        )

    @property
    def ping_grace(self) -> float:
        """Seconds a PINGREQ may wait for PINGRESP before the link counts as dead."""
        if self._ping_grace is not None:
            return self._ping_grace
        return self._keepalive / 2 if self._keepalive else 30.0

    # -- internals --

    def _require_connected(self, what: str) -> None:
        if self._state != SessionState.CONNECTED:
            raise NotConnected(f"cannot {what}: the MQTT session is {self._state.value}")

    def _peek_id(self) -> int:
        busy = self._busy_ids
        if len(busy) >= 0xFFFF:
            raise LocalProtocolError(
                "(MQTT §2.3.1) all 65,535 packet identifiers are in use",
                hint="wait for acknowledgements before publishing more",
            )
        candidate = self._next_id
        while candidate in busy:
            candidate = candidate % 0xFFFF + 1
        return candidate

    def _claim_id(self, packet_id: int) -> None:
        self._busy_ids.add(packet_id)
        self._next_id = packet_id % 0xFFFF + 1

    def _release_id(self, packet_id: int) -> None:
        self._busy_ids.discard(packet_id)

    def _pump(self) -> None:
        if self._state != SessionState.CONNECTED:
            return
        while self._pending and len(self._inflight) < self.window:
            item = self._pending.popleft()
            pid = item.publish.packet_id
            assert pid is not None
            self._inflight[pid] = item
            self._out.append(self._first_send(item.publish, item.encoded))
            item.encoded = None  # a resend carries DUP: encoded again then
            self._unsent.append(item)

    def _send(self, packet: Packet) -> None:
        self._out.append(encode(packet, self.protocol))

    def _first_send(self, publish: Publish, encoded: bytes | None = None) -> bytes:
        """The bytes of a PUBLISH's first transmission, with a topic alias where one applies
        (``encoded``: ``publish`` already encoded, used as it is when no alias applies).

        Only a first transmission takes an alias: a PUBLISH re-sent after a reconnect
        goes through :meth:`_send` with its full topic (aliases die with their
        connection, [MQTT-3.3.2-7]).
        """
        if self._alias_maximum:
            topic = publish.topic
            alias = self._outgoing_aliases.get(topic)
            if alias is not None:
                publish = publish.replace(topic="", properties=_with_alias(publish, alias))
            elif len(self._outgoing_aliases) < self._alias_maximum and len(topic.encode()) > 3:
                alias = len(self._outgoing_aliases) + 1
                self._outgoing_aliases[topic] = alias
                publish = publish.replace(properties=_with_alias(publish, alias))
            else:
                return encoded if encoded is not None else encode(publish, self.protocol)
            return encode(publish, self.protocol)
        return encoded if encoded is not None else encode(publish, self.protocol)

    def _forget_outgoing_aliases(self) -> None:
        self._alias_maximum = 0
        self._outgoing_aliases.clear()

    def _handle(self, packet: Packet, now: float) -> None:
        if not isinstance(packet, Disconnect):  # a broker's DISCONNECT is no sign of life
            self._heard += 1
        if self._state == SessionState.CONNECTING:
            if not isinstance(packet, ConnAck):
                raise RemoteProtocolError(
                    f"[MQTT-3.2.0-1] the broker sent {packet.packet_type.name} before CONNACK"
                )
            self._handle_connack(packet)
            return
        handler = self._HANDLERS.get(type(packet))
        if handler is None:
            raise RemoteProtocolError(
                f"the broker sent {packet.packet_type.name}, which a broker must never send "
                "to a client" + (" (a second CONNACK)" if isinstance(packet, ConnAck) else "")
            )
        handler(self, packet, now)

    def _handle_connack(self, packet: ConnAck) -> None:
        if packet.reason_code != 0:
            refused = _refusal(packet.reason_code, self.protocol, packet.properties)
            if packet.reason_code in _ABOUT_CREDENTIALS:  # say what was sent (never the password)
                name = self._connect.username
                sent = f"user name {name!r}" if name else "no user name"
                refused.hint = f"{refused.hint} (the CONNECT carried {sent})".lstrip()
            raise refused
        props = packet.properties
        self._state = SessionState.CONNECTED
        server_keepalive = props.get(PropertyId.SERVER_KEEP_ALIVE)
        self._keepalive = (
            server_keepalive if isinstance(server_keepalive, int) else self._connect.keepalive
        )
        receive_maximum = props.get(PropertyId.RECEIVE_MAXIMUM)
        self._receive_maximum = receive_maximum if isinstance(receive_maximum, int) else 0xFFFF
        max_packet = props.get(PropertyId.MAXIMUM_PACKET_SIZE)
        self._broker_max_packet = max_packet if isinstance(max_packet, int) else None
        alias_maximum = props.get(PropertyId.TOPIC_ALIAS_MAXIMUM)
        self._forget_outgoing_aliases()
        if self.topic_aliases and self.protocol == _V5 and isinstance(alias_maximum, int):
            self._alias_maximum = alias_maximum
        assigned = props.get(PropertyId.ASSIGNED_CLIENT_IDENTIFIER)
        if isinstance(assigned, str) and not self._connect.client_id:
            self._connect = replace(self._connect, client_id=assigned)
        self._session_present = packet.session_present
        if not packet.session_present:
            self._incoming_qos2.clear()
        self._events.append(Connected(packet.session_present, self._keepalive, props))
        # [MQTT-4.4.0-1]: re-send unacknowledged PUBLISH (DUP) and PUBREL, in original order.
        for pid, item in list(self._inflight.items()):
            if item.awaiting == PacketType.PUBCOMP:
                if packet.session_present:
                    self._send(PubRel(pid))
                else:
                    # The broker had the message (it sent PUBREC); the new session forgot it.
                    del self._inflight[pid]
                    self._release_id(pid)
                    self._events.append(PublishAcknowledged(pid))
            else:
                item.publish = item.publish.replace(dup=True)
                self._send(item.publish)
                self._unsent.append(item)
        self._pump()

    def _handle_publish(self, packet: Publish, _now: float) -> None:
        topic = packet.topic
        alias = packet.properties.get(PropertyId.TOPIC_ALIAS)
        if isinstance(alias, int):
            announced = self._connect.properties.get(PropertyId.TOPIC_ALIAS_MAXIMUM)
            maximum = announced if isinstance(announced, int) else 0
            if alias > maximum:
                raise RemoteProtocolError(
                    f"(MQTT 5.0 §3.3.2.3.4) the broker used Topic Alias {alias}, above the "
                    f"Topic Alias Maximum {maximum} this client announced"
                )
            if topic:
                self._topic_aliases[alias] = topic
            elif alias in self._topic_aliases:
                topic = self._topic_aliases[alias]
            else:
                raise RemoteProtocolError(
                    f"(MQTT 5.0 §3.3.2.3.4) the broker used unknown Topic Alias {alias}"
                )
        event = MessageReceived(topic, packet.payload, packet.qos, packet.retain, packet.properties)
        pid = packet.packet_id
        if pid is None:
            self._events.append(event)
        elif packet.qos == 1:
            self._deliver(event)
            self._send(PubAck(pid))
        else:
            if pid not in self._incoming_qos2:
                self._incoming_qos2.add(pid)
                self._deliver(event)
            self._send(PubRec(pid))

    def _deliver(self, event: MessageReceived) -> None:
        """A QoS 1/2 delivery: counted against ``receive_window`` until released."""
        if self.receive_window is not None:
            self._undelivered += 1
        self._events.append(event)

    def _judge_disconnect(self) -> None:
        """The connection ended: count it against the oldest message in flight if that
        went out on it and nothing was heard from the broker since; abandon it once
        that has happened ``poison_after`` times in a row."""
        head = next(iter(self._inflight.values()), None)
        if head is None or head.awaiting == PacketType.PUBCOMP or self.poison_after is None:
            return  # a PUBREL stage: the broker has already taken the message
        if head.sent_on != self._connection:
            return
        if self._heard > head.heard_mark:
            head.strikes = 0  # the broker spoke after reading it: not this message's fault
            return
        head.strikes += 1
        if head.strikes < self.poison_after:
            return
        pid = head.publish.packet_id
        assert pid is not None
        del self._inflight[pid]
        self._release_id(pid)
        self._events.append(PublishAbandoned(pid, head.publish.topic, head.strikes))

    def _handle_puback(self, packet: PubAck, _now: float) -> None:
        item = self._inflight.get(packet.packet_id)
        if item is not None and item.awaiting == PacketType.PUBACK:
            self._finish(packet.packet_id, packet.reason_code, packet.properties)

    def _handle_pubrec(self, packet: PubRec, _now: float) -> None:
        pid = packet.packet_id
        item = self._inflight.get(pid)
        if item is None or item.awaiting == PacketType.PUBACK:
            if self.protocol == _V5:
                self._send(PubRel(pid, 0x92))
            return
        if packet.reason_code >= 0x80:
            self._finish(pid, packet.reason_code, packet.properties)
            return
        item.awaiting = PacketType.PUBCOMP
        self._send(PubRel(pid))

    def _handle_pubrel(self, packet: PubRel, _now: float) -> None:
        pid = packet.packet_id
        if pid in self._incoming_qos2:
            self._incoming_qos2.discard(pid)
            self._send(PubComp(pid))
        else:
            self._send(PubComp(pid, 0x92 if self.protocol == _V5 else 0))

    def _handle_pubcomp(self, packet: PubComp, _now: float) -> None:
        item = self._inflight.get(packet.packet_id)
        if item is not None and item.awaiting == PacketType.PUBCOMP:
            self._finish(packet.packet_id, packet.reason_code, packet.properties)

    def _finish(self, pid: int, code: int, props: Properties) -> None:
        del self._inflight[pid]
        self._release_id(pid)
        reason_string = props.get(PropertyId.REASON_STRING)
        self._events.append(
            PublishAcknowledged(
                pid, code, reason_string if isinstance(reason_string, str) else None
            )
        )
        self._pump()

    def _handle_suback(self, packet: SubAck, _now: float) -> None:
        request = self._subscribing.pop(packet.packet_id, None)
        if request is None:
            return
        self._release_id(packet.packet_id)
        if len(packet.reason_codes) != len(request.subscriptions):
            raise RemoteProtocolError(
                f"[MQTT-3.8.4-5] SUBACK carries {len(packet.reason_codes)} codes for "
                f"{len(request.subscriptions)} topic filters"
            )
        reason_string = packet.properties.get(PropertyId.REASON_STRING)
        self._events.append(
            Subscribed(
                packet.packet_id,
                request.subscriptions,
                packet.reason_codes,
                reason_string if isinstance(reason_string, str) else None,
            )
        )

    def _handle_unsuback(self, packet: UnsubAck, _now: float) -> None:
        request = self._unsubscribing.pop(packet.packet_id, None)
        if request is None:
            return
        self._release_id(packet.packet_id)
        if packet.reason_codes and len(packet.reason_codes) != len(request.topic_filters):
            raise RemoteProtocolError(
                f"(MQTT 5.0 §3.11.3) UNSUBACK carries {len(packet.reason_codes)} codes for "
                f"{len(request.topic_filters)} topic filters"
            )
        self._events.append(
            Unsubscribed(packet.packet_id, request.topic_filters, packet.reason_codes)
        )

    def _handle_pingresp(self, _packet: PingResp, now: float) -> None:
        if self._ping_sent_at is not None:
            self._events.append(PongReceived(now - self._ping_sent_at))
            self._ping_sent_at = None

    def _handle_disconnect(self, packet: Disconnect, _now: float) -> None:
        if self.protocol != _V5:
            raise RemoteProtocolError(
                "(MQTT 3.1.1 §3.14) the broker sent DISCONNECT, which only a client may send"
            )
        reason_string = packet.properties.get(PropertyId.REASON_STRING)
        reference = packet.properties.get(PropertyId.SERVER_REFERENCE)
        self._state = SessionState.DISCONNECTED
        self._ping_sent_at = None
        self._events.append(
            BrokerDisconnected(
                packet.reason_code,
                reason_string if isinstance(reason_string, str) else None,
                reference if isinstance(reference, str) else None,
            )
        )

    _HANDLERS: ClassVar[dict[type, Callable[[MqttSession, object, float], None]]] = {
        Publish: _handle_publish,  # type: ignore[dict-item]
        PubAck: _handle_puback,  # type: ignore[dict-item]
        PubRec: _handle_pubrec,  # type: ignore[dict-item]
        PubRel: _handle_pubrel,  # type: ignore[dict-item]
        PubComp: _handle_pubcomp,  # type: ignore[dict-item]
        SubAck: _handle_suback,  # type: ignore[dict-item]
        UnsubAck: _handle_unsuback,  # type: ignore[dict-item]
        PingResp: _handle_pingresp,  # type: ignore[dict-item]
        Disconnect: _handle_disconnect,  # type: ignore[dict-item]
    }
