"""The SIMCom SIM7600 / SIM7500 / A76xx (NETOPEN/CIPOPEN TCP stack), as a fake dialect.

Sources: shared/reference/at-dialects.md §5.3 and §5.4; the SIM7500/SIM7600 TCPIP manual's
information elements and error tables (+CIPEVENT, +IPCLOSE reasons, <err>, <err_info>, as
mirrored on momoiot.co.kr/lte-at); TinyGSM ``TinyGsmClientSIM7600.h`` as evidence of what the
module sends (``+CIPOPEN:`` after OK, ``+CIPSEND: <link>,<req>,<cnf>``, ``+CIPRXGET: 2,...``).

- Boot ``RDY``, ``+CPIN: READY``, ``SMS DONE``, ``PB DONE``; echo on, CR ends a line.
- Identity ``SIMCOM INCORPORATED`` / ``SIMCOM_SIM7600G-H`` / ``+CGMR: LE20B04SIM7600G22``.
- ``AT+NETOPEN`` -> ``OK`` then ``+NETOPEN: 0`` (``+NETOPEN: 1`` unregistered); again ->
  ``+IP ERROR: Network is already opened`` + ``ERROR``. ``AT+NETOPEN?`` -> ``+NETOPEN: <0|1>``.
  ``AT+NETCLOSE`` -> ``OK`` then ``+NETCLOSE: 0`` (closes every link); not open ->
  ``+IP ERROR: Network is already closed`` + ``ERROR``. ``AT+IPADDR`` -> ``+IPADDR: <ip>``.
- ``AT+CIPRXGET=1`` manual receive (0 = push: ``+IPD<len>`` or, with AT+CIPCCFG HeaderType=1,
  ``+RECEIVE,<link>,<len>``, then the data). ``+CIPRXGET: 1,<link>`` when data becomes
  readable; ``AT+CIPRXGET=2,<link>[,<len>]`` (1..1500) -> ``+CIPRXGET: 2,<link>,<read>,<rest>``
  CR LF, exactly read bytes, then ``OK`` (``...,0,0`` when nothing is buffered);
  ``AT+CIPRXGET=3,...`` the same in hex (up to 750 bytes); ``AT+CIPRXGET=4,<link>`` ->
  ``+CIPRXGET: 4,<link>,<avail>``.
- ``AT+CIPOPEN=<link>,"TCP","<host>",<port>`` (link 0..9) -> ``OK`` then
  ``+CIPOPEN: <link>,<err>`` (0 ok, 11 DNS parse failed, 1 network failure: refused, not
  loopback or PDP lost); a busy link -> ``+CIPOPEN: <link>,4`` + ``ERROR``; network not open
  -> ``+IP ERROR: Network not opened`` + ``ERROR``. ``AT+CIPOPEN?`` lists the links.
- ``AT+CIPSEND=<link>,<len>`` (1..1500) -> ``\\r\\n> `` -> exactly len bytes -> ``OK`` then
  ``+CIPSEND: <link>,<len>,<len>``; a failed send -> ``OK`` then ``+CIPSEND: <link>,<len>,-1``.
- ``+IPCLOSE: <link>,1`` when the peer closes (buffered data stays readable).
  ``AT+CIPCLOSE=<link>`` -> ``OK`` then ``+CIPCLOSE: <link>,0``; not open ->
  ``+CIPCLOSE: <link>,4`` + ``ERROR``. ``AT+CIPCLOSE?`` -> ``+CIPCLOSE: <s0>,...,<s9>``.
- PDP drop fault: ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY``; every link is reset (no
  +IPCLOSE), the network library stays "opened" (``+NETOPEN: 1``) but unusable until
  ``AT+NETCLOSE`` and ``AT+NETOPEN`` (the manual's recovery: close the sockets, NETCLOSE).
- ``AT+CDNSGIP="<host>"`` -> ``+CDNSGIP: 1,"<host>","<ip>"`` + ``OK``, or
  ``+CDNSGIP: 0,10`` + ``ERROR``.
- ``AT+CPSI?`` -> ``+CPSI: LTE,Online,...,<RSRQ>,<RSRP>,<RSSI>,<SNR>`` with RSRQ/RSRP/RSSI in
  0.1 dB units. Field diagnostics (+CBC ``3.900V``, +CPMUTEMP, +CNMP) are ``simcom_diag``'s.
  An LTE Cat-1/4 module: no ``rat="nbiot"``.
- Accepted and ignored: ``AT+CIPMODE=0``, ``AT+CIPSENDMODE``, ``AT+CIPTIMEOUT``, ``AT+CIPSRIP``,
  ``AT+CIPHEAD``; ``AT+CIPCCFG`` keeps only HeaderType (5th parameter).
- Links outlive the host: a host that goes away leaves them open; ``AT+CIPCLOSE?`` shows them
  (1) and ``AT+CIPOPEN`` on one is refused (``+CIPOPEN: <link>,4`` + ERROR) until it is closed.
- Every reboot comes back with echo on and receive mode 0 (push): a host must set
  ``ATE0`` and ``AT+CIPRXGET=1`` again.

Models (``model()``; ``FakeModem(dialect=model("A7672"))`` or ``--dialect a7672``):

- ``SIM7600`` (the registered ``sim7600``): as above.
- ``A7672``: identity ``SIMCOM INCORPORATED`` / ``A7672E-LASE`` / ``+CGMR: A011B06A7672M7``; it
  boots with ``*ATREADY: 1`` where the SIM7600 prints ``RDY`` (the issue's report of A76xx
  boards; the A76XX manual was not readable here), then ``+CPIN: READY``, ``SMS DONE``,
  ``PB DONE``. TinyGSM ``TinyGsmClientA7672x.h`` sets ``AT+CIPRXGET=1`` before ``AT+NETOPEN``.
- ``autobaud=True`` drops the power-on banner; ``late_boot=S`` sends ``SMS DONE`` and
  ``PB DONE`` ``S`` seconds after power-on instead of with it.

The SSL client (``AT+CCH*``) and its certificate store, with real TLS
-------------------------------------------------------------------
Sources: the SIM7500/SIM7600 Series AT Command Manual V2.00, SSL chapter (as mirrored on
momoiot.co.kr ``lte-at/cmd/ssl``: the command list, ``AT+CCHSTART`` -> ``OK`` then
``+CCHSTART: 0``, ``AT+CCHSTOP`` -> ``OK`` then ``+CCHSTOP: 0``, ``AT+CCHOPEN=?`` ->
``(0-1),"ADDRESS",(1-65535)[,(1-2)[,(1-65535)]]``, ``AT+CCHOPEN?`` showing a connected
session's ``"<host>",<port>,<client_type>``, the SSL ``<err>`` codes); TinyGSM
``TinyGsmClientSIM7600.h`` (``AT+CCHSET=<report_send_result>,<recv_mode>``, the
``+CCHEVENT: <session>,RECV EVENT`` notice, ``+CCHRECV: DATA,<session>,<len>`` then the
bytes then ``+CCHRECV: <session>,0`` before the ``OK``, ``AT+CCHRECV?`` ->
``+CCHRECV: LEN,<cached0>,<cached1>``, ``+CCHSEND: <session>,<err>``,
``+CCH_PEER_CLOSED: <session>``, ``AT+CSSLCFG`` "sslversion" 0-4 and "authmode" 0-3,
``AT+CCERTDOWN="<name>",<len>`` -> ``>`` -> bytes -> ``OK``, ``AT+CCERTDELE``).

- Store: ``AT+CCERTDOWN="<name>",<len>`` (a ``.pem`` or ``.der`` name, 1..10240 bytes)
  -> prompt -> exactly ``<len>`` bytes -> ``OK``; ``AT+CCERTLIST`` -> ``+CCERTLIST:
  "<name>"`` per file; ``AT+CCERTDELE="<name>"`` -> ``OK`` (``ERROR`` when absent). Kept
  per ``FakeModem`` across reboots (the module's flash).
- ``AT+CSSLCFG="<option>",<ctx>,<value>`` on contexts 0-9 (lost at power-off):
  "sslversion" (0 SSL 3.0, 1 TLS 1.0, 2 TLS 1.1, 3 TLS 1.2, 4 all; default 4: the fake's
  TLS never goes above 1.2, nor does the module's), "authmode" (0 none, 1 server, 2
  server and client, 3 client; default 0), "ignorelocaltime" (1, the default: the
  certificate's dates are not checked), "cacert"/"clientcert"/"clientkey" (file names),
  "enableSNI" (0 default); others accepted and ignored. ``AT+CCHSSLCFG=<session>,<ctx>``
  picks a session's context (default: context 0).
- ``AT+CCHSET=<report_send_result>,<recv_mode>`` (default 0,0). ``AT+CCHSTART``: ``OK``
  then ``+CCHSTART: 0`` (``+CCHSTART: 17`` unregistered); ``ERROR`` when already started
  (unverified: the manual only says "if failed: ERROR"). ``AT+CCHSTOP`` closes every
  session (no per-session notice). Both are needed around sessions: ``AT+CCHOPEN``,
  ``AT+CCHOPEN?`` and ``AT+CCHRECV`` answer ``ERROR`` before ``AT+CCHSTART``.
- ``AT+CCHOPEN=<session>,"<host>",<port>[,<client_type>]`` (session 0-1, client_type 2
  SSL/TLS, the default; 1 plain TCP is not modelled) -> ``OK`` then ``+CCHOPEN:
  <session>,<err>``: 0, 13 (DNS), 14 (connect: refused, not loopback), 15 (handshake),
  19 (authmode asks for a file that is not stored), 10 (the session is open). The TLS is
  Python's :mod:`ssl` on the fake's side of the TCP bridge
  (``nrf91_tls.TlsLoopbackConnection``): the only trust anchor is the context's
  "cacert" file; with authmode 1 or 2 the chain *and the host name* are checked (the
  fake's reading of "server authentication"; unverified on a board), and with
  "ignorelocaltime" 0 the dates too, against real time and against the fake's clock
  when it was moved (``set_clock``, ``AT+CCLK=``); authmode 2 or 3 offers the
  "clientcert"/"clientkey" pair. SNI is sent only with "enableSNI" 1 (the name is the
  host of ``AT+CCHOPEN``); without SNI a host name is not checked either, an address
  always is (against the certificate's IP addresses; :func:`last_handshake` records
  what was sent).
- ``AT+CCHSEND=<session>,<len>`` (1..2048) -> prompt -> exactly ``<len>`` bytes -> ``OK``,
  then ``+CCHSEND: <session>,0`` when report_send_result is 1.
- Receive, recv_mode 1: the first data after a read is announced once with
  ``+CCHEVENT: <session>,RECV EVENT``; ``AT+CCHRECV=<session>[,<len>]`` (up to 1500) ->
  ``+CCHRECV: DATA,<session>,<n>``, the bytes, ``+CCHRECV: <session>,0``, ``OK`` (only
  the last two when nothing is cached). recv_mode 0 pushes ``+CCHRECV: DATA,...`` and
  the bytes at once.
- ``+CCH_PEER_CLOSED: <session>`` when the broker closes (what is cached stays
  readable). ``AT+CCHCLOSE=<session>`` -> ``OK`` then ``+CCHCLOSE: <session>,0``; not open
  -> ``ERROR``. Sessions outlive the host, as the CIP links do.
- ``AT+CCLK?`` -> ``+CCLK: "yy/MM/dd,hh:mm:ss+00"`` (the fake's clock: real time unless
  moved); ``AT+CCLK="..."`` moves it. Kept across reboots (the module's RTC).

Size: the fake answers both socket stacks of the module (``AT+CIP*`` and the ``AT+CCH*`` SSL
client with its certificate store), written from the manuals; they share one modem state.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import tempfile
import weakref
from typing import Final, Literal

from . import simcom_common as sc
from . import simcom_diag
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response
from .loopback import Receiver, is_ipv4
from .nrf91_tls import TlsLoopbackConnection
from .registry import Dialect, Identity, register_dialect
from .simcom_common import clock, set_clock  # re-exported: the fake's RTC

__all__ = [
    "A7672",
    "A7672_BANNER",
    "MAX_RECV",
    "MAX_SEND",
    "SIM7600",
    "Handshake",
    "Sim7600State",
    "certificate_files",
    "clock",
    "last_handshake",
    "model",
    "set_clock",
    "store_certificate",
]

log = logging.getLogger("tests.fakes.sim7600")

MAX_SEND: Final = 1500
MAX_RECV: Final = 1500
MAX_RECV_HEX: Final = 750
LINKS: Final = range(10)
RX_BUFFER: Final = 32768
#: +CIPOPEN <err> for a refused / unreachable peer: 1 "Network failure" (the manual lists no
#: "refused"; unverified on a board).
ERR_CONNECT: Final = 1
ERR_DNS: Final = 11
ERR_BUSY: Final = 4
#: The SSL client: sessions of ``AT+CCHOPEN``, contexts of ``AT+CSSLCFG``, limits.
SESSIONS: Final = range(2)
SSL_CONTEXTS: Final = range(10)
MAX_CCH_SEND: Final = 2048
MAX_CCH_RECV: Final = 1500
MAX_CERT: Final = 10240
#: SSL ``<err>`` codes the fake reports (the manual's list).
CCH_OPEN_SESSION: Final = 10
CCH_DNS: Final = 13
CCH_CONNECT: Final = 14
CCH_HANDSHAKE: Final = 15
CCH_NO_NETWORK: Final = 17
CCH_NO_CERTIFICATES: Final = 19
#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: "ignorelocaltime" 1 (no date check).
_NO_CHECK_TIME: Final = 0x200000


@dataclasses.dataclass
class SslContext:
    """One ``AT+CSSLCFG`` context (defaults as the module boots)."""

    sslversion: int = 4
    authmode: int = 0
    ignorelocaltime: int = 1
    enable_sni: int = 0
    cacert: str | None = None
    clientcert: str | None = None
    clientkey: str | None = None


class Sim7600State(sc.SimcomState):
    """Power-on state: network library, receive mode, header type, links; the SSL client."""

    def __init__(self) -> None:
        super().__init__()
        self.net_open = False
        self.net_broken = False
        self.rxget_mode = 0
        self.header_type = 0
        self.ssl_contexts = [SslContext() for _ in SSL_CONTEXTS]
        self.session_context = {session: 0 for session in SESSIONS}
        self.cch_report_send = 0
        self.cch_recv_mode = 0
        self.cch_started = False
        self.sessions: dict[int, sc.SimSocket] = {}

    def drop_pdp(self, fake: FakeModem) -> None:
        if not self.net_open or self.net_broken:
            return
        self.net_broken = True
        for sock in (*self.sockets.values(), *self.sessions.values()):
            sock.drop()
        fake.send_urc("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")

    def after_send(self, fake: FakeModem) -> None:
        if self.rxget_mode == 0:
            for sock in list(self.sockets.values()):
                if sock.state in ("open", "peer_closed") and sock.available:
                    _push(sock)
        if self.cch_recv_mode == 0:
            for sock in list(self.sessions.values()):
                if sock.state in ("open", "peer_closed") and sock.available:
                    _push_tls(sock)

    def abort_all(self) -> None:
        super().abort_all()
        for sock in self.sessions.values():
            sock.abort()

    async def close_all(self) -> None:
        await super().close_all()
        socks = list(self.sessions.values())
        for sock in socks:
            sock.abort()
        for sock in socks:
            await sock.wait_closed()


def _state(fake: FakeModem) -> Sim7600State:
    return fake.dialect_state_as(Sim7600State)


def _push(sock: sc.SimSocket) -> None:
    """Push mode (AT+CIPRXGET=0): the data goes out at once after a header line."""
    st = _state(sock.fake)
    if st.sending:  # not inside a send's prompt: after_send pushes it
        return
    data = sock.take(sock.available)
    header = f"+RECEIVE,{sock.link},{len(data)}" if st.header_type == 1 else f"+IPD{len(data)}"
    sock.fake.write_raw(f"\r\n{header}\r\n".encode() + data)


def _on_data(sock: sc.SimSocket) -> None:
    if _state(sock.fake).rxget_mode == 1:
        sc.send_notice(sock.fake, f"+CIPRXGET: 1,{sock.link}")
    else:
        _push(sock)


def _on_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"+IPCLOSE: {sock.link},1")


def _ip_error(text: str) -> Response:
    return Response(lines=(f"+IP ERROR: {text}",), final="ERROR")


def _netopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if cmd.kind is Kind.READ:
        return Response.ok(f"+NETOPEN: {int(st.net_open)}")
    if st.net_open:
        return _ip_error("Network is already opened")

    def opened() -> None:
        if fake.state.registered:
            st.net_open, st.net_broken = True, False
            fake.send_urc("+NETOPEN: 0")
        else:
            fake.send_urc("+NETOPEN: 1")

    fake.after_response(opened)
    return Response.ok()


def _netclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if not st.net_open:
        return _ip_error("Network is already closed")
    for sock in st.sockets.values():
        sock.close()
    st.sockets.clear()
    st.net_open = st.net_broken = False
    fake.after_response(lambda: fake.send_urc("+NETCLOSE: 0"))
    return Response.ok()


def _ipaddr(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if not st.net_open or st.net_broken:
        return _ip_error("Network not opened")
    return Response.ok(f"+IPADDR: {fake.network.ip}")


def _cipopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CIPOPEN: (0-9),("TCP","UDP")')
    if cmd.kind is Kind.READ:
        lines = []
        for link in LINKS:
            sock = st.sockets.get(link)
            if sock is not None and sock.connected:
                lines.append(f'+CIPOPEN: {link},"TCP","{sock.address}",{sock.port},-1')
            else:
                lines.append(f"+CIPOPEN: {link}")
        return Response.ok(*lines)
    link = cmd.int_arg(0, valid=LINKS)
    kind = cmd.str_arg(1).upper()
    host = cmd.str_arg(2)
    port = cmd.int_arg(3, valid=range(1, 65536))
    if kind != "TCP" or len(cmd.params) > 5:  # UDP and the local port are not modelled
        raise CommandError(None)
    if not st.net_open:
        return _ip_error("Network not opened")
    old = st.sockets.get(link)
    if old is not None and old.connected:
        return Response(lines=(f"+CIPOPEN: {link},{ERR_BUSY}",), final="ERROR")
    sock = sc.SimSocket(
        fake, link, host, port, rx_limit=RX_BUFFER, on_data=_on_data, on_peer_close=_on_peer_close
    )
    st.sockets[link] = sock

    async def connect() -> None:
        address = sc.resolve(fake, host)
        if address is None:
            err = ERR_DNS
        elif st.net_broken or not await sock.connect(address):
            err = ERR_CONNECT
        else:
            err = 0
        if st.sockets.get(link) is not sock:
            sock.abort()
            return
        if err:
            sock.abort()
            del st.sockets[link]
        fake.send_urc(f"+CIPOPEN: {link},{err}")
        if not err:
            sock.activate()

    def start() -> None:
        fake.spawn(connect())

    fake.after_response(start)
    return Response.ok()


async def _cipsend(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CIPSEND: (0-9),(1-{MAX_SEND})")
    link = cmd.int_arg(0, valid=LINKS)
    length = cmd.int_arg(1, valid=range(1, MAX_SEND + 1))
    sock = st.sockets.get(link)
    if sock is None or sock.state != "open":
        raise CommandError(None)
    payload, trailer = await sc.take_payload(fake, st, length)
    if st.faults.take_failed_send():
        trailer.append(f"+CIPSEND: {link},{length},-1")
    else:
        sock.send(payload)
        trailer.append(f"+CIPSEND: {link},{length},{length}")
    return Response.ok()


def _ciprxget(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CIPRXGET: (0-4),(0-9),(1-{MAX_RECV})")
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CIPRXGET: {st.rxget_mode}")
    mode = cmd.int_arg(0, valid=range(5))
    if mode in (0, 1):
        if len(cmd.params) > 1:
            raise CommandError(None)
        st.rxget_mode = mode
        return Response.ok()
    if st.rxget_mode != 1:
        raise CommandError(None)
    link = cmd.int_arg(1, valid=LINKS)
    sock = st.sockets.get(link)
    if sock is None:
        raise CommandError(None)
    if mode == 4:
        if len(cmd.params) > 2:
            raise CommandError(None)
        return Response.ok(f"+CIPRXGET: 4,{link},{sock.available}")
    limit = MAX_RECV if mode == 2 else MAX_RECV_HEX
    length = cmd.int_arg(2, valid=range(1, limit + 1), default=limit)
    data = sock.take(length)
    header = f"+CIPRXGET: {mode},{link},{len(data)},{sock.available}"
    if not data:
        return Response.ok(header)
    body = data if mode == 2 else data.hex().upper().encode()
    return Response(lines=(header, body))


def _cipclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CIPCLOSE: (0-9)")
    if cmd.kind is Kind.READ:
        flags = []
        for link in LINKS:
            sock = st.sockets.get(link)
            flags.append("1" if sock is not None and sock.connected else "0")
        return Response.ok("+CIPCLOSE: " + ",".join(flags))
    link = cmd.int_arg(0, valid=LINKS)
    sock = st.sockets.get(link)
    if sock is None or sock.state not in ("connecting", "open", "dropped"):
        return Response(lines=(f"+CIPCLOSE: {link},4",), final="ERROR")
    sock.close()
    del st.sockets[link]
    fake.after_response(lambda: fake.send_urc(f"+CIPCLOSE: {link},0"))
    return Response.ok()


def _cipccfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is not Kind.SET:
        return Response.ok(f"+CIPCCFG: 10,0,0,1,{st.header_type},0,500")
    for index in range(len(cmd.params)):
        if cmd.has(index):
            cmd.int_arg(index)
    st.header_type = cmd.int_arg(4, valid=(0, 1), default=st.header_type)
    return Response.ok()


def _accept(valid: range | tuple[int, ...] | None) -> Handler:
    """A setting the fake accepts and ignores (integers; the first within ``valid``)."""

    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
        if cmd.kind is not Kind.SET:
            return Response.ok()
        cmd.int_arg(0, valid=valid)
        for index in range(1, len(cmd.params)):
            cmd.int_arg(index)
        return Response.ok()

    return handler


# ---------------------------------------------------------------------------------------------
# The SSL client (module docstring): certificate store, contexts, sessions, clock

_FILES: weakref.WeakKeyDictionary[FakeModem, dict[str, bytes]] = weakref.WeakKeyDictionary()
_HANDSHAKES: weakref.WeakKeyDictionary[FakeModem, Handshake] = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class Handshake:
    """What the fake's TLS client did on the last ``AT+CCHOPEN``: the SNI it sent (None:
    none), whether it checked the host name and offered a client certificate, its result."""

    sni: str | None
    checked_host: bool
    client_certificate: bool
    err: int


def certificate_files(fake: FakeModem) -> dict[str, bytes]:
    """The fake's certificate store: file name -> content (kept across reboots)."""
    return _FILES.setdefault(fake, {})


def store_certificate(fake: FakeModem, name: str, content: str | bytes) -> None:
    """Put a file in the store, as a provisioned module would have it."""
    certificate_files(fake)[name] = content.encode() if isinstance(content, str) else content


def last_handshake(fake: FakeModem) -> Handshake | None:
    """The last ``AT+CCHOPEN``'s TLS client settings and result, if there was one."""
    return _HANDSHAKES.get(fake)


def _cert_name(cmd: Command, index: int) -> str:
    name = cmd.str_arg(index)
    if not name or not name.lower().endswith((".pem", ".der")) or len(name) > 64:
        raise CommandError(None)
    return name


async def _ccertdown(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CCERTDOWN: 5-64,1-{MAX_CERT}")
    name = _cert_name(cmd, 0)
    length = cmd.int_arg(1, valid=range(1, MAX_CERT + 1))
    payload, _trailer = await sc.take_payload(fake, _state(fake), length)
    certificate_files(fake)[name] = payload
    return Response.ok()


def _ccertlist(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    return Response.ok(*(f'+CCERTLIST: "{name}"' for name in sorted(certificate_files(fake))))


def _ccertdele(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if certificate_files(fake).pop(_cert_name(cmd, 0), None) is None:
        raise CommandError(None)
    return Response.ok()


_CSSLCFG_INTS: Final = {
    "sslversion": ("sslversion", range(5)),
    "authmode": ("authmode", range(4)),
    "ignorelocaltime": ("ignorelocaltime", range(2)),
    "enablesni": ("enable_sni", range(2)),
}
_CSSLCFG_FILES: Final = ("cacert", "clientcert", "clientkey")


def _csslcfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    option = cmd.str_arg(0).lower()
    context = _state(fake).ssl_contexts[cmd.int_arg(1, valid=SSL_CONTEXTS)]
    if option in _CSSLCFG_INTS:
        field, valid = _CSSLCFG_INTS[option]
        setattr(context, field, cmd.int_arg(2, valid=valid))
    elif option in _CSSLCFG_FILES:
        setattr(context, option, _cert_name(cmd, 2))
    elif not cmd.has(2):
        raise CommandError(None)
    return Response.ok()


def _cchset(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CCHSET: {st.cch_report_send},{st.cch_recv_mode}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CCHSET: (0,1),(0,1)")
    st.cch_report_send = cmd.int_arg(0, valid=(0, 1))
    st.cch_recv_mode = cmd.int_arg(1, valid=(0, 1), default=0)
    return Response.ok()


def _cchstart(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if st.cch_started:
        raise CommandError(None)
    if fake.state.registered:
        st.cch_started = True
        fake.after_response(lambda: fake.send_urc("+CCHSTART: 0"))
    else:
        fake.after_response(lambda: fake.send_urc(f"+CCHSTART: {CCH_NO_NETWORK}"))
    return Response.ok()


def _cchstop(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if not st.cch_started:
        raise CommandError(None)
    for sock in st.sessions.values():
        sock.close()
    st.sessions.clear()
    st.cch_started = False
    fake.after_response(lambda: fake.send_urc("+CCHSTOP: 0"))
    return Response.ok()


def _cchsslcfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is not Kind.SET:
        return Response.ok()
    session = cmd.int_arg(0, valid=SESSIONS)
    st.session_context[session] = cmd.int_arg(1, valid=SSL_CONTEXTS)
    return Response.ok()


def _push_tls(sock: sc.SimSocket) -> None:
    """recv_mode 0: the data goes out at once after its header line."""
    if _state(sock.fake).sending:
        return  # not inside a send's prompt: after_send pushes it
    data = sock.take(sock.available)
    sock.fake.write_raw(f"\r\n+CCHRECV: DATA,{sock.link},{len(data)}\r\n".encode() + data)


def _on_tls_data(sock: sc.SimSocket) -> None:
    if _state(sock.fake).cch_recv_mode == 1:
        sc.send_notice(sock.fake, f"+CCHEVENT: {sock.link},RECV EVENT")
    else:
        _push_tls(sock)


def _on_tls_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"+CCH_PEER_CLOSED: {sock.link}")


class _TlsConnection(TlsLoopbackConnection):
    """The fake's TLS connection, keeping why a handshake failed (for ``<err>``)."""

    def __init__(self, receiver: Receiver, context: ssl.SSLContext, hostname: str | None) -> None:
        super().__init__(receiver, context, hostname)
        self.failure: int | None = None

    async def connect(self, address: str, port: int, *, timeout: float) -> bool:
        connected = await super().connect(address, port, timeout=timeout)
        if not connected:
            self.failure = CCH_HANDSHAKE if isinstance(self.error, ssl.SSLError) else CCH_CONNECT
        return connected


class _TlsSession(sc.SimSocket):
    """One SSL session: a SimSocket whose TCP connection carries the fake's TLS."""

    def __init__(
        self,
        fake: FakeModem,
        session: int,
        host: str,
        port: int,
        context: ssl.SSLContext,
        sni: str | None,
        check_dates: bool,
    ) -> None:
        super().__init__(
            fake,
            session,
            host,
            port,
            rx_limit=RX_BUFFER,
            on_data=_on_tls_data,
            on_peer_close=_on_tls_peer_close,
        )
        self.tls_context, self.sni, self.check_dates = context, sni, check_dates
        self.failure = 0

    async def connect(self, address: str, *, connection: object = None) -> bool:
        """As ``SimSocket.connect``, over the session's TLS connection (``connection`` is
        not used: the connection is always the session's own, which keeps why it failed)."""
        self.address = address
        fake = self.fake
        if sc.simcom_state(fake).faults.take_failed_open() or fake.scenario.broker_unreachable:
            self.failure = CCH_CONNECT
            return False
        conn = _TlsConnection(self, self.tls_context, self.sni)
        self._conn = conn
        address, port = await fake.route(address, self.port)
        if not await conn.connect(address, port, timeout=sc.CONNECT_TIMEOUT):
            self._conn = None
            self.failure = conn.failure or CCH_CONNECT
            return False
        if self.state != "connecting":
            self.abort()
            return False
        if self.check_dates and not _valid_by_fake_clock(fake, conn):
            self.failure = CCH_HANDSHAKE
            self.abort()
            return False
        return True


def _valid_by_fake_clock(fake: FakeModem, conn: _TlsConnection) -> bool:
    """The broker's certificate is valid by the fake's clock (Python checked real time)."""
    if not sc.clock_was_set(fake):
        return True
    transport = conn._transport
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    peer = obj.getpeercert() if isinstance(obj, ssl.SSLObject) else None
    if not peer:
        return True
    now = sc.clock(fake).timestamp()
    begins = ssl.cert_time_to_seconds(str(peer["notBefore"]))
    ends = ssl.cert_time_to_seconds(str(peer["notAfter"]))
    return begins <= now <= ends


_VERSIONS: Final = {
    1: ssl.TLSVersion.TLSv1,
    2: ssl.TLSVersion.TLSv1_1,
    3: ssl.TLSVersion.TLSv1_2,
    4: ssl.TLSVersion.TLSv1_2,
}


def _client_context(fake: FakeModem, config: SslContext, host: str) -> ssl.SSLContext | int:
    """The TLS client of ``config``, or the ``<err>`` that stops it (19: a file missing)."""
    files = certificate_files(fake)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # the module's newest
    version = _VERSIONS.get(config.sslversion)
    if version is None:
        return CCH_HANDSHAKE  # SSL 3.0: nothing here speaks it
    if config.sslversion != 4:
        context.minimum_version = version
    verify = config.authmode in (1, 2)
    if verify:
        ca = files.get(config.cacert or "")
        if ca is None:
            return CCH_NO_CERTIFICATES
        try:
            context.load_verify_locations(cadata=ca.decode("latin-1"))
        except (ssl.SSLError, ValueError):
            return CCH_HANDSHAKE
        # A name is checked only when it was sent (SNI); an address always is.
        context.check_hostname = config.enable_sni == 1 or is_ipv4(host)
        if config.ignorelocaltime:
            context.verify_flags |= _NO_CHECK_TIME
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.authmode in (2, 3):
        cert, key = files.get(config.clientcert or ""), files.get(config.clientkey or "")
        if cert is None or key is None:
            return CCH_NO_CERTIFICATES
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "client.pem")
            with open(path, "wb") as file:
                file.write(key + b"\n" + cert)
            try:
                context.load_cert_chain(path)
            except ssl.SSLError:
                return CCH_HANDSHAKE
    return context


def _cchopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CCHOPEN: (0-1),"ADDRESS",(1-65535)[,(1-2)[,(1-65535)]]')
    if not st.cch_started:
        raise CommandError(None)
    if cmd.kind is Kind.READ:
        lines = []
        for session in SESSIONS:
            sock = st.sessions.get(session)
            if sock is not None and sock.connected:
                lines.append(f'+CCHOPEN: {session},"{sock.host}",{sock.port},2')
            else:
                lines.append(f"+CCHOPEN: {session}")
        return Response.ok(*lines)
    session = cmd.int_arg(0, valid=SESSIONS)
    host = cmd.str_arg(1)
    port = cmd.int_arg(2, valid=range(1, 65536))
    if cmd.int_arg(3, valid=(1, 2), default=2) != 2 or len(cmd.params) > 5:
        raise CommandError(None)  # plain TCP through the SSL client is not modelled
    old = st.sessions.get(session)
    if old is not None and old.connected:
        return Response(lines=(f"+CCHOPEN: {session},{CCH_OPEN_SESSION}",), final="ERROR")
    config = st.ssl_contexts[st.session_context[session]]
    made = _client_context(fake, config, host)
    sni = host if config.enable_sni and not is_ipv4(host) else None

    def report(err: int, context: ssl.SSLContext | None) -> None:
        _HANDSHAKES[fake] = Handshake(
            sni=sni,
            checked_host=context is not None and context.check_hostname,
            client_certificate=config.authmode in (2, 3),
            err=err,
        )
        fake.send_urc(f"+CCHOPEN: {session},{err}")

    if isinstance(made, int):
        fake.after_response(lambda: report(made, None))
        return Response.ok()
    context = made
    # Python sends no SNI for an address, and checks a host name only with a server name.
    server_name = host if context.check_hostname else sni
    sock = _TlsSession(
        fake, session, host, port, context, server_name, check_dates=not config.ignorelocaltime
    )
    st.sessions[session] = sock

    async def connect() -> None:
        address = sc.resolve(fake, host)
        if address is None:
            err = CCH_DNS
        elif st.net_broken or not fake.state.registered:
            err = CCH_NO_NETWORK
        elif not await sock.connect(address):
            err = sock.failure or CCH_CONNECT
        else:
            err = 0
        if st.sessions.get(session) is not sock:
            sock.abort()
            return
        if err:
            sock.abort()
            del st.sessions[session]
        report(err, context)
        if not err:
            sock.activate()

    def start() -> None:
        fake.spawn(connect())

    fake.after_response(start)
    return Response.ok()


async def _cchsend(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CCHSEND: (0-1),(1-{MAX_CCH_SEND})")
    session = cmd.int_arg(0, valid=SESSIONS)
    length = cmd.int_arg(1, valid=range(1, MAX_CCH_SEND + 1))
    sock = st.sessions.get(session)
    if sock is None or sock.state != "open":
        raise CommandError(None)
    payload, trailer = await sc.take_payload(fake, st, length)
    if st.faults.take_failed_send():
        if st.cch_report_send:
            trailer.append(f"+CCHSEND: {session},{6}")  # 6: transfer failed
    else:
        sock.send(payload)
        if st.cch_report_send:
            trailer.append(f"+CCHSEND: {session},0")
    return Response.ok()


def _cchrecv(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CCHRECV: (0-1),(0-{MAX_CCH_RECV})")
    if not st.cch_started:
        raise CommandError(None)
    if cmd.kind is Kind.READ:
        cached = [st.sessions[s].available if s in st.sessions else 0 for s in SESSIONS]
        return Response.ok("+CCHRECV: LEN," + ",".join(map(str, cached)))
    session = cmd.int_arg(0, valid=SESSIONS)
    length = cmd.int_arg(1, valid=range(0, MAX_CCH_RECV + 1), default=MAX_CCH_RECV)
    sock = st.sessions.get(session)
    if st.cch_recv_mode != 1 or sock is None:
        raise CommandError(None)
    data = sock.take(length or MAX_CCH_RECV)
    end = f"+CCHRECV: {session},0"
    if not data:
        return Response.ok(end)
    return Response.ok(f"+CCHRECV: DATA,{session},{len(data)}", data, end)


def _cchclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CCHCLOSE: (0-1)")
    session = cmd.int_arg(0, valid=SESSIONS)
    sock = st.sessions.get(session)
    if sock is None or sock.state == "closed":
        raise CommandError(None)
    sock.close()
    del st.sessions[session]
    fake.after_response(lambda: fake.send_urc(f"+CCHCLOSE: {session},0"))
    return Response.ok()


SSL_HANDLERS: Final[dict[str, Handler | None]] = {
    "+CCERTDOWN": _ccertdown,
    "+CCERTLIST": _ccertlist,
    "+CCERTDELE": _ccertdele,
    "+CSSLCFG": _csslcfg,
    "+CCHSET": _cchset,
    "+CCHSTART": _cchstart,
    "+CCHSTOP": _cchstop,
    "+CCHSSLCFG": _cchsslcfg,
    "+CCHOPEN": _cchopen,
    "+CCHSEND": _cchsend,
    "+CCHRECV": _cchrecv,
    "+CCHCLOSE": _cchclose,
    "+CCLK": sc.cclk,
}


_BANNER: Final = ("RDY", "+CPIN: READY")
_LATE: Final = ("SMS DONE", "PB DONE")
#: What an A76xx prints at power-on where the SIM7600 prints ``RDY``.
A7672_BANNER: Final = "*ATREADY: 1"


def _net_usable(fake: FakeModem) -> bool:
    st = _state(fake)
    return st.net_open and not st.net_broken


def _ciccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok(f"+ICCID: {fake.identity.iccid}")


SIM7600: Final = register_dialect(
    Dialect(
        name="sim7600",
        description="SIMCom SIM7600 / SIM7500 / A76xx (NETOPEN/CIPOPEN TCP stack)",
        terminator="CR",
        boot_banner=sc.boot_lines(_BANNER, _LATE),
        default_echo=True,
        boot_cfun=1,
        identity=Identity(
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7600G-H",
            revision="LE20B04SIM7600G22",
            imei="862636051234567",
            imsi="262011234567891",
            iccid="89490200001234567891",
        ),
        cfun_modes=(0, 1, 4),
        cid_range=(1, 15),
        default_contexts={1: ("IP", "")},
        handlers={
            **sc.common_handlers(),
            **simcom_diag.SIM7600_HANDLERS,
            "+CICCID": _ciccid,
            "+CGMR": sc.cgmr_handler("+CGMR: "),
            "+CPSI": sc.cpsi_handler(lambda fake: "LTE", tenths=True),
            "+NETOPEN": _netopen,
            "+NETCLOSE": _netclose,
            "+IPADDR": _ipaddr,
            "+CIPOPEN": _cipopen,
            "+CIPSEND": _cipsend,
            "+CIPRXGET": _ciprxget,
            "+CIPCLOSE": _cipclose,
            "+CIPCCFG": _cipccfg,
            "+CIPMODE": _accept((0,)),
            "+CIPSENDMODE": _accept((0, 1)),
            "+CIPTIMEOUT": _accept(None),
            "+CIPSRIP": _accept((0, 1)),
            "+CIPHEAD": _accept((0, 1)),
            "+CDNSGIP": sc.cdnsgip_handler(
                _net_usable, result_after_ok=False, error_code=10, error_final=True
            ),
            **SSL_HANDLERS,
        },
        new_state=Sim7600State,
        rats=frozenset({"lte", "gprs", "gsm", "wcdma"}),  # an LTE Cat-1/4 module: no NB-IoT
        faults=sc.SIMCOM_FAULTS,
        on_reboot=sc.on_reboot,
        on_stop=sc.on_stop,
    )
)

_A7672_IDENTITY: Final = Identity(
    manufacturer="SIMCOM INCORPORATED",
    model="A7672E-LASE",
    revision="A011B06A7672M7",
    imei="862636051234575",
    imsi="262011234567894",
    iccid="89490200001234567894",
)


def model(
    name: Literal["SIM7600", "A7672"] = "SIM7600",
    *,
    autobaud: bool = False,
    late_boot: float | None = None,
) -> Dialect:
    """The fake of one model of the family (see the module docstring)."""
    if name == "SIM7600":
        return sc.boot_variant(SIM7600, _BANNER, _LATE, autobaud=autobaud, late_boot=late_boot)
    return sc.boot_variant(
        SIM7600,
        (A7672_BANNER, "+CPIN: READY"),
        _LATE,
        autobaud=autobaud,
        late_boot=late_boot,
        name="a7672",
        identity=_A7672_IDENTITY,
    )


#: ``--dialect a7672``: an A7672 with its ``*ATREADY: 1`` banner.
A7672: Final = register_dialect(model("A7672"))
