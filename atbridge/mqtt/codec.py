"""The MQTT codec: ``encode`` a packet into its frame, ``decode`` a frame into its packet.

Theory of operation
-------------------
:func:`encode` turns a packet (:mod:`atbridge.mqtt.packets`) into its wire bytes and
raises :class:`~atbridge.errors.LocalProtocolError` for anything the spec forbids;
the message starts with the statement broken, e.g. ``[MQTT-3.3.2-2]``.
:func:`decode` turns one whole frame back into a packet and raises
:class:`~atbridge.errors.MalformedPacket` (a
:class:`~atbridge.errors.RemoteProtocolError`) for bytes that break the protocol.
Validation is symmetric: whatever :func:`decode` accepts, :func:`encode` can write
again, and the other way round. MQTT 3.1.1 is the default; pass
``ProtocolVersion.MQTT_5_0`` for 5.0 (CONNECT carries its own level).

This module is the plain reference codec: one encoder and one decoder per packet type,
written to be read against the spec, checking every rule in a fixed order.
:func:`encode_general` and :func:`decode_general` are that codec alone. :func:`encode` and
:func:`decode` are the functions of :mod:`atbridge.mqtt.fast`, which frame the PUBLISH,
CONNECT and PUBACK of every message and connection themselves, returning exactly the
bytes or packet the reference would, and hand everything else to
:func:`encode_general` / :func:`decode_general`, so every error comes from here.
``tests/test_mqtt_codec_fast_paths.py`` holds the two to each other.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from atbridge.errors import LocalProtocolError, MalformedPacket
from atbridge.mqtt import fast as _fast
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
    topic_filter_problem,
    topic_name_problem,
    validate_topic_filter,
)
from atbridge.mqtt.properties import (
    CONNACK_RETURN_CODES_311,
    NO_PROPERTIES,
    REASON_CODES_BY_PACKET,
    WILL,
    Properties,
    PropertyId,
    decode_properties,
    encode_properties,
)
from atbridge.mqtt.wire import (
    PacketType,
    ProtocolVersion,
    check_bytes,
    decode_binary,
    decode_string,
    encode_binary,
    encode_string,
    frame,
    malformed,
    read_fixed_header,
)

_V5 = ProtocolVersion.MQTT_5_0
_SUBACK_CODES_311 = frozenset((0x00, 0x01, 0x02, 0x80))


# --- checks shared by the encoders ---------------------------------------------------


def _check_packet_id(packet_id: int | None, what: str) -> int:
    if type(packet_id) is not int or not 1 <= packet_id <= 0xFFFF:  # not a bool, float, str
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


# --- encoders ------------------------------------------------------------------------


def _encode_connect(packet: Connect, _protocol: ProtocolVersion) -> bytes:
    protocol = ProtocolVersion(packet.protocol)
    v5 = protocol == _V5
    keepalive = packet.keepalive
    if not 0 <= keepalive <= 0xFFFF:
        raise LocalProtocolError(
            f"(MQTT 3.1.1 §3.1.2.10) Keep Alive must be 0..65535 seconds, got {keepalive}"
        )
    flags = 0x02 if packet.clean_session else 0
    will = packet.will
    if will is not None:
        _check_qos(will.qos, "Will", "MQTT-3.1.2-14")
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if packet.username is None and not v5:
            raise LocalProtocolError(
                "[MQTT-3.1.2-22] MQTT 3.1.1 does not allow a password without a user name"
            )
        flags |= 0x40
    if not packet.client_id and not packet.clean_session and not v5:
        raise LocalProtocolError(
            "[MQTT-3.1.3-7] an empty client id requires clean session (clean_session=True)"
        )
    parts = [
        b"\x00\x04MQTT",
        struct.pack("!BBH", protocol, flags, keepalive),
        _local_props(packet.properties, PacketType.CONNECT, protocol),
        encode_string(packet.client_id, "client id"),
    ]
    if will is not None:
        parts += _encode_will(will, protocol)
    if packet.username is not None:
        parts.append(encode_string(packet.username, "user name"))
    if packet.password is not None:
        parts.append(encode_binary(packet.password, "password"))
    return frame(0x10, *parts)


def _encode_will(will: Will, protocol: ProtocolVersion) -> list[bytes]:
    props = _local_props(will.properties, WILL, protocol)
    problem = topic_name_problem(will.topic)
    if problem:
        raise LocalProtocolError(problem.replace("a PUBLISH topic", "the Will topic"))
    return [
        props,
        encode_string(will.topic, "Will topic"),
        encode_binary(will.payload, "Will message"),
    ]


def _encode_connack(packet: ConnAck, protocol: ProtocolVersion) -> bytes:
    code = packet.reason_code
    if protocol == _V5:
        _local_reason(code, PacketType.CONNACK, protocol)
    elif code not in CONNACK_RETURN_CODES_311:
        raise LocalProtocolError(f"(MQTT 3.1.1 §3.2.2.3) CONNACK return code {code} is reserved")
    if packet.session_present and code != 0:
        raise LocalProtocolError("[MQTT-3.2.2-4] a refusing CONNACK must have Session Present = 0")
    body = bytes((1 if packet.session_present else 0, code))
    return frame(0x20, body + _local_props(packet.properties, PacketType.CONNACK, protocol))


def _encode_publish(packet: Publish, protocol: ProtocolVersion) -> bytes:
    qos = packet.qos
    _check_qos(qos, "PUBLISH", "MQTT-3.3.1-4")
    topic = packet.topic
    props = packet.properties
    aliased = not topic and protocol == _V5 and props.get(PropertyId.TOPIC_ALIAS) is not None
    problem = None if aliased else topic_name_problem(topic)
    if problem:
        raise LocalProtocolError(problem)
    if qos:
        packet_id = _check_packet_id(packet.packet_id, "a QoS 1/2 PUBLISH")
        pid = struct.pack("!H", packet_id)
    else:
        if packet.packet_id is not None:
            raise LocalProtocolError(
                "[MQTT-2.3.1-5] a QoS 0 PUBLISH must not carry a packet identifier"
            )
        if packet.dup:
            raise LocalProtocolError("[MQTT-3.3.1-2] DUP must be 0 for a QoS 0 PUBLISH")
        pid = b""
    prop_bytes = _local_props(props, PacketType.PUBLISH, protocol)
    topic_bytes = encode_string(topic, "topic name")
    check_bytes(packet.payload, "a PUBLISH payload")
    first = 0x30 | (0x08 if packet.dup else 0) | (qos << 1) | (1 if packet.retain else 0)
    return frame(first, topic_bytes, pid, prop_bytes, packet.payload)


def _encode_ack(packet: PubAck | PubRec | PubRel | PubComp, protocol: ProtocolVersion) -> bytes:
    ptype = packet.packet_type
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, ptype.name))
    _local_reason(packet.reason_code, ptype, protocol)
    first = (ptype << 4) | (0x02 if ptype == PacketType.PUBREL else 0)
    if protocol != _V5:
        _local_props(packet.properties, ptype, protocol)
        return frame(first, pid)
    if packet.properties:
        body = pid + bytes((packet.reason_code,)) + encode_properties(packet.properties, ptype)
    elif packet.reason_code:
        body = pid + bytes((packet.reason_code,))
    else:
        body = pid
    return frame(first, body)


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
    return frame(0x82, b"".join(parts))


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
    return frame(0x90, pid + props + bytes(packet.reason_codes))


def _encode_unsubscribe(packet: Unsubscribe, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "UNSUBSCRIBE"))
    if not packet.topic_filters:
        raise LocalProtocolError("[MQTT-3.10.3-2] an UNSUBSCRIBE must contain at least one filter")
    parts = [pid, _local_props(packet.properties, PacketType.UNSUBSCRIBE, protocol)]
    for topic_filter in packet.topic_filters:
        validate_topic_filter(topic_filter)
        parts.append(encode_string(topic_filter, "topic filter"))
    return frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: UnsubAck, protocol: ProtocolVersion) -> bytes:
    pid = struct.pack("!H", _check_packet_id(packet.packet_id, "UNSUBACK"))
    if protocol != _V5:
        if packet.reason_codes:
            raise LocalProtocolError(
                "(MQTT 3.1.1 §3.11) UNSUBACK carries no reason codes; they exist only in 5.0"
            )
        _local_props(packet.properties, PacketType.UNSUBACK, protocol)
        return frame(0xB0, pid)
    if not packet.reason_codes:
        raise LocalProtocolError("(MQTT 5.0 §3.11.3) an UNSUBACK needs one reason code per filter")
    for code in packet.reason_codes:
        _local_reason(code, PacketType.UNSUBACK, protocol)
    props = encode_properties(packet.properties, PacketType.UNSUBACK)
    return frame(0xB0, pid + props + bytes(packet.reason_codes))


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
    return frame(first, body)


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


def encode_general(packet: Packet, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> bytes:
    """:func:`encode` by the reference encoders alone, without the fast paths."""
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise LocalProtocolError(f"{type(packet).__name__} is not an MQTT packet")
    return encoder(packet, protocol)


# --- decoders ------------------------------------------------------------------------


def _expect_flags(first: int, expected: int, ptype: PacketType) -> None:
    if first & 0x0F != expected:
        statement = {
            PacketType.PUBREL: "MQTT-3.6.1-1",
            PacketType.SUBSCRIBE: "MQTT-3.8.1-1",
            PacketType.UNSUBSCRIBE: "MQTT-3.10.1-1",
        }.get(ptype, "MQTT-2.2.2-2")
        malformed(
            f"[{statement}] {ptype.name} has reserved flag bits 0x{first & 0x0F:X}; "
            f"they must be 0x{expected:X}"
        )


def _read_pid(body: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    if pos + 2 > end:
        malformed(f"{what} is too short for a packet identifier")
    pid = (body[pos] << 8) | body[pos + 1]
    if pid == 0:
        malformed(f"[MQTT-2.3.1-1] {what} has packet identifier 0")
    return pid, pos + 2


def _remote_props(
    body: bytes, pos: int, end: int, context: PacketType | str, protocol: ProtocolVersion
) -> tuple[Properties, int]:
    if protocol != _V5:
        return NO_PROPERTIES, pos
    return decode_properties(body, pos, end, context)


def _remote_reason(code: int, ptype: PacketType) -> None:
    if code not in REASON_CODES_BY_PACKET[ptype]:
        malformed(f"(MQTT 5.0 §2.4) reason code 0x{code:02X} is not allowed in {ptype.name}")


def _decode_connect(first: int, body: bytes, _protocol: ProtocolVersion) -> Connect:
    _expect_flags(first, 0, PacketType.CONNECT)
    end = len(body)
    name, pos = decode_string(body, 0, end, "protocol name")
    if name != "MQTT" or pos + 4 > end:
        malformed(f"[MQTT-3.1.2-1] protocol name must be 'MQTT', got {name!r}")
    level, flags, keepalive = struct.unpack_from("!BBH", body, pos)
    pos += 4
    try:
        protocol = ProtocolVersion(level)
    except ValueError:
        malformed(f"[MQTT-3.1.2-2] unsupported protocol level {level}")
    if flags & 0x01:
        malformed("[MQTT-3.1.2-3] the reserved CONNECT flag (bit 0) must be 0")
    will_flag = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if not will_flag and (will_qos or will_retain):
        malformed("[MQTT-3.1.2-11] Will QoS and Will Retain must be 0 without a Will")
    if will_qos == 3:
        malformed("[MQTT-3.1.2-14] Will QoS must not be 3")
    if flags & 0x40 and not flags & 0x80 and protocol != _V5:
        malformed("[MQTT-3.1.2-22] a password without a user name")
    props, pos = _remote_props(body, pos, end, PacketType.CONNECT, protocol)
    client_id, pos = decode_string(body, pos, end, "client id")
    clean = bool(flags & 0x02)
    if not client_id and not clean and protocol != _V5:
        malformed("[MQTT-3.1.3-7] an empty client id requires clean session")
    will = None
    if will_flag:
        will_props, pos = _remote_props(body, pos, end, WILL, protocol)
        topic, pos = decode_string(body, pos, end, "Will topic")
        problem = topic_name_problem(topic)
        if problem:
            malformed(problem.replace("a PUBLISH topic", "the Will topic"))
        message, pos = decode_binary(body, pos, end, "Will message")
        will = Will(topic, message, will_qos, will_retain, will_props)
    username = password = None
    if flags & 0x80:
        username, pos = decode_string(body, pos, end, "user name")
    if flags & 0x40:
        password, pos = decode_binary(body, pos, end, "password")
    if pos != end:
        malformed(f"CONNECT has {end - pos} unexpected bytes after its payload")
    return Connect(client_id, clean, keepalive, username, password, will, protocol, props)


def _decode_connack(first: int, body: bytes, protocol: ProtocolVersion) -> ConnAck:
    _expect_flags(first, 0, PacketType.CONNACK)
    end = len(body)
    if end < 2 or (protocol != _V5 and end != 2):
        malformed(f"CONNACK has {end} bytes after its fixed header; it needs 2 in MQTT 3.1.1")
    ack_flags, code = body[0], body[1]
    if ack_flags & 0xFE:
        malformed("(MQTT 3.1.1 §3.2.2.1) CONNACK acknowledge flags bits 7-1 must be 0")
    if protocol == _V5:
        _remote_reason(code, PacketType.CONNACK)
        props, pos = decode_properties(body, 2, end, PacketType.CONNACK)
        if pos != end:
            malformed("CONNACK has unexpected bytes after its properties")
    else:
        if code not in CONNACK_RETURN_CODES_311:
            malformed(f"(MQTT 3.1.1 §3.2.2.3) CONNACK return code {code} is reserved")
        props = NO_PROPERTIES
    if ack_flags and code:
        malformed("[MQTT-3.2.2-4] a refusing CONNACK must have Session Present = 0")
    return ConnAck(bool(ack_flags), code, props)


def _decode_publish(first: int, body: bytes, protocol: ProtocolVersion) -> Publish:
    qos = (first >> 1) & 0x03
    dup = first & 0x08 != 0
    if qos == 3:
        malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3")
    if dup and not qos:
        malformed("[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH")
    end = len(body)
    topic, pos = decode_string(body, 0, end, "PUBLISH topic")
    packet_id = None
    if qos:
        packet_id, pos = _read_pid(body, pos, end, "PUBLISH")
    props = NO_PROPERTIES
    if protocol == _V5:
        props, pos = decode_properties(body, pos, end, PacketType.PUBLISH)
    problem = topic_name_problem(topic)
    if problem and (topic or props.get(PropertyId.TOPIC_ALIAS) is None):
        malformed(problem)
    return Publish(topic, body[pos:], qos, first & 0x01 != 0, dup, packet_id, props)


def _decode_ack(first: int, body: bytes, protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0x02 if ptype == PacketType.PUBREL else 0, ptype)
    end = len(body)
    if protocol != _V5 and end != 2:
        malformed(f"{ptype.name} must have Remaining Length 2 in MQTT 3.1.1, got {end}")
    pid, pos = _read_pid(body, 0, end, ptype.name)
    code = 0
    props = NO_PROPERTIES
    if pos < end:
        code = body[pos]
        _remote_reason(code, ptype)
        pos += 1
        if pos < end:
            props, pos = decode_properties(body, pos, end, ptype)
            if pos != end:
                malformed(f"{ptype.name} has unexpected bytes after its properties")
    cls = _ACK_CLASSES[ptype]
    return cls(pid, code, props)


_ACK_CLASSES: dict[PacketType, type[PubAck | PubRec | PubRel | PubComp]] = {
    PacketType.PUBACK: PubAck,
    PacketType.PUBREC: PubRec,
    PacketType.PUBREL: PubRel,
    PacketType.PUBCOMP: PubComp,
}


def _read_topic_filter(body: bytes, pos: int, end: int) -> tuple[str, int]:
    topic_filter, pos = decode_string(body, pos, end, "topic filter")
    problem = topic_filter_problem(topic_filter)
    if problem:
        malformed(problem)
    return topic_filter, pos


def _decode_subscribe(first: int, body: bytes, protocol: ProtocolVersion) -> Subscribe:
    _expect_flags(first, 0x02, PacketType.SUBSCRIBE)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "SUBSCRIBE")
    props, pos = _remote_props(body, pos, end, PacketType.SUBSCRIBE, protocol)
    subs: list[Subscription] = []
    while pos < end:
        topic_filter, pos = _read_topic_filter(body, pos, end)
        if pos >= end:
            malformed("SUBSCRIBE: a topic filter is missing its options byte")
        options = body[pos]
        pos += 1
        qos = options & 0x03
        if qos == 3:
            malformed("[MQTT-3-8.3-4] SUBSCRIBE requests QoS 3")
        if protocol == _V5:
            retain_handling = (options >> 4) & 0x03
            if options & 0xC0 or retain_handling == 3:
                malformed("(MQTT 5.0 §3.8.3.1) reserved subscription option bits are set")
            no_local = bool(options & 0x04)
            if no_local and topic_filter.startswith("$share/"):
                malformed("[MQTT-3.8.3-4] No Local set on a shared subscription")
            subs.append(
                Subscription(topic_filter, qos, no_local, bool(options & 0x08), retain_handling)
            )
        else:
            if options & 0xFC:
                malformed("[MQTT-3-8.3-4] reserved bits of the requested QoS byte are set")
            subs.append(Subscription(topic_filter, qos))
    if not subs:
        malformed("[MQTT-3.8.3-3] SUBSCRIBE with no topic filter")
    return Subscribe(pid, tuple(subs), props)


def _decode_suback(first: int, body: bytes, protocol: ProtocolVersion) -> SubAck:
    _expect_flags(first, 0, PacketType.SUBACK)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "SUBACK")
    props, pos = _remote_props(body, pos, end, PacketType.SUBACK, protocol)
    codes = tuple(body[pos:])
    if not codes:
        malformed("[MQTT-3.8.4-5] SUBACK without any return code")
    for code in codes:
        if protocol == _V5:
            _remote_reason(code, PacketType.SUBACK)
        elif code not in _SUBACK_CODES_311:
            malformed(f"[MQTT-3.9.3-2] SUBACK return code 0x{code:02X} is reserved")
    return SubAck(pid, codes, props)


def _decode_unsubscribe(first: int, body: bytes, protocol: ProtocolVersion) -> Unsubscribe:
    _expect_flags(first, 0x02, PacketType.UNSUBSCRIBE)
    end = len(body)
    pid, pos = _read_pid(body, 0, end, "UNSUBSCRIBE")
    props, pos = _remote_props(body, pos, end, PacketType.UNSUBSCRIBE, protocol)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = _read_topic_filter(body, pos, end)
        filters.append(topic_filter)
    if not filters:
        malformed("[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter")
    return Unsubscribe(pid, tuple(filters), props)


def _decode_unsuback(first: int, body: bytes, protocol: ProtocolVersion) -> UnsubAck:
    _expect_flags(first, 0, PacketType.UNSUBACK)
    end = len(body)
    if protocol != _V5:
        if end != 2:
            malformed(f"UNSUBACK must have Remaining Length 2 in MQTT 3.1.1, got {end}")
        pid, _ = _read_pid(body, 0, end, "UNSUBACK")
        return UnsubAck(pid)
    pid, pos = _read_pid(body, 0, end, "UNSUBACK")
    props, pos = decode_properties(body, pos, end, PacketType.UNSUBACK)
    codes = tuple(body[pos:])
    if not codes:
        malformed("(MQTT 5.0 §3.11.3) UNSUBACK without any reason code")
    for code in codes:
        _remote_reason(code, PacketType.UNSUBACK)
    return UnsubAck(pid, codes, props)


def _decode_empty(first: int, body: bytes, _protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0, ptype)
    if body:
        malformed(f"{ptype.name} must have Remaining Length 0, got {len(body)}")
    return PingReq() if ptype == PacketType.PINGREQ else PingResp()


def _decode_disconnect_or_auth(first: int, body: bytes, protocol: ProtocolVersion) -> Packet:
    ptype = PacketType(first >> 4)
    _expect_flags(first, 0, ptype)
    if protocol != _V5:
        if ptype == PacketType.AUTH:
            malformed("(MQTT 3.1.1 §2.2.1) packet type 15 is reserved in MQTT 3.1.1")
        if body:
            malformed(f"DISCONNECT must have Remaining Length 0 in MQTT 3.1.1, got {len(body)}")
        return Disconnect()
    end = len(body)
    code = 0
    props = NO_PROPERTIES
    if end:
        code = body[0]
        _remote_reason(code, ptype)
        if end > 1:
            props, pos = decode_properties(body, 1, end, ptype)
            if pos != end:
                malformed(f"{ptype.name} has unexpected bytes after its properties")
    if ptype == PacketType.AUTH:
        return Auth(code, props)
    return Disconnect(code, props)


_DecodeFn = Callable[[int, bytes, ProtocolVersion], Packet]
_DECODERS: dict[int, _DecodeFn] = {
    1: _decode_connect,
    2: _decode_connack,
    3: _decode_publish,
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


def decode_general(data: bytes, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> Packet:
    """:func:`decode` by the reference decoders alone, without the fast paths."""
    header = read_fixed_header(data, 0, protocol)
    if header is None or header[1] + header[2] > len(data):
        raise MalformedPacket(f"the frame is truncated ({len(data)} bytes is not a whole packet)")
    first, start, length = header
    stop = start + length
    packet = _DECODERS[first >> 4](first, bytes(data[start:stop]), protocol)
    if stop < len(data):
        raise MalformedPacket(f"{len(data) - stop} bytes follow the packet")
    return packet


# The entry points are the fast paths' own functions (one call less per message); they
# hand every packet they do not take to the reference codec above.
_fast.hand_over(encode_general, decode_general)
encode = _fast.encode
decode = _fast.decode
