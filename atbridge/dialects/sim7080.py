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
  refused by ``AT+CAOPEN`` (``+CAOPEN: <cid>,<err>``).
- TLS offload is refused (see :mod:`atbridge.dialects.simcom`): TinyGSM's
  sequence is ``AT+CSSLCFG="sslversion",0,3``, ``AT+CASSLCFG=<cid>,"SSL",1``,
  ``AT+CSSLCFG="ctxindex",0``, ``AT+CASSLCFG=<cid>,"CACERT",...`` and
  ``AT+CSSLCFG="sni",0,"<host>"``; only the second was sent before.
- Registration: ``+CEREG`` then ``+CGREG`` (TinyGSM ``TinyGsmClientSIM70xx.h``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar

from atbridge.at_parser import BlockRule, header_ints
from atbridge.at_syntax import format_command, int_param, split_params, str_param
from atbridge.dialects.base import DataBearer, Dialect, ModemSocket
from atbridge.dialects.simcom import CDNSGIP, SimcomDialect
from atbridge.errors import AtBridgeError, CloseReason, ConfigurationError, SocketError
from atbridge.modem import Modem, Urc

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
    tls_unsupported = (
        'only AT+CASSLCFG=<cid>,"SSL",1 would be sent; the TLS version, the CA '
        "certificate and SNI (AT+CSSLCFG) are not configured yet"
    )

    def __init__(self, modem: Modem) -> None:
        #: True while AT+CASTATE? runs: its +CASTATE lines answer it, not notify.
        self._listing = False
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
        cid = int_param(urc.text[len("+CADATAIND:") :], 0)
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
        self, host: str, port: int, *, tls: bool = False, timeout: float = 90.0
    ) -> ModemSocket:
        """``AT+CAOPEN`` on the lowest free cid (TCP; TLS offload is refused)."""
        self._check_open(port, tls)
        cid = self._claim_link()
        try:
            value = await self._result(
                format_command("AT+CAOPEN", cid, self.pdp_index, "TCP", host, port),
                "+CAOPEN:",
                timeout=timeout,
                what=f"opening a TCP connection to {host}:{port}",
                hint="check that the data connection is up (activate_data), the host and the port",
                match=lambda v: int_param(v, 0) == cid,
            )
            result = int_param(value, 1)
            if result != 0:
                meaning, hint = CAOPEN_RESULTS.get(
                    result if result is not None else -1,
                    ("unknown result", "check the host, the port and the data connection"),
                )
                raise SocketError(
                    f"could not open a TCP connection to {host}:{port}: "
                    f"+CAOPEN: {value} ({meaning})",
                    hint=hint,
                )
            return self._new_socket(cid, host, port)
        finally:
            self._release_link(cid)

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        try:
            await self.modem.command(
                format_command("AT+CASEND", sock.handle, len(chunk)),
                payload=chunk,
                timeout=self.send_timeout,
                payload_secret_spans=self.modem.payload_secrets(sock, chunk),
            )
        except AtBridgeError as exc:
            raise self._send_failed(sock, exc, len(chunk)) from exc

    async def _read(self, sock: ModemSocket) -> tuple[bytes, bool]:
        response = await self.modem.command(
            format_command("AT+CARECV", sock.handle, self.max_read), timeout=10
        )
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


DIALECT = Sim7080
