"""The AT command grammar the fakes speak: parsed commands in, responses and framed lines out.

Pure data and functions, no I/O: ``parse_command`` turns one command line (from its ``AT`` prefix
on) into a ``Command`` (name, ``Kind`` and ``Param`` list, V.250 / 3GPP TS 27.007 syntax);
a handler answers with a ``Response`` (information lines and a final result code, or an error
that AT+CMEE shapes), raises ``CommandError`` to fail, and ``frame_line`` frames one verbose line
``\\r\\n<text>\\r\\n``. The engine (``core``) renders responses with ``CME_ERROR_TEXT``.

Concatenation (``split_commands``): one command line may carry several commands after one
``AT`` prefix (ITU-T V.250 §5.2.1 and §5.4; SIM800 Series AT Command Manual V1.09 §1.4.4
"Combining AT commands on the same command line"): basic commands (``E0``, ``&W``, ``S3=13``)
follow each other with no separator, an extended command (``+``, ``%``, ``#``... then a name)
ends at the next ``;`` outside double quotes, and a ``;`` after a basic command is accepted as
well (the SIM800 manual's example line has one after a basic command and before ``&W``). A
dial command (``D``) takes the rest of the line. ``split_commands`` cuts a line into single
command lines, each with its own ``AT`` prefix, so that each is looked up and parsed as if it
had come alone; a character that starts no command ends the split with the rest of the line
as one last piece, which does not parse (V.250: the commands before it run, then ``ERROR``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeAlias

if TYPE_CHECKING:
    from .core import FakeModem

__all__ = [
    "CME_ERROR_TEXT",
    "CR",
    "CRLF",
    "LF",
    "Command",
    "CommandError",
    "Handler",
    "HandlerResult",
    "Kind",
    "Param",
    "Response",
    "frame_line",
    "parse_command",
    "split_commands",
]

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


AT_PREFIX_RE: Final = re.compile(r"[Aa][Tt]")
_EXTENDED_PREFIXES: Final = "+%#^$*"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9]+")
_BASIC_RE: Final = re.compile(r"(&?[A-Za-z])([0-9]*)")


def _split_params(text: str) -> tuple[Param, ...] | None:
    """Split set-command parameters at commas outside quotes; None if a quote is unclosed.

    Split at the quotes first: the even pieces are outside quotes (their commas separate
    parameters), the odd ones inside (kept, with their quotes, in the parameter they are in);
    an even number of pieces means a quote left open."""
    pieces = text.split('"')
    if len(pieces) % 2 == 0:
        return None
    params: list[Param] = []
    current = ""
    for index, piece in enumerate(pieces):
        if index % 2:
            current += '"' + piece + '"'
            continue
        first, *rest = piece.split(",")
        current += first
        for part in rest:
            params.append(_make_param(current))
            current = part
    params.append(_make_param(current))
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

    One command only: a concatenated line (``AT+A;+B``, ``ATE0V1``) is ``split_commands``'s.
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


def split_commands(line: str) -> list[str]:
    """Cut a command line that starts with AT (any case) into its commands (see the module
    docstring), each as a line of its own with an ``AT`` prefix: ``"AT+CIFSR;E0"`` ->
    ``["AT+CIFSR", "ATE0"]``, ``"ATE0V1+CMEE=1"`` -> ``["ATE0", "ATV1", "AT+CMEE=1"]``.

    Pieces are only cut, never checked: a malformed piece fails when it is parsed. A line
    whose quotes do not close is one piece (it does not parse). ``"AT"`` alone is
    ``["AT"]``."""
    prefix, body = line[:2], line[2:]
    if body.count('"') % 2:
        return [line]
    pieces: list[str] = []
    index, end = 0, len(body)
    while index < end:
        char = body[index]
        if char == ";":
            index += 1
            continue
        if char in _EXTENDED_PREFIXES:
            stop = _extended_end(body, index)
        elif char in "Dd":
            stop = end  # a dial string runs to the end of the line
        else:
            basic = _BASIC_PIECE_RE.match(body, index)
            stop = end if basic is None else basic.end()
        pieces.append(prefix + body[index:stop])
        index = stop
    return pieces or [line]


def _extended_end(body: str, start: int) -> int:
    """Where the extended command at ``start`` ends: its first ``;`` outside quotes, or the
    end of the line."""
    stop = body.find(";", start)
    if stop < 0:
        return len(body)
    quote = body.find('"', start, stop)
    while quote >= 0:
        # A quote before the separator: the separator is outside quotes only if an even
        # number of quotes precedes it; skip past the closing quote and look again.
        close = body.find('"', quote + 1)
        if close < 0:
            return len(body)
        if close > stop:
            stop = body.find(";", close)
            if stop < 0:
                return len(body)
        quote = body.find('"', close + 1, stop)
    return stop


#: One basic command as a piece of a concatenated line: a letter or ``&`` and a letter, then
#: its number, or an S-parameter (``S3=13``, ``S0?``).
_BASIC_PIECE_RE: Final = re.compile(r"[Ss][0-9]+(?:\?|=[0-9]*)|&?[A-Za-z][0-9]*")


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


def frame_line(text: str) -> bytes:
    """V.250 verbose framing of one line: ``\\r\\n<text>\\r\\n``."""
    return CRLF + text.encode("latin-1", errors="replace") + CRLF
