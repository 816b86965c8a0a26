"""The fake modem engine: a pty, an AT command interpreter and the generic 3GPP commands.

Theory of operation
-------------------
``FakeModem.start()`` opens a pty pair, puts the slave side in raw mode and keeps the slave fd
open for the fake's whole life (so the master never sees EIO when a client closes and reopens
the port). The client (pyserial, or plain ``os.open`` in tests) opens ``fake.port``, the slave
path. The fake reads and writes the master fd from the running asyncio loop; it never blocks.
The boot banner sent by ``start()`` waits in the pty until a client reads it, but pyserial's
``open()`` flushes pending input, so a pyserial client that opens after ``start()`` misses it
(as with a board that booted before the port was opened): use ``reboot()`` to see one.

Bytes flow through two pacers, one per direction. Without a baud rate a pacer passes bytes
straight through. With one, it models an 8N1 line (10 bits per byte): input bytes reach the
interpreter, and output bytes reach the pty, only when their last bit would have crossed the
wire, scheduled against a running deadline (batches of about 4 ms of line time, each released
when its last byte is due, never early; epoll's 1 ms timer granularity is bridged by yielding
with ``call_soon`` for the last millisecond, so the pacing costs no extra millisecond a wait).
On a paced line the fake is an ideal modem that needs no time to think: what it writes in
direct answer to input (echo, result codes, the prompt, the result after a payload) starts on
the wire when that input's last byte had arrived, so the fake's own Python time is not
charged to the line (``_answer_from``); output after a real wait (network I/O, an injected
delay) starts when it is written.

Received bytes collect in one buffer, which is the modem's UART FIFO. When the interpreter is
idle it cuts the next command line out of it with the dialect's line rules (terminator, quote
awareness, backspace, maximum length; CR and LF before a line are skipped, empty lines are
ignored), echoes the line's bytes exactly as received if echo is on, and runs it:

    line -> text before the first "AT" dropped -> override? -> dialect syntax check
         -> Command -> handler -> Response -> bytes

A line with no ``AT`` at all is ignored (generic, V.250: characters before the prefix are
discarded) or answered ``ERROR`` (the nRF91 SLM), as the dialect says. Unknown commands and
malformed lines answer a plain ``ERROR`` whatever AT+CMEE says; bad parameter values answer
CME 50 (Incorrect parameters); AT+CMEE shapes CME errors. Input is decoded as Latin-1, so no
byte value can raise.

A handler is looked up by command name (``"+CGSN"``, ``"#XSLMVER"``, ``"E"`` for ATE, ``""``
for a bare AT): first the test's ``on_command`` overrides, then the dialect's table, then the
generic 3GPP TS 27.007 table below. A handler returns a ``Response`` (information lines and a
final result code, or an error that is rendered according to AT+CMEE), ``None`` (no response),
or an awaitable of either (for commands that wait on I/O; such a handler may also read raw
bytes with ``read_raw``/``read_until`` and answer early with ``respond_now``). While a command
runs, later command lines wait in the buffer, as on a real modem.

State changes a command causes on the air (registration after AT+CFUN=1, for instance) are
queued with ``after_response`` so their URCs follow the command's final result code.

Faults are one-shot or standing settings consumed per command: dropped responses (the command
still runs and its URCs still follow), delayed responses (the command is echoed at once, runs
and answers later), a URC inside the next response, garbage bytes, reboots (pending input,
unsent output, timers, held URCs and the command in progress are lost, like a brown-out),
echo, pacing.

Everything runs on the loop that called ``start()``; the public methods are meant to be called
from that loop (the test's task), not from other threads.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import os
import re
import tty
from collections import deque
from collections.abc import Awaitable, Callable, Container, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, TypeVar

__all__ = [
    "CME_ERROR_TEXT",
    "DIALECTS",
    "GENERIC",
    "GENERIC_COMMANDS",
    "Command",
    "CommandError",
    "Dialect",
    "FakeModem",
    "Handler",
    "HandlerResult",
    "Identity",
    "Kind",
    "ModemState",
    "Network",
    "Param",
    "PdpContext",
    "Response",
    "frame_line",
    "parse_command",
    "register_dialect",
]

log = logging.getLogger("tests.fakes")

CR: Final = 0x0D
LF: Final = 0x0A
CRLF: Final = b"\r\n"

#: Text of +CME ERROR codes for AT+CMEE=2 (3GPP TS 27.007 §9.2.1). Codes not listed here are
#: reported numerically even in verbose mode.
CME_ERROR_TEXT: Final[Mapping[int, str]] = MappingProxyType(
    {
        0: "phone failure",
        1: "no connection to phone",
        2: "phone-adaptor link reserved",
        3: "operation not allowed",
        4: "operation not supported",
        5: "PH-SIM PIN required",
        10: "SIM not inserted",
        11: "SIM PIN required",
        12: "SIM PUK required",
        13: "SIM failure",
        14: "SIM busy",
        15: "SIM wrong",
        16: "incorrect password",
        20: "memory full",
        21: "invalid index",
        22: "not found",
        23: "memory failure",
        24: "text string too long",
        25: "invalid characters in text string",
        30: "no network service",
        31: "network timeout",
        32: "network not allowed - emergency calls only",
        50: "Incorrect parameters",
        100: "unknown",
    }
)

# --------------------------------------------------------------------------------------------
# Commands, responses, errors


class Kind(enum.Enum):
    """The form of an AT command: ``AT+X`` (exec), ``AT+X=...`` (set), ``AT+X?``, ``AT+X=?``."""

    EXEC = "exec"
    SET = "set"
    READ = "read"
    TEST = "test"


class CommandError(Exception):
    """Raised by a handler to fail the command.

    ``code=None`` gives a plain ``ERROR`` whatever AT+CMEE says; an int gives ``ERROR``,
    ``+CME ERROR: <code>`` or ``+CME ERROR: <text>`` according to AT+CMEE 0, 1 or 2.
    """

    def __init__(self, code: int | None = None) -> None:
        super().__init__("ERROR" if code is None else f"+CME ERROR: {code}")
        self.code = code


@dataclass(frozen=True)
class Param:
    """One comma-separated parameter of a set command, as written."""

    text: str
    quoted: bool

    @property
    def empty(self) -> bool:
        """True for an omitted parameter (``AT+X=1,,3``)."""
        return not self.quoted and self.text == ""


@dataclass(frozen=True)
class Command:
    """A parsed command line.

    ``line`` is the command from its ``AT`` prefix on, without terminator; ``name`` is the
    upper-cased lookup key (``"+CGSN"``, ``"%XICCID"``, ``"E"`` for ATE0, ``""`` for AT).
    """

    line: str
    name: str
    kind: Kind
    params: tuple[Param, ...] = ()

    def has(self, index: int) -> bool:
        """True if parameter ``index`` is present and not empty."""
        return index < len(self.params) and not self.params[index].empty

    def int_arg(
        self, index: int, *, valid: Container[int] | None = None, default: int | None = None
    ) -> int:
        """Parameter ``index`` as a decimal integer; CME 50 if missing, malformed or invalid."""
        if not self.has(index):
            if default is None:
                raise CommandError(50)
            return default
        param = self.params[index]
        if param.quoted or not param.text.isascii() or not param.text.isdigit():
            raise CommandError(50)
        value = int(param.text)
        if valid is not None and value not in valid:
            raise CommandError(50)
        return value

    def str_arg(self, index: int, *, default: str | None = None) -> str:
        """Parameter ``index`` as a string, which must be double-quoted; CME 50 otherwise."""
        if not self.has(index):
            if default is None:
                raise CommandError(50)
            return default
        param = self.params[index]
        if not param.quoted:
            raise CommandError(50)
        return param.text

    def require_kind(self, *kinds: Kind) -> None:
        """Plain ERROR unless the command has one of ``kinds``."""
        if self.kind not in kinds:
            raise CommandError(None)


_AT_PREFIX_RE: Final = re.compile(r"[Aa][Tt]")
_EXTENDED_PREFIXES: Final = "+%#^$*"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9]+")
_BASIC_RE: Final = re.compile(r"(&?[A-Za-z])([0-9]*)")


def _split_params(text: str) -> tuple[Param, ...] | None:
    """Split set-command parameters at commas outside quotes; None if a quote is unclosed."""
    params: list[Param] = []
    current: list[str] = []
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
            current.append(char)
        elif char == "," and not in_quotes:
            params.append(_make_param("".join(current)))
            current = []
        else:
            current.append(char)
    if in_quotes:
        return None
    params.append(_make_param("".join(current)))
    return tuple(params)


def _make_param(raw: str) -> Param:
    stripped = raw.strip(" ")
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"':
        inner = stripped[1:-1]
        if '"' not in inner:
            return Param(inner, True)
    return Param(stripped, False)


def parse_command(line: str) -> Command | None:
    """Parse a command line that starts with AT (any case); None if it is malformed.

    Only one command per line: V.250 concatenation (``AT+A;+B``, ``ATE0V1``) is not supported.
    """
    body = line[2:]
    if body == "":
        return Command(line, "", Kind.EXEC)
    if body[0] in _EXTENDED_PREFIXES:
        match = _NAME_RE.match(body, 1)
        if match is None:
            return None
        name = body[0] + match.group().upper()
        rest = body[match.end() :]
        if rest == "":
            return Command(line, name, Kind.EXEC)
        if rest == "?":
            return Command(line, name, Kind.READ)
        if rest == "=?":
            return Command(line, name, Kind.TEST)
        if rest.startswith("="):
            params = _split_params(rest[1:])
            if params is None:
                return None
            return Command(line, name, Kind.SET, params)
        return None
    basic = _BASIC_RE.fullmatch(body)
    if basic is None:
        return None
    name, digits = basic.group(1).upper(), basic.group(2)
    if digits:
        return Command(line, name, Kind.SET, (Param(digits, False),))
    return Command(line, name, Kind.EXEC)


@dataclass(frozen=True)
class Response:
    """What a command answers.

    ``lines`` is the information text: each ``str`` is one line, and consecutive lines form
    one block framed ``\\r\\n<line>\\r\\n<line>\\r\\n`` (3GPP TS 27.007 multi-line responses);
    a ``bytes`` item is written verbatim at its place (binary payloads). ``final`` is the
    final result code, framed ``\\r\\n<final>\\r\\n``; None for no final result code. An error
    response (``Response.error``) renders its final result code from AT+CMEE.
    """

    lines: tuple[str | bytes, ...] = ()
    final: str | None = "OK"
    is_error: bool = False
    error_code: int | None = None

    @classmethod
    def ok(cls, *lines: str | bytes) -> Response:
        """Information lines (maybe none) then ``OK``."""
        return cls(lines=lines)

    @classmethod
    def error(cls, code: int | None = None) -> Response:
        """A failed command: plain ``ERROR`` (code None) or a CME error shaped by AT+CMEE."""
        return cls(final=None, is_error=True, error_code=code)


HandlerResult: TypeAlias = Response | None
Handler: TypeAlias = Callable[["FakeModem", Command], "HandlerResult | Awaitable[HandlerResult]"]


# --------------------------------------------------------------------------------------------
# Dialects


def frame_line(text: str) -> bytes:
    """V.250 verbose framing of one line: ``\\r\\n<text>\\r\\n``."""
    return CRLF + text.encode("latin-1", errors="replace") + CRLF


@dataclass(frozen=True)
class Identity:
    """What the identity commands report."""

    manufacturer: str
    model: str
    revision: str
    imei: str
    imsi: str
    iccid: str
    svn: str = "01"


@dataclass(frozen=True)
class Network:
    """The network the fake registers on."""

    plmn: str = "26201"
    long_name: str = "Fake Network"
    short_name: str = "Fake"
    tac: str = "0A1B"
    ci: str = "01234567"
    act: int = 7
    apn: str = "internet"
    ip: str = "10.0.1.1"


def _no_state() -> object:
    return None


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """A modem family as the fake speaks it. Register it with ``register_dialect``.

    A dialect module builds one of these and registers it; the engine reads nothing else.

    - line rules: ``terminator`` ("CR" = S3, a following LF is ignored as a stray byte; "LF";
      "CRLF" = only CR immediately followed by LF ends a line, a lone CR is a character);
      ``quote_aware`` (terminators inside double quotes do not end the line); ``backspace``
      (bytes that delete the previous character); ``max_line`` (longer lines answer ERROR);
      ``non_at_line`` (what a line without an ``AT`` prefix gets: nothing, or ERROR).
    - ``syntax_check``: called with the line from its AT prefix on; False gives plain ERROR.
    - ``boot_banner``: ``(delay_s, text)`` lines sent at power-on, each through
      ``frame_banner``.
    - power-on defaults: ``default_echo``, ``boot_cfun``.
    - ``identity``; ``cfun_modes`` accepted by AT+CFUN; ``sim_powered_cfun`` (CFUN modes in
      which the SIM answers), ``sim_off_error`` (CME code when it does not), ``no_sim_stat``
      (+CEREG stat with CFUN=1 and no SIM); ``cid_range`` and ``default_contexts``
      (cid -> (PDP type, APN)) for AT+CGDCONT.
    - ``handlers``: extra or replacing command handlers keyed by command name (``"#XSLMVER"``);
      a None value removes a generic command.
    - ``new_state``: builds the dialect's own state at every power-on (``fake.dialect_state``);
      ``on_reboot`` runs before a reboot resets the fake (close sockets, ...); ``on_stop`` is
      awaited by ``FakeModem.stop``.
    """

    name: str
    description: str = ""
    terminator: Literal["CR", "LF", "CRLF"] = "CR"
    quote_aware: bool = False
    backspace: bytes = b"\x08"
    max_line: int = 4096
    non_at_line: Literal["ignore", "error"] = "ignore"
    syntax_check: Callable[[str], bool] | None = None
    boot_banner: tuple[tuple[float, str], ...] = ()
    frame_banner: Callable[[str], bytes] = frame_line
    default_echo: bool = True
    boot_cfun: int = 1
    identity: Identity
    cfun_modes: tuple[int, ...] = (0, 1, 4)
    sim_powered_cfun: frozenset[int] = frozenset({0, 1, 4})
    sim_off_error: int = 13
    no_sim_stat: int = 0
    cid_range: tuple[int, int] = (1, 15)
    default_contexts: Mapping[int, tuple[str, str]] = field(
        default_factory=lambda: MappingProxyType({1: ("IP", "")})
    )
    handlers: Mapping[str, Handler | None] = field(default_factory=lambda: MappingProxyType({}))
    new_state: Callable[[], object] = _no_state
    on_reboot: Callable[[FakeModem], None] | None = None
    on_stop: Callable[[FakeModem], Awaitable[None]] | None = None


#: Every registered dialect by name. Dialect modules add themselves with ``register_dialect``.
DIALECTS: dict[str, Dialect] = {}


def register_dialect(dialect: Dialect) -> Dialect:
    """Make ``dialect`` available as ``FakeModem(dialect=dialect.name)``; returns it."""
    if dialect.name in DIALECTS and DIALECTS[dialect.name] is not dialect:
        raise ValueError(f"dialect {dialect.name!r} is already registered")
    DIALECTS[dialect.name] = dialect
    return dialect


# --------------------------------------------------------------------------------------------
# Modem state


@dataclass
class PdpContext:
    """One AT+CGDCONT entry."""

    pdp_type: str
    apn: str


@dataclass
class ModemState:
    """Everything a power cycle resets."""

    echo: bool
    cfun: int
    cmee: int = 0
    cereg_n: int = 0
    stat: int = 0
    tac: str | None = None
    ci: str | None = None
    act: int = 7
    cause_type: int | None = None
    reject_cause: int | None = None
    active_time: str | None = None
    periodic_tau: str | None = None
    cops_mode: int = 0
    cops_format: int = 2
    contexts: dict[int, PdpContext] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        """Registered on the home network or roaming (+CEREG stat 1 or 5)."""
        return self.stat in (1, 5)


# --------------------------------------------------------------------------------------------
# Line reader and pacer


class _LineReader:
    """Cuts command lines out of the receive buffer, incrementally, with a dialect's rules."""

    def __init__(self, dialect: Dialect) -> None:
        self._mode = dialect.terminator
        self._quote_aware = dialect.quote_aware
        self._backspace = frozenset(dialect.backspace)
        self._max = dialect.max_line
        self.reset()

    def reset(self) -> None:
        self._pos = 0
        self._start = -1
        self._buf = bytearray()
        self._length = 0
        self._in_quotes = False
        self._prev = 0

    def next_line(self, rx: bytearray) -> tuple[bytes, bytes, bool] | None:
        """Remove the next complete line from ``rx``: (echo bytes, command, overflowed)."""
        i = self._pos
        end = len(rx)
        while i < end:
            byte = rx[i]
            i += 1
            if self._start < 0:
                if byte in (CR, LF):
                    continue  # stray line ending between command lines
                self._start = i - 1
            if byte in self._backspace:
                if self._length > 0:
                    self._length -= 1
                    if len(self._buf) > self._length:
                        removed = self._buf.pop()
                        if removed == 0x22:
                            self._in_quotes = not self._in_quotes
                    self._prev = self._buf[-1] if self._buf else 0
                continue
            done = False
            if not (self._quote_aware and self._in_quotes):
                if self._mode == "CR":
                    done = byte == CR
                elif self._mode == "LF":
                    done = byte == LF
                elif byte == LF and self._length > 0 and self._prev == CR:
                    self._length -= 1
                    if len(self._buf) > self._length:
                        self._buf.pop()
                    done = True
            if done and self._length == 0:
                del rx[:i]  # an empty command line is ignored
                self.reset()
                i, end = 0, len(rx)
                continue
            if done:
                echo = bytes(rx[self._start : i])
                line = bytes(self._buf)
                overflow = self._length > len(self._buf)
                del rx[:i]
                self.reset()
                return echo, line, overflow
            if len(self._buf) < self._max:
                self._buf.append(byte)
            self._length += 1
            if byte == 0x22:
                self._in_quotes = not self._in_quotes
            self._prev = byte
        if self._start < 0:
            del rx[:i]
            i = 0
        self._pos = i
        return None


class _Pacer:
    """Passes bytes to ``sink`` no faster than a serial line at ``rate`` bytes/s would.

    Bytes go out in batches of about ``_BATCH_SECONDS`` of line time, each released when its
    last byte is due. Event loop timers are coarse (epoll rounds a timeout up to the next
    millisecond), so a wait sleeps on a timer until ``_SPIN_SECONDS`` before the due time and
    covers the rest by re-queuing itself with ``call_soon``: precise, never early, and other
    callbacks keep running in between.
    """

    _BATCH_SECONDS: Final = 0.004
    _SPIN_SECONDS: Final = 0.0011

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._sink = sink
        self._rate: float | None = None
        self._pending = bytearray()
        self._clock = 0.0  # loop time at which the last released byte was fully on the wire
        self._handle: asyncio.Handle | None = None
        self._due = 0.0

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        self._rate = rate
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if rate is None:
            if self._pending:
                data = bytes(self._pending)
                self._pending.clear()
                self._sink(data)
        else:
            self._clock = max(self._clock, self._loop.time())
            if self._pending:
                self._schedule()

    def push(self, data: bytes, since: float | None = None) -> None:
        """Queue ``data``; on an idle line its first byte starts at ``since`` (loop time, the
        default now), never before the line's previous byte is through."""
        if not data:
            return
        if self._rate is None:
            self._sink(data)
            return
        if not self._pending:
            self._clock = max(self._clock, self._loop.time() if since is None else since)
        self._pending += data
        if self._handle is None:
            self._schedule()

    def wire_time(self) -> float:
        """Loop time at which the bytes released last were through (now when unpaced)."""
        return self._loop.time() if self._rate is None else self._clock

    def drained_at(self) -> float:
        """Loop time at which everything pushed so far will have been released."""
        if self._rate is None or not self._pending:
            return self._loop.time()
        return self._clock + len(self._pending) / self._rate

    def clear(self) -> None:
        self._pending.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._rate is not None
        batch = min(len(self._pending), max(1, int(self._rate * self._BATCH_SECONDS)))
        self._due = self._clock + batch / self._rate
        self._wait()

    def _wait(self) -> None:
        wake = self._due - self._SPIN_SECONDS
        if wake > self._loop.time():
            self._handle = self._loop.call_at(wake, self._wait)
        elif self._loop.time() < self._due:
            self._handle = self._loop.call_soon(self._wait)
        else:
            self._handle = None
            self._release()

    def _release(self) -> None:
        if self._rate is None:
            return
        elapsed_bytes = (self._loop.time() - self._clock) * self._rate
        due = min(int(elapsed_bytes + 1e-9), len(self._pending))
        if due > 0:
            data = bytes(self._pending[:due])
            del self._pending[:due]
            self._clock += due / self._rate
            self._sink(data)
        if self._pending and self._handle is None:
            self._schedule()


# --------------------------------------------------------------------------------------------
# The fake modem


@dataclass
class _Exchange:
    """One command between its receipt and its response."""

    line: str
    drop: bool
    delay: float
    after: list[Callable[[], None]] = field(default_factory=list)
    responded: bool = False


_T = TypeVar("_T")
_HOT_LINE_SECONDS: Final = 0.005
CommandMatch: TypeAlias = str | re.Pattern[str] | Callable[[str], bool]


def _command_predicate(match: CommandMatch) -> Callable[[str], bool]:
    if isinstance(match, str):
        text = match

        def equal(line: str) -> bool:
            return line == text

        return equal
    if isinstance(match, re.Pattern):
        pattern = match

        def matches(line: str) -> bool:
            return pattern.fullmatch(line) is not None

        return matches
    return match


def _command_key(name: str) -> str:
    """Normalise ``"AT+CGDCONT"``, ``"+cgdcont"``, ``"ATE"`` to a handler key."""
    key = name.strip().upper()
    for stop in "=?":
        key = key.split(stop, 1)[0]
    if key.startswith("AT"):
        key = key[2:]
    return key


class FakeModem:
    """A fake cellular modem on a real pty. See the module docstring for how it works.

    ``dialect`` is a registered dialect name or a ``Dialect``. ``registration_delay`` is the
    time from AT+CFUN=1 (+CEREG stat 2, searching) to stat 1 (registered). ``baud`` paces
    both directions at 10 bits per byte (None: no pacing). ``echo`` and ``cfun`` override the
    dialect's power-on defaults (and stay the power-on defaults across reboots). ``sim``
    says whether a SIM card is inserted. ``identity`` and ``network`` override the dialect's
    identity strings and the network the fake registers on. ``hot_line`` (with ``baud``, for
    benchmarks) keeps polling the pty for a few milliseconds after each byte instead of
    sleeping, so the fake's own wake-up latency is not charged to the paced line.
    """

    def __init__(
        self,
        dialect: str | Dialect = "nrf91-slm",
        *,
        registration_delay: float = 0.0,
        baud: int | None = None,
        echo: bool | None = None,
        cfun: int | None = None,
        sim: bool = True,
        identity: Identity | None = None,
        network: Network | None = None,
        hot_line: bool = False,
    ) -> None:
        if isinstance(dialect, str):
            try:
                dialect = DIALECTS[dialect]
            except KeyError:
                known = ", ".join(sorted(DIALECTS))
                raise ValueError(f"unknown dialect {dialect!r}; known: {known}") from None
        if cfun is not None and cfun not in dialect.cfun_modes:
            raise ValueError(f"cfun {cfun} is not one of {dialect.cfun_modes}")
        self.dialect: Final = dialect
        self.identity = identity or dialect.identity
        self.network = network or Network()
        self.registration_delay = registration_delay
        self.sim_inserted = sim
        self.boot_echo = dialect.default_echo if echo is None else echo
        self.boot_cfun = dialect.boot_cfun if cfun is None else cfun
        self.rsrp_index = 62
        self.rsrq_index = 31
        self.commands: list[str] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.state = ModemState(echo=self.boot_echo, cfun=self.boot_cfun)
        self.dialect_state: object = None

        self._baud = baud
        self.hot_line = hot_line
        self._hot_until = 0.0
        self._spinner: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._port: str | None = None
        self._wbuf = bytearray()
        self._rx = bytearray()
        self._reader = _LineReader(dialect)
        self._tx: _Pacer | None = None
        self._rx_pacer: _Pacer | None = None
        # What is written in direct answer to input starts on the wire when that input had
        # arrived: (the task answering or None, the wire time). See _answer_from.
        self._answer: tuple[asyncio.Task[Any] | None, float] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registration_timer: asyncio.TimerHandle | None = None
        self._exchange: _Exchange | None = None
        self._busy = False
        self._draining = False
        self._raw_waiter: tuple[Callable[[bytearray], bytes | None], asyncio.Future[bytes]] | None
        self._raw_waiter = None
        self._drops = 0
        self._delays: deque[float] = deque()
        self._mid_response_urcs: list[str] = []
        self._held_urcs: list[str] | None = None
        self._overrides: dict[str, tuple[Handler | Response, int | None]] = {}
        self._command_waiters: list[tuple[Callable[[str], bool], asyncio.Future[str]]] = []

    # ---- lifecycle

    async def start(self) -> None:
        """Create the pty, then power on: boot banner, power-on state."""
        if self._master is not None:
            raise RuntimeError("fake modem already started")
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._loop = loop
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        self._tx = _Pacer(loop, self._write_master)
        self._rx_pacer = _Pacer(loop, self._on_rx_bytes)
        self.set_baud(self._baud)
        loop.add_reader(master, self._on_readable)
        self._power_on(None)
        log.debug("fake %s modem on %s", self.dialect.name, self._port)

    async def stop(self) -> None:
        """Cancel every timer and task and close the pty. Safe to call twice."""
        master, slave, loop = self._master, self._slave, self._loop
        if master is None or loop is None:
            return
        loop.remove_reader(master)
        self._cancel_activity()
        self._master = self._slave = None  # from here on nothing reaches the pty
        try:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for _, future in self._command_waiters:
                future.cancel()
            if self.dialect.on_stop is not None:
                await self.dialect.on_stop(self)
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)

    async def __aenter__(self) -> FakeModem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> str:
        """The pty slave path (``/dev/pts/N``) a client opens."""
        if self._port is None:
            raise RuntimeError("fake modem not started")
        return self._port

    @property
    def baud(self) -> int | None:
        """The pacing baud rate, None when unpaced."""
        return self._baud

    # ---- test controls

    def send_urc(self, line: str) -> None:
        """Send one unsolicited line now, framed ``\\r\\n<line>\\r\\n`` (or queue it while
        URCs are held, see ``hold_urcs``)."""
        if self._held_urcs is not None:
            self._held_urcs.append(line)
        else:
            self.write_raw(frame_line(line))

    def hold_urcs(self, hold: bool) -> None:
        """Hold URCs (a modem in data mode buffers them) or send the held ones now, in order.
        A reboot loses held URCs."""
        if hold:
            if self._held_urcs is None:
                self._held_urcs = []
            return
        held, self._held_urcs = self._held_urcs or [], None
        for line in held:
            self.send_urc(line)

    def urc_during_next_response(self, line: str) -> None:
        """Put a URC inside the next response: after its information lines, before its final
        result code (right after the echo when it has no information lines)."""
        self._mid_response_urcs.append(line)

    def set_echo(self, on: bool) -> None:
        """Turn command echo on or off now, whatever the dialect supports."""
        self.state.echo = on

    def reboot(self, banner: str | bytes | None = None) -> None:
        """Power-cycle: lose pending input, output, timers and the command in progress, reset
        the state to power-on defaults and send the boot banner (the dialect's, ``banner``
        framed as the dialect frames banners, or ``banner`` bytes verbatim)."""
        if self._master is None:
            raise RuntimeError("fake modem not started")
        log.debug("reboot")
        if self.dialect.on_reboot is not None:
            self.dialect.on_reboot(self)
        self._cancel_activity()
        current = asyncio.current_task() if self._loop is not None else None
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._power_on(banner)

    def send_garbage(self, data: bytes) -> None:
        """Send raw bytes now (line noise, a stray 0xFF, a half line)."""
        self.write_raw(data)

    def drop_next_response(self, count: int = 1) -> None:
        """The next ``count`` commands run but send no response (echo still happens)."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._drops += count

    def delay_next_response(self, seconds: float) -> None:
        """The next command is echoed at once but runs, and answers, ``seconds`` later; later
        commands wait behind it. Calls queue up: one delay per command."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._delays.append(seconds)

    def set_baud(self, baud: int | None) -> None:
        """Pace both directions at ``baud`` (8N1: 10 bits a byte), or stop pacing (None)."""
        if baud is not None and baud <= 0:
            raise ValueError("baud must be positive")
        self._baud = baud
        rate = None if baud is None else baud / 10.0
        if self._tx is not None and self._rx_pacer is not None:
            self._tx.set_rate(rate)
            self._rx_pacer.set_rate(rate)

    def set_registration(
        self,
        stat: int,
        reject_cause: int | None = None,
        *,
        tac: str | None = None,
        ci: str | None = None,
        act: int | None = None,
    ) -> None:
        """Force the +CEREG stat (and EMM reject cause) now, stopping any registration in
        progress; sends the +CEREG URC if AT+CEREG enabled one. Stat 1 and 5 carry the
        network's cell (or ``tac``/``ci``/``act``)."""
        self._cancel_registration_timer()
        s = self.state
        located = stat in (1, 5) or tac is not None
        s.tac = (tac or self.network.tac) if located else None
        s.ci = (ci or self.network.ci) if located else None
        s.act = self.network.act if act is None else act
        s.stat = stat
        s.cause_type = None if reject_cause is None else 0
        s.reject_cause = reject_cause
        self._send_cereg_urc()

    def set_signal(self, rsrp_index: int, rsrq_index: int) -> None:
        """Signal reported by +CESQ while registered: RSRP index 0..97 (dBm = index - 140) and
        RSRQ index 0..34 (dB = index / 2 - 20); 255 = unknown."""
        if not (0 <= rsrp_index <= 97 or rsrp_index == 255):
            raise ValueError("rsrp_index must be 0..97 or 255")
        if not (0 <= rsrq_index <= 34 or rsrq_index == 255):
            raise ValueError("rsrq_index must be 0..34 or 255")
        self.rsrp_index, self.rsrq_index = rsrp_index, rsrq_index

    def set_sim(self, inserted: bool) -> None:
        """Insert or remove the SIM card (takes effect for the next SIM access)."""
        self.sim_inserted = inserted

    def set_psm(self, active_time: str | None, periodic_tau: str | None) -> None:
        """PSM timers granted by the network (8-character bit strings), shown by +CEREG at
        levels 4 and 5 while registered; None, None for no PSM."""
        self.state.active_time, self.state.periodic_tau = active_time, periodic_tau

    def on_command(
        self, name: str, handler: Handler | Response, *, times: int | None = None
    ) -> None:
        """Override one command (``"AT+CGDCONT"``, ``"+CGDCONT"``, ``"ATE"``...) with a handler
        or a fixed Response, for ``times`` uses (None: until cleared). A handler can fall back
        to the normal behaviour with ``fake.run_default(cmd)``."""
        self._overrides[_command_key(name)] = (handler, times)

    def clear_on_command(self, name: str) -> None:
        """Remove an ``on_command`` override."""
        self._overrides.pop(_command_key(name), None)

    async def wait_for_command(
        self, match: CommandMatch, *, timeout: float = 5.0, start: int = 0
    ) -> str:
        """Return the first received command line (``commands[start:]``, then new ones) equal
        to ``match`` (a str), matching it (a compiled regex, ``fullmatch``) or accepted by it
        (a callable); TimeoutError after ``timeout`` seconds."""
        predicate = _command_predicate(match)
        for line in self.commands[start:]:
            if predicate(line):
                return line
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._command_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._command_waiters.remove(waiter)

    # ---- for dialect scripts

    def write_raw(self, data: bytes) -> None:
        """Queue bytes for the wire (paced if a baud rate is set)."""
        if self._tx is None or self._master is None:
            raise RuntimeError("fake modem not started")
        answer = self._answer
        since = None
        if answer is not None and answer[0] is asyncio.current_task(self._require_loop()):
            since = answer[1]
        self._tx.push(data, since)

    def after_response(self, action: Callable[[], None]) -> None:
        """Run ``action`` right after the current command's response is sent (or dropped);
        at once when no command is in progress."""
        if self._exchange is not None and not self._exchange.responded:
            self._exchange.after.append(action)
        else:
            action()

    def after_output(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every byte queued so far is on the wire (at once when unpaced):
        an orderly reset sends its ``OK`` before it reboots."""
        assert self._tx is not None
        self.call_later(max(0.0, self._tx.drained_at() - self._require_loop().time()), action)

    def respond_now(self, response: Response) -> None:
        """Send the current command's response before its handler returns (an async handler
        that goes on to read raw bytes after ``OK``); the handler then returns None."""
        if self._exchange is None:
            raise RuntimeError("no command in progress")
        self._send_response(self._exchange, response)

    def discard_stray_line_feed(self) -> None:
        """Drop an LF that followed the current command's CR and has already arrived.

        A V.250 modem ignores it as part of the line ending; a payload the host writes
        after seeing the prompt starts after it. Call it just before sending a prompt."""
        if self._rx[:1] == b"\n":
            del self._rx[:1]

    async def read_raw(self, count: int) -> bytes:
        """Take exactly ``count`` received bytes, bypassing the line reader (binary payloads
        after a ``> `` prompt). Only while a command is in progress."""

        def take(rx: bytearray) -> bytes | None:
            if len(rx) < count:
                return None
            data = bytes(rx[:count])
            del rx[:count]
            return data

        return await self._wait_raw(take)

    async def read_until(self, terminator: bytes) -> bytes:
        """Take received bytes up to ``terminator`` (consumed, not returned), bypassing the
        line reader (data mode ended by ``+++``). Only while a command is in progress."""

        def take(rx: bytearray) -> bytes | None:
            index = rx.find(terminator)
            if index < 0:
                return None
            data = bytes(rx[:index])
            del rx[: index + len(terminator)]
            return data

        return await self._wait_raw(take)

    def call_later(
        self, delay: float, action: Callable[..., None], *args: Any
    ) -> asyncio.TimerHandle:
        """``loop.call_later`` whose timer a reboot or ``stop()`` cancels."""
        loop = self._require_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            action(*args)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)
        return handle

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` as a task that a reboot or ``stop()`` cancels; errors are logged."""
        task = self._require_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def run_default(self, cmd: Command) -> HandlerResult | Awaitable[HandlerResult]:
        """Run the dialect's or the generic handler for ``cmd``, skipping overrides."""
        handler = self._default_handler(cmd.name)
        if handler is None:
            return Response.error()
        return handler(self, cmd)

    def dialect_state_as(self, kind: type[_T]) -> _T:
        """``dialect_state``, checked to be a ``kind``."""
        if not isinstance(self.dialect_state, kind):
            raise TypeError(f"dialect state is {type(self.dialect_state).__name__}")
        return self.dialect_state

    def check_sim(self) -> None:
        """CME 10 if no SIM is inserted; the dialect's error if the SIM is not powered."""
        if not self.sim_inserted:
            raise CommandError(10)
        if self.state.cfun not in self.dialect.sim_powered_cfun:
            raise CommandError(self.dialect.sim_off_error)

    def format_error(self, code: int | None) -> str:
        """The final result code for an error under the current AT+CMEE setting."""
        if code is None or self.state.cmee == 0:
            return "ERROR"
        if self.state.cmee == 2 and code in CME_ERROR_TEXT:
            return f"+CME ERROR: {CME_ERROR_TEXT[code]}"
        return f"+CME ERROR: {code}"

    # ---- registration (used by the generic commands)

    def begin_registration(self) -> None:
        """Start searching (+CEREG stat 2) and register after ``registration_delay``; with no
        SIM, report the dialect's no-SIM stat instead."""
        self._cancel_registration_timer()
        if not self.sim_inserted:
            self._update_registration(self.dialect.no_sim_stat, located=False)
            return
        self._update_registration(2, located=False)
        self._registration_timer = self.call_later(
            self.registration_delay, self._complete_registration
        )

    def stop_registration(self) -> None:
        """Leave the network: +CEREG stat 0."""
        self._cancel_registration_timer()
        self._update_registration(0, located=False)

    def cereg_fields(self, n: int) -> str:
        """+CEREG fields after ``<n>`` (read) or after the colon (URC), shaped by level ``n``."""
        s = self.state
        fields = [str(s.stat)]
        if n < 2:
            return fields[0]
        location = [f'"{s.tac}"', f'"{s.ci}"', str(s.act)] if s.tac is not None else ["", "", ""]
        show_cause = n in (3, 5) and s.reject_cause is not None
        show_psm = n >= 4 and s.registered and s.active_time is not None
        tail = list(location)
        if show_cause or show_psm:
            tail += [str(s.cause_type), str(s.reject_cause)] if show_cause else ["", ""]
        if show_psm:
            tail += [f'"{s.active_time}"', f'"{s.periodic_tau}"']
        if any(tail):
            fields += tail
        return ",".join(fields)

    # ---- internals: power

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("fake modem not started")
        return self._loop

    def _power_on(self, banner: str | bytes | None) -> None:
        self.state = ModemState(echo=self.boot_echo, cfun=self.boot_cfun, act=self.network.act)
        self.state.contexts = {
            cid: PdpContext(pdp_type, apn)
            for cid, (pdp_type, apn) in self.dialect.default_contexts.items()
        }
        self.dialect_state = self.dialect.new_state()
        if banner is None:
            for delay, text in self.dialect.boot_banner:
                if delay <= 0:
                    self.write_raw(self.dialect.frame_banner(text))
                else:
                    self.call_later(delay, self.write_raw, self.dialect.frame_banner(text))
        elif isinstance(banner, bytes):
            self.write_raw(banner)
        else:
            self.write_raw(self.dialect.frame_banner(banner))
        if self.state.cfun == 1:
            self.begin_registration()

    def _cancel_activity(self) -> None:
        if self._spinner is not None:
            self._spinner.cancel()
            self._spinner = None
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._registration_timer = None
        if self._tx is not None:
            self._tx.clear()
        if self._rx_pacer is not None:
            self._rx_pacer.clear()
        self._wbuf.clear()
        if self._master is not None and self._loop is not None:
            self._loop.remove_writer(self._master)
        self._rx.clear()
        self._reader.reset()
        if self._raw_waiter is not None:
            self._raw_waiter[1].cancel()
            self._raw_waiter = None
        self._exchange = None
        self._busy = False
        self._held_urcs = None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fake modem task failed", exc_info=task.exception())

    # ---- internals: registration

    def _cancel_registration_timer(self) -> None:
        if self._registration_timer is not None:
            self._registration_timer.cancel()
            self._timers.discard(self._registration_timer)
            self._registration_timer = None

    def _complete_registration(self) -> None:
        self._registration_timer = None
        self._update_registration(1, located=True)

    def _update_registration(self, stat: int, *, located: bool) -> None:
        s = self.state
        tac = self.network.tac if located else None
        ci = self.network.ci if located else None
        stat_changed = s.stat != stat
        changed = stat_changed or (s.tac, s.ci) != (tac, ci) or s.reject_cause is not None
        s.stat, s.tac, s.ci = stat, tac, ci
        s.act = self.network.act
        s.cause_type = s.reject_cause = None
        if stat_changed or (changed and s.cereg_n >= 2):
            self._send_cereg_urc()

    def _send_cereg_urc(self) -> None:
        if self.state.cereg_n > 0:
            self.send_urc("+CEREG: " + self.cereg_fields(self.state.cereg_n))

    # ---- internals: pty I/O

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO cannot happen while we hold the slave, but never crash
            log.debug("pty read failed: %s", exc)
            return
        if not data:
            return
        self._keep_hot()
        self.bytes_in += len(data)
        log.debug("<- %r", data)
        assert self._rx_pacer is not None
        self._rx_pacer.push(data)

    def _write_master(self, data: bytes) -> None:
        if self._master is None:
            return
        self._keep_hot()
        log.debug("-> %r", data)
        if self._wbuf:
            self._wbuf += data
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            return
        self.bytes_out += written
        if written < len(data):
            self._wbuf += data[written:]
            self._require_loop().add_writer(self._master, self._on_writable)

    def _keep_hot(self) -> None:
        """With ``hot_line`` on a paced line, poll the pty for ``_HOT_LINE_SECONDS`` after
        each byte in or out instead of sleeping in the kernel: a modem's UART takes a byte
        the moment it arrives, while a process woken from sleep takes tens of microseconds
        (more in a virtual machine) that a benchmark would charge to the line."""
        if not self.hot_line or self._baud is None or self._loop is None:
            return
        self._hot_until = self._loop.time() + _HOT_LINE_SECONDS
        if self._spinner is None:
            self._spinner = self._loop.call_soon(self._spin)

    def _spin(self) -> None:
        loop = self._loop
        if loop is not None and self._master is not None and loop.time() < self._hot_until:
            self._spinner = loop.call_soon(self._spin)
        else:
            self._spinner = None

    def _on_writable(self) -> None:
        if self._master is None:
            return
        try:
            written = os.write(self._master, self._wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            written = len(self._wbuf)
        self.bytes_out += written
        del self._wbuf[:written]
        if not self._wbuf:
            self._require_loop().remove_writer(self._master)

    # ---- internals: input and command execution

    def _on_rx_bytes(self, data: bytes) -> None:
        self._rx += data
        if self._raw_waiter is not None:
            self._feed_raw_waiter()
        else:
            self._drain()

    async def _wait_raw(self, take: Callable[[bytearray], bytes | None]) -> bytes:
        if self._exchange is None:
            raise RuntimeError("raw reads are only possible while a command is in progress")
        if self._raw_waiter is not None:
            raise RuntimeError("another raw read is in progress")
        self._reader.reset()
        future: asyncio.Future[bytes] = self._require_loop().create_future()
        self._raw_waiter = (take, future)
        self._feed_raw_waiter()
        data = await future
        assert self._rx_pacer is not None
        self._answer_from(self._rx_pacer.wire_time())
        return data

    def _feed_raw_waiter(self) -> None:
        assert self._raw_waiter is not None
        take, future = self._raw_waiter
        if future.done():
            self._raw_waiter = None
            return
        data = take(self._rx)
        if data is not None:
            self._raw_waiter = None
            future.set_result(data)

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while not self._busy and self._raw_waiter is None and self._master is not None:
                found = self._reader.next_line(self._rx)
                if found is None:
                    break
                self._execute(*found)
        finally:
            self._draining = False

    def _answer_from(self, since: float) -> None:
        """Model an ideal modem, one that needs no time to think: what the current task
        writes before it next yields (the echo and response of a command, the result code
        after a payload) starts on the wire at ``since``, when the input it answers had
        arrived, so the fake's own Python time is not charged to the paced line. Output
        after a wait (a delayed response, a handler that waited on the network) starts when
        it is written, as usual; and never before the line's previous byte is through."""
        if self._baud is None:
            return  # an unpaced line has no wire time to keep
        answer = (asyncio.current_task(self._require_loop()), since)
        self._answer = answer
        self._require_loop().call_soon(self._end_answer, answer)

    def _end_answer(self, answer: tuple[asyncio.Task[Any] | None, float]) -> None:
        if self._answer is answer:
            self._answer = None

    def _execute(self, echo: bytes, raw: bytes, overflow: bool) -> None:
        assert self._rx_pacer is not None
        self._answer_from(self._rx_pacer.wire_time())
        try:
            self._start_exchange(echo, raw, overflow)
        finally:
            self._answer = None

    def _start_exchange(self, echo: bytes, raw: bytes, overflow: bool) -> None:
        line = raw.decode("latin-1")
        self.commands.append(line)
        for predicate, future in self._command_waiters:
            if not future.done() and predicate(line):
                future.set_result(line)
        if self.state.echo:
            self.write_raw(echo)
        drop = self._drops > 0
        if drop:
            self._drops -= 1
        delay = self._delays.popleft() if self._delays else 0.0
        exchange = _Exchange(line=line, drop=drop, delay=delay)
        self._exchange = exchange
        self._busy = True
        if delay > 0:
            self.call_later(delay, self._run, exchange, line, overflow)
        else:
            self._run(exchange, line, overflow)

    def _run(self, exchange: _Exchange, line: str, overflow: bool) -> None:
        if exchange is not self._exchange:
            return
        try:
            result = Response.error() if overflow else self._dispatch(line)
        except CommandError as exc:
            result = Response.error(exc.code)
        except Exception:
            log.exception("fake modem handler failed on %r", line)
            result = Response.error()
        if inspect.isawaitable(result):
            assert self._rx_pacer is not None
            # A delayed command is answered from the end of its delay, not from its input.
            if exchange.delay > 0:
                since = self._require_loop().time()
            else:
                since = self._rx_pacer.wire_time()
            self.spawn(self._run_async(exchange, result, since))
        else:
            self._finish(exchange, result)

    async def _run_async(
        self, exchange: _Exchange, pending: Awaitable[HandlerResult], since: float
    ) -> None:
        self._answer_from(since)  # what the handler answers before its first wait
        try:
            result = await pending
        except CommandError as exc:
            result = Response.error(exc.code)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fake modem handler failed on %r", exchange.line)
            result = Response.error()
        self._finish(exchange, result)

    def _finish(self, exchange: _Exchange, result: HandlerResult) -> None:
        if exchange is not self._exchange:
            return
        if result is not None and not exchange.responded:
            self._send_response(exchange, result)
        elif not exchange.responded:
            self._run_after(exchange)
        if exchange is self._exchange:
            self._exchange = None
            self._busy = False
        self._drain()

    def _send_response(self, exchange: _Exchange, response: Response) -> None:
        if exchange.responded:
            raise RuntimeError(f"{exchange.line!r} already answered")
        if not exchange.drop:
            self.write_raw(self._encode(response))
        self._run_after(exchange)

    def _run_after(self, exchange: _Exchange) -> None:
        exchange.responded = True
        actions, exchange.after = exchange.after, []
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("fake modem after-response action failed on %r", exchange.line)

    def _encode(self, response: Response) -> bytes:
        out = bytearray()
        in_block = False
        for part in response.lines:
            if isinstance(part, bytes):
                out += part
                in_block = False
            else:
                if not in_block:
                    out += CRLF
                    in_block = True
                out += part.encode("latin-1", errors="replace") + CRLF
        urcs, self._mid_response_urcs = self._mid_response_urcs, []
        for urc in urcs:
            out += frame_line(urc)
        final = self.format_error(response.error_code) if response.is_error else response.final
        if final is not None:
            out += frame_line(final)
        return bytes(out)

    def _dispatch(self, raw_line: str) -> HandlerResult | Awaitable[HandlerResult]:
        prefix = _AT_PREFIX_RE.search(raw_line)
        if prefix is None:
            return Response.error() if self.dialect.non_at_line == "error" else None
        line = raw_line[prefix.start() :]
        cmd = parse_command(line)
        override = None if cmd is None else self._overrides.get(cmd.name)
        if cmd is not None and override is not None:
            handler, times = override
            if times is not None:
                if times <= 1:
                    del self._overrides[cmd.name]
                else:
                    self._overrides[cmd.name] = (handler, times - 1)
            if isinstance(handler, Response):
                return handler
            return handler(self, cmd)
        check = self.dialect.syntax_check
        if cmd is None or (check is not None and not check(line)):
            return Response.error()
        return self.run_default(cmd)

    def _default_handler(self, name: str) -> Handler | None:
        if name in self.dialect.handlers:
            return self.dialect.handlers[name]
        return GENERIC_COMMANDS.get(name)


# --------------------------------------------------------------------------------------------
# Generic 3GPP TS 27.007 / V.250 commands

GENERIC_COMMANDS: dict[str, Handler] = {}

_H = TypeVar("_H", bound=Handler)


def _generic(name: str) -> Callable[[_H], _H]:
    def register(handler: _H) -> _H:
        GENERIC_COMMANDS[name] = handler
        return handler

    return register


def _range_list(values: Iterable[int]) -> str:
    return "(" + ",".join(str(v) for v in values) + ")"


@_generic("")
def _at(fake: FakeModem, cmd: Command) -> Response:
    return Response.ok()


@_generic("E")
def _echo(fake: FakeModem, cmd: Command) -> Response:
    # V.250 §6.2.4: ATE means ATE0; values other than 0 and 1 are an error.
    if cmd.kind is Kind.EXEC:
        fake.state.echo = False
    elif cmd.kind is Kind.SET and cmd.params[0].text in ("0", "1"):
        fake.state.echo = cmd.params[0].text == "1"
    else:
        raise CommandError(None)
    return Response.ok()


@_generic("+CMEE")
def _cmee(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CMEE: {fake.state.cmee}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CMEE: (0-2)")
    fake.state.cmee = cmd.int_arg(0, valid=range(3), default=0)
    return Response.ok()


def _identity_command(value: Callable[[FakeModem], str]) -> Handler:
    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.EXEC, Kind.TEST)
        return Response.ok() if cmd.kind is Kind.TEST else Response.ok(value(fake))

    return handler


GENERIC_COMMANDS["+CGMI"] = _identity_command(lambda fake: fake.identity.manufacturer)
GENERIC_COMMANDS["+CGMM"] = _identity_command(lambda fake: fake.identity.model)
GENERIC_COMMANDS["+CGMR"] = _identity_command(lambda fake: fake.identity.revision)


@_generic("+CGSN")
def _cgsn(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CGSN: (0-3)")
    ident = fake.identity
    snt = 0 if cmd.kind is Kind.EXEC else cmd.int_arg(0, valid=range(4), default=0)
    if snt == 0:
        return Response.ok(ident.imei)
    value = {1: ident.imei, 2: ident.imei[:14] + ident.svn, 3: ident.svn}[snt]
    return Response.ok(f'+CGSN: "{value}"')


@_generic("+CIMI")
def _cimi(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok(fake.identity.imsi)


@_generic("+CFUN")
def _cfun(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state = fake.state
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CFUN: {state.cfun}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CFUN: " + _range_list(fake.dialect.cfun_modes))
    fun = cmd.int_arg(0, valid=fake.dialect.cfun_modes)
    cmd.int_arg(1, valid=(0, 1), default=0)
    if fun != state.cfun:
        state.cfun = fun
        if fun != 1:
            fake.after_response(fake.stop_registration)
        elif state.cops_mode != 2:
            fake.after_response(fake.begin_registration)
    return Response.ok()


@_generic("+CEREG")
def _cereg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.READ:
        n = fake.state.cereg_n
        return Response.ok(f"+CEREG: {n},{fake.cereg_fields(n)}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CEREG: (0-5)")
    fake.state.cereg_n = cmd.int_arg(0, valid=range(6), default=0)
    return Response.ok()


@_generic("+CESQ")
def _cesq(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
    registered = fake.state.registered
    rsrq = fake.rsrq_index if registered else 255
    rsrp = fake.rsrp_index if registered else 255
    return Response.ok(f"+CESQ: 99,99,255,255,{rsrq},{rsrp}")


@_generic("+COPS")
def _cops(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state, net = fake.state, fake.network
    if cmd.kind is Kind.READ:
        if not state.registered:
            return Response.ok(f"+COPS: {state.cops_mode}")
        name = {0: net.long_name, 1: net.short_name, 2: net.plmn}[state.cops_format]
        return Response.ok(f'+COPS: {state.cops_mode},{state.cops_format},"{name}",{state.act}')
    if cmd.kind is Kind.TEST:
        network = f'(2,"{net.long_name}","{net.short_name}","{net.plmn}",{net.act})'
        return Response.ok(f"+COPS: {network},,(0,1,2,3,4),(0,1,2)")
    mode = cmd.int_arg(0, valid=(0, 1, 2, 3))
    if mode == 3:
        state.cops_format = cmd.int_arg(1, valid=(0, 1, 2))
        return Response.ok()
    if mode == 1:
        fmt = cmd.int_arg(1, valid=(0, 1, 2))
        operator = cmd.str_arg(2)
        if operator != {0: net.long_name, 1: net.short_name, 2: net.plmn}[fmt]:
            raise CommandError(30)
        state.cops_format = fmt
    state.cops_mode = mode
    if mode == 2:
        fake.after_response(fake.stop_registration)
    elif state.cfun == 1 and state.stat in (0, 3):
        fake.after_response(fake.begin_registration)
    return Response.ok()


_PDP_TYPES: Final = {"IP": "IP", "IPV6": "IPV6", "IPV4V6": "IPV4V6", "NON-IP": "Non-IP"}
_APN_RE: Final = re.compile(r"[A-Za-z0-9.\-]*")


@_generic("+CGDCONT")
def _cgdcont(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state, dialect = fake.state, fake.dialect
    low, high = dialect.cid_range
    default_cid = min(dialect.default_contexts, default=low)
    if cmd.kind is Kind.TEST:
        return Response.ok(
            *(f'+CGDCONT: ({low}-{high}),"{t}",,,(0),(0)' for t in _PDP_TYPES.values())
        )
    if cmd.kind is Kind.READ:
        lines = []
        for cid, ctx in sorted(state.contexts.items()):
            active = state.registered and cid == default_cid
            apn = ctx.apn or (fake.network.apn if active else "")
            address = fake.network.ip if active else ""
            lines.append(f'+CGDCONT: {cid},"{ctx.pdp_type}","{apn}","{address}",0,0')
        return Response.ok(*lines)
    if len(cmd.params) > 6:
        raise CommandError(50)
    cid = cmd.int_arg(0, valid=range(low, high + 1))
    if len(cmd.params) == 1:
        state.contexts.pop(cid, None)
        return Response.ok()
    pdp_type = _PDP_TYPES.get(cmd.str_arg(1).upper())
    apn = cmd.str_arg(2, default="")
    if pdp_type is None or len(apn) > 100 or not _APN_RE.fullmatch(apn):
        raise CommandError(50)
    if cmd.has(3):
        cmd.str_arg(3)
    for index in (4, 5):
        cmd.int_arg(index, valid=range(4), default=0)
    state.contexts[cid] = PdpContext(pdp_type, apn)
    return Response.ok()


#: The plain 3GPP modem: CR terminator, echo on at power-on (V.250 default), CFUN=1 at
#: power-on, no boot banner, lines without an AT prefix ignored.
GENERIC: Final = register_dialect(
    Dialect(
        name="generic",
        description="plain 3GPP TS 27.007 modem (V.250 defaults)",
        identity=Identity(
            manufacturer="atbridge",
            model="Fake 3GPP modem",
            revision="fake-3gpp-1.0.0",
            imei="490154203237518",
            imsi="001010123456789",
            iccid="89882390000012345678",
        ),
    )
)
