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
4. close (TLS close_notify, then TCP FIN) — or, with ``hold_open``, wait for the
   client to close.

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
    ) -> None:
        self.products = products
        self.device_secrets = device_secrets
        self.instance_id = instance_id
        self.reply = reply
        self.hold_open = hold_open
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
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
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
        try:
            packet = await self._read_packet(reader)
            connect = parse_connect(packet)
            self.connects.append(connect)
            connect.return_code = self._judge(connect)
            writer.write(connack(connect.return_code))
            if connect.return_code == 0:
                product_key, device_name = self._names(connect)
                payload = self._reply_payload(product_key, device_name, connect.params)
                if payload is not None:
                    writer.write(publish_qos0(REGISTER_TOPIC, payload))
            await writer.drain()
            if self.hold_open and connect.return_code == 0:
                await reader.read()  # until the client closes
        except (ProtocolViolation, IndexError, UnicodeDecodeError) as error:
            self.errors.append(str(error))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as error:
            self.errors.append(f"connection: {error!r}")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)
            self._handlers.discard(task)

    @staticmethod
    async def _read_packet(reader: asyncio.StreamReader) -> bytes:
        header = bytearray(await reader.readexactly(2))
        while header[-1] & 0x80:
            if len(header) >= 5:
                raise ProtocolViolation("a Remaining Length of more than 4 bytes")
            header += await reader.readexactly(1)
        length, _used = _varint(bytes(header), 1)
        return bytes(header) + await reader.readexactly(length)

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
