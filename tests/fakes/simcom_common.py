"""What the three SIMCom fake dialects (``sim7080``, ``sim7600``, ``sim7000``) share.

The engine (``core``) knows nothing about sockets; this module adds, for the SIMCom scripts only:

- ``SimSocket``: one modem socket bridged to a real asyncio TCP connection from the fake to
  127.0.0.1. Received bytes wait in the socket's buffer until the host reads them with the
  dialect's read command; the buffer is bounded (``rx_limit``): past it the fake stops reading
  from TCP (back-pressure, nothing is dropped). The dialect is told when data becomes readable
  (``on_data``: it sends its notification) and when the peer closed (``on_peer_close``).
  Notification rule (SIMCom manual receive mode, e.g. ``AT+CIPRXGET=1``): the first data after
  a read is announced once; more data before the next read is not announced again.
- name resolution for the fake: IPv4 literals, ``localhost`` and names added with
  ``add_host`` (a per-fake hosts table). Only loopback addresses are ever connected to.
- ``SimcomState``: the base of each dialect's power-on state (``fake.dialect_state``): its
  sockets and the faults armed for it. A reboot drops it (after closing every socket).
- the fault API (module functions taking the ``FakeModem``): ``close_from_peer``,
  ``drop_pdp``, ``fail_next_send``, ``lose_next_notification``, ``reboot_during_next_send``.
- the send path (``take_payload``: prompt, then exactly ``<len>`` raw bytes, URCs held
  meanwhile) and small SIMCom commands every dialect answers the same way (``+CPIN``, ``+CSQ``,
  ``+CGATT``, ``+CPSI``, ``+CCID``, ``+CGMR`` with its prefix, ``+CDNSGIP``).

Sources and decisions are listed in each dialect module's docstring.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from .core import (
    GENERIC_COMMANDS,
    Command,
    CommandError,
    FakeModem,
    Handler,
    HandlerResult,
    Kind,
    Response,
    frame_line,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "LOOPBACK",
    "PROMPT",
    "Faults",
    "SimSocket",
    "SimcomState",
    "add_host",
    "cdnsgip_handler",
    "cgmr_handler",
    "close_from_peer",
    "common_handlers",
    "cpsi_handler",
    "drop_pdp",
    "end_send",
    "fail_next_send",
    "is_loopback",
    "lose_next_notification",
    "on_reboot",
    "on_stop",
    "reboot_during_next_send",
    "resolve",
    "send_notice",
    "simcom_state",
    "socket_of",
    "take_payload",
]

log = logging.getLogger("tests.fakes.simcom")

LOOPBACK: Final = "127.0.0.1"
#: The data prompt after a length-delimited send command: CR LF, ``>`` and a space, no line
#: end (the SIMCom/V.250 SMS-style prompt; Zephyr's SIM7080 driver waits for the unterminated
#: ``"> "``, TinyGSM for ``">"``).
PROMPT: Final = b"\r\n> "
#: How long an open waits for the TCP connection before it reports a failure.
CONNECT_TIMEOUT: Final = 5.0

SocketState = Literal["connecting", "open", "peer_closed", "dropped", "closed"]

# ---------------------------------------------------------------------------------------------
# Name resolution

_HOSTS: weakref.WeakKeyDictionary[FakeModem, dict[str, str]] = weakref.WeakKeyDictionary()


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False


def add_host(fake: FakeModem, name: str, address: str = LOOPBACK) -> None:
    """Let ``name`` resolve to ``address`` (a loopback IPv4 address) on this fake, for
    the DNS command and for opening sockets by name. Survives reboots."""
    if not is_loopback(address):
        raise ValueError(f"{address!r} is not a loopback IPv4 address")
    _HOSTS.setdefault(fake, {})[name.lower()] = address


def resolve(fake: FakeModem, host: str) -> str | None:
    """The IPv4 address the fake's network gives ``host``, None if it cannot resolve it."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    name = host.lower()
    if name == "localhost":
        return LOOPBACK
    return _HOSTS.get(fake, {}).get(name)


# ---------------------------------------------------------------------------------------------
# Sockets


class _Bridge(asyncio.Protocol):
    def __init__(self, sock: SimSocket) -> None:
        self._sock = sock
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._sock._transport = transport

    def data_received(self, data: bytes) -> None:
        self._sock._on_data(data)

    def eof_received(self) -> bool:
        return False  # close our side too: a SIMCom socket has no half-open state

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self._sock._on_lost()


class SimSocket:
    """One modem socket bridged to a real TCP connection (see the module docstring).

    ``link`` is the dialect's socket number (cid, link_num, n). ``state``: ``connecting``
    until the dialect calls ``activate`` after reporting the open, ``open``, ``peer_closed``
    (the peer closed; buffered data stays readable), ``dropped`` (the network took the PDP
    context away) or ``closed`` (closed by the host or by a reboot).
    """

    def __init__(
        self,
        fake: FakeModem,
        link: int,
        host: str,
        port: int,
        *,
        rx_limit: int,
        on_data: Callable[[SimSocket], None],
        on_peer_close: Callable[[SimSocket], None],
    ) -> None:
        self.fake = fake
        self.link = link
        self.host = host
        self.port = port
        self.address = ""
        self.rx_limit = rx_limit
        self.state: SocketState = "connecting"
        self.rx = bytearray()
        self.announced = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self._on_data_cb = on_data
        self._on_peer_close_cb = on_peer_close
        self._transport: asyncio.Transport | None = None
        self._bridge: _Bridge | None = None
        self._paused = False
        self._eof_while_connecting = False

    # ---- for the dialects

    @property
    def connected(self) -> bool:
        """Open (or opening): the host may send on it."""
        return self.state in ("connecting", "open")

    @property
    def available(self) -> int:
        """Received bytes waiting to be read."""
        return len(self.rx)

    async def connect(self, address: str) -> bool:
        """Open the TCP connection to ``address``:``port`` (loopback only); False on failure
        (the state stays ``connecting``: the dialect reports the failure and drops it)."""
        self.address = address
        if not is_loopback(address):
            return False
        loop = asyncio.get_running_loop()
        try:
            _, bridge = await asyncio.wait_for(
                loop.create_connection(lambda: _Bridge(self), address, self.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            log.debug("connect %s:%d failed: %s", address, self.port, exc)
            return False
        self._bridge = bridge
        if self.state != "connecting":  # closed while the connection was being made
            self._abort()
            return False
        return True

    def activate(self) -> None:
        """The open was reported: from now on data and the peer closing are announced."""
        if self.state != "connecting":
            return
        self.state = "open"
        if self.rx:
            self._announce()
        if self._eof_while_connecting:
            self._peer_closed()

    def take(self, count: int) -> bytes:
        """Read up to ``count`` buffered bytes; the next data will be announced again."""
        data = bytes(self.rx[:count])
        del self.rx[:count]
        self.announced = False
        if self._paused and len(self.rx) < self.rx_limit and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    def send(self, data: bytes) -> None:
        """Write bytes to the peer."""
        if self._transport is not None:
            self._transport.write(data)
            self.bytes_sent += len(data)

    def close(self) -> None:
        """Close from the host side (FIN after pending bytes); no notification."""
        self.state = "closed"
        if self._transport is not None:
            self._transport.close()

    def drop(self) -> None:
        """The network took the bearer away: reset the connection; no notification here."""
        if self.connected:
            self.state = "dropped"
        self._abort()

    def abort(self) -> None:
        """Reset the connection (reboot, stop); no notification."""
        self.state = "closed"
        self._abort()

    def peer_close(self) -> None:
        """Fault: the peer closes now (the connection is reset and announced as closed by
        the peer, after any buffered data)."""
        self._abort()
        self._on_lost()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait until the TCP connection is gone (the transport released its socket)."""
        if self._bridge is not None and not self._bridge.lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._bridge.lost), timeout)
            except TimeoutError:
                log.warning("socket %d did not close in %.1f s", self.link, timeout)

    # ---- internals

    def _abort(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.abort()

    def _on_data(self, data: bytes) -> None:
        if self.state in ("closed", "dropped"):
            return
        self.rx += data
        self.bytes_received += len(data)
        if len(self.rx) >= self.rx_limit and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        if self.state == "open":
            self._announce()

    def _announce(self) -> None:
        if not self.announced:
            self.announced = True
            _guard(self._on_data_cb, self)

    def _on_lost(self) -> None:
        self._transport = None
        if self.state == "connecting":
            self._eof_while_connecting = True
        elif self.state == "open":
            self._peer_closed()

    def _peer_closed(self) -> None:
        self.state = "peer_closed"
        _guard(self._on_peer_close_cb, self)


def _guard(callback: Callable[[SimSocket], None], sock: SimSocket) -> None:
    try:
        callback(sock)
    except RuntimeError as exc:  # the fake stopped under a late TCP callback
        log.debug("notification for socket %d dropped: %s", sock.link, exc)


# ---------------------------------------------------------------------------------------------
# Per-power-on state and faults


@dataclass
class Faults:
    """Faults armed for the next sends/notifications (a reboot disarms them)."""

    fail_sends: int = 0
    lose_notifications: int = 0
    reboot_in_send: int = 0


class SimcomState:
    """Base of a SIMCom dialect's power-on state: sockets by link number, armed faults."""

    def __init__(self) -> None:
        self.sockets: dict[int, SimSocket] = {}
        self.faults = Faults()
        self.sending = False

    def drop_pdp(self, fake: FakeModem) -> None:
        """The network deactivates the PDP context: the dialect's notification, sockets reset."""
        raise NotImplementedError

    def after_send(self, fake: FakeModem) -> None:
        """Called when a send command has finished (the held URCs are out)."""

    def abort_all(self) -> None:
        for sock in self.sockets.values():
            sock.abort()

    async def close_all(self) -> None:
        socks = list(self.sockets.values())
        for sock in socks:
            sock.abort()
        for sock in socks:
            await sock.wait_closed()


def simcom_state(fake: FakeModem) -> SimcomState:
    """The SIMCom state of ``fake`` (TypeError for another dialect)."""
    return fake.dialect_state_as(SimcomState)


def on_reboot(fake: FakeModem) -> None:
    """Dialect ``on_reboot``: every socket is reset (the new power-on state has none)."""
    simcom_state(fake).abort_all()


async def on_stop(fake: FakeModem) -> None:
    """Dialect ``on_stop``: reset every socket and wait for the TCP connections to go."""
    if isinstance(fake.dialect_state, SimcomState):
        await fake.dialect_state.close_all()


def send_notice(fake: FakeModem, text: str) -> None:
    """Send a data notification URC, unless a ``lose_next_notification`` fault eats it."""
    faults = simcom_state(fake).faults
    if faults.lose_notifications > 0:
        faults.lose_notifications -= 1
        log.debug("notification lost: %s", text)
        return
    fake.send_urc(text)


# ---- the fault API


def socket_of(fake: FakeModem, link: int) -> SimSocket:
    """The socket with number ``link`` (KeyError if there is none)."""
    return simcom_state(fake).sockets[link]


def close_from_peer(fake: FakeModem, link: int) -> None:
    """The peer closes socket ``link`` now: the dialect's closed notification follows."""
    socket_of(fake, link).peer_close()


def drop_pdp(fake: FakeModem) -> None:
    """The network deactivates the PDP context now (``+APP PDP: 0,DEACTIVE``,
    ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`` or ``+PDP: DEACT``); every socket is reset."""
    simcom_state(fake).drop_pdp(fake)


def fail_next_send(fake: FakeModem, count: int = 1) -> None:
    """The next ``count`` sends take their payload but report the dialect's send failure;
    nothing reaches the peer."""
    simcom_state(fake).faults.fail_sends += count


def lose_next_notification(fake: FakeModem, count: int = 1) -> None:
    """The next ``count`` data notifications are not sent; the data stays readable."""
    simcom_state(fake).faults.lose_notifications += count


def reboot_during_next_send(fake: FakeModem) -> None:
    """The next send command shows its prompt, then the modem reboots before taking the
    payload (the payload bytes then reach a freshly booted modem as line noise)."""
    simcom_state(fake).faults.reboot_in_send += 1


# ---------------------------------------------------------------------------------------------
# The send path


async def take_payload(fake: FakeModem, state: SimcomState, length: int) -> tuple[bytes, list[str]]:
    """Send the prompt and take exactly ``length`` raw bytes. URCs are held from the prompt
    until the command's response has gone out; then the returned ``trailer`` lines (the
    handler appends to it: ``+CIPSEND: ...``) are sent, then the held URCs."""
    fake.discard_stray_line_feed()  # the LF of a CRLF-ended command is not payload
    fake.write_raw(PROMPT)
    if state.faults.reboot_in_send > 0:
        state.faults.reboot_in_send -= 1
        fake.after_output(fake.reboot)
        await asyncio.get_running_loop().create_future()  # cancelled by the reboot
    trailer: list[str] = []
    state.sending = True
    fake.hold_urcs(True)
    fake.after_response(lambda: end_send(fake, state, trailer))
    payload = await fake.read_raw(length)
    return payload, trailer


def end_send(fake: FakeModem, state: SimcomState, trailer: list[str]) -> None:
    """After a send's response: its trailer lines, data pushed meanwhile, then the URCs held
    during the send."""
    for line in trailer:
        fake.write_raw(frame_line(line))
    state.sending = False
    state.after_send(fake)
    fake.hold_urcs(False)


# ---------------------------------------------------------------------------------------------
# Commands every SIMCom dialect answers alike


def _cpin(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.READ, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok("+CPIN: READY")


def _csq_index(fake: FakeModem) -> int:
    if not fake.state.registered or fake.rsrp_index == 255:
        return 99
    rssi_dbm = fake.rsrp_index - 140 + 20  # RSSI is roughly RSRP + 20 dB on a 6-RB cell
    return max(0, min(31, (rssi_dbm + 113) // 2))


def _csq(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CSQ: (0-31,99),(0-7,99)")
    return Response.ok(f"+CSQ: {_csq_index(fake)},99")


def _cgatt(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CGATT: {1 if fake.state.registered else 0}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CGATT: (0,1)")
    if cmd.int_arg(0, valid=(0, 1)) == 0:
        fake.after_response(fake.stop_registration)
    elif fake.state.stat in (0, 3) and fake.state.cfun == 1:
        fake.after_response(fake.begin_registration)
    return Response.ok()


def _ccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok(fake.identity.iccid)


def _cfun(fake: FakeModem, cmd: Command) -> HandlerResult | Awaitable[HandlerResult]:
    """``AT+CFUN=<fun>[,<rst>]``: ``<rst>`` 1 resets the module after ``OK`` (27.007 §8.2,
    SIMCom AT manuals), so it reboots with its boot banners; otherwise the generic CFUN."""
    if cmd.kind is Kind.SET and cmd.int_arg(1, valid=(0, 1), default=0) == 1:
        cmd.int_arg(0, valid=(0, 1, 4), default=1)
        fake.after_response(lambda: fake.after_output(fake.reboot))
        return Response.ok()
    return GENERIC_COMMANDS["+CFUN"](fake, cmd)


def common_handlers() -> dict[str, Handler | None]:
    """``+CPIN``, ``+CSQ``, ``+CGATT``, ``+CCID`` and ``+CFUN`` (with reset) as SIMCom answers."""
    return {"+CPIN": _cpin, "+CSQ": _csq, "+CGATT": _cgatt, "+CCID": _ccid, "+CFUN": _cfun}


def cgmr_handler(prefix: str) -> Handler:
    """``AT+CGMR`` answering ``<prefix><revision>`` (``Revision:`` or ``+CGMR: ``)."""

    def cgmr(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.EXEC, Kind.TEST)
        if cmd.kind is Kind.TEST:
            return Response.ok()
        return Response.ok(prefix + fake.identity.revision)

    return cgmr


def cpsi_handler(system_mode: str, band: str, earfcn: int, *, tenths: bool) -> Handler:
    """``AT+CPSI?``: ``+CPSI: <System Mode>,<Operation Mode>,<MCC>-<MNC>,<TAC>,<SCellID>,
    <PCellID>,<Frequency Band>,<earfcn>,<dlbw>,<ulbw>,<RSRQ>,<RSRP>,<RSSI>,<RSSNR>`` from
    the fake's network and signal; ``+CPSI: NO SERVICE,Online`` unregistered. ``tenths``:
    RSRQ, RSRP and RSSI in 0.1 dB units (SIM7600)."""

    def cpsi(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.READ, Kind.TEST)
        if cmd.kind is Kind.TEST:
            return Response.ok()
        state, net = fake.state, fake.network
        if not state.registered or state.tac is None or state.ci is None:
            return Response.ok("+CPSI: NO SERVICE,Online")
        scale = 10 if tenths else 1
        rsrq = (fake.rsrq_index * 5 - 200) * scale // 10  # index / 2 - 20 dB
        rsrp = (fake.rsrp_index - 140) * scale
        rssi = (fake.rsrp_index - 140 + 20) * scale
        fields = [
            system_mode,
            "Online",
            f"{net.plmn[:3]}-{net.plmn[3:]}",
            f"0x{state.tac}",
            str(int(state.ci, 16)),
            "94",
            band,
            str(earfcn),
            "3",
            "3",
            str(rsrq),
            str(rsrp),
            str(rssi),
            "12",
        ]
        return Response.ok("+CPSI: " + ",".join(fields))

    return cpsi


def cdnsgip_handler(
    ready: Callable[[FakeModem], bool],
    *,
    result_after_ok: bool,
    error_code: int,
    error_final: bool,
) -> Handler:
    """``AT+CDNSGIP="<host>"[,...]``: ``+CDNSGIP: 1,"<host>","<ip>"`` or
    ``+CDNSGIP: 0,<error_code>``, after ``OK`` as a URC (``result_after_ok``) or before the
    final result code (``ERROR`` on failure when ``error_final``). Plain ERROR when
    ``ready`` says the bearer is not up."""

    def cdnsgip(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.TEST)
        if cmd.kind is Kind.TEST:
            return Response.ok()
        host = cmd.str_arg(0)
        for index in range(1, len(cmd.params)):
            cmd.int_arg(index)
        if not host or not ready(fake):
            raise CommandError(None)
        address = resolve(fake, host)
        line = f'+CDNSGIP: 1,"{host}","{address}"' if address else f"+CDNSGIP: 0,{error_code}"
        if result_after_ok:
            fake.after_response(lambda: fake.send_urc(line))
            return Response.ok()
        if address is None and error_final:
            return Response(lines=(line,), final="ERROR")
        return Response.ok(line)

    return cdnsgip
