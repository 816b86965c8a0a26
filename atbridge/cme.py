"""Texts for ``+CME ERROR`` (3GPP TS 27.007 §9.2) and ``+CMS ERROR`` (TS 27.005 §3.2.5).

Codes from 100 to 150 mirror NAS causes (code = 100 + cause: 111 is cause #11
"PLMN not allowed"), which is what a field engineer needs to read when an
attach or a PDP activation is refused. Codes from 256 (CME) and 512 (CMS) up are
manufacturer specific; their meaning is in the modem vendor's AT manual.
"""

from __future__ import annotations

CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    48: "hidden key required",
    49: "EAP method not supported",
    50: "incorrect parameters",
    51: "command implemented but currently disabled",
    52: "command aborted by user",
    53: "not attached to network due to MT functionality restrictions",
    54: "modem not allowed - MT restricted to emergency calls only",
    55: "operation not allowed because of MT functionality restrictions",
    56: "fixed dial number only allowed",
    57: "temporarily out of service due to other MT usage",
    58: "language/alphabet not supported",
    59: "unexpected data value",
    60: "system failure",
    61: "data missing",
    62: "call barred",
    63: "message waiting indication subscription failure",
    100: "unknown",
    103: "illegal MS (NAS cause #3)",
    106: "illegal ME (NAS cause #6)",
    107: "GPRS/EPS services not allowed (NAS cause #7)",
    108: "GPRS/EPS and non-GPRS/EPS services not allowed (NAS cause #8)",
    111: "PLMN not allowed (NAS cause #11)",
    112: "location area / tracking area not allowed (NAS cause #12)",
    113: "roaming not allowed in this location area (NAS cause #13)",
    114: "GPRS/EPS services not allowed in this PLMN (NAS cause #14)",
    115: "no suitable cells in location area / tracking area (NAS cause #15)",
    122: "congestion (NAS cause #22)",
    126: "insufficient resources (ESM cause #26)",
    127: "missing or unknown APN (ESM cause #27)",
    128: "unknown PDP address or PDP type (ESM cause #28)",
    129: "user authentication failed (ESM cause #29)",
    130: "activation rejected by GGSN, Serving GW or PDN GW (ESM cause #30)",
    131: "activation rejected, unspecified (ESM cause #31)",
    132: "service option not supported (ESM cause #32)",
    133: "requested service option not subscribed (ESM cause #33)",
    134: "service option temporarily out of order (ESM cause #34)",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
}

CMS_ERRORS: dict[int, str] = {
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "(U)SIM not inserted",
    311: "(U)SIM PIN required",
    312: "PH-(U)SIM PIN required",
    313: "(U)SIM failure",
    314: "(U)SIM busy",
    315: "(U)SIM wrong",
    316: "(U)SIM PUK required",
    317: "(U)SIM PIN2 required",
    318: "(U)SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


def error_text(kind: str, code: int) -> str:
    """The standard text for a CME/CMS error code (``kind`` is ``"CME"`` or ``"CMS"``)."""
    table = CME_ERRORS if kind == "CME" else CMS_ERRORS
    text = table.get(code)
    if text is not None:
        return text
    vendor_from = 256 if kind == "CME" else 512
    if code >= vendor_from:
        return "manufacturer-specific error; see the modem's AT command manual"
    return "reserved / unknown error code"
