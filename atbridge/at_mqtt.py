"""MQTT 3.1.1 and 5.0 packets, a stream decoder, and a sans-IO client session.

Theory of operation
-------------------
atbridge builds every MQTT byte on the host and pushes it through a modem
socket. A broker does not explain a malformed packet, it closes the connection,
and over a cellular link that costs minutes; so this module checks everything
it can *before* a byte leaves, and says which spec statement was broken.

There are three layers, none of which does I/O (no sockets, no asyncio, no
serial): bytes and the current time come in as arguments, bytes and events go
out.

1. **Packets and the codec.** Every control packet is a frozen dataclass
   (:class:`Connect`, :class:`ConnAck`, :class:`Publish`, ...).
   :func:`encode` turns one into bytes and raises
   :class:`~atbridge.errors.LocalProtocolError` for anything the spec forbids
   (the message starts with the statement, e.g. ``[MQTT-3.3.2-2]``).
   :func:`decode` turns one whole frame back into a packet and raises
   :class:`MalformedPacket` (a :class:`~atbridge.errors.RemoteProtocolError`)
   for bytes that break the protocol. Validation is symmetric: whatever
   :func:`decode` accepts, :func:`encode` can write again, and the other way
   round. MQTT 3.1.1 is the default; pass ``ProtocolVersion.MQTT_5_0`` for 5.0
   (CONNECT carries its own level). 5.0 properties live in
   :mod:`atbridge.mqtt_properties` and are re-exported here.

2. **The stream decoder** (:class:`PacketDecoder`). Feed it whatever chunks the
   modem delivers with :meth:`~PacketDecoder.receive_data`, then call
   :meth:`~PacketDecoder.next_packet` until it returns ``None``. ``None`` means
   "need more data" and is not an error; a frame split across any number of
   chunks, or several frames in one chunk, both work. A frame larger than
   ``max_packet_size`` raises :class:`PacketTooLarge` as soon as its header is
   read, before its body is buffered. After an error the decoder stays broken:
   the byte stream has lost its framing, so the caller must drop the link.

3. **The client session** (:class:`MqttSession`), modelled on h11 and
   mqttproto. Operations (:meth:`~MqttSession.connect`,
   :meth:`~MqttSession.publish`, :meth:`~MqttSession.subscribe`, ...) only
   queue bytes; :meth:`~MqttSession.data_to_send` hands them to the caller.
   Received bytes go in with :meth:`~MqttSession.receive_data`; results come
   out of :meth:`~MqttSession.next_event` as events, in order, and a refused
   CONNACK or a protocol violation is raised from ``next_event`` *after* the
   events that preceded it. The session

   - allocates packet identifiers, never reusing one that is still in use;
   - keeps QoS 1 and QoS 2 messages in flight until acknowledged, at most
     ``max_inflight`` at a time (lowered to the broker's Receive Maximum in
     5.0); messages beyond the window, or published while offline, wait in
     order and go out as slots free up;
   - after a reconnect, re-sends every unacknowledged PUBLISH with DUP set and
     its original packet identifier, and every PUBREL [MQTT-4.4.0-1];
   - answers the broker's QoS 1 / QoS 2 deliveries by itself (PUBACK, PUBREC,
     PUBCOMP) and delivers a QoS 2 message once;
   - keeps the keep-alive books from the caller's clock:
     :meth:`~MqttSession.next_ping_due` says when a PINGREQ must go out (Keep
     Alive seconds after the last packet sent [MQTT-3.1.2-23]) and
     :meth:`~MqttSession.is_link_dead` says when the link must be presumed
     dead: no PINGRESP within ``ping_grace`` of our PINGREQ, or nothing sent for
     1.5 x Keep Alive, after which the broker has dropped us [MQTT-3.1.2-24].

   States: DISCONNECTED -> connect() -> CONNECTING -> CONNACK accepted ->
   CONNECTED; disconnect(), connection_lost(), a refusal or a broker DISCONNECT
   lead back to DISCONNECTED; a protocol violation leads to ERROR, left with
   connection_lost() once the caller has closed the socket.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from typing import ClassVar, NoReturn

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
from atbridge.mqtt_properties import (
    CONNACK_RETURN_CODES_311,
    NO_PROPERTIES,
    REASON_CODES_BY_PACKET,
    WILL,
    PacketType,
    Properties,
    PropertyId,
    PropertyValue,
    decode_binary,
    decode_properties,
    decode_string,
    encode_binary,
    encode_properties,
    encode_string,
    encode_varint,
    reason_name,
)

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

#: Largest Remaining Length a fixed header can carry (3.1.1 §2.2.3, 5.0 §1.5.5).
MAX_REMAINING_LENGTH = 268_435_455
#: Default largest whole packet the decoder accepts: 1 MiB (Aliyun caps messages at 256 KiB).
DEFAULT_MAX_PACKET_SIZE = 1 << 20


class ProtocolVersion(IntEnum):
    """The protocol level byte of CONNECT."""

    MQTT_3_1_1 = 4
    MQTT_5_0 = 5


def _malformed(message: str) -> NoReturn:
    raise MalformedPacket(message)


# --- packets ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Will:
    """The Will message the broker publishes if the link dies without DISCONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True, repr=False)
class Connect:
    """CONNECT (3.1.1 §3.1, 5.0 §3.1). ``password`` is never shown by ``repr``."""

    packet_type: ClassVar[PacketType] = PacketType.CONNECT
    client_id: str = ""
    clean_session: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1
    properties: Properties = NO_PROPERTIES

    def __repr__(self) -> str:
        password = "None" if self.password is None else "'********'"
        return (
            f"Connect(client_id={self.client_id!r}, clean_session={self.clean_session}, "
            f"keepalive={self.keepalive}, username={self.username!r}, password={password}, "
            f"will={self.will!r}, protocol={self.protocol.name}, properties={self.properties!r})"
        )


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK. ``reason_code`` is the 3.1.1 return code or the 5.0 reason code."""

    packet_type: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH. ``packet_id`` is set exactly when ``qos`` > 0 [MQTT-2.3.1-1], [MQTT-2.3.1-5]."""

    packet_type: ClassVar[PacketType] = PacketType.PUBLISH
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: the broker (or we) received a QoS 1 PUBLISH."""

    packet_type: ClassVar[PacketType] = PacketType.PUBACK
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first answer to a QoS 2 PUBLISH."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREC
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: the sender of a QoS 2 message releases it."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREL
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: the QoS 2 exchange is complete."""

    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE and its options (the last three are MQTT 5.0 only)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE with one or more filters."""

    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one code per filter: granted QoS 0..2, or a failure (0x80 and up)."""

    packet_type: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE with one or more filters."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK; ``reason_codes`` exist only in MQTT 5.0 (empty in 3.1.1)."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK
    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: keep-alive probe from the client."""

    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the broker's answer to PINGREQ."""

    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT; reason code and properties exist only in MQTT 5.0."""

    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (MQTT 5.0 only): enhanced authentication exchange."""

    packet_type: ClassVar[PacketType] = PacketType.AUTH
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)


class _PublishShell:
    """A plain object with Publish's slots, which the decoder turns into a Publish.

    A frozen dataclass stores each field through ``object.__setattr__`` (~0.1 µs a
    field), which made ``Publish(...)`` the largest cost of decoding a PUBLISH. The
    decoder fills a shell with plain slot stores instead and then assigns its
    ``__class__``: the result is an ordinary frozen Publish, equal to ``Publish(...)``
    with the same values. If Publish gains a field this class lacks, the assignment
    raises TypeError (layouts differ) in every test that decodes a PUBLISH.
    """

    __slots__ = ("dup", "packet_id", "payload", "properties", "qos", "retain", "topic")
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None
    properties: Properties


_V5 = ProtocolVersion.MQTT_5_0
_SUBACK_CODES_311 = frozenset((0x00, 0x01, 0x02, 0x80))


def connack_reason(code: int, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> str:
    """The spec's name for a CONNACK code: 3.1.1 return code or 5.0 reason code."""
    if protocol == _V5:
        return reason_name(code, PacketType.CONNACK)
    return CONNACK_RETURN_CODES_311.get(code, f"reserved return code {code}")


# --- validation shared by the encoder (local errors) and decoder (remote errors) ---


def _topic_name_problem(topic: str) -> str | None:
    if not topic:
        return "[MQTT-4.7.3-1] a topic name must be at least one character long"
    if "+" in topic or "#" in topic:
        return f"[MQTT-3.3.2-2] a PUBLISH topic must not contain wildcards (+ or #): {topic!r}"
    return None


def _topic_filter_problem(topic_filter: str) -> str | None:
    if not topic_filter:
        return "[MQTT-4.7.3-1] a topic filter must be at least one character long"
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return (
                "[MQTT-4.7.1-2] '#' must be the last level of a topic filter and stand alone "
                f"in it: {topic_filter!r}"
            )
        if "+" in level and level != "+":
            return (
                f"[MQTT-4.7.1-3] '+' must occupy a whole level of a topic filter: {topic_filter!r}"
            )
    return None


def validate_topic_name(topic: str) -> None:
    """Raise LocalProtocolError unless ``topic`` can be published to (3.1.1 §4.7)."""
    problem = _topic_name_problem(topic)
    if problem:
        raise LocalProtocolError(problem)
    encode_string(topic, "topic name")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise LocalProtocolError unless ``topic_filter`` can be subscribed to (3.1.1 §4.7)."""
    problem = _topic_filter_problem(topic_filter)
    if problem:
        raise LocalProtocolError(problem)
    encode_string(topic_filter, "topic filter")


def _check_packet_id(packet_id: int | None, what: str) -> int:
    if packet_id is None or not 1 <= packet_id <= 0xFFFF:
        raise LocalProtocolError(
            f"[MQTT-2.3.1-1] {what} needs a non-zero 16-bit packet identifier, got {packet_id!r}"
        )
    return packet_id


def _check_qos(qos: int, what: str, statement: str) -> None:
    if qos not in (0, 1, 2):
        raise LocalProtocolError(f"[{statement}] {what} QoS must be 0, 1 or 2, got {qos!r}")


def _local_props(props: Properties, context: PacketType | str, protocol: ProtocolVersion) -> bytes:
    if protocol == _V5:
        return encode_properties(props, context)
    if props:
        raise LocalProtocolError(
            "(MQTT 3.1.1) properties exist only in MQTT 5.0; connect with protocol MQTT_5_0"
        )
    return b""


def _local_reason(code: int, ptype: PacketType, protocol: ProtocolVersion) -> None:
    if protocol != _V5:
        if code != 0:
            raise LocalProtocolError(
                f"(MQTT 3.1.1) {ptype.name} carries no reason code; "
                "reason codes exist only in MQTT 5.0"
            )
        return
    if code not in REASON_CODES_BY_PACKET[ptype]:
        raise LocalProtocolError(
            f"(MQTT 5.0 §2.4) reason code 0x{code:02X} is not allowed in {ptype.name}"
        )


# --- encoder -----------------------------------------------------------------------


# The PUBLISH and CONNECT paths run once per message or connection and are written for
# speed (bench/mqtt_codec.py measures them against paho-mqtt): precompiled structs, the
# fixed header packed together with what follows it, one join per frame so a payload
# is copied once, and UTF-8 checks done inline; the validation helpers (encode_string,
# _check_packet_id, ...) are called only when a quick check fails, to raise their exact
# error, in the same order as the checks of the other encoders. On top of that,
# encode() and decode() have a fast path for the usual MQTT 3.1.1 PUBLISH that only
# ever returns a result: whatever it does not handle, errors included, it leaves to
# _encode_publish / _decode_publish (tests/test_mqtt_codec_fast_paths.py holds the two
# paths to each other).
_pack_u16 = struct.Struct("!H").pack
#: ``_pack_u16(n)`` for n < 256, the length prefix of most strings, without a call.
_U16 = tuple(_pack_u16(n) for n in range(0x100))
_pack_b_b = struct.Struct("!BB").pack
_pack_b_b_b = struct.Struct("!BBB").pack
_pack_b_b_u16 = struct.Struct("!BBH").pack
_pack_b_b_b_u16 = struct.Struct("!BBBH").pack
# CONNECT's variable header (protocol name, level, flags, keep alive) alone, or after a
# fixed header with a one- or two-byte Remaining Length and followed by the length of
# the client id (when no property block comes in between).
_pack_connect_head_0 = struct.Struct("!6sBBH").pack
_pack_connect_head_1 = struct.Struct("!BB6sBBHH").pack
_pack_connect_head_2 = struct.Struct("!BBB6sBBHH").pack

# The PUBLISH fast paths of encode() and decode() remember the topic names they have
# validated, in two small caches: str -> length-prefixed UTF-8 for encode(), UTF-8 ->
# str for decode(). A name enters only after the fast path checked it as the general
# path does (non-empty, no wildcard, well-formed UTF-8 without U+0000, at most 65,535
# bytes), so a hit skips no rule and a miss checks the name in full. Names over
# _TOPIC_CACHE_MAX_BYTES are not kept; a cache that reaches _TOPIC_CACHE_SIZE entries is
# emptied (one atomic clear(), safe with threads), so neither grows without bound.
_TOPIC_CACHE_SIZE = 256
_TOPIC_CACHE_MAX_BYTES = 256
_encoded_topics: dict[str, bytes] = {}
_decoded_topics: dict[bytes, str] = {}


def _fixed_header(first: int, size: int) -> bytes:
    """The type byte and the Remaining Length of a packet whose body is ``size`` bytes."""
    if size < 0x80:
        return bytes((first, size))
    if size < 0x4000:
        return bytes((first, (size & 0x7F) | 0x80, size >> 7))
    if size > MAX_REMAINING_LENGTH:
        raise LocalProtocolError(
            f"(MQTT 3.1.1 §2.2.3) the packet body is {size} bytes; the Remaining Length "
            f"cannot exceed {MAX_REMAINING_LENGTH:,}"
        )
    return bytes((first,)) + encode_varint(size)


def _frame(first: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((first, size)) + body
    return _fixed_header(first, size) + body


def _encode_connect(packet: Connect, _protocol: ProtocolVersion) -> bytes:
    protocol = packet.protocol
    if type(protocol) is not ProtocolVersion:
        protocol = ProtocolVersion(protocol)
    keepalive = packet.keepalive
    if not 0 <= keepalive <= 0xFFFF:
        raise LocalProtocolError(
            f"(MQTT 3.1.1 §3.1.2.10) Keep Alive must be 0..65535 seconds, got {keepalive}"
        )
    clean_session = packet.clean_session
    username = packet.username
    password = packet.password
    client_id = packet.client_id
    v5 = protocol is _V5
    flags = 0x02 if clean_session else 0
    will = packet.will
    if will is not None:
        _check_qos(will.qos, "Will", "MQTT-3.1.2-14")
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        if username is None and not v5:
            raise LocalProtocolError(
                "[MQTT-3.1.2-22] MQTT 3.1.1 does not allow a password without a user name"
            )
        flags |= 0x40
    if not client_id and not clean_session and not v5:
        raise LocalProtocolError(
            "[MQTT-3.1.3-7] an empty client id requires clean session (clean_session=True)"
        )
    props = packet.properties
    if props is NO_PROPERTIES and not v5:
        prop_bytes = b""
    else:
        prop_bytes = _local_props(props, PacketType.CONNECT, protocol)
    try:
        raw_id = client_id.encode()
    except UnicodeEncodeError:
        raw_id = encode_string(client_id, "client id")  # raises the surrogate error
    if len(raw_id) > 0xFFFF or "\x00" in client_id:
        encode_string(client_id, "client id")  # raises the length or U+0000 error
    size = 12 + len(prop_bytes) + len(raw_id)
    if will is not None:
        will_props = _local_props(will.properties, WILL, protocol)
        problem = _topic_name_problem(will.topic)
        if problem:
            raise LocalProtocolError(problem.replace("a PUBLISH topic", "the Will topic"))
        will_topic = encode_string(will.topic, "Will topic")
        will_message = encode_binary(will.payload, "Will message")
        size += len(will_props) + len(will_topic) + len(will_message)
    if username is not None:
        try:
            raw_user = username.encode()
        except UnicodeEncodeError:
            raw_user = encode_string(username, "user name")  # raises the surrogate error
        if len(raw_user) > 0xFFFF or "\x00" in username:
            encode_string(username, "user name")  # raises the length or U+0000 error
        size += 2 + len(raw_user)
    if password is not None:
        if len(password) > 0xFFFF:
            encode_binary(password, "password")  # raises
        size += 2 + len(password)
    # The fixed header, the variable header and the client id's length in one pack.
    if prop_bytes:
        head = (
            _fixed_header(0x10, size)
            + _pack_connect_head_0(b"\x00\x04MQTT", protocol, flags, keepalive)
            + prop_bytes
            + _pack_u16(len(raw_id))
        )
    elif size < 0x80:
        head = _pack_connect_head_1(
            0x10, size, b"\x00\x04MQTT", protocol, flags, keepalive, len(raw_id)
        )
    elif size < 0x4000:
        head = _pack_connect_head_2(
            0x10,
            (size & 0x7F) | 0x80,
            size >> 7,
            b"\x00\x04MQTT",
            protocol,
            flags,
            keepalive,
            len(raw_id),
        )
    else:
        head = (
            _fixed_header(0x10, size)
            + _pack_connect_head_0(b"\x00\x04MQTT", protocol, flags, keepalive)
            + _pack_u16(len(raw_id))
        )
    # Both joins keep the items at the places they had when the property block and the
    # client id's length were items of their own (now in ``head``, hence the two b""),
    # so a user name or password of the wrong type raises the same TypeError as before.
    if will is None and username is not None and password is not None:
        # The usual CONNECT: user name and password, no Will.
        user_size = len(raw_user)
        password_size = len(password)
        return b"".join(
            (
                head,
                b"",
                b"",
                raw_id,
                _U16[user_size] if user_size < 0x100 else _pack_u16(user_size),
                raw_user,
                _U16[password_size] if password_size < 0x100 else _pack_u16(password_size),
                password,
            )
        )
    parts = [head, b"", b"", raw_id]
    if will is not None:
        parts += (will_props, will_topic, will_message)
    if username is not None:
        parts += (_pack_u16(len(raw_user)), raw_user)
    if password is not None:
        parts += (_pack_u16(len(password)), password)
    return b"".join(parts)


def _encode_connack(packet: ConnAck, protocol: ProtocolVersion) -> bytes:
    code = packet.reason_code
    if protocol == _V5:
        _local_reason(code, PacketType.CONNACK, protocol)
    elif code not in CONNACK_RETURN_CODES_311:
        raise LocalProtocolError(f"(MQTT 3.1.1 §3.2.2.3) CONNACK return code {code} is reserved")
    if packet.session_present and code != 0:
        raise LocalProtocolError("[MQTT-3.2.2-4] a refusing CONNACK must have Session Present = 0")
    body = bytes((1 if packet.session_present else 0, code))
    return _frame(0x20, body + _local_props(packet.properties, PacketType.CONNACK, protocol))


def _encode_publish(packet: Publish, protocol: ProtocolVersion) -> bytes:
    qos = packet.qos
    topic = packet.topic
    if qos not in (0, 1, 2):
        raise LocalProtocolError(f"[MQTT-3.3.1-4] PUBLISH QoS must be 0, 1 or 2, got {qos!r}")
    props = packet.properties
    if ("+" in topic or "#" in topic or not topic) and (
        topic or protocol != _V5 or props.get(PropertyId.TOPIC_ALIAS) is None
    ):
        raise LocalProtocolError(_topic_name_problem(topic) or "")
    first = 0x30 | (qos << 1) | (1 if packet.retain else 0)
    if qos:
        packet_id = packet.packet_id
        if packet_id is None or not 1 <= packet_id <= 0xFFFF:
            _check_packet_id(packet_id, "a QoS 1/2 PUBLISH")
        pid = _pack_u16(packet_id)
        size = 4  # Remaining Length so far: topic length prefix + packet identifier
        if packet.dup:
            first |= 0x08
    else:
        if packet.packet_id is not None:
            raise LocalProtocolError(
                "[MQTT-2.3.1-5] a QoS 0 PUBLISH must not carry a packet identifier"
            )
        if packet.dup:
            raise LocalProtocolError("[MQTT-3.3.1-2] DUP must be 0 for a QoS 0 PUBLISH")
        pid = b""
        size = 2  # Remaining Length so far: topic length prefix
    if props is NO_PROPERTIES and protocol != _V5:
        prop_bytes = b""
    else:
        prop_bytes = _local_props(props, PacketType.PUBLISH, protocol)
        size += len(prop_bytes)
    try:
        raw = topic.encode()
    except UnicodeEncodeError:
        raw = encode_string(topic, "topic name")  # raises the surrogate error
    if len(raw) > 0xFFFF or "\x00" in topic:
        encode_string(topic, "topic name")  # raises the length or U+0000 error
    payload = packet.payload
    size += len(raw) + len(payload)
    if size < 0x80:
        head = _pack_b_b_u16(first, size, len(raw))
    elif size < 0x4000:
        head = _pack_b_b_b_u16(first, (size & 0x7F) | 0x80, size >> 7, len(raw))
    else:
        head = _fixed_header(first, size) + _pack_u16(len(raw))
    return b"".join((head, raw, pid, prop_bytes, payload))


def _encode_ack(packet: PubAck | PubRec | PubRel | PubComp, protocol: ProtocolVersion) -> bytes:
    ptype = packet.packet_type
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, ptype.name))
    _local_reason(packet.reason_code, ptype, protocol)
    first = (ptype << 4) | (0x02 if ptype == PacketType.PUBREL else 0)
    if protocol != _V5:
        _local_props(packet.properties, ptype, protocol)
        return _frame(first, pid)
    if packet.properties:
        body = pid + bytes((packet.reason_code,)) + encode_properties(packet.properties, ptype)
    elif packet.reason_code:
        body = pid + bytes((packet.reason_code,))
    else:
        body = pid
    return _frame(first, body)


def _encode_subscribe(packet: Subscribe, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "SUBSCRIBE"))
    if not packet.subscriptions:
        raise LocalProtocolError("[MQTT-3.8.3-3] a SUBSCRIBE must contain at least one filter")
    parts = [pid, _local_props(packet.properties, PacketType.SUBSCRIBE, protocol)]
    for sub in packet.subscriptions:
        validate_topic_filter(sub.topic_filter)
        _check_qos(sub.qos, f"subscription {sub.topic_filter!r}", "MQTT-3-8.3-4")
        options = sub.qos
        if protocol == _V5:
            if sub.retain_handling not in (0, 1, 2):
                raise LocalProtocolError(
                    f"(MQTT 5.0 §3.8.3.1) Retain Handling must be 0, 1 or 2, "
                    f"got {sub.retain_handling!r}"
                )
            if sub.no_local and sub.topic_filter.startswith("$share/"):
                raise LocalProtocolError(
                    "[MQTT-3.8.3-4] No Local must not be set on a shared subscription"
                )
            options |= (
                (0x04 if sub.no_local else 0)
                | (0x08 if sub.retain_as_published else 0)
                | (sub.retain_handling << 4)
            )
        elif sub.no_local or sub.retain_as_published or sub.retain_handling:
            raise LocalProtocolError(
                "(MQTT 3.1.1 §3.8.3.1) No Local, Retain As Published and Retain Handling "
                "exist only in MQTT 5.0"
            )
        parts.append(encode_string(sub.topic_filter, "topic filter"))
        parts.append(bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _encode_suback(packet: SubAck, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "SUBACK"))
    if not packet.reason_codes:
        raise LocalProtocolError(
            "[MQTT-3.8.4-5] a SUBACK carries one return code per filter, at least one"
        )
    for code in packet.reason_codes:
        if protocol == _V5:
            _local_reason(code, PacketType.SUBACK, protocol)
        elif code not in _SUBACK_CODES_311:
            raise LocalProtocolError(
                f"[MQTT-3.9.3-2] SUBACK return code 0x{code:02X} is reserved "
                "(allowed: 0x00, 0x01, 0x02, 0x80)"
            )
    props = _local_props(packet.properties, PacketType.SUBACK, protocol)
    return _frame(0x90, pid + props + bytes(packet.reason_codes))


def _encode_unsubscribe(packet: Unsubscribe, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "UNSUBSCRIBE"))
    if not packet.topic_filters:
        raise LocalProtocolError("[MQTT-3.10.3-2] an UNSUBSCRIBE must contain at least one filter")
    parts = [pid, _local_props(packet.properties, PacketType.UNSUBSCRIBE, protocol)]
    for topic_filter in packet.topic_filters:
        validate_topic_filter(topic_filter)
        parts.append(encode_string(topic_filter, "topic filter"))
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: UnsubAck, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "UNSUBACK"))
    if protocol != _V5:
        if packet.reason_codes:
            raise LocalProtocolError(
                "(MQTT 3.1.1 §3.11) UNSUBACK carries no reason codes; they exist only in 5.0"
            )
        _local_props(packet.properties, PacketType.UNSUBACK, protocol)
        return _frame(0xB0, pid)
    if not packet.reason_codes:
        raise LocalProtocolError("(MQTT 5.0 §3.11.3) an UNSUBACK needs one reason code per filter")
    for code in packet.reason_codes:
        _local_reason(code, PacketType.UNSUBACK, protocol)
    props = encode_properties(packet.properties, PacketType.UNSUBACK)
    return _frame(0xB0, pid + props + bytes(packet.reason_codes))


def _encode_empty(packet: PingReq | PingResp, _protocol: ProtocolVersion) -> bytes:
    return bytes((packet.packet_type << 4, 0))


def _encode_disconnect_or_auth(packet: Disconnect | Auth, protocol: ProtocolVersion) -> bytes:
    ptype = packet.packet_type
    first = ptype << 4
    if protocol != _V5:
        if ptype == PacketType.AUTH:
            raise LocalProtocolError("(MQTT 3.1.1) AUTH exists only in MQTT 5.0")
        _local_reason(packet.reason_code, ptype, protocol)
        _local_props(packet.properties, ptype, protocol)
        return b"\xe0\x00"
    _local_reason(packet.reason_code, ptype, protocol)
    if packet.properties:
        body = bytes((packet.reason_code,)) + encode_properties(packet.properties, ptype)
    elif packet.reason_code:
        body = bytes((packet.reason_code,))
    else:
        body = b""
    return _frame(first, body)


_ENCODERS: dict[type, Callable[[object, ProtocolVersion], bytes]] = {
    Connect: _encode_connect,  # type: ignore[dict-item]
    ConnAck: _encode_connack,  # type: ignore[dict-item]
    Publish: _encode_publish,  # type: ignore[dict-item]
    PubAck: _encode_ack,  # type: ignore[dict-item]
    PubRec: _encode_ack,  # type: ignore[dict-item]
    PubRel: _encode_ack,  # type: ignore[dict-item]
    PubComp: _encode_ack,  # type: ignore[dict-item]
    Subscribe: _encode_subscribe,  # type: ignore[dict-item]
    SubAck: _encode_suback,  # type: ignore[dict-item]
    Unsubscribe: _encode_unsubscribe,  # type: ignore[dict-item]
    UnsubAck: _encode_unsuback,  # type: ignore[dict-item]
    PingReq: _encode_empty,  # type: ignore[dict-item]
    PingResp: _encode_empty,  # type: ignore[dict-item]
    Disconnect: _encode_disconnect_or_auth,  # type: ignore[dict-item]
    Auth: _encode_disconnect_or_auth,  # type: ignore[dict-item]
}


def encode(packet: Packet, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> bytes:
    """The complete wire bytes of ``packet``.

    Raises :class:`~atbridge.errors.LocalProtocolError` (nothing is produced)
    when the packet breaks a rule of the spec for ``protocol``. A
    :class:`Connect` always uses its own ``protocol`` field.
    """
    if type(packet) is Publish:  # the hot path
        # Fast path: MQTT 3.1.1, no properties, a valid topic name, Remaining Length
        # under 16 KiB and every field valid. Anything else, including every error, is
        # left to _encode_publish, which checks it all in order. One join builds the
        # frame, so the payload is copied once; the payload is item 4 of the join as in
        # _encode_publish, so a payload of the wrong type raises the same TypeError.
        if packet.properties is NO_PROPERTIES and protocol != _V5:
            topic = packet.topic
            prefix = _encoded_topics.get(topic)  # length-prefixed UTF-8
            if prefix is None and topic and "+" not in topic and "#" not in topic:
                try:
                    raw = topic.encode()
                except UnicodeEncodeError:
                    raw = None
                if raw is not None and len(raw) <= 0xFFFF and "\x00" not in topic:
                    prefix = _pack_u16(len(raw)) + raw
                    if len(raw) <= _TOPIC_CACHE_MAX_BYTES and type(topic) is str:
                        if len(_encoded_topics) >= _TOPIC_CACHE_SIZE:
                            _encoded_topics.clear()
                        _encoded_topics[topic] = prefix
            if prefix is not None:
                qos = packet.qos
                payload = packet.payload
                if qos == 0:
                    if packet.packet_id is None and not packet.dup:
                        size = len(prefix) + len(payload)
                        first = 0x31 if packet.retain else 0x30
                        if size < 0x80:
                            head = _pack_b_b(first, size)
                            return b"".join((head, prefix, b"", b"", payload))
                        if size < 0x4000:
                            head = _pack_b_b_b(first, (size & 0x7F) | 0x80, size >> 7)
                            return b"".join((head, prefix, b"", b"", payload))
                elif qos == 1 or qos == 2:
                    packet_id = packet.packet_id
                    if packet_id is not None and 1 <= packet_id <= 0xFFFF:
                        size = len(prefix) + 2 + len(payload)
                        first = 0x30 | (qos << 1)
                        if packet.retain:
                            first |= 0x01
                        if packet.dup:
                            first |= 0x08
                        if size < 0x80:
                            head = _pack_b_b(first, size)
                            return b"".join((head, prefix, _pack_u16(packet_id), b"", payload))
                        if size < 0x4000:
                            head = _pack_b_b_b(first, (size & 0x7F) | 0x80, size >> 7)
                            return b"".join((head, prefix, _pack_u16(packet_id), b"", payload))
        return _encode_publish(packet, protocol)
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise LocalProtocolError(f"{type(packet).__name__} is not an MQTT packet")
    return encoder(packet, protocol)


# --- decoder ----------------------------------------------------------------------


def _expect_flags(first: int, expected: int, ptype: PacketType) -> None:
    if first & 0x0F != expected:
        statement = {
            PacketType.PUBREL: "MQTT-3.6.1-1",
            PacketType.SUBSCRIBE: "MQTT-3.8.1-1",
            PacketType.UNSUBSCRIBE: "MQTT-3.10.1-1",
        }.get(ptype, "MQTT-2.2.2-2")
        _malformed(
            f"[{statement}] {ptype.name} has reserved flag bits 0x{first & 0x0F:X}; "
            f"they must be 0x{expected:X}"
        )


def _read_pid(body: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    if pos + 2 > end:
        _malformed(f"{what} is too short for a packet identifier")
    pid = (body[pos] << 8) | body[pos + 1]
    if pid == 0:
        _malformed(f"[MQTT-2.3.1-1] {what} has packet identifier 0")
    return pid, pos + 2


def _remote_props(
    body: bytes, pos: int, end: int, context: PacketType | str, protocol: ProtocolVersion
) -> tuple[Properties, int]:
    if protocol != _V5:
        return NO_PROPERTIES, pos
    return decode_properties(body, pos, end, context, _malformed)


def _remote_reason(code: int, ptype: PacketType) -> None:
    if code not in REASON_CODES_BY_PACKET[ptype]:
        _malformed(f"(MQTT 5.0 §2.4) reason code 0x{code:02X} is not allowed in {ptype.name}")


def _decode_connect(first: int, body: bytes, _protocol: ProtocolVersion) -> Connect:
    _expect_flags(first, 0, PacketType.CONNECT)
    end = len(body)
    name, pos = decode_string(body, 0, end, "protocol name", _malformed)
    if name != "MQTT" or pos + 4 > end:
        _malformed(f"[MQTT-3.1.2-1] protocol name must be 'MQTT', got {name!r}")
    level, flags, keepalive = struct.unpack_from("!BBH", body, pos)
    pos += 4
    try:
        protocol = ProtocolVersion(level)
    except ValueError:
        _malformed(f"[MQTT-3.1.2-2] unsupported protocol level {level}")
    if flags & 0x01:
        _malformed("[MQTT-3.1.2-3] the reserved CONNECT flag (bit 0) must be 0")
    will_flag = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if not will_flag and (will_qos or will_retain):
        _malformed("[MQTT-3.1.2-11] Will QoS and Will Retain must be 0 without a Will")
    if will_qos == 3:
        _malformed("[MQTT-3.1.2-14] Will QoS must not be 3")
    if flags & 0x40 and not flags & 0x80 and protocol != _V5:
        _malformed("[MQTT-3.1.2-22] a password without a user name")
    props, pos = _remote_props(body, pos, end, PacketType.CONNECT, protocol)
    client_id, pos = decode_string(body, pos, end, "client id", _malformed)
    clean = bool(flags & 0x02)
    if not client_id and not clean and protocol != _V5:
        _malformed("[MQTT-3.1.3-7] an empty client id requires clean session")
    will = None
    if will_flag:
        will_props, pos = _remote_props(body, pos, end, WILL, protocol)
        topic, pos = decode_string(body, pos, end, "Will topic", _malformed)
        problem = _topic_name_problem(topic)
        if problem:
            _malformed(problem.replace("a PUBLISH topic", "the Will topic"))
        message, pos = decode_binary(body, pos, end, "Will message", _malformed)
        will = Will(topic, message, will_qos, will_retain, will_props)
    username = password = None
    if flags & 0x80:
        username, pos = decode_string(body, pos, end, "user name", _malformed)
    if flags & 0x40:
        password, pos = decode_binary(body, pos, end, "password", _malformed)
    if pos != end:
        _malformed(f"CONNECT has {end - pos} unexpected bytes after its payload")
    return Connect(client_id, clean, keepalive, username, password, will, protocol, props)


def _decode_connack(first: int, body: bytes, protocol: ProtocolVersion) -> ConnAck:
    _expect_flags(first, 0, PacketType.CONNACK)
    end = len(body)
    if end < 2 or (protocol != _V5 and end != 2):
        _malformed(f"CONNACK has {end} bytes after its fixed header; it needs 2 in MQTT 3.1.1")
    ack_flags, code = body[0], body[1]
    if ack_flags & 0xFE:
        _malformed("(MQTT 3.1.1 §3.2.2.1) CONNACK acknowledge flags bits 7-1 must be 0")
    if protocol == _V5:
        _remote_reason(code, PacketType.CONNACK)
        props, pos = decode_properties(body, 2, end, PacketType.CONNACK, _malformed)
        if pos != end:
            _malformed("CONNACK has unexpected bytes after its properties")
    else:
        if code not in CONNACK_RETURN_CODES_311:
            _malformed(f"(MQTT 3.1.1 §3.2.2.3) CONNACK return code {code} is reserved")
        props = NO_PROPERTIES
    if ack_flags and code:
        _malformed("[MQTT-3.2.2-4] a refusing CONNACK must have Session Present = 0")
    return ConnAck(bool(ack_flags), code, props)


def _decode_publish(first: int, body: bytes, protocol: ProtocolVersion, start: int = 0) -> Publish:
    """Decode the PUBLISH whose body is ``body[start:]`` (decode() passes the whole frame)."""
    qos = (first >> 1) & 0x03
    dup = first & 0x08 != 0
    if qos == 3:
        _malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3")
    if dup and not qos:
        _malformed("[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH")
    end = len(body)
    pos = start + 2
    if pos <= end:
        pos += (body[start] << 8) | body[start + 1]
    try:
        topic = body[start + 2 : pos].decode() if pos <= end else None
    except UnicodeDecodeError:
        topic = None
    if topic is None or "\x00" in topic:
        # The quick read found a problem: decode_string raises the exact error.
        topic, pos = decode_string(body, start, end, "PUBLISH topic", _malformed)
    pid = None
    if qos:
        if pos + 2 <= end and (body[pos] or body[pos + 1]):
            pid = (body[pos] << 8) | body[pos + 1]
            pos += 2
        else:
            pid, pos = _read_pid(body, pos, end, "PUBLISH")
    if protocol == _V5:
        props, pos = decode_properties(body, pos, end, PacketType.PUBLISH, _malformed)
    else:
        props = NO_PROPERTIES
    if not topic or "+" in topic or "#" in topic:
        problem = _topic_name_problem(topic)
        if problem and (topic or props.get(PropertyId.TOPIC_ALIAS) is None):
            _malformed(problem)
    message = _PublishShell()
    message.topic = topic
    message.payload = body[pos:]
    message.qos = qos
    message.retain = first & 0x01 != 0
    message.dup = dup
    message.packet_id = pid
    message.properties = props
    message.__class__ = Publish  # type: ignore[assignment]
    return message  # type: ignore[return-value]


def _decode_ack(first: int, body: bytes, protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0x02 if ptype == PacketType.PUBREL else 0, ptype)
    end = len(body)
    if protocol != _V5 and end != 2:
        _malformed(f"{ptype.name} must have Remaining Length 2 in MQTT 3.1.1, got {end}")
    pid, pos = _read_pid(body, 0, end, ptype.name)
    code = 0
    props = NO_PROPERTIES
    if pos < end:
        code = body[pos]
        _remote_reason(code, ptype)
        pos += 1
        if pos < end:
            props, pos = decode_properties(body, pos, end, ptype, _malformed)
            if pos != end:
                _malformed(f"{ptype.name} has unexpected bytes after its properties")
    cls = _ACK_CLASSES[ptype]
    return cls(pid, code, props)


_ACK_CLASSES: dict[PacketType, type[PubAck | PubRec | PubRel | PubComp]] = {
    PacketType.PUBACK: PubAck,
    PacketType.PUBREC: PubRec,
    PacketType.PUBREL: PubRel,
    PacketType.PUBCOMP: PubComp,
}


def _decode_subscribe(first: int, body: bytes, protocol: ProtocolVersion) -> Subscribe:
    _expect_flags(first, 0x02, PacketType.SUBSCRIBE)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "SUBSCRIBE")
    props, pos = _remote_props(body, pos, end, PacketType.SUBSCRIBE, protocol)
    subs: list[Subscription] = []
    while pos < end:
        topic_filter, pos = decode_string(body, pos, end, "topic filter", _malformed)
        problem = _topic_filter_problem(topic_filter)
        if problem:
            _malformed(problem)
        if pos >= end:
            _malformed("SUBSCRIBE: a topic filter is missing its options byte")
        options = body[pos]
        pos += 1
        qos = options & 0x03
        if qos == 3:
            _malformed("[MQTT-3-8.3-4] SUBSCRIBE requests QoS 3")
        if protocol == _V5:
            retain_handling = (options >> 4) & 0x03
            if options & 0xC0 or retain_handling == 3:
                _malformed("(MQTT 5.0 §3.8.3.1) reserved subscription option bits are set")
            no_local = bool(options & 0x04)
            if no_local and topic_filter.startswith("$share/"):
                _malformed("[MQTT-3.8.3-4] No Local set on a shared subscription")
            subs.append(
                Subscription(topic_filter, qos, no_local, bool(options & 0x08), retain_handling)
            )
        else:
            if options & 0xFC:
                _malformed("[MQTT-3-8.3-4] reserved bits of the requested QoS byte are set")
            subs.append(Subscription(topic_filter, qos))
    if not subs:
        _malformed("[MQTT-3.8.3-3] SUBSCRIBE with no topic filter")
    return Subscribe(pid, tuple(subs), props)


def _decode_suback(first: int, body: bytes, protocol: ProtocolVersion) -> SubAck:
    _expect_flags(first, 0, PacketType.SUBACK)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "SUBACK")
    props, pos = _remote_props(body, pos, end, PacketType.SUBACK, protocol)
    codes = tuple(body[pos:])
    if not codes:
        _malformed("[MQTT-3.8.4-5] SUBACK without any return code")
    for code in codes:
        if protocol == _V5:
            _remote_reason(code, PacketType.SUBACK)
        elif code not in _SUBACK_CODES_311:
            _malformed(f"[MQTT-3.9.3-2] SUBACK return code 0x{code:02X} is reserved")
    return SubAck(pid, codes, props)


def _decode_unsubscribe(first: int, body: bytes, protocol: ProtocolVersion) -> Unsubscribe:
    _expect_flags(first, 0x02, PacketType.UNSUBSCRIBE)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "UNSUBSCRIBE")
    props, pos = _remote_props(body, pos, end, PacketType.UNSUBSCRIBE, protocol)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = decode_string(body, pos, end, "topic filter", _malformed)
        problem = _topic_filter_problem(topic_filter)
        if problem:
            _malformed(problem)
        filters.append(topic_filter)
    if not filters:
        _malformed("[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter")
    return Unsubscribe(pid, tuple(filters), props)


def _decode_unsuback(first: int, body: bytes, protocol: ProtocolVersion) -> UnsubAck:
    _expect_flags(first, 0, PacketType.UNSUBACK)
    end = len(body)
    if protocol != _V5:
        if end != 2:
            _malformed(f"UNSUBACK must have Remaining Length 2 in MQTT 3.1.1, got {end}")
        pid, _ = _read_pid(body, 0, end, "UNSUBACK")
        return UnsubAck(pid)
    pid, pos = _read_pid(body, 0, end, "UNSUBACK")
    props, pos = decode_properties(body, pos, end, PacketType.UNSUBACK, _malformed)
    codes = tuple(body[pos:])
    if not codes:
        _malformed("(MQTT 5.0 §3.11.3) UNSUBACK without any reason code")
    for code in codes:
        _remote_reason(code, PacketType.UNSUBACK)
    return UnsubAck(pid, codes, props)


def _decode_empty(first: int, body: bytes, _protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0, ptype)
    if body:
        _malformed(f"{ptype.name} must have Remaining Length 0, got {len(body)}")
    return PingReq() if ptype == PacketType.PINGREQ else PingResp()


def _decode_disconnect_or_auth(first: int, body: bytes, protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0, ptype)
    if protocol != _V5:
        if ptype == PacketType.AUTH:
            _malformed("(MQTT 3.1.1 §2.2.1) packet type 15 is reserved in MQTT 3.1.1")
        if body:
            _malformed(f"DISCONNECT must have Remaining Length 0 in MQTT 3.1.1, got {len(body)}")
        return Disconnect()
    end = len(body)
    code = 0
    props = NO_PROPERTIES
    if end:
        code = body[0]
        _remote_reason(code, ptype)
        if end > 1:
            props, pos = decode_properties(body, 1, end, ptype, _malformed)
            if pos != end:
                _malformed(f"{ptype.name} has unexpected bytes after its properties")
    if ptype == PacketType.AUTH:
        return Auth(code, props)
    return Disconnect(code, props)


def _decode_publish_fast(
    first: int, data: bytes, protocol: ProtocolVersion, index: int = 0
) -> Publish:
    """:func:`_decode_publish` of ``data[index:]`` with a fast path for an MQTT 3.1.1
    PUBLISH whose flags, topic name and packet identifier are valid (the topic read
    through the cache of names already checked). Anything else, including every error,
    is left to :func:`_decode_publish`, which checks it all in order. Used by
    :func:`decode` and by :class:`PacketDecoder` alike."""
    size = len(data)
    qos = first & 0x06
    pos = index + 2
    if protocol != _V5 and pos <= size and qos != 0x06:
        pos += (data[index] << 8) | data[index + 1]
        if pos <= size:
            raw = data[index + 2 : pos]
            topic = _decoded_topics.get(raw)
            if topic is None:
                try:
                    topic = raw.decode()
                except UnicodeDecodeError:
                    topic = None
                if topic is not None and (
                    not topic or "+" in topic or "#" in topic or "\x00" in topic
                ):
                    topic = None
                if topic is not None and len(raw) <= _TOPIC_CACHE_MAX_BYTES:
                    if len(_decoded_topics) >= _TOPIC_CACHE_SIZE:
                        _decoded_topics.clear()
                    _decoded_topics[raw] = topic
            if topic is not None and (qos or not first & 0x08):
                packet_id = None
                if qos:
                    if pos + 2 > size or not (data[pos] or data[pos + 1]):
                        return _decode_publish(first, data, protocol, index)
                    packet_id = (data[pos] << 8) | data[pos + 1]
                    pos += 2
                message = _PublishShell()
                message.topic = topic
                message.payload = data[pos:]
                message.qos = qos >> 1
                message.retain = first & 0x01 != 0
                message.dup = first & 0x08 != 0
                message.packet_id = packet_id
                message.properties = NO_PROPERTIES
                message.__class__ = Publish  # type: ignore[assignment]
                return message  # type: ignore[return-value]
    return _decode_publish(first, data, protocol, index)


_DecodeFn = Callable[[int, bytes, ProtocolVersion], Packet]
_DECODERS: dict[int, _DecodeFn] = {
    1: _decode_connect,
    2: _decode_connack,
    3: _decode_publish_fast,
    4: _decode_ack,
    5: _decode_ack,
    6: _decode_ack,
    7: _decode_ack,
    8: _decode_subscribe,
    9: _decode_suback,
    10: _decode_unsubscribe,
    11: _decode_unsuback,
    12: _decode_empty,
    13: _decode_empty,
    14: _decode_disconnect_or_auth,
    15: _decode_disconnect_or_auth,
}


class PacketDecoder:
    """Bytes in, whole packets out (see the module comment).

    ``protocol`` selects 3.1.1 or 5.0 bodies; ``max_packet_size`` bounds a
    whole packet, fixed header included (MQTT 5.0 §3.1.2.11.4 counts it that
    way), and is checked before the body is buffered.
    """

    def __init__(
        self,
        protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        if max_packet_size < 2:
            raise LocalProtocolError("max_packet_size must be at least 2 bytes")
        self.protocol = protocol
        self.max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._pos = 0
        self._error: MalformedPacket | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a packet."""
        return len(self._buffer) - self._pos

    def receive_data(self, data: bytes) -> None:
        """Append a chunk of received bytes (any size, including empty)."""
        if self._pos and self._pos * 2 >= len(self._buffer):
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    def next_packet(self) -> Packet | None:
        """The next whole packet, or ``None`` when more bytes are needed.

        Raises :class:`MalformedPacket` (or :class:`PacketTooLarge`) when the
        stream breaks the protocol; the decoder then refuses all further use.
        """
        if self._error is not None:
            raise self._error
        buf = self._buffer
        pos = self._pos
        available = len(buf) - pos
        if available < 2:
            if available == 1:
                self._check_type(buf[pos])
            return None
        first = buf[pos]
        self._check_type(first)
        length = 0
        shift = 0
        index = pos + 1
        while True:
            if index >= len(buf):
                return None
            byte = buf[index]
            length |= (byte & 0x7F) << shift
            index += 1
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 28:
                self._fail(
                    MalformedPacket(
                        "(MQTT 3.1.1 §2.2.3) the Remaining Length is longer than 4 bytes"
                    )
                )
        total = index - pos + length
        if total > self.max_packet_size:
            self._fail(
                PacketTooLarge(
                    f"an incoming packet of {total:,} bytes exceeds the limit of "
                    f"{self.max_packet_size:,} bytes"
                )
            )
        if len(buf) < index + length:
            return None
        body = bytes(buf[index : index + length])
        self._pos = index + length
        try:
            return _DECODERS[first >> 4](first, body, self.protocol)
        except MalformedPacket as exc:
            self._fail(exc)

    def _check_type(self, first: int) -> None:
        ptype = first >> 4
        if ptype == 0 or (ptype == 15 and self.protocol != _V5):
            self._fail(
                MalformedPacket(
                    f"(MQTT §2.2.1) packet type {ptype} is reserved (first byte 0x{first:02X})"
                )
            )

    def _fail(self, error: MalformedPacket) -> NoReturn:
        self._error = error
        raise error


def decode(data: bytes, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> Packet:
    """Decode exactly one whole packet (no more, no fewer bytes).

    Raises :class:`MalformedPacket` for a truncated frame, trailing bytes, or
    any protocol violation.
    """
    # Fast path: a bytes frame under 16 KiB whose Remaining Length matches its size
    # exactly (a PUBLISH is read in place, without copying its body first). Anything
    # else goes through the stream decoder, which raises the exact error.
    size = len(data)
    if size >= 2 and type(data) is bytes:
        first = data[0]
        length = data[1]
        index = 2
        if length & 0x80:
            if size < 3 or data[2] & 0x80:
                return _decode_via_stream(data, protocol)
            length = (length & 0x7F) | (data[2] << 7)
            index = 3
        ptype = first >> 4
        if size == index + length:
            if ptype == 3:
                return _decode_publish_fast(first, data, protocol, index)
            if ptype and (ptype != 15 or protocol == _V5):
                return _DECODERS[ptype](first, data[index:], protocol)
    return _decode_via_stream(data, protocol)


def _decode_via_stream(data: bytes, protocol: ProtocolVersion) -> Packet:
    decoder = PacketDecoder(protocol, max_packet_size=MAX_REMAINING_LENGTH + 5)
    decoder.receive_data(data)
    packet = decoder.next_packet()
    if packet is None:
        raise MalformedPacket(f"the frame is truncated ({len(data)} bytes is not a whole packet)")
    if decoder.buffered:
        raise MalformedPacket(f"{decoder.buffered} bytes follow the packet")
    return packet


# --- the client session ------------------------------------------------------------


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


Event = (
    Connected
    | MessageReceived
    | PublishAcknowledged
    | Subscribed
    | Unsubscribed
    | PongReceived
    | BrokerDisconnected
)


@dataclass(slots=True)
class _Outgoing:
    publish: Publish
    awaiting: PacketType  # PUBACK, PUBREC or PUBCOMP


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
    """

    def __init__(
        self,
        connect: Connect,
        *,
        max_inflight: int = 10,
        ping_grace: float | None = None,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        if max_inflight < 1:
            raise LocalProtocolError("max_inflight must be at least 1")
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
        self._next_id = 1
        self._busy_ids: set[int] = set()
        self._keepalive = connect.keepalive
        self._receive_maximum = 0xFFFF
        self._broker_max_packet: int | None = None
        self._last_sent: float | None = None
        self._ping_queued = False
        self._ping_sent_at: float | None = None

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
        self._topic_aliases.clear()
        self._ping_queued = False
        self._ping_sent_at = None
        self._out.append(encode(self._connect))
        self._state = SessionState.CONNECTING

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
        Raises LocalProtocolError before queueing anything invalid.
        """
        probe = Publish(topic, payload, qos, retain, False, 1 if qos else None, properties)
        size = len(encode(probe, self.protocol))
        if self._broker_max_packet is not None and size > self._broker_max_packet:
            raise LocalProtocolError(
                f"[MQTT-3.2.2-15] this PUBLISH is {size} bytes; the broker accepts at most "
                f"{self._broker_max_packet} (its Maximum Packet Size)"
            )
        if qos == 0:
            self._require_connected("publish at QoS 0")
            self._out.append(encode(probe, self.protocol))
            return None
        packet_id = self._allocate_id()
        item = _Outgoing(
            replace(probe, packet_id=packet_id),
            PacketType.PUBACK if qos == 1 else PacketType.PUBREC,
        )
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
        self._ping_queued = False
        self._ping_sent_at = None

    def connection_lost(self) -> None:
        """The network connection is gone (or was closed after an error).

        Unsent bytes are dropped; unacknowledged publishes stay and are re-sent
        with DUP after the next CONNACK. Pending SUBSCRIBE / UNSUBSCRIBE calls
        are forgotten: subscribe again after reconnecting.
        """
        self._state = SessionState.DISCONNECTED
        self._out.clear()
        for packet_id in (*self._subscribing, *self._unsubscribing):
            self._release_id(packet_id)
        self._subscribing.clear()
        self._unsubscribing.clear()
        self._ping_queued = False
        self._ping_sent_at = None

    def data_to_send(self, now: float) -> bytes:
        """Everything queued for the broker; ``now`` is when the caller sends it."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
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
        while self._state in (SessionState.CONNECTING, SessionState.CONNECTED):
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
        if self._state != SessionState.CONNECTED:
            return False
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

    def _allocate_id(self) -> int:
        packet_id = self._peek_id()
        self._claim_id(packet_id)
        return packet_id

    def _pump(self) -> None:
        if self._state != SessionState.CONNECTED:
            return
        while self._pending and len(self._inflight) < self.window:
            item = self._pending.popleft()
            pid = item.publish.packet_id
            assert pid is not None
            self._inflight[pid] = item
            self._out.append(encode(item.publish, self.protocol))

    def _send(self, packet: Packet) -> None:
        self._out.append(encode(packet, self.protocol))

    def _handle(self, packet: Packet, now: float) -> None:
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
            raise _refusal(packet.reason_code, self.protocol, packet.properties)
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
        assigned = props.get(PropertyId.ASSIGNED_CLIENT_IDENTIFIER)
        if isinstance(assigned, str) and not self._connect.client_id:
            self._connect = replace(self._connect, client_id=assigned)
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
                item.publish = replace(item.publish, dup=True)
                self._send(item.publish)
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
            self._events.append(event)
            self._send(PubAck(pid))
        else:
            if pid not in self._incoming_qos2:
                self._incoming_qos2.add(pid)
                self._events.append(event)
            self._send(PubRec(pid))

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
