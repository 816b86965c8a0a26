"""What the three SIMCom socket dialects (sim7080, sim7600, sim7000) share.

Theory of operation
-------------------
SIMCom modems announce received data and keep it until it is asked for: a
notification says "data waiting on connection N" (``+CADATAIND: N``,
``+CIPRXGET: 1,N``) and a read command returns at most a bounded count of it,
length-prefixed, so any byte value survives (reference §0.3, §5). Each open
socket therefore gets a :class:`~atbridge.dialects.receiver.Receiver` task:

- A data notification wakes the receiver, which reads until the modem says it
  has nothing more (a short read, or ``<remaining>`` 0), handing every chunk to
  :meth:`ModemSocket.data_received`. A notification that arrives while it reads
  wakes it again, so nothing that arrives meanwhile waits.
- **A lost notification must not lose data.** The modem sends the next
  notification only when new data arrives on an empty buffer, so after a lost
  one the data would sit in the modem forever. The receiver therefore also
  checks every :attr:`SimcomDialect.rx_poll_interval` seconds (5 s by default)
  while its socket is open, with the family's cheapest question (``AT+CIPRXGET=4``
  where there is one, else a read). This is a slow safety net tied to the
  socket, not busy polling: one short command per socket every few seconds,
  none once the socket is closed.
- **Data before the socket is ours.** A notification can arrive while the open
  is still under way (after ``CONNECT OK``, before ``AT+CIPSEND?`` is answered;
  between ``+CAOPEN: <cid>,0`` and the adoption). The connection id is claimed
  before the open command is sent, so such a notification is kept for that id
  and the new socket's receiver reads at once; without one nothing is waiting
  (the modem announces the first bytes on an empty buffer: SIM7000 manual
  ``AT+CIPRXGET``, SIM7080 ``+CADATAIND``, SIM7600 ``+CIPRXGET: 1,<link>``) and
  no read is spent on it (issue 16: one command less per open than the read
  right after the open this replaced; TinyGSM reads only when told, too).
- When the modem says the connection ended (peer close: ``+CASTATE: N,0``,
  ``+IPCLOSE``, ``N, CLOSED``), the receiver first reads what is still buffered
  and only then closes the socket, so the bytes the peer sent before closing
  are delivered before :class:`SocketClosed`.

Several results come *after* the ``OK`` of the command that asked for them
(``+CAOPEN``, ``+CIPOPEN``, ``+NETOPEN``, ``+CIPSEND``, ``+CDNSGIP``,
``N, CONNECT OK``), and some firmware puts them before it. :meth:`SimcomDialect._result`
listens before sending and takes the result from either place.

Sends are length-delimited (``AT+CASEND=<cid>,<len>``, ``AT+CIPSEND=<link>,<len>``):
the AT channel writes the payload only once the ``>`` prompt has arrived, and
the modem counts bytes instead of scanning for a terminator, so ``OK\\r\\n``,
NUL, 0x1A and ``+++`` go through unchanged.

What real boards add (issue 10):

- **Sockets outlive the host.** A killed atbridge (or a dropped serial link)
  leaves its connections open on the modem, which then refuses to open them
  again (``+CAOPEN: <cid>,<err>``, ``+CIPOPEN: <link>,<err>``, ``ALREADY
  CONNECT``). :meth:`SimcomDialect.close_leftover_sockets` lists what is open with
  the family's listing command (``AT+CASTATE?``, ``AT+CIPCLOSE?``,
  ``AT+CIPSTATUS``) and closes it; TinyGSM likewise closes before it connects. A
  bearer set up fresh since (``SHUT OK``, ``+NETOPEN: 0``) has nothing open until
  the next open, so nothing is asked then; nor after a listing whose connections
  were all closed, until this object opens one (only the process that holds the
  port opens connections on the modem, and a reboot only closes them): the
  probe's listing is not repeated before the first open (issue 16).
- **Auto-bauding modules print no boot banner** after a reset (SIM800 Series AT
  Command Manual V1.09 §2.2.41: ``RDY`` is not shown while auto-bauding; the
  host syncs with ``AT``; Zephyr's ``simcom-sim7080`` driver also polls ``AT``
  at boot). :meth:`SimcomDialect.restart` waits :attr:`~SimcomDialect.boot_quiet`
  seconds for a banner, then polls with ``AT`` until the modem answers, and
  treats that answer as the reboot (:meth:`~atbridge.modem.Modem.report_restart`).
- **TLS offload** is per family: one that drives its modem's TLS sets
  :attr:`SimcomDialect.offloads_tls` (``steps.TlsOffloader``) and takes a
  :class:`~atbridge.tls.ModemTls` in its ``open_socket``; the others refuse TLS at
  the open, before any command, with their :attr:`~SimcomDialect.tls_unsupported`
  reason (a half-configured TLS socket is worse than a clear refusal; host-side
  TLS works on them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import ClassVar

from atbridge.at_parser import BlockRule, FinalKind, classify_final, field_int
from atbridge.at_syntax import (
    format_command,
    int_param,
    parse_int,
    split_params,
    str_param,
    unquote,
)
from atbridge.cme import error_text
from atbridge.dialects.base import Dialect, ModemSocket, check_port
from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    CloseReason,
    ConfigurationError,
    ModemError,
    ModemRebooted,
    SocketClosed,
    SocketError,
    StepTimeout,
)
from atbridge.modem import Modem, Response, Urc
from atbridge.transcript import Spans, shift_spans

log = logging.getLogger(__name__)

#: The DNS command of all three families: ``+CDNSGIP: 1,"<host>","<ip>"[,"<ip2>"]``
#: or ``+CDNSGIP: 0,<error>`` (reference §5.1).
CDNSGIP = "+CDNSGIP:"


def refusal(command: str, final: str, *, hint: str) -> ModemError:
    """A :class:`ModemError` for a command the modem answered with an error, with our hint."""
    parsed = classify_final(final.encode("utf-8", "replace"))
    if parsed is not None and parsed.kind in (FinalKind.CME, FinalKind.CMS):
        kind = "CME" if parsed.kind is FinalKind.CME else "CMS"
        text = error_text(kind, parsed.code) if parsed.code is not None else parsed.detail
        return ModemError(command, final, kind=kind, code=parsed.code, text=text, hint=hint)
    return ModemError(command, final, hint=hint)


def _after(text: str, prefix: str) -> str:
    return text[len(prefix) :].strip()


class SimcomDialect(Dialect):
    """Shared machinery of the SIMCom families; see the module docstring."""

    #: CR alone (V.250 S3). A CRLF would leave an LF in flight when the modem starts
    #: counting payload bytes after its ``>`` prompt; CR alone leaves nothing to misread.
    line_ending = b"\r"
    #: The connection ids (cid / link number) the family offers.
    links: range = range(8)
    #: The largest read one command returns (``<readlen>`` / ``<len>`` <= 1460, reference §5).
    max_read: ClassVar[int] = 1460
    #: Seconds allowed for one send command (prompt, payload and its result).
    send_timeout: ClassVar[float] = 20.0
    #: Seconds between safety-net checks for data the modem holds without having
    #: said so (a lost notification). Per dialect object; tests lower it.
    rx_poll_interval: float = 5.0
    #: Whether this family drives its modem's TLS (``steps.TlsOffloader``): its
    #: ``open_socket`` then takes a :class:`~atbridge.tls.ModemTls` as ``tls``.
    offloads_tls: ClassVar[bool] = False
    #: Why a family that does not offload cannot (shown in the refusal).
    tls_unsupported: ClassVar[str] = "SIMCom modem's TLS offload"
    #: Registration on LTE (``+CEREG``), else on GPRS/EDGE (``+CGREG``): TinyGSM's
    #: SIM70xx order; a module camped on 2G reports only on ``+CGREG``.
    registration_sources = ("+CEREG", "+CGREG")
    #: SIMCom AT manuals (SIM7000/SIM7080/SIM7600 series): ``AT+CCID`` (bare ICCID),
    #: ``AT+CBC`` (supply), ``AT+CNMP?`` (RAT preference), ``AT+CPSI?`` (serving cell
    #: and signal); each family adds its own bearer status.
    diagnostic_queries = MappingProxyType(
        {
            "device": (
                "AT+CGMI",
                "AT+CGMM",
                "AT+CGMR",
                "AT+CGSN",
                "AT+CIMI",
                "AT+CCID",
                "AT+CPIN?",
                "AT+CBC",
            ),
            "radio": ("AT+CFUN?", "AT+CNMP?", "AT+CSQ", "AT+CPSI?"),
            "network": ("AT+COPS?", "AT+CPSMS?", "AT+CGDCONT?", "AT+CGPADDR"),
        }
    )
    sample_queries = ("AT+CPSI?", "AT+CSQ")
    watch_notifications = ()
    #: Seconds :meth:`restart` waits for a boot banner before polling with ``AT``
    #: (SIM800 manual V1.09 §2.2.41: wait 3 to 5 s before the first ``AT`` when
    #: auto-bauding). Per dialect object; tests lower it.
    boot_quiet: float = 3.0

    def __init__(self, modem: Modem) -> None:
        # (Dialect._none_open is also set by a family once its bearer was freshly set up:
        # ``SHUT OK``, ``+NETOPEN: 0``.)
        self._opening: set[int] = set()
        #: Handles being opened that the modem already announced data on (a notification
        #: before the socket was adopted): their receiver reads at once.
        self._announced: set[int] = set()
        self._closing: set[ModemSocket] = set()
        super().__init__(modem)

    # -- family hooks ------------------------------------------------------------------

    async def _read(self, sock: ModemSocket) -> tuple[bytes, bool]:
        """Read once; return the bytes and whether the modem holds more."""
        raise NotImplementedError

    async def _available(self, sock: ModemSocket) -> int | None:
        """How many bytes the modem holds for ``sock`` (``None``: unknown, read to see)."""
        return None

    # -- sockets -----------------------------------------------------------------------

    def _claim_link(self) -> int:
        """The lowest connection id neither open nor being opened."""
        for link in self.links:
            if link not in self.sockets and link not in self._opening:
                self._opening.add(link)
                return link
        raise SocketError(
            f"all {len(self.links)} connections of the {self.name} modem are in use",
            hint="close a socket before opening another",
        )

    def _release_link(self, link: int) -> None:
        self._opening.discard(link)
        self._announced.discard(link)

    def _new_socket(self, link: int, host: str, port: int) -> ModemSocket:
        """Adopt an opened connection and start its receiver."""
        return self._start_receiver(self._adopt(ModemSocket(self, link, host, port)))

    def _start_receiver(self, sock: ModemSocket) -> ModemSocket:
        """Start the receiver of the just adopted ``sock``; it reads at once only when the
        modem announced data while the socket was being opened (the module docstring)."""
        receiver = self._receiver(
            sock,
            lambda checking: self._drain(sock, ask_first=checking),
            poll_interval=lambda: self.rx_poll_interval,
        )
        if sock.handle in self._announced:
            self._announced.discard(sock.handle)
            receiver.wake()
        self.receivers.start(receiver)
        return sock

    def data_waiting(self, handle: int) -> None:
        """Wake ``handle``'s receiver; a notification for a connection still being opened
        (no receiver yet) is kept for the receiver it is about to get."""
        if handle in self._opening and self.receivers.get(handle) is None:
            self._announced.add(handle)
            return
        super().data_waiting(handle)

    def connection_ended(self, handle: int, reason: CloseReason, detail: str) -> None:
        """The modem says the connection ended (not the echo of our own close)."""
        sock = self.sockets.get(handle)
        if sock is not None and sock not in self._closing:
            super().connection_ended(handle, reason, detail)

    async def _drain(self, sock: ModemSocket, *, ask_first: bool) -> None:
        if ask_first and await self._available(sock) == 0:
            return
        while sock.closed is None:
            data, more = await self._read(sock)
            sock.data_received(data)
            if not more or not data:
                return

    def _check_open(self, port: int, tls: object) -> None:
        """Refuse a bad port, and TLS offload on a family that does not drive it
        (:attr:`offloads_tls` False); one that does checks its ``tls`` itself."""
        check_port(port)
        if tls and not self.offloads_tls:
            raise ConfigurationError(
                f"TLS offload on the {self.name} is not supported by atbridge: "
                f"{self.tls_unsupported}",
                hint='use host-side TLS (tls = "host", --tls host): it needs nothing from '
                "the modem and works through every modem, this one included",
            )

    # -- sockets left open on the modem -------------------------------------------------

    async def _open_links(self) -> list[int]:
        """The connection ids the modem reports open (the family's listing command)."""
        raise NotImplementedError

    async def _close_link(self, link: int) -> bool:
        """Close a connection atbridge does not hold; whether the modem closed it."""
        raise NotImplementedError

    async def _close_listed(self) -> tuple[int, bool]:
        """Close every connection the modem reports open: how many, and whether all were.

        Ours end with ``CloseReason.LOCAL`` (closed the usual way); the rest were
        left by an earlier process or before a link drop. One being opened by us right
        now is left alone (and the listing is then not clean).
        """
        closed = 0
        clean = True
        for link in await self._open_links():
            if link in self._opening:
                clean = False
                continue  # being opened by us right now
            sock = self.sockets.get(link)
            if sock is not None:
                await sock.close()
                closed += 1
            elif await self._close_link(link):
                log.info("%s: closed connection %d left open on the modem", self.name, link)
                closed += 1
            else:
                clean = False
        return closed, clean and not self._opening

    # -- restart without a boot banner ---------------------------------------------------

    async def restart(self, timeout: float = 60.0) -> None:
        """Restart the modem; back when it prints a boot banner or, without one, answers ``AT``.

        An auto-bauding module prints no banner (see the module docstring): after
        :attr:`boot_quiet` seconds without one, ``AT`` is polled until it answers,
        and that answer is reported to the channel as the restart. A link that goes
        away meanwhile (a USB modem re-enumerating on its reset) ends the wait at once
        with :class:`~atbridge.errors.LinkLost`: the banner comes on the new device.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._awaiting_boot() as booted:
            await self._send_reset(booted)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(booted), min(self.boot_quiet, timeout))
            while not booted.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise StepTimeout(
                        f"the {self.name} modem neither printed a boot banner nor answered AT "
                        f"within {timeout:g} s of its reset",
                        hint="check the power supply and the serial wiring; an auto-bauding "
                        "module answers only at the baud rate it last detected",
                    )
                try:
                    await self.modem.command("AT", timeout=min(1.0, remaining))
                except (AtTimeout, ModemError, ModemRebooted):
                    continue  # still booting (or the banner came meanwhile)
                if not booted.done():
                    self.modem.report_restart("no boot banner after the reset (auto-bauding)")
                return
            booted.result()  # LinkLost if that is what ended the wait

    async def _send_in_parts(
        self,
        sock: ModemSocket,
        chunk: bytes,
        send_part: Callable[[bytes, Spans], Awaitable[int]],
    ) -> None:
        """Send ``chunk``: ``send_part(rest, spans)`` sends (a prefix of) what is left and says
        how much was taken; ``spans`` are the secret byte ranges of ``rest`` (the password of a
        CONNECT, :meth:`~atbridge.modem.Modem.payload_secrets`), for the transcript to mask.

        A part the modem takes none of, or any error, ends the socket (:meth:`_send_failed`).
        """
        secrets = self.modem.payload_secrets(sock, chunk)
        try:
            # The first part is the chunk itself (no copy, its spans as they are): one part
            # is the usual case, a chunk within the send limit that the modem takes whole.
            rest, spans = chunk, secrets
            while True:
                taken = min(await send_part(rest, spans), len(rest))
                if taken <= 0:
                    raise SocketError(
                        f"the modem took none of {len(rest)} bytes on connection {sock.handle}",
                        hint="the connection is gone or stalled; reconnect",
                    )
                offset = len(chunk) - len(rest) + taken
                if offset >= len(chunk):
                    return
                rest = chunk[offset:]
                spans = shift_spans(secrets, offset, len(rest))
        except AtBridgeError as exc:
            raise self._send_failed(sock, exc, len(chunk)) from exc

    def _send_failed(self, sock: ModemSocket, exc: AtBridgeError, size: int) -> SocketClosed:
        """Turn a failed send into the socket's end: it cannot be trusted any more."""
        if sock.closed is None:
            sock.mark_closed(
                CloseReason.ERROR, f"sending {size} bytes on connection {sock.handle} failed: {exc}"
            )
        assert sock.closed is not None
        return sock.closed

    async def _close_quietly(
        self, sock: ModemSocket, line: str, *, timeout: float
    ) -> Response | None:
        """Send a close command; an error answer means the modem had closed it already."""
        self._closing.add(sock)
        try:
            return await self.modem.command(line, timeout=timeout)
        except ModemError as exc:
            log.debug("%r: %s (already closed on the modem)", sock, exc)
            return None
        finally:
            self._closing.discard(sock)

    # -- results that may follow the OK --------------------------------------------------

    async def _result(
        self,
        line: str,
        prefix: str,
        *,
        timeout: float,
        what: str,
        hint: str,
        match: Callable[[str], bool] = lambda _value: True,
    ) -> str:
        """Send ``line``; return the value of its ``prefix`` result, before or after the OK.

        ``match`` picks the right result (``+CAOPEN: 3,...`` for cid 3). An error
        answer without a result raises :class:`ModemError`; no result within
        ``timeout`` raises :class:`StepTimeout` — both with ``hint``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.modem.expect_urc(
            prefix, predicate=lambda urc: match(_after(urc.text, prefix))
        ) as later:
            response = await self.modem.command(line, timeout=timeout, check=False)
            for value in response.values(prefix):
                if match(value):
                    return value
            if later.urc is not None:
                return _after(later.urc.text, prefix)
            if response.final != "OK":
                raise refusal(line, response.final, hint=hint)
            try:
                urc = await later.wait(max(0.0, deadline - loop.time()))
            except AtTimeout:
                shown = prefix.strip() or "result"
                raise StepTimeout(
                    f"{what}: the modem accepted {line!r} but sent no {shown} within {timeout:g} s",
                    hint=hint,
                ) from None
        return _after(urc.text, prefix)

    # -- DNS (the same command in all three families) -----------------------------------

    async def resolve_addresses(self, host: str, timeout: float = 30.0) -> tuple[str, ...]:
        """Look ``host`` up with ``AT+CDNSGIP`` (an address is returned as it is)."""
        with contextlib.suppress(ValueError):
            return (str(ipaddress.ip_address(host)),)
        value = await self._result(
            format_command("AT+CDNSGIP", host),
            CDNSGIP,
            timeout=timeout,
            what=f"resolving {host!r}",
            hint="check that the data connection is up (activate_data) and the host name",
        )
        params = split_params(value)
        addresses = tuple(unquote(param) for param in params[2:] if unquote(param))
        if int_param(params, 0) == 1 and addresses:
            return addresses
        code = str_param(params, 1) or "?"
        raise SocketError(
            f"the modem could not resolve {host!r} (+CDNSGIP: {value}, DNS error {code})",
            hint="check the spelling of the host name, that the data connection is up and "
            "that the network's DNS answers (try a well-known name)",
        )


def ciprxget_length(header: bytes) -> int | None:
    """Block length of ``+CIPRXGET: 2,<link>,<read_len>,<rest_len>`` (reference §5.2, §5.3)."""
    return field_int(header, b"+CIPRXGET: ", 2)


def is_ciprxget_notification(line: str) -> bool:
    """``+CIPRXGET: 1,<link>`` announces data; ``+CIPRXGET: 2,...``/``4,...`` answer reads."""
    mode = line.partition(":")[2].partition(",")[0].strip()
    return mode == "1" or (mode not in ("2", "3", "4") and parse_int(mode) == 1)


def ciprxget_link(line: str) -> int | None:
    """The ``<link>`` of ``+CIPRXGET: <mode>,<link>[,...]``."""
    return parse_int(line.partition(",")[2].partition(",")[0])


class CipRxgetDialect(SimcomDialect):
    """Manual receive with ``AT+CIPRXGET`` (SIM7600 and SIM7000/SIM800 share it)."""

    def install(self) -> None:
        modem = self.modem
        modem.add_block(BlockRule(b"+CIPRXGET: 2,", ciprxget_length))
        modem.register_urc(
            "+CIPRXGET:", is_response=lambda line: not is_ciprxget_notification(line)
        )
        modem.register_urc(CDNSGIP)
        self._unhook.append(modem.subscribe("+CIPRXGET: 1,", self._on_rxget_notification))

    def _on_rxget_notification(self, urc: Urc) -> None:
        link = ciprxget_link(urc.text)
        if link is not None:
            self.data_waiting(link)

    async def _read(self, sock: ModemSocket) -> tuple[bytes, bool]:
        try:
            # Integers only: the line needs no quoting (format_command's checks).
            response = await self.modem.command(
                f"AT+CIPRXGET=2,{sock.handle},{self.max_read}", timeout=10
            )
        except ModemError as exc:
            # SIM7600 answers "+IP ERROR: No data" + ERROR when nothing is waiting.
            log.debug("%r: read answered %s", sock, exc.final)
            return b"", False
        rest = 0
        for value in response.values("+CIPRXGET:"):
            if value.startswith("2"):
                rest = int_param(value, 3) or 0
        return response.data or b"", rest > 0

    async def _available(self, sock: ModemSocket) -> int | None:
        try:
            response = await self.modem.command(f"AT+CIPRXGET=4,{sock.handle}", timeout=10)
        except ModemError:
            return None
        for value in response.values("+CIPRXGET:"):
            if value.startswith("4"):
                return int_param(value, 2)
        return None
