"""SIMCom SIM7600 / SIM7500 / A76xx: ``+NETOPEN`` and ``+CIPOPEN`` sockets.

Theory of operation
-------------------
Sources: reference §5.3 (TinyGSM ``TinyGsmClientSIM7600.h``); the ``<err>`` and
``+IPCLOSE`` reason tables from the SIM7500/SIM7600 TCP/IP notes (secondary
sources, reference §8: unverified, easy to change below).

- Receive mode: ``AT+CIPRXGET=1`` (manual: the modem keeps data until read).
- Bearer: ``AT+NETOPEN`` -> ``OK`` then ``+NETOPEN: 0``; ``AT+NETOPEN?``
  (``+NETOPEN: 1``) skips it when the network is already open; after a network
  loss ``AT+NETCLOSE`` (``+NETCLOSE: 0``) releases it first.
- Open: ``AT+CIPOPEN=<link>,"TCP","<host>",<port>`` -> ``+CIPOPEN: <link>,<err>``.
- Send: ``AT+CIPSEND=<link>,<len>`` -> ``>`` -> exactly ``<len>`` bytes -> ``OK``
  then ``+CIPSEND: <link>,<requested>,<sent>``; what was not sent is sent again.
- Receive: ``+CIPRXGET: 1,<link>`` says data is waiting;
  ``AT+CIPRXGET=2,<link>,<n>`` answers ``+CIPRXGET: 2,<link>,<read>,<rest>``, a
  line, then exactly ``<read>`` bytes. ``AT+CIPRXGET=4,<link>`` (``+CIPRXGET:
  4,<link>,<n>``) is the safety-net check.
- Peer close: ``+IPCLOSE: <link>,<reason>``. Network loss:
  ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY``. Close: ``AT+CIPCLOSE=<link>`` ->
  ``+CIPCLOSE: <link>,<err>``. DNS: ``AT+CDNSGIP``.
- Left-over links: ``AT+CIPCLOSE?`` answers ``+CIPCLOSE: <s0>,...,<s9>`` (1 =
  open; TinyGSM's ``modemGetConnected``); each open one is closed, since
  ``AT+CIPOPEN`` refuses an open link (``+CIPOPEN: <link>,<err>``).
- Manual receive mode is gone after every reboot (the module comes back in push
  mode with echo on). ``AT+CIPRXGET=1`` is sent right before ``AT+NETOPEN``
  (TinyGSM ``TinyGsmClientA7672x.h`` sets it before the network opens) or, when the
  network is found open already, before the first ``AT+CIPOPEN`` (TinyGSM
  ``TinyGsmClientSIM7600.h`` sends it before each ``AT+CIPOPEN``); it is sent again
  only after something that may have reset it: a reboot (banner), a lost link or a
  lost network (issue 16: the second ``AT+CIPRXGET=1`` of every bring-up, before the
  open, repeated what the command before ``AT+NETOPEN`` had just set). A reboot the
  channel did not see also closes the network, so the next ``AT+CIPOPEN`` fails
  (``Network not opened``) rather than opening a socket in push mode. Nothing before
  them needs it, so bind does not send it. Echo off is the channel's session setup
  after a banner.
- A network opened here (``+NETOPEN: 0``) has no link open until the next
  ``AT+CIPOPEN``: the left-over check before that open asks nothing.
- A76xx modules (``AT+CGMM`` ``A76...``) boot with ``*ATREADY: 1`` where the
  SIM7600 prints ``RDY`` (:attr:`Sim7600.boot_banners`).
- Registration: ``+CEREG`` then ``+CGREG`` (TinyGSM asks ``CGREG`` on the SIM7600:
  on 3G/2G only ``+CGREG`` reports packet registration).

TLS on the modem (offload): the ``AT+CCH*`` SSL client
------------------------------------------------------
Sources: the SIM7500/SIM7600 Series AT Command Manual (V2.00, SSL chapter: the
``AT+CCH*``, ``AT+CSSLCFG`` and ``AT+CCERT*`` commands, as mirrored on
momoiot.co.kr ``lte-at/cmd/ssl`` and ``5g-at/cmd/ssl``), TinyGSM
``TinyGsmClientSIM7600.h`` (its secure client: ``AT+CCHSET=1,1`` then
``AT+CCHSTART`` after ``+NETOPEN``; ``AT+CSSLCFG`` sslversion/authmode/cacert/
clientcert/clientkey; ``AT+CCHSSLCFG``; ``AT+CCHOPEN``; ``AT+CCHSEND`` and its
``+CCHSEND: <session>,<err>``; ``AT+CCHRECV=<session>,<len>`` answering
``+CCHRECV: DATA,<session>,<len>`` then the bytes then ``+CCHRECV: <session>,0``;
``AT+CCHRECV?`` answering ``+CCHRECV: LEN,<cached0>,<cached1>``; two SSL sessions;
no pre-shared keys), and the A76xx reports of ``AT+CSSLCFG="enableSNI"`` (LilyGO
T-SIM7600X issue 49). A plain TCP socket is unchanged by any of this: the CIP*
commands above and the CCH* ones are two separate stacks on the module.

- A TLS socket is a :class:`CchSocket`: SSL session 0 or 1 (``AT+CCHOPEN=?`` lists
  ``(0-1)``), with the SSL context of the same number. Its :attr:`ModemSocket.handle`
  is ``10 + session`` (:data:`SESSION_HANDLE_BASE`), so it never collides with a CIP
  link (0-9) in the dialect's table.
- The SSL service: ``AT+CCHSET=1,1`` (report each send's result; keep received data
  until it is read, announced by ``+CCHEVENT: <session>,RECV EVENT``: the manual
  receive mode, so the same receiver with its safety net serves both stacks), then
  ``AT+CCHSTART`` (``+CCHSTART: 0``), once per boot. A ``CCHSTART`` that is refused
  with the service already running (an earlier process started it) is followed by
  ``AT+CCHOPEN?``: every session it shows connected was left by that process and is
  closed (``AT+CCHCLOSE``) before connecting. ``AT+CCHSTOP`` releases the service
  when the network is released after a loss (:meth:`Sim7600.activate_data`).
- Before each TLS open, ``AT+CCERTLIST`` says which of the tag's files the module
  holds (:mod:`atbridge.dialects.sim7600_certs` names them ``atb<tag>ca.pem``,
  ``atb<tag>cert.pem``, ``atb<tag>key.pem``): with no CA under the tag the open is
  refused before anything is configured (what ``+CCHOPEN`` would say is only
  "handshake error"). Then, on the session's context: ``"sslversion"`` 3 (TLS 1.2:
  the module offers 0 SSL 3.0 to 3 TLS 1.2 and 4 "all", nothing newer; a
  ``min_version`` of 1.3 is refused), ``"authmode"`` 1 (verify the broker) or 2 (and
  offer our certificate) when ``peer_verify`` is set, 0 or 3 when it is not (peer
  verification 1, "optional", is verified as 2: the module has no optional mode),
  ``"ignorelocaltime"`` 0 when verifying (the certificate's dates are checked against
  the module's clock, ``AT+CCLK?``), ``"cacert"``/``"clientcert"``/``"clientkey"``
  with the tag's file names, ``"enableSNI"`` 1 for a host name (the name sent is the
  host ``AT+CCHOPEN`` connects to, so the TLS host name must be that host);
  ``AT+CCHSSLCFG=<session>,<context>``; ``AT+CCHOPEN=<session>,"<host>",<port>,2``
  (2: an SSL/TLS client) and its ``+CCHOPEN: <session>,<err>``.
- ``<err>`` (:data:`CCH_ERRORS`, the manual's SSL result codes): 15 "handshake error"
  is the module's one word for every refused certificate (unknown CA, another host
  name, expired, a client certificate the broker refused), so the error lists them
  and asks ``AT+CCLK?``: only a clock more than a day away from this computer's is
  named as the cause. 15 and 19 ("not set certificates") are
  :class:`~atbridge.errors.TlsRefused` (retrying cannot fix them: the bridge stops);
  13 (DNS), 9/14/17 (network, connect, no network) are
  :class:`~atbridge.errors.SocketError` (the lifecycle retries them).
- Send: ``AT+CCHSEND=<session>,<len>`` -> ``>`` -> exactly ``<len>`` bytes -> ``OK``
  then ``+CCHSEND: <session>,<err>`` (0: sent), in chunks of :attr:`Sim7600.max_send`
  (the module takes up to 2048; the CIP limit is kept for both).
- Receive: ``+CCHEVENT: <session>,RECV EVENT`` wakes the socket's receiver, which
  reads with ``AT+CCHRECV=<session>,<len>``: ``+CCHRECV: DATA,<session>,<n>``, ``<n>``
  raw bytes, ``+CCHRECV: <session>,<err>``; the data may come before the command's
  ``OK`` or after it (the sources disagree), so both are taken and the read holds the
  channel until its ``+CCHRECV: <session>,<err>``. ``AT+CCHRECV?`` is the safety net.
- End: ``+CCH_PEER_CLOSED: <session>`` (the broker closed) and
  ``+CCH_RECV_CLOSED: <session>,<err>`` (the module stopped receiving on an error) end
  the socket after what is still cached is read; ``AT+CCHCLOSE=<session>`` and its
  ``+CCHCLOSE: <session>,<err>`` close it.

Size: this module drives both socket stacks of the one family, the ``AT+CIP*`` TCP sockets and
the ``AT+CCH*`` TLS client; they share the bring-up, the link numbers and the receiver, so a
split would have each half reach into the other's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

from atbridge.at_parser import BlockRule, field_int
from atbridge.at_syntax import format_command, int_param, parse_int, split_params, str_param
from atbridge.dialects.base import (
    DataBearer,
    Dialect,
    ModemSocket,
    check_port,
    is_ip_address,
)
from atbridge.dialects.simcom import CipRxgetDialect
from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    CloseReason,
    ConfigurationError,
    ModemError,
    SocketError,
    StepTimeout,
    TlsRefused,
)
from atbridge.modem import Modem, Urc
from atbridge.tls import ModemTls
from atbridge.transcript import Spans

log = logging.getLogger(__name__)

#: ``<err>`` of ``+NETOPEN``/``+CIPOPEN``/``+CIPCLOSE`` (SIM7500/SIM7600 TCP/IP notes).
ERRORS: dict[int, str] = {
    0: "operation succeeded",
    1: "network failure",
    2: "network not opened",
    3: "wrong parameter",
    4: "operation not supported",
    5: "failed to create socket",
    6: "failed to bind socket",
    7: "TCP server is already listening",
    8: "busy",
    9: "sockets opened",
    10: "timeout",
    11: "DNS parse failed",
    12: "unknown error",
}

#: ``+IPCLOSE: <link>,<reason>`` -> how the socket ended (0 local, 1 remote, 2 send timeout).
IPCLOSE_REASONS: dict[int, tuple[CloseReason, str]] = {
    0: (CloseReason.ERROR, "closed by the modem itself"),
    1: (CloseReason.PEER, "closed by the remote"),
    2: (CloseReason.ERROR, "closed for a sending timeout"),
}


def _link_of(urc: Urc, prefix: str) -> int | None:
    """The first parameter of ``urc`` after ``prefix``: the link or SSL session it is for."""
    return int_param(urc.text[len(prefix) :], 0)


def cipsend_taken(params: str, _length: int) -> int:
    """The bytes the modem took, from ``+CIPSEND: <link>,<requested>,<sent>``."""
    fields = params.split(",")
    return (parse_int(fields[2]) if len(fields) > 2 else None) or 0


def _describe(err: int | None) -> str:
    return ERRORS.get(err, "unknown error") if err is not None else "no error code"


# -- TLS on the modem (AT+CCH*) -----------------------------------------------------------

#: The SSL sessions of ``AT+CCHOPEN`` (``(0-1)``); session ``s`` uses SSL context ``s``.
TLS_SESSIONS = range(2)
#: A TLS socket's handle is this plus its session, apart from the CIP links 0-9.
SESSION_HANDLE_BASE = 10
#: ``<err>`` of the ``AT+CCH*`` commands and their results (SIM7500/SIM7600 AT manual, SSL
#: chapter, "Command result codes"; the A76xx SSL application note lists the same 0-19).
#: Checked in the audit of issue 13: no copy of that table was readable through the project's
#: reference search (the manual's mirrors and momoiot.co.kr pages stop before it), so the
#: words are the manual's as remembered, not verified line by line.
CCH_ERRORS: dict[int, str] = {
    0: "operation succeeded",
    1: "alerting state",
    2: "unknown error",
    3: "busy",
    4: "peer closed",
    5: "operation timeout",
    6: "transfer failed",
    7: "memory error",
    8: "invalid parameter",
    9: "network error",
    10: "open session error",
    11: "state error",
    12: "create socket error",
    13: "get DNS error",
    14: "connect socket error",
    15: "handshake error",
    16: "close socket error",
    17: "no network",
    18: "send data timeout",
    19: "certificates not set",
}
CCH_DNS_ERROR = 13
CCH_HANDSHAKE_ERROR = 15
CCH_NO_CERTIFICATES = 19
#: ``AT+CSSLCFG="sslversion"``: 3 is TLS 1.2, the newest the module offers.
SSL_VERSION_TLS12 = 3
#: ``AT+CSSLCFG="authmode"``: none, server, server and client, client only.
AUTH_NONE, AUTH_SERVER, AUTH_MUTUAL, AUTH_CLIENT = 0, 1, 2, 3
#: A modem clock further than this from this computer's is named as a refusal's cause.
CLOCK_TOLERANCE = timedelta(days=1)


def tls_file_name(sec_tag: int, what: str) -> str:
    """The module's file for ``what`` (``"ca"``, ``"cert"``, ``"key"``) of ``sec_tag``."""
    return f"atb{sec_tag}{what}.pem"


def describe_cch(err: int | None) -> str:
    """The words of a CCH ``<err>``."""
    return CCH_ERRORS.get(err, "unknown error") if err is not None else "no error code"


def ssl_version(min_version: str) -> int:
    """The ``"sslversion"`` for the oldest TLS version allowed; 1.3 is refused (the module
    speaks TLS 1.2 at most)."""
    if min_version == "1.2":
        return SSL_VERSION_TLS12
    raise ConfigurationError(
        f"TLS {min_version} on the modem is not possible on the SIM7600: its SSL client "
        'offers TLS 1.2 at most (AT+CSSLCFG "sslversion" 0-4)',
        hint='allow TLS 1.2 (min_version = "1.2"), or use host-side TLS (--tls host), '
        "which speaks TLS 1.3 through the same modem",
    )


def auth_mode(peer_verify: int, client_pair: bool) -> int:
    """The ``"authmode"`` for ``peer_verify`` and whether a client certificate is offered."""
    if peer_verify:
        return AUTH_MUTUAL if client_pair else AUTH_SERVER
    return AUTH_CLIENT if client_pair else AUTH_NONE


def parse_cclk(value: str) -> datetime | None:
    """``+CCLK: "yy/MM/dd,hh:mm:ss±zz"`` (zz in quarter hours, 3GPP TS 27.007 §8.15) as
    an aware datetime, or None."""
    text = str_param(value, 0) or ""
    if len(text) < 17:
        return None
    try:
        stamp = datetime.strptime(text[:17], "%y/%m/%d,%H:%M:%S")
        quarters = int(text[17:]) if len(text) > 17 else 0
    except ValueError:
        return None
    return stamp.replace(tzinfo=timezone(timedelta(minutes=15 * quarters)))


def is_cchopen_result(line: str) -> bool:
    """``+CCHOPEN: <session>,<err>`` (a result) and not a line of ``AT+CCHOPEN?``."""
    params = split_params(line.partition(":")[2])
    return len(params) == 2 and all(int_param(params, i) is not None for i in (0, 1))


def cchrecv_length(header: bytes) -> int | None:
    """Block length of ``+CCHRECV: DATA,<session>,<len>``."""
    return field_int(header, b"+CCHRECV: DATA,", 1)


class CchSocket(ModemSocket):
    """A TLS connection on SSL session :attr:`session` (handle ``10 + session``)."""

    def __init__(self, dialect: Dialect, session: int, host: str, port: int) -> None:
        super().__init__(dialect, SESSION_HANDLE_BASE + session, host, port)
        self.session = session


class Sim7600(CipRxgetDialect):
    """SIMCom SIM7600/SIM7500/A76xx: ``+NETOPEN``, ``+CIPOPEN``, ``+CIPSEND``, ``+CIPRXGET``."""

    name = "sim7600"
    description = "SIMCom SIM7600 / SIM7500 / A76xx (NETOPEN/CIPOPEN TCP/IP commands)"
    #: ``AT+CGMM`` answers of this family (reference §5).
    models = ("SIM7600", "SIM7500", "A76")
    #: One TCP segment; the read limit (<= 1460) of the same family (reference §5.3).
    max_send = 1460
    #: Links 0-9 (``AT+CIPCLOSE?`` lists ten).
    links = range(10)
    #: TLS on the modem with the CCH* SSL client (``steps.TlsOffloader``; module doc).
    offloads_tls = True
    boot_banners = frozenset({"*ATREADY: 1"})
    #: SIM7500/SIM7600 AT manual: ``AT+CICCID`` (``+ICCID:``), ``AT+CPMUTEMP`` (the
    #: module's temperature), ``AT+NETOPEN?`` (the socket network open or not).
    diagnostic_queries = MappingProxyType(
        {
            **CipRxgetDialect.diagnostic_queries,
            "device": (
                *(
                    "AT+CICCID" if query == "AT+CCID" else query
                    for query in CipRxgetDialect.diagnostic_queries["device"]
                ),
                "AT+CPMUTEMP",
            ),
            "network": (*CipRxgetDialect.diagnostic_queries["network"], "AT+NETOPEN?"),
        }
    )
    network_lost_urcs = (*Dialect.network_lost_urcs, "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")
    #: The network went away since the last activation (AT+NETCLOSE first).
    _network_dropped: bool = False

    def __init__(self, modem: Modem) -> None:
        #: ``AT+CIPRXGET=1`` was answered OK and nothing since may have reset it (a
        #: reboot, a lost link, a lost network): the module docstring.
        self._manual_set = False
        #: The send waiting for its result, by (``+CIPSEND``/``+CCHSEND``, link or session).
        self._send_results: dict[tuple[str, int | None], asyncio.Future[str]] = {}
        #: The SSL service was started (``+CCHSTART: 0``, or found running) since the boot.
        self._ssl_started = False
        #: This process started the SSL service at least once (it stops it with the network).
        self._ssl_used = False
        super().__init__(modem)

    def install(self) -> None:
        super().install()
        modem = self.modem
        for prefix in ("+CIPOPEN:", "+CIPSEND:", "+IPCLOSE:", "+CIPEVENT:"):
            modem.register_urc(prefix)
        # "+CIPCLOSE: <link>,<err>" follows a close; "+CIPCLOSE: <s0>,...,<s9>" answers the read.
        modem.register_urc("+CIPCLOSE:", is_response=lambda line: line.count(",") >= 9)
        self._unhook.append(modem.subscribe("+IPCLOSE:", self._on_ipclose))
        # The CCH* SSL client: results after the OK, the receive block, the session ends.
        modem.add_block(BlockRule(b"+CCHRECV: DATA,", cchrecv_length))
        modem.register_urc("+CCHOPEN:", is_response=lambda line: not is_cchopen_result(line))
        for prefix in ("+CCHSTART:", "+CCHSTOP:", "+CCHSEND:", "+CCHCLOSE:", "+CCHEVENT:"):
            modem.register_urc(prefix)
        for prefix in ("+CCH_PEER_CLOSED:", "+CCH_RECV_CLOSED:"):
            modem.register_urc(prefix)
        self._unhook += [
            modem.subscribe("+CIPSEND:", self._on_send_result),
            modem.subscribe("+CCHSEND:", self._on_send_result),
            modem.subscribe("+CCHEVENT:", self._on_cchevent),
            modem.subscribe("+CCH_PEER_CLOSED:", self._on_cch_closed),
            modem.subscribe("+CCH_RECV_CLOSED:", self._on_cch_closed),
        ]

    def _on_send_result(self, urc: Urc) -> None:
        """``+CIPSEND: <link>,...`` / ``+CCHSEND: <session>,...``: to the send waiting for it."""
        name, _, params = urc.text.partition(":")
        waiting = self._send_results.get((name, parse_int(params.partition(",")[0])))
        if waiting is not None and not waiting.done():
            waiting.set_result(params)

    def _on_cchevent(self, urc: Urc) -> None:
        session = _link_of(urc, "+CCHEVENT:")
        if session is not None and "RECV" in urc.text.upper():
            self.data_waiting(SESSION_HANDLE_BASE + session)

    def _on_cch_closed(self, urc: Urc) -> None:
        prefix, _, value = urc.text.partition(":")
        session = int_param(value, 0)
        if session is None:
            return
        if prefix == "+CCH_PEER_CLOSED":
            reason, meaning = CloseReason.PEER, "closed by the broker"
        else:
            err = int_param(value, 1)
            reason, meaning = CloseReason.ERROR, f"receiving stopped: {describe_cch(err)}"
        self.connection_ended(
            SESSION_HANDLE_BASE + session, reason, f"{urc.text.strip()} ({meaning})"
        )

    def _on_reboot(self, banner: str) -> None:
        self._ssl_started = self._manual_set = False
        super()._on_reboot(banner)

    def _on_link_lost(self, reason: str) -> None:
        self._manual_set = False  # a USB modem re-enumerates on its reset
        super()._on_link_lost(reason)

    def _on_ipclose(self, urc: Urc) -> None:
        value = urc.text[len("+IPCLOSE:") :]
        link, code = int_param(value, 0), int_param(value, 1)
        if link is None:
            return
        reason, meaning = IPCLOSE_REASONS.get(
            code if code is not None else -1, (CloseReason.PEER, "closed")
        )
        self.connection_ended(link, reason, f"+IPCLOSE: {value.strip()} ({meaning})")

    async def _manual_receive(self) -> None:
        """Manual receive: the modem keeps data until ``AT+CIPRXGET=2`` reads it. Sent
        once until a reboot, a lost link or a lost network (the module docstring)."""
        if self._manual_set:
            return
        await self.modem.command("AT+CIPRXGET=1")
        self._manual_set = True

    def network_lost(self, detail: str) -> None:
        self._network_dropped = True
        self._ssl_started = self._manual_set = False
        super().network_lost(detail)

    async def activate_data(self, timeout: float = 75.0) -> DataBearer:
        """``AT+NETOPEN`` and wait for ``+NETOPEN: 0`` (skipped when already open).

        After ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`` the network library stays
        open until ``AT+NETCLOSE`` releases it (SIM7600 TCP/IP notes), so that comes first.
        """
        if self._network_dropped:
            self._network_dropped = False
            if self._ssl_used:
                # The SSL service rides on the network: released with it, started again
                # by the next TLS open.
                with contextlib.suppress(ModemError, StepTimeout):
                    await self._result(
                        "AT+CCHSTOP",
                        "+CCHSTOP:",
                        timeout=min(timeout, 30.0),
                        what="stopping the SSL service after the network was lost",
                        hint="",
                    )
            with contextlib.suppress(ModemError, StepTimeout):
                await self._result(
                    "AT+NETCLOSE",
                    "+NETCLOSE:",
                    timeout=min(timeout, 60.0),
                    what="releasing the network after it was lost",
                    hint="",
                )
        state = await self.modem.command("AT+NETOPEN?", timeout=10)
        if any(int_param(value, 0) == 1 for value in state.values("+NETOPEN:")):
            return DataBearer(already_active=True)  # the open sets manual receive
        await self._manual_receive()  # before NETOPEN (A76xx)
        hint = (
            "check the APN of PDP context 1 (AT+CGDCONT; an 'ims' context in its place makes "
            "NETOPEN fail, TinyGSM#649) and that the modem is registered; then retry"
        )
        value = await self._result(
            "AT+NETOPEN", "+NETOPEN:", timeout=timeout, what="opening the network", hint=hint
        )
        err = int_param(value, 0)
        if err != 0:
            raise SocketError(
                f"the modem could not open the network: +NETOPEN: {value} ({_describe(err)})",
                hint=hint,
            )
        self._none_open = True
        return DataBearer()

    async def open_socket(
        self, host: str, port: int, *, tls: bool | ModemTls = False, timeout: float = 60.0
    ) -> ModemSocket:
        """``AT+CIPOPEN`` on the lowest free link; with ``tls`` a
        :class:`~atbridge.tls.ModemTls`, a TLS connection on the modem's SSL client
        (``AT+CCHOPEN``, see the module docstring)."""
        if isinstance(tls, ModemTls):
            return await self._open_tls(host, port, tls, timeout)
        if tls:
            raise ConfigurationError(
                "a TLS socket on the SIM7600 needs the security tag of its CA certificate",
                hint="give --sec-tag, the security tag the CA was written to with "
                "atbridge certs write (or use host-side TLS: --tls host)",
            )
        self._check_open(port, False)
        link = self._claim_link()
        try:
            await self._manual_receive()  # unless set since the last reboot / loss
            self._none_open = False
            value = await self._result(
                format_command("AT+CIPOPEN", link, "TCP", host, port),
                "+CIPOPEN:",
                timeout=timeout,
                what=f"opening a TCP connection to {host}:{port}",
                hint="check that the network is open (activate_data), the host and the port",
                match=lambda v: int_param(v, 0) == link,
            )
            err = int_param(value, 1)
            if err != 0:
                raise SocketError(
                    f"could not open a TCP connection to {host}:{port}: "
                    f"+CIPOPEN: {value} ({_describe(err)})",
                    hint="check the host name (error 11 is DNS), the port and that the server "
                    "is running; error 2 means the network is not open (activate_data)",
                )
            return self._new_socket(link, host, port)
        finally:
            self._release_link(link)

    # -- TLS on the modem (module docstring) --------------------------------------------

    async def _open_tls(self, host: str, port: int, tls: ModemTls, timeout: float) -> CchSocket:
        """A TLS connection on a free SSL session; see the module docstring."""
        check_port(port)
        version = ssl_version(tls.min_version)
        if tls.hostname.casefold() != host.casefold():
            raise ConfigurationError(
                f"the SIM7600 checks the broker's certificate against the host it connects "
                f"to ({host}), not against another TLS host name ({tls.hostname})",
                hint=f"connect to {tls.hostname} itself, or use host-side TLS (--tls host)",
            )
        format_command("AT+CCHOPEN", 0, host, port)  # a host that cannot be sent: refused now
        files = await self._stored_files()
        ca, cert, key = (tls_file_name(tls.sec_tag, what) for what in ("ca", "cert", "key"))
        if tls.peer_verify and ca not in files:
            raise TlsRefused(
                f"no CA certificate is stored on the modem under security tag {tls.sec_tag} "
                f"({ca} is not in AT+CCERTLIST): the modem cannot verify the broker",
                hint=f"write the CA that signed the broker's certificate: atbridge certs write "
                f"--sec-tag {tls.sec_tag} --ca FILE (atbridge certs list shows what is stored)",
            )
        if (cert in files) != (key in files):
            missing = key if cert in files else cert
            raise TlsRefused(
                f"security tag {tls.sec_tag} holds half a client certificate pair on the "
                f"modem ({missing} is missing)",
                hint=f"write both: atbridge certs write --sec-tag {tls.sec_tag} --ca FILE "
                "--cert FILE --key FILE (or delete the one that is there)",
            )
        client_pair = cert in files
        await self._start_ssl_service(timeout)  # before the claim: a left-over may hold it
        session = self._claim_session()
        try:
            context = session
            settings: list[tuple[str, str | int]] = [
                ("sslversion", version),
                ("authmode", auth_mode(tls.peer_verify, client_pair)),
                ("ignorelocaltime", 0 if tls.peer_verify else 1),
            ]
            if tls.peer_verify:
                settings.append(("cacert", ca))
            if client_pair:
                settings += [("clientcert", cert), ("clientkey", key)]
            settings.append(("enableSNI", 0 if is_ip_address(host) else 1))
            for name, value in settings:
                await self._configure(format_command("AT+CSSLCFG", name, context, value))
            await self._configure(format_command("AT+CCHSSLCFG", session, context))
            try:
                value = await self._result(
                    format_command("AT+CCHOPEN", session, host, port, 2),
                    "+CCHOPEN:",
                    timeout=timeout,
                    what=f"opening a TLS connection to {host}:{port} on the modem",
                    hint="check that the network is open (activate_data), the host and the port",
                    match=lambda v: (
                        is_cchopen_result(f"+CCHOPEN: {v}") and int_param(v, 0) == session
                    ),
                )
            except StepTimeout:
                # Still connecting on the modem: released, or the next open finds it busy.
                with contextlib.suppress(AtBridgeError):
                    await self._close_session(session, None)
                raise
            err = int_param(value, 1)
            if err != 0:
                raise await self._open_failure(err, value, host, port, tls)
            sock = CchSocket(self, session, host, port)
            self._start_receiver(self._adopt(sock))
            return sock
        finally:
            self._release_link(SESSION_HANDLE_BASE + session)

    def _claim_session(self) -> int:
        for session in TLS_SESSIONS:
            handle = SESSION_HANDLE_BASE + session
            if handle not in self.sockets and handle not in self._opening:
                self._opening.add(handle)
                return session
        raise SocketError(
            f"both TLS sessions of the {self.name} ({len(TLS_SESSIONS)}) are in use",
            hint="close a TLS socket before opening another",
        )

    async def _configure(self, line: str) -> None:
        try:
            await self.modem.command(line, timeout=10)
        except ModemError as exc:
            exc.hint = (
                "the modem refused an SSL setting: check that its firmware has the CCH* SSL "
                "client (AT+CCHSTART=? answers) and that the certificates were written with "
                "atbridge certs write"
            )
            raise

    async def _stored_files(self) -> set[str]:
        """The certificate files the module holds (``AT+CCERTLIST``)."""
        response = await self.modem.command("AT+CCERTLIST", timeout=10)
        names = (str_param(value, 0) for value in response.values("+CCERTLIST:"))
        return {name for name in names if name}

    async def _start_ssl_service(self, timeout: float) -> None:
        """``AT+CCHSET=1,1`` and ``AT+CCHSTART`` once per boot; a service found running
        (started by an earlier process) has its left-over sessions closed."""
        if self._ssl_started:
            return
        try:
            await self._configure("AT+CCHSET=1,1")
        except ModemError as refused:
            unset: ModemError | None = refused  # a running service may refuse it
        else:
            unset = None
        hint = "check that the network is open (activate_data) and that the modem is registered"
        try:
            value = await self._result(
                "AT+CCHSTART",
                "+CCHSTART:",
                timeout=min(timeout, 120.0),
                what="starting the modem's SSL service",
                hint=hint,
            )
        except ModemError as exc:
            # Refused: running already (an earlier process) if it answers AT+CCHOPEN?.
            try:
                listing = await self.modem.command("AT+CCHOPEN?", timeout=10)
            except ModemError:
                raise SocketError(
                    f"the modem could not start its SSL service: it answered {exc.final!r} "
                    "to 'AT+CCHSTART'",
                    hint=hint,
                ) from exc
            self._ssl_started = self._ssl_used = True
            await self._close_leftover_sessions(listing.values("+CCHOPEN:"))
            return
        err = int_param(value, 0)
        if err != 0:
            raise SocketError(
                f"the modem could not start its SSL service: +CCHSTART: {value} "
                f"({describe_cch(err)})",
                hint=hint,
            )
        self._ssl_started = self._ssl_used = True
        if unset is not None:
            # Started fresh without the manual receive mode: received data would be lost.
            raise unset

    async def _close_leftover_sessions(self, lines: list[str]) -> None:
        """Close the sessions ``AT+CCHOPEN?`` shows connected that are not ours."""
        for value in lines:
            session = int_param(value, 0)
            if session is None or str_param(value, 1) is None:
                continue  # not connected
            handle = SESSION_HANDLE_BASE + session
            if handle in self.sockets or handle in self._opening:
                continue
            if await self._close_session(session, None):
                log.info("%s: closed TLS session %d left open on the modem", self.name, session)

    async def _open_failure(
        self, err: int | None, value: str, host: str, port: int, tls: ModemTls
    ) -> AtBridgeError:
        said = f"+CCHOPEN: {value} ({describe_cch(err)})"
        tag = tls.sec_tag
        if err == CCH_HANDSHAKE_ERROR:
            clock = await self._clock_offset()
            if clock is not None:
                reading, offset = clock
                days = abs(offset) / timedelta(days=1)
                return TlsRefused(
                    f"the TLS handshake with {host}:{port} on the modem failed ({said}), and "
                    f"the modem's clock reads {reading:%Y-%m-%d %H:%M} UTC, {days:.0f} days "
                    f"{'behind' if offset < timedelta(0) else 'ahead of'} this computer's: "
                    "the modem checks the certificate's dates against it",
                    hint='set the modem\'s clock (AT+CCLK="yy/MM/dd,hh:mm:ss+00", or '
                    "network time with AT+CTZU=1 and a new attach), then connect again",
                )
            return TlsRefused(
                f"the modem refused the TLS handshake with {host}:{port} ({said}): the "
                f"broker's certificate is not signed by the CA under security tag {tag}, "
                f"does not name {tls.hostname}, or has expired; or the broker refused the "
                "client certificate",
                hint=f"check the CA under security tag {tag} (atbridge certs list; write the "
                f"CA that signed the broker's certificate with atbridge certs write --sec-tag "
                f"{tag} --ca FILE), that the certificate names {tls.hostname} and is still "
                "valid, and for mutual TLS the client certificate under the tag",
            )
        if err == CCH_NO_CERTIFICATES:
            return TlsRefused(
                f"the modem has no certificates for the TLS connection to {host}:{port} ({said})",
                hint=f"write them: atbridge certs write --sec-tag {tag} --ca FILE",
            )
        if err == CCH_DNS_ERROR:
            return SocketError(
                f"the modem could not resolve {host!r} for the TLS connection ({said})",
                hint="check the spelling of the host name and that the network's DNS answers",
            )
        return SocketError(
            f"could not open a TLS connection to {host}:{port} on the modem ({said})",
            hint="check that the network is open (activate_data), the host, the port and "
            "that the broker speaks TLS on it",
        )

    async def _clock_offset(self) -> tuple[datetime, timedelta] | None:
        """The modem's clock (UTC) and how far it is from this computer's, when that is more
        than :data:`CLOCK_TOLERANCE`; None when it agrees or cannot be read."""
        try:
            response = await self.modem.command("AT+CCLK?", timeout=10)
        except (ModemError, AtTimeout):
            return None
        values = response.values("+CCLK:")
        reading = parse_cclk(values[0]) if values else None
        if reading is None:
            return None
        offset = reading - datetime.now(UTC)
        if abs(offset) <= CLOCK_TOLERANCE:
            return None
        return reading.astimezone(UTC), offset

    async def _send_tls(self, sock: CchSocket, chunk: bytes) -> None:
        session = sock.session

        def sent(params: str, length: int) -> int:
            err = int_param(params, 1)
            if err != 0:
                raise SocketError(
                    f"the modem could not send on TLS session {session}: +CCHSEND:{params} "
                    f"({describe_cch(err)})",
                    hint="the connection is gone; reconnecting",
                )
            return length

        await self._send_awaiting(sock, chunk, "AT+CCHSEND", session, "TLS session", sent)

    async def _read_tls(self, sock: CchSocket) -> tuple[bytes, bool]:
        """One ``AT+CCHRECV=<session>,<len>``: the data before or after the OK, until its
        ``+CCHRECV: <session>,<err>`` (the channel is held meanwhile)."""
        session, want = sock.session, self.max_read
        chunks: list[bytes] = []

        def on_data(urc: Urc) -> None:
            if urc.data and int_param(urc.text[len("+CCHRECV: DATA,") :], 0) == session:
                chunks.append(urc.data)

        def ends(text: str) -> bool:
            params = split_params(text[len("+CCHRECV:") :])
            return len(params) == 2 and int_param(params, 0) == session

        async with self.modem.exclusive():
            unhook = self.modem.subscribe("+CCHRECV: DATA,", on_data)
            try:
                with self.modem.expect_urc("+CCHRECV:", predicate=lambda u: ends(u.text)) as end:
                    response = await self.modem.command(
                        format_command("AT+CCHRECV", session, want), timeout=10, check=False
                    )
                    data = response.data or b""
                    if not any(ends(f"+CCHRECV: {v}") for v in response.values("+CCHRECV:")):
                        if response.final != "OK" and end.urc is None:
                            log.debug("%r: read answered %s", sock, response.final)
                            return b"", False
                        await end.wait(10)
            finally:
                unhook()
        received = data + b"".join(chunks)
        return received, len(received) >= want

    async def _available_tls(self, sock: CchSocket) -> int | None:
        try:
            response = await self.modem.command("AT+CCHRECV?", timeout=10)
        except ModemError:
            return None
        for value in response.values("+CCHRECV:"):
            params = split_params(value)
            if params and params[0].upper() == "LEN":
                return int_param(params, 1 + sock.session)
        return None

    async def _close_session(self, session: int, sock: CchSocket | None) -> bool:
        """``AT+CCHCLOSE=<session>`` and its ``+CCHCLOSE: <session>,<err>``."""
        return await self._close_awaiting("AT+CCHCLOSE", session, sock)

    async def _read(self, sock: ModemSocket) -> tuple[bytes, bool]:
        if isinstance(sock, CchSocket):
            return await self._read_tls(sock)
        return await super()._read(sock)

    async def _available(self, sock: ModemSocket) -> int | None:
        if isinstance(sock, CchSocket):
            return await self._available_tls(sock)
        return await super()._available(sock)

    # -- plain TCP (AT+CIP*) -----------------------------------------------------------

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        if isinstance(sock, CchSocket):
            return await self._send_tls(sock, chunk)
        link = sock.handle

        await self._send_awaiting(sock, chunk, "AT+CIPSEND", link, "link", cipsend_taken)

    async def _send_awaiting(
        self,
        sock: ModemSocket,
        chunk: bytes,
        command: str,
        ident: int,
        kind: str,
        sent: Callable[[str, int], int],
    ) -> None:
        """``chunk`` in parts of ``<command>=<ident>,<len>``, each payload given at the
        prompt, and each one's ``+<NAME>: <ident>,...`` result waited for; ``sent`` reads
        the result's parameters (and the part's length) into the bytes the modem took.
        ``kind`` names what ``ident`` numbers (``link``, ``TLS session``) in an error.

        The result comes from the family's one subscription (:meth:`_on_send_result`), to
        a future registered before the command (the result may share a read with its
        ``OK``, or come before it); a timer runs only when it is not there with the ``OK``.
        """
        name = command[2:]  # "+CIPSEND": the result's prefix, without its colon
        key = (name, ident)
        results = self._send_results
        loop = asyncio.get_running_loop()

        async def send_part(rest: bytes, spans: Spans) -> int:
            result: asyncio.Future[str] = loop.create_future()
            results[key] = result
            try:
                await self.modem.command(
                    f"{command}={ident},{len(rest)}",  # integers only: nothing to quote
                    payload=rest,
                    timeout=self.send_timeout,
                    payload_secret_spans=spans,
                )
                if not result.done():
                    try:
                        async with asyncio.timeout(self.send_timeout):
                            await result
                    except TimeoutError:
                        raise StepTimeout(
                            f"no {name} result for {len(rest)} bytes on {kind} {ident}",
                            hint="the modem may be stalled; reconnect",
                        ) from None
                return sent(result.result(), len(rest))
            finally:
                if results.get(key) is result:
                    del results[key]

        await self._send_in_parts(sock, chunk, send_part)

    async def _close(self, sock: ModemSocket) -> None:
        if isinstance(sock, CchSocket):
            await self._close_session(sock.session, sock)
            return
        await self._closed_link(sock.handle, sock)

    async def _closed_link(self, link: int, sock: ModemSocket | None) -> bool:
        """``AT+CIPCLOSE=<link>`` and its ``+CIPCLOSE: <link>,<err>``; whether it was open."""
        return await self._close_awaiting("AT+CIPCLOSE", link, sock)

    async def _close_awaiting(self, command: str, ident: int, sock: ModemSocket | None) -> bool:
        """``<command>=<ident>`` (a link or an SSL session), then its ``+<NAME>: <ident>,...``
        result waited for a bounded time; whether the modem said OK (it was open)."""
        prefix = command[2:] + ":"
        line = format_command(command, ident)
        with self.modem.expect_urc(
            prefix, predicate=lambda urc: _link_of(urc, prefix) == ident
        ) as result:
            if sock is not None:
                answered = await self._close_quietly(sock, line, timeout=10) is not None
            else:
                answered = (await self.modem.command(line, timeout=10, check=False)).final == "OK"
            if answered:
                with contextlib.suppress(StepTimeout):  # closed as far as we are concerned
                    await result.wait(10)
        return answered

    async def close_leftover_sockets(self) -> int:
        """The CIP links the modem reports open (:class:`SimcomDialect`), then this
        process's own TLS sockets; sessions an earlier process left are closed when the SSL
        service is first started (:meth:`_start_ssl_service`), so a plain TCP bring-up asks
        nothing more than before."""
        closed = await super().close_leftover_sockets()
        for sock in [s for s in self.sockets.values() if isinstance(s, CchSocket)]:
            await sock.close()
            closed += 1
        return closed

    async def _open_links(self) -> list[int]:
        response = await self.modem.command("AT+CIPCLOSE?", timeout=10)
        for value in response.values("+CIPCLOSE:"):
            flags = [flag.strip() for flag in value.split(",")]
            if len(flags) >= len(self.links):
                return [link for link, flag in enumerate(flags) if flag == "1"]
        return []

    async def _close_link(self, link: int) -> bool:
        return await self._closed_link(link, None)


DIALECT = Sim7600
