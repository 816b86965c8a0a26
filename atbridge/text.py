"""Showing modem bytes to a person: printable ASCII as is, everything else escaped.

Used by the transcript and by error messages, so a stray 0xFF or a NUL is
visible and never breaks a log line or a terminal.
"""

from __future__ import annotations

_ESCAPES = {0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t", 0x5C: "\\\\"}
_TABLE = [
    chr(b) if 0x20 <= b < 0x7F and b != 0x5C else _ESCAPES.get(b, f"\\x{b:02x}") for b in range(256)
]


def escape_bytes(data: bytes | bytearray) -> str:
    """Return ``data`` as one printable line: control and non-ASCII bytes escaped."""
    return "".join([_TABLE[b] for b in data])


def describe_bytes(data: bytes | bytearray, limit: int = 200) -> str:
    """A bounded, quoted rendering of ``data`` for messages (keeps the newest bytes)."""
    if not data:
        return "nothing"
    if len(data) <= limit:
        return f'"{escape_bytes(data)}"'
    return f'...({len(data) - limit} bytes before) "{escape_bytes(data[-limit:])}"'


def decode_text(data: bytes | bytearray) -> str:
    """Decode modem text without ever raising: invalid UTF-8 shows as ``\\xNN``."""
    return bytes(data).decode("utf-8", "backslashreplace")
