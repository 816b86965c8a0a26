"""Socket machinery shared by the two nRF91 fakes (Serial LTE Modem and Serial Modem).

Theory of operation
-------------------
Each fake socket is bridged to a real asyncio TCP connection from the fake to 127.0.0.1, opened
by ``AT#XCONNECT``. Only loopback is reachable: a host name resolves through a small hosts table
(``localhost`` plus whatever a test adds with ``add_host``, always to a loopback address), the
literal ``127.0.0.1`` is accepted as is, and any other name fails like a DNS lookup that found
nothing. ``AT#XSSOCKET`` (TLS) sockets are bridged as plain TCP: the tests have no TLS broker.

Bytes from the peer collect in the socket's receive buffer, as in the modem, until the host reads
them (``AT#XRECV``) or the Serial Modem pushes them (``AT#XRECVCFG``). The buffer is bounded by
``RECV_WINDOW``: above it the fake stops reading the TCP connection, so the peer sees TCP flow
control and nothing is lost. The peer's FIN marks the socket closed by the peer (``recv`` returns
0, poll reports POLLIN|POLLHUP); a reset or a lost network marks it failed (poll reports POLLERR).

Poll events (``#XAPOLL``, auto-reception) are evaluated by the dialect's ``poll()`` whenever
something changes; ``kick()`` schedules that evaluation after the current command's response, as
the modem's work queue runs poll work only between AT commands.

Data mode (``AT#XSEND`` without payload) is driven by ``run_data_mode``: ``OK`` once in data mode,
then either exactly ``<data_len>`` bytes (Serial Modem, the terminator is not scanned) or bytes up
to the terminator ``+++``, matched anywhere in the stream with no guard time (a payload that
contains ``+++`` ends data mode early; the rest is read as AT commands). Other URCs are held
meanwhile and delivered after ``#XDATAMODE``. The payload reaches the TCP peer when the send
completes (the real modem also flushes on a full buffer or an idle timer; only timing differs). A
send that fails makes the modem send the terminator itself and drop input until the host's
terminator (or until ``<data_len>`` bytes), then ``#XDATAMODE: <negative>``
(sdk-nrf PR #14561, ncs-serial-modem PR #431, ``sm_data_mode.rst``).

Faults on demand (module functions taking the ``FakeModem``): ``peer_close``, ``network_detach``,
``fail_next_send``, ``lose_next_notification``, ``reboot_during_next_send``; ``add_host`` extends
the hosts table and ``wait_buffered`` waits until the peer's bytes have reached the modem. A
reboot or ``FakeModem.stop()`` aborts every TCP connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import weakref
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from .core import (
    GENERIC_COMMANDS,
    Command,
    CommandError,
    FakeModem,
    Handler,
    HandlerResult,
    Kind,
    Param,
    Response,
    frame_line,
)

__all__ = [
    "COMMON_HANDLERS",
    "ECONNRESET",
    "EIO",
    "ENETDOWN",
    "ENOTCONN",
    "EPIPE",
    "MAX_HOSTNAME",
    "MAX_SOCKETS",
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLNVAL",
    "POLLOUT",
    "POLL_FAILURES",
    "RECV_CHUNK",
    "RECV_WINDOW",
    "TERMINATOR",
    "DataMode",
    "NrfSockets",
    "Socket",
    "add_host",
    "error_with",
    "fail_next_send",
    "int_param",
    "lines",
    "lose_next_notification",
    "network_detach",
    "on_reboot",
    "on_stop",
    "peer_close",
    "reboot_during_next_send",
    "sockets_of",
    "str_param",
    "text_payload",
    "wait_buffered",
    "xgetaddrinfo",
]

POLLIN: Final = 1
POLLOUT: Final = 4
POLLERR: Final = 8
POLLHUP: Final = 16
POLLNVAL: Final = 32
POLL_FAILURES: Final = POLLERR | POLLHUP | POLLNVAL

#: Zephyr errno values (lib/libc/minimal/include/errno.h), as the modem reports them.
EIO: Final = 5
EPIPE: Final = 32
ECONNRESET: Final = 104
ENETDOWN: Final = 115
ENOTCONN: Final = 128

#: "The application can open up to 8 sockets" (SOCKET_AT_commands.rst, at_socket.rst).
MAX_SOCKETS: Final = 8
#: Most bytes one recv returns: the data buffer is NRF_SOCKET_TLS_MAX_MESSAGE_SIZE (2048).
RECV_CHUNK: Final = 2048
#: Receive buffer bound per socket (the fake's choice; the modem's window is not documented).
RECV_WINDOW: Final = 16384
#: CONFIG_SLM_DATAMODE_TERMINATOR / CONFIG_SM_DATAMODE_TERMINATOR default.
TERMINATOR: Final = b"+++"
#: SLM_MAX_URL / SM_MAX_URL is 128 bytes including the terminating NUL.
MAX_HOSTNAME: Final = 127
CONNECT_TIMEOUT: Final = 30.0

SOCK_STREAM: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_TLS_1_2: Final = 258

# --------------------------------------------------------------------------------------------
# The network: which names resolve (kept per fake, across reboots)


@dataclass
class _Network:
    hosts: dict[str, str] = field(default_factory=lambda: {"localhost": "127.0.0.1"})


_NETWORKS: weakref.WeakKeyDictionary[FakeModem, _Network] = weakref.WeakKeyDictionary()


def _network(fake: FakeModem) -> _Network:
    network = _NETWORKS.get(fake)
    if network is None:
        network = _NETWORKS[fake] = _Network()
    return network


def add_host(fake: FakeModem, name: str, address: str = "127.0.0.1") -> None:
    """Make ``name`` resolve to ``address`` (a loopback IPv4 address) on this fake's network."""
    if not ipaddress.IPv4Address(address).is_loopback:
        raise ValueError("the fake network only reaches loopback addresses")
    _network(fake).hosts[name.lower()] = address


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Sockets


class _Bridge(asyncio.Protocol):
    """The TCP side of one fake socket."""

    def __init__(self, owner: Socket) -> None:
        self.owner: Socket | None = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.owner is None:
            transport.abort()
            return
        self.owner.attach(transport)

    def data_received(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner.on_data(data)

    def eof_received(self) -> bool | None:
        if self.owner is not None:
            self.owner.on_eof()
        return None  # let the transport close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner is not None:
            self.owner.on_lost(exc)


@dataclass(eq=False)
class Socket:
    """One modem socket: what it was opened as, its TCP bridge, receive buffer and poll state."""

    state: NrfSockets
    handle: int
    family: int
    type: int
    role: int
    cid: int
    sec_tag: int | None = None
    peer_verify: int = 2
    ranking: int = 0
    options: dict[int, int | str] = field(default_factory=dict)
    rx: bytearray = field(default_factory=bytearray)
    connected: bool = False
    peer_closed: bool = False
    error: int = 0
    transport: asyncio.Transport | None = None
    bridge: _Bridge | None = None
    paused: bool = False
    # SLM asynchronous poll (slm_at_socket.c): events being polled, delegated events, flags.
    apoll_events: int = 0
    apoll_specific: bool = False
    # Both dialects: poll disabled after ERR/HUP/NVAL until closed (or data mode ends).
    poll_disabled: bool = False
    # SM poll callback (sm_at_socket.c): registered events, #XAPOLL requested/armed events,
    # events seen outside AT mode, automatic data reception flags.
    events: int = 0
    xapoll_requested: int = 0
    xapoll_armed: int = 0
    delayed: int = 0
    adr_flags: int = 0
    adr_hex: bool = False
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def secure(self) -> bool:
        return self.sec_tag is not None

    @property
    def protocol(self) -> int:
        if self.secure:
            return IPPROTO_TLS_1_2
        return IPPROTO_TCP

    def readiness(self) -> int:
        """What poll() would report now (before masking with the requested events)."""
        ready = 0
        if self.rx or self.peer_closed:
            ready |= POLLIN
        if self.connected and not self.peer_closed and not self.error:
            ready |= POLLOUT
        if self.error:
            ready |= POLLERR
        if self.peer_closed or self.error == ECONNRESET:
            ready |= POLLHUP
        return ready

    def send_error(self) -> int:
        """0 if a send would succeed now, else the errno it fails with."""
        if self.error:
            return self.error
        if self.peer_closed:
            return EPIPE
        if not self.connected or self.transport is None or self.transport.is_closing():
            return ENOTCONN
        return 0

    def transmit(self, data: bytes) -> int:
        """Send ``data`` to the peer; 0 or the errno."""
        error = self.send_error()
        if error:
            return error
        assert self.transport is not None
        if data:
            self.transport.write(data)
        return 0

    def take(self, count: int, *, peek: bool = False) -> bytes:
        """Remove (or copy, with ``peek``) up to ``count`` buffered bytes."""
        data = bytes(self.rx[:count])
        if not peek:
            del self.rx[:count]
            if self.paused and len(self.rx) < RECV_WINDOW and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
        return data

    async def wait_change(self) -> None:
        """Wait until data, the peer's close or an error changes the socket."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    # ---- TCP side

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.state.transports.add(transport)

    def on_data(self, data: bytes) -> None:
        self.rx += data
        if len(self.rx) >= RECV_WINDOW and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._changed()

    def on_eof(self) -> None:
        self.peer_closed = True
        self._changed()

    def on_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.state.transports.discard(self.transport)
        self.transport = None
        if exc is not None and not self.peer_closed and not self.error:
            self.error = ECONNRESET
        elif not self.error:
            self.peer_closed = True
        self._changed()

    def fail(self, error: int) -> None:
        """The network took the connection away: abort TCP, remember ``error``."""
        if not self.connected or self.error:
            return
        self.error = error
        self.detach()
        self._changed()

    def detach(self) -> None:
        """Forget the TCP connection (abort it); later TCP callbacks are ignored."""
        if self.bridge is not None:
            self.bridge.owner = None
            self.bridge = None
        if self.transport is not None:
            self.state.transports.discard(self.transport)
            self.transport.abort()
            self.transport = None
        for future in self._waiters:
            if not future.done():
                future.set_result(None)

    def _changed(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self.state.changed()


# --------------------------------------------------------------------------------------------
# Data mode and faults


@dataclass(eq=False)
class DataMode:
    """One data-mode session: the socket, ``<data_len>`` (0: terminator mode), send flags."""

    sock: Socket | None
    data_len: int
    flags: int
    failed: int = 0  # errno of the failure, 0 while all is well
    terminator_sent: bool = False
    sent: int = 0


@dataclass
class _Faults:
    fail_sends: int = 0
    lose_notifications: int = 0
    reboot_after: int | None = None


# --------------------------------------------------------------------------------------------
# The dialect state


class NrfSockets:
    """Socket table and shared behaviour; ``SlmSockets`` and ``SmSockets`` add their poll rules.

    Built at every power-on (``Dialect.new_state``); bound to its ``FakeModem`` by the first
    handler that uses it.
    """

    def __init__(self) -> None:
        self.fake: FakeModem | None = None
        self.sockets: dict[int, Socket] = {}
        self.transports: set[asyncio.Transport] = set()
        self.cgerep = 0
        self.data_mode: DataMode | None = None
        self.faults = _Faults()
        self.closed = False
        self._kick_scheduled = False
        self._next_ranking = 1
        self._waiters: list[asyncio.Future[None]] = []

    # ---- binding and lifecycle

    def bind(self, fake: FakeModem) -> NrfSockets:
        self.fake = fake
        return self

    def require_fake(self) -> FakeModem:
        if self.fake is None:
            raise RuntimeError("socket state not bound to a fake modem")
        return self.fake

    def shutdown(self) -> None:
        """Power loss: every socket and TCP connection goes (reboot and stop)."""
        self.closed = True
        for sock in list(self.sockets.values()):
            sock.detach()
        self.sockets.clear()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    # ---- socket table

    def ordered(self) -> Iterator[Socket]:
        for handle in sorted(self.sockets):
            yield self.sockets[handle]

    def open(
        self, family: int, sock_type: int, role: int, cid: int, sec_tag: int | None = None
    ) -> Socket:
        """A new socket on the lowest free handle; plain ERROR when it cannot be opened."""
        fake = self.require_fake()
        if len(self.sockets) >= MAX_SOCKETS:
            raise CommandError(None)
        if family not in (1, 2) or sock_type != SOCK_STREAM or role != 0:
            # The fake bridges TCP (and TLS as TCP) clients only.
            raise CommandError(None)
        if not 0 <= cid <= 10 or (cid > 0 and cid not in fake.state.contexts):
            raise CommandError(None)
        handle = next(h for h in range(MAX_SOCKETS) if h not in self.sockets)
        sock = Socket(self, handle, family, sock_type, role, cid, sec_tag)
        sock.ranking = self._next_ranking
        self._next_ranking += 1
        self.sockets[handle] = sock
        return sock

    def close(self, sock: Socket) -> None:
        sock.detach()
        self.sockets.pop(sock.handle, None)

    def find(self, handle: int) -> Socket:
        sock = self.sockets.get(handle)
        if sock is None:
            raise CommandError(None)
        return sock

    # ---- network

    def network_up(self) -> bool:
        fake = self.require_fake()
        return fake.state.cfun == 1 and fake.state.registered

    def resolve(self, host: str, family: int = 0) -> str | None:
        """The IPv4 address ``host`` resolves to on the fake network, None if nothing."""
        if _is_ipv4(host):
            return host if family in (0, 1) else None
        if family == 2:
            return None
        return _network(self.require_fake()).hosts.get(host.lower())

    async def connect(self, sock: Socket, host: str, port: int) -> None:
        """Open the real TCP connection; plain ERROR when the modem's connect() would fail."""
        if sock.connected or sock.error or not 0 <= port <= 65535:
            raise CommandError(None)
        address = self.resolve(host, sock.family)
        if address is None or not self.network_up():
            raise CommandError(None)
        if not ipaddress.IPv4Address(address).is_loopback:
            raise CommandError(None)
        loop = asyncio.get_running_loop()
        bridge = _Bridge(sock)
        sock.bridge = bridge
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(lambda: bridge, address, port)
        except (OSError, TimeoutError):
            bridge.owner = None
            sock.bridge = None
            raise CommandError(None) from None
        sock.connected = True
        sock._changed()

    def fail_all(self, error: int) -> None:
        for sock in self.ordered():
            sock.fail(error)

    # ---- receiving

    async def receive(
        self, sock: Socket, *, timeout: int, flags: int, max_size: int
    ) -> bytes | None:
        """``recv()``: bytes, b"" for the peer's orderly close, None for an error (ERROR).

        ``timeout`` is SO_RCVTIMEO in seconds (0: wait forever); flags 2 MSG_PEEK, 64
        MSG_DONTWAIT, 256 MSG_WAITALL.
        """
        if flags & ~(2 | 64 | 256):
            return None
        if not sock.connected:
            return None
        want = max_size if flags & 256 else 1

        def ready() -> bool:
            return len(sock.rx) >= want or sock.peer_closed or bool(sock.error)

        if not ready():
            if flags & 64:
                return None if not sock.rx else sock.take(max_size, peek=bool(flags & 2))
            try:
                async with asyncio.timeout(timeout if timeout > 0 else None):
                    while not ready():
                        await sock.wait_change()
            except TimeoutError:
                if not sock.rx:
                    return None
        if sock.rx:
            return sock.take(max_size, peek=bool(flags & 2))
        if sock.error:
            return None
        return b""

    def changed(self) -> None:
        """Some socket changed: wake ``wait_any_change`` and evaluate poll events."""
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
        self.kick()

    async def wait_any_change(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    # ---- notifications

    def kick(self) -> None:
        """Evaluate poll events soon: after the current command's response, like poll work."""
        fake = self.fake
        if fake is None or self.closed or self._kick_scheduled:
            return
        self._kick_scheduled = True

        def schedule() -> None:
            if not self.closed:
                fake.call_later(0.0, self._run_poll)

        fake.after_response(schedule)

    def _run_poll(self) -> None:
        self._kick_scheduled = False
        if not self.closed:
            self.poll()

    def poll(self) -> None:
        """Send the notifications the current poll events call for (the dialect's rules)."""

    def take_lost_notification(self) -> bool:
        """True (and one use consumed) if the next data notification is to be lost."""
        if self.faults.lose_notifications > 0:
            self.faults.lose_notifications -= 1
            return True
        return False

    # ---- data mode

    def datamode_status(self, dm: DataMode) -> int:
        """The ``#XDATAMODE`` value for a session: 0, or the dialect's failure value."""
        return -dm.failed

    def on_data_mode_exit(self, dm: DataMode) -> None:
        """Dialect hook after ``#XDATAMODE``."""

    def fail_data_mode(self, dm: DataMode, error: int) -> None:
        """The data-mode send failed: the modem sends the terminator itself and drops input."""
        if dm.failed:
            return
        dm.failed = error
        if not dm.terminator_sent:
            dm.terminator_sent = True
            self.require_fake().write_raw(TERMINATOR)

    def _first_flush(self, dm: DataMode) -> None:
        if self.faults.fail_sends > 0:
            self.faults.fail_sends -= 1
            self.fail_data_mode(dm, EIO)
            return
        error = ENOTCONN if dm.sock is None else dm.sock.send_error()
        if error:
            self.fail_data_mode(dm, error)

    async def run_data_mode(self, sock: Socket | None, *, data_len: int, flags: int) -> None:
        """Enter data mode (``OK``), take the payload, send it, then ``#XDATAMODE``."""
        fake = self.require_fake()
        fake.respond_now(Response.ok())
        dm = DataMode(sock, data_len, flags)
        self.data_mode = dm
        fake.hold_urcs(True)
        reboot_after = self.faults.reboot_after
        if reboot_after is not None:
            self.faults.reboot_after = None
            if reboot_after > 0:
                await fake.read_raw(reboot_after)
            fake.after_output(fake.reboot)
            await asyncio.Event().wait()  # the reboot cancels this handler
        payload = b""
        if data_len > 0:
            first = await fake.read_raw(1)
            self._first_flush(dm)
            payload = first + (await fake.read_raw(data_len - 1) if data_len > 1 else b"")
        else:
            head = b""
            while TERMINATOR.startswith(head) and head != TERMINATOR:
                head += await fake.read_raw(1)
            if head != TERMINATOR:
                self._first_flush(dm)
                payload = head + await fake.read_until(TERMINATOR)
        if payload and not dm.failed:
            error = ENOTCONN if sock is None else sock.transmit(payload)
            if error:
                self.fail_data_mode(dm, error)
            else:
                dm.sent = len(payload)
        self.data_mode = None
        fake.write_raw(frame_line(f"#XDATAMODE: {self.datamode_status(dm)}"))
        fake.hold_urcs(False)
        self.on_data_mode_exit(dm)
        self.kick()


def sockets_of(fake: FakeModem) -> NrfSockets:
    """The nRF91 socket state of ``fake`` (an nrf91-slm or nrf91-sm fake), bound to it."""
    return fake.dialect_state_as(NrfSockets).bind(fake)


# --------------------------------------------------------------------------------------------
# Faults on demand


def peer_close(fake: FakeModem, handle: int) -> None:
    """The peer closes the TCP connection of socket ``handle``: the fake closes its side (the
    test's server sees EOF) and the modem sees the peer's FIN (POLLIN|POLLHUP, recv 0)."""
    sock = sockets_of(fake).find(handle)
    if sock.transport is not None:
        sock.transport.close()
    sock.on_eof()


def network_detach(
    fake: FakeModem,
    *,
    initiator: Literal["NW", "ME"] = "NW",
    reattach_after: float | None = None,
) -> None:
    """The PDP context drops: ``+CGEV: NW DETACH`` (or ``ME DETACH``) if AT+CGEREP=1, +CEREG
    stat 2 (NW: the modem searches again) or 0 (ME), every connected socket fails (ENETDOWN:
    POLLERR, sends and receives answer ERROR once the buffered data is read). With
    ``reattach_after`` the modem registers again after that many seconds (+CEREG stat 1,
    ``+CGEV: ME PDN ACT 0``); new connections work again, failed sockets stay failed."""
    state = sockets_of(fake)
    if state.cgerep:
        fake.send_urc(f"+CGEV: {initiator} DETACH")
    fake.set_registration(2 if initiator == "NW" else 0)
    state.fail_all(ENETDOWN)
    if reattach_after is not None:

        def reattach() -> None:
            fake.set_registration(1)
            if state.cgerep and not state.closed:
                fake.send_urc("+CGEV: ME PDN ACT 0")

        fake.call_later(reattach_after, reattach)


def fail_next_send(fake: FakeModem, count: int = 1) -> None:
    """The next ``count`` sends fail as a network failure does: a string/hex ``AT#XSEND``
    answers its ``#XSEND`` line with 0 bytes and ``ERROR``; a data-mode send makes the modem
    send ``+++``, drop input until the host's ``+++`` (or ``<data_len>`` bytes) and report
    ``#XDATAMODE: <negative>``."""
    if count < 0:
        raise ValueError("count must not be negative")
    sockets_of(fake).faults.fail_sends += count


def lose_next_notification(fake: FakeModem, count: int = 1) -> None:
    """The next ``count`` data notifications (``#XAPOLL`` with POLLIN, Serial Modem
    auto-reception) never reach the host; the data stays in the socket for ``AT#XRECV``."""
    if count < 0:
        raise ValueError("count must not be negative")
    sockets_of(fake).faults.lose_notifications += count


async def wait_buffered(fake: FakeModem, handle: int, count: int = 1, timeout: float = 5.0) -> None:
    """Wait until socket ``handle`` holds at least ``count`` received bytes (the peer's data
    has reached the modem); TimeoutError after ``timeout`` seconds. Its notification, if any,
    is evaluated before the next command line is read."""
    sock = sockets_of(fake).find(handle)
    async with asyncio.timeout(timeout):
        while len(sock.rx) < count:
            await sock.wait_change()


def reboot_during_next_send(fake: FakeModem, after_bytes: int = 0) -> None:
    """The next data-mode send reboots the modem after ``OK`` and ``after_bytes`` payload bytes
    (0: between entering data mode and the first payload byte); every socket is lost."""
    if after_bytes < 0:
        raise ValueError("after_bytes must not be negative")
    sockets_of(fake).faults.reboot_after = after_bytes


# --------------------------------------------------------------------------------------------
# Parameter helpers (nRF #X commands answer a plain ERROR for any bad parameter)


def int_param(cmd: Command, index: int, *, default: int | None = None) -> int:
    """Parameter ``index`` as a (possibly negative) decimal integer; plain ERROR otherwise."""
    if not cmd.has(index):
        if default is None:
            raise CommandError(None)
        return default
    param: Param = cmd.params[index]
    text = param.text
    digits = text[1:] if text.startswith("-") else text
    if param.quoted or not digits.isascii() or not digits.isdigit():
        raise CommandError(None)
    return int(text)


def str_param(cmd: Command, index: int) -> str:
    """Parameter ``index`` as a double-quoted string; plain ERROR otherwise."""
    if index >= len(cmd.params) or not cmd.params[index].quoted:
        raise CommandError(None)
    return cmd.params[index].text


def lines(*texts: str) -> tuple[bytes, ...]:
    """Information lines as the nRF91 applications send them: each ``\\r\\n<text>\\r\\n``."""
    return tuple(frame_line(text) for text in texts)


def error_with(*texts: str) -> Response:
    """Information lines, then a plain ``ERROR`` (``#XSEND: 0`` before a failed send)."""
    return Response(lines=lines(*texts), final=None, is_error=True)


def text_payload(text: str, limit: int) -> bytes:
    """A string-mode payload: at most ``limit`` bytes and, as documented, no ``,`` or ``"``."""
    data = text.encode("latin-1")
    if len(data) > limit or b"," in data:
        raise CommandError(None)
    return data


# --------------------------------------------------------------------------------------------
# Commands both dialects share: +CGEREP (for +CGEV) and +CFUN (offline drops the sockets)


def xgetaddrinfo(fake: FakeModem, cmd: Command) -> Response:
    """``AT#XGETADDRINFO=<hostname>[,<family>]`` -> ``#XGETADDRINFO: "<ip>"`` (both dialects).

    A failed lookup answers ``#XGETADDRINFO: "<gai_strerror>"`` then ``ERROR``
    (``slm_at_socket.c``/``sm_at_socket.c``; zsock_gai_strerror prints the EAI_* name):
    ``EAI_NONAME`` for a name the fake network does not know, ``EAI_AGAIN`` while there is no
    network (that code is the fake's choice).
    """
    if cmd.kind is not Kind.SET or len(cmd.params) > 2:
        raise CommandError(None)
    state = sockets_of(fake)
    host = str_param(cmd, 0)
    if len(host.encode("latin-1")) > MAX_HOSTNAME:
        raise CommandError(None)
    family = int_param(cmd, 1, default=0)
    if not 0 <= family <= 2:
        raise CommandError(None)
    if not _is_ipv4(host) and not state.network_up():
        return error_with('#XGETADDRINFO: "EAI_AGAIN"')
    address = state.resolve(host, family)
    if address is None:
        return error_with('#XGETADDRINFO: "EAI_NONAME"')
    return Response.ok(f'#XGETADDRINFO: "{address}"')


def _cgerep(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state = sockets_of(fake)
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CGEREP: {state.cgerep},0")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CGEREP: (0,1),(0)")
    state.cgerep = cmd.int_arg(0, valid=(0, 1), default=0)
    cmd.int_arg(1, valid=(0,), default=0)
    return Response.ok()


def _cfun(fake: FakeModem, cmd: Command) -> HandlerResult | Awaitable[HandlerResult]:
    state = sockets_of(fake)
    was_up = state.network_up()
    result = GENERIC_COMMANDS["+CFUN"](fake, cmd)
    if was_up and fake.state.cfun != 1:

        def offline() -> None:
            if state.cgerep:
                fake.send_urc("+CGEV: ME DETACH")
            state.fail_all(ENETDOWN)

        fake.after_response(offline)
    return result


COMMON_HANDLERS: Final[dict[str, Handler]] = {"+CGEREP": _cgerep, "+CFUN": _cfun}


def on_reboot(fake: FakeModem) -> None:
    """``Dialect.on_reboot``: a reboot drops every socket."""
    if isinstance(fake.dialect_state, NrfSockets):
        fake.dialect_state.shutdown()


async def on_stop(fake: FakeModem) -> None:
    """``Dialect.on_stop``: abort every TCP connection."""
    on_reboot(fake)
    await asyncio.sleep(0)  # let the aborted transports run connection_lost
