"""Decoders of the 3GPP answers (TS 27.007 / 27.005) every dialect gives.

Registration (``+CEREG``/``+CGREG``/``+CREG``), signal (``+CESQ``, ``+CSQ``),
operator (``+COPS``), PSM (``+CPSMS``), eDRX (``+CEDRXRDP``/``+CEDRXP``),
identity and SIM (``+CGSN``, ``+CIMI``, ``+CCID``, ``+CPIN``, ``+CGMI``...), PDP
(``+CGDCONT``, ``+CGPADDR``, ``+CGCONTRDP``), RRC (``+CSCON``) and the error
results (``+CME ERROR``/``+CMS ERROR``, texts from :mod:`atbridge.cme`). Each
function takes the text after ``<prefix>:`` and returns the vocabulary's fields,
or raises :class:`~atbridge.diagnostics.common.ExplainError`.
"""

from __future__ import annotations

import re

from atbridge.at_syntax import int_param, parse_int, split_params, str_param, unquote
from atbridge.cme import CME_ERRORS, CMS_ERRORS, error_text
from atbridge.decode import (
    edrx_mode,
    edrx_seconds,
    parse_cesq,
    parse_cops,
    parse_registration,
    parse_registration_extras,
    ptw_seconds,
)
from atbridge.diagnostics.common import ExplainError, Fields, hex_fields, timer, timer_fields


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
        fields.update(hex_fields("tac", reg.tac))
        fields.update(hex_fields("cell_id", reg.cell_id))
        fields["cell_id_valid"] = (
            None if reg.cell_id is None else reg.cell_id.upper().strip() != "FFFFFFFF"
        )
    if reg.act is not None:
        fields["act"] = reg.act
    if reg.cause_type is not None or reg.reject_cause is not None:
        fields["cause_type"] = reg.cause_type
        fields["reject_cause"] = reg.reject_cause
    fields.update(timer_fields("active_time", extras.active_time))
    fields.update(timer_fields("periodic_tau", extras.periodic_tau))
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
    fields.update(timer("requested_periodic_tau", str_param(params, 3), "timer3"))
    fields.update(timer("requested_active_time", str_param(params, 4), "timer2"))
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


def cimi(value: str) -> Fields:
    """The bare IMSI of ``AT+CIMI`` (up to 15 digits: MCC, MNC, MSIN)."""
    imsi = unquote(value.strip()).strip()
    if not re.fullmatch(r"\d{6,15}", imsi):
        raise ExplainError(f"+CIMI: not an IMSI: {value!r}")
    return {"imsi": imsi}


#: An ICCID as modems print it: ``89`` (telecom) and 16-20 more characters, digits
#: mostly, an odd length padded with ``F``; some issuers use hex letters (the SIM7600
#: manual's example is ``898600700907A6019125``).
ICCID = re.compile(r"89[0-9A-Fa-f]{16,20}")


def iccid(value: str) -> Fields:
    """``%XICCID``/``+ICCID``/``+CCID`` (first parameter) or the bare ICCID, as printed."""
    params = split_params(value.strip())
    text = unquote(params[0]).strip() if params else ""
    if not ICCID.fullmatch(text):
        raise ExplainError(f"not an ICCID: {value!r}")
    return {"iccid": text}


#: ``+CPIN`` codes (TS 27.007 §8.3, plus the SIMCom/Quectel boot URCs) and their meaning.
PIN_STATES = {
    "READY": "no PIN needed: the SIM is ready",
    "SIM PIN": 'the SIM waits for its PIN: enter it (AT+CPIN="<pin>") or disable the PIN lock',
    "SIM PUK": "the PIN was blocked: the SIM needs its PUK (from the operator)",
    "SIM PIN2": "the SIM waits for PIN2",
    "SIM PUK2": "PIN2 was blocked: the SIM needs PUK2",
    "PH-SIM PIN": "the device is locked to another SIM (phone-to-SIM password)",
    "PH-FSIM PIN": "the device is locked to the first SIM inserted",
    "PH-FSIM PUK": "the first-SIM lock needs its unblocking key",
    "PH-NET PIN": "the device is locked to another network (network personalisation)",
    "PH-NET PUK": "the network lock needs its unblocking key",
    "PH-NETSUB PIN": "the device is locked to a network subset",
    "PH-NETSUB PUK": "the network-subset lock needs its unblocking key",
    "PH-SP PIN": "the device is locked to a service provider",
    "PH-SP PUK": "the service-provider lock needs its unblocking key",
    "PH-CORP PIN": "the device is locked to a corporate SIM range",
    "PH-CORP PUK": "the corporate lock needs its unblocking key",
    "NOT READY": "the SIM is not ready yet (still starting, or the SIM is off)",
    "NOT INSERTED": "no SIM detected: check that the SIM is inserted and its contacts",
}


def cpin(value: str) -> Fields:
    """``+CPIN: <code>`` (``READY``, ``SIM PIN``, quoted or not) -> ``pin_state``."""
    code = " ".join(unquote(value.strip()).split()).upper()
    if not code or not re.fullmatch(r"[A-Z0-9 -]+", code):
        raise ExplainError(f"+CPIN: not a PIN state: {value!r}")
    return {"pin_state": code}


#: The bare-text identity answers and the field each fills.
IDENTITY_FIELDS = {"+CGMI": "manufacturer", "+CGMM": "model", "+CGMR": "revision"}


def identity(command: str, lines: list[str]) -> Fields:
    """``AT+CGMI``/``AT+CGMM``/``AT+CGMR``: the text (lines joined), a ``Revision:`` label off."""
    text = " ".join(line.strip() for line in lines if line.strip())
    text = re.sub(r"^(?:\+CGM[IMR]\s*:|Revision\s*:)\s*", "", text, flags=re.IGNORECASE).strip()
    if not text:
        raise ExplainError(f"{command}: empty answer")
    return {IDENTITY_FIELDS[command]: unquote(text)}


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


def cgcontrdp(value: str) -> Fields:
    """One ``+CGCONTRDP: <cid>,<bearer>,<apn>,<addr+mask>,<gw>,<dns1>,<dns2>,...,<mtu>`` line.

    TS 27.007 §10.1.23; the 12th parameter is the IPv4 MTU (nRF91 reference).
    An IPv4v6 connection gives one line per address family.
    """
    params = split_params(value)
    cid = int_param(params, 0)
    if cid is None:
        raise ExplainError(f"+CGCONTRDP: no <cid> in {value!r}")
    return {
        "cid": cid,
        "bearer_id": int_param(params, 1),
        "apn": str_param(params, 2),
        "local_address": str_param(params, 3),
        "gateway": str_param(params, 4),
        "dns_primary": str_param(params, 5),
        "dns_secondary": str_param(params, 6),
        "mtu": int_param(params, 11),
    }


def cgcontrdp_summary(lines: list[Fields]) -> Fields:
    """The ``+CGCONTRDP`` lines together: first ``cid``/``apn``, DNS servers once, ``contexts``."""
    dns: list[str] = []
    for line in lines:
        for server in (line["dns_primary"], line["dns_secondary"]):
            if server and server not in dns and server not in ("0.0.0.0", "::"):
                dns.append(server)
    first = lines[0]
    return {
        "cid": first["cid"],
        "apn": first["apn"],
        "dns_servers": dns,
        "mtu": next((line["mtu"] for line in lines if line["mtu"] is not None), None),
        "contexts": lines,
    }


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


def cedrx(value: str, *, source: str = "+CEDRXRDP") -> Fields:
    """``+CEDRXRDP``/``+CEDRXP: <AcT-type>[,<requested>[,<NW-provided>[,<PTW>]]]``.

    The 4-bit values decode per TS 24.008 Table 10.5.5.32 for the AcT-type
    (4 LTE-M, 5 NB-IoT; others keep only the raw bits). AcT-type 0 means eDRX
    is not used.
    """
    params = split_params(value)
    act_type = int_param(params, 0)
    if act_type is None:
        raise ExplainError(f"{source}: no <AcT-type> in {value!r}")
    mode = edrx_mode(act_type)
    requested, granted, ptw = (str_param(params, i) for i in (1, 2, 3))
    return {
        "act_type": act_type,
        "requested_edrx_raw": requested,
        "requested_edrx_s": edrx_seconds(requested, mode),
        "edrx_raw": granted,
        "edrx_s": edrx_seconds(granted, mode),
        "ptw_raw": ptw,
        "ptw_s": ptw_seconds(ptw, mode),
    }


_ERROR = re.compile(r"^\s*\+(CME|CMS) ERROR\s*:\s*(.*?)\s*$", re.IGNORECASE)


def error_result(line: str) -> Fields | None:
    """``+CME ERROR: 10`` / ``+CME ERROR: SIM not inserted`` / ``+CMS ERROR: 500`` / ``ERROR``.

    ``error_code`` is the number (looked up from the text when the modem sent
    words), ``error_text`` the 27.007 / 27.005 text of :mod:`atbridge.cme`;
    ``None`` when ``line`` is not an error result.
    """
    if line.strip().upper() == "ERROR":
        return {"error_kind": None, "error_code": None, "error_text": "ERROR (no reason given)"}
    match = _ERROR.match(line)
    if match is None:
        return None
    kind, detail = match.group(1).upper(), unquote(match.group(2))
    code = parse_int(detail)
    if code is not None:
        return {"error_kind": kind, "error_code": code, "error_text": error_text(kind, code)}
    table = CME_ERRORS if kind == "CME" else CMS_ERRORS
    lowered = detail.lower()
    code = next((number for number, text in table.items() if text.lower() == lowered), None)
    return {"error_kind": kind, "error_code": code, "error_text": detail or None}
