"""MQTT 5.0 properties and reason codes, as tables, and the property block on the wire.

Theory of operation
-------------------
An MQTT 5.0 packet carries a *property block*: a Variable Byte Integer length
followed by ``identifier, value`` pairs (MQTT 5.0 §2.2.2). Each identifier has
one wire type (byte, two-byte integer, four-byte integer, Variable Byte
Integer, UTF-8 string, binary data, or a UTF-8 string pair) and is allowed only
in some packets. This module holds those facts as data (:data:`PROPERTY_SPECS`)
plus the reason-code names of §2.4, and the two functions that turn a
:class:`Properties` value into bytes and back
(:func:`encode_properties`, :func:`decode_properties`), which the codec in
:mod:`atbridge.mqtt.codec` calls.

Errors follow the project rule: a bad property the *user* asked to send raises
:class:`~atbridge.errors.LocalProtocolError`; a bad property *received* raises
:class:`~atbridge.errors.MalformedPacket`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from atbridge.errors import LocalProtocolError
from atbridge.mqtt.wire import (
    PacketType,
    decode_binary,
    decode_string,
    decode_varint,
    encode_binary,
    encode_string,
    encode_varint,
    malformed,
)

#: Property context for the Will Properties inside CONNECT (MQTT 5.0 §3.1.3.2).
WILL = "WILL"

PropertyValue = int | str | bytes | tuple[str, str]
PropertyContext = PacketType | str


class PropertyId(IntEnum):
    """MQTT 5.0 property identifiers (§2.2.2.2)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class WireType(IntEnum):
    """How a property value is laid out on the wire (MQTT 5.0 §1.5)."""

    BYTE = 1
    TWO_BYTE = 2
    FOUR_BYTE = 3
    VARINT = 4
    STRING = 5
    BINARY = 6
    STRING_PAIR = 7


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """The wire type of one property, where it may appear, and its value range."""

    wire: WireType
    contexts: frozenset[PropertyContext]
    minimum: int = 0
    maximum: int | None = None


_P = PacketType
_ACKS = (_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP)
_ALL: frozenset[PropertyContext] = frozenset([*PacketType, WILL])


def _ctx(*items: PropertyContext) -> frozenset[PropertyContext]:
    return frozenset(items)


#: Every property: wire type, allowed packets, value range (MQTT 5.0 §2.2.2.2, §3.x.2.2).
PROPERTY_SPECS: Mapping[PropertyId, PropertySpec] = {
    PropertyId.PAYLOAD_FORMAT_INDICATOR: PropertySpec(WireType.BYTE, _ctx(_P.PUBLISH, WILL), 0, 1),
    PropertyId.MESSAGE_EXPIRY_INTERVAL: PropertySpec(WireType.FOUR_BYTE, _ctx(_P.PUBLISH, WILL)),
    PropertyId.CONTENT_TYPE: PropertySpec(WireType.STRING, _ctx(_P.PUBLISH, WILL)),
    PropertyId.RESPONSE_TOPIC: PropertySpec(WireType.STRING, _ctx(_P.PUBLISH, WILL)),
    PropertyId.CORRELATION_DATA: PropertySpec(WireType.BINARY, _ctx(_P.PUBLISH, WILL)),
    PropertyId.SUBSCRIPTION_IDENTIFIER: PropertySpec(
        WireType.VARINT, _ctx(_P.PUBLISH, _P.SUBSCRIBE), 1, 268_435_455
    ),
    PropertyId.SESSION_EXPIRY_INTERVAL: PropertySpec(
        WireType.FOUR_BYTE, _ctx(_P.CONNECT, _P.CONNACK, _P.DISCONNECT)
    ),
    PropertyId.ASSIGNED_CLIENT_IDENTIFIER: PropertySpec(WireType.STRING, _ctx(_P.CONNACK)),
    PropertyId.SERVER_KEEP_ALIVE: PropertySpec(WireType.TWO_BYTE, _ctx(_P.CONNACK)),
    PropertyId.AUTHENTICATION_METHOD: PropertySpec(
        WireType.STRING, _ctx(_P.CONNECT, _P.CONNACK, _P.AUTH)
    ),
    PropertyId.AUTHENTICATION_DATA: PropertySpec(
        WireType.BINARY, _ctx(_P.CONNECT, _P.CONNACK, _P.AUTH)
    ),
    PropertyId.REQUEST_PROBLEM_INFORMATION: PropertySpec(WireType.BYTE, _ctx(_P.CONNECT), 0, 1),
    PropertyId.WILL_DELAY_INTERVAL: PropertySpec(WireType.FOUR_BYTE, _ctx(WILL)),
    PropertyId.REQUEST_RESPONSE_INFORMATION: PropertySpec(WireType.BYTE, _ctx(_P.CONNECT), 0, 1),
    PropertyId.RESPONSE_INFORMATION: PropertySpec(WireType.STRING, _ctx(_P.CONNACK)),
    PropertyId.SERVER_REFERENCE: PropertySpec(WireType.STRING, _ctx(_P.CONNACK, _P.DISCONNECT)),
    PropertyId.REASON_STRING: PropertySpec(
        WireType.STRING,
        _ctx(_P.CONNACK, *_ACKS, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH),
    ),
    PropertyId.RECEIVE_MAXIMUM: PropertySpec(WireType.TWO_BYTE, _ctx(_P.CONNECT, _P.CONNACK), 1),
    PropertyId.TOPIC_ALIAS_MAXIMUM: PropertySpec(WireType.TWO_BYTE, _ctx(_P.CONNECT, _P.CONNACK)),
    PropertyId.TOPIC_ALIAS: PropertySpec(WireType.TWO_BYTE, _ctx(_P.PUBLISH), 1),
    PropertyId.MAXIMUM_QOS: PropertySpec(WireType.BYTE, _ctx(_P.CONNACK), 0, 1),
    PropertyId.RETAIN_AVAILABLE: PropertySpec(WireType.BYTE, _ctx(_P.CONNACK), 0, 1),
    PropertyId.USER_PROPERTY: PropertySpec(WireType.STRING_PAIR, _ALL),
    PropertyId.MAXIMUM_PACKET_SIZE: PropertySpec(
        WireType.FOUR_BYTE, _ctx(_P.CONNECT, _P.CONNACK), 1
    ),
    PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE: PropertySpec(WireType.BYTE, _ctx(_P.CONNACK), 0, 1),
    PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE: PropertySpec(
        WireType.BYTE, _ctx(_P.CONNACK), 0, 1
    ),
    PropertyId.SHARED_SUBSCRIPTION_AVAILABLE: PropertySpec(WireType.BYTE, _ctx(_P.CONNACK), 0, 1),
}

_WIRE_MAX = {
    WireType.BYTE: 0xFF,
    WireType.TWO_BYTE: 0xFFFF,
    WireType.FOUR_BYTE: 0xFFFF_FFFF,
    WireType.VARINT: 268_435_455,
}
_INT_WIRES = frozenset(_WIRE_MAX)


class Properties:
    """An ordered, immutable list of MQTT 5.0 properties.

    Build it from a mapping or from ``(PropertyId, value)`` pairs; repeatable
    properties (User Property, and Subscription Identifier in a received
    PUBLISH) are given as repeated pairs. Values are ``int`` for the integer
    types, ``str`` for UTF-8 strings, ``bytes`` for binary data and
    ``(name, value)`` for a User Property. Order is kept because MQTT keeps the
    order of User Properties.
    """

    __slots__ = ("_items",)

    def __init__(
        self,
        items: Iterable[tuple[PropertyId, PropertyValue]] | Mapping[PropertyId, PropertyValue] = (),
    ) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: tuple[tuple[PropertyId, PropertyValue], ...] = tuple(
            (PropertyId(pid), value) for pid, value in pairs
        )

    @property
    def items(self) -> tuple[tuple[PropertyId, PropertyValue], ...]:
        """All ``(identifier, value)`` pairs in wire order."""
        return self._items

    def get(self, pid: PropertyId, default: PropertyValue | None = None) -> PropertyValue | None:
        """The first value of ``pid``, or ``default`` when absent."""
        for key, value in self._items:
            if key == pid:
                return value
        return default

    def get_all(self, pid: PropertyId) -> tuple[PropertyValue, ...]:
        """Every value of ``pid`` in order (for repeatable properties)."""
        return tuple(value for key, value in self._items if key == pid)

    @property
    def user_properties(self) -> tuple[tuple[str, str], ...]:
        """The User Property pairs, in order."""
        return tuple(v for k, v in self._items if k == PropertyId.USER_PROPERTY)  # type: ignore[misc]

    def __iter__(self) -> Iterator[tuple[PropertyId, PropertyValue]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Properties) and other._items == self._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        inner = ", ".join(f"{pid.name}={value!r}" for pid, value in self._items)
        return f"Properties({inner})"


NO_PROPERTIES = Properties()


# --- reason codes (MQTT 5.0 §2.4) and 3.1.1 CONNACK return codes (§3.2.2.3) ---

REASON_NAMES: Mapping[int, str] = {
    0x00: "Success",
    0x01: "Granted QoS 1",
    0x02: "Granted QoS 2",
    0x04: "Disconnect with Will Message",
    0x10: "No matching subscribers",
    0x11: "No subscription existed",
    0x18: "Continue authentication",
    0x19: "Re-authenticate",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x92: "Packet Identifier not found",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}

CONNACK_RETURN_CODES_311: Mapping[int, str] = {
    0: "Connection Accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

#: Reason codes each MQTT 5.0 packet may carry (§2.4 table 2-6).
REASON_CODES_BY_PACKET: Mapping[PacketType, frozenset[int]] = {
    _P.CONNACK: frozenset(
        {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90}
        | {0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
    ),
    _P.PUBACK: frozenset([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
    _P.PUBREC: frozenset([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
    _P.PUBREL: frozenset([0x00, 0x92]),
    _P.PUBCOMP: frozenset([0x00, 0x92]),
    _P.SUBACK: frozenset([0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]),
    _P.UNSUBACK: frozenset([0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]),
    _P.DISCONNECT: frozenset(
        {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93}
        | {0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0}
        | {0xA1, 0xA2}
    ),
    _P.AUTH: frozenset([0x00, 0x18, 0x19]),
}


def reason_name(code: int, packet_type: PacketType | None = None) -> str:
    """The MQTT 5.0 name of a reason code, e.g. ``0x86`` -> ``"Bad User Name or Password"``.

    ``0x00`` reads differently by packet: "Normal disconnection" in DISCONNECT,
    "Granted QoS 0" in SUBACK, "Success" elsewhere.
    """
    if code == 0x00 and packet_type == PacketType.DISCONNECT:
        return "Normal disconnection"
    if code == 0x00 and packet_type == PacketType.SUBACK:
        return "Granted QoS 0"
    return REASON_NAMES.get(code, f"unknown reason code 0x{code:02X}")


# --- wire encoding -------------------------------------------------------------


def _context_name(context: PropertyContext) -> str:
    return context.name if isinstance(context, PacketType) else "Will Properties"


def encode_properties(props: Properties, context: PropertyContext) -> bytes:
    """The property block (length + pairs) for one packet; validates every property."""
    if not props:
        return b"\x00"
    out = bytearray()
    seen: set[PropertyId] = set()
    for pid, value in props:
        spec = PROPERTY_SPECS[pid]
        if context not in spec.contexts:
            raise LocalProtocolError(
                f"[MQTT-5.0 §2.2.2.2] property {pid.name} is not allowed in "
                f"{_context_name(context)}"
            )
        repeatable = pid == PropertyId.USER_PROPERTY or (
            pid == PropertyId.SUBSCRIPTION_IDENTIFIER and context == PacketType.PUBLISH
        )
        if pid in seen and not repeatable:
            raise LocalProtocolError(
                f"[MQTT-5.0 §2.2.2.2] property {pid.name} may appear only once in "
                f"{_context_name(context)}"
            )
        seen.add(pid)
        out.append(pid)
        out += _encode_property_value(pid, spec, value)
    return encode_varint(len(out)) + bytes(out)


def _encode_property_value(pid: PropertyId, spec: PropertySpec, value: PropertyValue) -> bytes:
    wire = spec.wire
    what = f"property {pid.name}"
    if wire in _INT_WIRES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise LocalProtocolError(f"[MQTT-5.0 §2.2.2.2] {what} takes an integer")
        high = spec.maximum if spec.maximum is not None else _WIRE_MAX[wire]
        if not spec.minimum <= value <= high:
            raise LocalProtocolError(
                f"[MQTT-5.0 §3] {what} must be in {spec.minimum}..{high}, got {value}"
            )
        if wire == WireType.BYTE:
            return bytes((value,))
        if wire == WireType.TWO_BYTE:
            return struct.pack("!H", value)
        if wire == WireType.FOUR_BYTE:
            return struct.pack("!I", value)
        return encode_varint(value)
    if wire == WireType.STRING:
        if not isinstance(value, str):
            raise LocalProtocolError(f"[MQTT-5.0 §2.2.2.2] {what} takes a string")
        return encode_string(value, what)
    if wire == WireType.BINARY:
        if not isinstance(value, bytes | bytearray):
            raise LocalProtocolError(f"[MQTT-5.0 §2.2.2.2] {what} takes bytes")
        return encode_binary(bytes(value), what)
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    ):
        raise LocalProtocolError(f"[MQTT-5.0 §3.1.2.11.8] {what} takes a (name, value) pair")
    return encode_string(value[0], f"{what} name") + encode_string(value[1], f"{what} value")


# --- wire decoding ---------------------------------------------------------------


def decode_properties(
    buf: bytes, pos: int, end: int, context: PropertyContext
) -> tuple[Properties, int]:
    """Read a property block at ``pos``; returns ``(properties, new_pos)``."""
    length, pos = decode_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        malformed("the property block runs past the end of the packet")
    items: list[tuple[PropertyId, PropertyValue]] = []
    seen: set[PropertyId] = set()
    while pos < stop:
        ident, pos = decode_varint(buf, pos, stop)
        try:
            pid = PropertyId(ident)
        except ValueError:
            malformed(f"[MQTT-5.0 §2.2.2.2] unknown property identifier 0x{ident:02X}")
        spec = PROPERTY_SPECS[pid]
        if context not in spec.contexts:
            malformed(
                f"[MQTT-5.0 §2.2.2.2] property {pid.name} is not allowed in "
                f"{_context_name(context)}"
            )
        repeatable = pid == PropertyId.USER_PROPERTY or (
            pid == PropertyId.SUBSCRIPTION_IDENTIFIER and context == PacketType.PUBLISH
        )
        if pid in seen and not repeatable:
            malformed(f"[MQTT-5.0 §2.2.2.2] property {pid.name} appears more than once")
        seen.add(pid)
        value, pos = _decode_property_value(buf, pos, stop, pid, spec)
        items.append((pid, value))
    return Properties(items), stop


def _decode_property_value(
    buf: bytes, pos: int, end: int, pid: PropertyId, spec: PropertySpec
) -> tuple[PropertyValue, int]:
    wire = spec.wire
    what = f"property {pid.name}"
    if wire in _INT_WIRES:
        if wire == WireType.VARINT:
            value, pos = decode_varint(buf, pos, end)
        else:
            size = {WireType.BYTE: 1, WireType.TWO_BYTE: 2, WireType.FOUR_BYTE: 4}[wire]
            if pos + size > end:
                malformed(f"{what} runs past the end of the property block")
            value = int.from_bytes(buf[pos : pos + size], "big")
            pos += size
        high = spec.maximum if spec.maximum is not None else _WIRE_MAX[wire]
        if not spec.minimum <= value <= high:
            malformed(f"[MQTT-5.0 §3] {what} must be in {spec.minimum}..{high}, got {value}")
        return value, pos
    if wire == WireType.STRING:
        return decode_string(buf, pos, end, what)
    if wire == WireType.BINARY:
        return decode_binary(buf, pos, end, what)
    name, pos = decode_string(buf, pos, end, f"{what} name")
    text, pos = decode_string(buf, pos, end, f"{what} value")
    return (name, text), pos
