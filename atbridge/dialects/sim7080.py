"""SIMCom SIM7080G / SIM7070 / SIM7090: the CN*/CA* "application" TCP stack.

Theory of operation
-------------------
Sources: reference §5.1 (TinyGSM ``TinyGsmClientSIM7080.h``, Zephyr
``simcom-sim7080.c``).

- Bearer: ``AT+CNCFG=0,<ip_type>,"<apn>"`` with the APN, then ``AT+CNACT=0,1``,
  which answers ``OK`` and later ``+APP PDP: 0,ACTIVE`` (or ``0,DEACTIVE``).
  ``AT+CNACT?`` (``+CNACT: 0,1,"<ip>"``) skips it when already active.
- Open: ``AT+CAOPEN=<cid>,0,"TCP","<host>",<port>`` -> ``+CAOPEN: <cid>,<result>``
  (0 = connected; the modem resolves host names itself).
- Send: ``AT+CASEND=<cid>,<len>`` -> ``> `` -> exactly ``<len>`` bytes -> ``OK``;
  at most :attr:`Sim7080.max_send` bytes a command (Zephyr's 1024).
- Receive: ``+CADATAIND: <cid>`` says data is waiting; ``AT+CARECV=<cid>,<n>``
  (n <= 1460) answers ``+CARECV: <len>,<data>`` with the data inline after the
  comma (an inline block; the manual puts the cid first, TinyGSM observed the
  length only: :attr:`Sim7080.carecv_has_cid` switches). The safety-net check
  is a read, because ``AT+CARECV?`` answers ``+CARECV: <cid>,<n>`` lines that the
  inline block rule would take for data.
- Peer close: ``+CASTATE: <cid>,0``. Network loss: ``+APP PDP: 0,DEACTIVE`` (and
  ``+PDP: DEACT``). Close: ``AT+CACLOSE=<cid>``. DNS: ``AT+CDNSGIP``.
- Left-over sockets: ``AT+CASTATE?`` lists ``+CASTATE: <cid>,<state>`` for the
  cids in use (0 closed, 1 connected, 2 listening; TinyGSM reads it the same
  way); every listed cid is closed with ``AT+CACLOSE``, since an open cid is
  refused by ``AT+CAOPEN`` (``+CAOPEN: <cid>,<err>``). The probe's listing is the
  only one before the first open: ``AT+CNACT=0,1`` opens no connection, so the
  listing before the open (TinyGSM has none; it closes before each connect) would
  ask again what the probe just closed (:meth:`SimcomDialect.close_leftover_sockets`).
- Registration: ``+CEREG`` then ``+CGREG`` (TinyGSM ``TinyGsmClientSIM70xx.h``).

TLS on the modem (offload)
--------------------------
Sources: Zephyr ``drivers/modem/simcom/sim7080/sim7080_tls.c`` (the order of the
commands, the certificate file upload and conversion), TinyGSM
``TinyGsmClientSIM7080.h`` (``modemConnect``: the ``+CAOPEN`` result table, a secure
client with no CA), the SIM7070/SIM7080/SIM7090 AT Command Manual's file system chapter
(as mirrored on momoiot.co.kr ``catm-at/cmd/fs``: ``AT+CFSWFILE`` index 3 is
``/customer/``, names up to 50 characters, files up to 10240 bytes, input time up to
10000 ms).

``open_socket(host, port, tls=ModemTls(...))`` sends, before ``AT+CAOPEN``:

1. the credential files of the security tag are looked up (``AT+CFSINIT``,
   ``AT+CFSGFIS=3,"atb<tag>ca.pem"`` and the client pair's, ``AT+CFSTERM``): no CA is a
   :class:`~atbridge.errors.ConfigurationError` naming ``atbridge certs write`` before
   any connection is tried (:mod:`atbridge.dialects.sim7080_certs` writes and converts
   them);
2. ``AT+CSSLCFG="sslversion",<ctx>,3`` (TLS 1.2: the module's newest; ``min_version``
   "1.3" is refused: it has no TLS 1.3), ``AT+CSSLCFG="sni",<ctx>,"<host>"`` (not for an
   IP address: RFC 6066 §3);
3. ``AT+CASSLCFG=<cid>,"SSL",1``, ``"CRINDEX",<ctx>``, ``"CACERT","atb<tag>ca.pem"`` and,
   when the tag has a client certificate and key, ``"CERT","atb<tag>cert.pem"`` (mutual
   TLS).

``<ctx>`` is the SSL context ``cid % 6`` (contexts 0-5). The ``AT+CSSLCFG`` keywords
are sent in lower case: TinyGSM (``TinyGsmClientSIM7080.h`` ``modemConnect``; its
SIM70xx ``convertCACertificateImpl``) found its module refusing ``"SSLVERSION"``,
``"CTXINDEX"``, ``"SNI"`` and ``"CONVERT"`` in capitals, while Zephyr and many Arduino
sketches (DFRobot SIM7000, AWS IoT samples) send capitals that their firmware took
(unverified on a board which firmware takes which; no source reports lower case
refused). The ``+CAOPEN`` result codes (:data:`CAOPEN_RESULTS`) are TinyGSM's table in
``modemConnect``, 0-27, checked line by line in the audit of issue 13. Peer verification:
the module verifies whenever a CA is set for the connection and offers no documented
switch to turn that off once set, so only ``peer_verify`` 2 is accepted (0 and 1 are
refused with the reason).

``+CAOPEN: <cid>,24`` (the certificate's time expired), ``25`` (its common name does not
match) and ``26`` (both) are :class:`~atbridge.errors.TlsRefused`: the bridge stops, and
the expiry names the modem's clock (``AT+CCLK?``), which the module checks dates
against. Any other failure of a TLS open that the table does not put on the network
(1 socket error, 27 connect failed, an unknown code) is told apart by one plain TCP
open to the same port on the same cid: if that connects (and is closed at once) the TCP
path works and the TLS handshake failed — a CA that did not sign the broker, a client
certificate the broker wants, a port without TLS — and that is ``TlsRefused`` too;
otherwise it is the usual :class:`~atbridge.errors.SocketError` and the bridge retries.
A plain open on a cid this dialect object has not yet turned TLS off on sends ``"SSL",0``
first: ``AT+CASSLCFG`` is a setting of the cid, not of one connection, so an earlier
process's ``--tls modem`` run can leave it on. TinyGSM's SIM7080 ``modemConnect`` sends
``AT+CASSLCFG=<cid>,"SSL",<0|1>`` before every ``AT+CAOPEN``, plain or TLS, for the same
reason; atbridge sends it once per cid and dialect object. The fake keeps the setting
until a reset; no board has been checked for how long the module keeps it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import ClassVar

from atbridge.at_parser import BlockRule, header_ints
from atbridge.at_syntax import (
    format_command,
    int_param,
    parse_int,
    quote,
    split_params,
    str_param,
)
from atbridge.dialects.base import DataBearer, Dialect, ModemSocket, is_ip_address
from atbridge.dialects.simcom import CDNSGIP, SimcomDialect
from atbridge.errors import (
    AtBridgeError,
    CloseReason,
    ConfigurationError,
    ModemError,
    SocketError,
    TlsRefused,
)
from atbridge.modem import Modem, Urc
from atbridge.tls import ModemTls

#: ``+CAOPEN: <cid>,<result>`` codes (reference §5.1) with what to try.
CAOPEN_RESULTS: dict[int, tuple[str, str]] = {
    1: (
        "socket error",
        "activate the data connection again (AT+CNACT=0,1); after a PSM "
        "wake it can be inactive while attached (TinyGSM#829)",
    ),
    2: ("no memory", "close unused sockets or reboot the modem"),
    3: ("connection limit", "close unused sockets"),
    4: ("parameter invalid", "check the host and the port"),
    6: ("invalid IP address", "check the address"),
    7: ("not supported", "this firmware does not support the request"),
    12: ("can't bind the port", "retry; reboot the modem if it repeats"),
    13: ("can't listen on the port", "retry; reboot the modem if it repeats"),
    20: (
        "can't resolve the host",
        "check the host name; resolve() shows what the modem's "
        "DNS answers; check that the data connection is up",
    ),
    21: ("network not active", "activate the data connection first (activate_data, AT+CNACT=0,1)"),
    23: ("the remote refused the connection", "check the port and that the server is running"),
    24: ("the certificate has expired", "check the server certificate and the modem's clock"),
    25: ("the certificate's common name does not match", "check the host name"),
    26: (
        "the certificate's common name does not match and it has expired",
        "check the host name, the certificate and the modem's clock",
    ),
    27: (
        "connect failed",
        "check the host, the port and that the network lets the port "
        "through; the SIM may be out of data (LilyGo-T-SIM7080G#179)",
    ),
}

_PDP_TYPES = {"IP": 1, "IPV6": 2, "IPV4V6": 0}

#: ``AT+CFSWFILE`` directory index of ``/customer/``, where ``CONVERT`` reads.
CUSTOMER_DIR = 3
#: ``AT+CSSLCFG`` SSL contexts.
SSL_CONTEXTS = 6
#: ``AT+CSSLCFG="sslversion"``: 3 is TLS 1.2, the newest (1 TLS 1.0, 2 TLS 1.1, 4/5 DTLS).
TLS_1_2 = 3
#: ``+CAOPEN`` results that say the network or the parameters failed, not the handshake.
_NOT_TLS = frozenset({2, 3, 4, 6, 7, 12, 13, 20, 21, 23})


def tls_file_name(sec_tag: int, kind: str) -> str:
    """The file atbridge keeps a tag's ``kind`` (``ca``, ``cert``, ``key``) in, in
    ``/customer/``: ``atb<tag><kind>.pem`` (at most 21 characters; the module takes 50)."""
    return f"atb{sec_tag}{kind}.pem"


@contextlib.asynccontextmanager
async def file_system(modem: Modem) -> AsyncIterator[None]:
    """``AT+CFSINIT`` ... ``AT+CFSTERM`` around the file commands.

    A buffer left allocated (a process killed between the two) makes ``AT+CFSINIT``
    fail: it is freed with ``AT+CFSTERM`` and allocated again.
    """
    first = await modem.command("AT+CFSINIT", timeout=10, check=False)
    if first.final != "OK":
        await modem.command("AT+CFSTERM", timeout=10, check=False)
        await modem.command("AT+CFSINIT", timeout=10)
    try:
        yield
    finally:
        await modem.command("AT+CFSTERM", timeout=10, check=False)


async def file_size(modem: Modem, name: str) -> int | None:
    """The size of ``/customer/<name>`` (``AT+CFSGFIS``), None when there is no such file.
    Inside :func:`file_system`."""
    response = await modem.command(
        format_command("AT+CFSGFIS", CUSTOMER_DIR, name), timeout=10, check=False
    )
    if response.final != "OK":
        return None
    for value in response.values("+CFSGFIS:"):
        size = int_param(value, 0)
        if size is not None:
            return size
    return None


class Sim7080(SimcomDialect):
    """SIMCom SIM7080G (and SIM7070/SIM7090): ``+CNACT``, ``+CAOPEN``, ``+CASEND``, ``+CARECV``."""

    name = "sim7080"
    description = "SIMCom SIM7080G / SIM7070 / SIM7090 (CN*/CA* application TCP stack)"
    #: ``AT+CGMM`` answers of this family (reference §5).
    models = ("SIM7080", "SIM7070", "SIM7090")
    #: Zephyr's MDM_MAX_DATA_LENGTH for one ``AT+CASEND`` (reference §5.1).
    max_send = 1024
    #: cids 0-11 (TinyGSM's TINY_GSM_MUX_COUNT for the SIM7080).
    links = range(12)
    #: The application PDP index (``AT+CNACT=0,...``).
    pdp_index: ClassVar[int] = 0
    network_lost_urcs = (*Dialect.network_lost_urcs, "+APP PDP: 0,DEACTIVE", "+PDP: DEACT")
    #: Unverified (reference §8): the manual says ``+CARECV: <cid>,<len>,<data>``,
    #: TinyGSM observed ``+CARECV: <len>,<data>``. The one switch.
    carecv_has_cid: ClassVar[bool] = False
    #: SIM7070/SIM7080/SIM7090 AT manual: ``AT+CMNB?`` (CAT-M / NB-IoT preference),
    #: ``AT+CBANDCFG?`` (band lock per RAT), ``AT+CEDRXRDP``, ``AT+CNACT?`` (the
    #: application PDP contexts and their addresses).
    diagnostic_queries = MappingProxyType(
        {
            **SimcomDialect.diagnostic_queries,
            "radio": (
                "AT+CFUN?",
                "AT+CNMP?",
                "AT+CMNB?",
                "AT+CBANDCFG?",
                "AT+CSQ",
                "AT+CPSI?",
            ),
            "network": (
                "AT+COPS?",
                "AT+CPSMS?",
                "AT+CEDRXRDP",
                "AT+CGDCONT?",
                "AT+CGPADDR",
                "AT+CNACT?",
            ),
        }
    )
    #: TLS on the modem: the module docstring's "TLS on the modem".
    offloads_tls: ClassVar[bool] = True

    def __init__(self, modem: Modem) -> None:
        #: True while AT+CASTATE? runs: its +CASTATE lines answer it, not notify.
        self._listing = False
        #: cids this object turned TLS off on (``"SSL",0``). The setting outlives the
        #: process that made it (an earlier ``--tls modem`` run on the same boot), so a
        #: plain open on any other cid turns it off first: one command per cid.
        self._plain_cids: set[int] = set()
        super().__init__(modem)

    def install(self) -> None:
        modem = self.modem
        modem.add_block(BlockRule(b"+CARECV: ", self._carecv_length, inline=True))
        # Results that may come after OK go to expect_urc() wherever they fall.
        for prefix in ("+CAOPEN:", "+CADATAIND:", CDNSGIP, "+APP PDP:"):
            modem.register_urc(prefix)
        modem.register_urc("+CASTATE:", is_response=lambda _line: self._listing)
        self._unhook += [
            modem.subscribe("+CADATAIND:", self._on_data_indication),
            modem.subscribe("+CASTATE:", self._on_state),
        ]

    def _carecv_length(self, header: bytes) -> int | None:
        """``+CARECV: [<cid>,]<len>,`` -> len; ``None`` until the right comma."""
        values = header_ints(header, b"+CARECV: ", 2 if self.carecv_has_cid else 1)
        return values[-1] if values else None

    def _on_data_indication(self, urc: Urc) -> None:
        cid = parse_int(urc.text[len("+CADATAIND:") :].partition(",")[0])
        if cid is not None:
            self.data_waiting(cid)

    def _on_state(self, urc: Urc) -> None:
        value = urc.text[len("+CASTATE:") :]
        cid, state = int_param(value, 0), int_param(value, 1)
        if cid is not None and state is not None and state != 1:
            self.connection_ended(
                cid, CloseReason.PEER, f"+CASTATE: {cid},{state} (closed by the remote or an error)"
            )

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None:
        """``AT+CGDCONT`` as usual, plus ``AT+CNCFG`` for the application bearer."""
        await super().configure_pdp(apn, pdp_type=pdp_type)
        if apn is None:
            return
        ip_type = _PDP_TYPES.get(pdp_type.upper())
        if ip_type is None:
            raise ConfigurationError(
                f"PDP type {pdp_type!r} is not one of {', '.join(_PDP_TYPES)}",
                hint="use IP, IPV6 or IPV4V6",
            )
        await self.modem.command(format_command("AT+CNCFG", self.pdp_index, ip_type, apn))

    async def activate_data(self, timeout: float = 60.0) -> DataBearer:
        """``AT+CNACT=0,1`` and wait for ``+APP PDP: 0,ACTIVE`` (skipped when already active).

        The address is known only when the bearer was already active (``+CNACT: 0,1,"<ip>"``).
        """
        state = await self.modem.command("AT+CNACT?", timeout=10)
        for value in state.values("+CNACT:"):
            params = split_params(value)
            if int_param(params, 0) == self.pdp_index and int_param(params, 1) == 1:
                return DataBearer(str_param(params, 2), already_active=True)
        hint = (
            "check the APN (AT+CNCFG), that the SIM has a data plan and that the modem is "
            "registered; then retry"
        )
        prefix = f"+APP PDP: {self.pdp_index},"
        result = await self._result(
            format_command("AT+CNACT", self.pdp_index, 1),
            prefix,
            timeout=timeout,
            what="activating the data connection",
            hint=hint,
        )
        if result != "ACTIVE":
            raise SocketError(
                f"the modem could not activate the data connection ({prefix}{result})", hint=hint
            )
        return DataBearer()

    async def open_socket(
        self, host: str, port: int, *, tls: bool | ModemTls = False, timeout: float = 90.0
    ) -> ModemSocket:
        """``AT+CAOPEN`` on the lowest free cid; with a :class:`~atbridge.tls.ModemTls`,
        TLS on the modem (the module docstring's "TLS on the modem")."""
        self._check_open(port, tls)
        if tls is True:
            raise ConfigurationError(
                "a TLS socket on the modem needs the security tag of its CA certificate",
                hint="give --sec-tag, the security tag the CA was written to with "
                "atbridge certs write",
            )
        offload = tls if isinstance(tls, ModemTls) else None
        quote(host, name="host")
        if offload is not None:
            check_offload(offload)
        cid = self._claim_link()
        try:
            if offload is not None:
                await self._configure_tls(cid, offload)
            elif cid not in self._plain_cids:
                await self._plain(cid)
            value = await self._caopen(cid, host, port, timeout)
            result = int_param(value, 1)
            if result != 0:
                if offload is not None:
                    raise await self._tls_failed(cid, host, port, offload, value, timeout)
                raise caopen_failure(host, port, value)
            return self._new_socket(cid, host, port)
        finally:
            self._release_link(cid)

    async def _caopen(self, cid: int, host: str, port: int, timeout: float) -> str:
        self._none_open = False  # from here on the cid may be open on the modem
        return await self._result(
            format_command("AT+CAOPEN", cid, self.pdp_index, "TCP", host, port),
            "+CAOPEN:",
            timeout=timeout,
            what=f"opening a TCP connection to {host}:{port}",
            hint="check that the data connection is up (activate_data), the host and the port",
            match=lambda v: int_param(v, 0) == cid,
        )

    async def _plain(self, cid: int) -> None:
        await self.modem.command(format_command("AT+CASSLCFG", cid, "SSL", 0), timeout=10)
        self._plain_cids.add(cid)

    async def _configure_tls(self, cid: int, tls: ModemTls) -> None:
        """Steps 1-3 of the module docstring's "TLS on the modem"."""
        modem = self.modem
        ca, cert, key = (tls_file_name(tls.sec_tag, kind) for kind in ("ca", "cert", "key"))
        async with file_system(modem):
            have_ca = await file_size(modem, ca) is not None
            pair = have_ca and await file_size(modem, cert) is not None
            pair = pair and await file_size(modem, key) is not None
        if not have_ca:
            raise ConfigurationError(
                f"no CA certificate is stored for security tag {tls.sec_tag} on the "
                f"{self.name} (no file /customer/{ca})",
                hint=f"write it first: atbridge certs write --sec-tag {tls.sec_tag} --ca "
                "FILE (the CA that signed the broker's certificate); atbridge certs list "
                f"--sec-tag {tls.sec_tag} shows what is stored",
            )
        ctx = cid % SSL_CONTEXTS
        commands = [format_command("AT+CSSLCFG", "sslversion", ctx, TLS_1_2)]
        if not is_ip_address(tls.hostname):
            commands.append(format_command("AT+CSSLCFG", "sni", ctx, tls.hostname))
        commands += [
            format_command("AT+CASSLCFG", cid, "SSL", 1),
            format_command("AT+CASSLCFG", cid, "CRINDEX", ctx),
            format_command("AT+CASSLCFG", cid, "CACERT", ca),
        ]
        if pair:
            commands.append(format_command("AT+CASSLCFG", cid, "CERT", cert))
        self._plain_cids.discard(cid)
        for line in commands:
            try:
                await modem.command(line, timeout=10)
            except ModemError as exc:
                exc.hint = (
                    f"the {self.name} refused a TLS setting: check that its firmware has "
                    "the SSL functions (AT+CSSLCFG=?), and write the tag's files again "
                    f"(atbridge certs write --sec-tag {tls.sec_tag} ...) so they are converted"
                )
                raise

    async def _tls_failed(
        self, cid: int, host: str, port: int, tls: ModemTls, value: str, timeout: float
    ) -> AtBridgeError:
        """The error of a failed TLS ``AT+CAOPEN`` (the module docstring)."""
        result = int_param(value, 1)
        refused = certificate_refusal(host, tls, value)
        if refused is not None:
            return refused
        failure = caopen_failure(host, port, value, tls=True)
        if result in _NOT_TLS:
            return failure
        # Is it the handshake? One plain TCP open on the same cid tells.
        try:
            await self._plain(cid)
            plain = await self._caopen(cid, host, port, timeout)
        except AtBridgeError:
            return failure
        if int_param(plain, 1) != 0:
            return failure
        with contextlib.suppress(AtBridgeError):
            await self.modem.command(format_command("AT+CACLOSE", cid), timeout=10, check=False)
        return TlsRefused(
            f"the TLS handshake with {host}:{port} failed on the {self.name} "
            f"(+CAOPEN: {value}), though a plain TCP connection to it works",
            hint=f"check that the CA stored under security tag {tls.sec_tag} signed the "
            f"broker's certificate (atbridge certs list --sec-tag {tls.sec_tag}; write the "
            "right one with atbridge certs write), that the broker does not want a client "
            "certificate you did not store (--cert/--key), and that the port speaks TLS "
            "(8883 is usual)",
        )

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        try:
            await self.modem.command(
                f"AT+CASEND={sock.handle},{len(chunk)}",  # integers only: nothing to quote
                payload=chunk,
                timeout=self.send_timeout,
                payload_secret_spans=self.modem.payload_secrets(sock, chunk),
            )
        except AtBridgeError as exc:
            raise self._send_failed(sock, exc, len(chunk)) from exc

    async def _read(self, sock: ModemSocket) -> tuple[bytes, bool]:
        response = await self.modem.command(f"AT+CARECV={sock.handle},{self.max_read}", timeout=10)
        data = response.data or b""
        return data, len(data) >= self.max_read

    async def _close(self, sock: ModemSocket) -> None:
        await self._close_quietly(sock, format_command("AT+CACLOSE", sock.handle), timeout=10)

    async def _open_links(self) -> list[int]:
        self._listing = True
        try:
            response = await self.modem.command("AT+CASTATE?", timeout=10)
        finally:
            self._listing = False
        cids = (int_param(value, 0) for value in response.values("+CASTATE:"))
        return sorted({cid for cid in cids if cid is not None})

    async def _close_link(self, link: int) -> bool:
        response = await self.modem.command(
            format_command("AT+CACLOSE", link), timeout=10, check=False
        )
        return response.final == "OK"


def check_offload(tls: ModemTls) -> None:
    """Refuse what the SIM7080's TLS cannot do, before anything is sent."""
    quote(tls.hostname, name="TLS host name")
    if tls.min_version not in ("1.2", "1.3"):
        raise ConfigurationError(
            f"TLS version {tls.min_version!r} is not one atbridge offers",
            hint="use 1.2 (the SIM7080's TLS speaks TLS 1.2 at most)",
        )
    if tls.min_version == "1.3":
        raise ConfigurationError(
            'the SIM7080\'s TLS speaks TLS 1.2 at most (AT+CSSLCFG="sslversion" offers '
            "TLS 1.0, 1.1 and 1.2): a minimum of TLS 1.3 cannot be met on the modem",
            hint="use --tls-min-version 1.2, or host-side TLS (--tls host), which speaks 1.3",
        )
    if tls.peer_verify != 2:
        raise ConfigurationError(
            f"peer verification {tls.peer_verify} is not available on the SIM7080: it "
            "verifies the broker whenever a CA is set for the connection, and offers no "
            "documented switch to do otherwise",
            hint="use peer_verify 2 (the default) with the broker's CA stored under the "
            "tag, or host-side TLS (--tls host)",
        )


def certificate_refusal(host: str, tls: ModemTls, value: str) -> TlsRefused | None:
    """``+CAOPEN: <cid>,24/25/26`` as the refusal that says what to fix; else None."""
    result = int_param(value, 1)
    clock = (
        "check the modem's clock (AT+CCLK?): TLS on the modem checks the certificate's "
        "dates against it, and a modem that never had network time (AT+CLTS=1) or was "
        "set wrong sees a valid certificate as expired; if the clock is right, the "
        "broker's certificate must be renewed"
    )
    name = (
        f"connect with a host name the certificate names (check --broker), or give the "
        f"broker a certificate for {host}"
    )
    if result == 24:
        return TlsRefused(
            f"the broker's certificate has expired (or is not valid yet) by the modem's "
            f"clock (+CAOPEN: {value}: the certificate's time check failed)",
            hint=clock,
        )
    if result == 25:
        return TlsRefused(
            f"the broker's certificate is not for {host} (+CAOPEN: {value}: its name does "
            "not match)",
            hint=name,
        )
    if result == 26:
        return TlsRefused(
            f"the broker's certificate is not for {host} and has expired (or is not valid "
            f"yet) by the modem's clock (+CAOPEN: {value})",
            hint=f"{name}; and {clock}",
        )
    return None


def caopen_failure(host: str, port: int, value: str, *, tls: bool = False) -> SocketError:
    """A failed ``+CAOPEN: <cid>,<result>`` in words (:data:`CAOPEN_RESULTS`)."""
    result = int_param(value, 1)
    meaning, hint = CAOPEN_RESULTS.get(
        result if result is not None else -1,
        ("unknown result", "check the host, the port and the data connection"),
    )
    what = "a TLS connection (on the modem)" if tls else "a TCP connection"
    return SocketError(
        f"could not open {what} to {host}:{port}: +CAOPEN: {value} ({meaning})", hint=hint
    )


DIALECT = Sim7080
