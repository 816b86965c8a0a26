"""What every modem family does the same way, and the contract each dialect fills in.

Theory of operation
-------------------
A :class:`Dialect` wraps an open :class:`~atbridge.modem.Modem` and knows one
modem family's socket commands. The lifecycle uses the same surface for every
family:

- :meth:`Dialect.initialise` — family settings (receive mode, multiplexing...).
- :meth:`Dialect.check_sim` — ``AT+CPIN?`` before configuring: no SIM, a PIN or PUK
  the SIM waits for, or a failing SIM end the bring-up at once with what is wrong; a SIM
  the radio-off state keeps unpowered (the nRF91 at ``AT+CFUN=0``, which answers
  ``+CME ERROR: 13`` then) is judged again by the attach right after ``AT+CFUN=1``.
  Sources: 3GPP TS 27.007 §8.3 (``+CPIN`` codes) and §9.2.1 (CME 10-18); the nRF91
  AT Commands Reference (``+CFUN``: mode 0 deactivates the UICC, 4 and 1 power it;
  ``+CPIN``), SIMCom AT manuals (``+CPIN: NOT INSERTED``/``NOT READY``).
- :meth:`Dialect.configure_pdp` — the APN of the default PDP context.
- :meth:`Dialect.attach` — radio on and wait for registration. Generic here, on
  every registration command the family has (:attr:`Dialect.registration_sources`:
  ``+CEREG`` for LTE, ``+CGREG`` for GPRS/EDGE/UMTS packet service, ``+CREG`` for
  circuit-switched GSM): notifications on for each (``AT+CEREG=5`` falling back to
  2, ``AT+CGREG=2``/``AT+CREG=2`` falling back to 1; a source the modem refuses
  is dropped), ``AT+CFUN=1``, then the notifications, with a slow read of each
  source as a fallback for a lost one. Registered on *any* source is registered.
  Each source's last report is kept in :attr:`Dialect.registrations`; the one
  that counts (the first registered source, else the first that reported, with
  its reject cause) is :attr:`Dialect.registration`, reported to ``progress``.
  A reboot while waiting ends the wait with
  :class:`~atbridge.errors.ModemRebooted`. Sources: 3GPP TS 27.007 §7.2
  (``+CREG``), §10.1.20 (``+CGREG``), §10.1.22 (``+CEREG``); the order a family
  asks them in follows TinyGSM (``TinyGsmClientSIM70xx.h``: CEREG then CGREG;
  ``TinyGsmClientSIM800.h``: CREG; ``TinyGsmClientSIM7600.h``: CGREG).
- :meth:`Dialect.close_leftover_sockets` — close every socket an earlier process
  (or the run before a link drop) left open on the modem; the lifecycle calls it
  after binding and before every open. Each family overrides it.
- :meth:`Dialect.activate_data` — bring up the data bearer where the family
  needs a command for it (``AT+CNACT``, ``AT+NETOPEN``, ``AT+CIICR``); returns a
  :class:`DataBearer` (the IP address when the modem said it).
- :meth:`Dialect.resolve` — DNS through the modem (:meth:`Dialect.resolve_addresses`:
  every address it gave).
- :meth:`Dialect.open_socket` — a TCP (or TLS) connection through the modem, as
  a :class:`ModemSocket` byte stream.

A :class:`ModemSocket` splits what it sends into the family's maximum chunk
(:attr:`Dialect.max_send`) and hands each chunk to the dialect's
:meth:`Dialect._send`; received data is pushed in by the dialect
(:meth:`ModemSocket.data_received`) from its notification handler and read
with :meth:`ModemSocket.receive`. The end of a socket is always a
:class:`SocketClosed` error with a :class:`CloseReason`: the peer closed, the
network dropped the PDP context, the modem rebooted, the serial link was lost,
or we closed it. Reboot and link loss are wired here for every dialect;
dialects report peer close and network loss from their own notifications. A
restart of the modem core that prints no boot banner (the nRF91's
``#XMODEM: FAULT``) is reported with :meth:`Dialect.modem_reset`: the AT channel
then treats it exactly as a reboot (:meth:`~atbridge.modem.Modem.report_restart`).

A family's extra boot banners (:attr:`Dialect.boot_banners`, ``*ATREADY: 1`` on
the A76xx) are added to the channel's own set when the dialect is bound. The
line ending is the user's or the one the channel detected
(:attr:`~atbridge.modem.Modem.line_ending_origin`); the dialect's
:attr:`Dialect.line_ending` is only used on a channel opened without either.

Received data is read by one :class:`~atbridge.dialects.receiver.Receiver` task
per socket (:attr:`Dialect.receivers`): a family's notification handler calls
:meth:`Dialect.data_waiting` or :meth:`Dialect.connection_ended`, and supplies the
``drain`` that reads. :meth:`Dialect.aclose` stops them and waits.

Dialects are data plus small functions (DESIGN.md): one module per family with
a subclass that sets the class attributes (including the manufacturer and model
strings that identify it, :attr:`Dialect.manufacturers`, :attr:`Dialect.models`,
:attr:`Dialect.version_command`) and implements the ``_``-prefixed socket
primitives. Adding a family means one module here and one fake-modem script in
``tests/fakes/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from atbridge.at_syntax import format_command
from atbridge.decode import REGISTRATION_SOURCES, Registration, parse_registration
from atbridge.dialects.receiver import Drain, Receiver, Receivers
from atbridge.errors import (
    AtTimeout,
    CloseReason,
    ConfigurationError,
    LinkLost,
    MissingInformation,
    ModemError,
    ModemRebooted,
    SimNotReady,
    SocketClosed,
    StepTimeout,
)
from atbridge.modem import Modem, Urc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who answered: what ``AT+CGMI``/``AT+CGMM``/``AT+CGMR`` and the family's version say."""

    manufacturer: str
    model: str
    revision: str
    dialect: str
    version: str = ""

    def describe(self) -> str:
        version = f", {self.version}" if self.version else ""
        return f"{self.manufacturer} {self.model} ({self.revision}{version}) -> {self.dialect}"


@dataclass(frozen=True, slots=True)
class DataBearer:
    """What bringing up the data bearer learnt (:meth:`Dialect.activate_data`).

    ``address`` is the IP address when the modem's answers gave it (no extra command is
    sent to learn it); ``already_active`` says that the bearer was up before and no
    activation command was sent.
    """

    address: str | None = None
    already_active: bool = False

    def describe(self) -> str:
        state = "already active" if self.already_active else "active"
        return f"{state}, address {self.address}" if self.address else state


class ModemSocket:
    """A TCP connection through the modem, seen as a byte stream.

    ``send`` returns when the modem has accepted every byte; ``receive`` returns
    the bytes received so far (waiting for at least one), and raises
    :class:`SocketClosed` once the socket is closed and everything received
    before that has been read: nothing received is lost.
    """

    def __init__(self, dialect: Dialect, handle: int, host: str, port: int) -> None:
        self.dialect = dialect
        self.handle = handle
        self.host = host
        self.port = port
        self.bytes_sent = 0
        self.bytes_received = 0
        self._buffer = bytearray()
        self._send_lock = asyncio.Lock()
        self._sends: set[asyncio.Task[None]] = set()
        self._readable = asyncio.Event()
        self._closed: SocketClosed | None = None
        self._close_listeners: list[Callable[[SocketClosed], None]] = []

    def __repr__(self) -> str:
        state = f"closed: {self._closed.reason.name}" if self._closed else "open"
        return f"<ModemSocket {self.dialect.name}#{self.handle} {self.host}:{self.port} {state}>"

    @property
    def closed(self) -> SocketClosed | None:
        """Why the socket closed, or ``None`` while it is open."""
        return self._closed

    async def send(self, data: bytes) -> None:
        """Send ``data`` (any bytes, any length) in the family's largest chunks.

        A send is many steps on the wire (command, prompt or data mode, payload,
        result, per chunk). If the caller is cancelled halfway, the send still
        finishes: stopping early would leave the modem waiting for payload bytes,
        stuck in data mode, or the peer holding half a message.
        """
        if self._closed is not None:
            raise self._closed
        # The send runs as its own task; the caller waits on a future the task resolves
        # as its last step (a shield without the extra hop): cancelling the caller
        # cancels only that future, never the send.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(self._send_all(data, done))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        await done

    async def send_unshielded(self, data: bytes) -> None:
        """:meth:`send` in the calling task, without a task of its own.

        For a caller that is itself a task nobody cancels while it sends (a session's
        flush task, which its own callers await through a shield): the send task costs
        two turns of the event loop per send (its start, and waking the caller), this
        none. A cancellation that does reach it once the first chunk has gone to the
        modem leaves part of a message on the stream: the socket is then closed
        (``CloseReason.ERROR``) before anything can follow on it, and the cancellation
        goes on.
        """
        if self._closed is not None:
            raise self._closed
        started: list[bool] = []
        try:
            await self._send_chunks(data, started)
        except asyncio.CancelledError:
            if started:
                self.mark_closed(CloseReason.ERROR, "a send was cancelled halfway")
            raise

    async def _send_chunks(self, data: bytes, started: list[bool]) -> None:
        """Every chunk of ``data``, one after the other; ``started`` gets an item once the
        first chunk goes to the dialect."""
        # One send at a time: chunks of two sends must never interleave on the stream.
        async with self._send_lock:
            step = self.dialect.max_send
            if len(data) <= step and type(data) is bytes:
                chunks: Iterable[bytes] = (data,)  # the common case: one chunk, no copy
            else:
                view = memoryview(data)
                chunks = (bytes(view[i : i + step]) for i in range(0, len(view), step))
            for chunk in chunks:
                if self._closed is not None:
                    raise self._closed
                if not started:
                    started.append(True)
                await self.dialect._send(self, chunk)
                self.bytes_sent += len(chunk)

    async def _send_all(self, data: bytes, done: asyncio.Future[None]) -> None:
        try:
            await self._send_chunks(data, [])
        except asyncio.CancelledError:
            done.cancel()
            raise
        except BaseException as exc:
            # A caller that was cancelled no longer waits: the error is dropped, as
            # asyncio.shield drops it.
            if not done.done():
                done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not done.done():
                done.set_result(None)

    async def receive(self, max_bytes: int = 1 << 20) -> bytes:
        """Wait for received bytes and return up to ``max_bytes`` of them."""
        while not self._buffer:
            if self._closed is not None:
                raise self._closed
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        return data

    @property
    def pending(self) -> int:
        """Bytes received and not yet read."""
        return len(self._buffer)

    async def close(self) -> None:
        """Close the socket on the modem (if it is still open there)."""
        if self._closed is not None:
            return
        try:
            await self.dialect._close(self)
        finally:
            self.mark_closed(CloseReason.LOCAL)

    def on_close(self, callback: Callable[[SocketClosed], None]) -> Callable[[], None]:
        """Call ``callback(error)`` once when the socket closes, whatever the reason."""
        self._close_listeners.append(callback)
        return lambda: self._close_listeners.remove(callback)

    # -- for dialects ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """A dialect hands over bytes it read from the modem."""
        if data:
            self._buffer += data
            self.bytes_received += len(data)
            self._readable.set()

    def mark_closed(self, reason: CloseReason, detail: str = "") -> None:
        """A dialect (or the base) reports that the socket is gone."""
        if self._closed is not None:
            return
        self._closed = SocketClosed(reason, detail)
        self._readable.set()
        self.dialect._forget(self)
        for listener in list(self._close_listeners):
            try:
                listener(self._closed)
            except Exception:
                log.exception("socket close listener %r failed", listener)


class Dialect:
    """The socket commands and quirks of one modem family. Subclass per family."""

    #: Short name used on the command line (``--dialect nrf91-sm``).
    name: ClassVar[str] = ""
    #: What it is, with the firmware the syntax follows.
    description: ClassVar[str] = ""
    #: What ends a command line for this family.
    line_ending: ClassVar[bytes] = b"\r\n"
    #: The largest payload one send command takes.
    max_send: ClassVar[int] = 1024
    #: The PDP context id the family uses for its default bearer.
    default_cid: ClassVar[int] = 1
    #: The command that restarts the modem (it answers, then prints its boot banner).
    reset_command: ClassVar[str] = "AT+CFUN=1,1"
    #: Lines that mean the network took the data connection away.
    network_lost_urcs: ClassVar[tuple[str, ...]] = ("+CGEV: NW DETACH", "+CGEV: ME DETACH")
    #: The registration commands to ask and enable notifications for, in order
    #: (``+CEREG``, ``+CGREG``, ``+CREG``): registered on any of them is registered.
    #: A family may set it per identified model on the instance when it is bound.
    registration_sources: tuple[str, ...] = ("+CEREG",)
    #: Lines this family prints when it (re)starts, besides the channel's own set.
    boot_banners: ClassVar[frozenset[str]] = frozenset()

    #: What :meth:`check_sim` last found (``None``: not checked since binding).
    sim_state: str | None = None
    #: Who answered when this dialect was bound (``open_dialect`` sets it before
    #: :meth:`initialise`), so a family uses what identification asked (the model, the
    #: version command's answer) instead of asking again; ``None``: not known.
    identity: Identity | None = None

    # -- field diagnostics (read-only queries, asked through atbridge.survey) -------------
    #: What ``diag`` asks, by layer: ``"device"`` (identity, SIM, supply), ``"radio"``
    #: (functional mode, RAT, band, signal, serving cell) and ``"network"`` (operator,
    #: PSM/eDRX, PDP contexts, addresses, DNS). Registration is read on
    #: :attr:`registration_sources` besides these. Read-only: none changes the modem.
    #: The plain 3GPP TS 27.007 set; each family replaces it with what it answers.
    diagnostic_queries: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {
            "device": ("AT+CGMI", "AT+CGMM", "AT+CGMR", "AT+CGSN", "AT+CIMI", "AT+CPIN?"),
            "radio": ("AT+CFUN?", "AT+CESQ", "AT+CSQ"),
            "network": ("AT+COPS?", "AT+CPSMS?", "AT+CEDRXRDP", "AT+CGDCONT?", "AT+CGPADDR"),
        }
    )
    #: What ``watch`` asks every sample (signal and serving cell), besides registration.
    sample_queries: ClassVar[tuple[str, ...]] = ("AT+CESQ", "AT+COPS?")
    #: Commands that turn on the notifications ``watch`` records (they change the
    #: modem's reporting settings; ``watch`` says so). Registration reports are
    #: turned on the way :meth:`attach` does it.
    watch_notifications: ClassVar[tuple[str, ...]] = ("AT+CSCON=1",)

    # -- identification (data walked by atbridge.dialects.identify) ---------------------
    #: Substrings of the ``AT+CGMI`` answer (manufacturer) that name this family.
    manufacturers: ClassVar[tuple[str, ...]] = ()
    #: Substrings of the ``AT+CGMM`` answer (model) that name this family.
    models: ClassVar[tuple[str, ...]] = ()
    #: A command only this family answers, asked when the manufacturer or model match
    #: (families of the same hardware with different firmware: ``AT#XSLMVER``). Its
    #: answer, without the command's own prefix, is the :attr:`Identity.version`.
    version_command: ClassVar[str | None] = None
    #: What to try when the hardware matches but no family's version command answers.
    version_hint: ClassVar[str] = ""

    @classmethod
    def identifies(cls, manufacturer: str, model: str) -> bool:
        """Whether the ``AT+CGMI`` / ``AT+CGMM`` answers name this family (case-insensitive)."""
        maker, product = manufacturer.casefold(), model.casefold()
        return any(name.casefold() in product for name in cls.models) or any(
            name.casefold() in maker for name in cls.manufacturers
        )

    def __init__(self, modem: Modem) -> None:
        self.modem = modem
        self.sockets: dict[int, ModemSocket] = {}
        #: Nothing can be open on the modem: set once a listing closed everything (or a
        #: family's bearer was freshly set up), cleared as this object opens a socket.
        #: Meanwhile :meth:`close_leftover_sockets` asks nothing (issue 16).
        self._none_open = False
        #: The receive task of each open socket (:mod:`atbridge.dialects.receiver`).
        self.receivers = Receivers()
        #: The registration that counts (see the module docstring).
        self.registration: Registration | None = None
        #: The last report of each registration source (``"+CGREG"`` -> its Registration).
        self.registrations: dict[str, Registration] = {}
        self._registration_listeners: list[Callable[[Registration], None]] = []
        self._network_listeners: list[Callable[[str], None]] = []
        self._unhook = [
            modem.on_reboot(self._on_reboot),
            modem.on_link_lost(self._on_link_lost),
        ]
        for source in REGISTRATION_SOURCES:
            self._unhook.append(modem.subscribe(f"{source}:", self._on_registration_urc))
        for prefix in self.network_lost_urcs:
            self._unhook.append(modem.subscribe(prefix, self._on_network_lost_urc))
        if modem.line_ending_origin == "default":
            modem.line_ending = self.line_ending
        modem.add_boot_banners(self.boot_banners)
        self.install()

    def detach_from_modem(self) -> None:
        """Stop listening to the modem (the dialect object is done); its escape hook goes too."""
        for unhook in self._unhook:
            unhook()
        self._unhook.clear()
        if getattr(self.modem.escape_hook, "__self__", None) is self:
            self.modem.escape_hook = None
        self.receivers.stop_all()

    async def aclose(self) -> None:
        """Stop listening to the modem and wait until the socket receivers have stopped."""
        tasks = self.receivers.stop_all()
        self.detach_from_modem()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- to fill in per family ---------------------------------------------------------

    def install(self) -> None:
        """Register the family's URCs, finals and binary block rules on the modem."""

    async def initialise(self) -> None:
        """Family settings after the AT channel is in sync (receive mode, multiplexing...)."""

    async def activate_data(self, timeout: float = 60.0) -> DataBearer:
        """Bring up the data bearer where the family needs a command for it.

        The nRF91 needs none (its default bearer comes up with the attach): nothing learnt.
        """
        return DataBearer()

    async def resolve(self, host: str, timeout: float = 30.0) -> str:
        """Look ``host`` up through the modem's DNS; return the first address."""
        return (await self.resolve_addresses(host, timeout))[0]

    async def resolve_addresses(self, host: str, timeout: float = 30.0) -> tuple[str, ...]:
        """Look ``host`` up through the modem's DNS; every address it gave (at least one)."""
        raise NotImplementedError

    async def open_socket(
        self, host: str, port: int, *, tls: bool = False, timeout: float = 60.0
    ) -> ModemSocket:
        """Open a TCP (or TLS) connection to ``host:port`` through the modem."""
        raise NotImplementedError

    async def _send(self, sock: ModemSocket, chunk: bytes) -> None:
        """Send one chunk of at most :attr:`max_send` bytes; return when the modem took it."""
        raise NotImplementedError

    async def _close(self, sock: ModemSocket) -> None:
        """Close the socket on the modem."""
        raise NotImplementedError

    async def close_leftover_sockets(self) -> int:
        """Close every socket left open on the modem; return how many were closed.

        Sockets outlive the host process: a killed atbridge, or a serial link that
        dropped, leaves them open on the modem, which then refuses new ones (the
        nRF91 allows 8; SIMCom refuses to reopen an open link or cid). The lifecycle
        calls it after binding the dialect and before every open. Sockets this dialect
        object opened itself are closed too (they end with ``CloseReason.LOCAL``).

        Nothing is asked while nothing can be open: once a listing closed everything,
        only this object opens sockets on the modem (it holds the port), so until it
        opens one the answer is known; the listing before the first open would only
        repeat the probe's. Each family lists and closes in :meth:`_close_listed`.
        """
        if self._none_open:
            return 0
        closed, clean = await self._close_listed()
        if clean:
            self._none_open = True
        return closed

    async def _close_listed(self) -> tuple[int, bool]:
        """The family's listing, each socket in it closed: how many, and whether every one
        was (nothing left open, nothing being opened). The base knows no listing command:
        it closes nothing and knows nothing."""
        return 0, False

    # -- generic 3GPP behaviour ----------------------------------------------------------

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None:
        """Set the APN of the default PDP context (``None``: leave the modem's setting)."""
        if apn is None:
            return
        await self.modem.command(
            format_command("AT+CGDCONT", self.default_cid, pdp_type, apn), timeout=10
        )

    async def check_sim(self) -> str:
        """Make sure the SIM can serve an attach; what it found (:data:`SIM_READY`...).

        Asks ``AT+CPIN?`` (TS 27.007 §8.3). No SIM, a SIM that waits for its PIN or
        PUK (or another lock), and a failing SIM raise
        :class:`~atbridge.errors.ModemError` at once, saying which
        (:func:`sim_problem`): waiting out the attach would only end in a timeout that
        blames the antenna. A SIM that cannot be read because the radio is off (the
        nRF91 powers it down at ``AT+CFUN=0``: ``+CME ERROR: 13`` then means "not
        powered", not "SIM failure") is :data:`SIM_NOT_POWERED`, judged again by
        :meth:`attach` once the radio is on. A SIM still starting (``SIM busy``,
        ``NOT READY``) is :data:`SIM_BUSY`: the attach goes on.
        """
        try:
            response = await self.modem.command("AT+CPIN?", timeout=10)
        except ModemError as error:
            problem = sim_problem(error)
            if problem is None:
                self.sim_state = SIM_BUSY
                return self.sim_state
            if problem[0] == "SIM failure" and await self._radio_off():
                self.sim_state = SIM_NOT_POWERED
                return self.sim_state
            raise _sim_error(error, *problem) from None
        code = " ".join(response.value("+CPIN:").strip('"').split()).upper()
        if code == "READY":
            self.sim_state = SIM_READY
            return self.sim_state
        if code == "NOT READY":
            self.sim_state = SIM_BUSY
            return self.sim_state
        problem = _PIN_PROBLEMS.get(code) or (
            f"SIM locked ({code})",
            "unlock it for this device (the operator or the seller has the code), or use "
            "another SIM",
        )
        raise _sim_error(ModemError("AT+CPIN?", f"+CPIN: {code}"), *problem)

    async def _radio_off(self) -> bool:
        """Whether ``AT+CFUN?`` says 0 (minimum functionality: the SIM is not powered)."""
        try:
            response = await self.modem.command("AT+CFUN?", timeout=10)
            mode = response.value("+CFUN:").split(",")[0].strip()
        except (ModemError, MissingInformation):
            return False
        return mode == "0"

    async def attach(
        self,
        timeout: float = 600.0,
        *,
        poll_interval: float = 10.0,
        progress: Callable[[Registration], None] | None = None,
    ) -> Registration:
        """Radio on and wait until registered (home or roaming) on any registration source.

        Notifications drive it; a read of every source each ``poll_interval``
        seconds catches a lost one. Raises :class:`~atbridge.errors.StepTimeout`
        with the last state (and reject cause) when ``timeout`` passes first, and
        :class:`~atbridge.errors.ModemRebooted` when the modem restarts meanwhile.
        """
        loop = asyncio.get_running_loop()
        rebooted: asyncio.Future[str] = loop.create_future()

        def on_reboot(banner: str) -> None:
            if not rebooted.done():
                rebooted.set_result(banner)

        registered = asyncio.Event()

        def on_report(registration: Registration) -> None:
            if registration.registered:
                registered.set()

        unhooks = [self.modem.on_reboot(on_reboot), self.on_registration(on_report)]
        if progress is not None:
            unhooks.append(self.on_registration(progress))
        try:
            await self._enable_registration_reports()
            await self.modem.command("AT+CFUN=1", timeout=30)
            if self.sim_state == SIM_NOT_POWERED:
                # The configure step could not read it with the radio off: now it can.
                await self.check_sim()
            deadline = time.monotonic() + timeout
            while True:
                registered.clear()
                current = await self.read_registration()
                if current is not None and current.registered:
                    return current
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = self.registration.describe() if self.registration else "unknown"
                    raise StepTimeout(
                        f"not registered after {timeout:g} s; last state: {last}",
                        hint="check the antenna, the SIM and its data plan, the bands and RAT "
                        "(LTE-M / NB-IoT / GPRS) the network uses; a first scan can take minutes",
                    )
                waiter = loop.create_task(registered.wait())
                try:
                    await asyncio.wait(
                        (waiter, rebooted),
                        timeout=min(poll_interval, remaining),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                if rebooted.done():
                    raise ModemRebooted(rebooted.result(), command="waiting for registration")
        finally:
            for unhook in unhooks:
                unhook()

    async def _enable_registration_reports(self) -> None:
        """Notifications on for each source; a source the modem refuses is dropped."""
        supported: list[str] = []
        for source in self.registration_sources:
            levels = (5, 2) if source == "+CEREG" else (2, 1)
            for level in levels:
                try:
                    await self.modem.command(f"AT{source}={level}")
                except ModemError:
                    continue
                supported.append(source)
                break
            else:
                log.info("%s: the modem refuses AT%s: not asked again", self.name, source)
        if supported:
            # Instance data: a model without a command does not keep being asked for it.
            self.registration_sources = tuple(supported)

    async def read_registration(self) -> Registration | None:
        """Ask every registration source (``AT+CEREG?``...) and return the one that counts.

        A source the modem answers with an error is skipped; ``None`` when none answered.
        """
        for source in self.registration_sources:
            try:
                response = await self.modem.command(f"AT{source}?")
            except ModemError:
                continue
            values = response.values(f"{source}:")
            parsed = parse_registration(values[0], is_read=True, source=source) if values else None
            if parsed is not None:
                self.registrations[source] = parsed
            if parsed is not None and parsed.registered:
                break  # registered is registered: the next sources need not be asked
        return self._report_registration()

    def _counting(self) -> Iterator[Registration]:
        """Each source's last report, in :attr:`registration_sources` order, then the rest."""
        order = [*self.registration_sources]
        order += [source for source in self.registrations if source not in order]
        for source in order:
            found = self.registrations.get(source)
            if found is not None:
                yield found

    def _report_registration(self) -> Registration | None:
        """Pick the registration that counts, keep it and tell the listeners."""
        reports = list(self._counting())
        if not reports:
            return None
        chosen = next((r for r in reports if r.registered), reports[0])
        self._set_registration(chosen)
        return chosen

    def modem_reset(self, detail: str) -> None:
        """The modem core restarted under the application without a boot banner.

        A family calls it from its notifications (the nRF91 ``#XMODEM: FAULT``):
        every socket ends with ``CloseReason.REBOOT``, the command in flight fails
        with :class:`~atbridge.errors.ModemRebooted` (``detail`` names what the
        modem said), and the lifecycle recovers as from a reboot: the next command
        re-runs the channel's session setup, the probe re-arms every notification,
        the attach and the sockets are done again.
        """
        self.modem.report_restart(detail)

    async def restart(self, timeout: float = 60.0) -> None:
        """Restart the modem and wait for its boot banner (the last resort of recovery).

        A modem on USB re-enumerates with its reset: the port goes away instead of a
        banner coming. That is :class:`~atbridge.errors.LinkLost`, at once, so the
        lifecycle reopens the port by the name the user gave until it is back.
        """
        with self._awaiting_boot() as booted:
            await self._send_reset(booted)
            async with asyncio.timeout(timeout):
                await booted

    @contextlib.contextmanager
    def _awaiting_boot(self) -> Iterator[asyncio.Future[str]]:
        """A future for a restart being waited for: the boot banner, or the link lost.

        A modem on USB re-enumerates with its reset, so the port going away ends the
        wait with :class:`~atbridge.errors.LinkLost` instead of a banner. Every family's
        :meth:`restart` waits through this one future.
        """
        booted: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_boot(banner: str) -> None:
            if not booted.done():
                booted.set_result(banner)

        unhooks = [
            self.modem.on_reboot(on_boot),
            self.modem.on_link_lost(lambda reason: self._lost_with_reset(booted, reason)),
        ]
        try:
            yield booted
        finally:
            for unhook in unhooks:
                unhook()
            if booted.done() and not booted.cancelled():
                booted.exception()  # retrieved: a loss after the wait is raised by the next use

    def _lost_with_reset(self, booted: asyncio.Future[str], reason: str) -> None:
        if not booted.done():
            booted.set_exception(
                LinkLost(
                    f"the link to {self.modem.port} was lost after the reset ({reason})",
                    hint="a USB modem re-enumerates on reset: it is reopened by the same "
                    "name (use /dev/serial/by-id/...) once it is back",
                )
            )

    async def _send_reset(self, booted: asyncio.Future[str]) -> None:
        """Send :attr:`reset_command`; a port it takes away ends ``booted`` with LinkLost."""
        with contextlib.suppress(ModemError, AtTimeout, LinkLost):
            await self.modem.command(self.reset_command, timeout=10)
        if not self.modem.is_open:
            self._lost_with_reset(booted, "the port is closed")

    async def detach(self) -> None:
        """Radio off, SIM on (``AT+CFUN=4``)."""
        await self.modem.command("AT+CFUN=4", timeout=30)

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]:
        """Call ``callback`` with every registration change (notification or read)."""
        self._registration_listeners.append(callback)
        return lambda: self._registration_listeners.remove(callback)

    def on_network_lost(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(line)`` when the network drops the data connection."""
        self._network_listeners.append(callback)
        return lambda: self._network_listeners.remove(callback)

    # -- helpers for families --------------------------------------------------------------

    def _adopt(self, sock: ModemSocket) -> ModemSocket:
        self.sockets[sock.handle] = sock
        return sock

    def _forget(self, sock: ModemSocket) -> None:
        if self.sockets.get(sock.handle) is sock:
            del self.sockets[sock.handle]
        self.receivers.forget(sock)

    def _receiver(
        self,
        sock: ModemSocket,
        drain: Drain,
        *,
        poll_interval: Callable[[], float],
        check_at_start: bool = False,
    ) -> Receiver:
        """A :class:`Receiver` for ``sock``, known to notifications at once (start it later)."""
        receiver = Receiver(sock, drain, poll_interval=poll_interval, check_at_start=check_at_start)
        return self.receivers.add(receiver)

    def data_waiting(self, handle: int) -> None:
        """The modem says data is waiting on ``handle``: wake its receiver."""
        receiver = self.receivers.get(handle)
        if receiver is not None:
            receiver.wake()

    def connection_ended(self, handle: int, reason: CloseReason, detail: str) -> None:
        """The modem says the connection on ``handle`` ended; close after reading what is left."""
        sock = self.sockets.get(handle)
        if sock is None:
            return
        receiver = self.receivers.get(handle)
        if receiver is None:
            sock.mark_closed(reason, detail)
        else:
            receiver.end(reason, detail)

    def _close_all(self, reason: CloseReason, detail: str = "") -> None:
        for sock in list(self.sockets.values()):
            sock.mark_closed(reason, detail)

    def network_lost(self, detail: str) -> None:
        """Report that the data connection is gone: every socket closes with NETWORK."""
        self._close_all(CloseReason.NETWORK, detail)
        for listener in list(self._network_listeners):
            try:
                listener(detail)
            except Exception:
                log.exception("network-lost listener %r failed", listener)

    def _set_registration(self, registration: Registration) -> None:
        self.registration = registration
        for listener in list(self._registration_listeners):
            try:
                listener(registration)
            except Exception:
                log.exception("registration listener %r failed", listener)

    def _on_registration_urc(self, urc: Urc) -> None:
        source, _, value = urc.text.partition(":")
        parsed = parse_registration(value, is_read=False, source=source)
        if parsed is not None:
            self.registrations[source] = parsed
            self._report_registration()

    def _on_network_lost_urc(self, urc: Urc) -> None:
        self.network_lost(urc.text)

    def _on_reboot(self, banner: str) -> None:
        self.registration = None
        self.registrations.clear()
        self._close_all(CloseReason.REBOOT, f"it sent {banner!r}")

    def _on_link_lost(self, reason: str) -> None:
        self._close_all(CloseReason.LINK, reason)


#: :meth:`Dialect.check_sim` outcomes that let the attach go on.
SIM_READY = "ready"
SIM_NOT_POWERED = "not powered (radio off)"
SIM_BUSY = "busy (still starting)"

_INSERT_HINT = "insert a SIM (power the modem off first); check that it sits in its holder"
_PIN_HINT = (
    "enter the PIN with `atbridge at 'AT+CPIN=\"<pin>\"'` (three wrong tries lock it), "
    "or remove the PIN lock in a phone"
)
_PUK_HINT = "the PIN was entered wrongly too often: unblock it with the PUK from the operator"

#: ``+CPIN: <code>`` answers that stop the attach (TS 27.007 §8.3; SIMCom's
#: ``NOT INSERTED``), with the problem and what to do.
_PIN_PROBLEMS: dict[str, tuple[str, str]] = {
    "NOT INSERTED": ("no SIM", _INSERT_HINT),
    "SIM PIN": ("SIM PIN required", _PIN_HINT),
    "SIM PUK": ("SIM PUK required", _PUK_HINT),
    "SIM PIN2": ("SIM PIN2 required", _PIN_HINT.replace("PIN", "PIN2", 1)),
    "SIM PUK2": ("SIM PUK2 required", _PUK_HINT),
}

#: ``+CME ERROR`` codes that say what is wrong with the SIM (TS 27.007 §9.2.1), by code
#: and by their verbose text (``AT+CMEE=2``, or a modem's own words).
_SIM_ERRORS: dict[int, tuple[str, str, str]] = {
    10: ("sim not inserted", "no SIM", _INSERT_HINT),
    11: ("sim pin required", "SIM PIN required", _PIN_HINT),
    12: ("sim puk required", "SIM PUK required", _PUK_HINT),
    13: (
        "sim failure",
        "SIM failure",
        "the modem cannot talk to the SIM: reseat it, try another SIM, and check that "
        "the SIM holder and its supply are right on the board",
    ),
    15: ("sim wrong", "SIM wrong", "this SIM is not accepted by the modem: use another one"),
    17: ("sim pin2 required", "SIM PIN2 required", _PIN_HINT),
    18: ("sim puk2 required", "SIM PUK2 required", _PUK_HINT),
}


def sim_problem(error: ModemError) -> tuple[str, str] | None:
    """The SIM problem (``"no SIM"``...) and what to do, that ``AT+CPIN?``'s error names.

    ``None`` for an error that says nothing definite about the SIM (``SIM busy``, a plain
    ``ERROR``): the SIM may still be starting.
    """
    if error.code is not None and error.kind == "CME":
        found = _SIM_ERRORS.get(error.code)
        return (found[1], found[2]) if found else None
    words = (error.text or error.final).casefold()
    for text, problem, hint in _SIM_ERRORS.values():
        if text in words:
            return problem, hint
    return None


def _sim_error(error: ModemError, problem: str, hint: str) -> SimNotReady:
    """``error`` (the modem's answer to ``AT+CPIN?``), led by the SIM ``problem``."""
    sim = SimNotReady(
        error.command, error.final, kind=error.kind, code=error.code, text=error.text, hint=hint
    )
    if error.kind is None and error.final.startswith("+CPIN:"):
        sim.message = f"{problem}: the modem answered {error.final!r} to 'AT+CPIN?'"
    else:
        sim.message = f"{problem}: {error.message}"
    sim.args = (sim.message,)
    return sim


def check_port(port: int) -> int:
    """A TCP port number, or a :class:`ConfigurationError` saying what is wrong."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(
            f"TCP port {port!r} is not a number from 1 to 65535", hint="fix the port"
        )
    return port


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address, not a name (no SNI, no DNS for it)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
