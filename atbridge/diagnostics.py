"""The diagnostics vocabulary: modem answers as JSON-ready dicts, and the words for them.

Theory of operation. :mod:`atbridge.decode` parses (one parser per answer);
this module names what it parsed with exactly the field names of the field
vocabulary (``docs``: ``shared/reference/diagnostics.md``), so ``explain``,
``diag`` and ``watch`` print the same keys. :func:`decode_line` turns one
information line (``+CEREG: 5,"0A1B",...``) into a dict; :func:`explain_text`
reads a whole pasted answer (several lines, with or without the final ``OK``,
leading blank lines) and aggregates the lines of one command (``contexts``,
``available``). Unknown values are ``None``, never a sentinel number.

Ratings (human output only, never JSON fields) come from one table,
:data:`RATINGS` (lower bound of each rating, dBm / dB):

=========  =========  ======  ======  =====
quantity   excellent  good    fair    poor
=========  =========  ======  ======  =====
RSRP dBm   >= -84     >= -102 >= -111 below
RSRQ dB    >= -10     >= -15  >= -20  below
SNR dB     >= 20      >= 13   >= 0    below
RSSI dBm   >= -65     >= -75  >= -85  below
=========  =========  ======  ======  =====

Source, honestly: the RSRP row is :data:`atbridge.decode.RSRP_RATINGS` (the bands
``info`` rates with; an earlier docstring attributed them to nRF Connect Cellular
Monitor, which was not verified). The same RSRP and RSSI bands are the common
field-engineering table found in many public tools, so read all four rows as a
*convention*, not a vendor spec.

Reject causes (:data:`EMM_CAUSES`) are TS 24.301 Annex A EMM causes with a short
"what to try" each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from atbridge.at_syntax import int_param, parse_int, split_params, str_param, unquote
from atbridge.decode import (
    RSRP_RATINGS,
    GprsTimer,
    parse_cesq,
    parse_cops,
    parse_gprs_timer,
    parse_registration,
    parse_registration_extras,
)

Fields = dict[str, Any]


class ExplainError(ValueError):
    """Text that is not a modem answer this module knows (the message says what was seen)."""


#: TS 24.301 Annex A EMM causes: (text, what to try).
EMM_CAUSES: dict[int, tuple[str, str]] = {
    2: ("IMSI unknown in HSS", "the SIM is not provisioned: ask the operator to activate it"),
    3: ("Illegal UE", "the network refused the SIM's authentication: check the SIM and its plan"),
    5: ("IMEI not accepted", "the device IMEI is blocked or unknown: ask the operator"),
    6: ("Illegal ME", "the device is barred: ask the operator about this IMEI"),
    7: (
        "EPS services not allowed",
        "the subscription has no LTE/LTE-M/NB-IoT data: check the SIM's plan",
    ),
    8: (
        "EPS and non-EPS services not allowed",
        "the subscription allows nothing here: check the SIM's plan with the operator",
    ),
    11: ("PLMN not allowed", "this network refuses the SIM: select another operator or roaming"),
    12: (
        "Tracking area not allowed",
        "the SIM may not be used in this area: check the plan's coverage and roaming",
    ),
    13: (
        "Roaming not allowed in this tracking area",
        "roaming is refused here: enable roaming on the SIM or pick another operator",
    ),
    14: (
        "EPS services not allowed in this PLMN",
        "this network gives the SIM no data service: select another operator",
    ),
    15: (
        "No suitable cells in tracking area",
        "the network has no cell for this RAT/band here; check the band lock and the SIM's roaming",
    ),
    17: ("Network failure", "a fault in the network: wait and retry later"),
    22: ("Congestion", "the network is overloaded: retry later (the modem backs off)"),
    25: ("Not authorized for this CSG", "the cell is a closed subscriber group: use another cell"),
    35: (
        "Requested service option not authorized in this PLMN",
        "the service asked for is not in the plan here: check the SIM's plan",
    ),
    42: ("Severe network failure", "the network failed hard: retry much later or elsewhere"),
    111: ("Protocol error, unspecified", "retry; if it persists, capture a modem trace"),
}

#: The ratings table: per quantity, (lowest value, rating) from best to worst.
RATINGS: dict[str, tuple[tuple[float, str], ...]] = {
    "rsrp_dbm": RSRP_RATINGS,  # the bands `info` rates with (see the module docstring)
    # convention (module docstring)
    "rsrq_db": ((-10, "excellent"), (-15, "good"), (-20, "fair"), (float("-inf"), "poor")),
    "snr_db": ((20, "excellent"), (13, "good"), (0, "fair"), (float("-inf"), "poor")),
    "rssi_dbm": ((-65, "excellent"), (-75, "good"), (-85, "fair"), (float("-inf"), "poor")),
}


def rate(field: str, value: float | None) -> str | None:
    """The rating of ``value`` for ``field`` (``rsrp_dbm``...), ``None`` if not rated."""
    table = RATINGS.get(field)
    if table is None or value is None:
        return None
    return next(rating for floor, rating in table if value >= floor)


def _hex(name: str, text: str | None) -> Fields:
    """``name`` as printed (quotes/spaces stripped) and its ``_int`` twin."""
    if text is None:
        return {name: None, f"{name}_int": None}
    text = text.replace(" ", "")
    try:
        return {name: text, f"{name}_int": int(text, 16)}
    except ValueError:
        return {name: text, f"{name}_int": None}


def _timer(prefix: str, timer: GprsTimer | None) -> Fields:
    if timer is None:
        return {}
    return {
        f"{prefix}_raw": timer.raw,
        f"{prefix}_s": timer.seconds,
        f"{prefix}_deactivated": timer.deactivated,
    }


def looks_like_read(value: str) -> bool:
    """Whether a ``+CxREG:`` value is a read form (``<n>,<stat>,...``) rather than a URC.

    The second parameter of a read form is ``<stat>`` (an unquoted number up to
    10, or 90); of a URC it is the quoted (or bare hex) area code. Shapes both
    fit (``1,5``, a bare area code ``05``) are taken as a read form: ``--command``
    says otherwise.
    """
    params = split_params(value)
    if len(params) < 2 or re.fullmatch(r"\d{1,2}", params[1]) is None:
        return False
    return int(params[1]) <= 10 or int(params[1]) == 90


def registration(value: str, *, source: str, is_read: bool | None = None) -> Fields:
    """``+CEREG``/``+CGREG``/``+CREG`` (``is_read=None``: told by :func:`looks_like_read`)."""
    if is_read is None:
        is_read = looks_like_read(value)
    reg = parse_registration(value, is_read=is_read, source=source)
    if reg is None:
        raise ExplainError(f"{source}: no <stat> in {value!r}")
    extras = parse_registration_extras(value, is_read=is_read, source=source)
    fields: Fields = {}
    if is_read:
        fields["n"] = extras.n
    fields["stat"] = reg.stat
    fields["registered"] = reg.stat in (1, 5, 6, 7, 9, 10)
    fields["roaming"] = reg.stat in (5, 7, 10)
    if reg.tac is not None or reg.cell_id is not None:
        fields.update(_hex("tac", reg.tac))
        fields.update(_hex("cell_id", reg.cell_id))
        fields["cell_id_valid"] = (
            None if reg.cell_id is None else reg.cell_id.upper().strip() != "FFFFFFFF"
        )
    if reg.act is not None:
        fields["act"] = reg.act
    if reg.cause_type is not None or reg.reject_cause is not None:
        fields["cause_type"] = reg.cause_type
        fields["reject_cause"] = reg.reject_cause
    fields.update(_timer("active_time", extras.active_time))
    fields.update(_timer("periodic_tau", extras.periodic_tau))
    return fields


def cesq(value: str) -> Fields:
    """``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>``."""
    signal = parse_cesq(value)
    params = split_params(value)
    if signal is None or any(parse_int(p) is None for p in params[:4]):
        raise ExplainError(f"+CESQ: expected 6 numbers, got {value!r}")
    rxlev, ber, rscp, ecno = (parse_int(p) for p in params[:4])
    return {
        "rxlev": rxlev,
        "ber": ber,
        "rscp": rscp,
        "ecno": ecno,
        "rsrq_index": signal.rsrq_index,
        "rsrq_db": signal.rsrq_db,
        "rsrp_index": signal.rsrp_index,
        "rsrp_dbm": signal.rsrp_dbm,
    }


def csq(value: str) -> Fields:
    """``+CSQ: <rssi>,<ber>``: RSSI −113 + 2 × index dBm (99 unknown)."""
    rssi, ber = int_param(value, 0), int_param(value, 1)
    if rssi is None or ber is None:
        raise ExplainError(f"+CSQ: expected <rssi>,<ber>, got {value!r}")
    return {
        "rssi_index": rssi,
        "rssi_dbm": None if rssi == 99 else -113 + 2 * rssi,
        "ber": None if ber == 99 else ber,
    }


def cops(value: str) -> Fields:
    """``+COPS?``: ``mode``, ``format``, ``operator`` (format 0/1) or ``plmn`` (2), ``act``."""
    operator = parse_cops(value)
    if operator is None:
        raise ExplainError(f"+COPS: no <mode> in {value!r}")
    fields: Fields = {"mode": operator.mode}
    fmt = int_param(split_params(value), 1)
    if fmt is not None:
        fields["format"] = fmt
        fields["plmn" if fmt == 2 else "operator"] = operator.name
        fields["act"] = operator.act
    return fields


def cops_test(value: str) -> list[Fields]:
    """``+COPS=?``: the ``(stat,"long","short","plmn",AcT)`` groups, up to the ``,,`` lists."""
    available: list[Fields] = []
    for group in re.findall(r"\(([^()]*)\)", value):
        params = split_params(group)
        if len(params) < 4 or not params[1].startswith('"'):
            continue  # the trailing supported-mode and format lists
        available.append(
            {
                "stat": int_param(params, 0),
                "operator_long": str_param(params, 1),
                "operator_short": str_param(params, 2),
                "plmn": str_param(params, 3),
                "act": int_param(params, 4),
            }
        )
    return available


def cpsms(value: str) -> Fields:
    """``+CPSMS: <mode>,[RAU],[READY],<TAU-ext>,<Active-Time>``."""
    params = split_params(value)
    mode = int_param(params, 0)
    if mode is None:
        raise ExplainError(f"+CPSMS: no <mode> in {value!r}")
    fields: Fields = {"mode": mode}
    fields.update(
        _timer("requested_periodic_tau", parse_gprs_timer(str_param(params, 3), "timer3"))
    )
    fields.update(_timer("requested_active_time", parse_gprs_timer(str_param(params, 4), "timer2")))
    return fields


def cfun(value: str) -> Fields:
    """``+CFUN: <fun>``."""
    mode = int_param(value, 0)
    if mode is None:
        raise ExplainError(f"+CFUN: no <fun> in {value!r}")
    return {"functional_mode": mode}


def cgsn(value: str) -> Fields:
    """``+CGSN: "<imei>"`` (``AT+CGSN=1``) or the bare digits of ``AT+CGSN``."""
    imei = unquote(value.strip()).strip()
    if not re.fullmatch(r"\d{14,17}", imei):
        raise ExplainError(f"+CGSN: not an IMEI: {value!r}")
    return {"imei": imei}


def cgdcont(value: str) -> Fields:
    """One ``+CGDCONT: <cid>,"<type>","<apn>","<addr>",...`` line."""
    params = split_params(value)
    cid = int_param(params, 0)
    if cid is None:
        raise ExplainError(f"+CGDCONT: no <cid> in {value!r}")
    return {
        "cid": cid,
        "pdp_type": str_param(params, 1),
        "apn": str_param(params, 2),
        "address": str_param(params, 3),
    }


def cgpaddr(value: str) -> Fields:
    """One ``+CGPADDR: <cid>[,"<addr>"[,"<addr2>"]]`` line (IPv4 and IPv6 addresses)."""
    params = split_params(value)
    cid = int_param(params, 0)
    if cid is None:
        raise ExplainError(f"+CGPADDR: no <cid> in {value!r}")
    return {"cid": cid, "address": str_param(params, 1), "address_ipv6": str_param(params, 2)}


def cscon(value: str, *, is_read: bool | None = None) -> Fields:
    """``+CSCON: <mode>`` (URC) or ``+CSCON: <n>,<mode>`` (read): RRC idle 0 / connected 1."""
    params = split_params(value)
    if is_read is None:
        is_read = len(params) >= 2
    numbers = [parse_int(p) for p in params]
    if not numbers or any(n is None for n in numbers):
        raise ExplainError(f"+CSCON: expected numbers, got {value!r}")
    fields: Fields = {}
    if is_read:
        fields["n"] = numbers[0]
        numbers = numbers[1:]
    if not numbers:
        raise ExplainError(f"+CSCON: no <mode> in {value!r}")
    fields["rrc_state"] = numbers[0]
    return fields


#: Commands whose lines aggregate into a list, and the list's field.
_LISTS = {"+CGDCONT": "contexts", "+CGPADDR": "addresses"}

#: Prefixes this module decodes.
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
)


def _read_hint(command: str | None, prefix: str) -> bool | None:
    """``True``/``False`` when ``--command`` says read form / URC for ``prefix``."""
    if command is None:
        return None
    cmd = command.strip().upper()
    if cmd.startswith("AT"):
        cmd = cmd[2:]
    if not cmd.startswith(prefix):
        return None
    return cmd.endswith("?")


def decode_line(prefix: str, value: str, *, is_read: bool | None = None) -> Fields:
    """The fields of one ``prefix: value`` line (``is_read``: read form vs URC, ``None`` guess)."""
    if prefix in ("+CEREG", "+CGREG", "+CREG"):
        return registration(value, source=prefix, is_read=is_read)
    if prefix == "+CSCON":
        return cscon(value, is_read=is_read)
    if prefix == "+COPS":
        if value.lstrip().startswith("("):
            return {"available": cops_test(value)}
        return cops(value)
    decoders = {
        "+CESQ": cesq,
        "+CSQ": csq,
        "+CPSMS": cpsms,
        "+CFUN": cfun,
        "+CGSN": cgsn,
        "+CGDCONT": cgdcont,
        "+CGPADDR": cgpaddr,
    }
    if prefix not in decoders:
        raise ExplainError(f"{prefix}: not a command atbridge explain knows")
    return decoders[prefix](value)


_LINE = re.compile(r"^\s*([+%][A-Z]+)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_FINAL = re.compile(r"^\s*(OK|AT.*)$", re.IGNORECASE)


def explain_text(text: str, *, command: str | None = None) -> dict[str, Fields]:
    """Decode a pasted answer: ``{prefix: fields}``, lines of one command aggregated.

    Blank lines, the echoed ``AT...`` and the final ``OK`` are skipped. A bare
    IMEI line counts as ``+CGSN`` when ``command`` is ``AT+CGSN`` (or nothing
    else is in the text). Raises :class:`ExplainError` for anything else.
    """
    result: dict[str, Fields] = {}
    seen = False
    for line in text.splitlines():
        if not line.strip() or _FINAL.match(line):
            continue
        seen = True
        match = _LINE.match(line)
        if match is None:
            if re.fullmatch(r'\s*"?\d{14,17}"?\s*', line) and (
                command is None or "+CGSN" in command.upper()
            ):
                result["+CGSN"] = cgsn(line)
                continue
            raise ExplainError(f"not a modem answer line: {line.strip()!r}")
        prefix, value = match.group(1).upper(), match.group(2)
        if prefix not in PREFIXES:
            raise ExplainError(f"{prefix}: not a command atbridge explain knows yet")
        fields = decode_line(prefix, value, is_read=_read_hint(command, prefix))
        if prefix in _LISTS:
            entry = result.setdefault(prefix, {_LISTS[prefix]: []})
            entry[_LISTS[prefix]].append(fields)
        elif prefix == "+COPS" and "available" in fields and prefix in result:
            result[prefix].setdefault("available", []).extend(fields["available"])
        else:
            result[prefix] = fields
    if not seen:
        raise ExplainError("nothing to explain: the text is empty")
    return result


def decode_answer(command: str, lines: Sequence[str]) -> Fields:
    """The fields of the information lines a modem gave to ``command`` (``AT+CEREG?``).

    The lines of a :class:`~atbridge.modem.Response` (no final result code); the
    same rules as :func:`explain_text` with ``command`` as ``--command``, so
    ``diag`` and ``watch`` decode exactly what ``explain`` decodes. Raises
    :class:`ExplainError` when the lines are not an answer this module knows.
    """
    return flatten(explain_text("\n".join(lines), command=command))


def flatten(decoded: dict[str, Fields]) -> Fields:
    """One command's fields as they are; several commands keyed by their prefix."""
    if len(decoded) == 1:
        return next(iter(decoded.values()))
    return dict(decoded)


def cause_text(cause_type: int | None, cause: int | None) -> str | None:
    """``"15 No suitable cells ... — what to try"`` for an EMM cause (cause type 0)."""
    if cause is None:
        return None
    if cause_type == 1:
        return f"{cause} (manufacturer-specific cause)"
    text, hint = EMM_CAUSES.get(cause, ("EMM cause", "see TS 24.301 Annex A for this value"))
    return f"{cause}  {text} — {hint}"


_UNITS = {
    "rsrp_dbm": "dBm",
    "rssi_dbm": "dBm",
    "rsrq_db": "dB",
    "snr_db": "dB",
    "active_time_s": "s",
    "periodic_tau_s": "s",
    "requested_active_time_s": "s",
    "requested_periodic_tau_s": "s",
}


def describe_field(name: str, value: Any, fields: Fields) -> str:
    """The value with its unit, and its meaning or rating, for a person (``-87 dBm  fair``)."""
    from atbridge.decode import ACCESS_TECHNOLOGY, FUNCTIONAL_MODE, REGISTRATION_STATUS

    if value is None:
        return "unknown"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if name in _UNITS:
        text += f" {_UNITS[name]}"
    meaning: str | None = None
    if name == "stat":
        meaning = REGISTRATION_STATUS.get(value)
    elif name == "act":
        meaning = ACCESS_TECHNOLOGY.get(value)
    elif name == "functional_mode":
        meaning = FUNCTIONAL_MODE.get(value)
    elif name == "reject_cause":
        cause = cause_text(fields.get("cause_type"), value)
        meaning = cause.split("  ", 1)[1] if cause and "  " in cause else cause
    elif name == "cause_type":
        meaning = {0: "EMM cause (TS 24.301 Annex A)", 1: "manufacturer-specific"}.get(value)
    elif name == "rrc_state":
        meaning = {0: "idle", 1: "connected"}.get(value)
    elif (name in ("rxlev", "ber") and value == 99) or (
        name in ("rscp", "ecno", "rsrp_index", "rsrq_index") and value == 255
    ):
        meaning = "unknown / not measured"
    elif name == "cell_id_valid" and value is False:
        meaning = "no cell (FFFFFFFF)"
    else:
        meaning = rate(name, value)
    return f"{text}  {meaning}" if meaning else text
