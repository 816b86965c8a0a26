"""Fast paths for the PUBLISH and CONNECT that every message and connection costs.

Theory of operation
-------------------
``bench/mqtt_codec.py`` compares the codec with paho-mqtt (issue 16: at least 3x on
PUBLISH encode + decode, 2x on CONNECT encode). The
reference codec (:mod:`atbridge.mqtt.codec`) is written to be read against the spec;
this module does the common cases in fewer steps, and nothing else:

- an MQTT 3.1.1 PUBLISH without properties, whose Remaining Length fits in two bytes
  (under 16 KiB), encoded with ``+`` from left to right: the short pieces first,
  the payload last, so it is copied once (for so few pieces this is quicker than
  ``b"".join``, which builds a tuple and calls a method). QoS 0 packs its fixed
  header; QoS 1 and 2 pack fixed header, topic and packet id in one call, with a
  :class:`struct.Struct` made once per topic length (:data:`_id_heads`);
- the same PUBLISH decoded from a whole ``bytes`` frame, read in place, its
  :class:`~atbridge.mqtt.packets.Publish` filled in without a call to ``__init__``;
- an MQTT 3.1.1 CONNECT without Will or properties, its fixed header, variable header
  and the client id's length in one pack;
- the four-byte PUBACK every QoS 1 message brings back (Remaining Length 2: reason
  Success and no properties in MQTT 5.0 too), read without the reference's table walk.

:func:`encode` and :func:`decode` here *are* the codec's ``encode`` and ``decode``
(:mod:`~atbridge.mqtt.codec` binds its names to them and hands them its reference
functions with :func:`hand_over`): the common PUBLISH is framed and read in line,
because at 16 B a function call costs about as much as the framing itself. The
protocol is compared by identity with the 3.1.1 member (an ``IntEnum`` ``==`` costs a
call); any other value goes to the reference codec. Anything else, and anything this
code is not sure is valid, goes to the reference codec too, which checks every rule in
order and raises the exact error. So a fast path never raises for a packet the spec
forbids; it only ever returns what the reference would return
(``tests/test_mqtt_codec_fast_paths.py`` checks that, with the caches cold and warm).

Topic names are validated once and remembered, in two bounded dictionaries: str ->
length-prefixed UTF-8 for encoding, length-prefixed UTF-8 -> str for decoding. A hit
is one subscript inline in the fast path (a :func:`functools.lru_cache` hit costs
three times as much: a call and the reordering of its list). A miss runs the
reference checks themselves (:func:`_new_prefix`, :func:`_new_name`) and answers
``None`` for an invalid name, which is not kept, so a hit skips no rule and the caches
only ever hold valid names. Each keeps at most :data:`TOPIC_CACHE_SIZE` names of at
most :data:`CACHED_TOPIC_LENGTH` characters (bytes, for decoding; longer names are
checked every time); a new name arriving at a full cache drops the oldest one kept
(first in, first out), so there is no cliff: an application with more topics than
that gets every one right, and a name that was dropped is checked again once, on its
next use, and kept again.

The decode cache is keyed by the topic's bytes *with* their two-byte length, sliced
straight from the frame: the key is found without reading the length first, and the
same key is the encode cache's value, so one name costs one slice each way. A frame
can end inside the name; the slice is then shorter than its length bytes say, the
miss refuses it and keeps nothing, so a hit is always a whole name and the hit path
needs no bounds check of its own.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from atbridge.errors import LocalProtocolError, MalformedPacket
from atbridge.mqtt.packets import Connect, Packet, PubAck, Publish, topic_name_problem
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


#: topic name (str) -> its length-prefixed UTF-8 (plain dicts: a subscript of an exact
#: ``dict`` is the interpreter's quickest lookup).
_prefixes: dict[str, bytes] = {}
#: length-prefixed UTF-8 of a topic name -> the name (str).
_names: dict[bytes, str] = {}


def _keep(cache: dict[Any, Any], key: object, value: object) -> None:
    """Remember ``value`` for ``key``, dropping the oldest name when ``cache`` is full."""
    if len(cache) >= TOPIC_CACHE_SIZE:
        del cache[next(iter(cache))]
    cache[key] = value


def _new_prefix(topic: str) -> bytes | None:
    """A miss of the encode cache: ``topic``'s prefixed UTF-8 when it is a valid name
    (kept when short enough), ``None`` (nothing kept) when it is not."""
    try:
        prefix = _topic_prefix(topic)
    except LocalProtocolError:
        return None
    if len(topic) <= CACHED_TOPIC_LENGTH:
        _keep(_prefixes, topic, prefix)
    return prefix


def _new_name(prefixed: bytes) -> str | None:
    """A miss of the decode cache: the name after the two length bytes, when it is a
    whole, valid name (kept when short enough); ``None`` (nothing kept) when it is
    not. The key is sliced from a frame, so the frame's end may cut it short: it is
    whole only when its length bytes count the rest."""
    if len(prefixed) < 2 or len(prefixed) - 2 != (prefixed[0] << 8) | prefixed[1]:
        return None
    try:
        topic = _topic_text(prefixed[2:])
    except MalformedPacket:
        return None
    if len(prefixed) - 2 <= CACHED_TOPIC_LENGTH:
        _keep(_names, prefixed, topic)
    return topic


#: For a QoS 1/2 PUBLISH: prefixed-topic length -> the packs of its fixed header (one-
#: and two-byte Remaining Length), topic and packet id, all in one call.
_id_heads: dict[int, tuple[Callable[..., bytes], Callable[..., bytes]]] = {}


def _new_id_heads(size: int) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
    """The two packs of ``_id_heads`` for a prefixed topic of ``size`` bytes, kept for
    the lengths a cached name can have, so the table stays as bounded as the caches."""
    heads = (struct.Struct(f"!BB{size}sH").pack, struct.Struct(f"!BBB{size}sH").pack)
    if size <= CACHED_TOPIC_LENGTH * 4 + 2:  # UTF-8: up to 4 bytes a character
        _id_heads[size] = heads
    return heads


def _encode_by_reference(packet: Packet, protocol: ProtocolVersion) -> bytes:
    """The reference encoder (:mod:`~atbridge.mqtt.codec` hands its own over on import)."""
    from atbridge.mqtt.codec import encode_general

    return encode_general(packet, protocol)


def _decode_by_reference(data: bytes, protocol: ProtocolVersion) -> Packet:
    """The reference decoder (:mod:`~atbridge.mqtt.codec` hands its own over on import)."""
    from atbridge.mqtt.codec import decode_general

    return decode_general(data, protocol)


_reference_encode: Callable[[Packet, ProtocolVersion], bytes] = _encode_by_reference
_reference_decode: Callable[[bytes, ProtocolVersion], Packet] = _decode_by_reference


def hand_over(
    encoder: Callable[[Packet, ProtocolVersion], bytes],
    decoder: Callable[[bytes, ProtocolVersion], Packet],
) -> None:
    """Where :func:`encode` and :func:`decode` send every packet they do not take."""
    global _reference_encode, _reference_decode
    _reference_encode = encoder
    _reference_decode = decoder


def cache_clear() -> None:
    """Empty the topic caches and :data:`_id_heads` (tests use this to start cold)."""
    _prefixes.clear()
    _names.clear()
    _id_heads.clear()


def cached() -> tuple[int, int]:
    """How many names the encode and the decode cache hold."""
    return len(_prefixes), len(_names)


def encode(packet: Packet, protocol: ProtocolVersion = _V3) -> bytes:
    """The complete wire bytes of ``packet``: :func:`atbridge.mqtt.codec.encode`.

    Raises :class:`~atbridge.errors.LocalProtocolError` (nothing is produced) when the
    packet breaks a rule of the spec for ``protocol``; a
    :class:`~atbridge.mqtt.packets.Connect` always uses its own ``protocol`` field.
    The common MQTT 3.1.1 PUBLISH is framed here, in line (a call costs as much as the
    framing of a short message); anything else goes to the reference encoder.
    """
    # Publish's slots are read directly: its properties would cost a call each.
    if type(packet) is Publish:
        topic = packet._topic
        payload = packet._payload
        # ``+`` below takes exactly bytes: a bytearray or memoryview payload (which the
        # reference takes too) and anything else go to the reference.
        if (
            protocol is _V3
            and packet._properties is NO_PROPERTIES
            and type(topic) is str
            and type(payload) is bytes
        ):
            try:
                prefix: bytes | None = _prefixes[topic]
            except KeyError:
                prefix = _new_prefix(topic)
            if prefix is not None:
                qos = packet._qos
                try:
                    if qos == 0:
                        if packet._packet_id is None and not packet._dup:
                            size = len(prefix) + len(payload)
                            first = 0x31 if packet._retain else 0x30
                            if size < 0x80:
                                return _pack_b_b(first, size) + prefix + payload
                            if size < 0x4000:
                                head = _pack_b_b_b(first, (size & 0x7F) | 0x80, size >> 7)
                                return head + prefix + payload
                    elif qos == 1 or qos == 2:
                        packet_id = packet._packet_id
                        if type(packet_id) is int and 1 <= packet_id <= 0xFFFF:
                            size = len(prefix) + 2 + len(payload)
                            first = 0x30 | (qos << 1) | (0x08 if packet._dup else 0)
                            if packet._retain:
                                first |= 0x01
                            try:
                                short, long = _id_heads[len(prefix)]
                            except KeyError:
                                short, long = _new_id_heads(len(prefix))
                            if size < 0x80:
                                return short(first, size, prefix, packet_id) + payload
                            if size < 0x4000:
                                rl = (size & 0x7F) | 0x80
                                return long(first, rl, size >> 7, prefix, packet_id) + payload
                except TypeError:
                    pass  # e.g. a packet id that is no number: the reference says so
    elif type(packet) is Connect:
        data = encode_connect(packet)
        if data is not None:
            return data
    return _reference_encode(packet, protocol)


def _publish_flags(first: int) -> tuple[int, bool, bool] | None:
    """(QoS, retain, DUP) of a PUBLISH's first byte; ``None`` when it is no valid PUBLISH
    (another type, QoS 3, or DUP on QoS 0 [MQTT-3.3.1-2])."""
    qos = (first >> 1) & 0x03
    if first >> 4 != 3 or qos == 3 or (first & 0x08 and not qos):
        return None
    return qos, first & 0x01 != 0, first & 0x08 != 0


#: :func:`_publish_flags` of every first byte, read with one index per frame.
_PUBLISH_FLAGS = tuple(_publish_flags(first) for first in range(0x100))


def decode(data: bytes, protocol: ProtocolVersion = _V3) -> Packet:
    """Exactly one whole packet from ``data``: :func:`atbridge.mqtt.codec.decode`.

    Raises :class:`~atbridge.errors.MalformedPacket` for a truncated frame, trailing
    bytes, or any protocol violation. The common MQTT 3.1.1 PUBLISH in a ``bytes``
    frame under 16 KiB, and the four-byte PUBACK, are read here, in place; anything
    else, and any frame this code is not sure of, goes to the reference decoder,
    which raises the exact error.
    """
    if protocol is _V3 and type(data) is bytes:
        # A frame too short for a field it names raises IndexError: the reference's.
        try:
            flags = _PUBLISH_FLAGS[data[0]]
            if flags is not None:
                length = data[1]
                if length < 0x80:
                    start = 2
                else:
                    second = data[2]
                    if second < 0x80:
                        start = 3
                        length = (length & 0x7F) | (second << 7)
                    else:
                        start = length = -1  # three bytes or more: the reference's
                if len(data) - start == length:
                    pos = start + 2 + ((data[start] << 8) | data[start + 1])
                    # A hit is a whole name: the cache keeps none cut short by the frame.
                    prefixed = data[start:pos]
                    try:
                        topic: str | None = _names[prefixed]
                    except KeyError:
                        topic = _new_name(prefixed)
                    if topic is not None:
                        qos, retain, dup = flags
                        if qos:
                            packet_id: int | None = (data[pos] << 8) | data[pos + 1]
                            payload = data[pos + 2 :]
                        else:
                            packet_id = None
                            payload = data[pos:]
                        if packet_id or not qos:  # packet id 0: the reference's
                            # A real Publish whose slots are filled here, without a call
                            # (see its docstring).
                            message = _new_object(Publish)
                            message._topic = topic
                            message._payload = payload
                            message._qos = qos
                            message._retain = retain
                            message._dup = dup
                            message._packet_id = packet_id
                            message._properties = NO_PROPERTIES
                            return message
        except IndexError:
            pass
    if len(data) == 4:
        ack = decode_puback(data)
        if ack is not None:
            return ack
    return _reference_decode(data, protocol)


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
