"""The readable table: each value with its unit and its meaning or rating (human output only)."""

from __future__ import annotations

from typing import Any

from atbridge.cme import error_text
from atbridge.decode import (
    ACCESS_TECHNOLOGY,
    EDRX_ACT_TYPES,
    FUNCTIONAL_MODE,
    REGISTRATION_STATUS,
)
from atbridge.diagnostics.common import Fields, cause_text, rate
from atbridge.diagnostics.nordic import MDMEV_EVENTS
from atbridge.diagnostics.simcom import CMNB_MODES, CNMP_MODES
from atbridge.diagnostics.standard import PIN_STATES

_UNITS = {
    "rsrp_dbm": "dBm",
    "rssi_dbm": "dBm",
    "rxlev_dbm": "dBm",
    "tx_power_dbm": "dBm",
    "rsrq_db": "dB",
    "snr_db": "dB",
    "sinr_db": "dB",
    "dl_pathloss_db": "dB",
    "active_time_s": "s",
    "periodic_tau_s": "s",
    "periodic_tau_legacy_s": "s",
    "requested_active_time_s": "s",
    "requested_periodic_tau_s": "s",
    "edrx_s": "s",
    "requested_edrx_s": "s",
    "ptw_s": "s",
    "requested_ptw_s": "s",
    "temperature_c": "°C",
    "voltage_mv": "mV",
    "battery_percent": "%",
    "mtu": "bytes",
}

#: Meanings of small codes, per field.
_CODES: dict[str, dict[Any, str]] = {
    "stat": REGISTRATION_STATUS,
    "act": ACCESS_TECHNOLOGY,
    "act_type": EDRX_ACT_TYPES,
    "functional_mode": FUNCTIONAL_MODE,
    "cause_type": {0: "EMM cause (TS 24.301 Annex A)", 1: "manufacturer-specific"},
    "rrc_state": {0: "idle", 1: "connected"},
    "pin_state": PIN_STATES,
    "event": MDMEV_EVENTS,
    "rat_preference": CNMP_MODES,
    "lte_mode_preference": CMNB_MODES,
    "result": {
        0: "connection evaluation done",
        1: "no cell available",
        2: "no UICC (SIM) available",
        3: "only barred cells available",
        4: "busy (e.g. GNSS in use)",
        5: "aborted (idle mode cell reselection or RRC connection)",
        6: "not registered",
        7: "unspecified",
    },
    "energy_estimate": {
        5: "bad: sending costs much more energy than normal",
        6: "poor: sending costs more energy than normal",
        7: "normal",
        8: "good: sending costs less energy than normal",
        9: "excellent: sending costs much less energy than normal",
    },
    "lte_preference": {
        0: "no preference",
        1: "LTE-M preferred",
        2: "NB-IoT preferred",
        3: "network selection first, then LTE-M",
        4: "network selection first, then NB-IoT",
    },
    "tau_triggered": {0: "no TAU needed to send", 1: "sending would trigger a TAU"},
    "ce_level": {
        0: "CE level 0 (normal coverage)",
        1: "CE level 1",
        2: "CE level 2",
        3: "CE level 3 (deepest coverage enhancement)",
    },
    "status": {0: "deactivated", 1: "active", 2: "in operation"},
    "charge_state": {0: "not charging", 1: "charging", 2: "charging finished"},
    "mode": {0: "automatic", 1: "manual", 2: "deregistered", 3: "format only", 4: "manual/auto"},
    "snr_index": {127: "unknown / not measured", 255: "unknown / not measured"},
}

_UNKNOWN_INDEX = {
    "rxlev": 99,
    "ber": 99,
    "rscp": 255,
    "ecno": 255,
    "rsrp_index": 255,
    "rsrq_index": 255,
}


def _meaning(name: str, value: Any, fields: Fields) -> str | None:
    if name == "reject_cause":
        cause = cause_text(fields.get("cause_type"), value)
        return cause.split("  ", 1)[1] if cause and "  " in cause else cause
    if name == "error_code" and fields.get("error_kind"):
        return error_text(str(fields["error_kind"]), value)
    if name == "mode" and any(key.startswith("requested_") for key in fields):
        return {0: "PSM not requested", 1: "PSM requested"}.get(value)
    if _UNKNOWN_INDEX.get(name) == value:
        return "unknown / not measured"
    if name == "cell_id_valid" and value is False:
        return "no cell (FFFFFFFF)"
    if name == "network_open":
        return "the network (PDP) is open" if value else "the network is not open"
    if name in ("lte_m_enabled", "nbiot_enabled", "gnss_enabled"):
        return "enabled" if value else "disabled"
    if name == "service" and value is False:
        return "no service: not camped on any cell"
    codes = _CODES.get(name)
    if codes is not None:
        return codes.get(value)
    return rate(name, value)


def describe_field(name: str, value: Any, fields: Fields) -> str:
    """The value with its unit, and its meaning or rating, for a person (``-87 dBm  fair``)."""
    if value is None:
        return "unknown"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if name in _UNITS:
        text += f" {_UNITS[name]}"
    meaning = _meaning(name, value, fields)
    return f"{text}  {meaning}" if meaning else text
