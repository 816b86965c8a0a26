"""The AT channel: one command in flight, results matched to callers, URCs to subscribers.

Theory of operation
-------------------
:class:`Modem` owns a serial transport (pyserial-asyncio-fast: a tty, a pty, or
``socket://host:port`` for a board exported by ser2net; ``rfc2217://host:port``
through :mod:`atbridge.transport`'s thread-backed adapter) and an
:class:`~atbridge.at_parser.AtParser`. Bytes from the modem go through the parser;
each event is routed:

- **Boot banners** (``Ready``, ``RDY``, ``APP RDY``, ``INIT ERROR``,
  plus a dialect's own, :meth:`Modem.add_boot_banners`) mean the modem restarted.
  The command in flight fails with :class:`~atbridge.errors.ModemRebooted`, reboot
  listeners are called once per boot, and the next command first re-runs the
  session setup (echo off, numeric errors), because a rebooted modem forgets
  both. A restart the modem reports otherwise (the nRF91's ``#XMODEM: FAULT``)
  is handed in by its dialect (:meth:`Modem.report_restart`) and handled the same.
- **Late boot lines** (SIMCom's ``SMS DONE``, ``PB DONE``, ``Call Ready``,
  ``SMS Ready``, ``DST: 0``: :data:`LATE_BOOT_LINES`; the SIM800 manual lists
  ``Call Ready``/``SMS Ready`` as URCs, printed seconds after ``RDY``) are
  unsolicited, even while a command that answers with bare lines waits: they are
  never part of an answer, and never a reboot.
- **Lines** while a command waits belong to it when they carry its own prefix
  (``+CGSN:`` for ``AT+CGSN=1``, or any prefix passed in ``claims``) or no prefix
  at all (``AT+CGSN`` answers with a bare IMEI). A line with any other prefix is
  unsolicited. A prefix registered as unsolicited that equals the command's own
  (``+CEREG:`` read response vs notification) is told apart by its shape
  (:func:`registration_is_response`). With no command in flight every line is
  unsolicited.
- **Finals** end the command in flight; errors become
  :class:`~atbridge.errors.ModemError` with the 27.007 text of the code.
- **Prompts** (``> ``) release the payload of a command that sends data, and the
  ``OK`` of a command that enters data mode releases its ``after_ok`` bytes. Neither is
  written the moment it is parsed: it waits until every event of the same read has been
  routed (:meth:`Modem._on_data`), and is dropped when one of them was a boot banner (the
  command then fails with :class:`~atbridge.errors.ModemRebooted`) or the link went. A
  modem that rebooted right after its prompt has its banner in the same read, so none of
  the payload reaches the freshly booted modem as AT commands (issue 12, defect 9). A
  banner that comes in a later read cannot be waited for without delaying every send;
  that residual window is the dialects' to shrink.
- **Blocks** (length-prefixed binary data) go with the command in flight, or to
  URC subscribers when none waits (auto-received socket data).

Exactly one command is in flight; callers queue in order on a lock. A timeout
raises :class:`~atbridge.errors.AtTimeout` with the bytes received meanwhile (at
most the first and the last :data:`KEEP_RECEIVED` bytes, with how many were elided
between them: a modem streaming garbage cannot grow memory while a command waits;
the parser bounds its partial line the same way, see :mod:`atbridge.at_parser`), and
the next command first resynchronises: it sends ``AT+CMEE?`` and ignores finals
until the ``+CMEE:`` line proves the replies are its own, so a late ``OK`` of the
timed-out command is never taken as the next command's answer. A probe left
unanswered (a busy modem, or one that reads ``AT+CMEE?`` back with a bare ``OK``)
is followed by a different one (``AT+CFUN?``, ``AT+CESQ``); a modem that answers no
probe raises :class:`~atbridge.errors.ResyncFailed`, which names the resync and says
the caller's command was not sent (:meth:`Modem._resync`).

Resynchronising first calls :attr:`Modem.escape_hook` when a dialect set one (the
nRF91 leaves data mode there, if it may be in it). The very first sync on opening
sends ``AT`` until answered; when the first tries get no answer it sends the
generic escape from data mode once (:data:`ESCAPE_GUARD` seconds of silence,
``+++``, the same silence again: the V.250 guard time SIMCom documents, and the
default ``CONFIG_SLM_DATAMODE_SILENCE`` of the Nordic SLM), then keeps trying.
Opened without a line ending (``line_ending=None``), that sync also finds it:
``AT`` CR, and on silence a lone LF (``AT`` CR LF for a CR LF modem), then
confirmed with a clean ``AT`` (:attr:`Modem.line_ending_origin` says where the
line ending came from).

An ``OK`` without the information line a caller reads with :meth:`Response.value` is
:class:`~atbridge.errors.MissingInformation`, not a refusal. Opening a port that is
not there raises :class:`~atbridge.errors.PortNotFound`; a bad setting (baud rate,
line ending, transcript path) a :class:`~atbridge.errors.ConfigurationError` before
the port is touched.

This module is above 800 lines because the AT channel is one job: matching each byte
the modem sends to the command in flight, a URC subscriber or a reboot, and bringing
the channel back in step (first sync, line-ending detection, escape, resync) are one
state machine over one parser and one lock; split, each half would need the other's
private state. The pure parts live beside it (:mod:`atbridge.at_parser`,
:mod:`atbridge.at_syntax`, :mod:`atbridge.transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from atbridge.at_parser import AtParser, Block, BlockRule, Echo, Event, Final, FinalKind, Line
from atbridge.at_syntax import check_command_line, response_prefix, split_params
from atbridge.cme import error_text
from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    ConfigurationError,
    LinkLost,
    MissingInformation,
    ModemError,
    ModemRebooted,
    PortNotFound,
    ResyncFailed,
)
from atbridge.transcript import OutgoingSecrets, Sink, Spans, Transcript, mask_spans

log = logging.getLogger(__name__)

#: Lines a modem prints when it (re)starts: SLM/SM, SIMCom, Quectel.
BOOT_BANNERS = frozenset({"Ready", "RDY", "APP RDY", "INIT ERROR"})
#: Lines SIMCom modules print late in their start (after ``RDY``), always unsolicited.
LATE_BOOT_LINES = re.compile(r"(?:SMS DONE|PB DONE|Call Ready|SMS Ready|DST: ?\d+)\Z")
#: Seconds of silence before and after the generic ``+++`` escape (V.250 S12 default;
#: the Nordic SLM's ``CONFIG_SLM_DATAMODE_SILENCE`` default), with a margin.
ESCAPE_GUARD = 1.1
#: Protocol errors of the modem logged as warnings per channel (the rest only counted).
_PROTOCOL_ERRORS_LOGGED = 10
#: Seconds to wait for each ``AT`` while finding the line ending (a modem answers in ms).
_DETECT_TIMEOUT = 0.5

DEFAULT_TIMEOUT = 5.0
#: Bytes kept from the start and from the end of what arrives while a command waits,
#: for its timeout report (:class:`_Received`): far more than any answer is long.
KEEP_RECEIVED = 2048
_SETUP_RESTARTS = 3
#: The probes that resynchronise the channel, tried in turn (see :meth:`Modem._resync`),
#: each with the information line that proves a reply is its own. They differ, so the
#: late answer of one probe is never taken for the next one's.
RESYNC_PROBES: tuple[tuple[str, str], ...] = (
    ("AT+CMEE?", "+CMEE:"),
    ("AT+CFUN?", "+CFUN:"),
    ("AT+CESQ", "+CESQ:"),
)
#: The baud rates accepted: the lowest standard rate to above any UART or USB bridge in use.
MIN_BAUD, MAX_BAUD = 50, 16_000_000
#: ``errno`` values that mean the port is not there (a vanished USB device, nobody listening).
_PORT_MISSING = frozenset(
    {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.ECONNREFUSED, errno.EHOSTUNREACH}
)
_PREFIX = re.compile(r"([+#%$^*&][A-Za-z0-9_]+):")


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one command.

    ``lines`` are the information lines (text), ``final`` the final result code,
    ``data`` the binary block when the command returned one.
    """

    command: str
    lines: tuple[str, ...]
    final: str
    data: bytes | None = None

    def values(self, prefix: str) -> list[str]:
        """The text after ``prefix`` on each line that starts with it.

        ``Response(..., lines=("+CFUN: 1",)).values("+CFUN:") == ["1"]``.
        """
        return [line[len(prefix) :].strip() for line in self.lines if line.startswith(prefix)]

    def value(self, prefix: str) -> str:
        """The text after ``prefix`` on the first line that carries it.

        Raises :class:`~atbridge.errors.MissingInformation` when no line carries it.
        """
        found = self.values(prefix)
        if not found:
            raise MissingInformation(self.command, prefix, self.lines)
        return found[0]


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code, with the binary block that came with it, if any."""

    text: str
    raw: bytes
    data: bytes | None = None


UrcCallback = Callable[[Urc], None]


class UrcWaiter:
    """A subscription that keeps the first matching URC until it is awaited.

    Use it as a context manager (it unsubscribes on exit), or call
    :meth:`cancel` when done.
    """

    def __init__(self, modem: Modem, prefix: str, predicate: Callable[[Urc], bool] | None) -> None:
        self.prefix = prefix
        self._modem = modem
        self._predicate = predicate
        self._found: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()
        #: The waits to resolve with the URC (:meth:`when_found`).
        self._outcomes: list[asyncio.Future[Urc]] = []
        self._unsubscribe = modem.subscribe(prefix, self._check)

    def _check(self, urc: Urc) -> None:
        if not self._found.done() and (self._predicate is None or self._predicate(urc)):
            self._found.set_result(urc)
            if self._outcomes:
                self._modem._after_read(self._relay)

    def _relay(self) -> None:
        """Resolve every wait with the URC (those an error ended first stay as they are)."""
        urc = self._found.result()
        outcomes, self._outcomes = self._outcomes, []
        for outcome in outcomes:
            if not outcome.done():
                outcome.set_result(urc)

    @property
    def urc(self) -> Urc | None:
        """The URC, if it has arrived."""
        return self._found.result() if self._found.done() else None

    async def wait(
        self,
        timeout: float,
        *,
        abort_on: Callable[[Callable[[BaseException], None]], Callable[[], None]] | None = None,
    ) -> Urc:
        """The URC; :class:`~atbridge.errors.AtTimeout` if none comes in ``timeout`` s.

        ``abort_on(fail)`` may register ``fail`` with something that can end the wait
        early with its own error (a socket closing) and return a function that
        unregisters it. Cancelling the wait (or its timing out) leaves the
        subscription as it was: the URC may still be awaited again.
        """
        found = self._found
        if found.done():
            return found.result()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Urc] = loop.create_future()

        def fail(error: BaseException) -> None:
            if not outcome.done():
                outcome.set_exception(error)

        self._outcomes.append(outcome)  # resolved by _relay (see when_found)
        remove_abort = abort_on(fail) if abort_on is not None else None

        def expire() -> None:  # the error is built only when the wait does time out
            fail(AtTimeout(f"(waiting for {self.prefix})", timeout, b""))

        timer = loop.call_at(loop.time() + timeout, expire)
        try:
            return await outcome
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):  # _relay took it already
                self._outcomes.remove(outcome)
            if remove_abort is not None:
                remove_abort()
            if outcome.done() and not outcome.cancelled():
                outcome.exception()  # retrieved, even when this wait was cancelled meanwhile

    def when_found(self, outcome: asyncio.Future[Urc]) -> Callable[[], None]:
        """Resolve ``outcome`` with the URC when it arrives (unless it is done by then).

        Returns a function that stops it. ``outcome`` is resolved once the read that
        brought the URC has been routed (:meth:`Modem._after_read`), never in the middle
        of it: a socket that closed in the same read (a boot banner behind the URC) has
        ended ``outcome`` with its error by then, and wins.
        """
        outcomes = self._outcomes
        outcomes.append(outcome)
        if self._found.done():
            self._modem._after_read(self._relay)

        def remove() -> None:
            if outcome in outcomes:
                outcomes.remove(outcome)

        return remove

    def cancel(self) -> None:
        self._unsubscribe()

    def __enter__(self) -> UrcWaiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def registration_is_response(line: str) -> bool:
    """Tell a ``+CxREG`` read response from a notification by its shape.

    The read response is ``+CEREG: <n>,<stat>[,...]`` (the second field is a bare
    number); a notification is ``+CEREG: <stat>[,"<tac>",...]`` (one field, or a
    quoted or empty second field). Source: TS 27.007 §10.1.22 and the Zephyr
    cellular driver's use of the same rule (reference §1).
    """
    params = split_params(line.partition(":")[2])
    return len(params) >= 2 and params[1].isdigit()


#: Command lines already checked, with their ASCII bytes and response prefix: a device
#: sends the same few lines over and over. Bounded: emptied when full.
_LINES: dict[str, tuple[bytes, str | None]] = {}
_LINES_MAX = 256


def _command_line(line: str, multiline: bool = False) -> tuple[bytes, str | None]:
    """``line`` checked (:func:`check_command_line`), as bytes, with its response prefix.

    ``multiline``: line breaks allowed inside its quoted parameters (never cached).
    """
    if multiline:
        check_command_line(line, line_breaks_in_quotes=True)
        return line.encode("ascii"), response_prefix(line)
    known = _LINES.get(line) if type(line) is str else None
    if known is None:
        check_command_line(line)
        known = (line.encode("ascii"), response_prefix(line))
        if type(line) is str:
            if len(_LINES) >= _LINES_MAX:
                _LINES.clear()
            _LINES[line] = known
    return known


class _Received:
    """What arrived while a command waited: its first and last ``keep`` bytes only.

    ``bytes(received)`` is the head and the tail, with a marker naming how many bytes
    were elided between them.
    """

    __slots__ = ("elided", "head", "keep", "tail")

    def __init__(self, keep: int = KEEP_RECEIVED) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.elided = 0

    def add(self, data: bytes) -> None:
        room = self.keep - len(self.head)
        if room >= len(data):  # the usual answer: a few lines, kept whole, one copy
            self.head += data
            return
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.keep
        if excess > 0:
            del self.tail[:excess]
            self.elided += excess

    def __len__(self) -> int:
        return len(self.head) + len(self.tail) + self.elided

    def __bytes__(self) -> bytes:
        if not self.elided:
            return bytes(self.head + self.tail)
        marker = b"...[%d bytes elided]..." % self.elided
        return bytes(self.head) + marker + bytes(self.tail)


#: A command as :meth:`Modem.command` passes it on: line, timeout, claims, payload, check,
#: after_ok, (secret_spans, payload_secret_spans), (multiline, prompt_line).
_Call = tuple[
    str,
    float | None,
    tuple[str, ...],
    bytes | None,
    bool,
    bytes | None,
    tuple[Spans, Spans],
    tuple[bool, str | None],
]


class _Subscribers:
    """The URC subscriptions, grouped by the head of the lines each can match.

    A line's *head* is its text up to its first ``:`` (all of it without one). A
    subscription whose prefix has a ``:`` can only match lines of the same head
    (``"#XDATAMODE:"``, ``"+CGEV: NW DETACH"``); one without (``None``: every URC, or a
    bare ``"0, CLOSED"``) is tried on every line. A URC is then offered to one small
    group instead of every subscription (a dozen on a bound dialect, with a startswith
    each, for every notification: issue 16), in the order of subscription, and to the
    subscriptions as they were when it arrived (a callback that subscribes or
    unsubscribes changes what the next URC meets).
    """

    __slots__ = ("_always", "_by_head", "_order")

    def __init__(self) -> None:
        self._order = itertools.count()
        self._by_head: dict[str, list[tuple[int, str | None, UrcCallback]]] = {}
        self._always: list[tuple[int, str | None, UrcCallback]] = []

    def add(self, prefix: str | None, callback: UrcCallback) -> Callable[[], None]:
        """Subscribe; returns the function that unsubscribes (once; later calls do nothing)."""
        entry = (next(self._order), prefix, callback)
        if prefix is None or ":" not in prefix:
            group = self._always
        else:
            group = self._by_head.setdefault(_head(prefix), [])
        group.append(entry)  # the counter grows: each group stays in subscription order

        def remove() -> None:
            if entry in group:
                group.remove(entry)

        return remove

    def of(self, text: str) -> list[tuple[str | None, UrcCallback]]:
        """The subscriptions that may match the line ``text``, in subscription order."""
        colon = text.find(":")  # _head(text), inline: this runs for every URC
        group = self._by_head.get(text if colon < 0 else text[: colon + 1])
        always = self._always
        if not always:
            return [(prefix, callback) for _, prefix, callback in group] if group else []
        entries = sorted([*group, *always]) if group else always
        return [(prefix, callback) for _, prefix, callback in entries]


def _head(text: str) -> str:
    colon = text.find(":")
    return text if colon < 0 else text[: colon + 1]


@dataclass(slots=True)
class _Pending:
    command: str
    claims: tuple[str, ...]
    #: The response and its final; ``None`` when the time ran out.
    future: asyncio.Future[tuple[Response, Final] | None]
    payload: bytes | None
    require_line: str | None
    after_ok: bytes | None = None
    #: Secret byte ranges of ``payload`` / ``after_ok`` (masked in the transcript).
    payload_spans: Spans = ()
    lines: list[str] = field(default_factory=list)
    data: bytes | None = None
    received: _Received = field(default_factory=_Received)
    line_in_flight: bool = False
    #: The payload went out on a prompt (not after an OK): void once the command is done.
    payload_released_by_prompt: bool = False
    #: A whole line that asks for the payload instead of ``> `` (``DOWNLOAD``).
    prompt_line: str | None = None


class _Turn:
    """The context manager :meth:`Modem.exclusive` returns (reentrant per task)."""

    __slots__ = ("_held", "_modem")

    def __init__(self, modem: Modem) -> None:
        self._modem = modem
        self._held = False

    async def __aenter__(self) -> Modem:
        modem = self._modem
        task = asyncio.current_task()
        if task is None or modem._owner is not task:
            await modem._lock.acquire()
            modem._owner = task
            self._held = True
        return modem

    async def __aexit__(self, *exc_info: object) -> None:
        if self._held:
            self._held = False
            self._modem._owner = None
            self._modem._lock.release()


class _Protocol(asyncio.Protocol):
    def __init__(self, modem: Modem) -> None:
        self.modem = modem

    def data_received(self, data: bytes) -> None:
        self.modem._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.modem._on_lost(exc)


class Modem:
    """An asyncio AT channel to one modem. Create it with :meth:`Modem.open`."""

    def __init__(
        self,
        *,
        line_ending: bytes = b"\r\n",
        transcript: Transcript | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.line_ending = line_ending
        #: Where :attr:`line_ending` came from: the user (``given``), the first sync
        #: (``detected``), or nobody yet (``default``: a bound dialect sets its own).
        self.line_ending_origin: Literal["given", "detected", "default"] = "given"
        #: Called (when set) before resynchronising a channel that stopped answering:
        #: a dialect whose modem may be stuck in data mode leaves it there.
        self.escape_hook: Callable[[], Awaitable[None]] | None = None
        #: Seconds of silence around the generic ``+++`` escape (:data:`ESCAPE_GUARD`).
        self.escape_guard = ESCAPE_GUARD
        #: Lines that mean the modem restarted (:data:`BOOT_BANNERS` and the dialect's).
        self.boot_banners: set[str] = set(BOOT_BANNERS)
        self.transcript = transcript
        self.default_timeout = default_timeout
        self.parser = AtParser()
        self.parser.on_protocol_error = self._on_protocol_error
        self._protocol_errors_logged = 0
        self._outgoing: weakref.WeakKeyDictionary[object, OutgoingSecrets] = (
            weakref.WeakKeyDictionary()
        )
        self.port: str = ""
        self._transport: asyncio.Transport | None = None
        #: Bytes written to and read from the port since it was opened.
        self.bytes_written = 0
        self.bytes_read = 0
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        self._pending: _Pending | None = None
        #: A payload released by a prompt or an OK in the read being routed, with the
        #: command that released it and its secret spans: written once the read is routed.
        self._release: tuple[_Pending, bytes, Spans] | None = None
        #: Set while a read is routed; :meth:`_after_read` callbacks then wait for its end.
        self._routing = False
        self._after_routing: list[Callable[[], None]] = []
        self._closed = False
        self._lost = asyncio.Event()
        self._lost_reason: str | None = None
        #: URC subscriptions (:meth:`subscribe`), by the head of the lines they can match.
        self._subscribers = _Subscribers()
        self._urc_shapes: dict[str, Callable[[str], bool]] = {
            prefix: registration_is_response
            for prefix in ("+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:")
        }
        self._bare_urcs: list[re.Pattern[str]] = []
        self._reboot_listeners: list[Callable[[str], None]] = []
        self._lost_listeners: list[Callable[[str], None]] = []
        self._booting = False
        self._needs_setup = False
        self._needs_resync = False
        self._synced = False
        self._sync_attempts = 10
        self._sync_timeout = 1.0
        #: Seconds the first sync may take in all (``None``: its tries bound it).
        self._sync_within: float | None = None

    # -- opening and closing -------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        baudrate: int = 115200,
        rtscts: bool = False,
        line_ending: str | bytes | None = None,
        transcript: Transcript | Sink | None = None,
        default_timeout: float | None = None,
        sync: bool = True,
        sync_attempts: int = 10,
        sync_timeout: float = 1.0,
        sync_within: float | None = None,
        exclusive: bool = True,
    ) -> Modem:
        """Open the port at ``url`` and bring the modem to a known state.

        ``url`` is a device path (``/dev/ttyACM0``, a pty such as ``/dev/pts/5``),
        ``socket://host:port`` (a raw TCP port, e.g. ser2net) or
        ``rfc2217://host:port[?ign_set_control]`` (Telnet COM port control). With ``sync`` (the
        default) the modem is woken with ``AT`` until it answers ``OK`` (at most
        ``sync_attempts`` tries of ``sync_timeout`` seconds), then echo is turned
        off (``ATE0``) and numeric errors on (``AT+CMEE=1``). That first sync takes at
        most ``sync_within`` seconds in all, the data-mode escape included; not given, the
        ``default_timeout`` the caller gave (a command's ``--timeout``: a silent modem
        fails within it), else only the tries bound it. ``default_timeout`` is each
        command's timeout (:data:`DEFAULT_TIMEOUT` when not given). ``line_ending`` not given
        (``None``): found by that sync (CR, CR LF or LF), or left to the bound dialect
        without ``sync``; given, it is used whatever the dialect's default.

        A device is opened ``exclusive`` (a POSIX ``flock``; see :mod:`atbridge.transport`):
        one another process holds is a :class:`~atbridge.errors.ConfigurationError`
        naming that process where it can be found.

        Raises :class:`~atbridge.errors.PortNotFound` when the port is not there (no
        such device node, a USB port that vanished, a refused TCP connection), and a
        :class:`~atbridge.errors.ConfigurationError` naming the setting for a bad one
        (baud rate, line ending, transcript path) or a port that cannot be opened.
        """
        if (
            isinstance(baudrate, bool)
            or not isinstance(baudrate, int)
            or not MIN_BAUD <= baudrate <= MAX_BAUD
        ):
            raise ConfigurationError(
                f"baud rate {baudrate!r} is not a whole number from {MIN_BAUD} to {MAX_BAUD}",
                hint="use the modem's UART rate (115200 for the nRF91 and SIMCom defaults)",
            )
        origin: Literal["given", "detected", "default"] = "given"
        if line_ending is None:
            line_ending, origin = b"\r\n", "default"
        if isinstance(line_ending, str):
            line_ending = line_ending.encode("ascii")
        if line_ending not in (b"\r", b"\n", b"\r\n"):
            raise ConfigurationError(
                f"line ending {line_ending!r} is not CR, LF or CRLF",
                hint="use '\\r' (V.250 default, nRF91 Serial Modem) or '\\r\\n' (Serial LTE Modem)",
            )
        if not isinstance(transcript, Transcript | None):
            transcript = Transcript(transcript)
        modem = cls(
            line_ending=line_ending,
            transcript=transcript,
            default_timeout=DEFAULT_TIMEOUT if default_timeout is None else default_timeout,
        )
        modem._sync_within = default_timeout if sync_within is None else sync_within
        modem.line_ending_origin = origin
        modem.port = url
        modem._sync_attempts = sync_attempts
        modem._sync_timeout = sync_timeout
        await modem._connect(url, baudrate=baudrate, rtscts=rtscts, exclusive=exclusive)
        if sync:
            try:
                async with modem._lock:
                    await modem._setup()
            except BaseException:
                await modem.close()
                raise
        return modem

    async def _connect(self, url: str, *, baudrate: int, rtscts: bool, exclusive: bool) -> None:
        import serial
        import serial_asyncio_fast

        loop = asyncio.get_running_loop()
        if self.transcript is not None:
            self.transcript.note(f"opening {url} at {baudrate} baud")
        try:
            if url.startswith("rfc2217://"):
                # No file descriptor to watch: a thread-backed transport instead.
                from atbridge.transport import open_threaded

                transport: asyncio.Transport = await open_threaded(
                    url, _Protocol(self), baudrate=baudrate, rtscts=rtscts
                )
            elif "://" not in url:
                from atbridge.transport import open_device

                transport = await open_device(
                    url, _Protocol(self), baudrate=baudrate, rtscts=rtscts, exclusive=exclusive
                )
            elif url.startswith("socket://"):
                from atbridge.transport import open_socket_url

                transport = await open_socket_url(url, _Protocol(self))
            else:
                transport, _ = await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: _Protocol(self), url, baudrate=baudrate, rtscts=rtscts
                )
        except (serial.SerialException, OSError, ValueError, OverflowError) as exc:
            raise _open_error(url, exc) from exc
        self._transport = transport

    async def close(self) -> None:
        """Close the port. A command still waiting fails with :class:`LinkLost`."""
        if self._closed:
            return
        self._closed = True
        self._fail_pending(LinkLost("the port was closed while a command was waiting"))
        if self._transport is not None:
            self._transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._lost.wait()
        if self.transcript is not None:
            self.transcript.note("closed")
            self.transcript.close()

    async def __aenter__(self) -> Modem:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closed and not self._lost.is_set()

    # -- commands ------------------------------------------------------------------

    async def command(
        self,
        line: str,
        *,
        timeout: float | None = None,
        claims: Iterable[str] = (),
        payload: bytes | None = None,
        check: bool = True,
        after_ok: bytes | None = None,
        secret_spans: Spans = (),
        payload_secret_spans: Spans = (),
        multiline: bool = False,
        prompt_line: str | None = None,
    ) -> Response:
        """Send one command line and return its :class:`Response`.

        ``claims`` lists extra line prefixes that belong to this command's
        response. ``payload`` is written when the modem shows its ``> `` prompt
        (commands such as ``AT+CASEND=0,5``). ``after_ok`` is written the moment
        the command's success final arrives, and never otherwise (not on an error,
        a timeout or a cancellation): the payload of a command that enters data
        mode (``AT#XSEND``). With ``check`` (the default) an error result raises
        :class:`~atbridge.errors.ModemError`; without it the error comes back as
        the response's ``final``.

        ``secret_spans`` are byte ranges of ``line`` that hold a secret (a payload sent
        in the command line), ``payload_secret_spans`` those of ``payload`` or
        ``after_ok``: the transcript shows them as ``***`` and errors name the line
        masked the same way (:meth:`payload_secrets` finds them in socket payloads).

        ``multiline``: the line may hold CR/LF inside a quoted parameter (a PEM made by
        :func:`~atbridge.at_syntax.quote_text`: ``AT%CMNG``). ``prompt_line``: the modem
        asks for ``payload`` with this whole line instead of ``> `` (the SIM7080's
        ``DOWNLOAD`` after ``AT+CFSWFILE``); the payload goes once that line is read.
        """
        _command_line(line, multiline)  # a bad line raises before it waits for its turn
        secrets = (secret_spans, payload_secret_spans)
        extra = (multiline, prompt_line)
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            return await self._command(
                line, timeout, tuple(claims), payload, check, after_ok, secrets, extra
            )
        lock = self._lock
        await lock.acquire()
        self._owner = task
        try:
            return await self._command(
                line, timeout, tuple(claims), payload, check, after_ok, secrets, extra
            )
        finally:
            self._owner = None
            lock.release()

    def _command(
        self,
        line: str,
        timeout: float | None,
        claims: tuple[str, ...],
        payload: bytes | None,
        check: bool,
        after_ok: bytes | None,
        secrets: tuple[Spans, Spans] = ((), ()),
        extra: tuple[bool, str | None] = (False, None),
    ) -> Coroutine[Any, Any, Response]:
        """:meth:`command` once this task holds the channel (``extra``: multiline, prompt_line).

        The exchange itself when the channel needs no setup or resynchronisation first
        (one coroutine less per command, issue 16)."""
        self._ensure_open()
        call: _Call = (line, timeout, claims, payload, check, after_ok, secrets, extra)
        if self._needs_setup or self._needs_resync:
            return self._prepared_command(call)
        return self._command_exchange(call)

    async def _prepared_command(self, call: _Call) -> Response:
        """The session setup or the resynchronisation the channel needs, then the command."""
        if self._needs_setup:
            await self._setup()
        elif self._needs_resync:
            line, timeout, secret_spans = call[0], call[1], call[6][0]
            shown = line
            if secret_spans:
                shown = mask_spans(line.encode("ascii"), secret_spans).decode("ascii")
            await self._resync(timeout, before=shown)
        return await self._command_exchange(call)

    def _command_exchange(self, call: _Call) -> Coroutine[Any, Any, Response]:
        line, timeout, claims, payload, check, after_ok, secrets, extra = call
        return self._exchange(
            line,
            timeout=self.default_timeout if timeout is None else timeout,
            claims=claims,
            payload=payload,
            check=check,
            after_ok=after_ok,
            secret_spans=secrets[0],
            payload_secret_spans=secrets[1],
            multiline=extra[0],
            prompt_line=extra[1],
        )

    async def write(self, data: bytes, *, secret_spans: Spans = ()) -> None:
        """Write raw bytes (data mode payloads). Never lands inside another command.

        ``secret_spans``: byte ranges of ``data`` masked in the transcript.
        """
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            self._ensure_open()
            self._write(data, secret_spans)
            return
        async with self._lock:
            self._owner = task
            try:
                self._ensure_open()
                self._write(data, secret_spans)
            finally:
                self._owner = None

    def payload_secrets(self, stream: object, chunk: bytes) -> Spans:
        """The secret byte ranges of ``chunk``, the next bytes sent on socket ``stream``.

        Call it with every chunk of a socket's payload, in order (a dialect's send
        does): it follows the stream's MQTT framing and finds each CONNECT's password
        by its offsets (:class:`~atbridge.transcript.OutgoingSecrets`). Without a
        transcript there is nothing to mask: ``()``.
        """
        transcript = self.transcript
        if transcript is None:
            return ()
        tracker = self._outgoing.get(stream)
        if tracker is None:
            tracker = self._outgoing[stream] = OutgoingSecrets()
        tracker.secrets = transcript.secrets()
        return tracker.feed(chunk)

    def exclusive(self) -> _Turn:
        """Hold the channel across several steps (command, raw payload, notification).

        ``async with modem.exclusive():`` — inside the block this task's
        :meth:`command` and :meth:`write` run at once; other tasks wait until the
        block ends. Used for exchanges that are more than one command, such as
        entering data mode, writing and leaving it.
        """
        return _Turn(self)

    def add_secret(self, secret: str) -> None:
        """Mask ``secret`` in the transcript from now on."""
        if self.transcript is not None:
            self.transcript.add_secret(secret)

    # -- configuration by dialects ---------------------------------------------------

    def register_urc(
        self, prefix: str, *, is_response: Callable[[str], bool] | None = None
    ) -> None:
        """Declare ``prefix`` unsolicited.

        For a prefix a command also answers with, ``is_response(line)`` tells the
        two apart while that command waits. A prefix without a ``+``/``#``/``%``
        sigil (``"0, CLOSED"``) marks bare lines that are unsolicited even while a
        command waits.
        """
        if _PREFIX.match(prefix):
            self._urc_shapes[prefix] = is_response or (lambda _line: False)
        else:
            self._bare_urcs.append(re.compile(re.escape(prefix)))

    def add_boot_banners(self, banners: Iterable[str]) -> None:
        """Treat each of ``banners`` as a boot banner too (a dialect's ``*ATREADY: 1``)."""
        self.boot_banners.update(banners)

    def report_restart(self, detail: str) -> None:
        """The modem restarted without a boot banner (a dialect saw ``#XMODEM: FAULT``).

        Handled as a banner would be: the command in flight fails with
        :class:`~atbridge.errors.ModemRebooted` (``detail`` as what the modem
        sent), the reboot listeners are called (once per restart), and the next
        command re-runs the session setup.
        """
        self._on_banner(detail, reset_parser=False)

    def add_final(self, pattern: bytes, *, success: bool) -> None:
        """Treat lines matching ``pattern`` as final result codes (``SEND OK``...)."""
        self.parser.add_final(pattern, success=success)

    def add_block(self, rule: BlockRule) -> None:
        """Register a binary block header (``#XRECV: ...``, ``+CIPRXGET: 2,...``)."""
        self.parser.add_block(rule)

    # -- events --------------------------------------------------------------------

    def subscribe(self, prefix: str | None, callback: UrcCallback) -> Callable[[], None]:
        """Call ``callback`` for each URC starting with ``prefix`` (``None``: every URC).

        Returns a function that unsubscribes. Callbacks run in the reader; they
        must not block (hand work to a task or a queue).
        """
        return self._subscribers.add(prefix, callback)

    def expect_urc(
        self, prefix: str, *, predicate: Callable[[Urc], bool] | None = None
    ) -> UrcWaiter:
        """Start listening for a URC now, to await it later.

        Subscribe *before* sending the command that causes it: a result such as
        ``+CIPOPEN: 0,0`` can arrive in the same read as the command's ``OK``.

        ``async with modem.expect_urc("+CIPOPEN:") as opened:``
        ``    await modem.command(...); urc = await opened.wait(timeout=30)``
        """
        return UrcWaiter(self, prefix, predicate)

    async def wait_for_urc(
        self,
        prefix: str,
        *,
        timeout: float,
        predicate: Callable[[Urc], bool] | None = None,
    ) -> Urc:
        """Wait for the next URC starting with ``prefix`` (and passing ``predicate``)."""
        with self.expect_urc(prefix, predicate=predicate) as waiter:
            return await waiter.wait(timeout)

    def on_reboot(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(banner)`` once each time the modem reboots."""
        self._reboot_listeners.append(callback)
        return lambda: self._reboot_listeners.remove(callback)

    def on_link_lost(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(reason)`` when the port goes away."""
        self._lost_listeners.append(callback)
        return lambda: self._lost_listeners.remove(callback)

    # -- internals: sending --------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed or self._transport is None:
            raise LinkLost("the port is closed", hint="open the modem again")
        if self._lost.is_set():
            raise LinkLost(f"the link to {self.port} was lost: {self._lost_reason}")

    def _write(self, data: bytes, secret_spans: Spans = ()) -> None:
        assert self._transport is not None
        if self.transcript is not None:
            self.transcript.tx(data, secret_spans=secret_spans)
        self.bytes_written += len(data)
        self._transport.write(data)

    async def _exchange(
        self,
        line: str,
        *,
        timeout: float,
        claims: tuple[str, ...] = (),
        payload: bytes | None = None,
        check: bool = True,
        require_line: str | None = None,
        after_ok: bytes | None = None,
        wire: bytes | None = None,
        secret_spans: Spans = (),
        payload_secret_spans: Spans = (),
        multiline: bool = False,
        prompt_line: str | None = None,
    ) -> Response:
        """Send ``line`` (or the bytes ``wire`` in its place) and wait for its final."""
        encoded, own = _command_line(line, multiline)
        if secret_spans:
            # Notes and errors name the command as the transcript shows it.
            line = mask_spans(encoded, secret_spans).decode("ascii", "replace")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Response, Final] | None] = loop.create_future()
        pending = _Pending(
            command=line,
            claims=(own, *claims) if own else claims,
            future=future,
            payload=payload,
            require_line=require_line,
            after_ok=after_ok,
            payload_spans=payload_secret_spans,
            prompt_line=prompt_line,
        )
        # A line already arriving was sent before this command: not its answer.
        pending.line_in_flight = self.parser.in_line
        self._pending = pending
        self.parser.command_sent(encoded)
        self.parser.expect_prompt = payload is not None and prompt_line is None
        self._write(encoded + self.line_ending if wire is None else wire, secret_spans)
        # One timer on the future (None: the time is up) rather than a timeout scope.
        timer = loop.call_at(loop.time() + timeout, _expire, future)
        try:
            outcome = await future
        except asyncio.CancelledError:
            # The answer may still come: the next command must not take it for its own.
            self._needs_resync = True
            raise
        finally:
            timer.cancel()
            self._pending = None
            self.parser.expect_prompt = False
        if outcome is None:
            self._needs_resync = True
            if self.transcript is not None:
                self.transcript.note(f"timeout after {timeout:g} s waiting for {line!r}")
            received = pending.received
            hint = None
            if received.elided:
                hint = (
                    f"the modem sent {len(received)} bytes meanwhile; the report keeps the "
                    f"first and last {received.keep} ({received.elided} bytes elided) and "
                    f"{self.parser.protocol_errors} protocol errors were counted: check "
                    "the baud rate and the line ending, and whether the modem is streaming data"
                )
            raise AtTimeout(line, timeout, bytes(received), hint=hint) from None
        response, final = outcome
        if check and not final.success:
            raise _modem_error(line, final)
        return response

    async def _setup(self) -> None:
        """Wake the modem, then echo off and numeric errors on. Holds the lock.

        A modem that restarts again while the setup runs prints another banner (its
        late boot lines, SIMCom's ``SMS Ready``, are not banners); a banner during
        the setup starts it over, a bounded number of times.
        """
        for _restart in range(_SETUP_RESTARTS):
            try:
                await self._setup_once()
                return
            except ModemRebooted:
                continue
        await self._setup_once()

    async def _setup_once(self) -> None:
        self._needs_setup = False
        self._needs_resync = False
        self.parser.reset()
        if self.transcript is not None:
            self.transcript.note("synchronising")
        detect = self.line_ending_origin == "default"
        if not detect:
            # A lone line ending ends whatever partial command the modem may hold.
            self._write(self.line_ending)
        tries: list[AtBridgeError] = []
        within = None if self._synced else self._sync_within
        try:
            async with asyncio.timeout(within):
                await self._wake(detect, tries)
        except TimeoutError as exc:
            if isinstance(exc, AtBridgeError):
                raise
            last = tries[-1] if tries else None
            raise AtTimeout(
                "AT",
                within or 0.0,
                last.received if isinstance(last, AtTimeout) else b"",
                hint="nothing answered the first AT within the command's timeout; "
                + self._silence_hint(),
            ) from None
        last = tries[-1] if tries else None
        with contextlib.suppress(ModemError):
            await self._exchange("ATE0", timeout=self.default_timeout)
        with contextlib.suppress(ModemError):
            await self._exchange("AT+CMEE=1", timeout=self.default_timeout)
        self._synced = True
        if last is not None or self._needs_resync:
            await self._resync(None, before="the session setup")

    async def _wake(self, detect: bool, tries: list[AtBridgeError]) -> None:
        """``AT`` until answered (the escape once after the first silence); ``tries``
        collects each failed try. Raises :class:`AtTimeout` after the last try."""
        escaped = self._synced
        for attempt in range(self._sync_attempts):
            if attempt == 1 and not escaped:
                # No answer to the first try: the modem may be in data mode (a host
                # that died mid-send). The generic escape, then try again.
                escaped = True
                await self._escape_data_mode()
            try:
                if detect:
                    if await self._detect_line_ending():
                        return
                    continue
                await self._exchange("AT", timeout=self._sync_timeout)
                return
            except (AtTimeout, ModemError, ModemRebooted) as exc:
                # A late or spurious reply may still be on its way: resync after.
                # A boot banner here is the modem finishing its start: keep going.
                tries.append(exc)
                self._needs_setup = False
        last = tries[-1] if tries else None
        raise AtTimeout(
            "AT",
            self._sync_timeout * self._sync_attempts,
            last.received if isinstance(last, AtTimeout) else b"",
            hint=f"the modem did not answer OK to {self._sync_attempts} tries of AT; "
            + self._silence_hint(),
        )

    def _silence_hint(self) -> str:
        """What to check when the modem never answered the first sync."""
        if self.port.startswith("rfc2217://") and "ign_set_control" not in self.port:
            return (
                f"try {_with_ign_set_control(self.port)}: an RFC 2217 server that does not "
                "support modem control may pass no data; check power and the baud rate"
            )
        if self.bytes_read:
            return (
                f"the modem sent {self.bytes_read} bytes but never OK: check the baud rate "
                "(and --line-ending), or whether another program holds the modem"
            )
        return "check power, the port, the baud rate and the line ending"

    async def _detect_line_ending(self) -> bool:
        """Find the line ending the modem takes; True once found and confirmed.

        ``AT`` CR first; on silence a lone LF, which makes ``AT`` CR LF for a modem
        that ends lines with both (as Nordic's desktop tools do). Any final answers
        (an ``ERROR`` too: the modem took the line); a clean ``AT`` confirms. CR LF
        found is told from LF alone by that confirmation. An ``OK`` to the first
        ``AT`` CR is already that clean ``AT``: CR is found with one command.
        """
        timeout = min(self._sync_timeout, _DETECT_TIMEOUT)
        candidates: tuple[bytes, ...]
        first = await self._answers(b"AT\r", timeout)
        if first == "OK":
            return self._detected(b"\r")
        if first is not None:
            candidates = (b"\r",)
        elif await self._answers(b"\n", timeout) is not None:
            candidates = (b"\r\n", b"\n")
        else:
            return False
        for ending in candidates:
            if await self._answers(b"AT" + ending, self._sync_timeout) == "OK":
                # The lone LF took the timed-out AT CR's answer (there is no other), and
                # this OK came to a line written after both: nothing late is on its way,
                # so the timeout needs no resynchronisation.
                self._needs_resync = False
                return self._detected(ending)
        return False

    def _detected(self, ending: bytes) -> bool:
        self.line_ending, self.line_ending_origin = ending, "detected"
        if self.transcript is not None:
            self.transcript.note(f"line ending detected: {ending!r}")
        return True

    async def _answers(self, wire: bytes, timeout: float) -> str | None:
        """The final that ``AT`` written as ``wire`` gets in time (``None``: silence)."""
        try:
            response = await self._exchange("AT", timeout=timeout, wire=wire, check=False)
        except AtTimeout:
            return None
        return response.final

    async def _escape_data_mode(self) -> None:
        """The generic escape from data mode: silence, ``+++``, silence."""
        if self.transcript is not None:
            self.transcript.note("no answer: escaping data mode (+++ with guard times)")
        await asyncio.sleep(self.escape_guard)
        self._write(b"+++")
        await asyncio.sleep(self.escape_guard)

    async def _resync(self, timeout: float | None, *, before: str) -> None:
        """Make sure no late reply of an earlier command is still on its way.

        Sends ``AT+CMEE?`` and takes only a final that comes with its ``+CMEE:`` line:
        the finals before it (an ``OK`` or an error) are late replies of the command
        that timed out, and are ignored. When no such answer comes within ``timeout``
        seconds (the modem is still busy, or reads ``AT+CMEE?`` back with a bare
        ``OK``), the next of :data:`RESYNC_PROBES` is tried: its line differs, so a late
        answer of the one before cannot pass for its own. When none is answered,
        :class:`~atbridge.errors.ResyncFailed` says so and that ``before`` (the
        caller's command) was not sent; the next command tries again.
        """
        per_try = self.default_timeout if timeout is None else timeout
        hook = self.escape_hook
        if hook is not None:
            # The hook's own commands must not resync again (into the hook).
            self._needs_resync = False
            await hook()
        received = bytearray()
        for probe, own_line in RESYNC_PROBES:
            try:
                await self._exchange(probe, timeout=per_try, require_line=own_line, check=False)
            except AtTimeout as exc:
                received += exc.received
                continue
            except ModemRebooted as exc:
                raise ModemRebooted(exc.banner) from None
            self._needs_resync = False
            return
        raise ResyncFailed(
            tuple(probe for probe, _ in RESYNC_PROBES), per_try, bytes(received), before=before
        )

    # -- internals: receiving ------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if self.transcript is not None:
            self.transcript.rx(data)
        pending = self._pending
        if pending is not None:
            pending.received.add(data)
        try:
            events = self.parser.feed(data)
        except Exception:  # pragma: no cover - the parser promises not to raise
            log.exception("the AT parser failed on %d bytes; resynchronising", len(data))
            self.parser.reset()
            self._needs_resync = True
            return
        self._routing = True
        try:
            for event in events:
                try:
                    self._route(event)
                except Exception:  # pragma: no cover - routing runs only guarded callbacks
                    log.exception("routing %r failed", event)
            if self._release is not None:
                self._write_release()
        finally:
            self._routing = False
        if self._after_routing:
            self._run_after_routing()

    def _after_read(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the read being routed is routed (outside one: soon).

        A waiter resolved there wakes on the next turn of the loop (a callback scheduled
        from the read would cost one turn more), and only after everything the read
        brought (a banner, a socket closing) has been seen.
        """
        if self._routing:
            self._after_routing.append(callback)
        else:
            asyncio.get_running_loop().call_soon(callback)

    def _run_after_routing(self) -> None:
        callbacks, self._after_routing = self._after_routing, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # pragma: no cover - the callbacks only resolve futures
                log.exception("after-read callback %r failed", callback)

    def _write_release(self) -> None:
        """Write the payload a prompt or an OK of this read released, unless it is void.

        A banner or a lost link in the same read dropped it already (:meth:`_on_banner`,
        :meth:`_on_lost`); a command no longer in flight, or a prompt's command that has
        its result (a banner failed it), or a closed port write nothing either.
        """
        assert self._release is not None
        pending, data, spans = self._release
        self._release = None
        if self._pending is not pending or self._closed or self._transport is None:
            return
        if self._lost.is_set():
            return
        if pending.payload_released_by_prompt and pending.future.done():
            return
        self._write(data, spans)

    def _on_protocol_error(self, description: str) -> None:
        """The parser met output no modem documents (an overlong line, a huge block)."""
        if self._protocol_errors_logged < _PROTOCOL_ERRORS_LOGGED:
            self._protocol_errors_logged += 1
            log.warning("protocol error of the modem on %s: %s", self.port, description)
        if self.transcript is not None:
            self.transcript.note(f"protocol error of the modem: {description}")

    def _route(self, event: Event) -> None:
        pending = self._pending
        if pending is not None and pending.future.done():
            # It has its final result: what follows in the same read is unsolicited
            # ("+NETOPEN: 0" right after the OK of AT+NETOPEN, for expect_urc).
            pending = None
        if pending is not None and pending.line_in_flight and isinstance(event, Line | Final):
            # This line began before the command was written (a URC, noise, or a
            # late result of an earlier command): it cannot be the answer.
            pending.line_in_flight = False
            if isinstance(event, Line) and event.text not in self.boot_banners:
                self._publish(Urc(event.text, event.raw))
                return
            if isinstance(event, Final):
                if self.transcript is not None:
                    self.transcript.note(
                        f"ignored {event.text!r}: it began before {pending.command!r}"
                    )
                return
        if isinstance(event, Line):
            text = event.text
            if text in self.boot_banners:
                self._on_banner(text)
            elif LATE_BOOT_LINES.match(text):
                self._publish(Urc(text, event.raw))
            elif (
                pending is not None
                and pending.prompt_line is not None
                and pending.payload is not None
                and text == pending.prompt_line
            ):
                self._release_payload(pending)
            elif pending is not None and self._claims(pending, text):
                pending.lines.append(text)
            else:
                self._publish(Urc(text, event.raw))
        elif isinstance(event, Final):
            self._booting = False
            if pending is None or pending.future.done():
                if self.transcript is not None:
                    self.transcript.note(f"ignored {event.text!r}: no command is waiting for it")
                return
            if pending.require_line is not None and not any(
                line.startswith(pending.require_line) for line in pending.lines
            ):
                # A late final of an earlier command (or the probe's own, without its line).
                pending.lines.clear()
                if self.transcript is not None:
                    self.transcript.note(f"ignored stale {event.text!r}")
                return
            response = Response(pending.command, tuple(pending.lines), event.text, pending.data)
            pending.future.set_result((response, event))
            if event.success and pending.after_ok is not None:
                # The modem said OK to a command that enters data mode: its payload goes
                # once this read is routed (a banner behind the OK drops it), still inside
                # the caller's turn on the channel.
                after_ok, pending.after_ok = pending.after_ok, None
                self._release = (pending, after_ok, pending.payload_spans)
        elif isinstance(event, Block):
            if pending is not None and self._claims(pending, event.header_text):
                pending.data = event.data if pending.data is None else pending.data + event.data
                pending.lines.append(event.header_text)
            else:
                self._publish(Urc(event.header_text, event.header, event.data))
        elif isinstance(event, Echo):
            pass
        else:  # Prompt
            if pending is not None and pending.payload is not None:
                self._release_payload(pending)

    def _release_payload(self, pending: _Pending) -> None:
        """The modem asked for ``pending``'s payload: written once this read is routed (a
        banner behind the prompt fails the command, and then nothing is written: module
        doc, "Prompts")."""
        payload, pending.payload = pending.payload, None
        if payload is None:
            return
        self.parser.expect_prompt = False
        pending.payload_released_by_prompt = True
        self._release = (pending, payload, pending.payload_spans)

    def _claims(self, pending: _Pending, text: str) -> bool:
        match = _PREFIX.match(text)
        if match is None:
            bare = self._bare_urcs
            return not bare or not any(pattern.match(text) for pattern in bare)
        prefix = match.group(0).upper()
        if prefix not in pending.claims:
            return False
        shape = self._urc_shapes.get(prefix)
        return shape is None or shape(text)

    def _publish(self, urc: Urc) -> None:
        text = urc.text
        for prefix, callback in self._subscribers.of(text):
            if prefix is None or text.startswith(prefix):
                try:
                    callback(urc)
                except Exception:
                    log.exception("URC subscriber %r failed on %r", callback, text)

    def _on_banner(self, banner: str, *, reset_parser: bool = True) -> None:
        first = not self._booting
        self._booting = True
        self._release = None  # a payload released earlier in this read goes nowhere
        self._needs_setup = True
        if reset_parser:
            self.parser.reset()
        if self.transcript is not None:
            self.transcript.note(f"modem rebooted ({banner!r})")
        pending = self._pending
        if pending is not None:
            self._fail_pending(ModemRebooted(banner, command=pending.command))
        if first:
            for listener in list(self._reboot_listeners):
                try:
                    listener(banner)
                except Exception:
                    log.exception("reboot listener %r failed", listener)

    def _on_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc else "the port was closed"
        self._lost_reason = reason
        self._lost.set()
        self._release = None
        if self._closed:
            return
        if self.transcript is not None:
            self.transcript.note(f"link lost: {reason}")
        self._fail_pending(LinkLost(f"the link to {self.port} was lost: {reason}"))
        for listener in list(self._lost_listeners):
            try:
                listener(reason)
            except Exception:
                log.exception("link-lost listener %r failed", listener)

    def _fail_pending(self, error: AtBridgeError) -> None:
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error)


def _expire(future: asyncio.Future[tuple[Response, Final] | None]) -> None:
    if not future.done():
        future.set_result(None)


def _modem_error(command: str, final: Final) -> ModemError:
    if final.kind is FinalKind.CME or final.kind is FinalKind.CMS:
        kind = "CME" if final.kind is FinalKind.CME else "CMS"
        if final.code is not None:
            return ModemError(
                command, final.text, kind=kind, code=final.code, text=error_text(kind, final.code)
            )
        return ModemError(command, final.text, kind=kind, text=final.detail)
    return ModemError(command, final.text)


def _port_missing(exc: BaseException) -> bool:
    """Whether opening failed because the port is not there (pyserial keeps the cause)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in _PORT_MISSING:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _open_error(url: str, exc: BaseException) -> ConfigurationError:
    """What went wrong opening ``url``, in words that fit (see :meth:`Modem.open`)."""
    if _port_missing(exc):
        return PortNotFound(f"cannot open {url}: {exc}", hint=_port_hint(url))
    if url.startswith("rfc2217://"):
        return ConfigurationError(f"cannot open {url}: {exc}", hint=_rfc2217_hint(url, exc))
    if "://" in url:
        return ConfigurationError(f"cannot open {url}: {exc}", hint=_port_hint(url))
    from atbridge.transport import lock_refused, port_holders

    if lock_refused(exc):
        holders = port_holders(url)
        who = ", ".join(h.describe() for h in holders) if holders else "another process"
        return ConfigurationError(
            f"port {url} is in use by {who}",
            hint="stop the other program (or atbridge) using the modem, or give --port "
            "another port: two programs on one port would each read half of its bytes",
        )
    not_a_port = _not_a_serial_port(url)
    if not_a_port:
        return ConfigurationError(
            f"{url} is {not_a_port}, not a serial port",
            hint="give --port the modem's serial device (`atbridge ports` lists them; "
            "/dev/serial/by-id/... names stay the same across reboots), or "
            "socket://host:port for a board exported by ser2net",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return ConfigurationError(
            f"cannot open {url}: permission denied",
            hint="add your user to the group that owns it (`ls -l` shows it; usually "
            "dialout or uucp), then log in again",
        )
    return ConfigurationError(f"cannot open {url}: {exc}", hint=_port_hint(url))


def _not_a_serial_port(path: str) -> str:
    """What ``path`` is when it is not a terminal device (``""`` when it may be one)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "a pipe or a socket"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        return "" if os.isatty(fd) else "a device that is not a terminal"
    finally:
        os.close(fd)


def _rfc2217_hint(url: str, exc: BaseException) -> str:
    """What to try for an RFC 2217 port whose negotiation failed."""
    text = str(exc)
    if "does not seem to support RFC2217" in text:
        return (
            "the server does not speak RFC 2217 (Telnet COM port control): for a raw TCP "
            "export (ser2net `accepter: tcp,...`) use socket://host:port instead"
        )
    if "ign_set_control" not in url and ("waiting for option" in text or "parameter" in text):
        return (
            f"add ?ign_set_control to the URL ({_with_ign_set_control(url)}): the server "
            "does not answer the modem-control negotiation (ser2net's telnet(rfc2217) "
            "accepter on a port without control lines, a pty, a labgrid exporter)"
        )
    return _port_hint(url)


def _with_ign_set_control(url: str) -> str:
    return f"{url}&ign_set_control" if "?" in url else f"{url}?ign_set_control"


def _port_hint(url: str) -> str:
    if url.startswith(("socket://", "rfc2217://")):
        return "check that the host and port are right and that ser2net (or socat) is listening"
    try:
        from serial.tools import list_ports

        ports = [port.device for port in list_ports.comports()]
    except Exception:  # pragma: no cover - listing ports is best effort
        ports = []
    listed = ", ".join(ports) if ports else "none found"
    return f"check the device path and permissions (serial ports here: {listed})"
