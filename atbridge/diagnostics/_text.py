"""Reading a pasted answer line by line: which decoder each line goes to, and aggregation.

:func:`explain_text` is the one reader; ``decode_answer`` (the ``diag``/``watch``
path) and ``atbridge explain`` both call it. Lines with a ``+X:``/``%X:`` prefix
go to :func:`decode_line`; the bare lines some commands answer with are taken
when the command says which (``AT+CIMI`` -> IMSI, ``AT+CGMM`` -> model) or when
their shape is unmistakable (``STATE: IP STATUS``, ``C: 0,0,"TCP",...``,
``PrimaryDns: ...``, an IMEI, an ICCID). Error results (``+CME ERROR: 10``,
``+CMS ERROR: 500``, ``ERROR``) are explained, not refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from atbridge.at_syntax import response_prefix
from atbridge.diagnostics import nordic, simcom, standard
from atbridge.diagnostics.common import ExplainError, Fields

#: Prefixes this package decodes.
PREFIXES = (
    "+CEREG",
    "+CGREG",
    "+CREG",
    "+CESQ",
    "+CSQ",
    "+COPS",
    "+CPSMS",
    "+CFUN",
    "+CGSN",
    "+CGDCONT",
    "+CGPADDR",
    "+CSCON",
    "+CPIN",
    "+CCID",
    "+ICCID",
    "+CEDRXRDP",
    "+CEDRXP",
    "+CGCONTRDP",
    "+CGMI",
    "+CGMM",
    "+CGMR",
    "%XICCID",
    "%XTEMP",
    "%XVBAT",
    "%XSYSTEMMODE",
    "%XCBAND",
    "%XMONITOR",
    "%CONEVAL",
    "%NBRGRSRP",
    "%XPTW",
    "%CESQ",
    "%MDMEV",
    "+CPSI",
    "+CNMP",
    "+CMNB",
    "+CBANDCFG",
    "+CBC",
    "+CPMUTEMP",
    "+CNACT",
    "+APP PDP",
    "+NETOPEN",
    "+CIPSTATUS",
    "+CDNSCFG",
    "+CENG",
)

_DECODERS: dict[str, Callable[[str], Fields]] = {
    "+CESQ": standard.cesq,
    "+CSQ": standard.csq,
    "+CPSMS": standard.cpsms,
    "+CFUN": standard.cfun,
    "+CGSN": standard.cgsn,
    "+CGDCONT": standard.cgdcont,
    "+CGPADDR": standard.cgpaddr,
    "+CPIN": standard.cpin,
    "+CCID": standard.iccid,
    "+ICCID": standard.iccid,
    "%XICCID": standard.iccid,
    "+CEDRXRDP": standard.cedrx,
    "+CEDRXP": lambda value: standard.cedrx(value, source="+CEDRXP"),
    "+CGCONTRDP": standard.cgcontrdp,
    "+CGMI": lambda value: standard.identity("+CGMI", [value]),
    "+CGMM": lambda value: standard.identity("+CGMM", [value]),
    "+CGMR": lambda value: standard.identity("+CGMR", [value]),
    "%XTEMP": nordic.xtemp,
    "%XVBAT": nordic.xvbat,
    "%XSYSTEMMODE": nordic.xsystemmode,
    "%XCBAND": nordic.xcband,
    "%XMONITOR": nordic.xmonitor,
    "%CONEVAL": nordic.coneval,
    "%NBRGRSRP": nordic.nbrgrsrp,
    "%XPTW": nordic.xptw,
    "%CESQ": nordic.cesq_notification,
    "%MDMEV": nordic.mdmev,
    "+CPSI": simcom.cpsi,
    "+CNMP": simcom.cnmp,
    "+CMNB": simcom.cmnb,
    "+CBANDCFG": simcom.cbandcfg,
    "+CBC": simcom.cbc,
    "+CPMUTEMP": simcom.cpmutemp,
    "+CNACT": simcom.cnact,
    "+APP PDP": simcom.app_pdp,
    "+CIPSTATUS": simcom.cipstatus_connection,
}

#: Commands whose lines aggregate into a list, and the list's field.
_LISTS = {
    "+CGDCONT": "contexts",
    "+CGPADDR": "addresses",
    "+CNACT": "contexts",
}

#: Commands whose decoder returns a list field that several lines extend.
_EXTENDS = {"%XPTW": "ptw", "%NBRGRSRP": "neighbours"}


def command_name(command: str | None) -> str | None:
    """``AT+CGSN=1`` -> ``+CGSN``, ``AT%XMONITOR`` -> ``%XMONITOR``, a URC name as it is."""
    if command is None:
        return None
    text = command.strip().upper()
    prefix = response_prefix(text if text.startswith("AT") else "AT" + text)
    return prefix[:-1] if prefix else None


def _read_hint(command: str | None, prefix: str) -> bool | None:
    """``True``/``False`` when ``--command`` says read form / URC for ``prefix``."""
    if command is None or command_name(command) != prefix:
        return None
    return command.strip().endswith("?")


def decode_line(prefix: str, value: str, *, is_read: bool | None = None) -> Fields:
    """The fields of one ``prefix: value`` line (``is_read``: read form vs URC, ``None`` guess)."""
    if prefix in ("+CEREG", "+CGREG", "+CREG"):
        return standard.registration(value, source=prefix, is_read=is_read)
    if prefix == "+CSCON":
        return standard.cscon(value, is_read=is_read)
    if prefix == "+NETOPEN":
        return simcom.netopen(value, is_read=is_read)
    if prefix == "+COPS":
        if value.lstrip().startswith("("):
            return {"available": standard.cops_test(value)}
        return standard.cops(value)
    decoder = _DECODERS.get(prefix)
    if decoder is None:
        raise ExplainError(f"{prefix}: not a command atbridge explain knows")
    return decoder(value)


_LINE = re.compile(r"^\s*([+%](?:APP PDP|[A-Z][A-Z0-9]*))\s*:\s*(.*?)\s*$", re.IGNORECASE)
_SKIP = re.compile(r"^\s*(OK|AT.*)\s*$", re.IGNORECASE)
_IMEI = re.compile(r'\s*"?\d{14,17}"?\s*')
_DIGITS = re.compile(r'\s*"?\d{6,15}"?\s*|\s*"?89[0-9A-Fa-f]{16,20}"?\s*')

#: Commands whose answer is one bare line of digits, and the key it is filed under.
_BARE_IDS: dict[str, Callable[[str], Fields]] = {
    "+CGSN": standard.cgsn,
    "+CIMI": standard.cimi,
    "+CCID": standard.iccid,
    "+CICCID": standard.iccid,
    "%XICCID": standard.iccid,
}


class _Reader:
    """One pass over the lines of a pasted answer, collecting ``{key: fields}``."""

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.name = command_name(command)
        self.result: dict[str, Fields] = {}
        self.identity: list[str] = []
        self.contrdp: list[Fields] = []

    def line(self, line: str) -> None:
        error = standard.error_result(line)
        if error is not None:
            kind = error["error_kind"]
            self.result[f"+{kind} ERROR" if kind else "ERROR"] = error
            return
        match = _LINE.match(line)
        if match is None:
            self.bare(line)
            return
        prefix, value = " ".join(match.group(1).upper().split()), match.group(2)
        if prefix not in PREFIXES:
            raise ExplainError(f"{prefix}: not a command atbridge explain knows yet")
        if prefix == "+CENG":
            self.ceng(value)
            return
        if prefix in ("+CGMI", "+CGMM", "+CGMR"):
            self.identity.append(value)
            self.result[prefix] = standard.identity(prefix, self.identity)
            return
        fields = decode_line(prefix, value, is_read=_read_hint(self.command, prefix))
        self.add(prefix, fields)

    def add(self, prefix: str, fields: Fields) -> None:
        if prefix == "+CIPSTATUS":
            self.cipstatus()["connections"].append(fields)
        elif prefix in _LISTS:
            self.result.setdefault(prefix, {_LISTS[prefix]: []})[_LISTS[prefix]].append(fields)
        elif prefix in _EXTENDS:
            entry = self.result.setdefault(prefix, {_EXTENDS[prefix]: []})
            entry[_EXTENDS[prefix]].extend(fields[_EXTENDS[prefix]])
        elif prefix == "+CGCONTRDP":
            self.contrdp.append(fields)
            self.result[prefix] = standard.cgcontrdp_summary(self.contrdp)
        elif prefix == "+CBANDCFG":
            self.result.setdefault(prefix, {"bands": {}})["bands"].update(fields)
        elif prefix == "+COPS" and "available" in fields and prefix in self.result:
            self.result[prefix].setdefault("available", []).extend(fields["available"])
        else:
            self.result[prefix] = fields

    def bare(self, line: str) -> None:
        if self.name in standard.IDENTITY_FIELDS:
            self.identity.append(line)
            self.result[self.name] = standard.identity(self.name, self.identity)
            return
        state = simcom.STATE_LINE.match(line)
        if state is not None:
            self.cipstatus()["state"] = state.group(1)
            return
        connection = simcom.CONNECTION_LINE.match(line)
        if connection is not None:
            self.add("+CIPSTATUS", simcom.cipstatus_connection(connection.group(1)))
            return
        dns = simcom.DNS_LINE.match(line)
        if dns is not None:
            self.dns(dns.group(1).lower(), dns.group(2))
            return
        if self.name in _BARE_IDS and _DIGITS.fullmatch(line):
            key = "+CCID" if self.name == "+CICCID" else self.name
            self.result[key] = _BARE_IDS[self.name](line)
            return
        if self.name is None and _IMEI.fullmatch(line):
            self.result["+CGSN"] = standard.cgsn(line)
            return
        if self.name is None and standard.ICCID.fullmatch(line.strip().strip('"')):
            self.result["+CCID"] = standard.iccid(line)
            return
        raise ExplainError(f"not a modem answer line: {line.strip()!r}")

    def ceng(self, value: str) -> None:
        header = simcom.ceng_header(value)
        if header is not None:
            self.result["+CENG"] = header
            return
        entry = self.result.get("+CENG")
        if entry is None or not str(entry["system_mode"]).upper().startswith("LTE"):
            raise ExplainError(
                f"+CENG: {value!r} without a SIM7080 LTE header (+CENG: <mode>,<Ncell>,<num>,"
                "LTE CAT-M1|LTE NB-IOT); other +CENG layouts are not decoded"
            )
        cell, fields = simcom.ceng_cell(value)
        if cell == 0:
            entry["serving"] = fields
        else:
            entry["neighbours"].append(fields)

    def cipstatus(self) -> Fields:
        return self.result.setdefault("+CIPSTATUS", {"state": None, "connections": []})

    def dns(self, which: str, address: str) -> None:
        entry = self.result.setdefault(
            "+CDNSCFG", {"dns_primary": None, "dns_secondary": None, "dns_servers": []}
        )
        value = simcom._address(address or None)
        entry[f"dns_{which}"] = value
        entry["dns_servers"] = [
            server for server in (entry["dns_primary"], entry["dns_secondary"]) if server
        ]


def explain_text(text: str, *, command: str | None = None) -> dict[str, Fields]:
    """Decode a pasted answer: ``{prefix: fields}``, lines of one command aggregated.

    Blank lines, the echoed ``AT...`` and the final ``OK`` are skipped. Bare
    lines are read as the ``command`` says (``AT+CIMI``: an IMSI; ``AT+CGMR``:
    the revision text) or by their unmistakable shape (see the module
    docstring). Raises :class:`ExplainError` for anything else.
    """
    reader = _Reader(command)
    seen = False
    for line in text.splitlines():
        if not line.strip() or _SKIP.match(line):
            continue
        seen = True
        reader.line(line)
    if not seen:
        raise ExplainError("nothing to explain: the text is empty")
    return reader.result


def decode_answer(command: str, lines: Sequence[str]) -> Fields:
    """The fields of the information lines a modem gave to ``command`` (``AT+CEREG?``).

    The lines of a :class:`~atbridge.modem.Response` (no final result code); the
    same rules as :func:`explain_text` with ``command`` as ``--command``, so
    ``diag`` and ``watch`` decode exactly what ``explain`` decodes. Raises
    :class:`ExplainError` when the lines are not an answer this package knows.
    """
    return flatten(explain_text("\n".join(lines), command=command))


def flatten(decoded: dict[str, Fields]) -> Fields:
    """One command's fields as they are; several commands keyed by their prefix."""
    if len(decoded) == 1:
        return next(iter(decoded.values()))
    return dict(decoded)
