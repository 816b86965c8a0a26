"""Tests for atbridge.at_mqtt and atbridge.mqtt: packets, codec, stream decoder, the session.

Frames are cross-checked against paho-mqtt 2.x two ways: packets a broker sends
are parsed with paho's own decoder (``paho.mqtt._packet``), and packets a client
sends are compared byte for byte with what a real paho client writes to a
loopback socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt._packet as paho_packet
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from atbridge.at_mqtt import (
    NO_PROPERTIES,
    Auth,
    BrokerDisconnected,
    ConnAck,
    Connect,
    Connected,
    Disconnect,
    MessageReceived,
    MqttSession,
    Packet,
    PacketDecoder,
    PingReq,
    PingResp,
    PongReceived,
    Properties,
    PropertyId,
    ProtocolVersion,
    PubAck,
    PubComp,
    Publish,
    PublishAcknowledged,
    PubRec,
    PubRel,
    SessionState,
    SubAck,
    Subscribe,
    Subscribed,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Unsubscribed,
    Will,
    connack_reason,
    decode,
    encode,
)
from atbridge.errors import (
    BrokerRefused,
    LocalProtocolError,
    MalformedPacket,
    NotConnected,
    PacketTooLarge,
    RemoteProtocolError,
)
from atbridge.mqtt.properties import (
    PROPERTY_SPECS,
    REASON_CODES_BY_PACKET,
    WILL,
    WireType,
)
from atbridge.mqtt.wire import PacketType, encode_varint

V3 = ProtocolVersion.MQTT_3_1_1
V5 = ProtocolVersion.MQTT_5_0
BOUNDED = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- fixed vectors from the reference ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (321, "c1 02"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"),
        (268435455, "ff ff ff 7f"),
    ],
)
def test_remaining_length_vectors_encode_and_frame_decode(value: int, encoded: str) -> None:
    assert encode_varint(value).hex(" ") == encoded
    # A PUBLISH whose body has exactly that length announces it in its fixed header.
    if value >= 5:
        frame = encode(Publish("a", b"x" * (value - 3)))
        assert frame[1 : 1 + len(bytes.fromhex(encoded))].hex(" ") == encoded


@pytest.mark.parametrize(
    ("packet", "wire"),
    [
        (PingReq(), "c0 00"),
        (PingResp(), "d0 00"),
        (Disconnect(), "e0 00"),
        (ConnAck(False, 0), "20 02 00 00"),
        (ConnAck(True, 0), "20 02 01 00"),
        (ConnAck(False, 4), "20 02 00 04"),
        (PubAck(1), "40 02 00 01"),
        (PubRec(0x1234), "50 02 12 34"),
        (PubRel(7), "62 02 00 07"),
        (PubComp(7), "70 02 00 07"),
        (Subscribe(10, (Subscription("a/+", 1),)), "82 08 00 0a 00 03 61 2f 2b 01"),
        (SubAck(10, (1, 0x80)), "90 04 00 0a 01 80"),
        (Unsubscribe(11, ("a/#",)), "a2 07 00 0b 00 03 61 2f 23"),
        (UnsubAck(11), "b0 02 00 0b"),
        (Publish("a/b", b"hi"), "30 07 00 03 61 2f 62 68 69"),
        (Publish("a/b", b"", 1, True, True, 5), "3b 07 00 03 61 2f 62 00 05"),
        (Publish("t", b"", 2, packet_id=1), "34 05 00 01 74 00 01"),
        (
            Connect("cid", keepalive=60),
            "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 63 69 64",
        ),
    ],
)
def test_known_frames_encode_and_decode(packet: Packet, wire: str) -> None:
    assert encode(packet).hex(" ") == wire
    assert decode(bytes.fromhex(wire)) == packet


def test_connect_flags_and_payload_order() -> None:
    packet = Connect(
        "c", False, 300, "u", b"pw", Will("w", b"bye", qos=2, retain=True), protocol=V3
    )
    frame = encode(packet)
    # user, password, will retain, will QoS 2, will flag; clean session off; bit 0 reserved
    assert frame[9] == 0b1111_0100
    assert frame[10:12] == b"\x01\x2c"
    # [MQTT-3.1.3-1] ClientId, Will Topic, Will Message, User Name, Password
    assert frame[12:] == b"\x00\x01c\x00\x01w\x00\x03bye\x00\x01u\x00\x02pw"


def test_connect_repr_never_shows_the_password() -> None:
    packet = Connect("c", username="u", password=b"hunter2")
    assert "hunter2" not in repr(packet)
    assert "hunter2" not in str(packet)
    assert "********" in repr(packet)


def test_mqtt5_connect_has_level_5_and_property_block() -> None:
    props = Properties({PropertyId.SESSION_EXPIRY_INTERVAL: 3600})
    frame = encode(Connect("c", protocol=V5, properties=props))
    assert frame[8] == 5
    assert frame[12:18] == b"\x05\x11\x00\x00\x0e\x10"
    assert decode(frame, V5) == Connect("c", protocol=V5, properties=props)


def test_connack_reason_names_for_both_versions() -> None:
    assert connack_reason(4, V3) == "bad user name or password"
    assert connack_reason(0x86, V5) == "Bad User Name or Password"
    assert connack_reason(0x87, V5) == "Not authorized"


# --- local validation: raised before anything is sent -----------------------------------

LOCAL_ERRORS: list[tuple[Packet, ProtocolVersion, str]] = [
    (Publish("a/+/b"), V3, "[MQTT-3.3.2-2]"),
    (Publish("a/#"), V3, "[MQTT-3.3.2-2]"),
    (Publish(""), V3, "[MQTT-4.7.3-1]"),
    (Publish("a", qos=3, packet_id=1), V3, "[MQTT-3.3.1-4]"),
    (Publish("a", qos=1), V3, "[MQTT-2.3.1-1]"),
    (Publish("a", qos=1, packet_id=0), V3, "[MQTT-2.3.1-1]"),
    (Publish("a", packet_id=3), V3, "[MQTT-2.3.1-5]"),
    (Publish("a", dup=True), V3, "[MQTT-3.3.1-2]"),
    (Publish("a\x00b"), V3, "[MQTT-1.5.3-2]"),
    (Publish("a\ud800"), V3, "[MQTT-1.5.3-1]"),
    (Publish("a" * 65536), V3, "65,535"),
    (Publish("a", properties=Properties({PropertyId.CONTENT_TYPE: "x"})), V3, "MQTT 5.0"),
    (Connect("c", password=b"p"), V3, "[MQTT-3.1.2-22]"),
    (Connect("", clean_session=False), V3, "[MQTT-3.1.3-7]"),
    (Connect("c", keepalive=65536), V3, "65535"),
    (Connect("c", will=Will("w", qos=3)), V3, "[MQTT-3.1.2-14]"),
    (Connect("c", will=Will("w/#")), V3, "Will topic"),
    (Subscribe(1, ()), V3, "[MQTT-3.8.3-3]"),
    (Subscribe(1, (Subscription("a/#/b"),)), V3, "[MQTT-4.7.1-2]"),
    (Subscribe(1, (Subscription("a/b#"),)), V3, "[MQTT-4.7.1-2]"),
    (Subscribe(1, (Subscription("a/b+"),)), V3, "[MQTT-4.7.1-3]"),
    (Subscribe(1, (Subscription("a", 3),)), V3, "[MQTT-3-8.3-4]"),
    (Subscribe(0, (Subscription("a"),)), V3, "[MQTT-2.3.1-1]"),
    (Subscribe(1, (Subscription("a", no_local=True),)), V3, "MQTT 5.0"),
    (Subscribe(1, (Subscription("$share/g/a", no_local=True),)), V5, "[MQTT-3.8.3-4]"),
    (Unsubscribe(1, ()), V3, "[MQTT-3.10.3-2]"),
    (SubAck(1, (3,)), V3, "[MQTT-3.9.3-2]"),
    (ConnAck(True, 5), V3, "[MQTT-3.2.2-4]"),
    (PubAck(1, 0x80), V3, "MQTT 5.0"),
    (PubAck(1, 0x8C), V5, "not allowed in PUBACK"),
    (Auth(), V3, "MQTT 5.0"),
    (
        Publish("a", properties=Properties({PropertyId.SESSION_EXPIRY_INTERVAL: 1})),
        V5,
        "not allowed in PUBLISH",
    ),
    (
        Publish(
            "a",
            properties=Properties([(PropertyId.CONTENT_TYPE, "a"), (PropertyId.CONTENT_TYPE, "b")]),
        ),
        V5,
        "only once",
    ),
    (
        Connect("c", protocol=V5, properties=Properties({PropertyId.RECEIVE_MAXIMUM: 0})),
        V5,
        "1..65535",
    ),
]


@pytest.mark.parametrize(("packet", "protocol", "statement"), LOCAL_ERRORS)
def test_invalid_packets_are_refused_before_sending(
    packet: Packet, protocol: ProtocolVersion, statement: str
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode(packet, protocol)
    assert statement in str(info.value)


def test_mqtt5_allows_password_without_user_name_and_empty_topic_with_alias() -> None:
    frame = encode(Connect("c", password=b"p", protocol=V5))
    assert frame[9] & 0xC0 == 0x40
    aliased = Publish("", b"x", properties=Properties({PropertyId.TOPIC_ALIAS: 3}))
    assert decode(encode(aliased, V5), V5) == aliased


def test_oversized_body_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="268,435,455"):
        encode(Publish("a", b"\0" * 268_435_456))


# --- remote validation: broker bytes that break the protocol ----------------------------

REMOTE_ERRORS = [
    ("36 05 00 01 61 00 01", "[MQTT-3.3.1-4]", V3),
    ("38 03 00 01 61", "[MQTT-3.3.1-2]", V3),
    ("32 05 00 01 61 00 00", "[MQTT-2.3.1-1]", V3),
    ("30 05 00 03 61 2f 2b", "[MQTT-3.3.2-2]", V3),
    ("30 03 00 01 00", "[MQTT-1.5.3-2]", V3),
    ("30 04 00 02 c3 28", "[MQTT-1.5.3-1]", V3),
    ("30 05 00 03 ed a0 80", "[MQTT-1.5.3-1]", V3),
    ("30 02 00 00", "[MQTT-4.7.3-1]", V3),
    ("60 02 00 01", "[MQTT-3.6.1-1]", V3),
    ("80 06 00 01 00 01 61 00", "[MQTT-3.8.1-1]", V3),
    ("a0 05 00 01 00 01 61", "[MQTT-3.10.1-1]", V3),
    ("41 02 00 01", "reserved flag", V3),
    ("20 02 01 05", "[MQTT-3.2.2-4]", V3),
    ("20 02 00 06", "reserved", V3),
    ("20 02 02 00", "bits 7-1", V3),
    ("20 03 00 00 00", "needs 2", V3),
    ("90 03 00 01 03", "[MQTT-3.9.3-2]", V3),
    ("90 02 00 01", "[MQTT-3.8.4-5]", V3),
    ("c0 01 00", "Remaining Length 0", V3),
    ("e0 01 00", "MQTT 3.1.1", V3),
    ("f0 00", "reserved", V3),
    ("00 00", "reserved", V3),
    ("30 ff ff ff ff 01", "longer than 4 bytes", V3),
    ("40 03 00 01 8c", "not allowed in PUBACK", V5),
    ("30 09 00 01 61 05 11 00 00 00 01", "not allowed in PUBLISH", V5),
    ("30 05 00 01 61 01 7f", "unknown property", V5),
    ("e0 02 8e 05", "runs past", V5),
]


@pytest.mark.parametrize(("wire", "statement", "protocol"), REMOTE_ERRORS)
def test_broker_bytes_that_break_the_protocol_raise_malformed(
    wire: str, statement: str, protocol: ProtocolVersion
) -> None:
    data = bytes.fromhex(wire)
    with pytest.raises(MalformedPacket) as info:
        decode(data, protocol)
    assert statement in str(info.value)
    assert isinstance(info.value, RemoteProtocolError)


def test_truncated_frame_and_trailing_bytes_are_malformed_for_decode() -> None:
    with pytest.raises(MalformedPacket, match="truncated"):
        decode(bytes.fromhex("30 05 00 01"))
    with pytest.raises(MalformedPacket, match="follow"):
        decode(bytes.fromhex("c0 00 c0"))


# --- the stream decoder ------------------------------------------------------------------

STREAM: list[Packet] = [
    ConnAck(True, 0),
    Publish("sensors/1", b"x" * 300, 1, packet_id=9),
    PubAck(3),
    SubAck(4, (0, 1, 0x80)),
    PingResp(),
    Publish("a", b""),
]


def _drain(decoder: PacketDecoder) -> list[Packet]:
    out = []
    while (packet := decoder.next_packet()) is not None:
        out.append(packet)
    return out


def test_several_frames_in_one_chunk() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(b"".join(encode(p) for p in STREAM))
    assert _drain(decoder) == STREAM
    assert decoder.buffered == 0


def test_a_stream_split_at_every_byte_boundary_decodes_the_same() -> None:
    wire = b"".join(encode(p) for p in STREAM)
    for cut in range(len(wire) + 1):
        decoder = PacketDecoder()
        decoder.receive_data(wire[:cut])
        got = _drain(decoder)
        decoder.receive_data(wire[cut:])
        assert got + _drain(decoder) == STREAM


def test_byte_by_byte_needs_more_data_without_error() -> None:
    decoder = PacketDecoder()
    got: list[Packet] = []
    for byte in b"".join(encode(p) for p in STREAM):
        decoder.receive_data(bytes([byte]))
        got.extend(_drain(decoder))
    assert got == STREAM


@BOUNDED
@given(st.lists(st.integers(0, 400), max_size=12))
def test_arbitrary_chunking_yields_the_same_packets(cuts: list[int]) -> None:
    wire = b"".join(encode(p) for p in STREAM)
    positions = sorted({min(c, len(wire)) for c in cuts})
    decoder = PacketDecoder()
    got: list[Packet] = []
    start = 0
    for pos in [*positions, len(wire)]:
        decoder.receive_data(wire[start:pos])
        got.extend(_drain(decoder))
        start = pos
    assert got == STREAM


def test_max_packet_size_is_enforced_from_the_header_alone() -> None:
    decoder = PacketDecoder(max_packet_size=100)
    frame = encode(Publish("a", b"x" * 200))
    decoder.receive_data(frame[:3])  # header only: the body has not arrived
    with pytest.raises(PacketTooLarge, match="exceeds the limit of 100"):
        decoder.next_packet()
    # the stream has lost its framing: the decoder stays broken
    with pytest.raises(PacketTooLarge):
        decoder.next_packet()
    ok = PacketDecoder(max_packet_size=len(frame))
    ok.receive_data(frame)
    assert ok.next_packet() == Publish("a", b"x" * 200)


def test_decoder_latches_after_malformed_input() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(encode(PingResp()) + b"\x36\x05\x00\x01a\x00\x01" + encode(PingResp()))
    assert decoder.next_packet() == PingResp()
    with pytest.raises(MalformedPacket):
        decoder.next_packet()
    with pytest.raises(MalformedPacket):
        decoder.next_packet()


# --- hypothesis: valid packets round-trip ----------------------------------------------

mqtt_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)
level = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00/+#"),
    min_size=1,
    max_size=6,
)
topic_names = st.lists(level, min_size=1, max_size=4).map("/".join)
topic_filters = st.builds(
    lambda levels, tail: "/".join(levels + ([tail] if tail else [])) or "#",
    st.lists(st.one_of(level, st.just("+")), max_size=4),
    st.sampled_from(["", "#"]),
)
pids = st.integers(1, 0xFFFF)


@st.composite
def properties_for(draw: st.DrawFn, context: PacketType | str) -> Properties:
    allowed = sorted(pid for pid, spec in PROPERTY_SPECS.items() if context in spec.contexts)
    chosen = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=4)) if allowed else []
    items: list[tuple[PropertyId, Any]] = []
    for pid in chosen:
        if context == PacketType.PUBLISH and pid == PropertyId.TOPIC_ALIAS:
            continue
        spec = PROPERTY_SPECS[pid]
        count = 2 if pid == PropertyId.USER_PROPERTY else 1
        for _ in range(count):
            if spec.wire == WireType.STRING:
                value: Any = draw(mqtt_text)
            elif spec.wire == WireType.BINARY:
                value = draw(st.binary(max_size=8))
            elif spec.wire == WireType.STRING_PAIR:
                value = (draw(mqtt_text), draw(mqtt_text))
            else:
                top = {
                    WireType.BYTE: 0xFF,
                    WireType.TWO_BYTE: 0xFFFF,
                    WireType.FOUR_BYTE: 0xFFFFFFFF,
                    WireType.VARINT: 268_435_455,
                }[spec.wire]
                value = draw(st.integers(spec.minimum, spec.maximum or top))
            items.append((pid, value))
    return Properties(items)


def codes(ptype: PacketType) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(REASON_CODES_BY_PACKET[ptype]))


@st.composite
def packets(draw: st.DrawFn, protocol: ProtocolVersion) -> Packet:
    v5 = protocol == V5

    def props(context: PacketType | str) -> Properties:
        return draw(properties_for(context)) if v5 else NO_PROPERTIES

    kind = draw(st.sampled_from([*PacketType] if v5 else [*PacketType][:-1]))
    if kind == PacketType.CONNECT:
        client_id = draw(mqtt_text)
        username = draw(st.none() | mqtt_text)
        password = draw(st.none() | st.binary(max_size=10))
        if not v5 and username is None:
            password = None
        will = draw(
            st.none()
            | st.builds(
                Will,
                topic_names,
                st.binary(max_size=10),
                st.integers(0, 2),
                st.booleans(),
                st.just(props(WILL)),
            )
        )
        clean = draw(st.booleans()) or (not client_id and not v5)
        return Connect(
            client_id,
            clean,
            draw(st.integers(0, 0xFFFF)),
            username,
            password,
            will,
            protocol,
            props(PacketType.CONNECT),
        )
    if kind == PacketType.CONNACK:
        code = draw(codes(kind) if v5 else st.integers(0, 5))
        return ConnAck(draw(st.booleans()) and code == 0, code, props(kind))
    if kind == PacketType.PUBLISH:
        qos = draw(st.integers(0, 2))
        return Publish(
            draw(topic_names),
            draw(st.binary(max_size=40)),
            qos,
            draw(st.booleans()),
            draw(st.booleans()) and qos > 0,
            draw(pids) if qos else None,
            props(kind),
        )
    if kind in (PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP):
        cls = (PubAck, PubRec, PubRel, PubComp)[kind - PacketType.PUBACK]
        return cls(draw(pids), draw(codes(kind)) if v5 else 0, props(kind))
    if kind == PacketType.SUBSCRIBE:
        subs = draw(
            st.lists(
                st.builds(
                    Subscription,
                    topic_filters,
                    st.integers(0, 2),
                    st.booleans() if v5 else st.just(False),
                    st.booleans() if v5 else st.just(False),
                    st.integers(0, 2) if v5 else st.just(0),
                ),
                min_size=1,
                max_size=3,
            )
        )
        return Subscribe(draw(pids), tuple(subs), props(kind))
    if kind == PacketType.SUBACK:
        pool = codes(kind) if v5 else st.sampled_from([0, 1, 2, 0x80])
        return SubAck(draw(pids), tuple(draw(st.lists(pool, min_size=1, max_size=4))), props(kind))
    if kind == PacketType.UNSUBSCRIBE:
        filters = draw(st.lists(topic_filters, min_size=1, max_size=3))
        return Unsubscribe(draw(pids), tuple(filters), props(kind))
    if kind == PacketType.UNSUBACK:
        if not v5:
            return UnsubAck(draw(pids))
        reasons = draw(st.lists(codes(kind), min_size=1, max_size=3))
        return UnsubAck(draw(pids), tuple(reasons), props(kind))
    if kind == PacketType.PINGREQ:
        return PingReq()
    if kind == PacketType.PINGRESP:
        return PingResp()
    if kind == PacketType.DISCONNECT:
        return Disconnect(draw(codes(kind)) if v5 else 0, props(kind))
    return Auth(draw(codes(PacketType.AUTH)), props(PacketType.AUTH))


@BOUNDED
@given(st.data())
def test_random_valid_packets_round_trip_in_both_versions(data: st.DataObject) -> None:
    protocol = data.draw(st.sampled_from([V3, V5]))
    packet = data.draw(packets(protocol))
    wire = encode(packet, protocol)
    assert decode(wire, protocol) == packet
    decoder = PacketDecoder(protocol)
    for index in range(0, len(wire), 3):
        decoder.receive_data(wire[index : index + 3])
    assert decoder.next_packet() == packet


def _decode_all(data: bytes, protocol: ProtocolVersion) -> list[Packet]:
    decoder = PacketDecoder(protocol, max_packet_size=4096)
    decoder.receive_data(data)
    return _drain(decoder)


@BOUNDED
@given(st.binary(max_size=80), st.sampled_from([V3, V5]))
def test_random_bytes_raise_only_malformed_and_what_decodes_re_encodes(
    data: bytes, protocol: ProtocolVersion
) -> None:
    try:
        decoded = _decode_all(data, protocol)
    except MalformedPacket:
        return
    for packet in decoded:
        assert decode(encode(packet, protocol), protocol) == packet


@BOUNDED
@given(st.integers(0, 255), st.binary(max_size=60), st.sampled_from([V3, V5]))
def test_random_bodies_behind_every_header_raise_only_malformed(
    first: int, body: bytes, protocol: ProtocolVersion
) -> None:
    frame = bytes([first]) + encode_varint(len(body)) + body
    try:
        packet = decode(frame, protocol)
    except MalformedPacket:
        return
    assert decode(encode(packet, protocol), protocol) == packet


@BOUNDED
@given(st.data())
def test_corrupted_valid_frames_raise_only_malformed(data: st.DataObject) -> None:
    protocol = data.draw(st.sampled_from([V3, V5]))
    wire = bytearray(encode(data.draw(packets(protocol)), protocol))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    try:
        decoded = _decode_all(bytes(wire), protocol)
    except MalformedPacket:
        return
    for packet in decoded:
        assert decode(encode(packet, protocol), protocol) == packet


# --- paho-mqtt cross-check: paho parses what we encode ------------------------------------


PAHO_VERSION = {V3: MQTTProtocolVersion.MQTTv311, V5: MQTTProtocolVersion.MQTTv5}


def _split(frame: bytes) -> tuple[int, bytes]:
    index = 1
    while frame[index] & 0x80:
        index += 1
    return frame[0], frame[index + 1 :]


def _paho_props(props: Any) -> dict[int, Any]:
    if props is None:
        return {}
    out: dict[int, Any] = {}
    for name, ident in props.names.items():
        compressed = name.replace(" ", "")
        if hasattr(props, compressed):
            out[ident] = getattr(props, compressed)
    return out


def _our_props(props: Properties) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for pid, value in props:
        if pid in (PropertyId.USER_PROPERTY, PropertyId.SUBSCRIPTION_IDENTIFIER):
            out.setdefault(int(pid), []).append(value)
        else:
            out[int(pid)] = value
    return out


@BOUNDED
@given(st.data())
def test_paho_parses_our_publish_identically(data: st.DataObject) -> None:
    protocol = data.draw(st.sampled_from([V3, V5]))
    qos = data.draw(st.integers(0, 2))
    publish = Publish(
        data.draw(topic_names),
        data.draw(st.binary(max_size=300)),
        qos,
        data.draw(st.booleans()),
        data.draw(st.booleans()) and qos > 0,
        data.draw(pids) if qos else None,
        data.draw(properties_for(PacketType.PUBLISH)) if protocol == V5 else NO_PROPERTIES,
    )
    header, body = _split(encode(publish, protocol))
    parsed = paho_packet.decode_publish(header, body, PAHO_VERSION[protocol])
    assert parsed.topic.decode("utf-8") == publish.topic
    assert bytes(parsed.payload) == publish.payload
    assert (parsed.qos, parsed.retain, parsed.dup) == (publish.qos, publish.retain, publish.dup)
    assert parsed.mid == (publish.packet_id or 0)
    assert _paho_props(parsed.properties) == _our_props(publish.properties)


@pytest.mark.parametrize("protocol", [V3, V5])
def test_paho_parses_our_broker_side_packets(protocol: ProtocolVersion) -> None:
    version = PAHO_VERSION[protocol]
    v5 = protocol == V5
    reason = Properties({PropertyId.REASON_STRING: "quota"}) if v5 else NO_PROPERTIES

    connack = ConnAck(
        True,
        0,
        Properties({PropertyId.SERVER_KEEP_ALIVE: 120, PropertyId.MAXIMUM_PACKET_SIZE: 4096})
        if v5
        else NO_PROPERTIES,
    )
    parsed: Any = paho_packet.decode_connack(*_split(encode(connack, protocol)), version)
    assert parsed.flags == 1 and parsed.rc == 0
    assert _paho_props(parsed.properties) == _our_props(connack.properties)

    refused = ConnAck(False, 0x86 if v5 else 4)
    parsed = paho_packet.decode_connack(*_split(encode(refused, protocol)), version)
    assert parsed.reason.getName() == "Bad user name or password"

    for cls, decoder in (
        (PubAck, paho_packet.decode_puback),
        (PubRec, paho_packet.decode_pubrec),
        (PubRel, paho_packet.decode_pubrel),
        (PubComp, paho_packet.decode_pubcomp),
    ):
        code = 0x97 if v5 and cls in (PubAck, PubRec) else 0
        ack = cls(513, code, reason if code else NO_PROPERTIES)
        parsed = decoder(*_split(encode(ack, protocol)), version)
        assert parsed.mid == 513
        assert parsed.reason.value == code
        assert _paho_props(parsed.properties) == _our_props(ack.properties)

    suback = SubAck(77, (0, 1, 2, 0x80) if not v5 else (0, 1, 0x97), reason)
    parsed = paho_packet.decode_suback(*_split(encode(suback, protocol)), version)
    assert parsed.mid == 77
    assert [rc.value for rc in parsed.reason_codes] == list(suback.reason_codes)

    unsuback = UnsubAck(78, (0, 0x11) if v5 else (), reason)
    parsed = paho_packet.decode_unsuback(*_split(encode(unsuback, protocol)), version)
    assert parsed.mid == 78
    assert [rc.value for rc in parsed.reason_codes] == list(unsuback.reason_codes)

    if v5:
        disconnect = Disconnect(
            0x8E, Properties({PropertyId.REASON_STRING: "taken over by another client"})
        )
        parsed = paho_packet.decode_disconnect(*_split(encode(disconnect, protocol)), version)
        assert parsed.reason.getName() == "Session taken over"
        assert parsed.properties.ReasonString == "taken over by another client"


# --- paho-mqtt cross-check: what a paho client sends is what we encode ---------------------


@contextmanager
def paho_on_loopback(
    protocol: ProtocolVersion, **client_args: Any
) -> Iterator[tuple[Any, socket.socket, PacketDecoder]]:
    """A paho client connected to a listening socket on 127.0.0.1 (free port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    client = paho.Client(
        CallbackAPIVersion.VERSION2, protocol=PAHO_VERSION[protocol], **client_args
    )
    try:
        yield client, listener, PacketDecoder(protocol)
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()
        listener.close()


def _receive(conn: socket.socket, decoder: PacketDecoder) -> tuple[Packet, bytes]:
    """Read one whole packet (bounded by the socket timeout); returns it and its bytes."""
    raw = b""
    while True:
        before = decoder.buffered
        packet = decoder.next_packet()
        if packet is not None:
            size = before - decoder.buffered
            frame, raw = raw[:size], raw[size:]
            assert not raw
            return packet, frame
        chunk = conn.recv(65536)
        assert chunk, "paho closed the connection"
        raw += chunk
        decoder.receive_data(chunk)


@pytest.mark.parametrize("protocol", [V3, V5])
def test_frames_a_paho_client_sends_match_ours_byte_for_byte(protocol: ProtocolVersion) -> None:
    v5 = protocol == V5
    with paho_on_loopback(protocol, client_id="bench-7") as (client, listener, decoder):
        client.username_pw_set("dev&pk", "s3cret")
        client.will_set("status/bench-7", b"offline", qos=1, retain=True)
        connect_props = None
        if v5:
            connect_props = PahoProperties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect_props.SessionExpiryInterval = 600
            connect_props.UserProperty = ("site", "lab")
        client.connect(
            "127.0.0.1", listener.getsockname()[1], keepalive=45, properties=connect_props
        )
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            packet, frame = _receive(conn, decoder)
            expected = Connect(
                "bench-7",
                True,
                45,
                "dev&pk",
                b"s3cret",
                Will("status/bench-7", b"offline", 1, True),
                protocol,
                Properties(
                    [
                        (PropertyId.SESSION_EXPIRY_INTERVAL, 600),
                        (PropertyId.USER_PROPERTY, ("site", "lab")),
                    ]
                )
                if v5
                else NO_PROPERTIES,
            )
            assert packet == expected
            assert encode(expected) == frame

            # paho accepts our CONNACK and considers itself connected
            conn.sendall(encode(ConnAck(False, 0), protocol))
            client.loop_read()
            assert client.is_connected()

            info = client.publish("sensors/t", b"21.5", qos=1)
            packet, frame = _receive(conn, decoder)
            assert frame == encode(Publish("sensors/t", b"21.5", 1, packet_id=info.mid), protocol)

            client.publish("sensors/t", b"", qos=0, retain=True)
            packet, frame = _receive(conn, decoder)
            assert frame == encode(Publish("sensors/t", b"", 0, True), protocol)

            info = client.publish("cmd/x", b"\x00\xff", qos=2)
            packet, frame = _receive(conn, decoder)
            assert frame == encode(Publish("cmd/x", b"\x00\xff", 2, packet_id=info.mid), protocol)

            _, mid = client.subscribe([("a/+/c", 1), ("d/#", 2)])
            packet, frame = _receive(conn, decoder)
            subscribe = Subscribe(mid, (Subscription("a/+/c", 1), Subscription("d/#", 2)))
            assert frame == encode(subscribe, protocol)

            _, mid = client.unsubscribe(["a/+/c", "d/#"])
            packet, frame = _receive(conn, decoder)
            assert frame == encode(Unsubscribe(mid, ("a/+/c", "d/#")), protocol)

            client.disconnect()
            packet, frame = _receive(conn, decoder)
            assert packet == Disconnect()
            assert frame == encode(Disconnect(), protocol)
        finally:
            conn.close()


# --- the session ---------------------------------------------------------------------------


class Broker:
    """Feeds broker packets into a session at the fake clock's time and reads its output."""

    def __init__(self, session: MqttSession) -> None:
        self.session = session
        self.protocol = session.protocol
        self.now = 0.0

    def sent(self) -> list[Packet]:
        data = self.session.data_to_send(self.now)
        decoder = PacketDecoder(self.protocol)
        decoder.receive_data(data)
        return _drain(decoder)

    def send(self, *packets: Packet) -> list[Any]:
        self.session.receive_data(b"".join(encode(p, self.protocol) for p in packets), self.now)
        events = []
        while (event := self.session.next_event()) is not None:
            events.append(event)
        return events


def online(
    protocol: ProtocolVersion = V3,
    connack: ConnAck | None = None,
    keepalive: int = 60,
    **kwargs: Any,
) -> Broker:
    session = MqttSession(
        Connect("dev", keepalive=keepalive, username="u", password=b"pw", protocol=protocol),
        **kwargs,
    )
    broker = Broker(session)
    session.connect()
    assert broker.sent() == [
        Connect("dev", keepalive=keepalive, username="u", password=b"pw", protocol=protocol)
    ]
    events = broker.send(connack or ConnAck(False, 0))
    assert isinstance(events[0], Connected)
    assert session.state == SessionState.CONNECTED
    return broker


def test_connack_refusal_raises_broker_refused_with_name_and_hint() -> None:
    session = MqttSession(Connect("dev", username="u", password=b"pw-secret"))
    session.connect()
    session.data_to_send(0)
    session.receive_data(encode(ConnAck(False, 4)), 0.1)
    with pytest.raises(BrokerRefused) as info:
        session.next_event()
    assert info.value.code == 4
    assert "bad user name or password" in str(info.value)
    assert "atbridge creds" in info.value.hint
    assert "pw-secret" not in str(info.value)
    assert "(the CONNECT carried user name 'u')" in info.value.hint  # what was sent
    assert session.state == SessionState.DISCONNECTED


def test_a_not_authorised_refusal_says_no_user_name_was_sent() -> None:
    """CONNACK 5 to a CONNECT without credentials: the hint says none were sent (issue 14)."""
    session = MqttSession(Connect("dev"))
    session.connect()
    session.data_to_send(0)
    session.receive_data(encode(ConnAck(False, 5)), 0.1)
    with pytest.raises(BrokerRefused) as info:
        session.next_event()
    assert info.value.hint.endswith("(the CONNECT carried no user name)")
    assert "check the user name and password" in info.value.hint


def test_mqtt5_refusal_carries_the_brokers_reason_string() -> None:
    session = MqttSession(Connect("dev", protocol=V5))
    session.connect()
    refusal = ConnAck(False, 0x87, Properties({PropertyId.REASON_STRING: "device is disabled"}))
    session.receive_data(encode(refusal, V5), 0)
    with pytest.raises(BrokerRefused) as info:
        session.next_event()
    assert info.value.code == 0x87
    assert info.value.reason == "Not authorized: device is disabled"


def test_a_packet_before_connack_is_a_remote_protocol_error() -> None:
    session = MqttSession(Connect("dev"))
    session.connect()
    session.receive_data(encode(PingResp()), 0)
    with pytest.raises(RemoteProtocolError, match=r"\[MQTT-3.2.0-1\]"):
        session.next_event()
    assert session.state == SessionState.ERROR
    with pytest.raises(LocalProtocolError):
        session.connect()
    session.connection_lost()
    session.connect()
    assert session.state == SessionState.CONNECTING  # type: ignore[comparison-overlap]


def test_events_before_a_malformed_packet_are_delivered_first() -> None:
    broker = online()
    broker.session.receive_data(
        encode(Publish("a", b"1")) + b"\x36\x05\x00\x01a\x00\x01", broker.now
    )
    assert broker.session.next_event() == MessageReceived("a", b"1", 0, False)
    with pytest.raises(MalformedPacket):
        broker.session.next_event()


def test_inflight_window_holds_back_and_releases_in_order() -> None:
    broker = online(max_inflight=2)
    ids = [broker.session.publish("t", bytes([i]), qos=1) for i in range(5)]
    assert len(set(ids)) == 5
    first = broker.sent()
    assert [p.payload for p in first if isinstance(p, Publish)] == [b"\x00", b"\x01"]
    assert broker.session.queued == 3
    assert broker.send(PubAck(ids[0])) == [PublishAcknowledged(ids[0])]
    assert [p.payload for p in broker.sent() if isinstance(p, Publish)] == [b"\x02"]
    broker.send(PubAck(ids[1]), PubAck(ids[2]))
    assert [p.payload for p in broker.sent() if isinstance(p, Publish)] == [b"\x03", b"\x04"]
    assert broker.session.in_flight == (ids[3], ids[4])


def test_packet_ids_are_never_reused_while_in_use() -> None:
    broker = online(max_inflight=10)
    ids = [broker.session.publish("t", qos=1) for _ in range(0xFFFF)]
    assert sorted(ids) == list(range(1, 0x10000))
    with pytest.raises(LocalProtocolError, match="65,535 packet identifiers are in use"):
        broker.session.publish("t", qos=1)
    with pytest.raises(LocalProtocolError):
        broker.session.subscribe("a")
    broker.sent()
    broker.send(PubAck(ids[3]))
    assert broker.session.publish("t", qos=1) == ids[3]


def test_retransmission_after_reconnect_sets_dup_and_keeps_ids() -> None:
    broker = online()
    qos1 = broker.session.publish("a", b"1", qos=1)
    qos2 = broker.session.publish("b", b"2", qos=2)
    qos2_released = broker.session.publish("c", b"3", qos=2)
    sent = broker.sent()
    assert all(isinstance(p, Publish) and not p.dup for p in sent)
    broker.send(PubRec(qos2_released))
    assert broker.sent() == [PubRel(qos2_released)]

    broker.session.connection_lost()
    broker.session.connect()
    broker.sent()
    events = broker.send(ConnAck(True, 0))
    assert events == [Connected(True, 60)]
    assert broker.sent() == [
        Publish("a", b"1", 1, dup=True, packet_id=qos1),
        Publish("b", b"2", 2, dup=True, packet_id=qos2),
        PubRel(qos2_released),
    ]
    assert broker.send(PubAck(qos1), PubComp(qos2_released)) == [
        PublishAcknowledged(qos1),
        PublishAcknowledged(qos2_released),
    ]


def test_reconnect_without_session_completes_released_qos2_and_resends_the_rest() -> None:
    broker = online()
    pending = broker.session.publish("a", b"1", qos=1)
    released = broker.session.publish("b", b"2", qos=2)
    broker.sent()
    broker.send(PubRec(released))
    broker.sent()
    broker.session.connection_lost()
    broker.session.connect()
    broker.sent()
    events = broker.send(ConnAck(False, 0))
    assert PublishAcknowledged(released) in events
    assert broker.sent() == [Publish("a", b"1", 1, dup=True, packet_id=pending)]


def test_qos1_published_while_offline_goes_out_after_connack_and_qos0_is_refused() -> None:
    session = MqttSession(Connect("dev"))
    pid = session.publish("a", b"queued", qos=1)
    with pytest.raises(NotConnected):
        session.publish("a", b"now", qos=0)
    broker = Broker(session)
    session.connect()
    broker.sent()
    broker.send(ConnAck(False, 0))
    assert broker.sent() == [Publish("a", b"queued", 1, packet_id=pid)]


def test_incoming_qos1_and_qos2_are_acknowledged_and_qos2_delivered_once() -> None:
    broker = online()
    assert broker.send(Publish("in", b"1", 1, packet_id=5)) == [
        MessageReceived("in", b"1", 1, False)
    ]
    assert broker.sent() == [PubAck(5)]
    assert broker.send(Publish("in", b"2", 2, packet_id=6)) == [
        MessageReceived("in", b"2", 2, False)
    ]
    assert broker.sent() == [PubRec(6)]
    assert broker.send(Publish("in", b"2", 2, dup=True, packet_id=6)) == []
    assert broker.sent() == [PubRec(6)]
    broker.send(PubRel(6))
    assert broker.sent() == [PubComp(6)]


def test_subscribe_results_name_refused_filters() -> None:
    broker = online()
    pid = broker.session.subscribe("a/+", Subscription("b/#", 1), qos=1)
    assert broker.sent() == [Subscribe(pid, (Subscription("a/+", 1), Subscription("b/#", 1)))]
    [event] = broker.send(SubAck(pid, (1, 0x80)))
    assert isinstance(event, Subscribed)
    assert event.granted_qos == (1, None)
    assert event.refused == (("b/#", "Unspecified error"),)
    pid = broker.session.unsubscribe("a/+")
    broker.sent()
    assert broker.send(UnsubAck(pid)) == [Unsubscribed(pid, ("a/+",))]


def test_suback_with_the_wrong_number_of_codes_is_a_protocol_error() -> None:
    broker = online()
    pid = broker.session.subscribe("a", "b")
    broker.session.receive_data(encode(SubAck(pid, (0,))), 0)
    with pytest.raises(RemoteProtocolError, match=r"\[MQTT-3.8.4-5\]"):
        broker.session.next_event()


def test_subscribe_needs_a_connection_and_validates_filters() -> None:
    session = MqttSession(Connect("dev"))
    with pytest.raises(NotConnected):
        session.subscribe("a")
    broker = online()
    with pytest.raises(LocalProtocolError, match=r"\[MQTT-4.7.1-2\]"):
        broker.session.subscribe("a/#/b")
    assert broker.sent() == []


def test_keepalive_deadlines_with_a_fake_clock() -> None:
    broker = online(keepalive=60)  # CONNECT left at t=0
    session = broker.session
    assert session.next_ping_due(1.0) == 60.0
    broker.now = 30.0
    session.publish("t", b"x")
    broker.sent()
    assert session.next_ping_due(31.0) == 90.0  # Keep Alive after the last packet sent
    assert session.next_ping_due(95.0) == 95.0  # overdue: now
    broker.now = 95.0
    assert session.ping()
    assert not session.ping()  # one outstanding at a time
    assert broker.sent() == [PingReq()]
    assert session.next_ping_due(96.0) is None
    assert session.ping_grace == 30.0
    assert not session.is_link_dead(124.9)
    assert session.is_link_dead(125.0)  # no PINGRESP within the grace
    broker.now = 100.0
    assert broker.send(PingResp()) == [PongReceived(5.0)]
    assert session.next_ping_due(100.0) == 155.0
    assert not session.is_link_dead(184.9)
    assert session.is_link_dead(185.0)  # 1.5 x Keep Alive without sending: the broker gave up


def test_ping_grace_is_configurable_and_server_keep_alive_overrides() -> None:
    broker = online(
        V5,
        ConnAck(False, 0, Properties({PropertyId.SERVER_KEEP_ALIVE: 20})),
        keepalive=600,
        ping_grace=4.0,
    )
    session = broker.session
    assert session.keepalive == 20
    assert session.next_ping_due(0.0) == 20.0
    broker.now = 20.0
    session.ping()
    broker.sent()
    assert not session.is_link_dead(23.9)
    assert session.is_link_dead(24.0)


def test_keepalive_zero_never_pings_nor_declares_death() -> None:
    broker = online(keepalive=0)
    assert broker.session.next_ping_due(10_000.0) is None
    assert not broker.session.is_link_dead(10_000.0)


def test_mqtt5_receive_maximum_and_maximum_packet_size_from_connack() -> None:
    props = Properties({PropertyId.RECEIVE_MAXIMUM: 1, PropertyId.MAXIMUM_PACKET_SIZE: 64})
    broker = online(V5, ConnAck(False, 0, props), max_inflight=5)
    assert broker.session.window == 1
    broker.session.publish("t", b"a", qos=1)
    broker.session.publish("t", b"b", qos=1)
    assert len(broker.sent()) == 1
    with pytest.raises(LocalProtocolError, match=r"\[MQTT-3.2.2-15\]"):
        broker.session.publish("t", b"x" * 100, qos=1)


def test_mqtt5_puback_refusal_and_broker_disconnect_are_reported() -> None:
    broker = online(V5)
    pid = broker.session.publish("t", b"a", qos=1)
    assert pid is not None
    broker.sent()
    [ack] = broker.send(PubAck(pid, 0x87, Properties({PropertyId.REASON_STRING: "no ACL"})))
    assert isinstance(ack, PublishAcknowledged)
    assert not ack.succeeded
    assert (ack.reason, ack.reason_string) == ("Not authorized", "no ACL")
    [bye] = broker.send(
        Disconnect(0x8E, Properties({PropertyId.REASON_STRING: "another device logged in"}))
    )
    assert bye == BrokerDisconnected(0x8E, "another device logged in")
    assert bye.reason == "Session taken over"
    assert broker.session.state == SessionState.DISCONNECTED


def test_mqtt311_broker_disconnect_is_a_protocol_error() -> None:
    broker = online()
    broker.session.receive_data(encode(Disconnect()), 0)
    with pytest.raises(RemoteProtocolError, match="only a client may send"):
        broker.session.next_event()


def test_disconnect_sends_disconnect_and_keeps_inflight_for_later() -> None:
    broker = online()
    pid = broker.session.publish("a", b"1", qos=1)
    broker.sent()
    broker.session.disconnect()
    assert broker.sent() == [Disconnect()]
    assert broker.session.state == SessionState.DISCONNECTED
    assert broker.session.in_flight == (pid,)


# --- MQTT 5.0: topic aliases, Receive Maximum, Session Present -----------------------------

ALIASES_5 = ConnAck(False, 0, Properties({PropertyId.TOPIC_ALIAS_MAXIMUM: 2}))
TOPIC = "/a1X2bEnP82z/dev/user/update"


def _alias(packet: Packet) -> object:
    assert isinstance(packet, Publish)
    return packet.properties.get(PropertyId.TOPIC_ALIAS)


def _topics_and_aliases(packets: list[Packet]) -> list[tuple[str, object]]:
    return [(p.topic, _alias(p)) for p in packets if isinstance(p, Publish)]


def test_mqtt5_repeated_topics_go_out_as_aliases_within_the_brokers_maximum() -> None:
    broker = online(V5, ALIASES_5)
    for topic in (TOPIC, TOPIC, "b/second", "c/third", TOPIC, "c/third"):
        broker.session.publish(topic, b"v")
    assert _topics_and_aliases(broker.sent()) == [
        (TOPIC, 1),  # first use: the name and its alias
        ("", 1),  # then the alias alone
        ("b/second", 2),
        ("c/third", None),  # the broker allows 2 aliases: later topics go in full
        ("", 1),
        ("c/third", None),
    ]


def test_mqtt5_aliases_save_bytes_and_short_topics_keep_their_name() -> None:
    plain = online(V5, ALIASES_5, topic_aliases=False)
    aliased = online(V5, ALIASES_5)
    for broker in (plain, aliased):
        for _ in range(10):
            broker.session.publish(TOPIC, b"v", qos=1)
        broker.session.publish("abc", b"v")
    plain_bytes = plain.session.data_to_send(0)
    aliased_bytes = aliased.session.data_to_send(0)
    saved = 9 * len(TOPIC) - 3 * 10  # nine empty names; the alias property on all ten
    assert len(plain_bytes) - len(aliased_bytes) == saved
    decoder = PacketDecoder(V5)
    decoder.receive_data(aliased_bytes)
    assert _drain(decoder)[-1] == Publish("abc", b"v")  # 3 bytes: an alias would not pay


def test_no_aliases_in_3_1_1_without_a_broker_maximum_or_when_turned_off() -> None:
    for broker in (
        online(V3),
        online(V5),
        online(V5, ALIASES_5, topic_aliases=False),
    ):
        broker.session.publish(TOPIC, b"1")
        broker.session.publish(TOPIC, b"2")
        assert broker.sent() == [Publish(TOPIC, b"1"), Publish(TOPIC, b"2")]


def test_a_topic_alias_set_by_the_caller_is_refused_while_the_session_owns_them() -> None:
    props = Properties({PropertyId.TOPIC_ALIAS: 1})
    broker = online(V5, ALIASES_5)
    with pytest.raises(LocalProtocolError, match="assigns topic aliases itself"):
        broker.session.publish(TOPIC, b"v", properties=props)
    manual = online(V5, ALIASES_5, topic_aliases=False)
    manual.session.publish(TOPIC, b"v", properties=props)
    assert manual.sent() == [Publish(TOPIC, b"v", properties=props)]


def test_aliases_die_with_the_connection_and_a_dup_resend_carries_its_full_topic() -> None:
    connect = Connect(
        "dev",
        clean_session=False,
        protocol=V5,
        properties=Properties({PropertyId.SESSION_EXPIRY_INTERVAL: 3600}),
    )
    session = MqttSession(connect)
    broker = Broker(session)
    session.connect()
    broker.sent()
    broker.send(ALIASES_5)
    first = session.publish(TOPIC, b"1", qos=1)
    second = session.publish(TOPIC, b"2", qos=1)
    assert _topics_and_aliases(broker.sent()) == [(TOPIC, 1), ("", 1)]

    session.connection_lost()
    session.connect()
    assert broker.sent() == [connect]
    present = ConnAck(True, 0, Properties({PropertyId.TOPIC_ALIAS_MAXIMUM: 2}))
    assert broker.send(present) == [Connected(True, 60, present.properties)]
    # The broker kept the session, so the messages are still in flight and re-sent
    # with DUP, their ids, and their whole topic: the old connection's aliases are gone.
    assert session.in_flight == (first, second)
    assert broker.sent() == [
        Publish(TOPIC, b"1", 1, dup=True, packet_id=first),
        Publish(TOPIC, b"2", 1, dup=True, packet_id=second),
    ]
    session.publish(TOPIC, b"3")  # the new connection's first use of the topic
    assert _topics_and_aliases(broker.sent()) == [(TOPIC, 1)]
    assert broker.send(PubAck(first), PubAck(second)) == [
        PublishAcknowledged(first),
        PublishAcknowledged(second),
    ]
    # A broker that allows no aliases on the next connection gets none.
    session.connection_lost()
    session.connect()
    broker.sent()
    broker.send(ConnAck(True, 0, NO_PROPERTIES))
    session.publish(TOPIC, b"4")
    assert broker.sent() == [Publish(TOPIC, b"4")]


def test_mqtt5_receive_maximum_bounds_the_window_for_its_connection_only() -> None:
    tight = ConnAck(False, 0, Properties({PropertyId.RECEIVE_MAXIMUM: 2}))
    broker = online(V5, tight, max_inflight=10)
    ids = [broker.session.publish("t/x", bytes([i]), qos=1) for i in range(4)]
    assert [p.payload for p in broker.sent() if isinstance(p, Publish)] == [b"\x00", b"\x01"]
    assert broker.session.queued == 2
    assert ids[0] is not None
    broker.send(PubAck(ids[0]))
    assert [p.payload for p in broker.sent() if isinstance(p, Publish)] == [b"\x02"]
    broker.session.connection_lost()
    broker.session.connect()
    broker.sent()
    broker.send(ConnAck(True, 0))  # no Receive Maximum: 65,535, so max_inflight rules
    assert broker.session.window == 10
    assert [p.payload for p in broker.sent() if isinstance(p, Publish)] == [
        b"\x01",
        b"\x02",
        b"\x03",
    ]


def test_mqtt5_refused_qos2_publish_reports_its_reason_string() -> None:
    broker = online(V5)
    pid = broker.session.publish("t/x", b"a", qos=2)
    assert pid is not None
    broker.sent()
    refused = PubRec(pid, 0x97, Properties({PropertyId.REASON_STRING: "quota of the day used"}))
    [ack] = broker.send(refused)
    assert ack == PublishAcknowledged(pid, 0x97, "quota of the day used")
    assert (ack.succeeded, ack.reason) == (False, "Quota exceeded")
    assert broker.session.in_flight == ()
