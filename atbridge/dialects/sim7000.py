"""SIMCom SIM7000 / SIM800 family: the CIP* "TCP/IP application toolkit" (multi-IP mode).

Theory of operation
-------------------
Sources: reference §5.2 (TinyGSM ``TinyGsmClientSIM7000.h``; SIM7000 Series AT
Command Manual V1.03 pp.125-126; SIM800 manual for the IP states).

- Settings: ``AT+CIPMUX=1`` (connections 0-7; only in state IP INITIAL, so a
  refusal is answered with ``AT+CIPSHUT`` and a retry), ``AT+CIPQSEND=1``
  (quick send: ``DATA ACCEPT``), ``AT+CIPRXGET=1`` (manual receive).
- Bearer: ``AT+CIPSHUT`` (``SHUT OK``: back to IP INITIAL), ``AT+CSTT="<apn>"``,
  ``AT+CIICR``, ``AT+CIFSR``. ``AT+CIFSR`` answers a bare IP line and *no* final
  result code, or ``ERROR`` when no bearer is up (SIM800 manual V1.09 §8.2.11: the
  address is there only once the PDP context is active, in IP GPRSACT and after); the
  address line is taken as its final result, so one plain ``AT+CIFSR`` answers on
  every module. (TinyGSM sends ``AT+CIFSR;E0`` for the ``OK`` the ``E0`` adds; a
  module or the project's fake that refuses the concatenation then cost a second,
  plain ``AT+CIFSR``, and the fake's refusal read as "no bearer", issue 16.) An
  address also tells that the bearer is already up, so activation is skipped then.
- Open: ``AT+CIPSTART=<n>,"TCP","<host>",<port>`` -> ``OK`` then
  ``<n>, CONNECT OK`` | ``<n>, CONNECT FAIL`` | ``<n>, ALREADY CONNECT``.
- Send: ``AT+CIPSEND=<n>,<len>`` -> ``>`` -> exactly ``<len>`` bytes ->
  ``DATA ACCEPT:<n>,<len>`` (a final result code here; ``<n>, SEND FAIL`` fails).
- Receive: ``+CIPRXGET: 1,<n>`` says data is waiting; ``AT+CIPRXGET=2,<n>,<len>``
  answers ``+CIPRXGET: 2,<n>,<read>,<rest>`` then exactly ``<read>`` bytes;
  ``AT+CIPRXGET=4,<n>`` is the safety-net check.
- Peer close: ``<n>, CLOSED``. Network loss: ``+PDP: DEACT``. Close:
  ``AT+CIPCLOSE=<n>`` -> ``<n>, CLOSE OK``. DNS: ``AT+CDNSGIP``.

The manual prints ``DATA ACCEPT: <n>,<length>`` and ``<n>,SEND OK`` where other
sources have no space / a space; the patterns accept both.

What real boards add (issue 10):

- Settings order: TinyGSM (``TinyGsmClientSIM7000.h``, ``gprsConnect``) shuts the
  IP stack down first (``AT+CIPSHUT``), then sets ``AT+CIPMUX=1``,
  ``AT+CIPQSEND=1``, ``AT+CIPRXGET=1``, then ``AT+CSTT``/``AT+CIICR``/``AT+CIFSR``.
  atbridge sets the three at bind (the listing's ``C:`` lines need multi-IP; a
  bearer may be up already) and, after a ``AT+CIPSHUT``, again in TinyGSM's order
  (``AT+CIPMUX`` is only accepted in IP INITIAL, which ``AT+CIPSHUT`` guarantees;
  neither the SIM7000 manual nor the SIM800 manual §8.2.7 says ``AT+CIPSHUT``
  keeps or resets them, and TinyGSM sets them after it, so they are set after it).
- Issue 16, what the first bring-up no longer repeats: the probe's ``AT+CIPSTATUS``
  says ``STATE: IP INITIAL`` (SIM800 manual V1.09 §8.2.12) on a module with nothing
  up. Leaving IP INITIAL takes ``AT+CSTT`` (§8.2.9) or, in single-connection mode only,
  ``AT+CIPSTART`` (§8.2.2: in multi-IP mode it needs IP STATUS), sent
  only by this object, so while nothing since could have changed it (no reboot
  banner, no lost link, no ``+PDP: DEACT``, none of those commands) activation
  goes straight to ``AT+CSTT``: no ``AT+CIFSR`` probe (it would answer ERROR), no
  ``AT+CIPSHUT`` (nothing to shut) and so no second ``AT+CIPMUX``/``AT+CIPQSEND``/
  ``AT+CIPRXGET`` (nothing reset the ones sent at bind). Any other state, or one not
  known, takes the full way above, as does every recovery: a reboot re-probes (a
  new dialect object, which sets the three again), a lost network asks ``AT+CIFSR``
  and shuts.
- Send size: ``<length>`` must be less than the ``<size>`` of ``AT+CIPSEND?``
  (SIM7000 manual V1.03 p.125: ``+CIPSEND: <n>,<size>``, which "depends on
  network status"), so it is asked after each open and each send is cut to it.
- Left-over connections: one ``AT+CIPSTATUS`` (SIM800 Series AT Command Manual
  V1.09 §8.2.12: ``OK``, then ``STATE: <state>`` and, in multi-IP mode, one
  ``C: <n>,<bearer>,"TCP","<ip>","<port>","<state>"`` line per connection, *after*
  the ``OK``), read until the line of the last connection; a modem that lists none
  is asked ``AT+CIPSTATUS=<n>`` per connection (TinyGSM's ``modemGetConnected``).
  A ``CONNECTED`` or ``CONNECTING`` one is closed with ``AT+CIPCLOSE=<n>``
  (``AT+CIPSTART`` on it answers ``<n>, ALREADY CONNECT``). After ``SHUT OK`` and
  until the next ``AT+CIPSTART`` nothing can be open, so nothing is asked.
- Registration: ``+CEREG`` then ``+CGREG`` (TinyGSM ``TinyGsmClientSIM70xx.h``); a
  SIM800 (``AT+CGMM`` names it) has no ``+CEREG``: ``+CGREG`` then ``+CREG``
  (TinyGSM ``TinyGsmClientSIM800.h`` asks ``CREG``), and connections 0-5 only
  (SIM800 manual V1.09 §8.2.2 ``AT+CIPSTART``: ``<n>`` 0-5). The model comes from the
  identity when the dialect was bound by :func:`~atbridge.dialects.open_dialect`
  (no second ``AT+CGMM``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from types import MappingProxyType

from atbridge.at_syntax import format_command, int_param, split_params, unquote
from atbridge.dialects.base import DataBearer, Dialect, ModemSocket
from atbridge.dialects.simcom import CipRxgetDialect, refusal
from atbridge.errors import (
    CloseReason,
    ModemError,
    SocketError,
)
from atbridge.modem import Modem, Urc
from atbridge.transcript import Spans

_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+")
# Connection numbers are 0-7 and a send takes at most 1460 bytes: nine digits bound every
# number (a longer one is the modem's protocol error, never an int() of thousands of digits).
_CONNECT = re.compile(r"(?:(\d{1,9}), ?)?(CONNECT OK|CONNECT FAIL|ALREADY CONNECT)")
_CLOSED = re.compile(r"(\d{1,9}), ?CLOSED")
_STATUS = re.compile(r'"([A-Z ]+)"\s*$')
#: A connection line of ``AT+CIPSTATUS`` in multi-IP mode: ``C: <n>,...,"<state>"``.
_LISTED = re.compile(r'C: ?(\d{1,9}),.*"([A-Z ]*)"\s*$')
#: Seconds the lines after ``AT+CIPSTATUS``'s ``OK`` may take (the per-connection
#: questions are asked when they do not come).
LISTING_TIMEOUT = 2.0


_OPEN_STATES = ("CONNECTED", "CONNECTING")
#: The ``STATE:`` line of ``AT+CIPSTATUS`` (SIM800 manual V1.09 §8.2.12).
_STATE = re.compile(r"STATE: ?(.+?)\s*$")
#: The IP state with nothing up and nothing open: ``AT+CSTT`` is accepted in it only.
IP_INITIAL = "IP INITIAL"
#: ``AT+CIFSR``'s answer, a bare address and no OK: the command's final result.
_ADDRESS_FINAL = rb"\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"


def accepted_bytes(final: str, length: int) -> int:
    """The bytes a send of ``length`` handed over: ``<taken>`` of ``DATA ACCEPT:<n>,<taken>``
    (quick send), else all of them (``<n>, SEND OK``)."""
    if final.startswith("DATA ACCEPT"):
        # The final's own pattern (install) already checked the digits.
        return int(final.rpartition(",")[2])
    return length


class Sim7000(CipRxgetDialect):
    """SIMCom SIM7000/SIM800: ``+CSTT``/``+CIICR``/``+CIFSR``, ``+CIPSTART``, ``+CIPSEND``."""

    name = "sim7000"
    description = "SIMCom SIM7000 / SIM800 family (CIP* TCP/IP application toolkit, multi-IP)"
    #: ``AT+CGMM`` answers of this family (reference §5).
    models = ("SIM7000", "SIM800")
    #: ``<length>`` must not exceed the ``<size>`` that ``AT+CIPSEND?`` reports
    #: (1460, one TCP segment, on this family; the read limit is the same).
    max_send = 1460
    #: Connections 0-7 in multi-IP mode (SIM7000 manual: ``+CIPSEND: (0-7),...``).
    links = range(8)
    tls_unsupported = "its AT+CIPSSL / AT+CSSLCFG commands are not driven by atbridge yet"
    network_lost_urcs = (*Dialect.network_lost_urcs, "+PDP: DEACT")
    #: The SIM800 is a 2G module: no ``+CEREG``.
    sim800_registration_sources = ("+CGREG", "+CREG")
    #: SIM7000 / SIM800 AT manuals: ``AT+CMNB?`` (CAT-M / NB-IoT preference; the
    #: SIM800 refuses it), ``AT+CIPSTATUS`` (``STATE: ...`` and one ``C: ...`` line per
    #: connection in multi-IP mode), ``AT+CDNSCFG?`` (``PrimaryDns:``/``SecondaryDns:``).
    diagnostic_queries = MappingProxyType(
        {
            **CipRxgetDialect.diagnostic_queries,
            "radio": ("AT+CFUN?", "AT+CNMP?", "AT+CMNB?", "AT+CSQ", "AT+CPSI?"),
            "network": (
                "AT+COPS?",
                "AT+CPSMS?",
                "AT+CEDRXRDP",
                "AT+CGDCONT?",
                "AT+CGPADDR",
                "AT+CIPSTATUS",
                "AT+CDNSCFG?",
            ),
        }
    )

    #: The SIM800's connections (SIM800 manual V1.09 §8.2.2: 0-5).
    sim800_links = range(6)
    #: The APN given to configure_pdp (None: read it back from AT+CGDCONT?).
    _apn: str | None = None

    def __init__(self, modem: Modem) -> None:
        #: ``AT+CIPSEND?``'s ``<size>`` per connection (the most one send takes).
        self._send_sizes: dict[int, int] = {}
        #: The IP state as last seen (``AT+CIPSTATUS``'s ``STATE:``, ``SHUT OK``) and not
        #: changed since by anything this object knows of; None: not known.
        self._ip_state: str | None = None
        #: Multi-IP, quick send and manual receive are set, and no reboot since.
        self._settings_done = False
        super().__init__(modem)

    def install(self) -> None:
        super().install()
        modem = self.modem
        # "<n>, CONNECT OK", "<n>, CLOSED"...: bare lines that never answer a command.
        for link in self.links:
            modem.register_urc(f"{link},")
        for bare in ("CONNECT OK", "CONNECT FAIL", "ALREADY CONNECT"):
            modem.register_urc(bare)
        modem.add_final(rb"DATA ACCEPT: ?\d{1,9}, ?\d{1,9}", success=True)
        modem.add_final(rb"\d{1,9}, ?SEND OK", success=True)
        modem.add_final(rb"\d{1,9}, ?SEND FAIL", success=False)
        modem.add_final(rb"\d{1,9}, ?CLOSE OK", success=True)
        modem.add_final(rb"SHUT OK", success=True)
        modem.add_final(_ADDRESS_FINAL, success=True)
        self._unhook.append(modem.subscribe(None, self._on_bare_line))

    def _on_reboot(self, banner: str) -> None:
        self._ip_state, self._settings_done = None, False  # a reboot resets all three
        super()._on_reboot(banner)

    def _on_link_lost(self, reason: str) -> None:
        self._ip_state, self._settings_done = None, False  # a USB reset may be a reboot
        super()._on_link_lost(reason)

    def network_lost(self, detail: str) -> None:
        self._ip_state = None  # PDP DEACT: AT+CIPSHUT before anything else
        super().network_lost(detail)

    def _on_bare_line(self, urc: Urc) -> None:
        # Every URC comes here: the substring test spares the others the pattern.
        closed = _CLOSED.fullmatch(urc.text) if "CLOSED" in urc.text else None
        if closed:
            link = int(closed.group(1))
            self.connection_ended(link, CloseReason.PEER, urc.text)

    async def initialise(self) -> None:
        """The model's registration sources; multi-IP mode, quick send and manual receive."""
        # The identity step asked AT+CGMM already (Dialect.identity): not asked again.
        model = self.identity.model if self.identity is not None else None
        if model is None:
            with contextlib.suppress(ModemError):
                model = " ".join((await self.modem.command("AT+CGMM")).lines)
        if model is not None and "SIM800" in model.upper():
            self.registration_sources = self.sim800_registration_sources
            self.links = self.sim800_links
        await self._settings()

    async def _settings(self) -> None:
        try:
            await self.modem.command("AT+CIPMUX=1")
        except ModemError:
            current = await self.modem.command("AT+CIPMUX?")
            if current.values("+CIPMUX:") != ["1"]:
                # Only allowed in IP INITIAL: shut the IP stack down first.
                await self._shut()
                await self.modem.command("AT+CIPMUX=1")
        await self.modem.command("AT+CIPQSEND=1")
        await self.modem.command("AT+CIPRXGET=1")
        self._settings_done = True

    async def _shut(self) -> None:
        """``AT+CIPSHUT``: every connection closed, the IP stack back in IP INITIAL."""
        await self.modem.command("AT+CIPSHUT", timeout=65)
        self._none_open = True
        self._ip_state = IP_INITIAL

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None:
        """``AT+CGDCONT`` as usual; the APN is also kept for ``AT+CSTT``."""
        await super().configure_pdp(apn, pdp_type=pdp_type)
        if apn is not None:
            self._apn = apn

    async def activate_data(self, timeout: float = 85.0) -> DataBearer:
        """``AT+CIPSHUT``, ``AT+CSTT``, ``AT+CIICR``, ``AT+CIFSR`` (skipped when already up;
        the first two also in IP INITIAL, see the module docstring)."""
        if self._ip_state != IP_INITIAL or not self._settings_done:
            address = await self._local_ip()
            if address is not None:
                return DataBearer(address, already_active=True)
            await self._shut()
            await self._settings()  # after CIPSHUT, before CSTT (TinyGSM's order)
        apn = self._apn if self._apn is not None else await self._stored_apn()
        hint = (
            "check the APN, that the SIM has a data plan and that the modem is registered "
            "(AT+CGATT? should say 1); then retry"
        )
        self._ip_state = None  # IP START, IP GPRSACT... from here on
        try:
            await self.modem.command(format_command("AT+CSTT", apn), timeout=60)
            await self.modem.command("AT+CIICR", timeout=timeout)
        except ModemError as exc:
            raise refusal(exc.command, exc.final, hint=hint) from exc
        address = await self._local_ip()
        if address is None:
            raise SocketError(
                "the modem brought the bearer up but reports no IP address", hint=hint
            )
        return DataBearer(address)

    async def _stored_apn(self) -> str:
        response = await self.modem.command("AT+CGDCONT?")
        for value in response.values("+CGDCONT:"):
            params = split_params(value)
            if len(params) >= 3 and unquote(params[0]) == str(self.default_cid):
                return unquote(params[2])
        return ""

    async def _local_ip(self) -> str | None:
        """The bearer's IP address from ``AT+CIFSR`` (None: ERROR, no bearer up)."""
        try:
            response = await self.modem.command("AT+CIFSR", timeout=10)
        except ModemError:
            return None  # IP INITIAL, IP START, PDP DEACT...
        return response.final if _IP.fullmatch(response.final) else None

    async def open_socket(
        self, host: str, port: int, *, tls: bool = False, timeout: float = 75.0
    ) -> ModemSocket:
        """``AT+CIPSTART`` on the lowest free connection (TCP only)."""
        self._check_open(port, tls)
        link = self._claim_link()
        try:
            for attempt in range(2):
                outcome = await self._start(link, host, port, timeout)
                if outcome != "ALREADY CONNECT" or attempt:
                    break
                # A connection left open on the modem by an earlier session: close it, retry.
                await self.modem.command(format_command("AT+CIPCLOSE", link), check=False)
            if outcome != "CONNECT OK":
                raise SocketError(
                    f"could not open a TCP connection to {host}:{port}: {link}, {outcome}",
                    hint="check the host, the port and that the server is running; a host name "
                    "the modem cannot resolve also fails this way (try resolve())",
                )
            await self._ask_send_size(link)
            return self._new_socket(link, host, port)
        finally:
            self._release_link(link)

    async def _ask_send_size(self, link: int) -> None:
        """``AT+CIPSEND?``: the most one ``AT+CIPSEND`` on ``link`` takes (else max_send)."""
        self._send_sizes.pop(link, None)
        try:
            response = await self.modem.command("AT+CIPSEND?", timeout=10)
        except ModemError:
            return
        for value in response.values("+CIPSEND:"):
            params = split_params(value)
            if len(params) >= 2 and int_param(params, 0) == link:
                size = int_param(params, 1)
                if size is not None and size > 0:
                    self._send_sizes[link] = min(size, self.max_send)

    async def _start(self, link: int, host: str, port: int, timeout: float) -> str:
        def ours(text: str) -> bool:
            match = _CONNECT.fullmatch(text)
            return match is not None and match.group(1) in (None, str(link))

        self._none_open = False
        self._ip_state = None
        value = await self._result(
            format_command("AT+CIPSTART", link, "TCP", host, port),
            "",
            timeout=timeout,
            what=f"opening a TCP connection to {host}:{port}",
            hint="check that the bearer is up (activate_data), the host and the port; "
            "AT+CIPSTART is refused outside the IP INITIAL / IP STATUS states",
            match=ours,
        )
        match = _CONNECT.fullmatch(value)
        assert match is not None
        return match.group(2)

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        size = self._send_sizes.get(sock.handle, self.max_send)

        async def send_part(rest: bytes, spans: Spans) -> int:
            rest = rest[:size]
            response = await self.modem.command(
                f"AT+CIPSEND={sock.handle},{len(rest)}",  # integers only: nothing to quote
                payload=rest,
                timeout=self.send_timeout,
                payload_secret_spans=spans,
            )
            return accepted_bytes(response.final, len(rest))

        await self._send_in_parts(sock, chunk, send_part)

    async def _close(self, sock: ModemSocket) -> None:
        await self._close_quietly(sock, format_command("AT+CIPCLOSE", sock.handle), timeout=10)

    async def _open_links(self) -> list[int]:
        if self._none_open:
            return []
        listed = await self._listing()
        if listed is not None:
            return [link for link in self.links if listed.get(link) in _OPEN_STATES]
        links: list[int] = []
        for link in self.links:
            try:
                response = await self.modem.command(
                    format_command("AT+CIPSTATUS", link), timeout=10
                )
            except ModemError:
                return links  # not in multi-IP mode: nothing of ours can be open
            for value in response.values("+CIPSTATUS:"):
                state = _STATUS.search(value)
                if state and state.group(1) in _OPEN_STATES:
                    links.append(link)
        return links

    async def _listing(self) -> dict[int, str] | None:
        """Each connection's state from one ``AT+CIPSTATUS`` (``None``: it listed none)."""
        states: dict[int, str] = {}
        last = self.links[-1]
        complete = asyncio.Event()

        def note(text: str) -> None:
            state = _STATE.match(text)
            if state:
                self._ip_state = state.group(1)
            listed = _LISTED.match(text)
            if listed:
                states[int(listed.group(1))] = listed.group(2)
                if int(listed.group(1)) >= last:
                    complete.set()

        async with self.modem.exclusive():
            unsubscribe = self.modem.subscribe(None, lambda urc: note(urc.text))
            try:
                try:
                    response = await self.modem.command("AT+CIPSTATUS", timeout=10)
                except ModemError:
                    return None
                for line in response.lines:  # a firmware that lists before its OK
                    note(line)
                try:
                    async with asyncio.timeout(LISTING_TIMEOUT):
                        await complete.wait()
                except TimeoutError:
                    return None
            finally:
                unsubscribe()
        return states

    async def _close_link(self, link: int) -> bool:
        response = await self.modem.command(
            format_command("AT+CIPCLOSE", link), timeout=10, check=False
        )
        return response.final.endswith("CLOSE OK")


DIALECT = Sim7000
