"""What the decoders of :mod:`atbridge.diagnostics` share: the error, the conversions, the ratings.

The conversions are the field vocabulary's (``shared/reference/diagnostics.md``):
RSRP index − 140 dBm, RSRQ index / 2 − 19.5 dB, SNR index − 24 dB, each with its
"unknown" sentinel turned into ``None``; hex identifiers keep the digits the modem
printed and get an ``_int`` twin; GPRS timers give ``_raw``, ``_s`` and
``_deactivated``. Ratings (:data:`RATINGS`) and reject-cause words
(:data:`EMM_CAUSES`) are for people only; the JSON never carries them.
"""

from __future__ import annotations

from typing import Any

from atbridge.decode import RSRP_RATINGS, GprsTimer, parse_gprs_timer

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
    "rsrp_dbm": RSRP_RATINGS,  # the bands `info` rates with (see the package docstring)
    # convention (package docstring)
    "rsrq_db": ((-10, "excellent"), (-15, "good"), (-20, "fair"), (float("-inf"), "poor")),
    "snr_db": ((20, "excellent"), (13, "good"), (0, "fair"), (float("-inf"), "poor")),
    "rssi_dbm": ((-65, "excellent"), (-75, "good"), (-85, "fair"), (float("-inf"), "poor")),
}

#: Fields rated like another (``sinr_db`` like ``snr_db``).
RATED_AS = {"sinr_db": "snr_db"}


def rate(field: str, value: float | None) -> str | None:
    """The rating of ``value`` for ``field`` (``rsrp_dbm``...), ``None`` if not rated."""
    table = RATINGS.get(RATED_AS.get(field, field))
    if table is None or value is None or isinstance(value, bool):
        return None
    return next(rating for floor, rating in table if value >= floor)


def cause_text(cause_type: int | None, cause: int | None) -> str | None:
    """``"15  No suitable cells ... — what to try"`` for an EMM cause (cause type 0)."""
    if cause is None:
        return None
    if cause_type == 1:
        return f"{cause} (manufacturer-specific cause)"
    text, hint = EMM_CAUSES.get(cause, ("EMM cause", "see TS 24.301 Annex A for this value"))
    return f"{cause}  {text} — {hint}"


def hex_fields(name: str, text: str | None) -> Fields:
    """``name`` as printed (quotes/spaces stripped) and its ``_int`` twin; empty -> ``None``."""
    if text is not None:
        text = text.replace(" ", "").strip('"') or None
    if text is None:
        return {name: None, f"{name}_int": None}
    try:
        return {name: text, f"{name}_int": int(text, 16)}
    except ValueError:
        return {name: text, f"{name}_int": None}


def timer_fields(prefix: str, timer: GprsTimer | None, *, always: bool = False) -> Fields:
    """``<prefix>_raw``, ``_s``, ``_deactivated`` of a timer (``always``: ``None`` when absent)."""
    if timer is None:
        if not always:
            return {}
        return {f"{prefix}_raw": None, f"{prefix}_s": None, f"{prefix}_deactivated": None}
    return {
        f"{prefix}_raw": timer.raw,
        f"{prefix}_s": timer.seconds,
        f"{prefix}_deactivated": timer.deactivated,
    }


def timer(prefix: str, raw: str | None, coding: str, *, always: bool = False) -> Fields:
    """:func:`timer_fields` of the 8-bit string ``raw`` decoded with ``coding``."""
    return timer_fields(prefix, parse_gprs_timer(raw, coding), always=always)


def rsrp_dbm(index: int | None) -> int | None:
    """RSRP index 0..97 -> index − 140 dBm; 255 (or anything else) -> ``None``."""
    return index - 140 if index is not None and 0 <= index <= 97 else None


def rsrq_db(index: int | None) -> float | None:
    """RSRQ index 0..34 -> index / 2 − 19.5 dB; 255 (or anything else) -> ``None``."""
    return index / 2 - 19.5 if index is not None and 0 <= index <= 34 else None


def snr_db(index: int | None) -> int | None:
    """SNR index 0..49 -> index − 24 dB; 127/255 (or anything else) -> ``None``."""
    return index - 24 if index is not None and 0 <= index <= 49 else None


def signal_fields(name: str, index: int | None) -> Fields:
    """``<name>_index`` and its converted twin (``rsrp`` -> ``rsrp_dbm``, ``rsrq``, ``snr``)."""
    if name == "rsrp":
        return {"rsrp_index": index, "rsrp_dbm": rsrp_dbm(index)}
    if name == "rsrq":
        return {"rsrq_index": index, "rsrq_db": rsrq_db(index)}
    return {"snr_index": index, "snr_db": snr_db(index)}
