"""A stand-in for a broker that refuses every client: the fake network's ``connack_refused``.

Theory of operation
-------------------
With ``FakeModem(connack_refused=RC)`` every TCP connection a modem socket opens goes to one
``RefusingBroker`` of that fake (a real asyncio server on 127.0.0.1, started on first use)
instead of the address the host asked for. For each connection it reads the first MQTT packet;
if it is a CONNECT it answers a CONNACK carrying the refusal and closes the connection:

- MQTT 3.1.1 (protocol level 4, OASIS MQTT 3.1.1 §3.2): ``20 02 00 <RC>``, RC 1..5
  (1 unacceptable protocol version, 2 identifier rejected, 3 server unavailable, 4 bad user
  name or password, 5 not authorized);
- MQTT 5 (level 5, OASIS MQTT 5.0 §3.2): ``20 03 00 <reason> 00`` (no properties), the reason
  code of the same meaning: 1 -> 0x84, 2 -> 0x85, 3 -> 0x88, 4 -> 0x86, 5 -> 0x87.

Anything else (not a CONNECT, a malformed length, end of file) just closes the connection.
It is a stand-in for the broker side of a refused login, so that every dialect's fake can show
a refusal without a broker; the real thing is tested against mosquitto with a password file
(``tests/brokers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

__all__ = ["MQTT5_REASONS", "RefusingBroker", "connack"]

log = logging.getLogger("tests.fakes.refusing_broker")

#: MQTT 3.1.1 CONNACK return code -> the MQTT 5 reason code of the same meaning.
MQTT5_REASONS: Final = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}
_CONNECT: Final = 0x10
_READ_TIMEOUT: Final = 10.0


def connack(return_code: int, protocol_level: int) -> bytes:
    """The CONNACK refusing with ``return_code`` (1..5) for a client of ``protocol_level``."""
    if return_code not in MQTT5_REASONS:
        raise ValueError(f"CONNACK return code {return_code} is not 1..5")
    if protocol_level == 5:
        return bytes((0x20, 0x03, 0x00, MQTT5_REASONS[return_code], 0x00))
    return bytes((0x20, 0x02, 0x00, return_code))


async def _read_remaining_length(reader: asyncio.StreamReader) -> int:
    value, shift = 0, 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    raise ValueError("malformed remaining length")


def protocol_level(variable_header: bytes) -> int:
    """The protocol level of a CONNECT's variable header (after the protocol name)."""
    if len(variable_header) < 2:
        raise ValueError("short CONNECT")
    name_length = int.from_bytes(variable_header[:2], "big")
    if len(variable_header) < 3 + name_length:
        raise ValueError("short CONNECT")
    return variable_header[2 + name_length]


class RefusingBroker:
    """The stand-in server (see the module docstring). ``start()`` before use, ``close()``."""

    def __init__(self, return_code: int) -> None:
        connack(return_code, 4)  # validates the code
        self.return_code = return_code
        self.port = 0
        #: CONNECTs refused so far.
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                first = (await reader.readexactly(1))[0]
                length = await _read_remaining_length(reader)
                body = await reader.readexactly(length)
            if first == _CONNECT:
                writer.write(connack(self.return_code, protocol_level(body)))
                await writer.drain()
                self.refused += 1
        except (asyncio.IncompleteReadError, ValueError, TimeoutError, ConnectionError) as exc:
            log.debug("refusing broker: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
