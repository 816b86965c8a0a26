"""The stream decoder: bytes in whatever chunks the modem delivers, whole MQTT packets out.

Theory of operation
-------------------
A modem hands received socket data over in chunks of its own choosing, which have
nothing to do with MQTT's framing. Feed every chunk to
:meth:`PacketDecoder.receive_data`, then call :meth:`PacketDecoder.next_packet` until
it returns ``None``. ``None`` means "need more data" and is not an error; a frame
split across any number of chunks, or several frames in one chunk, both work. A frame
larger than ``max_packet_size`` raises :class:`~atbridge.errors.PacketTooLarge` as
soon as its fixed header is read, before its body is buffered. After an error the
decoder stays broken: the byte stream has lost its framing, so the caller must drop
the link.

Each whole frame goes to :func:`atbridge.mqtt.codec.decode`, so the session's receive
path takes the same PUBLISH fast path as a caller of ``decode``.
"""

from __future__ import annotations

from typing import NoReturn

from atbridge.errors import LocalProtocolError, MalformedPacket, PacketTooLarge
from atbridge.mqtt.codec import decode
from atbridge.mqtt.packets import Packet
from atbridge.mqtt.wire import ProtocolVersion, read_fixed_header

#: Default largest whole packet the decoder accepts: 1 MiB (Aliyun caps messages at 256 KiB).
DEFAULT_MAX_PACKET_SIZE = 1 << 20


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

        Raises :class:`~atbridge.errors.MalformedPacket` (or
        :class:`~atbridge.errors.PacketTooLarge`) when the stream breaks the
        protocol; the decoder then refuses all further use.
        """
        if self._error is not None:
            raise self._error
        buf = self._buffer
        pos = self._pos
        try:
            header = read_fixed_header(buf, pos, self.protocol)
        except MalformedPacket as exc:
            self._fail(exc)
        if header is None:
            return None
        _first, start, length = header
        total = start - pos + length
        if total > self.max_packet_size:
            self._fail(
                PacketTooLarge(
                    f"an incoming packet of {total:,} bytes exceeds the limit of "
                    f"{self.max_packet_size:,} bytes"
                )
            )
        stop = start + length
        if len(buf) < stop:
            return None
        # One copy (a bytearray slice would copy once more); the view is gone at once,
        # so the buffer can grow or shrink again.
        frame = bytes(memoryview(buf)[pos:stop])
        self._pos = stop
        try:
            return decode(frame, self.protocol)
        except MalformedPacket as exc:
            self._fail(exc)

    def _fail(self, error: MalformedPacket) -> NoReturn:
        self._error = error
        raise error
