"""Decoders of the SIMCom proprietary answers (``+CPSI``, ``+CNMP``, ``+CNACT``, ``+CIPSTATUS``...).

Layouts from the SIMCom AT command manuals (SIM7000 Series AT Command Manual,
SIM7070/SIM7080/SIM7090 Series AT Command Manual, SIM7500/SIM7600 Series AT
Command Manual) and the Zephyr ``drivers/modem/simcom-sim7080`` driver (the
``+CPSI`` RSSNR -> SINR conversion). ``+CPSI``'s two LTE layouts are told apart
by the system mode, as the vocabulary says: ``LTE CAT-M1`` / ``LTE NB-IOT``
(SIM70x0, whole dB) or ``LTE`` (SIM7500/SIM7600, tenths of dB).
"""

from __future__ import annotations

import re

from atbridge.at_syntax import int_param, parse_int, split_params, str_param, unquote
from atbridge.diagnostics.common import ExplainError, Fields, hex_fields

#: ``AT+CNMP`` preferred modes (SIM7000/SIM7080 use 2, 13, 38, 51; SIM7600 all).
CNMP_MODES = {
    2: "automatic",
    13: "GSM only",
    14: "WCDMA only",
    19: "GSM and WCDMA only",
    38: "LTE only",
    39: "GSM, WCDMA and LTE",
    48: "any but LTE",
    51: "GSM and LTE only",
    54: "WCDMA and LTE only",
}

#: ``AT+CMNB`` (SIM7000/SIM7080): which LTE flavour the modem looks for.
CMNB_MODES = {1: "CAT-M", 2: "NB-IoT", 3: "CAT-M and NB-IoT"}

#: +CPSI fields every layout has (``None`` for NO SERVICE).
_CPSI_KEYS = (
    "system_mode",
    "operation_mode",
    "service",
    "mcc",
    "mnc",
    "plmn",
    "tac",
    "tac_int",
    "cell_id",
    "cell_id_int",
    "pci",
    "band",
    "earfcn",
    "dl_bw_raw",
    "ul_bw_raw",
    "rsrq_db",
    "rsrp_dbm",
    "rssi_dbm",
    "rssnr_raw",
    "sinr_db",
    "act",
)

#: An EARFCN no band has (the 32-bit -1 some firmware prints while it changes cell).
_MAX_EARFCN = 262143


def _plmn(text: str | None) -> Fields:
    match = re.fullmatch(r"(\d{3})-(\d{2,3})", text or "")
    if match is None:
        return {"mcc": None, "mnc": None, "plmn": None}
    return {"mcc": match.group(1), "mnc": match.group(2), "plmn": match.group(1) + match.group(2)}


def _tac(text: str | None) -> Fields:
    if text is None or not re.fullmatch(r"(?:0[xX])?[0-9A-Fa-f]+", text):
        return {"tac": None, "tac_int": None}
    return hex_fields("tac", text[2:] if text[:2].lower() == "0x" else text)


def _decimal_cell(text: str | None) -> Fields:
    number = parse_int(text or "")
    if number is None or number < 0 or number > 0xFFFFFFFF:
        return {"cell_id": None, "cell_id_int": None}
    return {"cell_id": f"{number:08X}", "cell_id_int": number}


def _band(text: str | None) -> int | None:
    match = re.fullmatch(r"EUTRAN-BAND(\d+)", (text or "").upper())
    return int(match.group(1)) or None if match else None


def _tenths(text: str | None, tenths: bool) -> float | int | None:
    number = parse_int(text or "")
    if number is None:
        return None
    return number / 10 if tenths else number


def cpsi(value: str) -> Fields:
    """``+CPSI: <system mode>,<operation mode>[,...]`` (SIM70x0 / SIM7600 / GSM / NO SERVICE).

    LTE: ``<MCC>-<MNC>,<TAC>,<cell id>,<PCI>,<EUTRAN-BANDn>,<EARFCN>,<dlbw>,<ulbw>,
    <RSRQ>,<RSRP>,<RSSI>,<RSSNR>``. GSM (SIM7000 on 2G): ``<MCC>-<MNC>,<LAC>,<cell id>,
    <ARFCN...>,<RxLev dBm>,...``: the identity part and ``rxlev_dbm``. Other system
    modes (WCDMA...) keep the identity part. Values the modem prints while it
    changes cell (``EUTRAN-BAND0``, EARFCN 4294967295) are ``None``.
    """
    params = [unquote(p) for p in split_params(value)]
    if len(params) < 2 or not params[0]:
        raise ExplainError(f"+CPSI: expected <system mode>,<operation mode>, got {value!r}")
    system_mode = params[0].strip()
    fields: Fields = dict.fromkeys(_CPSI_KEYS)
    fields.update(system_mode=system_mode, operation_mode=params[1] or None)
    upper = system_mode.upper()
    if upper == "NO SERVICE":
        fields["service"] = False
        return fields
    fields["service"] = True
    fields.update(_plmn(str_param(params, 2)))
    fields.update(_tac(str_param(params, 3)))
    fields.update(_decimal_cell(str_param(params, 4)))
    if upper.startswith("LTE"):
        fields.update(_cpsi_lte(params, tenths=upper == "LTE"))
        fields["act"] = 9 if "NB" in upper else 7
    elif upper == "GSM":
        arfcn = re.match(r"\d+", str_param(params, 5) or "")
        fields.update(act=0, arfcn=int(arfcn.group()) if arfcn else None)
        fields["rxlev_dbm"] = int_param(params, 6)
    return fields


def _cpsi_lte(params: list[str], *, tenths: bool) -> Fields:
    """The LTE part of +CPSI (``tenths``: the SIM7600 layout). A line the modem prints
    while it changes cell (``EUTRAN-BAND0`` or an EARFCN no band has, zeros for the
    measurements) keeps its identity but no band, EARFCN or measurement."""
    band = _band(str_param(params, 6))
    earfcn = int_param(params, 7)
    if earfcn is not None and not 0 <= earfcn <= _MAX_EARFCN:
        earfcn = None
    rssnr = int_param(params, 13)
    fields: Fields = {
        "pci": int_param(params, 5),
        "band": band,
        "earfcn": earfcn,
        "dl_bw_raw": int_param(params, 8),
        "ul_bw_raw": int_param(params, 9),
        "rsrq_db": _tenths(str_param(params, 10), tenths),
        "rsrp_dbm": _tenths(str_param(params, 11), tenths),
        "rssi_dbm": _tenths(str_param(params, 12), tenths),
        "rssnr_raw": rssnr,
        "sinr_db": None if tenths or rssnr is None else 2 * rssnr - 20,
    }
    if band is None or earfcn is None:  # transitional: the numbers are not a measurement
        fields.update(dict.fromkeys(("rsrq_db", "rsrp_dbm", "rssi_dbm", "rssnr_raw", "sinr_db")))
    return fields


def cnmp(value: str) -> Fields:
    """``+CNMP: <mode>``: the preferred RAT (2 automatic, 13 GSM, 38 LTE, 51 GSM+LTE...)."""
    mode = int_param(value, 0)
    if mode is None or "(" in value:
        raise ExplainError(f"+CNMP: expected <mode>, got {value!r}")
    return {"rat_preference": mode, "rat_preference_name": CNMP_MODES.get(mode)}


def cmnb(value: str) -> Fields:
    """``+CMNB: <mode>``: 1 CAT-M, 2 NB-IoT, 3 both."""
    mode = int_param(value, 0)
    if mode is None or "(" in value:
        raise ExplainError(f"+CMNB: expected <mode>, got {value!r}")
    return {"lte_mode_preference": mode, "lte_mode_preference_name": CMNB_MODES.get(mode)}


def cbandcfg(value: str) -> Fields:
    """One ``+CBANDCFG: "<CAT-M|NB-IOT>",<band>,<band>...`` line -> ``{rat: [bands]}``."""
    params = split_params(value)
    rat = str_param(params, 0)
    bands = [parse_int(p) for p in params[1:]]
    if rat is None or not bands or any(b is None for b in bands):
        raise ExplainError(f'+CBANDCFG: expected "<mode>",<bands>, got {value!r}')
    return {rat.upper(): bands}


def cbc(value: str) -> Fields:
    """``+CBC: <bcs>,<bcl>,<mV>`` (SIM70x0) or ``+CBC: 3.912V`` (SIM7600) -> ``voltage_mv``."""
    volts = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*V\s*", value, re.IGNORECASE)
    if volts:
        return {"voltage_mv": round(float(volts.group(1)) * 1000)}
    params = split_params(value)
    numbers = [int_param(params, i) for i in range(3)]
    if len(params) != 3 or any(n is None for n in numbers):
        raise ExplainError(f"+CBC: expected <bcs>,<bcl>,<voltage> or <volts>V, got {value!r}")
    charge, percent, millivolts = numbers
    return {"charge_state": charge, "battery_percent": percent, "voltage_mv": millivolts}


def cpmutemp(value: str) -> Fields:
    """``+CPMUTEMP: <°C>`` (SIM7600)."""
    number = int_param(value, 0)
    if number is None:
        raise ExplainError(f"+CPMUTEMP: expected a temperature, got {value!r}")
    return {"temperature_c": number}


def _address(text: str | None) -> str | None:
    return None if text in (None, "0.0.0.0", "0:0:0:0:0:0:0:0", "::") else text


def cnact(value: str) -> Fields:
    """One ``+CNACT: <pdpidx>,<status>,"<addr>"`` line (SIM7080; SIM7000: ``<status>,"<addr>"``).

    Status 0 deactivated, 1 active, 2 in operation; the ``0.0.0.0`` of an
    inactive context is ``None``.
    """
    params = split_params(value)
    numbers = [parse_int(p) for p in params[:-1]]
    if len(params) not in (2, 3) or any(n is None for n in numbers):
        raise ExplainError(f"+CNACT: expected [<pdpidx>,]<status>,<address>, got {value!r}")
    if len(params) == 2:
        return {"pdpidx": None, "status": numbers[0], "address": _address(str_param(params, 1))}
    return {"pdpidx": numbers[0], "status": numbers[1], "address": _address(str_param(params, 2))}


def app_pdp(value: str) -> Fields:
    """``+APP PDP: <pdpidx>,ACTIVE|DEACTIVE`` (SIM7080 URC)."""
    params = split_params(value)
    pdpidx, state = int_param(params, 0), str_param(params, 1)
    if pdpidx is None or state is None:
        raise ExplainError(f"+APP PDP: expected <pdpidx>,<state>, got {value!r}")
    return {"pdpidx": pdpidx, "state": state.upper()}


def netopen(value: str, *, is_read: bool | None = None) -> Fields:
    """``+NETOPEN: <net_state>`` (read: 1 open) or the result URC ``+NETOPEN: <err>`` (0 = opened).

    ``is_read=None`` takes the read form: ``--command AT+NETOPEN`` says it is the URC.
    """
    number = int_param(value, 0)
    if number is None:
        raise ExplainError(f"+NETOPEN: expected a number, got {value!r}")
    if is_read is False:
        return {"netopen_error": number, "network_open": number == 0}
    return {"network_open": number == 1}


#: ``STATE: <state>`` of ``AT+CIPSTATUS`` and one ``C: <n>,<bearer>,...`` connection line.
STATE_LINE = re.compile(r"^\s*STATE\s*:\s*(.+?)\s*$", re.IGNORECASE)
CONNECTION_LINE = re.compile(r"^\s*C\s*:\s*(\d+\s*,.*?)\s*$", re.IGNORECASE)


def cipstatus_connection(value: str) -> Fields:
    """``<n>,<bearer>,"<TCP|UDP>","<ip>","<port>","<state>"`` (``C:`` and ``+CIPSTATUS:`` lines)."""
    params = split_params(value)
    link = int_param(params, 0)
    state = (str_param(params, 5) or "").strip() or None
    if link is None or state is None:
        raise ExplainError(f"+CIPSTATUS: expected <n>,<bearer>,...,<state>, got {value!r}")
    return {
        "link": link,
        "bearer": int_param(params, 1),
        "protocol": str_param(params, 2),
        "address": str_param(params, 3),
        "port": int_param(params, 4),
        "state": state,
    }


#: ``PrimaryDns: 8.8.8.8`` / ``SecondaryDns: 8.8.4.4`` of ``AT+CDNSCFG?`` (SIM800/SIM7000).
DNS_LINE = re.compile(r"^\s*(Primary|Secondary)\s*Dns\s*:\s*(\S*)\s*$", re.IGNORECASE)


#: The ``+CENG`` fields of a SIM7080 LTE cell line: the serving cell (``<cell>`` 0) has
#: all eleven, a neighbour the first six (SIM7070/SIM7080/SIM7090 manual, AT+CENG).
_CENG_LTE = ("earfcn", "pci", "rsrp_dbm", "rssi_dbm", "rsrq_db", "sinr_db")
_CENG_SERVING = ("tac_raw", "cell_id_raw", "mcc", "mnc", "tx_power_raw")


def ceng_header(value: str) -> Fields | None:
    """``+CENG: <mode>,<Ncell>,<num>,<system mode>`` (SIM7080), ``None`` for another shape."""
    params = split_params(value)
    numbers = [int_param(params, i) for i in range(3)]
    mode = str_param(params, 3)
    if len(params) != 4 or any(n is None for n in numbers) or mode is None:
        return None
    return {
        "mode": numbers[0],
        "ncell": numbers[1],
        "cell_count": numbers[2],
        "system_mode": mode,
        "serving": None,
        "neighbours": [],
    }


def ceng_cell(value: str) -> tuple[int, Fields]:
    """``+CENG: <cell>,"<earfcn>,<pci>,<rsrp>,<rssi>,<rsrq>,<sinr>[,<tac>,<cellid>,<mcc>,<mnc>,
    <tx power>]"`` (SIM7080 LTE): the cell number and its fields.

    RSRP/RSSI in dBm and RSRQ/SINR in dB, whole numbers. The TAC and cell id are
    kept as printed (``tac_raw``, ``cell_id_raw``): the manual does not say their
    base, so no ``_int`` twin is guessed.
    """
    params = split_params(value)
    cell = int_param(params, 0)
    inner = split_params(str_param(params, 1) or "")
    if cell is None or len(params) != 2 or len(inner) not in (6, 11):
        raise ExplainError(f"+CENG: not a SIM7080 LTE cell line: {value!r}")
    fields: Fields = {name: parse_int(inner[i]) for i, name in enumerate(_CENG_LTE)}
    if len(inner) == 11:
        fields.update({name: inner[6 + i] or None for i, name in enumerate(_CENG_SERVING)})
        fields["plmn"] = (fields["mcc"] or "") + (fields["mnc"] or "") or None
    return cell, fields
