"""nRF9160 / nRF91x1 running Nordic's Serial LTE Modem application (NCS <= 3.1): ``nrf91-slm``.

Theory of operation
-------------------
What the SLM shares with its successor, the Serial Modem (bearer on cid 0, ``+CGEV``
network loss, ``#XAPOLL`` notifications, the receiver and its safety-net read, peer
close, reboots) is :class:`~atbridge.dialects.nrf91.NordicDialect`; this module holds
what only the SLM does. Sources: ``shared/reference/at-dialects.md`` §3.4, §3.5, and
sdk-nrf ``applications/serial_lte_modem`` (``doc/SOCKET_AT_commands.rst``,
``doc/slm_data_mode.rst``, ``src/slm_at_socket.c``, ``src/slm_at_host.c``).

**Sending on the SLM** is the delicate part. The SLM has no length-delimited or hex send:
``AT#XSEND="<data>"`` takes printable text without ``,`` or ``"`` (at most 1024 bytes),
and ``AT#XSEND`` alone enters data mode, which ends at the terminator ``+++``
(``CONFIG_SLM_DATAMODE_TERMINATOR``). ``raw_rx_handler`` in ``slm_at_host.c`` matches the
terminator anywhere in the byte stream, with no guard time, and a match ends data mode
there. So :func:`plan_slm_send` cuts each chunk into pieces:

- a *data mode* piece never contains the terminator and never ends with a proper prefix
  of it (``+`` or ``++``), so the terminator written right after it is the first match;
- the bytes left over (runs of ``+``) go as *string mode* pieces, ``AT#XSEND="+++"``,
  which the SLM answers with ``#XSEND: <size>``.

A data mode piece is: ``AT#XSEND`` -> ``OK`` (the SLM has entered data mode; not one
payload byte is written before it) -> the piece and ``+++`` in one write -> the
``#XDATAMODE: <status>`` notification (0 ok, negative: the send failed). Binary data
rarely holds a ``+``, MQTT topic filters hold single ones, so nearly everything goes in
data mode. The terminator is a class attribute: a firmware built with another
``CONFIG_SLM_DATAMODE_TERMINATOR`` needs only that changed.

**One selected socket.** SLM socket commands act on the *selected* socket: a new socket
is selected when it opens; ``AT#XSOCKETSELECT=<h>`` switches when more than one is open.
The dialect remembers the selection and selects, inside one exclusive turn on the
channel, before every command that acts on a socket.

**Reboots** also clear the selection, which the next socket command restores.

**Left-over sockets** are listed with ``AT#XSOCKETSELECT?`` (one ``#XSOCKETSELECT:
<handle>,<family>,<role>,<type>,<sec_tag>,<ranking>,<cid>`` line per socket, then the
selected handle alone) and closed one by one: select, ``AT#XSOCKET=0``. A build without
that read form is emptied with ``AT#XSOCKET?`` (the selected socket) and ``AT#XSOCKET=0``
until nothing is selected.

**Firmware before NCS 2.1.0** is refused when the dialect initialises: before sdk-nrf
PR #7951 (June 2022, first released in NCS v2.1.0) the SLM sent no ``OK`` on entering
data mode (the payload could reach it while still in command mode) and answered the
terminator with ``OK`` instead of ``#XDATAMODE``. ``AT#XSLMVER`` names the NCS version
the SLM was built from (very old builds answer their own ``1.x`` number, older still).
Identification asks it already (the family's version command): with the dialect's
:attr:`~atbridge.dialects.base.Dialect.identity` known, that answer is used, not asked again.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import ClassVar

from atbridge.at_parser import header_ints
from atbridge.at_syntax import format_command, int_param, quote, split_params, str_param
from atbridge.dialects.base import ModemSocket
from atbridge.dialects.nrf91 import NordicDialect, ReadResult, response_int
from atbridge.errors import (
    CloseReason,
    ConfigurationError,
    ModemError,
    SocketError,
    UnsupportedFirmware,
)
from atbridge.modem import Modem
from atbridge.tls import ModemTls
from atbridge.transcript import Spans, shift_spans

log = logging.getLogger(__name__)

#: The first NCS release whose SLM sends OK on entering data mode (sdk-nrf PR #7951).
MINIMUM_NCS_VERSION = (2, 1, 0)


def ncs_version(answer: str) -> tuple[int, ...] | None:
    """The version ``AT#XSLMVER`` names first (``"2.5.0","2.5.0-lte-..."`` -> (2, 5, 0))."""
    first = str_param(answer, 0) or ""
    # At most 9 digits a part: a longer "version" is no version (and no int() to raise).
    found = re.match(r"v?(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?", first)
    if found is None:
        return None
    return tuple(int(part) for part in found.groups("0"))


def plan_slm_send(
    data: bytes, terminator: bytes = b"+++", max_string: int = 1024
) -> list[tuple[bool, bytes]]:
    """Cut ``data`` into ``(in_data_mode, piece)`` so that no byte can end SLM data mode early.

    A data mode piece is followed on the wire by ``terminator``; it must not contain the
    terminator and must not end with a proper prefix of it, or the modem's matcher would
    end data mode inside the payload. The bytes that cannot go in data mode are the
    terminator's own bytes (``+`` runs for ``+++``); they go as string mode pieces of at
    most ``max_string`` bytes.

    ``plan_slm_send(b"a+++b") == [(True, b"a"), (False, b"+++"), (True, b"b")]``.
    """
    if terminator not in data and not _ends_with_prefix_of(data, terminator):
        return [(True, data)] if data else []  # the common case, without the walk below
    pieces: list[tuple[bool, bytes]] = []

    def add(in_data_mode: bool, piece: bytes) -> None:
        if not piece:
            return
        if pieces and pieces[-1][0] == in_data_mode:
            piece = pieces.pop()[1] + piece
        if in_data_mode:
            pieces.append((True, piece))
            return
        for start in range(0, len(piece), max_string):
            pieces.append((False, piece[start : start + max_string]))

    rest = data
    while rest:
        found = rest.find(terminator)
        head = rest if found < 0 else rest[:found]
        cut = len(head)
        while cut and _ends_with_prefix_of(head[:cut], terminator):
            cut -= 1
        add(True, head[:cut])
        add(False, head[cut:])
        if found < 0:
            break
        add(False, terminator)
        rest = rest[found + len(terminator) :]
    return pieces


def _ends_with_prefix_of(data: bytes, terminator: bytes) -> bool:
    return data.endswith(_proper_prefixes(terminator))


@functools.cache
def _proper_prefixes(terminator: bytes) -> tuple[bytes, ...]:
    return tuple(terminator[:size] for size in range(1, len(terminator)))


class Nrf91Slm(NordicDialect):
    """nRF9160 / nRF91x1 with the Serial LTE Modem application (NCS <= 3.1)."""

    name: ClassVar[str] = "nrf91-slm"
    description: ClassVar[str] = (
        "Nordic nRF9160/nRF91x1 with the Serial LTE Modem application (nRF Connect SDK <= 3.1)"
    )
    line_ending: ClassVar[bytes] = b"\r\n"
    version_command: ClassVar[str | None] = "AT#XSLMVER"
    #: ``AT#XAPOLL=<op>,<events>[,<handles>]``: start, POLLIN, every socket (SLM31).
    notification_command: ClassVar[str] = "AT#XAPOLL=1,1"
    #: The longest ``AT#XSEND="<data>"`` (``SLM_MAX_PAYLOAD_SIZE``).
    max_string_send: ClassVar[int] = 1024

    def __init__(self, modem: Modem) -> None:
        self._selected: int | None = None
        super().__init__(modem)
        if not _quotable(self.datamode_terminator):
            raise ConfigurationError(
                f"data mode terminator {self.datamode_terminator!r} cannot be sent in string mode",
                hint="use a printable terminator without commas or double quotes",
            )

    async def initialise(self) -> None:
        """Refuse a build before NCS 2.1.0 (module doc), then the common settings."""
        await self._check_version()
        await super().initialise()

    async def _check_version(self) -> None:
        known = self.identity
        if known is not None and known.dialect == self.name and known.version:
            answer = known.version  # identification asked AT#XSLMVER already
        else:
            try:
                response = await self.modem.command("AT#XSLMVER", timeout=10)
            except ModemError as exc:
                log.warning("AT#XSLMVER refused (%s): the SLM version is unknown", exc)
                return
            values = response.values("#XSLMVER:")
            answer = values[0] if values else ""
        version = ncs_version(answer)
        if version is None:
            log.warning("AT#XSLMVER gave no version (%r): assuming a recent SLM", answer)
            return
        if version < MINIMUM_NCS_VERSION:
            minimum = ".".join(map(str, MINIMUM_NCS_VERSION))
            raise UnsupportedFirmware(
                f"this Serial LTE Modem is version {'.'.join(map(str, version))} "
                f"(AT#XSLMVER: {answer.strip()}); atbridge needs {minimum} or later: older "
                "builds send no OK on entering data mode (sdk-nrf PR #7951)",
                hint=f"flash the Serial LTE Modem of nRF Connect SDK {minimum} or later, "
                "or the Serial Modem (nrf91-sm)",
                version=".".join(map(str, version)),
                minimum=minimum,
            )

    async def _close_listed_sockets(self) -> int:
        async with self.modem.exclusive():
            try:
                response = await self.modem.command("AT#XSOCKETSELECT?", timeout=10)
            except ModemError:
                return await self._close_selected_until_none()
            handles = []
            for value in response.values("#XSOCKETSELECT:"):
                params = split_params(value)
                handle = int_param(params, 0)
                if len(params) > 1 and handle is not None:
                    handles.append(handle)
            for handle in handles:
                self._selected = None
                await self._select(handle)
                await self._close_selected(handle)
        return len(handles)

    async def _close_selected_until_none(self) -> int:
        closed = 0
        for _ in range(16):  # the modem has 8 sockets; a bound in case it repeats itself
            response = await self.modem.command("AT#XSOCKET?", timeout=10)
            handle = response_int(response, "#XSOCKET:")
            if handle is None:
                break
            self._selected = handle
            await self._close_selected(handle)
            closed += 1
        return closed

    async def _close_selected(self, handle: int) -> None:
        """``AT#XSOCKET=0`` on the selected ``handle``; a socket of ours ends LOCAL."""
        await self.modem.command("AT#XSOCKET=0", timeout=10)
        self._selected = None
        sock = self.sockets.get(handle)
        if sock is not None:
            sock.mark_closed(CloseReason.LOCAL, "closed as a left-over socket")

    @staticmethod
    def recv_header_length(header: bytes) -> int | None:
        """``#XRECV: <size>`` (``slm_at_socket.c`` ``do_recv``)."""
        values = header_ints(header, b"#XRECV: ", 1)
        return values[0] if values else None

    async def _select(self, handle: int) -> None:
        if self._selected == handle:
            return
        await self.modem.command(format_command("AT#XSOCKETSELECT", handle), timeout=10)
        self._selected = handle

    async def _create(self, family: int, tls: ModemTls | None) -> int:
        handle = await super()._create(family, tls)
        self._selected = handle  # a new socket is the selected one (slm_at_socket.c)
        return handle

    async def _set_tls_hostname(self, handle: int, host: str) -> None:
        await self._select(handle)
        await self.modem.command(format_command("AT#XSSOCKETOPT", 1, 2, host), timeout=10)

    async def _connect(self, handle: int, host: str, port: int, timeout: float) -> None:
        await self._select(handle)
        line = format_command("AT#XCONNECT", host, port)
        response = await self.modem.command(line, timeout=timeout)
        if response_int(response, "#XCONNECT:") != 1:
            raise SocketError(
                f"could not connect to {host}:{port} through the modem: {list(response.lines)}",
                hint="check that the host resolves, that the port is open, and that the data "
                "connection is up",
            )

    async def _release(self, handle: int) -> None:
        # ``AT#XSOCKET=0`` closes the selected socket -> ``#XSOCKET: 0,"closed"``.
        await self._select(handle)
        try:
            await self.modem.command("AT#XSOCKET=0", timeout=10)
        finally:
            # The SLM selects the highest-ranked socket left; trust it only when one is left.
            others = [h for h in self.sockets if h != handle]
            self._selected = others[0] if len(others) == 1 else None

    async def _read_once(self, handle: int) -> ReadResult:
        await self._select(handle)
        return await self._read_or_nothing(
            format_command("AT#XRECV", self.recv_timeout, self.recv_flags)
        )

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        plan = plan_slm_send(chunk, self.datamode_terminator, self.max_string_send)
        # Where the chunk's secrets sit, mapped onto each piece (transcript module doc).
        secrets = self.modem.payload_secrets(sock, chunk)
        with self._socket_errors(sock):
            async with self.modem.exclusive():
                if self._selected != sock.handle:  # (the usual case needs no coroutine)
                    await self._select(sock.handle)
                offset = 0
                for in_data_mode, piece in plan:
                    if sock.closed is not None:
                        raise sock.closed
                    spans = shift_spans(secrets, offset, len(piece)) if secrets else ()
                    offset += len(piece)
                    if in_data_mode:
                        # The terminator goes right after the piece, in the same write.
                        payload = piece + self.datamode_terminator
                        await self._send_in_data_mode(
                            sock,
                            "AT#XSEND",
                            payload,
                            len(piece),
                            write_terminator_late=False,
                            secret_spans=spans,
                        )
                    else:
                        await self._send_string(sock, piece, spans)

    async def _send_string(self, sock: ModemSocket, piece: bytes, secrets: Spans = ()) -> None:
        line = format_command("AT#XSEND", piece.decode("ascii"))
        # The piece sits in the quotes: AT#XSEND="<piece>".
        start = len('AT#XSEND="')
        spans = tuple((start + begin, start + end) for begin, end in secrets)
        try:
            response = await self.modem.command(line, timeout=self.send_timeout, secret_spans=spans)
        except ModemError as exc:
            raise self._send_refused(sock, exc) from exc
        sent = response_int(response, "#XSEND:")
        if sent != len(piece):
            raise SocketError(
                f"the modem sent {sent} of {len(piece)} bytes on socket {sock.handle}",
                hint="the connection is probably broken; close the socket and reconnect",
            )

    def _on_reboot(self, banner: str) -> None:
        self._selected = None
        super()._on_reboot(banner)


def _quotable(data: bytes) -> bool:
    try:
        quote(data.decode("ascii"))
    except (UnicodeDecodeError, ConfigurationError):
        return False
    return b"," not in data


DIALECT = Nrf91Slm

__all__ = ["DIALECT", "MINIMUM_NCS_VERSION", "Nrf91Slm", "ncs_version", "plan_slm_send"]
