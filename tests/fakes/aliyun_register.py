"""A local responder that answers like Aliyun's MQTT-based dynamic registration.

Written from Alibaba's documentation ("MQTT-based dynamic registration",
help.aliyun.com/zh/iot/user-guide/mqtt-based-dynamic-registration; the summary in
shared/reference/mqtt-and-aliyun.md §1.5) and the MQTT 3.1.1 specification
(docs.oasis-open.org/mqtt/mqtt/v3.1.1: §2.2 fixed header and Remaining Length, §3.1
CONNECT, §3.2 CONNACK, §3.3 PUBLISH), with its own byte handling — not atbridge's codec.

One connection, one exchange, as the platform does it:

1. the client's CONNECT: protocol "MQTT" level 4, user name and password flags set; the
   client id must be ``<id>|<k=v,...>|`` with ``securemode=2`` (``-2`` with
   ``instanceId=<id>`` for an instance), ``authType=register``, ``random=<r>`` and
   ``signmethod=hmacsha256|hmacsha1|hmacmd5``; the user name ``<dn>&<pk>`` of a
   product it knows; the password the hex HMAC (any case), keyed by the ProductSecret,
   of ``deviceName<dn>productKey<pk>random<r>``;
2. CONNACK: return code 0, or 4 (bad user name or password) for a wrong signature or
   an unknown product, 2 (identifier rejected) for a client id of the wrong form, and
   the connection closed;
3. PUBLISH, QoS 0, topic ``/ext/register``, payload
   ``{"productKey":..,"deviceName":..,"deviceSecret":..}`` (``reply`` overrides it:
   malformed replies, ``None`` for none at all);
4. close — or, with ``hold_open``, wait for the client to close. ``close_notify``
   says how: with the TLS close_notify alert first (an orderly TLS close), or with the
   TCP FIN alone (the default, as a server that drops the connection does). TLS is
   made here with :mod:`ssl` memory BIOs over the TCP stream, so everything written is
   sent before the FIN either way.

It listens on a free 127.0.0.1 port, TLS with the given certificate and key (or plain
TCP without them: the bytes are the same, for tests of what crosses the serial line
when TLS runs on the modem). ``connects`` records each CONNECT it parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTER_TOPIC = "/ext/register"

_DIGESTS: dict[str, Callable[[], Any]] = {
    "hmacsha256": hashlib.sha256,
    "hmacsha1": hashlib.sha1,
    "hmacmd5": hashlib.md5,
}


@dataclass
class ParsedConnect:
    """What the responder read from one CONNECT (and what it decided)."""

    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    params: dict[str, str] = field(default_factory=dict)
    return_code: int = 0


class ProtocolViolation(Exception):
    """The client sent something MQTT 3.1.1 does not allow here."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """MQTT 3.1.1 §2.2.3 Remaining Length at ``data[at:]``: (value, bytes used)."""
    value, multiplier = 0, 1
    for used in range(1, 5):
        if at + used - 1 >= len(data):
            raise IndexError("cut short")
        byte = data[at + used - 1]
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return value, used
        multiplier *= 128
    raise ProtocolViolation("a Remaining Length of more than 4 bytes")


def _encode_length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def connack(return_code: int) -> bytes:
    """§3.2: ``20 02 <flags> <rc>`` (no session present)."""
    return bytes([0x20, 0x02, 0x00, return_code])


def publish_qos0(topic: str, payload: bytes) -> bytes:
    """§3.3: ``30 <len> <topic> <payload>`` (QoS 0: no packet identifier)."""
    body = _string(topic.encode()) + payload
    return b"\x30" + _encode_length(len(body)) + body


def parse_connect(packet: bytes) -> ParsedConnect:
    """A whole CONNECT packet (fixed header included), §3.1."""
    if packet[0] != 0x10:
        raise ProtocolViolation(f"the first packet is not a CONNECT: {packet[0]:#04x}")
    length, used = _varint(packet, 1)
    body = packet[1 + used : 1 + used + length]
    at = 0

    def field_bytes() -> bytes:
        nonlocal at
        size = int.from_bytes(body[at : at + 2], "big")
        value = body[at + 2 : at + 2 + size]
        if len(value) != size:
            raise ProtocolViolation("a CONNECT field runs past the packet")
        at += 2 + size
        return value

    if field_bytes() != b"MQTT" or body[at] != 4:
        raise ProtocolViolation("not MQTT 3.1.1 (protocol name MQTT, level 4)")
    flags = body[at + 1]
    keepalive = int.from_bytes(body[at + 2 : at + 4], "big")
    at += 4
    if flags & 0x01:
        raise ProtocolViolation("the reserved CONNECT flag is set")
    client_id = field_bytes().decode()
    if flags & 0x04:
        field_bytes()  # Will Topic
        field_bytes()  # Will Message
    username = field_bytes().decode() if flags & 0x80 else None
    password = field_bytes() if flags & 0x40 else None
    return ParsedConnect(client_id, username, password, keepalive)


class _Stream:
    """The connection's bytes: plain TCP, or TLS on this side made with :mod:`ssl` memory
    BIOs over the TCP stream (so how the connection ends is this side's choice)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext | None,
    ) -> None:
        self.reader, self.writer = reader, writer
        self._buffer = bytearray()
        self._tls: ssl.SSLObject | None = None
        if context is not None:
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = context.wrap_bio(self._in, self._out, server_side=True)

    async def handshake(self) -> None:
        if self._tls is None:
            return
        while True:
            try:
                self._tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                await self._feed()

    async def readexactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if self._tls is None:
                data = await self.reader.read(65536)
                if not data:
                    raise asyncio.IncompleteReadError(bytes(self._buffer), count)
                self._buffer += data
                continue
            try:
                self._buffer += self._tls.read(65536)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._feed()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def write(self, data: bytes) -> None:
        if self._tls is None:
            self.writer.write(data)
            await self.writer.drain()
            return
        self._tls.write(data)
        await self._flush()

    async def wait_for_close(self) -> None:
        """Until the client closes (its bytes, e.g. a DISCONNECT, are read and dropped)."""
        while await self.reader.read(65536):
            pass

    async def close(self, *, close_notify: bool) -> None:
        if self._tls is not None and close_notify:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            with contextlib.suppress(ConnectionError):
                await self._flush()
        self.writer.close()  # what was written goes first, then the FIN
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)

    async def _flush(self) -> None:
        assert self._tls is not None
        data = self._out.read()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _feed(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        self._in.write(data)


class AliyunRegisterResponder:
    """``async with AliyunRegisterResponder(products, secrets, cert=..., key=...) as r:``
    listens on ``r.port`` (127.0.0.1).

    ``products`` maps ProductKey -> ProductSecret; ``device_secrets`` maps
    (ProductKey, DeviceName) -> the DeviceSecret to hand out.
    """

    def __init__(
        self,
        products: dict[str, str],
        device_secrets: dict[tuple[str, str], str],
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        instance_id: str | None = None,
        reply: Callable[[str, str, str], bytes | None] | None = None,
        hold_open: bool = False,
        close_notify: bool = False,
    ) -> None:
        self.products = products
        self.device_secrets = device_secrets
        self.instance_id = instance_id
        self.reply = reply
        self.hold_open = hold_open
        self.close_notify = close_notify
        self.connects: list[ParsedConnect] = []
        self.errors: list[str] = []
        self._context: ssl.SSLContext | None = None
        if certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self._context = context
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> AliyunRegisterResponder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    # -- one connection ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        stream = _Stream(reader, writer, self._context)
        try:
            await stream.handshake()
            connect = parse_connect(await self._read_packet(stream))
            self.connects.append(connect)
            connect.return_code = self._judge(connect)
            out = connack(connect.return_code)
            if connect.return_code == 0:
                product_key, device_name = self._names(connect)
                payload = self._reply_payload(product_key, device_name, connect.params)
                if payload is not None:
                    out += publish_qos0(REGISTER_TOPIC, payload)
            await stream.write(out)
            if self.hold_open and connect.return_code == 0:
                await stream.wait_for_close()
        except (ProtocolViolation, IndexError, UnicodeDecodeError) as error:
            self.errors.append(str(error))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as error:
            self.errors.append(f"connection: {error!r}")
        finally:
            with contextlib.suppress(Exception):
                await stream.close(close_notify=self.close_notify)
            self._handlers.discard(task)

    @staticmethod
    async def _read_packet(stream: _Stream) -> bytes:
        header = bytearray(await stream.readexactly(2))
        while header[-1] & 0x80:
            if len(header) >= 5:
                raise ProtocolViolation("a Remaining Length of more than 4 bytes")
            header += await stream.readexactly(1)
        length, _used = _varint(bytes(header), 1)
        return bytes(header) + await stream.readexactly(length)

    @staticmethod
    def _names(connect: ParsedConnect) -> tuple[str, str]:
        device_name, _, product_key = (connect.username or "").partition("&")
        return product_key, device_name

    def _judge(self, connect: ParsedConnect) -> int:
        """The CONNACK return code the documented checks give (module doc)."""
        base, bar, rest = connect.client_id.partition("|")
        if not bar or not rest.endswith("|") or not base:
            return 2
        try:
            params = dict(item.split("=", 1) for item in rest[:-1].split(","))
        except ValueError:
            return 2
        connect.params = params
        wanted_mode = "-2" if self.instance_id else "2"
        if params.get("securemode") != wanted_mode or params.get("authType") != "register":
            return 2
        if self.instance_id and params.get("instanceId") != self.instance_id:
            return 2
        method = params.get("signmethod", "")
        nonce = params.get("random", "")
        if method not in _DIGESTS or not nonce:
            return 2
        product_key, device_name = self._names(connect)
        product_secret = self.products.get(product_key)
        if product_secret is None or not device_name or connect.password is None:
            return 4
        content = f"deviceName{device_name}productKey{product_key}random{nonce}"
        expected = hmac.new(product_secret.encode(), content.encode(), _DIGESTS[method])
        given = connect.password.decode("ascii", "replace").lower()
        return 0 if hmac.compare_digest(given, expected.hexdigest()) else 4

    def _reply_payload(
        self, product_key: str, device_name: str, params: dict[str, str]
    ) -> bytes | None:
        secret = self.device_secrets.get((product_key, device_name))
        if self.reply is not None:
            return self.reply(product_key, device_name, secret or "")
        if secret is None:
            return None  # not pre-registered: the platform has nothing to send
        document = {"productKey": product_key, "deviceName": device_name, "deviceSecret": secret}
        return json.dumps(document, separators=(",", ":")).encode()
