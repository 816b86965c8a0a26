"""Socket machinery shared by the two nRF91 fakes (Serial LTE Modem and Serial Modem).

Theory of operation
-------------------
Each fake socket is bridged to a real TCP connection to 127.0.0.1 (``loopback``), opened by
``AT#XCONNECT``. Only loopback is reachable; names resolve through ``loopback.resolve``.
``AT#XSSOCKET`` (TLS) sockets speak TLS on the fake's side of the bridge, with the CA stored
under their security tag (``AT%CMNG``) and the host name set with ``AT#XSSOCKETOPT``
(``nrf91_tls``): a socket whose tag holds no CA, or a broker the CA did not sign, fails its
``AT#XCONNECT`` with ``ERROR``, as ``connect()`` does on the modem.

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

In terminator mode the input runs through the modem's matcher (``raw_rx_handler`` in
``slm_at_host.c``): a byte that breaks a partial match turns the partial terminator into data,
and the *inactivity timer* (restarted by every byte received in data mode; its limit is the UART
RX buffer (256 bytes) at the line's baud rate plus 10 ms, about 32 ms at 115200) sends what is
buffered when it expires, a partial terminator included, but only when some data is buffered: a
lone ``+`` or ``++`` stays a partial match, so a later ``++`` or ``+`` still completes it. A
build from before sdk-nrf PR #7951 (``NrfSockets.legacy_datamode``) sends no ``OK`` on
entering data mode and answers the terminator with ``OK`` instead of ``#XDATAMODE``.

Sockets belong to the modem, not to the host: closing the port (the host process dies) leaves
them open, up to ``MAX_SOCKETS``, until they are closed or the modem reboots. ``modem_fault``
is the modem core crashing under the application (``#XMODEM: FAULT,...``, ``SHUTDOWN``,
``INIT``; sdk-nrf ``applications/serial_lte_modem/src/main.c``, ncs-serial-modem
``app/src/main.c``): no ``Ready``, but every socket is gone, CFUN is 0, +CEREG and +CGEREP
reporting and ``#XAPOLL`` are back at their power-on defaults.

Faults on demand: ``NrfFaults`` is both dialects' ``Dialect.faults``, reached through the fault
methods of ``FakeModem`` (``fake.drop_pdp()``, ``fake.peer_close(handle)``...); the module
functions ``peer_close``, ``network_detach``, ``fail_next_send``, ``lose_next_notification`` call
them, and ``reboot_during_next_send`` also takes a payload offset. ``add_host`` (from
``loopback``) extends the hosts table and ``wait_buffered`` waits until the peer's bytes have
reached the modem. A reboot or ``FakeModem.stop()`` aborts every TCP connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Final

from . import loopback
from .core import FakeModem
from .faults import ArmedFaults, Initiator, SocketFaults
from .grammar import (
    Command,
    CommandError,
    Handler,
    HandlerResult,
    Kind,
    Param,
    Response,
    frame_line,
)
from .loopback import LoopbackConnection, add_host, is_ipv4
from .nrf91_tls import TLS_HOSTNAME_OPTION, TlsLoopbackConnection, tls_context
from .registry import GENERIC_COMMANDS

__all__ = [
    "COMMON_HANDLERS",
    "ECONNRESET",
    "EIO",
    "ENETDOWN",
    "ENOTCONN",
    "EPIPE",
    "MAX_HOSTNAME",
    "MAX_SOCKETS",
    "NRF_FAULTS",
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
    "NrfFaults",
    "NrfSockets",
    "Socket",
    "add_host",
    "datamode_time_limit",
    "error_with",
    "fail_next_send",
    "int_param",
    "lines",
    "lose_next_notification",
    "modem_fault",
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
#: CONFIG_SLM_UART_RX_BUF_SIZE / CONFIG_SM_UART_RX_BUF_SIZE default, in bytes.
UART_RX_BUF_SIZE: Final = 256
#: UART_RX_MARGIN_MS (slm_uart_handler.h, sm_uart_handler.h).
UART_RX_MARGIN_MS: Final = 10
#: The application's default baud rate, used for the timer when the fake is unpaced.
DEFAULT_BAUD: Final = 115200


def datamode_time_limit(baud: int | None) -> float:
    """Seconds of silence after which data mode sends what it buffered (``enter_datamode``:
    the UART RX buffer at 10 bits a byte plus the margin, as the firmware computes it)."""
    rate = baud or DEFAULT_BAUD
    return (UART_RX_BUF_SIZE * 10 * 1000 // rate + UART_RX_MARGIN_MS) / 1000


SOCK_STREAM: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_TLS_1_2: Final = 258

# --------------------------------------------------------------------------------------------
# Sockets


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
    conn: LoopbackConnection | None = None
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
        if not self.connected or self.conn is None or self.conn.closing:
            return ENOTCONN
        return 0

    def transmit(self, data: bytes) -> int:
        """Send ``data`` to the peer; 0 or the errno."""
        error = self.send_error()
        if error:
            return error
        assert self.conn is not None
        self.conn.write(data)
        return 0

    def take(self, count: int, *, peek: bool = False) -> bytes:
        """Remove (or copy, with ``peek``) up to ``count`` buffered bytes."""
        data = bytes(self.rx[:count])
        if not peek:
            del self.rx[:count]
            if self.paused and len(self.rx) < RECV_WINDOW and self.conn is not None:
                self.paused = False
                self.conn.resume_reading()
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

    # ---- TCP side (loopback.Receiver)

    def on_connected(self, conn: LoopbackConnection) -> None:
        """The TCP connection is made."""
        self.conn = conn
        self.state.connections.add(conn)

    def on_data(self, data: bytes) -> None:
        """Bytes from the peer: buffered until the host reads them (or the SM pushes them)."""
        self.rx += data
        if len(self.rx) >= RECV_WINDOW and self.conn is not None and not self.paused:
            self.paused = True
            self.conn.pause_reading()
        self._changed()

    def on_eof(self) -> None:
        """The peer's FIN: recv returns 0 once the buffer is read, poll reports HUP."""
        self.peer_closed = True
        self._changed()

    def on_lost(self, exc: Exception | None) -> None:
        """The connection is gone: a reset is an error, an orderly end the peer's close."""
        if self.conn is not None:
            self.state.connections.discard(self.conn)
        self.conn = None
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
        if self.conn is not None:
            self.state.connections.discard(self.conn)
            self.conn.detach()
            self.conn.abort()
            self.conn = None
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


@dataclass(eq=False)
class TerminatorMatcher:
    """Terminator-mode input as ``raw_rx_handler`` sees it: data, and the partial match."""

    terminator: bytes
    data: bytearray = field(default_factory=bytearray)
    partial: int = 0

    def feed(self, byte: int) -> bool:
        """Take one byte; True when it completes the terminator."""
        if byte == self.terminator[self.partial]:
            self.partial += 1
            return self.partial == len(self.terminator)
        if self.partial:
            # The partial match was data after all; the byte may start a new one.
            self.data += self.terminator[: self.partial]
            self.partial = 0
            return self.feed(byte)
        self.data.append(byte)
        return False

    def feed_chunk(self, chunk: bytes) -> int:
        """:meth:`feed` each byte of ``chunk`` in turn, up to the one that completes the
        terminator; returns the index after it, or -1 when all were taken. With no partial
        match, the bytes up to the next possible start of one are data, taken at once."""
        start = self.terminator[:1]
        index, end = 0, len(chunk)
        while index < end:
            if not self.partial:
                found = chunk.find(start, index)
                if found < 0:
                    self.data += chunk[index:]
                    return -1
                self.data += chunk[index:found]
                index = found
            index += 1
            if self.feed(chunk[index - 1]):
                return index
        return -1

    def take_on_idle(self) -> bytes:
        """What the inactivity timer sends: the data with any partial terminator, or nothing
        when no data is buffered (``inactivity_timer_handler`` checks the buffer only)."""
        if not self.data:
            return b""
        self.data += self.terminator[: self.partial]
        self.partial = 0
        return self.take()

    def take(self) -> bytes:
        data = bytes(self.data)
        self.data.clear()
        return data


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
        self.connections: set[LoopbackConnection] = set()
        self.pdn_active = True
        self.cgerep = 0
        self.data_mode: DataMode | None = None
        self.faults = ArmedFaults()
        #: A build from before sdk-nrf PR #7951: no OK on entering data mode, OK on leaving.
        self.legacy_datamode = False
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
        self._abort_all()

    def drop_sockets(self) -> None:
        """The modem library restarted (``modem_fault``): every socket is gone, the TCP
        connections are aborted, the poll settings are back at their defaults."""
        self._abort_all()
        self.reset_poll_settings()

    def _abort_all(self) -> None:
        for sock in list(self.sockets.values()):
            sock.detach()
        self.sockets.clear()
        for conn in list(self.connections):
            conn.detach()
            conn.abort()
        self.connections.clear()

    def reset_poll_settings(self) -> None:
        """Dialect hook: ``#XAPOLL`` (and auto-reception) back at the power-on defaults."""

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
        """Registered with CFUN=1 and the default PDN connection active."""
        fake = self.require_fake()
        return fake.state.cfun == 1 and fake.state.registered and self.pdn_active

    def resolve(self, host: str, family: int = 0) -> str | None:
        """The IPv4 address ``host`` resolves to on the fake network, None if nothing."""
        if is_ipv4(host):
            return host if family in (0, 1) else None
        if family == 2:
            return None
        return loopback.resolve(self.require_fake(), host)

    async def connect(self, sock: Socket, host: str, port: int) -> None:
        """Open the real TCP connection; plain ERROR when the modem's connect() would fail."""
        if sock.connected or sock.error or not 0 <= port <= 65535:
            raise CommandError(None)
        address = self.resolve(host, sock.family)
        if address is None or not self.network_up():
            raise CommandError(None)
        fake = self.require_fake()
        if self.faults.take_failed_open() or fake.scenario.broker_unreachable:
            raise CommandError(None)  # as connect() refused: the SLM/SM answer ERROR
        conn = self._connection(sock)
        sock.conn = conn
        address, port = await fake.route(address, port)
        if not await conn.connect(address, port, timeout=CONNECT_TIMEOUT):
            if sock.conn is conn:
                sock.conn = None
            raise CommandError(None)
        sock.connected = True
        sock._changed()

    def _connection(self, sock: Socket) -> LoopbackConnection:
        """The TCP bridge of ``sock``: TLS made here for a secure socket (``nrf91_tls``)."""
        if sock.sec_tag is None:
            return LoopbackConnection(sock)
        option = sock.options.get(TLS_HOSTNAME_OPTION)
        hostname = option if isinstance(option, str) else None
        context = tls_context(self.require_fake(), sock.sec_tag, sock.peer_verify, hostname)
        if context is None:  # nothing stored under the tag: the handshake cannot verify
            raise CommandError(None)
        return TlsLoopbackConnection(sock, context, hostname)

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
        return self.faults.take_lost_notification()

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
        if self.faults.take_failed_send():
            self.fail_data_mode(dm, EIO)
            return
        error = ENOTCONN if dm.sock is None else dm.sock.send_error()
        if error:
            self.fail_data_mode(dm, error)

    def _deliver(self, dm: DataMode, data: bytes) -> None:
        """Send ``data`` of the session to its peer (dropped once the session failed)."""
        if not data or dm.failed:
            return
        error = ENOTCONN if dm.sock is None else dm.sock.transmit(data)
        if error:
            self.fail_data_mode(dm, error)
        else:
            dm.sent += len(data)

    async def _read_to_terminator(self, dm: DataMode) -> None:
        """Terminator mode: match byte by byte, send on inactivity (see the module doc)."""
        fake = self.require_fake()
        matcher = TerminatorMatcher(TERMINATOR)
        limit = datamode_time_limit(fake.baud)
        timer: asyncio.TimerHandle | None = None
        first = True

        def on_idle() -> None:
            self._deliver(dm, matcher.take_on_idle())

        try:
            while True:
                # Every byte already received at once; one idle timer per chunk.
                chunk = await fake.read_some()
                if timer is not None:
                    timer.cancel()
                end = matcher.feed_chunk(chunk)
                if first and matcher.data:
                    first = False
                    self._first_flush(dm)
                if end >= 0:
                    fake.unread(chunk[end:])  # the next command line
                    self._deliver(dm, matcher.take())
                    return
                timer = fake.call_later(limit, on_idle)
        finally:
            if timer is not None:
                timer.cancel()

    async def run_data_mode(self, sock: Socket | None, *, data_len: int, flags: int) -> None:
        """Enter data mode (``OK``), take the payload, send it, then ``#XDATAMODE``.

        A legacy build (before sdk-nrf PR #7951) sends nothing on entering and answers the
        terminator with the command's ``OK``.
        """
        fake = self.require_fake()
        if not self.legacy_datamode:
            fake.respond_now(Response.ok())
        dm = DataMode(sock, data_len, flags)
        self.data_mode = dm
        fake.hold_urcs(True)
        reboot_after = self.faults.take_reboot_in_send()
        if reboot_after is not None:
            if reboot_after > 0:
                await fake.read_raw(reboot_after)
            fake.after_output(fake.reboot)
            await asyncio.Event().wait()  # the reboot cancels this handler
        if data_len > 0:
            first = await fake.read_raw(1)
            self._first_flush(dm)
            payload = first + (await fake.read_raw(data_len - 1) if data_len > 1 else b"")
            self._deliver(dm, payload)
        else:
            await self._read_to_terminator(dm)
        self.data_mode = None
        if self.legacy_datamode:
            fake.respond_now(Response.ok())
        else:
            fake.write_raw(frame_line(f"#XDATAMODE: {self.datamode_status(dm)}"))
        fake.hold_urcs(False)
        self.on_data_mode_exit(dm)
        self.kick()


def sockets_of(fake: FakeModem) -> NrfSockets:
    """The nRF91 socket state of ``fake`` (an nrf91-slm or nrf91-sm fake), bound to it."""
    return fake.dialect_state_as(NrfSockets).bind(fake)


# --------------------------------------------------------------------------------------------
# Faults on demand


class NrfFaults(SocketFaults):
    """How the nRF91 (SLM and SM) reports the network's faults: ``+CGEV`` lines when AT+CGEREP=1,
    ``+CEREG``, and failed sockets seen through poll (``#XAPOLL``), recv and send."""

    def drop_pdp(self, fake: FakeModem) -> None:
        """The network releases the initial PDN connection (cid 0), the modem's only one.

        On LTE-M (AcT 7) an attached modem keeps at least one PDN connection (TS 27.007
        §10.1.10: EPS refuses to deactivate the last one; TS 24.301: the network releases it
        by detaching), so the network detaches the modem, which re-attaches on its own: this
        is ``network_detach`` with the
        re-attach after ``registration_delay``: ``+CGEV: NW DETACH``, +CEREG stat 2, sockets
        fail, then +CEREG stat 1 and ``+CGEV: ME PDN ACT 0``; registration does not stay.
        On NB-IoT (AcT 9, attach without PDN) it is ``+CGEV: NW PDN DEACT 0`` (with
        AT+CGEREP=1): registration stays, every connected socket fails with ENETDOWN
        (POLLERR), new connects and name lookups fail until the next attach (CFUN=1 after 0
        or 4) activates the PDN again."""
        if fake.state.act != 9:
            self.network_detach(fake, initiator="NW", reattach_after=fake.registration_delay)
            return
        state = sockets_of(fake)
        state.pdn_active = False
        if state.cgerep:
            fake.send_urc("+CGEV: NW PDN DEACT 0")
        state.fail_all(ENETDOWN)

    def network_detach(
        self, fake: FakeModem, *, initiator: Initiator, reattach_after: float | None
    ) -> None:
        """``+CGEV: NW DETACH`` (or ``ME DETACH``) if AT+CGEREP=1, +CEREG stat 2 (NW: the modem
        searches again) or 0 (ME), every connected socket fails (ENETDOWN: POLLERR, sends and
        receives answer ERROR once the buffered data is read). With ``reattach_after`` the
        modem registers again after that many seconds (+CEREG stat 1, ``+CGEV: ME PDN ACT 0``);
        new connections work again, failed sockets stay failed."""
        state = sockets_of(fake)
        if state.cgerep:
            fake.send_urc(f"+CGEV: {initiator} DETACH")
        fake.set_registration(2 if initiator == "NW" else 0)
        state.fail_all(ENETDOWN)
        if reattach_after is not None:

            def reattach() -> None:
                state.pdn_active = True
                fake.set_registration(1)
                if state.cgerep and not state.closed:
                    fake.send_urc("+CGEV: ME PDN ACT 0")

            fake.call_later(reattach_after, reattach)

    def peer_close(self, fake: FakeModem, link: int | None) -> None:
        """The fake closes its side (the test's server sees EOF) and the modem sees the peer's
        FIN: POLLIN|POLLHUP (``#XAPOLL: <h>,17`` on the SLM), recv returns 0, sends fail."""
        state = sockets_of(fake)
        if link is None:
            socks = [
                s for s in state.ordered() if s.connected and not s.peer_closed and not s.error
            ]
            if not socks:
                raise LookupError("no connected socket")
        elif link in state.sockets:
            socks = [state.sockets[link]]
        else:
            raise LookupError(f"no socket {link}")
        for sock in socks:
            if sock.conn is not None:
                sock.conn.close()
            sock.on_eof()

    def armed(self, fake: FakeModem) -> ArmedFaults:
        """The socket state's faults. Refused sends: a string/hex ``AT#XSEND`` answers its
        ``#XSEND`` line with 0 bytes and ``ERROR``; a data-mode send makes the modem send
        ``+++``, drop input until the host's ``+++`` (or ``<data_len>`` bytes) and report
        ``#XDATAMODE: <negative>``. Failed opens: ``AT#XCONNECT`` answers a plain ``ERROR``
        (the socket stays open, unconnected). Lost notifications: no ``#XAPOLL`` POLLIN or
        Serial Modem push; the data stays for ``AT#XRECV``. A reboot in a send comes after
        data mode's ``OK``."""
        return sockets_of(fake).faults


#: The fault model of both nRF91 dialects.
NRF_FAULTS: Final = NrfFaults()


def peer_close(fake: FakeModem, handle: int) -> None:
    """``fake.peer_close(handle)`` (see ``NrfFaults.peer_close``)."""
    fake.peer_close(handle)


def network_detach(
    fake: FakeModem,
    *,
    initiator: Initiator = "NW",
    reattach_after: float | None = None,
) -> None:
    """``fake.network_detach(...)`` (see ``NrfFaults.network_detach``)."""
    fake.network_detach(initiator=initiator, reattach_after=reattach_after)


def fail_next_send(fake: FakeModem, count: int = 1) -> None:
    """``fake.fail_next_send(count)`` (see ``NrfFaults.fail_next_send``)."""
    fake.fail_next_send(count)


def lose_next_notification(fake: FakeModem, count: int = 1) -> None:
    """``fake.lose_next_notification(count)`` (see ``NrfFaults.lose_next_notification``)."""
    fake.lose_next_notification(count)


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
    sockets_of(fake).faults.reboot_in_send = after_bytes


def modem_fault(fake: FakeModem, reason: int = 0x2, program_counter: int = 0x0001_2345) -> None:
    """The modem core faults and the application restarts the modem library without a reboot
    (``CONFIG_NRF_MODEM_LIB_ON_FAULT_APPLICATION_SPECIFIC``, the applications' default):
    ``#XMODEM: FAULT,0x<reason>,0x<pc>``, ``#XMODEM: SHUTDOWN,0``, ``#XMODEM: INIT,0`` and no
    ``Ready``. Every socket is gone (its TCP connection aborted), the modem is in CFUN=0 and not
    registered (no +CEREG notification: the level is back at 0), AT+CGEREP is 0 and
    ``#XAPOLL`` is off. The PDP context settings stay."""
    state = sockets_of(fake)
    fake.send_urc(f"#XMODEM: FAULT,0x{reason:x},0x{program_counter:x}")
    state.drop_sockets()
    state.cgerep = 0
    state.pdn_active = True
    fake.state.cereg_n = 0
    fake.state.cfun = 0
    fake.stop_registration()
    fake.send_urc("#XMODEM: SHUTDOWN,0")
    fake.send_urc("#XMODEM: INIT,0")


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
    network or its DNS server does not answer (the ``dns_fail`` scenario; that code is the
    fake's choice: a temporary failure in name resolution).
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
    if not is_ipv4(host) and (not state.network_up() or fake.scenario.dns_fail):
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
    was_cfun = fake.state.cfun
    was_attached = was_cfun == 1 and fake.state.registered
    result = GENERIC_COMMANDS["+CFUN"](fake, cmd)
    if was_cfun != 1 and fake.state.cfun == 1:
        state.pdn_active = True  # attaching activates the default PDN again
    if was_attached and fake.state.cfun != 1:

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
