"""What Nordic's Serial LTE Modem (``nrf91-slm``) and Serial Modem (``nrf91-sm``) do the same way.

Theory of operation
-------------------
:class:`NordicDialect` is the base of :mod:`atbridge.dialects.nrf91_slm` (SLM, nRF
Connect SDK <= 3.1, one *selected* socket) and :mod:`atbridge.dialects.nrf91_sm` (the
Serial Modem add-on, handle-based commands); those modules hold only the commands that
differ. Sources: ``shared/reference/at-dialects.md`` §2.5, §3, §4, §7, and the firmware
(sdk-nrf ``applications/serial_lte_modem``: ``doc/SOCKET_AT_commands.rst``,
``src/slm_at_socket.c``; ncs-serial-modem ``app/src/sm_at_socket.c``).

**Bearer and network loss.** The nRF91 default bearer is cid 0 (reference §4), so
``AT+CGDCONT=0,...`` sets the APN. ``AT+CGEREP=1`` turns on the ``+CGEV`` events;
``+CGEV: NW DETACH`` / ``ME DETACH`` and ``+CGEV: NW|ME PDN DEACT 0`` close every socket
with :attr:`CloseReason.NETWORK` (a PDN event for another cid is not ours).

**Receiving.** Data waits in the modem until it is read, so a lost notification loses
time, never data:

1. ``AT#XAPOLL`` asks for ``#XAPOLL: <handle>,<revents>`` notifications: POLLIN (1)
   once per arrival (re-armed by every read that returns data), POLLERR (8), POLLHUP (16)
   and POLLNVAL (32) once each. The SLM drops the notification while it is in data mode
   but polls POLLIN again when data mode ends (``slm_at_socket_notify_datamode_exit``);
   the SM buffers it.
2. Each socket has a :class:`~atbridge.dialects.receiver.Receiver` task. A notification
   wakes it; it reads with the
   non-blocking ``AT#XRECV`` (flag 64, MSG_DONTWAIT) until a read comes back short or
   empty. The answer is ``#XRECV: <header>`` then exactly the announced number of raw
   bytes then ``OK``: a :class:`~atbridge.at_parser.BlockRule` takes the bytes by count,
   never by scanning them. ``OK`` with no ``#XRECV`` line is end of stream (the peer
   closed: ``recv()`` returned 0); ``ERROR`` is "nothing to read now".
3. The safety net for a lost notification: a receiver that heard nothing for
   :attr:`NordicDialect.receive_poll_interval` seconds (default 30 s) reads once. That is
   one short command per idle half minute per socket, not busy polling. A modem that
   refuses ``AT#XAPOLL`` (SLM before it had the command) is read every
   :attr:`NordicDialect.fallback_poll_interval` seconds instead, with a warning.

**Peer close** is ``#XAPOLL: <h>,16`` (or 17 with data), or end of stream on a read: the
data received before it is delivered first, then the socket closes with
:attr:`CloseReason.PEER` and its handle is released on the modem.

**Reboots.** A boot banner closes every socket with :attr:`CloseReason.REBOOT` (wired in
the base) and clears the notification setting, which the next
:meth:`NordicDialect.initialise` or ``open_socket`` restores.

**Sockets left over.** Sockets belong to the modem, not to the host process: a killed
atbridge leaves its sockets open, and the modem allows 8. :meth:`NordicDialect.
close_leftover_sockets` lists what is open (SLM ``AT#XSOCKETSELECT?``, SM ``AT#XSOCKET?``
and ``AT#XSSOCKET?``) and closes each one. The probe's listing is the only one before the
first open: once everything listed is closed, nothing can be open until this dialect
creates a socket (it holds the port alone), so the listing before each open is skipped
until then; after any open (a reconnect) it runs again.

**Modem-core fault.** With ``CONFIG_NRF_MODEM_LIB_ON_FAULT_APPLICATION_SPECIFIC`` (the
default of both applications) a modem fault prints ``#XMODEM: FAULT,<reason>,<pc>``, then
``#XMODEM: SHUTDOWN,<result>`` and ``#XMODEM: INIT,<result>`` when the modem library is up
again, and no ``Ready`` (sdk-nrf ``applications/serial_lte_modem/src/main.c``,
ncs-serial-modem ``app/src/main.c``). The modem is back in CFUN=0, unregistered, with
``+CGEREP``, ``+CEREG`` and ``#XAPOLL`` at their defaults and no socket: at ``INIT`` the
dialect calls :meth:`~atbridge.dialects.base.Dialect.modem_reset`, which the channel and
the lifecycle treat as a reboot (re-arm, re-attach, reopen).

**Leaving data mode.** A modem left in data mode takes every ``AT`` as payload: after a
lost ``OK`` to the command that enters it, when that command reached a modem that had
just rebooted, or when its caller was cancelled. :meth:`NordicDialect.escape_data_mode`
is the way out the firmware documents: the terminator, with silence around it (the
channel's :attr:`~atbridge.modem.Modem.escape_guard`). The silence before it lets the
SLM's inactivity timer send any partial terminator as data (``raw_rx_handler``: a lone
``+`` left over from an earlier host would otherwise complete the match early), and
covers builds before sdk-nrf PR #6814 that wanted 1 s of silence around ``+++``. The
dialect knows when data mode may be on (a data mode command was sent and its end not
seen) and is then the channel's :attr:`~atbridge.modem.Modem.escape_hook`: a
resynchronisation escapes first. A transfer whose end does not come escapes at once.

**Reboots during a send.** A modem that reboots while it takes a data mode payload is
back in command mode for the rest of it: what follows would run as AT commands (a payload
holding ``\\r\\nAT+CFUN=0\\r\\n`` would turn the radio off). The payload is therefore
never written on the ``OK`` alone: first whatever came with the ``OK`` is read, and a boot
banner behind it (a modem that rebooted as it entered data mode) closes the socket with
REBOOT before one payload byte goes. What is left is a reboot *during* the payload: the
bytes that reach the modem once its UART is up again, before the host has read its banner
(a real nRF91 takes about a second to boot; what reaches it meanwhile is lost, not run).
The Serial Modem does not use data mode for sends at all (hex strings in the command
line, :mod:`atbridge.dialects.nrf91_sm`), so only the SLM, which has no other way to send
binary data, keeps that window. The payload is the command's ``after_ok``: the channel
writes it when the read that brought the ``OK`` has been routed, and drops it when a boot
banner came in that read (:mod:`atbridge.modem`, "Prompts"); no extra turn of the event
loop is spent on it.

**APN.** ``AT+CGDCONT`` on cid 0 is only sent when the modem's context differs: the
modem refuses to change the context of an active PDN, so an nRF91 already online with
that APN would fail the configure step.

**Identification.** Both firmwares answer ``AT+CGMI`` with Nordic and ``AT+CGMM`` with an
nRF91 model; each family's :attr:`~atbridge.dialects.base.Dialect.version_command`
(``AT#XSLMVER``, ``AT#XSMVER``) tells them apart.

**TLS on the modem.** ``AT#XSSOCKET=<family>,1,0,<sec_tag>,<peer_verify>`` creates the
socket; the host name is set with ``AT#XSSOCKETOPT`` (``TLS_HOSTNAME``) before
``AT#XCONNECT``, because the firmware sets neither SNI nor the name to check by itself
(sdk-nrf ``applications/serial_lte_modem/doc/SOCKET_AT_commands.rst``, ncs-serial-modem
``doc/app/at_socket.rst``). A connect that fails is answered with a plain ``ERROR``
(``slm_at_socket.c``/``sm_at_socket.c`` ``do_connect``), whatever the cause; atbridge then
lists the tag's CA with ``AT%CMNG=1,<sec_tag>,0`` (``%CMNG: <sec_tag>,<type>,"<sha256>"``
per item; listing, unlike writing, is allowed in every functional mode: nRF91 AT Commands
Reference, ``%CMNG``) so that a tag with no CA is told from every other failure.

What the reference marks unverified, or that differs between firmware builds, is a class
attribute: the terminator, the read size, the ``AT#XRECV`` flags and timeout, the
notification command and the poll intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from atbridge.at_parser import BlockRule
from atbridge.at_syntax import format_command, int_param, quote, split_params, str_param
from atbridge.dialects.base import Dialect, ModemSocket, check_port, is_ip_address
from atbridge.dialects.receiver import Receiver
from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    CloseReason,
    ConfigurationError,
    ModemError,
    ModemRebooted,
    SocketClosed,
    SocketError,
    TlsRefused,
)
from atbridge.modem import Modem, Response, Urc, UrcWaiter
from atbridge.tls import ModemTls
from atbridge.transcript import Spans

log = logging.getLogger(__name__)

#: ``#XAPOLL`` revents bits (decimal, reference §3.3).
POLLIN = 1
POLLERR = 8
POLLHUP = 16
POLLNVAL = 32


@dataclass
class ReadResult:
    """What one ``AT#XRECV`` gave: the bytes, and whether it was the end of the stream."""

    data: bytes = b""
    eof: bool = False


def pdp_lost_cid(text: str) -> int | None:
    """The cid a ``+CGEV: ... PDN DEACT <cid>`` / ``... DEACT ...,<cid>`` line names, if any."""
    body = text.partition(":")[2]
    if "PDN DEACT" in body:
        return _cid(int_param(body.split("PDN DEACT", 1)[1], 0))
    if "DEACT" in body:
        return _cid(int_param(body.split("DEACT", 1)[1], 2))
    return None


def _cid(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


@functools.lru_cache(maxsize=64)
def data_mode_status(text: str) -> int | None:
    """The ``<status>`` of a ``#XDATAMODE: <status>`` line (``None``: not a number).

    Cached: the same few lines come back on every send, and three readers look at each
    (the send waiting for it, the predicate, the dialect's own data mode flag).
    """
    return int_param(text[len("#XDATAMODE:") :], 0)


def data_mode_ended(urc: Urc) -> bool:
    """``#XDATAMODE: <status>`` with status 0 or negative: data mode is over.

    A positive status is ``CONFIG_SLM_DATAMODE_URC``'s report of a chunk sent while the
    modem stays in data mode; it is not the end.
    """
    status = data_mode_status(urc.text)
    return status is None or status <= 0


class _SocketErrors:
    """:meth:`NordicDialect._socket_errors`: a plain context manager (no generator, no
    coroutine: it sits on every send, issue 16)."""

    __slots__ = ("sock",)

    def __init__(self, sock: ModemSocket) -> None:
        self.sock = sock

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if isinstance(error, AtBridgeError) and not isinstance(error, SocketClosed):
            closed = self.sock.closed
            if closed is not None:
                raise closed from error


class NordicDialect(Dialect):
    """What the Serial LTE Modem and the Serial Modem do the same way (see the module doc)."""

    manufacturers: ClassVar[tuple[str, ...]] = ("Nordic",)
    models: ClassVar[tuple[str, ...]] = ("nRF91",)
    version_hint: ClassVar[str] = (
        "flash the Serial Modem or Serial LTE Modem application (the plain AT host "
        "has no socket commands), or pass --dialect"
    )
    default_cid: ClassVar[int] = 0
    max_send: ClassVar[int] = 2048
    #: ``OK``, then the whole SiP restarts and prints ``Ready`` (``slm_at_commands.c``,
    #: ``sm_at_commands.c`` ``handle_at_reset``); the modem has no ``AT+CFUN=1,1``.
    reset_command: ClassVar[str] = "AT#XRESET"
    network_lost_urcs: ClassVar[tuple[str, ...]] = (
        "+CGEV: NW DETACH",
        "+CGEV: ME DETACH",
        "+CGEV: NW PDN DEACT",
        "+CGEV: ME PDN DEACT",
        "+CGEV: NW DEACT",
        "+CGEV: ME DEACT",
    )
    #: The data mode terminator (``CONFIG_SLM_DATAMODE_TERMINATOR`` / ``..._SM_...``).
    datamode_terminator: ClassVar[bytes] = b"+++"
    #: The most one ``AT#XRECV`` returns (``NRF_SOCKET_TLS_MAX_MESSAGE_SIZE``, SM ``<data_len>``).
    read_size: ClassVar[int] = 2048
    #: ``AT#XRECV`` flags: 64 = MSG_DONTWAIT, answer at once.
    recv_flags: ClassVar[int] = 64
    #: ``AT#XRECV`` timeout in seconds, a bound in case the flag is not honoured (0 = forever).
    recv_timeout: ClassVar[int] = 1
    #: The command that turns on ``#XAPOLL`` notifications (POLLIN, all sockets).
    notification_command: ClassVar[str] = ""
    #: Registration is reported on ``+CEREG`` only (LTE-M and NB-IoT).
    registration_sources: tuple[str, ...] = ("+CEREG",)
    #: nRF91 AT Commands Reference: %XICCID, %XTEMP, %XVBAT (device); %XSYSTEMMODE,
    #: %XCBAND, %XMONITOR, %CONEVAL, %NBRGRSRP (radio: mode, band, serving cell,
    #: connection evaluation, neighbours); +CGCONTRDP (DNS servers), %XPTW, +CSCON.
    diagnostic_queries = MappingProxyType(
        {
            "device": (
                "AT+CGMI",
                "AT+CGMM",
                "AT+CGMR",
                "AT+CGSN=1",
                "AT+CIMI",
                "AT%XICCID",
                "AT+CPIN?",
                "AT%XTEMP?",
                "AT%XVBAT",
            ),
            "radio": (
                "AT+CFUN?",
                "AT%XSYSTEMMODE?",
                "AT%XCBAND",
                "AT+CESQ",
                "AT%XMONITOR",
                "AT%CONEVAL",
                "AT%NBRGRSRP",
            ),
            "network": (
                "AT+COPS?",
                "AT+CPSMS?",
                "AT+CEDRXRDP",
                "AT%XPTW?",
                "AT+CGDCONT?",
                "AT+CGPADDR",
                "AT+CGCONTRDP=0",
                "AT+CSCON?",
            ),
        }
    )
    sample_queries = ("AT%XMONITOR", "AT+CESQ")
    #: %CESQ signal notifications, %MDMEV modem events, +CSCON RRC state.
    watch_notifications = ("AT%CESQ=1", "AT%MDMEV=1", "AT+CSCON=1")

    #: Seconds to wait for ``#XDATAMODE`` after the payload of one send (the answer to a
    #: send command, for sends that use none).
    send_timeout: float = 60.0
    #: Seconds to wait for the ``OK`` of a command that enters data mode.
    data_mode_entry_timeout: float = 10.0

    def __init__(self, modem: Modem) -> None:
        #: Seconds a socket's receiver waits without a notification before it reads anyway.
        self.receive_poll_interval: float = 30.0
        #: The same when the modem has no ``AT#XAPOLL``: then reads are the only way.
        self.fallback_poll_interval: float = 1.0
        #: Security tag of the CA certificate for TLS sockets (``AT%CMNG``); None: no TLS.
        self.tls_sec_tag: int | None = None
        #: TLS peer verification: 0 none, 1 optional, 2 required.
        self.tls_peer_verify: int = 2
        #: The modem speaks TLS itself (``steps.TlsOffloader``).
        self.offloads_tls = True
        self._releases: set[asyncio.Task[None]] = set()
        self._notifications: bool | None = None
        self._events_on = False
        #: A data mode command was sent and the end of its data mode not seen.
        self._data_mode_possible = False
        self._fault: str | None = None
        super().__init__(modem)

    # -- setup ---------------------------------------------------------------------

    def install(self) -> None:
        self.modem.register_urc("#XAPOLL:")
        self.modem.register_urc("#XDATAMODE:")
        self.modem.register_urc("#XMODEM:")
        self.modem.add_block(BlockRule(b"#XRECV: ", self.recv_header_length))
        self._unhook.append(self.modem.subscribe("#XAPOLL:", self._on_apoll))
        self._unhook.append(self.modem.subscribe("#XDATAMODE:", self._on_data_mode_urc))
        self._unhook.append(self.modem.subscribe("#XMODEM:", self._on_xmodem))
        self.modem.escape_hook = self._escape_if_needed

    async def initialise(self) -> None:
        """Turn on ``+CGEV`` events and ``#XAPOLL`` socket notifications."""
        self._events_on = False
        self._notifications = None
        await self._ensure_ready()

    async def _ensure_ready(self) -> None:
        if not self._events_on:
            try:
                await self.modem.command("AT+CGEREP=1")
            except ModemError as exc:
                log.warning("AT+CGEREP=1 refused (%s): PDP loss shows only on reads", exc)
            self._events_on = True
        if self._notifications is None:
            try:
                await self.modem.command(self.notification_command)
                self._notifications = True
            except ModemError as exc:
                log.warning(
                    "%s refused (%s): without #XAPOLL notifications, open sockets are "
                    "read every %g s",
                    self.notification_command,
                    exc,
                    self.fallback_poll_interval,
                )
                self._notifications = False

    def detach_from_modem(self) -> None:
        super().detach_from_modem()
        if self.modem.escape_hook == self._escape_if_needed:
            self.modem.escape_hook = None
        for task in list(self._releases):
            task.cancel()

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None:
        """Set the APN of cid 0, unless the modem has it already (see the module doc)."""
        if apn is None:
            return
        response = await self.modem.command("AT+CGDCONT?", timeout=10)
        for value in response.values("+CGDCONT:"):
            params = split_params(value)
            if int_param(params, 0) == self.default_cid:
                if str_param(params, 1) == pdp_type and (str_param(params, 2) or "") == apn:
                    log.debug("cid %d already has APN %r: not set again", self.default_cid, apn)
                    return
                break
        await super().configure_pdp(apn, pdp_type=pdp_type)

    # -- data mode ---------------------------------------------------------------------

    async def escape_data_mode(self) -> None:
        """Leave data mode if the modem is in it: silence, the terminator, silence.

        Harmless in command mode (the firmware skips what comes before ``AT`` on the
        next line). The modem answers ``#XDATAMODE: <status>`` if it was in data mode.
        """
        if self.modem.transcript is not None:
            self.modem.transcript.note("escaping data mode (terminator with silence around it)")
        guard = self.modem.escape_guard
        await asyncio.sleep(guard)
        await self.modem.write(self.datamode_terminator)
        await asyncio.sleep(guard)
        self._data_mode_possible = False

    async def _escape_if_needed(self) -> None:
        """The channel's escape hook: escape only when data mode may be on."""
        if self._data_mode_possible:
            await self.escape_data_mode()

    def _on_data_mode_urc(self, urc: Urc) -> None:
        if data_mode_ended(urc):
            self._data_mode_possible = False

    # -- modem-core fault --------------------------------------------------------------

    def _on_xmodem(self, urc: Urc) -> None:
        body = urc.text[len("#XMODEM:") :].strip()
        event = body.partition(",")[0].strip().upper()
        if event == "FAULT":
            self._fault = urc.text
            log.warning("the modem core faulted: %s", urc.text)
        elif event == "INIT":
            fault = f"{self._fault}, " if self._fault else ""
            self._fault = None
            self.modem_reset(f"{fault}{urc.text} (the modem library restarted)")

    async def aclose(self) -> None:
        """Let handle releases in progress finish, stop the receivers, stop listening."""
        releases = list(self._releases)
        if releases:
            await asyncio.gather(*releases, return_exceptions=True)
        await super().aclose()

    # -- resolve ---------------------------------------------------------------------

    async def resolve_addresses(self, host: str, timeout: float = 30.0) -> tuple[str, ...]:
        """``AT#XGETADDRINFO="<host>"`` -> ``#XGETADDRINFO: "<ip>[ <ip>...]"``: every address."""
        line = format_command("AT#XGETADDRINFO", host)
        response = await self.modem.command(line, timeout=timeout, check=False)
        values = response.values("#XGETADDRINFO:")
        answer = (str_param(values[0], 0) or "") if values else ""
        if response.final != "OK":
            # A failed lookup still names the reason: ``#XGETADDRINFO: "EAI_NONAME"``.
            raise SocketError(
                f"the modem could not resolve {host!r}: {answer or response.final}",
                hint="check the host name and that the data connection is up "
                "(registered, AT+CGPADDR shows an address); EAI_AGAIN is temporary",
            )
        addresses = answer.split()
        if not addresses:
            raise SocketError(
                f"the modem answered OK to {line!r} but gave no address ({list(response.lines)})",
                hint="retry; if it repeats, check the modem's DNS with another host name",
            )
        return tuple(addresses)

    # -- open -------------------------------------------------------------------------

    async def open_socket(
        self, host: str, port: int, *, tls: bool | ModemTls = False, timeout: float = 60.0
    ) -> ModemSocket:
        """Open a TCP (or TLS) client socket to ``host:port``; see the module doc.

        ``tls`` a :class:`~atbridge.tls.ModemTls`: TLS on the modem with its security tag,
        peer verification and host name; ``True``: with :attr:`tls_sec_tag`.
        """
        check_port(port)
        quote(host, name="host")
        if isinstance(tls, ModemTls):
            offload: ModemTls | None = tls
        elif tls:
            if self.tls_sec_tag is None:
                raise ConfigurationError(
                    "a TLS socket needs the security tag of the CA certificate",
                    hint="give --sec-tag, the security tag the CA was written to with "
                    "atbridge certs write",
                )
            offload = ModemTls(host, self.tls_sec_tag, self.tls_peer_verify)
        else:
            offload = None
        if offload is not None:
            quote(offload.hostname, name="TLS host name")
        await self._ensure_ready()
        family = 2 if _is_ipv6(host) else 1
        async with self.modem.exclusive():
            handle = await self._create(family, offload)
            sock = self._adopt(ModemSocket(self, handle, host, port))
            # Known before the connect: a notification may follow its OK at once.
            receiver = self._receiver(
                sock,
                lambda _checking: self._drain(sock, receiver),
                poll_interval=self._poll_interval,
            )
            sock.on_close(lambda error: self._on_socket_closed(sock, error))
            try:
                if offload is not None and not is_ip_address(offload.hostname):
                    # The firmware never sets it: no SNI, no host-name check otherwise.
                    await self._set_tls_hostname(handle, offload.hostname)
                await self._connect(handle, host, port, timeout)
            except (ModemError, SocketError, AtTimeout) as exc:
                self._forget(sock)
                with contextlib.suppress(AtBridgeError):
                    await self._release(handle)
                if isinstance(exc, ModemError) and offload is not None:
                    if not await self._has_ca(offload.sec_tag):
                        raise TlsRefused(
                            f"could not connect to {host}:{port} over TLS on the modem: no "
                            f"CA certificate is stored under security tag {offload.sec_tag}",
                            hint=f"write the CA that signed the broker's certificate with "
                            f"atbridge certs write --sec-tag {offload.sec_tag} --ca FILE, or "
                            "give the --sec-tag it was written to (atbridge certs list)",
                        ) from exc
                    raise SocketError(
                        f"could not connect to {host}:{port} over TLS on the modem "
                        f"(security tag {offload.sec_tag}): it answered {exc.final!r} "
                        f"to {exc.command!r}",
                        hint=f"check that the CA that signed the broker's certificate is "
                        f"stored under security tag {offload.sec_tag} (atbridge certs list), "
                        f"that the certificate names {offload.hostname}, that the modem's "
                        "clock is right, and that the port speaks TLS",
                    ) from exc
                if isinstance(exc, ModemError):
                    raise SocketError(
                        f"could not connect to {host}:{port} through the modem: "
                        f"it answered {exc.final!r} to {exc.command!r}",
                        hint="check that the host resolves (resolve()), that the port is "
                        "open, and that the data connection is up",
                    ) from exc
                raise
            except AtBridgeError as exc:
                if sock.closed is not None:
                    raise sock.closed from exc
                raise
        self.receivers.start(receiver)
        return sock

    async def _has_ca(self, sec_tag: int) -> bool:
        """Whether ``AT%CMNG`` lists a CA certificate (type 0) under ``sec_tag``; True when
        the modem does not say (the connect's own error then stands). Inside
        ``exclusive()``: asked only after a TLS connect failed, so a good one costs nothing.
        """
        try:
            listed = await self.modem.command(format_command("AT%CMNG", 1, sec_tag, 0))
        except AtBridgeError:
            return True
        return any(value.split(",")[:2] == [str(sec_tag), "0"] for value in listed.values("%CMNG:"))

    # -- per family -------------------------------------------------------------------

    async def _close_listed(self) -> tuple[int, bool]:
        # A close that fails raises: the listing then counts as not clean.
        return await self._close_listed_sockets(), True

    async def _close_listed_sockets(self) -> int:
        """The family's listing of the open sockets, each one closed; how many."""
        raise NotImplementedError

    async def _create(self, family: int, tls: ModemTls | None) -> int:
        """Create a socket on the modem; return its handle. Inside ``exclusive()``.

        ``AT#XSOCKET=<family>,1,0`` (TCP client), ``AT#XSSOCKET=<family>,1,0,<sec_tag>,
        <peer_verify>`` for TLS: the same in both firmwares.
        """
        self._none_open = False  # from the command on, a socket may be open on the modem
        if tls is not None:
            line = format_command("AT#XSSOCKET", family, 1, 0, tls.sec_tag, tls.peer_verify)
            return await self._create_with(line, "#XSSOCKET:")
        return await self._create_with(format_command("AT#XSOCKET", family, 1, 0), "#XSOCKET:")

    async def _set_tls_hostname(self, handle: int, host: str) -> None:
        """Set the TLS host name to verify. Inside ``exclusive()``."""
        raise NotImplementedError

    async def _connect(self, handle: int, host: str, port: int, timeout: float) -> None:
        """Connect the socket; raise when it does not. Inside ``exclusive()``."""
        raise NotImplementedError

    async def _release(self, handle: int) -> None:
        """Close the handle on the modem. Inside ``exclusive()``."""
        raise NotImplementedError

    async def _read_once(self, handle: int) -> ReadResult:
        """One non-blocking ``AT#XRECV``. Inside ``exclusive()``."""
        raise NotImplementedError

    @staticmethod
    def recv_header_length(header: bytes) -> int | None:
        """The number of raw bytes after a ``#XRECV:`` header (None: not a data header)."""
        raise NotImplementedError

    # -- shared helpers ----------------------------------------------------------------

    async def _create_with(self, line: str, prefix: str) -> int:
        try:
            response = await self.modem.command(line, timeout=10)
        except ModemError as exc:
            raise SocketError(
                f"the modem could not open a socket: it answered {exc.final!r} to {line!r}",
                hint="close sockets you no longer use (the modem has at most 8) and check "
                "that the data connection is up",
            ) from exc
        values = response.values(prefix)
        handle = int_param(values[0], 0) if values else None
        if handle is None or handle < 0:
            raise SocketError(
                f"the modem did not open a socket: {line!r} gave {list(response.lines)}",
                hint="check that the data connection is up, then retry",
            )
        return handle

    async def _close(self, sock: ModemSocket) -> None:
        with self._socket_errors(sock):
            async with self.modem.exclusive():
                await self._release(sock.handle)

    async def _read_or_nothing(self, line: str) -> ReadResult:
        response = await self.modem.command(line, timeout=self.recv_timeout + 10, check=False)
        if response.final != "OK":
            return ReadResult()
        if response.data is None:
            return ReadResult(eof=True)
        return ReadResult(self._decode_block(response.lines, response.data))

    def _decode_block(self, lines: tuple[str, ...], data: bytes) -> bytes:
        return data

    def _socket_errors(self, sock: ModemSocket) -> _SocketErrors:
        """A reboot or link loss during a socket command is the socket's end:
        ``with self._socket_errors(sock):`` raises the socket's :class:`SocketClosed`
        in place of the channel's error once the socket has closed."""
        return _SocketErrors(sock)

    async def _wait_urc(self, waiter: UrcWaiter, sock: ModemSocket, timeout: float) -> Urc:
        """The URC, or the socket's :class:`SocketClosed` if it ends first (reboot...).

        :class:`~atbridge.errors.AtTimeout` when neither comes within ``timeout`` s.
        One future, resolved by whichever comes first: the URC, the socket closing,
        or the timer.
        """
        if sock.closed is not None:
            raise sock.closed
        return await waiter.wait(timeout, abort_on=sock.on_close)

    async def _data_mode_result(
        self, waiter: UrcWaiter, sock: ModemSocket, size: int, write_terminator_late: bool
    ) -> None:
        """Wait for ``#XDATAMODE: <status>`` after a data mode payload; raise if it failed."""
        try:
            urc = await self._wait_urc(waiter, sock, self.send_timeout)
        except AtTimeout:
            if write_terminator_late:
                # The modem may be dropping input until it sees the terminator.
                await self.modem.write(self.datamode_terminator)
                with contextlib.suppress(AtTimeout):
                    urc = await self._wait_urc(waiter, sock, 5.0)
                    return self._check_data_mode(urc, sock, size)
            # Nothing else may be sent before the modem is surely out of data mode.
            await self.escape_data_mode()
            sock.mark_closed(
                CloseReason.ERROR, f"no #XDATAMODE within {self.send_timeout:g} s of a send"
            )
            raise SocketError(
                f"the modem did not confirm sending {size} bytes on socket {sock.handle} "
                f"(no #XDATAMODE within {self.send_timeout:g} s)",
                hint="the serial link may have dropped bytes (use hardware flow control) or "
                "the modem hangs; reconnect, and reboot the modem if it repeats",
            ) from None
        self._check_data_mode(urc, sock, size)

    async def _send_in_data_mode(
        self,
        sock: ModemSocket,
        line: str,
        payload: bytes,
        size: int,
        *,
        write_terminator_late: bool,
        secret_spans: Spans = (),
    ) -> None:
        """Send ``line``, then ``payload`` (``size`` data bytes) in data mode; in ``exclusive()``.

        The payload goes the moment the ``OK`` says the modem is in data mode, never
        before it and never without it; then ``#XDATAMODE`` says whether it was sent.
        ``secret_spans`` of ``payload`` are masked in the transcript.
        """
        with self.modem.expect_urc("#XDATAMODE:", predicate=data_mode_ended) as done:
            # Until its end is seen, the modem may be in data mode (module doc).
            self._data_mode_possible = True
            try:
                # The channel writes the payload once the read that brought the OK is
                # routed, and drops it when a boot banner came in that read (module doc).
                await self.modem.command(
                    line,
                    timeout=self.data_mode_entry_timeout,
                    after_ok=payload,
                    payload_secret_spans=secret_spans,
                )
                if sock.closed is not None:
                    raise sock.closed  # a banner behind the OK: nothing was written
            except ModemError as exc:
                self._data_mode_possible = False
                raise self._send_refused(sock, exc) from exc
            except (AtTimeout, ModemRebooted) as exc:
                # A lost OK, or the command reached a modem that had just rebooted: it
                # may be in data mode with no payload coming. Out before anything else.
                await self.escape_data_mode()
                if sock.closed is not None:
                    raise sock.closed from exc
                sock.mark_closed(CloseReason.ERROR, f"no answer to {line!r}")
                raise SocketError(
                    f"the modem did not confirm entering data mode for {line!r} on socket "
                    f"{sock.handle}",
                    hint="the serial link may have dropped bytes (use hardware flow control); "
                    "the lifecycle reconnects",
                ) from exc
            await self._data_mode_result(
                done, sock, size, write_terminator_late=write_terminator_late
            )

    def _send_refused(self, sock: ModemSocket, exc: ModemError) -> SocketError:
        """The modem refused a send command: read the socket (it may have closed), say so."""
        self.data_waiting(sock.handle)
        return SocketError(
            f"the modem refused to send on socket {sock.handle}: "
            f"it answered {exc.final!r} to {exc.command!r}",
            hint="the connection may be closed; close the socket and reconnect",
        )

    def _check_data_mode(self, urc: Urc, sock: ModemSocket, size: int) -> None:
        status = data_mode_status(urc.text)
        if status is not None and status >= 0:
            return
        self.data_waiting(sock.handle)
        raise SocketError(
            f"the modem could not send {size} bytes on socket {sock.handle}: {urc.text!r}",
            hint="the connection is probably broken (peer or network); close the socket "
            "and reconnect",
        )

    # -- receiving ------------------------------------------------------------------------

    def _poll_interval(self) -> float:
        return self.receive_poll_interval if self._notifications else self.fallback_poll_interval

    def _on_apoll(self, urc: Urc) -> None:
        params = split_params(urc.text[len("#XAPOLL:") :])
        handle, revents = int_param(params, 0), int_param(params, 1)
        if handle is None or revents is None:
            return
        receiver = self.receivers.get(handle)
        if receiver is None:
            return
        if revents & POLLHUP:
            receiver.end(CloseReason.PEER, "#XAPOLL POLLHUP")
        elif revents & (POLLERR | POLLNVAL):
            receiver.end(CloseReason.ERROR, f"#XAPOLL revents {revents}")
        else:
            receiver.wake()

    async def _drain(self, sock: ModemSocket, receiver: Receiver) -> None:
        """Read until a read comes back short or empty (after a hang-up: empty)."""
        while sock.closed is None:
            with self._socket_errors(sock):
                async with self.modem.exclusive():
                    if sock.closed is not None:
                        return
                    result = await self._read_once(sock.handle)
            sock.data_received(result.data)
            if result.eof:
                self._peer_closed(sock, "end of stream on read")
                return
            if not result.data or (len(result.data) < self.read_size and receiver.ended is None):
                return

    def _peer_closed(self, sock: ModemSocket, detail: str) -> None:
        sock.mark_closed(CloseReason.PEER, detail)

    def _on_socket_closed(self, sock: ModemSocket, error: SocketClosed) -> None:
        if error.reason in (CloseReason.PEER, CloseReason.NETWORK, CloseReason.ERROR):
            release = asyncio.ensure_future(self._release_quietly(sock.handle))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)

    async def _release_quietly(self, handle: int) -> None:
        if handle in self.sockets:
            return  # the modem already gave the handle to a new socket
        try:
            async with self.modem.exclusive():
                await self._release(handle)
        except AtBridgeError as exc:
            log.debug("releasing socket %d on the modem failed: %s", handle, exc)

    # -- events ----------------------------------------------------------------------------

    def _on_network_lost_urc(self, urc: Urc) -> None:
        cid = pdp_lost_cid(urc.text)
        if cid is not None and cid != self.default_cid:
            return
        self.network_lost(urc.text)

    def _on_reboot(self, banner: str) -> None:
        self._events_on = False
        self._notifications = None
        super()._on_reboot(banner)


def _is_ipv6(host: str) -> bool:
    return ":" in host and is_ip_address(host)


def response_int(response: Response, prefix: str) -> int | None:
    """The first parameter of the first ``prefix`` line as an integer, or ``None``."""
    values = response.values(prefix)
    return int_param(values[0], 0) if values else None


__all__ = [
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLNVAL",
    "NordicDialect",
    "ReadResult",
    "data_mode_ended",
    "pdp_lost_cid",
    "response_int",
]
