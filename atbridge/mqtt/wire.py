"""MQTT wire primitives: packet types, protocol levels, data representations, the fixed header.

The spec builds every packet from a few representations (MQTT 3.1.1 §1.5 and §2.2,
5.0 §1.5 and §2.1): a Variable Byte Integer, a length-prefixed UTF-8 string,
length-prefixed binary data, and a fixed header made of a type-and-flags byte and a
Remaining Length. This module writes and reads them.

Errors follow the project rule: an encoder raises
:class:`~atbridge.errors.LocalProtocolError` (the caller asked for something the spec
forbids); a decoder raises :class:`~atbridge.errors.MalformedPacket` (the peer sent
it). Decoders read ``buf[pos:end]`` in place and return ``(value, new_pos)``, so a
packet body is parsed without slicing it up.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NoReturn

from atbridge.errors import LocalProtocolError, MalformedPacket

#: Largest Remaining Length a fixed header can carry (3.1.1 §2.2.3, 5.0 §1.5.5).
MAX_REMAINING_LENGTH = 268_435_455

_pack_u16 = struct.Struct("!H").pack


class PacketType(IntEnum):
    """MQTT control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class ProtocolVersion(IntEnum):
    """The protocol level byte of CONNECT."""

    MQTT_3_1_1 = 4
    MQTT_5_0 = 5


def malformed(message: str) -> NoReturn:
    """Raise :class:`~atbridge.errors.MalformedPacket`: the peer broke the protocol."""
    raise MalformedPacket(message)


# --- encoding ------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Encode a Variable Byte Integer (MQTT 3.1.1 §2.2.3, 5.0 §1.5.5), minimum bytes."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        digit = value & 0x7F
        value >>= 7
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def encode_string(text: str, what: str) -> bytes:
    """A length-prefixed UTF-8 string, checked against MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(
            f"[MQTT-1.5.3-1] {what} contains a surrogate code point (U+D800..U+DFFF), "
            "which is not valid UTF-8"
        ) from None
    if len(raw) > 0xFFFF:
        raise LocalProtocolError(
            f"[MQTT-1.5.3] {what} is {len(raw)} bytes of UTF-8; an MQTT string is at most 65,535"
        )
    if "\x00" in text:
        raise LocalProtocolError(f"[MQTT-1.5.3-2] {what} must not contain U+0000 (null)")
    return _pack_u16(len(raw)) + raw


def encode_binary(data: bytes, what: str) -> bytes:
    """Length-prefixed binary data (MQTT 3.1.1 §3.1.3.5, 5.0 §1.5.6): at most 65,535 bytes."""
    check_bytes(data, what)
    if len(data) > 0xFFFF:
        raise LocalProtocolError(
            f"[MQTT-1.5.6] {what} is {len(data)} bytes; binary data is at most 65,535 bytes"
        )
    return _pack_u16(len(data)) + bytes(data)


def check_bytes(data: object, what: str) -> None:
    """Raise TypeError unless ``data`` is bytes-like (a payload, a password, ...)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(data).__name__}")


def fixed_header(first: int, size: int) -> bytes:
    """The type byte and the Remaining Length of a packet whose body is ``size`` bytes."""
    if size < 0x80:
        return bytes((first, size))
    if size > MAX_REMAINING_LENGTH:
        raise LocalProtocolError(
            f"(MQTT 3.1.1 §2.2.3) the packet body is {size} bytes; the Remaining Length "
            f"cannot exceed {MAX_REMAINING_LENGTH:,}"
        )
    return bytes((first,)) + encode_varint(size)


def frame(first: int, *parts: bytes) -> bytes:
    """A whole packet: the fixed header, then ``parts`` (one join, so each is copied once)."""
    return b"".join((fixed_header(first, sum(map(len, parts))), *parts))


# --- decoding ------------------------------------------------------------------------


def decode_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a Variable Byte Integer at ``pos``; returns ``(value, new_pos)``."""
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= end:
            malformed("a Variable Byte Integer runs past the end of the packet")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    malformed("[MQTT-1.5.5] a Variable Byte Integer is longer than 4 bytes")


def decode_utf8(raw: bytes, what: str) -> str:
    """The text of an MQTT string's bytes; enforces [MQTT-1.5.3-1] and [MQTT-1.5.3-2]."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        malformed(f"[MQTT-1.5.3-1] {what} is not well-formed UTF-8")
    if "\x00" in text:
        malformed(f"[MQTT-1.5.3-2] {what} contains U+0000 (null)")
    return text


def decode_string(buf: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    """Read a length-prefixed UTF-8 string (see :func:`decode_utf8`)."""
    raw, pos = decode_binary(buf, pos, end, what)
    return decode_utf8(raw, what), pos


def decode_binary(buf: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    """Read length-prefixed binary data."""
    if pos + 2 > end:
        malformed(f"{what}: the length prefix runs past the end of the packet")
    length = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    if pos + length > end:
        malformed(f"{what}: {length} bytes announced but only {end - pos} remain in the packet")
    return bytes(buf[pos : pos + length]), pos + length


def read_fixed_header(
    buf: bytes | bytearray, pos: int, protocol: ProtocolVersion
) -> tuple[int, int, int] | None:
    """The fixed header at ``buf[pos:]``: ``(first byte, body start, body length)``.

    ``None`` when more bytes are needed to read it (the body itself may still be
    incomplete: compare with ``len(buf)``). Raises MalformedPacket for a reserved
    packet type (checked on the first byte alone) or a Remaining Length longer than
    four bytes.
    """
    end = len(buf)
    if pos >= end:
        return None
    first = buf[pos]
    ptype = first >> 4
    if ptype == 0 or (ptype == 15 and protocol != ProtocolVersion.MQTT_5_0):
        malformed(f"(MQTT §2.2.1) packet type {ptype} is reserved (first byte 0x{first:02X})")
    length = 0
    shift = 0
    index = pos + 1
    while True:
        if index >= end:
            return None
        byte = buf[index]
        length |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return first, index, length
        shift += 7
        if shift >= 28:
            malformed("(MQTT 3.1.1 §2.2.3) the Remaining Length is longer than 4 bytes")
