"""A person-readable record of every byte between host and modem.

Each entry is one line: wall-clock time, seconds since the transcript started,
direction and the bytes with control and non-ASCII bytes escaped::

    04:51:10.123 +0.004 TX "AT+CGSN\\r\\n"
    04:51:10.131 +0.012 RX "\\r\\n352656100367872\\r\\n"
    04:51:10.131 +0.012 RX "\\r\\nOK\\r\\n"
    04:51:12.002 +1.883 -- modem rebooted ("Ready")

Received bytes are grouped per line (an entry ends at LF) so a response reads as
it came, however the serial driver chunked it.

**Secrets** are masked two ways, before anything is written:

1. *By where they sit* (the reliable way). A writer that knows which bytes of what it
   sends are secret says so: :meth:`Transcript.tx` takes ``secret_spans``, byte
   ranges replaced by ``***`` whatever they hold. The MQTT CONNECT password is the
   case that matters: a dialect may cut a socket payload into pieces the text of the
   secret never appears whole in (the nRF91 SLM sends every ``+++`` of a payload as a
   command of its own, ``AT#XSEND="+++"``, and the bytes around it in data mode).
   :class:`OutgoingSecrets` follows the MQTT packet framing of one socket's outgoing
   stream, chunk by chunk, and gives the spans of each CONNECT's password field (and
   of its user name when that is a registered secret): known offsets of the frame
   (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1: fixed header, protocol name, level, flags, keep
   alive, [properties], client id, [will properties, topic, payload], user name,
   password), never a search for the text. The channel hands the spans of each
   piece to the transcript (:meth:`atbridge.modem.Modem.payload_secrets`).
2. *By their text* (a second net): every occurrence of a secret registered with
   :meth:`Transcript.add_secret`, in both directions; a secret split across two reads
   is still masked, because the tail that could start one is held back until the
   next read.
3. *By what announces them*, for secrets nobody knows before they arrive: the string
   value of a JSON key in :data:`SECRET_JSON_KEYS` (``"deviceSecret":"..."`` and
   ``"deviceToken":"..."``, the replies of Aliyun's dynamic registration, MQTT-based
   "one type one secret": with plain TCP or TLS on the modem they cross the serial
   line in clear). :class:`IncomingSecrets` follows the received stream, masks each
   such value as its bytes come, however the reads cut it, and holds back a tail that
   could still become ``"deviceSecret":"`` until the next read (a forced write of the
   received bytes, before a TX line or a note, holds it back too; only
   :meth:`Transcript.close` lets it out, when nothing can follow). Notes and TX lines
   get the same mask on whole text. The limit: bytes the *modem* puts inside the key
   itself (a read boundary of the modem, ``+CARECV:`` between ``"deviceSe`` and
   ``cret"``) hide it; a value cut that way is still masked up to its closing quote.

The sink is a file path, an open text stream, or a :class:`logging.Logger`
(entries at DEBUG level).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from atbridge.errors import ConfigurationError
from atbridge.text import escape_bytes

MASK = b"***"
_FLUSH_AT = 512

Sink = str | Path | TextIO | logging.Logger
#: Byte ranges ``(start, end)`` of a write that are secret.
Spans = tuple[tuple[int, int], ...]

_CONNECT = 0x10
#: The longest CONNECT kept while its fields are found (a user name and a password of
#: 65535 bytes each, with everything before them, fit well within this).
_MAX_CONNECT = 1 << 18


def mask_spans(data: bytes, spans: Spans) -> bytes:
    """``data`` with each of ``spans`` (clipped to it, merged when they touch) as ``***``."""
    if not spans:
        return data
    out = bytearray()
    position = 0
    for start, end in sorted(spans):
        start, end = max(start, position), min(end, len(data))
        if end <= start:
            continue
        out += data[position:start]
        if not out.endswith(MASK) or position != start:
            out += MASK
        position = end
    out += data[position:]
    return bytes(out)


def shift_spans(spans: Spans, offset: int, length: int) -> Spans:
    """The part of ``spans`` inside ``[offset, offset + length)``, counted from ``offset``."""
    shifted = []
    for start, end in spans:
        start, end = max(start - offset, 0), min(end - offset, length)
        if start < end:
            shifted.append((start, end))
    return tuple(shifted)


def _varint(data: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """An MQTT variable byte integer at ``data[at:]``: ``(value, size)``, or ``None`` (cut)."""
    value = 0
    for index in range(4):
        if at + index >= len(data):
            return None
        byte = data[at + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    return value, 4  # malformed (a fifth byte): taken as it is, the framing says how far


def connect_secret_spans(packet: bytes | bytearray, *, secrets: tuple[bytes, ...] = ()) -> Spans:
    """Spans of the password (and of a user name in ``secrets``) in a CONNECT packet.

    ``packet`` is the packet from its first byte, possibly cut short: a secret field cut
    short runs to the end of what is given, so the rest of it, in the next chunk, is
    known too (:class:`OutgoingSecrets`). Field layout: MQTT 3.1.1 §3.1 / 5.0 §3.1.
    """
    if not packet or packet[0] & 0xF0 != _CONNECT:
        return ()
    remaining = _varint(packet, 1)
    if remaining is None:
        return ()
    at = 1 + remaining[1]

    def field(at: int) -> tuple[int, int] | None:
        if at + 2 > len(packet):
            return None
        return at + 2, at + 2 + (packet[at] << 8 | packet[at + 1])

    name = field(at)  # protocol name, "MQTT" (or "MQIsdp")
    if name is None or name[1] + 4 > len(packet):
        return ()
    level, flags = packet[name[1]], packet[name[1] + 1]
    at = name[1] + 4  # level, flags, keep alive
    spans: list[tuple[int, int]] = []
    if level == 5:  # CONNECT properties
        props = _varint(packet, at)
        if props is None:
            return ()
        at += props[1] + props[0]
    fields = ["client_id"]
    if flags & 0x04:
        fields += ["will_properties"] if level == 5 else []
        fields += ["will_topic", "will_payload"]
    if flags & 0x80:
        fields.append("username")
    if flags & 0x40:
        fields.append("password")
    for kind in fields:
        if kind == "will_properties":
            props = _varint(packet, at)
            if props is None:
                return tuple(spans)
            at += props[1] + props[0]
            continue
        found = field(at)
        if found is None:
            if kind == "password" and at < len(packet):
                spans.append((at, len(packet)))  # even its length bytes, cut short
            return tuple(spans)
        start, end = found
        secret = kind == "password" or (kind == "username" and bytes(packet[start:end]) in secrets)
        if secret and end > start:
            spans.append((start, min(end, len(packet))))
        at = end
    return tuple(spans)


class OutgoingSecrets:
    """Where the secrets sit in one socket's outgoing MQTT stream, chunk by chunk.

    :meth:`feed` takes each chunk in order and returns the spans of that chunk which
    hold a CONNECT password (see :func:`connect_secret_spans`). It follows the packet
    framing (fixed header, remaining length) so it knows where each packet starts;
    only a CONNECT is kept while it is read, and at most :data:`_MAX_CONNECT` bytes.
    """

    def __init__(self, secrets: tuple[bytes, ...] = ()) -> None:
        self.secrets = secrets
        self._header = bytearray()  # a fixed header still arriving
        self._skip = 0  # bytes of a packet that is not a CONNECT still to come
        self._connect = bytearray()  # the CONNECT being read
        self._connect_left = 0

    def feed(self, chunk: bytes) -> Spans:
        spans: list[tuple[int, int]] = []
        at = 0
        size = len(chunk)
        while at < size:
            if self._skip:
                take = min(self._skip, size - at)
                self._skip -= take
                at += take
                continue
            if self._connect_left:
                take = min(self._connect_left, size - at)
                before = len(self._connect)
                if before < _MAX_CONNECT:
                    self._connect += chunk[at : at + take]
                found = connect_secret_spans(self._connect, secrets=self.secrets)
                spans += [(start + at, end + at) for start, end in shift_spans(found, before, take)]
                if before >= _MAX_CONNECT:
                    spans.append((at, at + take))  # too long to follow: all of it
                self._connect_left -= take
                at += take
                if not self._connect_left:
                    self._connect.clear()
                continue
            self._header.append(chunk[at])
            at += 1
            remaining = _varint(self._header, 1)
            if remaining is None:
                continue
            header, self._header = bytes(self._header), bytearray()
            if header[0] & 0xF0 == _CONNECT and remaining[0]:
                self._connect = bytearray(header)
                self._connect_left = remaining[0]
            else:
                self._skip = remaining[0]
        return tuple(spans)


#: JSON keys whose string values are secrets wherever they are received (module doc).
SECRET_JSON_KEYS = ("deviceSecret", "deviceToken")
_SPACE = rb"[ \t\r\n]*"


class IncomingSecrets:
    """Masks the string value of each JSON key of ``keys`` in a byte stream fed in pieces.

    :meth:`feed` returns what can be written now: the values as ``***`` (one mask per
    piece of a value), everything else as it came, minus a tail that could still start
    ``"<key>" : "`` (held for the next :meth:`feed`). :meth:`flush` gives the held tail,
    when nothing more can follow. Escapes inside a value (``\\"``) do not end it.
    """

    def __init__(self, keys: tuple[str, ...] = SECRET_JSON_KEYS) -> None:
        names = b"|".join(re.escape(key.encode()) for key in keys)
        self._quoted = tuple(b'"' + key.encode() + b'"' for key in keys)
        self._start = re.compile(rb'"(?:' + names + rb')"' + _SPACE + b":" + _SPACE + b'"')
        self._tail = re.compile(rb'"(?:' + names + rb')"' + _SPACE + b"(?::" + _SPACE + rb")?\Z")
        self._whole = re.compile(
            b"(" + self._start.pattern + rb')(?:[^"\\]|\\.)*(?:"|\Z)', re.DOTALL
        )
        self._held = b""
        self._in_value = False
        self._escaped = False

    @property
    def masking(self) -> bool:
        """True while the bytes fed are inside a secret value."""
        return self._in_value

    def feed(self, data: bytes) -> bytes:
        """The bytes of ``data`` (after those held back) that can be written, masked."""
        buffer = self._held + data
        self._held = b""
        out = bytearray()
        at, size = 0, len(buffer)
        while at < size:
            if self._in_value:
                end = self._value_end(buffer, at)
                stop = size if end < 0 else end
                if stop > at:
                    out += MASK
                if end < 0:
                    break
                out += b'"'
                self._in_value = False
                at = end + 1
                continue
            found = self._start.search(buffer, at)
            if found is not None:
                out += buffer[at : found.end()]
                at = found.end()
                self._in_value = True
                continue
            hold = self._could_start(buffer, at)
            out += buffer[at:hold]
            self._held = buffer[hold:]
            break
        return bytes(out)

    def flush(self) -> bytes:
        """The tail held back (it starts no secret: the stream ended)."""
        held, self._held = self._held, b""
        return held

    def mask_text(self, data: bytes) -> bytes:
        """``data`` with every value of a secret key in it masked (whole text, no state)."""
        if b'"' not in data:
            return data

        def masked(found: re.Match[bytes]) -> bytes:
            closed = found.end() > found.end(1) and data[found.end() - 1] == 0x22
            return found.group(1) + MASK + (b'"' if closed else b"")

        return self._whole.sub(masked, data)

    def _value_end(self, data: bytes, at: int) -> int:
        """The index of the quote that ends the value, from ``at``; -1 if not in ``data``."""
        for index in range(at, len(data)):
            byte = data[index]
            if self._escaped:
                self._escaped = False
            elif byte == 0x5C:  # backslash
                self._escaped = True
            elif byte == 0x22:  # quote
                return index
        return -1

    def _could_start(self, data: bytes, at: int) -> int:
        """The first index from ``at`` whose tail could still grow into a key's start."""
        whole_key = self._tail.search(data, at)
        if whole_key is not None:
            return whole_key.start()
        longest = max(len(key) for key in self._quoted)
        for index in range(max(at, len(data) - longest + 1), len(data)):
            rest = data[index:]
            if rest[:1] == b'"' and any(key.startswith(rest) for key in self._quoted):
                return index
        return len(data)


class Transcript:
    """Write a timestamped, escaped, secret-masked record of modem traffic."""

    def __init__(
        self,
        sink: Sink,
        *,
        secrets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._owned: TextIO | None = None
        self._stream: TextIO | None = None
        self._logger: logging.Logger | None = None
        if isinstance(sink, logging.Logger):
            self._logger = sink
        elif isinstance(sink, str | Path):
            try:
                self._owned = self._stream = open(sink, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot write the transcript {str(sink)!r}: {exc.strerror or exc}",
                    hint="give a transcript path in a directory that exists and is writable, "
                    "or leave out the transcript",
                ) from exc
        else:
            self._stream = sink
        self._clock = clock
        self._wall_clock = wall_clock
        self._start = clock()
        self._secrets: list[bytes] = []
        self._rx = bytearray()
        self._incoming = IncomingSecrets()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | bytes) -> None:
        """Mask every occurrence of ``secret`` from now on (empty strings are ignored)."""
        value = secret.encode() if isinstance(secret, str) else bytes(secret)
        if value and value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def tx(self, data: bytes, *, secret_spans: Spans = ()) -> None:
        """Record bytes written to the modem; ``secret_spans`` of them are masked."""
        self._flush_rx()
        self._emit("TX", self._mask(mask_spans(data, secret_spans)))

    def secrets(self) -> tuple[bytes, ...]:
        """The secrets registered with :meth:`add_secret`."""
        return tuple(self._secrets)

    def rx(self, data: bytes) -> None:
        """Record bytes received from the modem (grouped per line)."""
        self._rx += data
        end = self._rx.rfind(b"\n")
        if end >= 0:
            self._emit_rx(end + 1)
        if len(self._rx) >= _FLUSH_AT:
            hold = max((len(s) for s in self._secrets), default=1) - 1
            self._emit_rx(len(self._rx) - hold)

    def note(self, text: str) -> None:
        """Record an event in words (sync, reboot, timeout...)."""
        self._flush_rx()
        masked = self._mask(text.encode("utf-8", "backslashreplace")).decode("utf-8", "replace")
        self._write(f"{self._stamp()} -- {masked}")

    def flush(self) -> None:
        """Write out held-back received bytes (but a tail that could still start a secret
        value, :class:`IncomingSecrets`: :meth:`close` writes that) and flush the sink."""
        self._flush_rx()
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        """Flush (what was held back too), and close the file if the transcript opened it."""
        self._flush_rx()
        held = self._incoming.flush()
        if held:
            self._emit("RX", self._mask(held))
        self.flush()
        if self._owned is not None:
            self._owned.close()
            self._owned = self._stream = None

    # -- internals -----------------------------------------------------------------

    def _flush_rx(self) -> None:
        if self._rx:
            self._emit_rx(len(self._rx))

    def _emit_rx(self, upto: int) -> None:
        if upto <= 0:
            return
        chunk = bytes(self._rx[:upto])
        del self._rx[:upto]
        chunk = self._incoming.feed(chunk)
        if chunk:
            self._emit("RX", self._mask(chunk))

    def _mask(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return self._incoming.mask_text(data)

    def _emit(self, direction: str, data: bytes) -> None:
        self._write(f'{self._stamp()} {direction} "{escape_bytes(data)}"')

    def _stamp(self) -> str:
        wall = self._wall_clock()
        clock = time.strftime("%H:%M:%S", time.localtime(wall))
        return f"{clock}.{int((wall % 1) * 1000):03d} +{self._clock() - self._start:.3f}"

    def _write(self, entry: str) -> None:
        if self._logger is not None:
            self._logger.debug("%s", entry)
        elif self._stream is not None:
            self._stream.write(entry + "\n")
