"""Decoders of the Nordic nRF91 proprietary answers (``%XMONITOR``, ``%CONEVAL``, ...).

Layouts from the nRF91 AT Commands Reference (docs.nordicsemi.com, "nRF91x1 AT
Commands" / the nRF9160 reference's chapters on mobile termination and network
service commands), cross-checked with sdk-nrf ``lib/lte_link_control``
(``modules/coneval.c`` lists the 17 ``%CONEVAL`` parameters, ``modules/mdmev.c``
the ``%MDMEV`` events, ``modules/edrx.c`` the eDRX/PTW codings) and Cellular
Monitor's ``%NBRGRSRP`` decoder (triplets of PCI, EARFCN, RSRP index).
"""

from __future__ import annotations

import re

from atbridge.at_syntax import int_param, parse_int, split_params, str_param
from atbridge.decode import edrx_mode, edrx_seconds, ptw_seconds
from atbridge.diagnostics.common import (
    ExplainError,
    Fields,
    hex_fields,
    signal_fields,
    timer,
)


def _cell_id(text: str | None) -> Fields:
    fields = hex_fields("cell_id", text)
    fields["cell_id_valid"] = None if text is None else text.upper() != "FFFFFFFF"
    return fields


def xmonitor(value: str) -> Fields:
    """``%XMONITOR: <reg_status>[,<full_name>,<short_name>,<plmn>,<tac>,<AcT>,<band>,
    <cell_id>,<phys_cell_id>,<EARFCN>,<rsrp>,<snr>,<NW eDRX>,<Active-Time>,
    <Periodic-TAU-ext>,<Periodic-TAU>]``.

    Every field of the vocabulary's registration table is present; what the
    modem left empty (or did not send: ``%XMONITOR: 2`` while searching) is
    ``None``. ``band`` 0 means "not known" (``None``).
    """
    params = split_params(value)
    stat = int_param(params, 0)
    if stat is None:
        raise ExplainError(f"%XMONITOR: no <reg_status> in {value!r}")
    act = int_param(params, 5)
    band = int_param(params, 6)
    edrx = str_param(params, 12)
    fields: Fields = {
        "stat": stat,
        "registered": stat in (1, 5, 6, 7, 9, 10),
        "roaming": stat in (5, 7, 10),
        "operator_full": str_param(params, 1),
        "operator_short": str_param(params, 2),
        "plmn": str_param(params, 3),
        **hex_fields("tac", str_param(params, 4)),
        "act": act,
        "band": band or None,
        **_cell_id(str_param(params, 7)),
        "pci": int_param(params, 8),
        "earfcn": int_param(params, 9),
        **signal_fields("rsrp", int_param(params, 10)),
        **signal_fields("snr", int_param(params, 11)),
        "edrx": edrx,
        "edrx_s": edrx_seconds(edrx, edrx_mode(act=act)),
        **timer("active_time", str_param(params, 13), "timer2", always=True),
        **timer("periodic_tau", str_param(params, 14), "timer3", always=True),
        **timer("periodic_tau_legacy", str_param(params, 15), "timer", always=True),
    }
    return fields


#: ``%CONEVAL`` parameters after ``<result>``, in the AT reference's order (rsrp/rsrq/snr
#: become an index and its converted twin, cell_id a hex string and its integer).
_CONEVAL = (
    "rrc_state",
    "energy_estimate",
    "rsrp",
    "rsrq",
    "snr",
    "cell_id",
    "plmn",
    "pci",
    "earfcn",
    "band",
    "tau_triggered",
    "ce_level",
    "tx_power_dbm",
    "tx_repetitions",
    "rx_repetitions",
    "dl_pathloss_db",
)


def coneval(value: str) -> Fields:
    """``%CONEVAL: <result>[,<rrc_state>,<energy_estimate>,<rsrp>,...,<dl-pathloss>]``.

    A ``result`` other than 0 (no cell, no UICC, barred, busy...) carries only
    the result. Typographic quotes seen in copied examples (``"011B0780”``) are
    read as plain quotes.
    """
    params = split_params(value.replace("\u201d", '"').replace("\u201c", '"'))
    result = int_param(params, 0)
    if result is None:
        raise ExplainError(f"%CONEVAL: no <result> in {value!r}")
    fields: Fields = {"result": result}
    if result != 0:
        return fields
    if len(params) < 17:
        raise ExplainError(f"%CONEVAL: result 0 needs 17 parameters, got {len(params)}: {value!r}")
    for index, name in enumerate(_CONEVAL, start=1):
        if name in ("rsrp", "rsrq", "snr"):
            fields.update(signal_fields(name, int_param(params, index)))
        elif name == "cell_id":
            fields.update(hex_fields("cell_id", str_param(params, index)))
        elif name == "plmn":
            fields["plmn"] = str_param(params, index)
        else:
            fields[name] = int_param(params, index)
    return fields


def nbrgrsrp(value: str) -> Fields:
    """``%NBRGRSRP: <pci>,<EARFCN>,<rsrp>[,<pci>,<EARFCN>,<rsrp>...]`` -> ``neighbours``."""
    params = split_params(value)
    numbers = [parse_int(p) for p in params]
    if any(n is None for n in numbers) or len(numbers) % 3:
        raise ExplainError(f"%NBRGRSRP: expected triplets of numbers, got {value!r}")
    neighbours = [
        {"pci": numbers[i], "earfcn": numbers[i + 1], **signal_fields("rsrp", numbers[i + 2])}
        for i in range(0, len(numbers), 3)
    ]
    return {"neighbours": neighbours}


def xsystemmode(value: str) -> Fields:
    """``%XSYSTEMMODE: <LTE-M>,<NB-IoT>,<GNSS>,<LTE preference>`` (read form).

    The test form (``(0,1),(0,1),...``) is not a state and is refused.
    """
    if "(" in value:
        raise ExplainError(f"%XSYSTEMMODE: the test form lists ranges, not a mode: {value!r}")
    params = split_params(value)
    numbers = [int_param(params, i) for i in range(4)]
    if any(n is None for n in numbers):
        raise ExplainError(f"%XSYSTEMMODE: expected 4 numbers, got {value!r}")
    lte_m, nbiot, gnss, preference = numbers
    return {
        "lte_m_enabled": lte_m == 1,
        "nbiot_enabled": nbiot == 1,
        "gnss_enabled": gnss == 1,
        "lte_preference": preference,
    }


def _number(prefix: str, name: str, value: str) -> Fields:
    number = int_param(value, 0)
    if number is None:
        raise ExplainError(f"{prefix}: expected a number, got {value!r}")
    return {name: number}


def xcband(value: str) -> Fields:
    """``%XCBAND: <band>``: 0 means "no band information" (``None``)."""
    if "(" in value:
        raise ExplainError(f"%XCBAND: the test form lists supported bands: {value!r}")
    return {"band": _number("%XCBAND", "band", value)["band"] or None}


def xtemp(value: str) -> Fields:
    """``%XTEMP: <temperature>`` in °C."""
    return _number("%XTEMP", "temperature_c", value)


def xvbat(value: str) -> Fields:
    """``%XVBAT: <vbat>`` in mV."""
    return _number("%XVBAT", "voltage_mv", value)


def xptw(value: str) -> Fields:
    """``%XPTW: <AcT-type>,"<requested PTW>"`` (4 LTE-M, 5 NB-IoT) -> ``ptw`` entries.

    The reference prints one line per AcT-type; pairs on one line are read too.
    """
    params = split_params(value)
    entries: list[Fields] = []
    for index in range(0, len(params), 2):
        act_type = int_param(params, index)
        if act_type is None:
            raise ExplainError(f"%XPTW: expected <AcT-type>,<PTW> pairs, got {value!r}")
        raw = str_param(params, index + 1)
        entries.append(
            {
                "act_type": act_type,
                "requested_ptw_raw": raw,
                "requested_ptw_s": ptw_seconds(raw, edrx_mode(act_type)),
            }
        )
    if not entries:
        raise ExplainError(f"%XPTW: no <AcT-type> in {value!r}")
    return {"ptw": entries}


def cesq_notification(value: str) -> Fields:
    """``%CESQ: <rsrp>,<rsrp_threshold_index>,<rsrq>,<rsrq_threshold_index>`` (URC)."""
    params = split_params(value)
    numbers = [int_param(params, i) for i in range(4)]
    if any(n is None for n in numbers):
        raise ExplainError(f"%CESQ: expected 4 numbers, got {value!r}")
    rsrp, rsrp_threshold, rsrq, rsrq_threshold = numbers
    return {
        **signal_fields("rsrp", rsrp),
        "rsrp_threshold_index": None if rsrp_threshold == 255 else rsrp_threshold,
        **signal_fields("rsrq", rsrq),
        "rsrq_threshold_index": None if rsrq_threshold == 255 else rsrq_threshold,
    }


#: The fixed ``%MDMEV`` events (sdk-nrf ``modules/mdmev.c``, nRF91 AT reference).
MDMEV_EVENTS = {
    "ME OVERHEATED": "the modem is too hot: it stops radio activity until it cools down",
    "ME BATTERY LOW": "the supply voltage is too low for the radio: check the battery/supply",
    "SEARCH STATUS 1": "light search done (cells from history): no suitable cell found yet",
    "SEARCH STATUS 2": "full network search done",
    "RESET LOOP": "too many resets without a graceful AT+CFUN=0: attach is restricted for a while",
    "NO IMEI": "the modem has no IMEI (factory data missing)",
    "RF CALIBRATION NOT DONE": "the radio was never calibrated (production RF setup missing)",
}

_MDMEV_VALUES = (
    (re.compile(r"PRACH CE-LEVEL (\d+)"), ("ce_level",)),
    (
        re.compile(r"INVALID BAND CONFIGURATION (\d+) (\d+)(?: (\d+))?"),
        ("band_config_ltem", "band_config_nbiot", "band_config_ntn_nbiot"),
    ),
    (re.compile(r"DETECTED COUNTRY (\d+)"), ("mcc",)),
)


def mdmev(value: str) -> Fields:
    """``%MDMEV: <event>``: ``event`` as printed, plus ``ce_level``/``mcc``/... if valued."""
    event = " ".join(value.split()).upper()
    if event in MDMEV_EVENTS:
        return {"event": event}
    for pattern, names in _MDMEV_VALUES:
        match = pattern.fullmatch(event)
        if match:
            values = {
                name: None if group is None else int(group)
                for name, group in zip(names, match.groups(), strict=True)
            }
            return {"event": event, **values}
    if re.fullmatch(r"[A-Z0-9 -]+", event):
        return {"event": event}  # a newer firmware's event: kept as printed
    raise ExplainError(f"%MDMEV: not an event: {value!r}")
