"""``atbridge explain``: decode a pasted modem answer or URC into named fields.

The text (several lines allowed; ``-`` reads standard input) goes to
:func:`atbridge.diagnostics.explain_text`; ``--json`` prints ONE JSON object
with the field names of the diagnostics vocabulary (several commands in the
text: one object keyed by their prefix), otherwise a table of each value, its
meaning and its rating. ``--command`` names the command that was sent, which
tells a read response (``AT+CEREG?`` -> ``+CEREG: 1,5``, ``<n>,<stat>``) from a
notification where both shapes fit, and which field a bare line fills
(``--command AT+CIMI`` -> ``imsi``, ``AT+CGMM`` -> ``model``). ``+CME ERROR``,
``+CMS ERROR`` and ``ERROR`` lines are explained (code and TS 27.007/27.005 text).
Text that is not a known answer: one line on stderr and exit 2. Only the standard
library is imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "decode a pasted AT response or URC (+CEREG, %XMONITOR, +CPSI, +CME ERROR...) into fields"

_EPILOG = """examples:
  atbridge explain -- '+CEREG: 5,"0A0B","01020304",7,0,15'
  atbridge explain --command 'AT+CEREG?' --json -- '+CEREG: 1,5'
  atbridge explain -- '%CONEVAL: 0,1,7,95,30,49,"000AE520","23003",135,6447,20,0,0,-8,2,1,73'
  atbridge explain --command AT+CIMI -- 001010123456789
  atbridge at --port /dev/ttyACM0 AT+CGDCONT? | atbridge explain -
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``--command``, ``--json`` and the TEXT words."""
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--command",
        metavar="CMD",
        help="the command that was sent (AT+CEREG? means a read response, else a URC)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "text",
        nargs="*",
        metavar="TEXT",
        help="the modem's answer (words are joined by spaces; '-' reads standard input)",
    )


def _text(words: list[str]) -> str:
    if words == ["-"]:
        from atbridge.commands.stdin import read_all

        return read_all().decode("utf-8", errors="replace")
    return " ".join(words)


def _rows(fields: dict[str, Any], indent: str = "") -> list[tuple[str, str]]:
    """``(name, text)`` rows of ``fields``: lists of records and mappings get nested rows."""
    from atbridge.diagnostics import describe_field

    rows: list[tuple[str, str]] = []
    for name, value in fields.items():
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            if not value:
                rows.append((indent + name, "none"))
            for index, item in enumerate(value):
                rows.append((f"{indent}{name}[{index}]", ""))
                rows.extend(_rows(item, indent + "  "))
        elif isinstance(value, list):
            rows.append((indent + name, ", ".join(str(item) for item in value) or "none"))
        elif isinstance(value, dict):
            rows.append((indent + name, ""))
            rows.extend(
                (
                    f"{indent}  {key}",
                    ", ".join(map(str, item))
                    if isinstance(item, list)
                    else describe_field(key, item, value),
                )
                for key, item in value.items()
            )
        else:
            rows.append((indent + name, describe_field(name, value, fields)))
    return rows


def render(decoded: dict[str, dict[str, Any]]) -> str:
    """The table: one block per command, ``field  value  meaning`` rows."""
    lines: list[str] = []
    for prefix, fields in decoded.items():
        lines.append(prefix)
        rows = _rows(fields)
        width = max((len(name) for name, _ in rows), default=0)
        lines.extend(f"  {name.ljust(width)}  {text}".rstrip() for name, text in rows)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Decode the text; exit 2 with one line on stderr when it is not a known answer."""
    import json

    from atbridge.diagnostics import ExplainError, explain_text, flatten

    text = _text(list(args.text))
    try:
        decoded = explain_text(text, command=args.command)
    except ExplainError as exc:
        print(f"atbridge: cannot explain this text: {exc}", file=sys.stderr)
        print(
            "  what to try: paste the modem's answer lines (e.g. '+CEREG: 1,\"0A0B\",...'), "
            "and --command for the command that was sent",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(flatten(decoded)))
    else:
        print(render(decoded))
    return 0
