"""The AT parser: modem bytes in, events out. No I/O, no asyncio, no serial.

Theory of operation
-------------------
A modem's output is mostly text lines, with three exceptions that break naive
line readers (see ``shared/reference/at-dialects.md`` §0 and §7):

1. **Line endings differ.** V.250 frames every line as ``<CR><LF>text<CR><LF>``,
   but some firmware ends lines with a bare CR or a bare LF. Any CR or LF ends a
   line here, and empty lines are skipped, so all three work.
2. **The send prompt** ``> `` arrives with no line ending at all. It is
   recognised at the start of a line: ``"> "`` always, and a bare ``">"`` when
   the caller said a prompt is expected (:attr:`AtParser.expect_prompt`).
3. **Length-prefixed binary blocks.** After a header such as ``#XRECV: 0,0,12``
   or ``+CIPRXGET: 2,0,12,0`` exactly N raw bytes follow. They may hold CR, LF,
   ``OK``, NUL or ``+++`` and are never split into lines or scanned for result
   codes. A dialect registers a :class:`BlockRule` saying which lines are such
   headers and how to read N from them; a rule may also be *inline*, where the
   data starts right after a comma on the header line itself
   (``+CARECV: 5,hello``).

The echo of a command line (when the modem has echo on) is dropped: the caller
tells the parser what it sent (:meth:`AtParser.command_sent`), and the first
line equal to it comes out as an :class:`Echo` event instead of a line.

Final result codes (``OK``, ``ERROR``, ``+CME ERROR: <n|text>``,
``+CMS ERROR: <n|text>``, the V.250 call results, and whatever a dialect adds
with :meth:`AtParser.add_final`) come out as :class:`Final` events; every other
line is a :class:`Line`. Deciding which lines belong to a command and which are
unsolicited is the AT channel's job (``modem.py``), not the parser's.

Nothing is decoded strictly: events keep the raw bytes, and ``.text`` decodes
with ``backslashreplace``. The parser never raises on any input, and the same
events come out however the input is split into chunks.

**Bounds.** What a broken or hostile modem sends cannot grow memory or crash the
parser; each excess is a *protocol error of the modem*: counted
(:attr:`AtParser.protocol_errors`), reported to :attr:`AtParser.on_protocol_error`,
never raised.

- A line longer than :data:`MAX_LINE` (8 KiB) is discarded up to its line end, not
  stored and not delivered: no modem documents lines near that (the nRF91 Serial
  Modem's longest response is 2100 bytes, its command buffer 4096: reference §3.2;
  SIMCom's longest line is an inline ``+CARECV`` header, whose data is a block).
  Whether a line is too long depends only on the line, so chunking never changes it.
  An inline block header counts only within those 8 KiB.
- A block header announcing more than :data:`MAX_BLOCK` (1 MiB) bytes, or a length
  function that fails, is not believed: the line is delivered as a text line. The
  largest documented block is 2048 bytes (4096 hex characters; nRF91 ``#XRECV``,
  reference §3.3) and SIMCom's 1460 (``+CIPRXGET``/``+CARECV``, reference §5).
- Numbers are read from at most :data:`~atbridge.at_syntax.MAX_INT_DIGITS` digits
  (:func:`~atbridge.at_syntax.parse_int`); a ``+CME ERROR`` code longer than
  :data:`MAX_CODE_DIGITS` digits is kept as text (``detail``). Python's
  int-from-string limit (4300 digits) is never reached.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from atbridge.at_syntax import int_param, parse_int, split_params
from atbridge.text import decode_text

CR = 0x0D
LF = 0x0A
GT = 0x3E
SPACE = 0x20
COMMA = 0x2C

log = logging.getLogger(__name__)

_LINE_END = re.compile(rb"[\r\n]")

#: A line longer than this is a protocol error of the modem: discarded, never stored.
MAX_LINE = 8192
#: A block header announcing more than this many bytes is not believed (treated as a line).
MAX_BLOCK = 1 << 20
#: The most digits a ``+CME``/``+CMS ERROR`` code has (TS 27.007 §9.2 codes are below
#: 1000, vendor codes below 100000); a longer "code" is kept as text.
MAX_CODE_DIGITS = 6


class FinalKind(Enum):
    """What kind of final result code a :class:`Final` is."""

    OK = "ok"
    ERROR = "error"
    CME = "cme"
    CMS = "cms"
    OTHER = "other"  # V.250 call results and dialect-registered finals


@dataclass(frozen=True, slots=True)
class Line:
    """An information text line or an unsolicited result code."""

    raw: bytes

    @property
    def text(self) -> str:
        return decode_text(self.raw)


@dataclass(frozen=True, slots=True)
class Final:
    """A final result code: the end of a command's response.

    ``code`` is the numeric CME/CMS code when the modem gave one; ``detail`` is
    the verbose text when it gave text instead (``AT+CMEE=2``).
    """

    raw: bytes
    kind: FinalKind
    success: bool
    code: int | None = None
    detail: str | None = None

    @property
    def text(self) -> str:
        return decode_text(self.raw)


@dataclass(frozen=True, slots=True)
class Prompt:
    """The send prompt (``> ``): the modem waits for payload bytes."""


@dataclass(frozen=True, slots=True)
class Echo:
    """The modem echoing the command line we sent."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class Block:
    """A length-prefixed binary block and the header line that announced it."""

    header: bytes
    data: bytes

    @property
    def header_text(self) -> str:
        return decode_text(self.header)


Event = Line | Final | Prompt | Echo | Block


@dataclass(frozen=True, slots=True)
class BlockRule:
    """Which lines announce a binary block, and how long it is.

    ``prefix`` is the literal start of the header line. ``length`` gets the
    header (without its line ending; for an inline rule, up to and including the
    comma just seen) and returns the block length, or ``None`` when this line is
    not a block header after all (for example ``+CIPRXGET: 1,0`` is a
    notification, ``+CIPRXGET: 2,0,12,0`` a header).
    """

    prefix: bytes
    length: Callable[[bytes], int | None]
    inline: bool = False


@dataclass(frozen=True, slots=True)
class _FinalRule:
    pattern: re.Pattern[bytes]
    success: bool


_CME = re.compile(rb"\+(CME|CMS) ERROR: ?(.*)")
_STANDARD_FINALS = {
    b"OK": Final(b"OK", FinalKind.OK, True),
    b"ERROR": Final(b"ERROR", FinalKind.ERROR, False),
    b"NO CARRIER": Final(b"NO CARRIER", FinalKind.OTHER, False),
    b"BUSY": Final(b"BUSY", FinalKind.OTHER, False),
    b"NO ANSWER": Final(b"NO ANSWER", FinalKind.OTHER, False),
    b"NO DIALTONE": Final(b"NO DIALTONE", FinalKind.OTHER, False),
    b"COMMAND NOT SUPPORT": Final(b"COMMAND NOT SUPPORT", FinalKind.ERROR, False),
}


def classify_final(line: bytes, extra: tuple[_FinalRule, ...] = ()) -> Final | None:
    """Return the :class:`Final` this line is, or ``None`` for any other line."""
    standard = _STANDARD_FINALS.get(line)
    if standard is not None:
        return standard
    if line.startswith(b"+CM"):
        match = _CME.fullmatch(line)
        if match:
            kind = FinalKind.CME if match.group(1) == b"CME" else FinalKind.CMS
            value = match.group(2).strip()
            if value.isdigit() and len(value) <= MAX_CODE_DIGITS:
                return Final(line, kind, False, code=int(value))
            return Final(line, kind, False, detail=decode_text(value))
    for rule in extra:
        if rule.pattern.fullmatch(line):
            return Final(line, FinalKind.OTHER, rule.success)
    return None


@dataclass
class AtParser:
    """Incremental AT response parser. Feed bytes, get events.

    ``expect_prompt`` lets a bare ``">"`` count as the send prompt (set it while a
    command that answers with a prompt is in flight). ``on_protocol_error`` (when
    set) is called with a description of each protocol error of the modem (module
    doc, *Bounds*); :attr:`protocol_errors` counts them.
    """

    expect_prompt: bool = False
    on_protocol_error: Callable[[str], None] | None = None
    #: How many protocol errors of the modem (overlong lines, unbelievable blocks) so far.
    protocol_errors: int = 0
    _discarding: int = 0
    _line: bytearray = field(default_factory=bytearray)
    _skip_lf: bool = False
    _skip_space: bool = False
    _block_header: bytes | None = None
    _block_data: bytearray = field(default_factory=bytearray)
    _block_remaining: int = 0
    _echo: bytes | None = None
    _finals: tuple[_FinalRule, ...] = ()
    _line_rules: tuple[BlockRule, ...] = ()
    _inline_rules: tuple[BlockRule, ...] = ()

    # -- configuration -------------------------------------------------------------

    def add_final(self, pattern: bytes, *, success: bool) -> None:
        """Treat lines matching ``pattern`` (a regex, whole line) as final result codes."""
        self._finals = (*self._finals, _FinalRule(re.compile(pattern), success))

    def add_block(self, rule: BlockRule) -> None:
        """Register a binary block header (see :class:`BlockRule`)."""
        if rule.inline:
            self._inline_rules = (*self._inline_rules, rule)
        else:
            self._line_rules = (*self._line_rules, rule)

    def command_sent(self, line: bytes) -> None:
        """Tell the parser which command line was just written (its echo is dropped)."""
        self._echo = line.rstrip(b"\r\n")

    def reset(self) -> None:
        """Forget any partial line or block (after a reboot or a reconnect)."""
        self._line.clear()
        self._discarding = 0
        self._skip_lf = self._skip_space = False
        self._block_header = None
        self._block_data.clear()
        self._block_remaining = 0
        self._echo = None

    @property
    def in_line(self) -> bool:
        """True while part of a text line has arrived and its end has not."""
        return (bool(self._line) or self._discarding > 0) and self._block_header is None

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of any event (a partial line or block)."""
        return bytes(self._line) + bytes(self._block_data)

    # -- parsing -------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completes, in order."""
        events: list[Event] = []
        pos = 0
        size = len(data)
        while pos < size:
            byte = data[pos]
            if self._skip_lf:
                # The LF of a CRLF pair: also when it ends a block header.
                self._skip_lf = False
                if byte == LF:
                    pos += 1
                    continue
            if self._block_header is not None:
                take = min(self._block_remaining, size - pos)
                self._block_data += data[pos : pos + take]
                self._block_remaining -= take
                pos += take
                if self._block_remaining == 0:
                    self._finish_block(events)
                continue
            if self._discarding:
                match = _LINE_END.search(data, pos)
                end = match.start() if match else size
                self._discarding += end - pos
                if match is None:
                    break
                self._skip_lf = data[end] == CR
                pos = end + 1
                self._end_discard()
                continue
            if self._skip_space:
                self._skip_space = False
                if byte == SPACE:
                    pos += 1
                    continue
            if byte == GT and not self._line:
                if self.expect_prompt:
                    events.append(Prompt())
                    self._skip_space = True
                    pos += 1
                    continue
                self._line.append(byte)
                pos += 1
                continue
            if byte == SPACE and self._line == b">":
                self._line.clear()
                events.append(Prompt())
                pos += 1
                continue
            if byte in (CR, LF) and not self._line:
                # An empty line (the CRLF before and between responses): skipped.
                self._skip_lf = byte == CR
                pos += 1
                continue
            match = _LINE_END.search(data, pos)
            end = match.start() if match else size
            if self._inline_rules:
                consumed = self._scan_inline(data, pos, end, events)
                if consumed:
                    # An inline block header ended at a comma; the data follows it.
                    pos += consumed
                    continue
            if len(self._line) + end - pos > MAX_LINE:
                # Too long for any modem: dropped up to its end (module doc, Bounds).
                self._discarding = len(self._line) + end - pos
                self._line.clear()
                if match is None:
                    break
                self._skip_lf = data[end] == CR
                pos = end + 1
                self._end_discard()
                continue
            self._line += data[pos:end]
            if match is None:
                break
            self._skip_lf = data[end] == CR
            pos = end + 1
            self._complete_line(events)
        return events

    def _end_discard(self) -> None:
        size, self._discarding = self._discarding, 0
        self._protocol_error(f"a line of {size} bytes (more than {MAX_LINE}) was discarded")

    def _protocol_error(self, description: str) -> None:
        self.protocol_errors += 1
        report = self.on_protocol_error
        if report is not None:
            try:
                report(description)
            except Exception:
                log.exception("protocol error report %r failed", report)

    def _block_length(self, rule: BlockRule, header: bytes) -> int | None:
        """``rule``'s length for ``header`` when it is believable; a failure is ``None``."""
        try:
            length = rule.length(header)
        except Exception as exc:
            self._protocol_error(f"block rule {rule.prefix!r} failed on its header: {exc!r}")
            return None
        if length is None:
            return None
        if not isinstance(length, int) or not 0 <= length <= MAX_BLOCK:
            self._protocol_error(
                f"a {rule.prefix.decode('ascii', 'replace').strip()} header announced "
                f"{length!r} bytes (more than {MAX_BLOCK} is not believed): kept as a line"
            )
            return None
        return length

    def _scan_inline(self, data: bytes, start: int, end: int, events: list[Event]) -> int:
        """Start a block if an inline header ends at a comma in ``data[start:end]``.

        Returns how many bytes of ``data`` the header took (0: no header here).
        """
        segment = data[start:end]
        comma = segment.find(b",")
        if comma < 0:
            return 0
        held = bytes(self._line)
        # Only rules whose prefix this line can start with; and only within MAX_LINE.
        head = held + segment[:_LONGEST_PREFIX]
        rules = [rule for rule in self._inline_rules if _may_start(head, rule.prefix)]
        while rules and comma >= 0 and len(held) + comma + 1 <= MAX_LINE:
            candidate = held + segment[: comma + 1]
            for rule in rules:
                if candidate.startswith(rule.prefix):
                    length = self._block_length(rule, candidate)
                    if length is not None:
                        self._line.clear()
                        self._start_block(candidate, length, events)
                        return comma + 1
            comma = segment.find(b",", comma + 1)
        return 0

    def _complete_line(self, events: list[Event]) -> None:
        line = bytes(self._line)
        self._line.clear()
        if not line:
            return
        if self._echo is not None and line == self._echo:
            self._echo = None
            events.append(Echo(line))
            return
        for rule in self._line_rules:
            if line.startswith(rule.prefix):
                length = self._block_length(rule, line)
                if length is not None:
                    self._start_block(line, length, events)
                    return
        final = classify_final(line, self._finals)
        if final is not None:
            self._echo = None
            events.append(final)
            return
        events.append(Line(line))

    def _start_block(self, header: bytes, length: int, events: list[Event]) -> None:
        self._block_header = header
        self._block_remaining = length
        if length == 0:
            self._finish_block(events)

    def _finish_block(self, events: list[Event]) -> None:
        assert self._block_header is not None
        events.append(Block(self._block_header, bytes(self._block_data)))
        self._block_header = None
        self._block_data.clear()


#: Prefixes are compared on this many leading bytes at most (no dialect's is longer).
_LONGEST_PREFIX = 64


def _may_start(head: bytes, prefix: bytes) -> bool:
    """Whether a line beginning ``head`` (possibly cut short) can start with ``prefix``."""
    size = min(len(head), len(prefix))
    return head[:size] == prefix[:size]


def field_int(header: bytes, prefix: bytes, index: int) -> int | None:
    """Return the ``index``-th parameter after ``prefix`` as a length (an integer >= 0), if any.

    A helper for :class:`BlockRule` length functions:
    ``field_int(b"#XRECV: 0,0,12", b"#XRECV: ", 2) == 12``. An inline block's header
    ends with the comma before the data (``+CARECV: 5,``); that comma is ignored.
    """
    text = decode_text(header[len(prefix) :]).rstrip(",")
    value = int_param(text, index)
    return value if value is not None and value >= 0 else None


def header_ints(header: bytes, prefix: bytes, count: int) -> tuple[int, ...] | None:
    """The ``count`` parameters after ``prefix`` as integers >= 0, or ``None`` for any other shape.

    For :class:`BlockRule` length functions that must recognise their header exactly:
    ``header_ints(b"#XRECV: 0,0,12", b"#XRECV: ", 3) == (0, 0, 12)``; a trailing comma
    (an inline header, ``+CARECV: 5,``) is ignored.
    """
    params = split_params(decode_text(header[len(prefix) :]).rstrip(","))
    if len(params) != count:
        return None
    values = [parse_int(param) for param in params]
    ints = tuple(value for value in values if value is not None and value >= 0)
    return ints if len(ints) == count else None
