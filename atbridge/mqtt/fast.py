"""Fast paths for the PUBLISH and CONNECT that every message and connection costs.

Theory of operation
-------------------
``bench/mqtt_codec.py`` holds the codec to at least twice paho-mqtt's speed. The
reference codec (:mod:`atbridge.mqtt.codec`) is written to be read against the spec;
this module does the common cases in fewer steps, and nothing else:

- an MQTT 3.1.1 PUBLISH without properties, whose Remaining Length fits in two bytes
  (under 16 KiB), encoded with one pack for the fixed header and one join for the
  frame, so the payload is copied once;
- the same PUBLISH decoded from a whole frame, read in place, its
  :class:`~atbridge.mqtt.packets.Publish` filled in without a call to ``__init__``;
- an MQTT 3.1.1 CONNECT without Will or properties, its fixed header, variable header
  and the client id's length in one pack;
- the four-byte PUBACK every QoS 1 message brings back (Remaining Length 2: reason
  Success and no properties in MQTT 5.0 too), read without the reference's table walk.

The protocol is compared by identity with the 3.1.1 member (an ``IntEnum`` ``==`` costs
a call); any other value goes to the reference codec. Every function here returns
``None`` for anything else, and for anything it is not
sure is valid: the caller then runs the reference codec, which checks every rule in
order and raises the exact error. So a fast path never raises for a packet the spec
forbids; it only ever returns what the reference would return
(``tests/test_mqtt_codec_fast_paths.py`` checks that, with the caches cold and warm).

Topic names are validated once and remembered, in two bounded dictionaries: str ->
length-prefixed UTF-8 for encoding, length-prefixed UTF-8 -> str for decoding. A hit
is one ``dict.get`` inline in the fast path (a :func:`functools.lru_cache` hit costs
three times as much: a call and the reordering of its list). A miss runs the
reference checks themselves (:func:`_topic_prefix`, :func:`_topic_text`; they raise
for an invalid name and nothing is kept then), so a hit skips no rule and the caches
only ever hold valid names. Each keeps at most :data:`TOPIC_CACHE_SIZE` names of at
most :data:`CACHED_TOPIC_LENGTH` characters (bytes, for decoding; longer names are
checked every time); a new name arriving at a full cache drops the oldest one kept
(first in, first out), so there is no cliff: an application with more topics than
that gets every one right, and a name that was dropped is checked again once, on its
next use, and kept again.

The decode cache is keyed by the topic's bytes *with* their two-byte length, sliced
straight from the frame: the key is found without reading the length first, and the
same key is the encode cache's value, so one name costs one slice each way.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from atbridge.errors import LocalProtocolError, MalformedPacket
from atbridge.mqtt.packets import Connect, PubAck, Publish, topic_name_problem
from atbridge.mqtt.properties import NO_PROPERTIES
from atbridge.mqtt.wire import ProtocolVersion, decode_utf8, encode_string, malformed

#: How many topic names each cache keeps (the most recently used).
TOPIC_CACHE_SIZE = 1024
#: Longest topic name the caches keep: characters when encoding, bytes when decoding.
CACHED_TOPIC_LENGTH = 256

_V3 = ProtocolVersion.MQTT_3_1_1
_new_object = object.__new__
_pack_u16 = struct.Struct("!H").pack
#: ``_pack_u16(n)`` for n < 256, the length prefix of most fields, without a call.
_U16 = tuple(_pack_u16(n) for n in range(0x100))
_pack_b_b = struct.Struct("!BB").pack
_pack_b_b_b = struct.Struct("!BBB").pack
# CONNECT's fixed header (one- or two-byte Remaining Length), its variable header
# (protocol name, level, flags, Keep Alive) and the client id's length, in one pack.
_pack_connect_head_1 = struct.Struct("!BB6sBBH").pack
_pack_connect_head_2 = struct.Struct("!BBB6sBBH").pack


def _topic_prefix(topic: str) -> bytes:
    """The length-prefixed UTF-8 of a valid topic name; raises LocalProtocolError."""
    problem = topic_name_problem(topic)
    if problem:
        raise LocalProtocolError(problem)
    return encode_string(topic, "topic name")


def _topic_text(raw: bytes) -> str:
    """The text of a received topic name that is valid; raises MalformedPacket."""
    topic = decode_utf8(raw, "PUBLISH topic")
    problem = topic_name_problem(topic)
    if problem:
        malformed(problem)
    return topic


_K = TypeVar("_K")
_V = TypeVar("_V")


class _TopicCache(dict[_K, _V]):
    """A bounded dict of validated names; ``misses`` counts the names checked in full."""

    __slots__ = ("misses",)

    def __init__(self) -> None:
        super().__init__()
        self.misses = 0

    def keep(self, key: _K, value: _V) -> None:
        """Remember ``value`` for ``key``, dropping the oldest name when full."""
        self.misses += 1
        if len(self) >= TOPIC_CACHE_SIZE:
            del self[next(iter(self))]
        self[key] = value


#: topic name (str) -> its length-prefixed UTF-8.
_prefixes: _TopicCache[str, bytes] = _TopicCache()
#: length-prefixed UTF-8 of a topic name -> the name (str).
_names: _TopicCache[bytes, str] = _TopicCache()


def _checked_prefix(topic: str) -> bytes:
    """``_topic_prefix(topic)``, kept in the encode cache when short enough."""
    prefix = _topic_prefix(topic)
    if len(topic) <= CACHED_TOPIC_LENGTH:
        _prefixes.keep(topic, prefix)
    return prefix


def _checked_name(prefixed: bytes) -> str:
    """``_topic_text`` of the name after its two length bytes, kept when short enough."""
    topic = _topic_text(prefixed[2:])
    if len(prefixed) - 2 <= CACHED_TOPIC_LENGTH:
        _names.keep(prefixed, topic)
    return topic


def cache_clear() -> None:
    """Empty both topic caches (tests use this to start cold)."""
    _prefixes.clear()
    _names.clear()
    _prefixes.misses = _names.misses = 0


def cached() -> tuple[int, int]:
    """How many names the encode and the decode cache hold."""
    return len(_prefixes), len(_names)


def encode_publish(packet: Publish, protocol: ProtocolVersion) -> bytes | None:
    """The frame of a common MQTT 3.1.1 PUBLISH, or ``None`` (see the module comment)."""
    # Publish's slots are read directly: its properties would cost a call each.
    if protocol is not _V3 or packet._properties is not NO_PROPERTIES:
        return None
    topic = packet._topic
    prefix = _prefixes.get(topic) if type(topic) is str else None
    if prefix is None:
        try:
            prefix = _checked_prefix(topic)
        except LocalProtocolError:
            return None
    qos = packet._qos
    payload = packet._payload
    try:
        if qos == 0:
            if packet._packet_id is not None or packet._dup:
                return None
            size = len(prefix) + len(payload)
            first = 0x31 if packet._retain else 0x30
            if size < 0x80:
                return b"".join((_pack_b_b(first, size), prefix, payload))
            if size < 0x4000:
                head = _pack_b_b_b(first, (size & 0x7F) | 0x80, size >> 7)
                return b"".join((head, prefix, payload))
        elif qos == 1 or qos == 2:
            packet_id = packet._packet_id
            if packet_id is None or not 1 <= packet_id <= 0xFFFF:
                return None
            size = len(prefix) + 2 + len(payload)
            first = 0x30 | (qos << 1) | (0x08 if packet._dup else 0) | (1 if packet._retain else 0)
            if size < 0x80:
                return b"".join((_pack_b_b(first, size), prefix, _pack_u16(packet_id), payload))
            if size < 0x4000:
                head = _pack_b_b_b(first, (size & 0x7F) | 0x80, size >> 7)
                return b"".join((head, prefix, _pack_u16(packet_id), payload))
    except TypeError:
        pass  # a payload that is not bytes: the reference codec says so
    return None


def _publish_flags(first: int) -> tuple[int, bool, bool] | None:
    """(QoS, retain, DUP) of a PUBLISH's first byte; ``None`` when it is no valid PUBLISH
    (another type, QoS 3, or DUP on QoS 0 [MQTT-3.3.1-2])."""
    qos = (first >> 1) & 0x03
    if first >> 4 != 3 or qos == 3 or (first & 0x08 and not qos):
        return None
    return qos, first & 0x01 != 0, first & 0x08 != 0


#: :func:`_publish_flags` of every first byte, read with one index per frame.
_PUBLISH_FLAGS = tuple(_publish_flags(first) for first in range(0x100))


def decode_publish(data: bytes, protocol: ProtocolVersion) -> Publish | None:
    """The common MQTT 3.1.1 PUBLISH that is exactly the frame ``data``, or ``None``.

    Takes a ``bytes`` frame under 16 KiB, fixed header included, and reads it in
    place. The stream decoder hands over each whole frame the same way.
    """
    size = len(data)
    if protocol is not _V3 or type(data) is not bytes or size < 4:
        return None
    flags = _PUBLISH_FLAGS[data[0]]
    if flags is None:
        return None
    qos, retain, dup = flags
    length = data[1]
    if length & 0x80:
        if data[2] & 0x80:
            return None
        start = 3
        length = (length & 0x7F) | (data[2] << 7)
    else:
        start = 2
    if size != start + length or length < 2:
        return None
    pos = start + 2 + ((data[start] << 8) | data[start + 1])
    if pos > size:
        return None
    prefixed = data[start:pos]
    topic = _names.get(prefixed)
    if topic is None:
        try:
            topic = _checked_name(prefixed)
        except MalformedPacket:
            return None
    if qos:
        if pos + 2 > size:
            return None
        packet_id: int | None = (data[pos] << 8) | data[pos + 1]
        if not packet_id:
            return None
        pos += 2
    else:
        packet_id = None
    # A real Publish whose slots are filled here, without a call (see its docstring).
    message = _new_object(Publish)
    message._topic = topic
    message._payload = data[pos:]
    message._qos = qos
    message._retain = retain
    message._dup = dup
    message._packet_id = packet_id
    message._properties = NO_PROPERTIES
    return message


def encode_connect(packet: Connect) -> bytes | None:
    """The frame of an MQTT 3.1.1 CONNECT without Will or properties, or ``None``."""
    if packet.protocol is not _V3 or packet.will is not None:
        return None
    if packet.properties is not NO_PROPERTIES:
        return None
    keepalive = packet.keepalive
    username = packet.username
    password = packet.password
    clean_session = packet.clean_session
    if type(keepalive) is not int or not 0 <= keepalive <= 0xFFFF:
        return None
    try:
        client_id = encode_string(packet.client_id, "client id")
        user = b"" if username is None else encode_string(username, "user name")
    except LocalProtocolError:
        return None
    if len(client_id) == 2 and not clean_session:
        return None  # [MQTT-3.1.3-7]
    flags = 0x02 if clean_session else 0
    if username is not None:
        flags |= 0x80
    if password is None:
        password_length = b""
        password = b""
    else:
        if username is None or type(password) is not bytes or len(password) > 0xFFFF:
            return None
        flags |= 0x40
        size = len(password)
        password_length = _U16[size] if size < 0x100 else _pack_u16(size)
    size = 10 + len(client_id) + len(user) + len(password_length) + len(password)
    if size < 0x80:
        head = _pack_connect_head_1(0x10, size, b"\x00\x04MQTT", 4, flags, keepalive)
    elif size < 0x4000:
        head = _pack_connect_head_2(
            0x10, (size & 0x7F) | 0x80, size >> 7, b"\x00\x04MQTT", 4, flags, keepalive
        )
    else:
        return None
    return b"".join((head, client_id, user, password_length, password))


def decode_puback(data: bytes) -> PubAck | None:
    """The PUBACK of Remaining Length 2 that is exactly ``data``, or ``None``.

    The same in MQTT 3.1.1 and 5.0 (a 5.0 PUBACK that short has reason 0 and no
    properties). Packet identifier 0 is left to the reference, which refuses it.
    """
    if type(data) is not bytes or len(data) != 4 or data[0] != 0x40 or data[1] != 0x02:
        return None
    packet_id = (data[2] << 8) | data[3]
    return PubAck(packet_id) if packet_id else None
