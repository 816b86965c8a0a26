"""Building AT command lines safely.

Every parameter reaches the wire through :func:`quote` (strings) or
:func:`format_command` (a whole command with parameters). A parameter holding CR,
LF, a double quote or any other control byte could end the command early and
smuggle a second one to the modem (``apn='x"\\rAT+CFUN=0'``), so such values are
refused with a :class:`~atbridge.errors.ConfigurationError` before a single byte
is written. :func:`check_command_line` applies the same rule to a whole line the
caller wrote by hand.
"""

from __future__ import annotations

import re

from atbridge.errors import ConfigurationError

#: Bytes that must never appear inside a quoted AT string parameter.
_FORBIDDEN_IN_STRING = re.compile(r'[\x00-\x1f\x7f"\\]|[^\x00-\x7f]')
#: Bytes that must never appear anywhere in a command line we write.
_FORBIDDEN_IN_LINE = re.compile(r"[\x00-\x1f\x7f]|[^\x00-\x7f]")
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


def check_command_line(line: str) -> str:
    """Refuse a command line that holds a line ending, a control byte or non-ASCII text."""
    bad = _FORBIDDEN_IN_LINE.search(line)
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
