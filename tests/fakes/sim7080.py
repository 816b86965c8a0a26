"""The SIMCom SIM7080G (SIM7070/SIM7080 "CN*/CA*" application TCP stack), as a fake dialect.

Sources: shared/reference/at-dialects.md §5.1 and §5.4; TinyGSM ``TinyGsmClientSIM7080.h``
and Zephyr ``drivers/modem/simcom-sim7080.c`` as evidence of what the module sends (both read
``+CAOPEN`` before ``OK``, ``+CARECV: <len>,<data>`` without a cid, ``> `` then ``OK``).

- Boot ``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``SMS Ready``; echo on (V.250), CR ends a
  line (a following LF is ignored), CFUN=1 at power-on.
- Identity ``SIMCOM INCORPORATED`` / ``SIMCOM_SIM7080G`` / ``Revision:1951B08SIM7080``.
- ``AT+CNCFG=<pdpidx>,<ip_type>[,"<apn>"[,"<user>","<pwd>"[,<auth>]]]`` -> OK.
- ``AT+CNACT=<pdpidx>,<0|1|2>`` -> ``OK`` then ``+APP PDP: <pdpidx>,ACTIVE`` (or
  ``DEACTIVE`` when not registered; ERROR if already active). ``AT+CNACT=<pdpidx>,0`` closes
  every socket of that context. ``AT+CNACT?`` -> ``+CNACT: <pdpidx>,<status>,"<ip>"`` for
  contexts 0..3.
- ``AT+CACID=<cid>`` -> OK. TLS and the file system: see "TLS" below.
- ``AT+CAOPEN=<cid>,<pdpidx>,"TCP","<host>",<port>[,0]`` -> ``+CAOPEN: <cid>,<result>`` then
  ``OK`` (0 ok, 1 PDP not active — as observed in TinyGSM#829, 20 cannot resolve, 23 refused,
  27 connect failed / not loopback); cid 0..11 (TinyGSM's 12 connections); a bad parameter
  -> ERROR. A cid that is still open (sockets outlive the host: a killed host leaves them
  open, ``AT+CASTATE?`` lists them) is refused with ``+CAOPEN: <cid>,<CAOPEN_IN_USE>`` + OK
  until ``AT+CACLOSE`` (the code is not in the sources read; unverified on a board).
- ``AT+CASEND=<cid>,<len>[,<inputtime>]`` (1..1460) -> ``\\r\\n> `` -> exactly len raw bytes
  -> ``OK`` (nothing else); a failed send -> ``ERROR``.
- ``+CADATAIND: <cid>`` when data becomes readable; ``AT+CARECV=<cid>,<readlen>`` (1..1460)
  -> ``+CARECV: <recvlen>,<data>`` then ``OK`` (data inline after the comma, then CR LF);
  ``+CARECV: 0`` when nothing is buffered. ``CARECV_SHOWS_CID`` switches to the manual's
  ``+CARECV: <cid>,<recvlen>,<data>``. ``AT+CARECV?`` -> ``+CARECV: <cid>,<available>`` for
  sockets with data.
- ``AT+CASTATE?`` -> ``+CASTATE: <cid>,<state>`` per socket (1 connected, 0 closed);
  URC ``+CASTATE: <cid>,0`` when the peer closes. ``AT+CACLOSE=<cid>`` -> OK.
- ``AT+CDNSGIP="<host>"[,<retries>,<timeout>]`` -> ``OK`` then ``+CDNSGIP: 1,"<host>","<ip>"``
  or ``+CDNSGIP: 0,8``.
- ``AT+CPSI?`` -> ``+CPSI: LTE CAT-M1,Online,262-01,0x0A1B,...`` (dB units; ``LTE NB-IOT`` on
  ``rat="nbiot"``). Field diagnostics (+CBC, +CNMP, +CMNB, +CBANDCFG, +CENG) are
  ``simcom_diag``'s.
- PDP drop fault: ``+APP PDP: 0,DEACTIVE``, every socket reset (no per-socket URC).
- ``late_boot=S`` (``model()``): ``SMS Ready`` comes ``S`` seconds after power-on.

TLS (SIM7070/SIM7080/SIM7090 AT Command Manual, file system and SSL chapters, as mirrored
on momoiot.co.kr ``catm-at/cmd/fs``; the ``+CAOPEN`` result table as TinyGSM lists it;
Zephyr ``drivers/modem/simcom/sim7080/sim7080_tls.c`` for the order of use):

- The file system: ``AT+CFSINIT`` allocates the buffer the file commands use (ERROR when
  already allocated: free it with ``AT+CFSTERM``; ERROR from every file command before it).
  ``AT+CFSWFILE=<index>,"<name>",<mode>,<size>,<inputtime>``: index 0-3 (3 is
  ``/customer/``), a name of at most 50 characters, mode 0 writes from the start of the
  file (an existing longer file keeps its tail, as the manual words it) and 1 appends,
  size 1-10240, inputtime 100-10000 ms; the module answers ``DOWNLOAD`` and takes exactly
  ``<size>`` bytes within ``<inputtime>`` ms (else ERROR), then ``OK``.
  ``AT+CFSGFIS=<index>,"<name>"`` -> ``+CFSGFIS: <size>`` (ERROR: no such file);
  ``AT+CFSDFILE=<index>,"<name>"`` -> OK (ERROR: no such file). The files are flash: they
  survive reboots (:func:`files`).
- ``AT+CSSLCFG="CONVERT",2,"<ca file>"`` and ``AT+CSSLCFG="CONVERT",1,"<cert file>","<key
  file>"[,"<password>"]`` convert files of ``/customer/`` into the SSL store under the
  file's name (ERROR if a file is missing, is not PEM, or the key does not match the
  certificate). The converted copy is kept apart from the file (Zephyr deletes the file
  after converting and still names it): deleting the file leaves it. Type 3 (the DTLS
  PSK table) is not modelled (ERROR).
- ``AT+CSSLCFG="SSLVERSION",<ctx>,<0-5>`` (3 = TLS 1.2, the newest), ``"SNI",<ctx>,"<host>"``,
  ``"PROTOCOL",<ctx>,<1|2>``, ``"IGNORERTCTIME",<ctx>,<0|1>``; ctx 0-5. A context left at
  another version (1, 2: TLS 1.0/1.1; 4, 5: DTLS) opens with ``+CAOPEN: <cid>,7`` here (not
  modelled). Keywords are taken
  in any case (TinyGSM found lower case needed on its firmware, Zephyr sends upper case).
- ``AT+CASSLCFG=<cid>,"SSL",<0|1>``, ``"CRINDEX",<ctx>``, ``"CACERT","<name>"``,
  ``"CERT","<name>"``.
- ``AT+CAOPEN`` on a cid with ``"SSL",1`` makes the TCP connection and then the TLS
  handshake with Python's :mod:`ssl` (TLS 1.2: the module has no 1.3): SNI from the
  context's ``"SNI"`` (none without it); with a ``CACERT`` the broker's chain must end in
  that converted CA, and then the certificate's dates are checked against the fake's
  clock (``AT+CCLK``, :func:`set_clock`; unless ``IGNORERTCTIME`` 1) and its names against
  the host given to ``AT+CAOPEN``: ``+CAOPEN: <cid>,24`` expired, ``25`` the name does
  not match, ``26`` both. Without a ``CACERT`` nothing is verified (TinyGSM's secure
  client connects without one). A chain that ends in no converted CA, a ``CACERT`` naming
  no converted CA, or a handshake the broker ends (no client certificate when it wants
  one) answer ``27`` (connect failed: the result table has no code for them; unverified on
  a board). ``CERT`` offers the converted client certificate and key.
- ``AT+CCLK?`` -> ``+CCLK: "yy/MM/dd,hh:mm:ss+00"`` (real time unless moved);
  ``AT+CCLK="..."`` moves it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import tempfile
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from . import simcom_common as sc
from . import simcom_diag
from .core import FakeModem
from .grammar import Command, CommandError, Kind, Response
from .loopback import Receiver
from .nrf91_tls import TlsLoopbackConnection
from .registry import Dialect, Identity, register_dialect
from .simcom_common import clock, set_clock  # re-exported: the fake's RTC

__all__ = [
    "CAOPEN_IN_USE",
    "CARECV_SHOWS_CID",
    "CUSTOMER",
    "MAX_FILE",
    "MAX_RECV",
    "MAX_SEND",
    "SIM7080",
    "Sim7080State",
    "clock",
    "converted",
    "files",
    "model",
    "set_clock",
]

log = logging.getLogger("tests.fakes.sim7080")

#: The single switch for the open question of reference §8: the manual writes
#: ``+CARECV: <cid>,<recvlen>,<data>``? TinyGSM and Zephyr read ``+CARECV: <recvlen>,<data>``.
CARECV_SHOWS_CID: bool = False
MAX_SEND: Final = 1460
MAX_RECV: Final = 1460
CIDS: Final = range(12)
PDP_INDEXES: Final = range(4)
RX_BUFFER: Final = 32768
#: ``+CAOPEN`` result for a cid that is already open. The result table (TinyGSM, the manual)
#: names no code for this case; 4 "parameter invalid" is assumed (unverified on a board).
CAOPEN_IN_USE: Final = 4


#: ``AT+CFSWFILE`` index of ``/customer/``, where ``CONVERT`` reads.
CUSTOMER: Final = 3
FS_INDEXES: Final = range(4)
MAX_FILE: Final = 10240
MAX_NAME: Final = 50
SSL_CONTEXTS: Final = range(6)
#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the chain is checked here, the dates after (the
#: module reports them apart from the chain: 24/26).
_NO_CHECK_TIME: Final = 0x200000


@dataclass
class CaSsl:
    """One cid's ``AT+CASSLCFG`` settings."""

    ssl: bool = False
    context: int = 0
    cacert: str | None = None
    cert: str | None = None


@dataclass
class SslContext:
    """One ``AT+CSSLCFG`` context."""

    version: int = 3
    sni: str | None = None
    ignore_rtc_time: bool = False


@dataclass(frozen=True)
class Converted:
    """What ``CONVERT`` put in the SSL store under a name: a CA, or a client pair."""

    ca: str | None = None
    pair: tuple[str, str, str | None] | None = None  # cert, key, password


@dataclass
class _Store:
    files: dict[tuple[int, str], bytes] = field(default_factory=dict)
    converted: dict[str, Converted] = field(default_factory=dict)


_STORES: weakref.WeakKeyDictionary[FakeModem, _Store] = weakref.WeakKeyDictionary()


def _store(fake: FakeModem) -> _Store:
    return _STORES.setdefault(fake, _Store())


def files(fake: FakeModem) -> dict[tuple[int, str], bytes]:
    """The fake's file system: ``(index, name) -> content`` (flash: kept across reboots)."""
    return _store(fake).files


def converted(fake: FakeModem) -> dict[str, Converted]:
    """The fake's SSL store (what ``CONVERT`` made), by name; kept across reboots."""
    return _store(fake).converted


class Sim7080State(sc.SimcomState):
    """Power-on state: PDP contexts (CNACT), SSL settings, the file buffer, sockets by cid."""

    def __init__(self) -> None:
        super().__init__()
        self.active: set[int] = set()
        self.ssl: dict[int, CaSsl] = {}
        self.contexts: dict[int, SslContext] = {}
        self.fs_open = False
        self.pdp_of: dict[int, int] = {}

    def drop_pdp(self, fake: FakeModem) -> None:
        for pdpidx in sorted(self.active):
            self._deactivate(pdpidx)
            fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE")

    def _deactivate(self, pdpidx: int) -> None:
        self.active.discard(pdpidx)
        for cid, sock in self.sockets.items():
            if self.pdp_of.get(cid) == pdpidx:
                sock.drop()


def _state(fake: FakeModem) -> Sim7080State:
    return fake.dialect_state_as(Sim7080State)


def _on_data(sock: sc.SimSocket) -> None:
    sc.send_notice(sock.fake, f"+CADATAIND: {sock.link}")


def _on_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"+CASTATE: {sock.link},0")


def _cnact(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CNACT: (0-3),(0-2)")
    if cmd.kind is Kind.READ:
        lines = []
        for pdpidx in PDP_INDEXES:
            on = pdpidx in st.active
            address = fake.network.ip if on else "0.0.0.0"
            lines.append(f'+CNACT: {pdpidx},{int(on)},"{address}"')
        return Response.ok(*lines)
    pdpidx = cmd.int_arg(0, valid=PDP_INDEXES)
    action = cmd.int_arg(1, valid=(0, 1, 2))
    if action == 0:
        if pdpidx not in st.active:
            raise CommandError(None)
        st._deactivate(pdpidx)
        fake.after_response(lambda: fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE"))
        return Response.ok()
    if pdpidx in st.active:
        raise CommandError(None)

    def activate() -> None:
        if fake.state.registered:
            st.active.add(pdpidx)
            fake.send_urc(f"+APP PDP: {pdpidx},ACTIVE")
        else:
            fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE")

    fake.after_response(activate)
    return Response.ok()


def _cncfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CNCFG: (0-3),(0-2),"APN","USER","PWD",(0-3)')
    cmd.int_arg(0, valid=PDP_INDEXES)
    cmd.int_arg(1, valid=(0, 1, 2))
    for index in (2, 3, 4):
        if cmd.has(index):
            cmd.str_arg(index)
    if cmd.has(5):
        cmd.int_arg(5, valid=range(4))
    return Response.ok()


def _cacid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    cmd.int_arg(0, valid=CIDS)
    return Response.ok()


def _casslcfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    cid = cmd.int_arg(0, valid=CIDS)
    if len(cmd.params) < 3:
        raise CommandError(None)
    settings = _state(fake).ssl.setdefault(cid, CaSsl())
    key = cmd.params[1].text.upper()
    if key == "SSL":
        settings.ssl = cmd.int_arg(2, valid=(0, 1)) == 1
    elif key == "CRINDEX":
        settings.context = cmd.int_arg(2, valid=SSL_CONTEXTS)
    elif key == "CACERT":
        settings.cacert = _name_arg(cmd, 2)
    elif key == "CERT":
        settings.cert = _name_arg(cmd, 2)
    return Response.ok()


def _name_arg(cmd: Command, index: int) -> str:
    name = cmd.str_arg(index)
    if not name or len(name) > MAX_NAME or "/" in name:
        raise CommandError(None)
    return name


# ---- the file system


def _fs_open(fake: FakeModem) -> None:
    if not _state(fake).fs_open:
        raise CommandError(None)


def _cfsinit(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    st = _state(fake)
    if st.fs_open:
        raise CommandError(None)
    st.fs_open = True
    return Response.ok()


def _cfsterm(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    _fs_open(fake)
    _state(fake).fs_open = False
    return Response.ok()


def _file_arg(fake: FakeModem, cmd: Command) -> tuple[int, str]:
    index = cmd.int_arg(0, valid=FS_INDEXES)
    return index, _name_arg(cmd, 1)


async def _cfswfile(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok(f'+CFSWFILE: (0-3),"fileName",(0-1),(1-{MAX_FILE}),(100-10000)')
    _fs_open(fake)
    where = _file_arg(fake, cmd)
    mode = cmd.int_arg(2, valid=(0, 1))
    size = cmd.int_arg(3, valid=range(1, MAX_FILE + 1))
    input_ms = cmd.int_arg(4, valid=range(100, 10001))
    if len(cmd.params) > 5:
        raise CommandError(None)
    fake.discard_stray_line_feed()
    fake.write_raw(b"\r\nDOWNLOAD\r\n")
    try:
        async with asyncio.timeout(input_ms / 1000):
            data = await fake.read_raw(size)
    except TimeoutError:
        raise CommandError(None) from None
    table = files(fake)
    old = table.get(where, b"")
    table[where] = old + data if mode == 1 else data + old[len(data) :]
    return Response.ok()


def _cfsgfis(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    _fs_open(fake)
    content = files(fake).get(_file_arg(fake, cmd))
    if content is None:
        raise CommandError(None)
    return Response.ok(f"+CFSGFIS: {len(content)}")


def _cfsdfile(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    _fs_open(fake)
    if files(fake).pop(_file_arg(fake, cmd), None) is None:
        raise CommandError(None)
    return Response.ok()


# ---- SSL configuration


def _pem(fake: FakeModem, name: str) -> str:
    content = files(fake).get((CUSTOMER, name))
    if content is None:
        raise CommandError(None)
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(None) from None
    if "-----BEGIN " not in text:
        raise CommandError(None)
    return text


def _convert(fake: FakeModem, cmd: Command) -> Response:
    kind = cmd.int_arg(1, valid=(1, 2, 3))
    if kind == 3:
        raise CommandError(None)  # the DTLS PSK table: not modelled
    name = _name_arg(cmd, 2)
    text = _pem(fake, name)
    if kind == 2:
        try:
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError):
            raise CommandError(None) from None
        converted(fake)[name] = Converted(ca=text)
        return Response.ok()
    key = _pem(fake, _name_arg(cmd, 3))
    password = cmd.str_arg(4) if cmd.has(4) else None
    try:
        _client_context(text, key, password)
    except (ssl.SSLError, ValueError, OSError):
        raise CommandError(None) from None
    converted(fake)[name] = Converted(pair=(text, key, password))
    return Response.ok()


def _csslcfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    if not cmd.params or not cmd.params[0].quoted:
        raise CommandError(None)
    key = cmd.params[0].text.upper()
    if key == "CONVERT":
        return _convert(fake, cmd)
    ctx = _state(fake).contexts.setdefault(cmd.int_arg(1, valid=SSL_CONTEXTS), SslContext())
    if key == "SSLVERSION":
        ctx.version = cmd.int_arg(2, valid=range(6))
    elif key == "SNI":
        host = cmd.str_arg(2)
        if not host or len(host) > 255:
            raise CommandError(None)
        ctx.sni = host
    elif key == "PROTOCOL":
        cmd.int_arg(2, valid=(1, 2))
    elif key == "IGNORERTCTIME":
        ctx.ignore_rtc_time = cmd.int_arg(2, valid=(0, 1)) == 1
    else:
        raise CommandError(None)
    return Response.ok()


# ---- the TLS client


def _client_context(cert: str, key: str, password: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            with open(path, "w", encoding="ascii") as file:
                file.write(text)
        context.load_cert_chain(cert_path, key_path, password=password)
    return context


def _names(peer: dict[str, Any]) -> list[tuple[str, str]]:
    names = [(str(kind), str(value)) for kind, value in peer.get("subjectAltName", ())]
    if not names:  # no SAN: the common name (what the result table speaks of)
        for rdn in peer.get("subject", ()):
            names += [("DNS", str(value)) for attr, value in rdn if attr == "commonName"]
    return names


def _name_matches(host: str, peer: dict[str, Any]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    wanted = host.lower().rstrip(".")
    for kind, value in _names(peer):
        if address is not None:
            if kind == "IP Address" and ipaddress.ip_address(value.strip()) == address:
                return True
            continue
        if kind != "DNS":
            continue
        pattern = value.lower().rstrip(".")
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and wanted.partition(".")[2] == pattern[2:]:
            return True
    return False


class SslConnection(TlsLoopbackConnection):
    """The module's TLS client over one socket's TCP connection (module docstring).

    ``code`` is the ``+CAOPEN`` result once :meth:`connect` returned: 0 connected, 23
    refused, 24/25/26 the certificate's dates or name, 27 anything else."""

    def __init__(
        self,
        receiver: Receiver,
        context: ssl.SSLContext,
        sni: str | None,
        *,
        host: str,
        now: datetime | None,
    ) -> None:
        super().__init__(receiver, context, sni)
        self.code = 27
        self._host = host
        self._now = now  # None: dates not checked (no CA, or IGNORERTCTIME 1)

    async def connect(self, address: str, port: int, *, timeout: float) -> bool:
        connected = await super().connect(address, port, timeout=timeout)
        if connected:
            self.code = 0
        elif isinstance(self.error, ConnectionRefusedError):
            self.code = 23
        elif self.error is not None:
            self.code = 27
        return connected

    def accepted(self, transport: asyncio.BaseTransport) -> bool:
        verifying = self.context.verify_mode == ssl.CERT_REQUIRED
        peer = transport.get_extra_info("peercert") or {}
        expired = self._now is not None and verifying and not self._in_dates(peer)
        wrong_name = verifying and not _name_matches(self._host, peer)
        if expired or wrong_name:
            self.code = 26 if expired and wrong_name else 24 if expired else 25
            return False
        return True

    def _in_dates(self, peer: dict[str, Any]) -> bool:
        assert self._now is not None
        start = ssl.cert_time_to_seconds(str(peer["notBefore"]))
        end = ssl.cert_time_to_seconds(str(peer["notAfter"]))
        return start <= self._now.timestamp() <= end


@dataclass
class _Tls:
    """Makes the socket's :class:`SslConnection` (``SimSocket.connect``) and keeps it."""

    context: ssl.SSLContext
    sni: str | None
    host: str
    now: datetime | None
    made: SslConnection | None = None

    def __call__(self, receiver: Receiver) -> SslConnection:
        self.made = SslConnection(receiver, self.context, self.sni, host=self.host, now=self.now)
        return self.made

    @property
    def code(self) -> int:
        return 27 if self.made is None else self.made.code


def _ssl_connection(fake: FakeModem, cid: int, host: str) -> _Tls | int:
    """The TLS client the cid's settings make, or the ``+CAOPEN`` result that refuses it."""
    st = _state(fake)
    settings = st.ssl.get(cid, CaSsl())
    ctx = st.contexts.get(settings.context, SslContext())
    if ctx.version != 3 and ctx.version != 0:
        return 7  # TLS 1.0/1.1 are not offered by Python's ssl here; DTLS is not TCP
    store = converted(fake)
    if settings.cert is not None:
        pair = store.get(settings.cert)
        if pair is None or pair.pair is None:
            return 27
        context = _client_context(*pair.pair)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    now: datetime | None = None
    if settings.cacert is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        anchor = store.get(settings.cacert)
        if anchor is None or anchor.ca is None:
            return 27
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= _NO_CHECK_TIME
        context.load_verify_locations(cadata=anchor.ca)
        now = None if ctx.ignore_rtc_time else sc.clock(fake)
    return _Tls(context, ctx.sni, host, now)


async def _caopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    st = _state(fake)
    cid = cmd.int_arg(0, valid=CIDS)
    pdpidx = cmd.int_arg(1, valid=PDP_INDEXES)
    kind = cmd.str_arg(2).upper()
    host = cmd.str_arg(3)
    port = cmd.int_arg(4, valid=range(1, 65536))
    cmd.int_arg(5, valid=(0,), default=0)  # recv_mode 1 (+CAURC pushes) is not modelled
    if kind not in ("TCP", "UDP") or len(cmd.params) > 6:
        raise CommandError(None)

    def result(code: int) -> Response:
        return Response.ok(f"+CAOPEN: {cid},{code}")

    old = st.sockets.get(cid)
    if old is not None and old.connected:
        return result(CAOPEN_IN_USE)

    if pdpidx not in st.active:
        return result(1)
    if kind == "UDP":
        return result(7)
    address = sc.resolve(fake, host)
    if address is None:
        return result(20)
    tls: _Tls | None = None
    if st.ssl.get(cid, CaSsl()).ssl:
        made = _ssl_connection(fake, cid, host)
        if isinstance(made, int):
            return result(made)
        tls = made
    sock = sc.SimSocket(
        fake, cid, host, port, rx_limit=RX_BUFFER, on_data=_on_data, on_peer_close=_on_peer_close
    )
    st.sockets[cid] = sock
    st.pdp_of[cid] = pdpidx
    opened = await (sock.connect(address) if tls is None else sock.connect(address, connection=tls))
    if not opened:
        del st.sockets[cid]
        if tls is not None and tls.made is not None and sc.is_loopback(address):
            return result(tls.code)
        return result(23 if sc.is_loopback(address) else 27)
    fake.after_response(sock.activate)
    return result(0)


def _open_socket(fake: FakeModem, cid: int) -> sc.SimSocket:
    sock = _state(fake).sockets.get(cid)
    if sock is None:
        raise CommandError(None)
    return sock


async def _casend(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    st = _state(fake)
    cid = cmd.int_arg(0, valid=CIDS)
    length = cmd.int_arg(1, valid=range(1, MAX_SEND + 1))
    cmd.int_arg(2, default=0)  # <inputtime>: no time-out is modelled
    sock = _open_socket(fake, cid)
    if sock.state != "open":
        raise CommandError(None)
    payload, _ = await sc.take_payload(fake, st, length)
    if st.faults.take_failed_send():
        raise CommandError(None)
    sock.send(payload)
    return Response.ok()


def _carecv(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CARECV: (0-11),(1-{MAX_RECV})")
    if cmd.kind is Kind.READ:
        return Response.ok(
            *(
                f"+CARECV: {cid},{s.available}"
                for cid, s in sorted(st.sockets.items())
                if s.available
            )
        )
    cid = cmd.int_arg(0, valid=CIDS)
    readlen = cmd.int_arg(1, valid=range(1, MAX_RECV + 1))
    sock = _open_socket(fake, cid)
    data = sock.take(readlen)
    head = f"+CARECV: {cid}," if CARECV_SHOWS_CID else "+CARECV: "
    if not data:
        return Response.ok(f"{head}0")
    return Response(lines=(f"\r\n{head}{len(data)},".encode(), data))


def _castate(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.READ, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    lines = [
        f"+CASTATE: {cid},{1 if sock.connected else 0}"
        for cid, sock in sorted(_state(fake).sockets.items())
    ]
    return Response.ok(*lines)


def _caclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    cid = cmd.int_arg(0, valid=CIDS)
    sock = _open_socket(fake, cid)
    sock.close()
    del _state(fake).sockets[cid]
    return Response.ok()


_BANNER: Final = ("RDY", "+CFUN: 1", "+CPIN: READY")


def _pdp_active(fake: FakeModem) -> bool:
    return bool(_state(fake).active)


SIM7080: Final = register_dialect(
    Dialect(
        name="sim7080",
        description="SIMCom SIM7080G (CN*/CA* application TCP stack)",
        terminator="CR",
        boot_banner=sc.boot_lines(_BANNER, ("SMS Ready",)),
        default_echo=True,
        boot_cfun=1,
        identity=Identity(
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7080G",
            revision="1951B08SIM7080",
            imei="869951031234567",
            imsi="262011234567890",
            iccid="89490200001234567890",
        ),
        cfun_modes=(0, 1, 4),
        cid_range=(1, 15),
        default_contexts={1: ("IP", "")},
        handlers={
            **sc.common_handlers(),
            **simcom_diag.SIM7080_HANDLERS,
            "+CGMR": sc.cgmr_handler("Revision:"),
            "+CPSI": sc.cpsi_handler(sc.sim70x0_system_mode, tenths=False),
            "+CNACT": _cnact,
            "+CNCFG": _cncfg,
            "+CACID": _cacid,
            "+CASSLCFG": _casslcfg,
            "+CSSLCFG": _csslcfg,
            "+CFSINIT": _cfsinit,
            "+CFSWFILE": _cfswfile,
            "+CFSGFIS": _cfsgfis,
            "+CFSDFILE": _cfsdfile,
            "+CFSTERM": _cfsterm,
            "+CCLK": sc.cclk,
            "+CAOPEN": _caopen,
            "+CASEND": _casend,
            "+CARECV": _carecv,
            "+CASTATE": _castate,
            "+CACLOSE": _caclose,
            "+CDNSGIP": sc.cdnsgip_handler(
                _pdp_active, result_after_ok=True, error_code=8, error_final=False
            ),
        },
        new_state=Sim7080State,
        faults=sc.SIMCOM_FAULTS,
        on_reboot=sc.on_reboot,
        on_stop=sc.on_stop,
    )
)


def model(*, autobaud: bool = False, late_boot: float | None = None) -> Dialect:
    """The SIM7080G fake auto-bauding (no banner) and/or with ``SMS Ready`` ``late_boot``
    seconds after power-on."""
    return sc.boot_variant(SIM7080, _BANNER, ("SMS Ready",), autobaud=autobaud, late_boot=late_boot)
