"""The codec's fast paths agree with its general paths and with an independent encoder.

``encode`` and ``decode`` take the fast paths of ``atbridge.mqtt.fast`` for the common
MQTT 3.1.1 PUBLISH (no properties, Remaining Length under 16 KiB, every field valid),
which keep the topic names they validated in two bounded caches, and for the common
CONNECT (one pack and one join). These tests hold the fast paths to the general ones
(``encode_general`` / ``decode_general``, and the session's stream decoder) and to a
plain reference encoder written from the spec, across the one- and two-byte Remaining
Length boundaries (127/128, 16383/16384), with the caches cold, warm, overflowing and
disabled, and check that errors are the same either way and that the caches stay
bounded and never hold an invalid name.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from atbridge.at_mqtt import (
    NO_PROPERTIES,
    Connect,
    Packet,
    PacketDecoder,
    Properties,
    PropertyId,
    ProtocolVersion,
    PubAck,
    Publish,
    Will,
    decode,
    encode,
)
from atbridge.errors import LocalProtocolError, MalformedPacket
from atbridge.mqtt import fast
from atbridge.mqtt.codec import decode_general, encode_general
from atbridge.mqtt.properties import encode_properties
from atbridge.mqtt.wire import PacketType, encode_varint

V3 = ProtocolVersion.MQTT_3_1_1
V5 = ProtocolVersion.MQTT_5_0
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Remaining Lengths on both sides of the one/two and two/three byte boundaries.
BOUNDARY_LENGTHS = [2, 5, 126, 127, 128, 129, 300, 16382, 16383, 16384, 16385, 20000]


@pytest.fixture(autouse=True)
def _cold_caches() -> Iterator[None]:
    fast.cache_clear()
    yield
    fast.cache_clear()


def _cached() -> tuple[int, int]:
    """How many topic names the encode and the decode cache hold."""
    return fast.cached()


# --- a reference encoder, written from the spec without the codec's shortcuts -------------


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def _frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


def reference_publish(packet: Publish) -> bytes:
    """MQTT 3.1.1 §3.3 for a valid PUBLISH without properties."""
    first = 0x30 | (packet.dup << 3) | (packet.qos << 1) | packet.retain
    body = _utf8(packet.topic)
    if packet.qos:
        assert packet.packet_id is not None
        body += struct.pack("!H", packet.packet_id)
    return _frame(first, body + packet.payload)


def reference_connect(packet: Connect) -> bytes:
    """MQTT 3.1.1 §3.1 / 5.0 §3.1 for a valid CONNECT."""
    flags = 0x02 if packet.clean_session else 0
    payload = _utf8(packet.client_id)
    will = packet.will
    v5 = packet.protocol == V5
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if v5:
            payload += encode_properties(will.properties, "WILL")
        payload += _utf8(will.topic) + struct.pack("!H", len(will.payload)) + will.payload
    if packet.username is not None:
        flags |= 0x80
        payload += _utf8(packet.username)
    if packet.password is not None:
        flags |= 0x40
        payload += struct.pack("!H", len(packet.password)) + packet.password
    variable = (
        b"\x00\x04MQTT" + bytes([packet.protocol, flags]) + struct.pack("!H", packet.keepalive)
    )
    if v5:
        variable += encode_properties(packet.properties, PacketType.CONNECT)
    return _frame(0x10, variable + payload)


# --- strategies ----------------------------------------------------------------------

chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
level = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00/+#"),
    min_size=1,
    max_size=8,
)
topic_names = st.one_of(
    st.lists(level, min_size=1, max_size=4).map("/".join),
    st.just("/a1X2bEnP82z/sensor-north-0042/user/update"),
    st.integers(200, 400).map(lambda n: "t" * n),  # longer than the cache keeps
)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    """A valid 3.1.1 PUBLISH whose Remaining Length is often right at a boundary."""
    topic = draw(topic_names)
    qos = draw(st.integers(0, 2))
    overhead = 2 + len(topic.encode()) + (2 if qos else 0)
    target = draw(st.sampled_from(BOUNDARY_LENGTHS) | st.integers(0, 17000))
    assume(target >= overhead)
    return Publish(
        topic,
        draw(st.binary(min_size=target - overhead, max_size=target - overhead)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) and qos > 0,
        draw(st.integers(1, 0xFFFF)) if qos else None,
    )


def _general_decode(frame: bytes, protocol: ProtocolVersion = V3) -> object:
    """The packet, or the error, the reference decoder alone makes of ``frame``."""
    return _outcome(lambda: decode_general(frame, protocol))


def _stream_decode(frame: bytes) -> object:
    """The packet, or the error, the session's stream decoder makes of ``frame`` fed in
    two chunks."""

    def run() -> object:
        decoder = PacketDecoder()
        decoder.receive_data(frame[:3])
        decoder.receive_data(frame[3:])
        packet = decoder.next_packet()
        if packet is None or decoder.buffered:
            return ("incomplete", decoder.buffered)
        return packet

    return _outcome(run)


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except (LocalProtocolError, MalformedPacket) as exc:
        return (type(exc), str(exc))


# --- PUBLISH -------------------------------------------------------------------------


@SETTINGS
@given(publishes())
def test_publish_fast_path_matches_general_path_and_reference(packet: Publish) -> None:
    general = encode_general(packet, V3)
    assert general == reference_publish(packet)
    for _ in range(2):  # cold cache, then warm
        frame = encode(packet)
        assert frame == general
        decoded = decode(frame)
        assert decoded == packet
        assert type(decoded) is Publish
        assert _general_decode(frame) == packet
        assert _stream_decode(frame) == packet


@SETTINGS
@given(publishes())
def test_publish_without_the_cache_gives_the_same_bytes(
    packet: Publish,
) -> None:
    frame = encode(packet)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast, "CACHED_TOPIC_LENGTH", -1)
        fast.cache_clear()
        assert encode(packet) == frame
        assert decode(frame) == packet
        assert _cached() == (0, 0)


@pytest.mark.parametrize("length", [n for n in BOUNDARY_LENGTHS if n >= 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_remaining_length_boundaries(length: int, qos: int) -> None:
    topic = "a"
    payload = b"\xa5" * (length - 3 - (2 if qos else 0))
    packet = Publish(topic, payload, qos, retain=True, packet_id=0x0102 if qos else None)
    frame = encode(packet)
    header = bytes([frame[0]]) + encode_varint(length)
    assert frame[: len(header)] == header
    assert len(frame) == len(header) + length
    assert frame == reference_publish(packet)
    assert decode(frame) == packet


def test_mqtt5_and_properties_take_the_general_path_and_still_agree() -> None:
    props = Properties({PropertyId.CONTENT_TYPE: "text/plain"})
    packet = Publish("a/b", b"x" * 200, 1, packet_id=7, properties=props)
    encode(Publish("a/b"))  # the topic is cached
    frame = encode(packet, V5)
    assert frame == encode_general(packet, V5)
    assert decode(frame, V5) == packet
    plain = Publish("a/b", b"x" * 200, 1, packet_id=7)
    assert decode(encode(plain, V5), V5) == plain
    with pytest.raises(LocalProtocolError, match=r"only in MQTT 5\.0"):
        encode(packet, V3)


def _by_reference(patch: pytest.MonkeyPatch) -> list[str]:
    """Record each packet that ``encode`` / ``decode`` hand to the reference codec."""
    calls: list[str] = []

    def encoder(packet: Packet, protocol: ProtocolVersion) -> bytes:
        calls.append("encode")
        return encode_general(packet, protocol)

    def decoder(data: bytes, protocol: ProtocolVersion) -> Packet:
        calls.append("decode")
        return decode_general(data, protocol)

    patch.setattr(fast, "_reference_encode", encoder)
    patch.setattr(fast, "_reference_decode", decoder)
    return calls


def test_the_fast_paths_take_only_the_3_1_1_member_and_the_reference_agrees() -> None:
    """The fast paths compare the protocol by identity: a plain level number (4 or 5)
    is left to the reference codec, which answers the same as for the enum member."""
    plain = Publish("a/b", b"payload", 1, packet_id=9)
    frame = encode(plain)
    connect = Connect("client", username="u", password=b"p")
    with pytest.MonkeyPatch.context() as patch:
        calls = _by_reference(patch)
        assert encode(plain) == frame
        assert decode(frame) == plain
        assert encode(connect) == encode_general(connect)
        assert decode(b"\x40\x02\x12\x34") == PubAck(0x1234)
        assert calls == []  # all four taken by the fast paths
        assert encode(plain, 4) == frame  # type: ignore[arg-type]
        assert decode(frame, 4) == plain  # type: ignore[arg-type]
        assert decode(bytearray(frame)) == plain  # type: ignore[arg-type]
        assert calls == ["encode", "decode", "decode"]
        calls.clear()
        assert decode(encode(plain, V5), V5) == plain
        assert calls == ["encode", "decode"]


def test_frames_cut_short_inside_the_topic_never_hit_the_cache() -> None:
    """The decode cache is keyed by a slice of the frame, which the frame's end can
    cut short; such a key is refused and never kept, with the whole name cached."""
    packet = Publish("abcdef", b"", 0)
    frame = encode(packet)
    assert decode(frame) == packet  # "abcdef" is cached now
    held = _cached()
    for cut in range(1, len(frame)):
        short = bytes([frame[0], cut - 2 if cut >= 2 else 0]) + frame[2:cut]
        for data in (frame[:cut], short):
            with pytest.raises(MalformedPacket) as general:
                decode_general(data, V3)
            with pytest.raises(MalformedPacket) as quick:
                decode(data)
            assert str(quick.value) == str(general.value)
    assert _cached() == held


@pytest.mark.parametrize("protocol", [V3, V5])
def test_the_puback_fast_path_agrees_with_the_reference_on_every_four_byte_frame(
    protocol: ProtocolVersion,
) -> None:
    """Every first byte, Remaining Length 2 and packet ids at the edges: the fast path
    returns what the reference returns, or None where the reference refuses the frame."""
    for first in range(0x100):
        for packet_id in (0, 1, 0x1234, 0xFFFF):
            frame = bytes([first, 2]) + packet_id.to_bytes(2, "big")
            quick = fast.decode_puback(frame)
            try:
                reference = decode_general(frame, protocol)
            except MalformedPacket:
                assert quick is None
                continue
            assert quick is None or quick == reference
            assert decode(frame, protocol) == reference
    assert fast.decode_puback(b"\x40\x02\x12\x34") == PubAck(0x1234)
    assert fast.decode_puback(bytearray(b"\x40\x02\x12\x34")) is None  # type: ignore[arg-type]
    assert fast.decode_puback(b"\x40\x03\x12\x34\x00") is None


INVALID_PUBLISHES = [
    Publish("a", qos=3, packet_id=1),
    Publish("a", qos=-1),
    Publish("a", qos=1),
    Publish("a", qos=1, packet_id=0),
    Publish("a", qos=2, packet_id=0x10000),
    Publish("a", packet_id=3),
    Publish("a", dup=True),
    Publish("a", b"x" * 20000, dup=True),
    Publish("a/+"),
    Publish("#"),
    Publish(""),
    Publish("a\x00b"),
    Publish("a\ud800"),
    Publish("é" * 40000),
    Publish("a", properties=Properties({PropertyId.CONTENT_TYPE: "x"})),
]


@pytest.mark.parametrize("packet", INVALID_PUBLISHES, ids=repr)
def test_invalid_publish_raises_the_general_paths_error_with_cold_and_warm_cache(
    packet: Publish,
) -> None:
    with pytest.raises(LocalProtocolError) as general:
        encode_general(packet, V3)
    for _ in range(2):
        with pytest.raises(LocalProtocolError) as fast:
            encode(packet)
        assert str(fast.value) == str(general.value)
        encode(Publish("a"))  # warm the cache with a valid name
    assert _cached()[0] == 1  # "a" alone: an invalid name is never kept


def _frames_near(packet: Publish) -> list[bytes]:
    frame = encode(packet)
    out = [frame, frame[:-1], frame + b"\x00"]
    for index in range(min(len(frame), 12)):
        for value in (0x00, 0x01, 0x23, 0x2B, 0x7F, 0x80, 0xC3, 0xED, 0xFF):
            out.append(frame[:index] + bytes([value]) + frame[index + 1 :])
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["a/b", "/a1X2bEnP82z/sensor-north-0042/user/update", "é/x"]),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([0, 1, 100, 300]),
)
def test_corrupted_publish_frames_decode_like_the_general_path(
    topic: str, qos: int, size: int
) -> None:
    packet = Publish(topic, b"\x00" * size, qos, packet_id=0x0100 if qos else None)
    for warm in (False, True):
        if warm:
            decode(encode(packet))
        for frame in _frames_near(packet):
            general = _general_decode(frame)
            assert _outcome(partial(decode, frame)) == general
            stream = _stream_decode(frame)
            if not (isinstance(stream, tuple) and stream[0] == "incomplete"):
                # A frame the stream sees whole (not cut short, nothing after it).
                assert stream == general


@pytest.mark.parametrize(
    ("wire", "statement"),
    [
        ("36 05 00 01 61 00 01", "[MQTT-3.3.1-4]"),
        ("38 03 00 01 61", "[MQTT-3.3.1-2]"),
        ("32 05 00 01 61 00 00", "[MQTT-2.3.1-1]"),
        ("32 04 00 01 61 00", "too short for a packet identifier"),
        ("30 05 00 03 61 2f 2b", "[MQTT-3.3.2-2]"),
        ("30 04 00 02 61 00", "[MQTT-1.5.3-2]"),
        ("30 04 00 02 c3 28", "[MQTT-1.5.3-1]"),
        ("30 05 00 03 ed a0 80", "[MQTT-1.5.3-1]"),
        ("30 02 00 00", "[MQTT-4.7.3-1]"),
        ("30 03 00 05 61", "5 bytes announced"),
        ("30 01 00", "length prefix runs past"),
    ],
)
def test_malformed_publish_errors_with_a_warm_cache(wire: str, statement: str) -> None:
    for topic in ("a", "a/+", "a\x00", "a/b"):
        with contextlib.suppress(LocalProtocolError):
            decode(encode(Publish(topic)))
    frame = bytes.fromhex(wire)
    with pytest.raises(MalformedPacket) as info:
        decode(frame)
    assert statement in str(info.value)
    assert _general_decode(frame) == (type(info.value), str(info.value))


def test_caches_hold_only_valid_names_and_stay_bounded() -> None:
    for topic in ("a/+", "#", "", "a\x00", "a\ud800"):
        with pytest.raises(LocalProtocolError):
            encode(Publish(topic))
    for raw in (b"a/+", b"#", b"a\x00", b"\xc3\x28", b"\xed\xa0\x80"):
        with pytest.raises(MalformedPacket):
            decode(_frame(0x30, struct.pack("!H", len(raw)) + raw))
    assert _cached() == (0, 0)

    long_topic = "x" * (fast.CACHED_TOPIC_LENGTH + 1)
    assert decode(encode(Publish(long_topic))) == Publish(long_topic)
    assert _cached() == (0, 0)

    for index in range(3 * fast.TOPIC_CACHE_SIZE):
        packet = Publish(f"t/{index}", b"p")
        assert decode(encode(packet)) == packet
        assert _cached() <= (fast.TOPIC_CACHE_SIZE, fast.TOPIC_CACHE_SIZE)
    assert _cached() == (fast.TOPIC_CACHE_SIZE, fast.TOPIC_CACHE_SIZE)
    # Names evicted long ago (cold again) and the most recent ones (warm) alike.
    for index in (0, 1, 3 * fast.TOPIC_CACHE_SIZE - 2, 3 * fast.TOPIC_CACHE_SIZE - 1):
        packet = Publish(f"t/{index}", b"p")
        assert encode(packet) == reference_publish(packet) == encode_general(packet)
        assert decode(reference_publish(packet)) == packet


@pytest.mark.parametrize("count", [256, 257, 300])
def test_more_than_256_topics_stay_cached_and_agree_with_the_general_path(count: int) -> None:
    # The old caches emptied themselves at the 257th name; an application cycling
    # through a few hundred topics kept missing. Every name now stays, and agrees.
    topics = [f"/a1X2bEnP82z/dev-{index:04d}/user/update" for index in range(count)]
    checked = {"encode": 0, "decode": 0}
    new_prefix, new_name = fast._new_prefix, fast._new_name

    def counted_prefix(topic: str) -> bytes | None:
        checked["encode"] += 1
        return new_prefix(topic)

    def counted_name(prefixed: bytes) -> str | None:
        checked["decode"] += 1
        return new_name(prefixed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast, "_new_prefix", counted_prefix)
        patch.setattr(fast, "_new_name", counted_name)
        for _ in range(2):
            for topic in topics:
                packet = Publish(topic, b"v", 1, packet_id=7)
                frame = encode(packet)
                assert frame == encode_general(packet) == reference_publish(packet)
                assert decode(frame) == packet == _general_decode(frame)
    # Each name was checked in full once each way (the first pass); the second pass hit.
    assert checked == {"encode": count, "decode": count}


def test_publish_is_an_immutable_value_like_the_dataclass_packets() -> None:
    props = Properties({PropertyId.CONTENT_TYPE: "t"})
    packet = Publish("a", b"x", 1, True, True, 5, props)
    assert packet.replace(qos=2) == Publish("a", b"x", 2, True, True, 5, props)
    assert packet != packet.replace(dup=False)
    assert packet != ("a", b"x", 1, True, True, 5, props)
    assert {packet, Publish("a", b"x", 1, True, True, 5, props)} == {packet}
    assert repr(Publish("a")) == (
        "Publish(topic='a', payload=b'', qos=0, retain=False, dup=False, packet_id=None, "
        "properties=Properties())"
    )
    for name in Publish.__match_args__:
        with pytest.raises(AttributeError):
            setattr(packet, name, None)
    with pytest.raises(AttributeError):
        packet.extra = 1  # type: ignore[attr-defined]
    match decode(encode(Publish("a/b", b"v", 1, packet_id=3))):
        case Publish("a/b", b"v", 1, packet_id=3):
            pass
        case other:
            pytest.fail(f"no match: {other!r}")


def test_decoded_publish_is_a_real_frozen_publish() -> None:
    packet = decode(encode(Publish("a/b", b"x", 1, packet_id=9)))
    assert type(packet) is Publish
    assert packet == Publish("a/b", b"x", 1, packet_id=9)
    assert hash(packet) == hash(Publish("a/b", b"x", 1, packet_id=9))
    with pytest.raises(AttributeError):
        packet.qos = 2  # type: ignore[misc]


# --- CONNECT -------------------------------------------------------------------------


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    protocol = draw(st.sampled_from([V3, V5]))
    v5 = protocol == V5
    # Client ids long enough to push the Remaining Length across 127/128 and 16383/16384.
    client_id = draw(
        st.text(chars, max_size=8)
        | st.integers(100, 130).map(lambda n: "c" * n)
        | st.integers(16350, 16390).map(lambda n: "c" * n)
    )
    username = draw(st.none() | st.text(chars, max_size=40))
    password = draw(st.none() | st.binary(max_size=300))
    if not v5 and username is None:
        password = None
    will = draw(
        st.none()
        | st.builds(
            Will,
            st.lists(level, min_size=1, max_size=3).map("/".join),
            st.binary(max_size=20),
            st.integers(0, 2),
            st.booleans(),
        )
    )
    props = NO_PROPERTIES
    if v5 and draw(st.booleans()):
        props = Properties({PropertyId.SESSION_EXPIRY_INTERVAL: draw(st.integers(0, 100))})
    clean = draw(st.booleans()) or (not client_id and not v5)
    return Connect(
        client_id,
        clean,
        draw(st.integers(0, 0xFFFF)),
        username,
        password,
        will,
        protocol,
        props,
    )


@settings(max_examples=300, deadline=None)
@given(connects())
def test_connect_matches_the_reference_encoder_and_round_trips(packet: Connect) -> None:
    frame = encode(packet)
    assert frame == reference_connect(packet)
    assert decode(frame, packet.protocol) == packet


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (
            Connect("c", keepalive=65536),
            "(MQTT 3.1.1 §3.1.2.10) Keep Alive must be 0..65535 seconds, got 65536",
        ),
        (
            Connect("c", keepalive=-1),
            "(MQTT 3.1.1 §3.1.2.10) Keep Alive must be 0..65535 seconds, got -1",
        ),
        (
            Connect("c", password=b"p"),
            "[MQTT-3.1.2-22] MQTT 3.1.1 does not allow a password without a user name",
        ),
        (
            Connect("", clean_session=False),
            "[MQTT-3.1.3-7] an empty client id requires clean session (clean_session=True)",
        ),
        (
            Connect("c", will=Will("w", qos=3)),
            "[MQTT-3.1.2-14] Will QoS must be 0, 1 or 2, got 3",
        ),
        (Connect("c\x00"), "[MQTT-1.5.3-2] client id must not contain U+0000 (null)"),
        (
            Connect("c\udc00"),
            "[MQTT-1.5.3-1] client id contains a surrogate code point (U+D800..U+DFFF), "
            "which is not valid UTF-8",
        ),
        (
            Connect("c" * 65536),
            "[MQTT-1.5.3] client id is 65536 bytes of UTF-8; an MQTT string is at most 65,535",
        ),
        (
            Connect("c", username="u\x00", password=b"p"),
            "[MQTT-1.5.3-2] user name must not contain U+0000 (null)",
        ),
        (
            Connect("c", username="\ud800"),
            "[MQTT-1.5.3-1] user name contains a surrogate code point (U+D800..U+DFFF), "
            "which is not valid UTF-8",
        ),
        (
            Connect("c", username="u", password=b"p" * 65536),
            "[MQTT-1.5.6] password is 65536 bytes; binary data is at most 65,535 bytes",
        ),
        (
            Connect("c", will=Will("w/+")),
            "[MQTT-3.3.2-2] the Will topic must not contain wildcards (+ or #): 'w/+'",
        ),
        (
            Connect("c", properties=Properties({PropertyId.RECEIVE_MAXIMUM: 5})),
            "(MQTT 3.1.1) properties exist only in MQTT 5.0; connect with protocol MQTT_5_0",
        ),
    ],
)
def test_connect_errors_keep_their_messages(packet: Connect, message: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode(packet)
    assert info.value.message == message


def test_connect_remaining_length_past_two_bytes() -> None:
    packet = Connect("c" * 20000, username="u", password=b"p")
    frame = encode(packet)
    assert frame[1:4] == encode_varint(len(frame) - 4)
    assert frame == reference_connect(packet)
    assert decode(frame) == packet


def test_wrongly_typed_payload_and_password_raise_a_type_error_that_names_them() -> None:
    with pytest.raises(TypeError) as general:
        encode_general(Publish("a", "text", 1, packet_id=1), V3)  # type: ignore[arg-type]
    assert str(general.value) == "a PUBLISH payload must be bytes, not str"
    for qos in (0, 1):
        for _ in range(2):  # cold cache, then warm
            with pytest.raises(TypeError) as fast_error:
                encode(Publish("a", "text", qos, packet_id=qos or None))  # type: ignore[arg-type]
            assert str(fast_error.value) == str(general.value)
    with pytest.raises(TypeError, match=r"^password must be bytes, not str$"):
        encode(Connect("c", username="u", password="pw"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^password must be bytes, not str$"):
        encode(Connect("c", username="u", password="pw", will=Will("w")))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Will message must be bytes, not str$"):
        encode(Connect("c", will=Will("w", "bye")))  # type: ignore[arg-type]


class _Concatenates:
    """Sized, and answers ``bytes + self`` itself: a fast path that framed with ``+``
    without checking the type would send b"WRONG"."""

    def __len__(self) -> int:
        return 3

    def __radd__(self, other: bytes) -> bytes:
        return b"WRONG"


@pytest.mark.parametrize(
    "payload",
    [bytearray(b"ab"), memoryview(b"ab"), b"ab", _Concatenates(), 5],
    ids=["bytearray", "memoryview", "bytes", "radd", "int"],
)
@pytest.mark.parametrize("qos", [0, 1])
def test_payloads_of_every_type_encode_as_the_reference_does(payload: object, qos: int) -> None:
    """Only a ``bytes`` payload is framed by the fast path; the reference takes any
    bytes-like one, and refuses the rest with its own TypeError."""
    packet = Publish("a/b", payload, qos, packet_id=qos or None)  # type: ignore[arg-type]
    try:
        general = encode_general(packet, V3)
    except TypeError as error:
        for _ in range(2):  # cold cache, then warm
            with pytest.raises(TypeError) as quick:
                encode(packet)
            assert str(quick.value) == str(error)
        return
    for _ in range(2):
        assert encode(packet) == general
    assert decode(general) == Publish("a/b", b"ab", qos, packet_id=qos or None)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_every_topic_length_agrees_cold_and_warm(qos: int) -> None:
    """Everything before the payload is one pack with a Struct made per topic length:
    every length up to past the cached ones, one- and many-byte characters, each
    right after a cold start and again warm, agrees with the spec reference."""
    for char in ("a", "é", "😀"):
        for count in [*range(1, 40), 63, 64, 65, 255, 256, 257, 1000]:
            fast.cache_clear()
            for payload in (b"", b"p" * 200):
                packet = Publish(char * count, payload, qos, True, qos > 0, 0xFFFF if qos else None)
                for _ in range(2):
                    frame = encode(packet)
                    assert frame == reference_publish(packet)
                    assert decode(frame) == packet


@pytest.mark.parametrize("packet_id", [1.5, "7", True, 0, 0x10000, None])
def test_a_packet_id_that_is_not_a_16_bit_integer_is_refused_in_words(packet_id: object) -> None:
    # A float or a str once escaped as a raw struct.error / TypeError, and True was sent
    # as packet id 1.
    for packet in (
        Publish("t", b"x", qos=1, packet_id=packet_id),  # type: ignore[arg-type]
        PubAck(packet_id=packet_id),  # type: ignore[arg-type]
    ):
        with pytest.raises(LocalProtocolError, match=r"MQTT-2\.3\.1-1"):
            encode(packet)
