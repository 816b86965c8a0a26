"""Building AT command lines safely.

Every parameter reaches the wire through :func:`quote` (strings) or
:func:`format_command` (a whole command with parameters). A parameter holding CR,
LF, a double quote or any other control byte could end the command early and
smuggle a second one to the modem (``apn='x"\\rAT+CFUN=0'``), so such values are
refused with a :class:`~atbridge.errors.ConfigurationError` before a single byte
is written. :func:`check_command_line` applies the same rule to a whole line the
caller wrote by hand.

Reading goes the other way: :func:`split_params` is the one reader of the
parameter list an information line carries (``+CEREG: 1,"0A1B","01234567",7``),
with :func:`unquote`, :func:`parse_int` and the typed accessors :func:`int_param`
and :func:`str_param`. The rules follow the parameter syntax of 3GPP TS 27.007 §4
(ITU-T V.250, extended syntax): parameters are separated by commas; a string constant is
enclosed in double quotes and may hold commas; an omitted parameter is an empty
field; a numeric constant is decimal digits. Read leniently (DESIGN.md: nothing is
decoded strictly):

- white space around a parameter is dropped (``+CSQ: 20, 99``);
- an integer may carry a leading ``-`` (vendor values such as ``#XDATAMODE: -1``)
  and may be quoted (``"5"``); ``+5``, ``5.0`` or ``0x5`` are not integers;
- an unterminated quote runs to the end of the line (one parameter, its opening
  quote kept, so :func:`unquote` leaves it alone);
- a missing parameter (past the end, or empty) is ``None`` from the accessors;
- a number of more than :data:`MAX_INT_DIGITS` digits is not an integer (``None``):
  no AT parameter is that long (the longest numeric identities, an ICCID and a
  64-bit counter, have 20 digits), and reading it would meet Python's int-string
  limit (4300 digits) and raise.
"""

from __future__ import annotations

import re

from atbridge.errors import ConfigurationError

#: The most digits :func:`parse_int` reads (an ICCID, 2**64 - 1: 20 digits).
MAX_INT_DIGITS = 20
#: Bytes that must never appear inside a quoted AT string parameter.
_FORBIDDEN_IN_STRING = re.compile(r'[\x00-\x1f\x7f"\\]|[^\x00-\x7f]')
#: Bytes that must never appear inside a multi-line quoted parameter (PEM text).
_FORBIDDEN_IN_TEXT = re.compile(r'[\x00-\x09\x0b\x0c\x0e-\x1f\x7f"\\]|[^\x00-\x7f]')
#: Bytes that must never appear anywhere in a command line we write.
_FORBIDDEN_IN_LINE = re.compile(r"[\x00-\x1f\x7f]|[^\x00-\x7f]")
#: A quoted parameter of a line checked with ``line_breaks_in_quotes``.
_QUOTED = re.compile(r'"[^"]*"')
#: The prefix a command's information lines carry: ``AT+CEREG?`` -> ``+CEREG:``.
_COMMAND_NAME = re.compile(r"AT([+#%$*^&][A-Z0-9_]+)", re.IGNORECASE)

_NAMES = {
    "\r": "a carriage return (CR)",
    "\n": "a line feed (LF)",
    '"': "a double quote",
    "\\": "a backslash",
    "\x1a": "Ctrl-Z (0x1A)",
    "\x1b": "ESC (0x1B)",
    "\x00": "a NUL byte",
}


def _describe(char: str) -> str:
    if char in _NAMES:
        return _NAMES[char]
    if ord(char) > 0x7F:
        return f"the non-ASCII character {char!r}"
    return f"the control byte 0x{ord(char):02X}"


def quote(value: str, *, name: str = "parameter") -> str:
    """Return ``value`` as a quoted AT string parameter, or refuse it.

    Refuses CR, LF, ``"``, backslash, every other control byte and non-ASCII
    text: any of them could end the command early or be read differently by
    the modem's character set.
    """
    bad = _FORBIDDEN_IN_STRING.search(value)
    if bad:
        raise ConfigurationError(
            f"{name} {value!r} contains {_describe(bad.group())} at position {bad.start()}, "
            "which could end the AT command early and inject another",
            hint=f"remove it from the {name}; AT string parameters must be printable ASCII "
            "without double quotes or backslashes",
        )
    return f'"{value}"'


def quote_text(value: str, *, name: str = "parameter") -> str:
    """Return ``value``, text that may span lines (a PEM certificate), quoted, or refuse it.

    The nRF91's ``AT%CMNG`` takes a certificate or key as one quoted parameter with its
    CR/LF line breaks inside the quotes (nRF91 AT Commands Reference, ``%CMNG``); the
    modem's AT parser keeps reading until the closing quote. Everything else
    :func:`quote` refuses stays refused: a double quote would end the parameter, a
    backslash, another control byte or non-ASCII text could be read differently. Send
    the line with ``Modem.command(..., multiline=True)``.
    """
    bad = _FORBIDDEN_IN_TEXT.search(value)
    if bad:
        raise ConfigurationError(
            f"{name} contains {_describe(bad.group())} at position {bad.start()}, "
            "which the modem could read as the end of the parameter",
            hint=f"give the {name} as ASCII PEM text (BEGIN/END lines, base64 in between)",
        )
    return f'"{value}"'


Param = str | int | None


def format_command(command: str, *params: Param) -> str:
    """Build ``command=p1,p2,...``: strings quoted, integers bare, ``None`` left empty.

    ``format_command("AT+CGDCONT", 1, "IP", "iot.example")`` gives
    ``AT+CGDCONT=1,"IP","iot.example"``.
    """
    check_command_line(command)
    if not params:
        return command
    rendered: list[str] = []
    for index, param in enumerate(params, start=1):
        if param is None:
            rendered.append("")
        elif isinstance(param, bool) or not isinstance(param, int | str):
            raise ConfigurationError(
                f"parameter {index} of {command} is {param!r}; AT parameters are str, int or None",
                hint="convert the value before building the command",
            )
        elif isinstance(param, int):
            rendered.append(str(param))
        else:
            rendered.append(quote(param, name=f"parameter {index} of {command}"))
    return f"{command}={','.join(rendered)}"


def check_command_line(line: str, *, line_breaks_in_quotes: bool = False) -> str:
    """Refuse a command line that holds a line ending, a control byte or non-ASCII text.

    ``line_breaks_in_quotes``: CR and LF are allowed inside double quotes (a parameter
    made by :func:`quote_text`), nowhere else.
    """
    checked = line
    if line_breaks_in_quotes:
        for match in _QUOTED.finditer(line):
            inner = match.group()
            if _FORBIDDEN_IN_TEXT.search(inner[1:-1]) is None:
                checked = checked.replace(inner, '"' + "x" * (len(inner) - 2) + '"', 1)
    bad = _FORBIDDEN_IN_LINE.search(checked)
    if bad:
        raise ConfigurationError(
            f"the command {line!r} contains {_describe(bad.group())} at position {bad.start()}; "
            "one call sends exactly one command line",
            hint="send each command separately and pass parameters through format_command()",
        )
    if not line[:2].upper() == "AT" and line.strip() != "":
        raise ConfigurationError(
            f"the command {line!r} does not start with AT",
            hint="AT commands start with 'AT', e.g. 'AT+CGSN'",
        )
    return line


def response_prefix(command: str) -> str | None:
    """The prefix of the information lines ``command`` answers with, if it has one.

    ``AT+CEREG?`` -> ``+CEREG:``, ``AT#XSLMVER`` -> ``#XSLMVER:``, ``AT%XICCID`` ->
    ``%XICCID:``; ``AT`` and ``ATI`` -> ``None`` (bare lines).
    """
    match = _COMMAND_NAME.match(command)
    return f"{match.group(1).upper()}:" if match else None


def split_params(text: str) -> list[str]:
    """The comma-separated parameters of ``text``, honouring double quotes.

    Each parameter is stripped of surrounding white space and keeps its quotes (so
    a caller can tell ``"0102"`` from ``0102``). ``''`` gives ``[]``.

    ``split_params('1, "a,b" ,,3') == ['1', '"a,b"', '', '3']``.
    """
    if '"' not in text:
        return [part.strip() for part in text.split(",")] if text.strip() else []
    params: list[str] = []
    start = 0
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            params.append(text[start:index].strip())
            start = index + 1
    params.append(text[start:].strip())
    return params


def unquote(param: str) -> str:
    """``"abc"`` -> ``abc``; anything not enclosed in a pair of quotes is returned as it is."""
    if len(param) >= 2 and param[0] == '"' and param[-1] == '"':
        return param[1:-1]
    return param


def parse_int(param: str) -> int | None:
    """A decimal integer parameter (optionally ``-`` and quoted), or ``None``."""
    value = unquote(param.strip())
    digits = value[1:] if value[:1] == "-" else value
    if len(digits) > MAX_INT_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return int(value)


def int_param(params: list[str] | str, index: int) -> int | None:
    """The ``index``-th parameter as an integer (``params`` split or to split), or ``None``."""
    if isinstance(params, str):
        params = split_params(params)
    return parse_int(params[index]) if 0 <= index < len(params) else None


def str_param(params: list[str] | str, index: int) -> str | None:
    """The ``index``-th parameter unquoted, or ``None`` when it is missing or empty."""
    if isinstance(params, str):
        params = split_params(params)
    if not 0 <= index < len(params):
        return None
    return unquote(params[index]) or None
