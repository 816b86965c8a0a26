"""What the three SIMCom fake dialects (``sim7080``, ``sim7600``, ``sim7000``) share.

The engine (``core``) knows nothing about sockets; this module adds, for the SIMCom scripts only:

- ``SimSocket``: one modem socket bridged to a real asyncio TCP connection from the fake to
  127.0.0.1. Received bytes wait in the socket's buffer until the host reads them with the
  dialect's read command; the buffer is bounded (``rx_limit``): past it the fake stops reading
  from TCP (back-pressure, nothing is dropped). The dialect is told when data becomes readable
  (``on_data``: it sends its notification) and when the peer closed (``on_peer_close``).
  Notification rule (SIMCom manual receive mode, e.g. ``AT+CIPRXGET=1``): the first data after
  a read is announced once; more data before the next read is not announced again.
- the connection itself and name resolution come from ``loopback`` (``add_host``,
  ``resolve``: IPv4 literals, ``localhost`` and added names; loopback addresses only).
- ``SimcomState``: the base of each dialect's power-on state (``fake.dialect_state``): its
  sockets and the faults armed for it. A reboot drops it (after closing every socket).
- ``SimcomFaults``, every SIMCom dialect's ``Dialect.faults`` (the fault methods of
  ``FakeModem``); the module functions ``close_from_peer``, ``drop_pdp``, ``fail_next_send``,
  ``lose_next_notification``, ``reboot_during_next_send`` call those methods.
- boot variants (``boot_lines``): the banner a module prints at power-on, without it when the
  module autobauds (SIM800 Series AT Command Manual V1.09 §2.2.41: "RDY" and the other start-up
  URCs are not shown while auto-bauding; the host syncs by sending ``AT``), and the late boot lines
  (``SMS Ready``, ``Call Ready``, ``SMS DONE``, ``PB DONE``: the SIM and phonebook are ready some
  seconds after ``RDY``) either right after the banner or ``late_boot`` seconds after power-on.
- the send path (``take_payload``: prompt, then exactly ``<len>`` raw bytes, URCs held
  meanwhile) and small SIMCom commands every dialect answers the same way (``+CPIN``, ``+CSQ``,
  ``+CGATT``, ``+CPSI``, ``+CCID``, ``+CGMR`` with its prefix, ``+CDNSGIP``).

Sources and decisions are listed in each dialect module's docstring.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal

from . import radio as rf
from .core import FakeModem
from .faults import ArmedFaults, Initiator, SocketFaults
from .generic import identity_command
from .grammar import Command, CommandError, Handler, HandlerResult, Kind, Response, frame_line
from .loopback import LOOPBACK, LoopbackConnection, add_host, is_loopback, resolve
from .registry import GENERIC_COMMANDS, Dialect, Identity

__all__ = [
    "CONNECT_TIMEOUT",
    "LOOPBACK",
    "PROMPT",
    "SIMCOM_FAULTS",
    "SimSocket",
    "SimcomFaults",
    "SimcomState",
    "add_host",
    "boot_lines",
    "boot_variant",
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
    "sim70x0_system_mode",
    "simcom_state",
    "socket_of",
    "take_payload",
]

log = logging.getLogger("tests.fakes.simcom")

#: The data prompt after a length-delimited send command: CR LF, ``>`` and a space, no line
#: end (the SIMCom/V.250 SMS-style prompt; Zephyr's SIM7080 driver waits for the unterminated
#: ``"> "``, TinyGSM for ``">"``).
PROMPT: Final = b"\r\n> "
#: How long an open waits for the TCP connection before it reports a failure.
CONNECT_TIMEOUT: Final = 5.0

SocketState = Literal["connecting", "open", "peer_closed", "dropped", "closed"]

# ---------------------------------------------------------------------------------------------
# Boot variants


def boot_lines(
    banner: Sequence[str],
    late: Sequence[str],
    *,
    autobaud: bool = False,
    late_boot: float | None = None,
) -> tuple[tuple[float, str], ...]:
    """A ``Dialect.boot_banner``: ``banner`` at power-on, then the ``late`` lines right after
    it, or ``late_boot`` seconds after power-on when given. An ``autobaud`` module prints
    nothing at power-on (not even the late lines, unless ``late_boot`` sends them later)."""
    if late_boot is not None:
        later = tuple((late_boot, text) for text in late)
        return (() if autobaud else tuple((0.0, text) for text in banner)) + later
    return () if autobaud else tuple((0.0, text) for text in (*banner, *late))


def boot_variant(
    base: Dialect,
    banner: Sequence[str],
    late: Sequence[str],
    *,
    autobaud: bool = False,
    late_boot: float | None = None,
    name: str | None = None,
    identity: Identity | None = None,
    handlers: Mapping[str, Handler | None] | None = None,
    rats: frozenset[str] | None = None,
) -> Dialect:
    """``base`` as another model or boot behaviour (``FakeModem(dialect=<this>)``): its boot
    lines from ``boot_lines``, and its own name, identity and handlers replacing or removing
    (None) some of ``base``'s. ``base`` itself when nothing differs."""
    if (
        not autobaud
        and late_boot is None
        and name is None
        and identity is None
        and not handlers
        and rats is None
    ):
        return base
    table = dict(base.handlers)
    table.update(handlers or {})
    return dataclasses.replace(
        base,
        name=name or base.name,
        identity=identity or base.identity,
        boot_banner=boot_lines(banner, late, autobaud=autobaud, late_boot=late_boot),
        handlers=table,
        rats=base.rats if rats is None else rats,
    )


# ---------------------------------------------------------------------------------------------
# Sockets


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
        self._conn: LoopbackConnection | None = None
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

    async def connect(
        self,
        address: str,
        *,
        connection: Callable[[SimSocket], LoopbackConnection] = LoopbackConnection,
    ) -> bool:
        """Open the TCP connection to ``address``:``port`` (loopback only); False on failure
        (the state stays ``connecting``: the dialect reports the failure and drops it).

        ``connection`` makes the connection object for this socket: a plain TCP one, or one
        that runs the module's TLS client over it (the SIM7080's SSL sockets)."""
        self.address = address
        fake = self.fake
        if simcom_state(fake).faults.take_failed_open() or fake.scenario.broker_unreachable:
            return False  # as a refused connection
        self._conn = connection(self)
        address, port = await fake.route(address, self.port)
        if not await self._conn.connect(address, port, timeout=CONNECT_TIMEOUT):
            self._conn = None
            return False
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
        if self._paused and len(self.rx) < self.rx_limit and self._conn is not None:
            self._paused = False
            self._conn.resume_reading()
        return data

    def send(self, data: bytes) -> None:
        """Write bytes to the peer."""
        if self._conn is not None and not self._conn.closing:
            self._conn.write(data)
            self.bytes_sent += len(data)

    def close(self) -> None:
        """Close from the host side (FIN after pending bytes); no notification."""
        self.state = "closed"
        if self._conn is not None:
            self._conn.close()

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
        self.on_lost(None)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait until the TCP connection is gone (the transport released its socket)."""
        if self._conn is not None:
            await self._conn.wait_closed(timeout)

    # ---- internals

    def _abort(self) -> None:
        if self._conn is not None:
            self._conn.abort()

    # ---- TCP side (loopback.Receiver)

    def on_connected(self, conn: LoopbackConnection) -> None:
        """The TCP connection is made."""
        self._conn = conn

    def on_eof(self) -> None:
        """The peer's FIN: nothing yet, ``on_lost`` follows (no half-open SIMCom socket)."""

    def on_data(self, data: bytes) -> None:
        """Bytes from the peer: buffered, announced once per read (see the module docstring)."""
        if self.state in ("closed", "dropped"):
            return
        self.rx += data
        self.bytes_received += len(data)
        if len(self.rx) >= self.rx_limit and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause_reading()
        if self.state == "open":
            self._announce()

    def _announce(self) -> None:
        if not self.announced:
            self.announced = True
            _guard(self._on_data_cb, self)

    def on_lost(self, exc: Exception | None) -> None:
        """The connection is gone: an open socket was closed by the peer (or reset)."""
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


class SimcomState(abc.ABC):
    """Base of a SIMCom dialect's power-on state: sockets by link number, armed faults."""

    def __init__(self) -> None:
        self.sockets: dict[int, SimSocket] = {}
        self.faults = ArmedFaults()
        self.sending = False

    @abc.abstractmethod
    def drop_pdp(self, fake: FakeModem) -> None:
        """The network deactivates the PDP context: the dialect's notification, sockets reset."""

    def after_send(self, fake: FakeModem) -> None:  # noqa: B027  (an optional hook)
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
    state = fake.dialect_state
    if not isinstance(state, SimcomState):  # dialect_state_as takes concrete classes only
        raise TypeError(f"dialect state is {type(state).__name__}")
    return state


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
    if faults.take_lost_notification():
        log.debug("notification lost: %s", text)
        return
    fake.send_urc(text)


# ---- the fault API


def socket_of(fake: FakeModem, link: int) -> SimSocket:
    """The socket with number ``link`` (KeyError if there is none)."""
    return simcom_state(fake).sockets[link]


class SimcomFaults(SocketFaults):
    """How the SIMCom modems report the network's faults; each dialect's state says its words
    (``SimcomState.drop_pdp``, the ``on_peer_close`` callback of its sockets, its send path)."""

    def drop_pdp(self, fake: FakeModem) -> None:
        """The dialect's deactivation URC (``+APP PDP: 0,DEACTIVE``, ``+CIPEVENT: NETWORK CLOSED
        UNEXPECTEDLY``, ``+PDP: DEACT``); every socket is reset without a per-socket URC;
        registration stays; the host must activate the bearer again."""
        simcom_state(fake).drop_pdp(fake)

    def network_detach(
        self, fake: FakeModem, *, initiator: Initiator, reattach_after: float | None
    ) -> None:
        """+CEREG stat 2 (or 0), then the bearer goes as in ``drop_pdp``; with
        ``reattach_after`` +CEREG stat 1 again later (the bearer stays down)."""
        fake.set_registration(2 if initiator == "NW" else 0)
        simcom_state(fake).drop_pdp(fake)
        if reattach_after is not None:
            fake.call_later(reattach_after, fake.set_registration, 1)

    def peer_close(self, fake: FakeModem, link: int | None) -> None:
        """The connection is reset and announced by the dialect (``+CASTATE: <cid>,0``,
        ``+IPCLOSE: <link>,1``, ``<n>, CLOSED``), after any buffered data."""
        sockets = simcom_state(fake).sockets
        if link is None:
            socks = [sock for _, sock in sorted(sockets.items()) if sock.state == "open"]
            if not socks:
                raise LookupError("no open socket")
        elif link in sockets:
            socks = [sockets[link]]
        else:
            raise LookupError(f"no socket {link}")
        for sock in socks:
            sock.peer_close()

    def armed(self, fake: FakeModem) -> ArmedFaults:
        """The SIMCom state's faults. A refused send takes its payload, then reports the
        dialect's failure (SIM7080 ``ERROR``, SIM7600 ``+CIPSEND: <link>,<len>,-1``, SIM7000
        ``<n>, SEND FAIL``); nothing is sent. A failed open is a refused connection (SIM7080
        ``+CAOPEN: <cid>,23``, SIM7600 ``+CIPOPEN: <link>,1``, SIM7000 ``<n>, CONNECT FAIL``).
        A lost notification is not sent; the data stays readable. A reboot in a send comes
        after the ``> `` prompt, before the payload."""
        return simcom_state(fake).faults


#: The fault model of every SIMCom dialect.
SIMCOM_FAULTS: Final = SimcomFaults()


def close_from_peer(fake: FakeModem, link: int) -> None:
    """``fake.peer_close(link)``: the dialect's closed notification follows."""
    fake.peer_close(link)


def drop_pdp(fake: FakeModem) -> None:
    """``fake.drop_pdp()``: the network deactivates the PDP context now (``+APP PDP:
    0,DEACTIVE``, ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`` or ``+PDP: DEACT``); every socket
    is reset; registration stays."""
    fake.drop_pdp()


def fail_next_send(fake: FakeModem, count: int = 1) -> None:
    """``fake.fail_next_send(count)``: the sends take their payload but report the dialect's
    send failure; nothing reaches the peer."""
    fake.fail_next_send(count)


def lose_next_notification(fake: FakeModem, count: int = 1) -> None:
    """``fake.lose_next_notification(count)``: not sent; the data stays readable."""
    fake.lose_next_notification(count)


def reboot_during_next_send(fake: FakeModem) -> None:
    """``fake.reboot_during_next_send()``: the next send command shows its prompt, then the
    modem reboots before taking the payload (the payload bytes then reach a freshly booted
    modem as line noise)."""
    fake.reboot_during_next_send()


# ---------------------------------------------------------------------------------------------
# The send path


async def take_payload(fake: FakeModem, state: SimcomState, length: int) -> tuple[bytes, list[str]]:
    """Send the prompt and take exactly ``length`` raw bytes. URCs are held from the prompt
    until the command's response has gone out; then the returned ``trailer`` lines (the
    handler appends to it: ``+CIPSEND: ...``) are sent, then the held URCs."""
    fake.discard_stray_line_feed()  # the LF of a CRLF-ended command is not payload
    fake.write_raw(PROMPT)
    if state.faults.take_reboot_in_send() is not None:
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
    return rf.csq_index(fake.rsrp_index) if fake.state.registered else 99


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
    return identity_command(lambda fake: prefix + fake.identity.revision)


def sim70x0_system_mode(fake: FakeModem) -> str:
    """``<System Mode>`` of a SIM70x0 on LTE: ``LTE NB-IOT`` on NB-IoT (AcT 9), else
    ``LTE CAT-M1`` (SIM7080 manual +CPSI; Zephyr ``simcom-sim7080`` parses both)."""
    return "LTE NB-IOT" if fake.act == 9 else "LTE CAT-M1"


def cpsi_handler(system_mode: Callable[[FakeModem], str], *, tenths: bool) -> Handler:
    """``AT+CPSI?``: ``+CPSI: <System Mode>,<Operation Mode>,<MCC>-<MNC>,<TAC>,<SCellID>,
    <PCellID>,<Frequency Band>,<earfcn>,<dlbw>,<ulbw>,<RSRQ>,<RSRP>,<RSSI>,<RSSNR>`` from
    the fake's network (serving cell) and signal (``radio``); ``+CPSI: NO SERVICE,Online``
    when not registered. ``tenths``: RSRQ, RSRP and RSSI in 0.1 dB units (SIM7600:
    ``-1143`` is −114.3 dBm). ``<RSSNR>`` is (SINR + 20) / 2 (the Zephyr sim7080 driver
    reads SINR = 2 × RSSNR − 20)."""

    def cpsi(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.READ, Kind.TEST)
        if cmd.kind is Kind.TEST:
            return Response.ok()
        state, net = fake.state, fake.network
        if not state.registered or state.tac is None or state.ci is None:
            return Response.ok("+CPSI: NO SERVICE,Online")
        scale = 10 if tenths else 1
        rsrq = rf.rsrq_tenths(fake.rsrq_index) * scale // 10
        rsrp = rf.rsrp_dbm(fake.rsrp_index) * scale
        rssi = rf.rssi_dbm(fake.rsrp_index) * scale
        rssnr = (rf.snr_db(fake.rsrp_index) + 20) // 2
        bandwidth = "0" if fake.act == 9 else "3"  # NB-IoT: 200 kHz (index 0), LTE-M 1.4 MHz
        fields = [
            system_mode(fake),
            "Online",
            f"{net.plmn[:3]}-{net.plmn[3:]}",
            f"0x{state.tac}",
            str(int(state.ci, 16)),
            str(net.pci),
            f"EUTRAN-BAND{net.band}",
            str(net.earfcn),
            bandwidth,
            bandwidth,
            str(rsrq),
            str(rsrp),
            str(rssi),
            str(rssnr),
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


# ---- the real-time clock (AT+CCLK), shared by the families that check certificate dates

#: How far each fake's clock is from real time; a fake not in it runs on real time. A
#: module's RTC survives a reset (it has its own supply), so a reboot keeps it.
_CLOCKS: weakref.WeakKeyDictionary[FakeModem, timedelta] = weakref.WeakKeyDictionary()


def clock(fake: FakeModem) -> datetime:
    """The fake's clock now (UTC)."""
    return datetime.now(UTC) + _CLOCKS.get(fake, timedelta(0))


def set_clock(fake: FakeModem, when: datetime) -> None:
    """Move the fake's clock to ``when`` (an aware datetime); it runs on from there."""
    _CLOCKS[fake] = when - datetime.now(UTC)


def clock_was_set(fake: FakeModem) -> bool:
    """Whether the fake's clock was moved (``set_clock``, ``AT+CCLK=``)."""
    return fake in _CLOCKS


def cclk(fake: FakeModem, cmd: Command) -> Response:
    """``AT+CCLK?`` -> ``+CCLK: "yy/MM/dd,hh:mm:ss+zz"`` (zz quarter hours), and
    ``AT+CCLK="<that>"`` sets it (SIMCom AT manuals, 3GPP TS 27.007 §8.15)."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if cmd.kind is Kind.READ:
        return Response.ok(f'+CCLK: "{clock(fake):%y/%m/%d,%H:%M:%S}+00"')
    text = cmd.str_arg(0)
    try:
        stamp = datetime.strptime(text[:17], "%y/%m/%d,%H:%M:%S")
        quarters = int(text[17:]) if len(text) > 17 else 0
    except ValueError:
        raise CommandError(None) from None
    set_clock(fake, stamp.replace(tzinfo=timezone(timedelta(minutes=15 * quarters))))
    return Response.ok()
