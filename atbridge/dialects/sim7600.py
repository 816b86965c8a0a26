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
  mode with echo on). ``AT+CIPRXGET=1`` is sent before ``AT+NETOPEN``
  (TinyGSM ``TinyGsmClientA7672x.h``) and before each ``AT+CIPOPEN`` (TinyGSM
  ``TinyGsmClientSIM7600.h``), so a reboot the channel did not see cannot leave
  a socket in push mode (nothing before them needs it, so bind does not send it).
  Echo off is the channel's session setup after a banner.
- A network opened here (``+NETOPEN: 0``) has no link open until the next
  ``AT+CIPOPEN``: the left-over check before that open asks nothing.
- A76xx modules (``AT+CGMM`` ``A76...``) boot with ``*ATREADY: 1`` where the
  SIM7600 prints ``RDY`` (:attr:`Sim7600.boot_banners`).
- Registration: ``+CEREG`` then ``+CGREG`` (TinyGSM asks ``CGREG`` on the SIM7600:
  on 3G/2G only ``+CGREG`` reports packet registration).
"""

from __future__ import annotations

import contextlib
from types import MappingProxyType

from atbridge.at_syntax import format_command, int_param
from atbridge.dialects.base import DataBearer, Dialect, ModemSocket
from atbridge.dialects.simcom import CipRxgetDialect
from atbridge.errors import (
    CloseReason,
    ModemError,
    SocketError,
    StepTimeout,
)
from atbridge.modem import Urc
from atbridge.transcript import Spans

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
    return int_param(urc.text[len(prefix) :], 0)


def _describe(err: int | None) -> str:
    return ERRORS.get(err, "unknown error") if err is not None else "no error code"


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
    tls_unsupported = "its AT+CCH* SSL commands are not driven by atbridge yet"
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

    def install(self) -> None:
        super().install()
        modem = self.modem
        for prefix in ("+CIPOPEN:", "+CIPSEND:", "+IPCLOSE:", "+CIPEVENT:"):
            modem.register_urc(prefix)
        # "+CIPCLOSE: <link>,<err>" follows a close; "+CIPCLOSE: <s0>,...,<s9>" answers the read.
        modem.register_urc("+CIPCLOSE:", is_response=lambda line: line.count(",") >= 9)
        self._unhook.append(modem.subscribe("+IPCLOSE:", self._on_ipclose))

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
        """Manual receive: the modem keeps data until ``AT+CIPRXGET=2`` reads it."""
        await self.modem.command("AT+CIPRXGET=1")

    def network_lost(self, detail: str) -> None:
        self._network_dropped = True
        super().network_lost(detail)

    async def activate_data(self, timeout: float = 75.0) -> DataBearer:
        """``AT+NETOPEN`` and wait for ``+NETOPEN: 0`` (skipped when already open).

        After ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`` the network library stays
        open until ``AT+NETCLOSE`` releases it (SIM7600 TCP/IP notes), so that comes first.
        """
        if self._network_dropped:
            self._network_dropped = False
            with contextlib.suppress(ModemError, StepTimeout):
                await self._result(
                    "AT+NETCLOSE",
                    "+NETCLOSE:",
                    timeout=min(timeout, 60.0),
                    what="releasing the network after it was lost",
                    hint="",
                )
        await self._manual_receive()  # before NETOPEN (A76xx)
        state = await self.modem.command("AT+NETOPEN?", timeout=10)
        if any(int_param(value, 0) == 1 for value in state.values("+NETOPEN:")):
            return DataBearer(already_active=True)
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
        self, host: str, port: int, *, tls: bool = False, timeout: float = 60.0
    ) -> ModemSocket:
        """``AT+CIPOPEN`` on the lowest free link (TCP only)."""
        self._check_open(port, tls)
        link = self._claim_link()
        try:
            await self._manual_receive()  # before each CIPOPEN (a silent reboot forgets it)
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

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        link = sock.handle

        async def send_part(rest: bytes, spans: Spans) -> int:
            with self.modem.expect_urc(
                "+CIPSEND:", predicate=lambda urc: _link_of(urc, "+CIPSEND:") == link
            ) as result:
                await self.modem.command(
                    format_command("AT+CIPSEND", link, len(rest)),
                    payload=rest,
                    timeout=self.send_timeout,
                    payload_secret_spans=spans,
                )
                try:
                    urc = await result.wait(self.send_timeout)
                except StepTimeout:
                    if sock.closed is not None:
                        raise
                    raise StepTimeout(
                        f"no +CIPSEND result for {len(rest)} bytes on link {link}",
                        hint="the modem may be stalled; reconnect",
                    ) from None
            # +CIPSEND: <link>,<requested>,<sent>
            return int_param(urc.text[len("+CIPSEND:") :], 2) or 0

        await self._send_in_parts(sock, chunk, send_part)

    async def _close(self, sock: ModemSocket) -> None:
        await self._closed_link(sock.handle, sock)

    async def _closed_link(self, link: int, sock: ModemSocket | None) -> bool:
        """``AT+CIPCLOSE=<link>`` and its ``+CIPCLOSE: <link>,<err>``; whether it was open."""
        line = format_command("AT+CIPCLOSE", link)
        with self.modem.expect_urc(
            "+CIPCLOSE:", predicate=lambda urc: _link_of(urc, "+CIPCLOSE:") == link
        ) as result:
            if sock is not None:
                answered = await self._close_quietly(sock, line, timeout=10) is not None
            else:
                answered = (await self.modem.command(line, timeout=10, check=False)).final == "OK"
            if answered:
                with contextlib.suppress(StepTimeout):  # closed as far as we are concerned
                    await result.wait(10)
        return answered

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
