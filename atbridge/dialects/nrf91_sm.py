"""nRF91x1 running Nordic's Serial Modem add-on (nrfconnect/ncs-serial-modem): ``nrf91-sm``.

Theory of operation
-------------------
The Serial Modem (SM) is the Serial LTE Modem moved out of the nRF Connect SDK after
v3.1, with handle-based socket commands and a CR line ending. What both do the same way
(bearer on cid 0, ``+CGEV`` network loss, ``#XAPOLL`` notifications, the per-socket
receiver with its safety-net read, peer close, reboots) is in
:class:`~atbridge.dialects.nrf91.NordicDialect`; this module holds the commands.
Sources: ``shared/reference/at-dialects.md`` §3.2, §3.3, §3.5 and the SM's
``doc/app/at_socket.rst``, ``doc/app/sm_data_mode.rst``, ``app/src/sm_at_socket.c``.

- Open: ``AT#XSOCKET=<family>,1,0`` -> ``#XSOCKET: <handle>,1,6`` (``AT#XSSOCKET=
  <family>,1,0,<sec_tag>,<peer_verify>`` for TLS, then ``AT#XSSOCKETOPT=<h>,1,2,"<host>"``
  for the host name to verify), then ``AT#XCONNECT=<h>,"<host>",<port>`` ->
  ``#XCONNECT: <h>,1``.
- Send: ``AT#XSEND=<h>,1,0,"<hex>"`` (hex string mode, ``at_socket.rst``: at most 1400
  bytes, 2800 hex characters, a command) -> ``#XSEND: <h>,<result_type>,<size>`` and
  ``OK``. The payload is inside one command line, as hex digits: nothing of it can ever
  run as an AT command (no ``T`` is a hex digit), not even when the modem reboots in the
  middle of the line, and a lost ``OK`` is a plain command timeout: the modem is in
  command mode, so the channel's resynchronisation reaches its AT parser, never the
  socket. Data mode, by contrast, ties the host to the modem's state: with
  ``AT#XSEND=<h>,2,0,<data_len>`` the modem counts ``<data_len>`` bytes and ignores
  ``+++``, so after a lost ``OK`` the escape and the resync commands went to the broker
  as socket data and the link took some 40 s to come back; a reboot mid-payload made the
  rest run as commands. Hex costs twice the payload bytes on the serial line (at
  115200 baud, about 0.25 s for 1400 bytes instead of 0.12 s), which an MQTT device's
  messages afford. ``send_mode = "data"`` keeps the data mode send (``AT#XSEND=<h>,2,0,
  <data_len>`` -> ``OK`` -> exactly ``<data_len>`` raw bytes -> ``#XDATAMODE: 0``, the
  payload written once what came with the ``OK`` was read, as on the SLM; if the socket
  fails in data mode the SM sends the terminator and drops input until the host sends it
  back, ``sm_data_mode.rst``: when ``#XDATAMODE`` is late, the dialect writes ``+++``
  once).
- Receive: ``AT#XAPOLL=,1,1`` (no handle: every socket, now and later; POLLIN) turns on
  ``#XAPOLL: <h>,<revents>``; reads are ``AT#XRECV=<h>,0,64,<timeout>,2048`` ->
  ``#XRECV: <h>,0,<size>`` + exactly ``<size>`` bytes + ``OK``; ``OK`` alone means the
  peer closed (``sm_at_socket.c do_recv``). Auto-reception (``AT#XRECVCFG``) is not turned
  on: pushed data would be lost with a lost notification, while data left in the modem
  until ``AT#XRECV`` is not. An auto-received ``#XRECV`` that arrives anyway (the modem
  was configured so by someone else) is delivered to its socket.
- Close: ``AT#XCLOSE=<h>`` -> ``#XCLOSE: <h>,0``.
- Left-over sockets: ``AT#XSOCKET?`` and ``AT#XSSOCKET?`` list every plain and secure
  socket (one ``#XSOCKET: <h>,...`` / ``#XSSOCKET: <h>,...`` line each); each is closed
  with ``AT#XCLOSE=<h>``.
"""

from __future__ import annotations

from typing import ClassVar

from atbridge.at_parser import header_ints
from atbridge.at_syntax import format_command, int_param, split_params
from atbridge.dialects.base import ModemSocket
from atbridge.dialects.nrf91 import NordicDialect, ReadResult
from atbridge.errors import AtTimeout, CloseReason, ModemError, ModemRebooted, SocketError
from atbridge.modem import Urc
from atbridge.transcript import Spans, shift_spans


class Nrf91Sm(NordicDialect):
    """nRF91x1 with the Serial Modem add-on (ncs-serial-modem v1.x / v2.x)."""

    name: ClassVar[str] = "nrf91-sm"
    description: ClassVar[str] = (
        "Nordic nRF91x1 with the Serial Modem add-on (nrfconnect/ncs-serial-modem)"
    )
    line_ending: ClassVar[bytes] = b"\r"
    #: ``AT#XAPOLL=[<handle>],<op>[,<events>]``: every socket, start, POLLIN (SM at_socket.rst).
    notification_command: ClassVar[str] = "AT#XAPOLL=,1,1"
    version_command: ClassVar[str | None] = "AT#XSMVER"
    #: ``"hex"``: sends as hex strings in the command line (the default, module doc);
    #: ``"data"``: length-delimited data mode.
    send_mode: str = "hex"
    #: Hex string mode carries at most 1400 bytes a command (``at_socket.rst``).
    max_hex_send: ClassVar[int] = 1400
    #: Seconds to wait for the answer to a hex send: without flag 512 the SM answers once
    #: the bytes are in the socket's buffer, not when the network acknowledged them.
    hex_send_timeout: float = 10.0

    def install(self) -> None:
        super().install()
        self._unhook.append(self.modem.subscribe("#XRECV:", self._on_auto_received))

    @staticmethod
    def recv_header_length(header: bytes) -> int | None:
        """``#XRECV: <handle>,<mode>,<size>``; hex mode carries two characters a byte."""
        values = header_ints(header, b"#XRECV: ", 3)
        if values is None:
            return None
        _handle, mode, size = values
        return size * 2 if mode == 1 else size

    def _decode_block(self, lines: tuple[str, ...], data: bytes) -> bytes:
        headers = [line for line in lines if line.startswith("#XRECV:")]
        if headers and int_param(headers[-1][len("#XRECV:") :], 1) == 1:
            return bytes.fromhex(data.decode("ascii", "replace"))
        return data

    async def _set_tls_hostname(self, handle: int, host: str) -> None:
        await self.modem.command(format_command("AT#XSSOCKETOPT", handle, 1, 2, host), timeout=10)

    async def _connect(self, handle: int, host: str, port: int, timeout: float) -> None:
        response = await self.modem.command(
            format_command("AT#XCONNECT", handle, host, port), timeout=timeout
        )
        values = response.values("#XCONNECT:")
        status = split_params(values[0]) if values else []
        if status != [str(handle), "1"]:
            raise SocketError(
                f"could not connect to {host}:{port} through the modem: {list(response.lines)}",
                hint="check that the host resolves, that the port is open, and that the data "
                "connection is up",
            )

    async def _release(self, handle: int) -> None:
        await self.modem.command(format_command("AT#XCLOSE", handle), timeout=10)

    async def _close_listed_sockets(self) -> int:
        async with self.modem.exclusive():
            handles: list[int] = []
            for command, prefix in (("AT#XSOCKET?", "#XSOCKET:"), ("AT#XSSOCKET?", "#XSSOCKET:")):
                try:
                    response = await self.modem.command(command, timeout=10)
                except ModemError:
                    continue  # a build without that listing (or without TLS)
                for value in response.values(prefix):
                    handle = int_param(value, 0)
                    if handle is not None and handle not in handles:
                        handles.append(handle)
            for handle in handles:
                await self._release(handle)
                sock = self.sockets.get(handle)
                if sock is not None:
                    sock.mark_closed(CloseReason.LOCAL, "closed as a left-over socket")
        return len(handles)

    async def _read_once(self, handle: int) -> ReadResult:
        return await self._read_or_nothing(
            format_command(
                "AT#XRECV", handle, 0, self.recv_flags, self.recv_timeout, self.read_size
            )
        )

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        if self.send_mode == "hex":
            await self._send_hex(sock, chunk)
            return
        line = format_command("AT#XSEND", sock.handle, 2, 0, len(chunk))
        with self._socket_errors(sock):
            async with self.modem.exclusive():
                # The modem counts <data_len> bytes and leaves data mode by itself.
                await self._send_in_data_mode(
                    sock,
                    line,
                    chunk,
                    len(chunk),
                    write_terminator_late=True,
                    secret_spans=self.modem.payload_secrets(sock, chunk),
                )

    async def _send_hex(self, sock: ModemSocket, chunk: bytes) -> None:
        """``chunk`` as hex strings of at most :attr:`max_hex_send` bytes (module doc)."""
        secrets = self.modem.payload_secrets(sock, chunk)
        with self._socket_errors(sock):
            for offset in range(0, len(chunk), self.max_hex_send):
                if sock.closed is not None:
                    raise sock.closed
                piece = chunk[offset : offset + self.max_hex_send]
                line = format_command("AT#XSEND", sock.handle, 1, 0, piece.hex())
                # The hex sits in the quotes at the end of the line, two characters a byte.
                start = len(line) - 1 - 2 * len(piece)
                spans = tuple(
                    (start + 2 * begin, start + 2 * end)
                    for begin, end in shift_spans(secrets, offset, len(piece))
                )
                await self._send_hex_line(sock, line, len(piece), spans)

    async def _send_hex_line(self, sock: ModemSocket, line: str, size: int, spans: Spans) -> None:
        try:
            response = await self.modem.command(
                line, timeout=self.hex_send_timeout, secret_spans=spans
            )
        except ModemError as exc:
            raise self._send_refused(sock, exc) from exc
        except (AtTimeout, ModemRebooted) as exc:
            # Sent or not, the stream can no longer be trusted: the socket ends here, and
            # the modem is in command mode, so the next command resynchronises it.
            if sock.closed is not None:
                raise sock.closed from exc
            sock.mark_closed(CloseReason.ERROR, f"no answer to a send of {size} bytes")
            raise SocketError(
                f"the modem did not confirm sending {size} bytes on socket {sock.handle}",
                hint="the serial link may have dropped bytes (use hardware flow control); "
                "the lifecycle reconnects",
            ) from exc
        values = response.values("#XSEND:")
        sent = int_param(values[0], 2) if values else None
        if sent != size:
            raise SocketError(
                f"the modem sent {sent} of {size} bytes on socket {sock.handle}",
                hint="the connection is probably broken; close the socket and reconnect",
            )

    def _on_auto_received(self, urc: Urc) -> None:
        if urc.data is None:
            return
        handle = int_param(urc.text[len("#XRECV:") :], 0)
        sock = self.sockets.get(handle) if handle is not None else None
        if sock is not None:
            sock.data_received(self._decode_block((urc.text,), urc.data))


DIALECT = Nrf91Sm

__all__ = ["DIALECT", "Nrf91Sm"]
