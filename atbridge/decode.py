"""Decoders for the 3GPP TS 27.007 answers a person reads: registration, signal, operator.

Pure functions from response text to small dataclasses with the raw numbers and
the words for them. Conventions (one chosen, documented):

- RSRP from a ``+CESQ`` index: ``index - 140`` dBm (the top of the 1 dB range of
  TS 36.133 table 9.1.4-1; nRF Connect Cellular Monitor and Zephyr use the same).
- RSRQ from a ``+CESQ`` index: ``index / 2 - 19.5`` dB (the top of its 0.5 dB range).
- 255 (RSRP/RSRQ) and 99 (RSSI) mean "not known or not detectable".
- eDRX values (``+CEDRXRDP``, ``%XPTW``) decode per TS 24.008 Table 10.5.5.32 for
  their AcT-type (:func:`edrx_seconds`, :func:`ptw_seconds`).
- Registration comes from three commands (TS 27.007 §7.2 ``+CREG``, §10.1.20
  ``+CGREG``, §10.1.22 ``+CEREG``): circuit-switched, GPRS/EDGE/UMTS packet and
  LTE (EPS) service. Their forms share ``<stat>,<lac|tac>,<ci>,<AcT>`` and differ
  after it: ``+CGREG`` puts ``<rac>`` before ``<cause_type>,<reject_cause>``. A
  :class:`Registration` says which command it came from (``source``) and names the
  radio access technology the way a person says it (:attr:`Registration.rat`:
  ``GPRS`` for a GSM cell on ``+CGREG``, ``GSM`` on ``+CREG``).
"""

from __future__ import annotations

from dataclasses import dataclass

from atbridge.at_syntax import int_param, parse_int, split_params, str_param

REGISTRATION_STATUS = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown (e.g. out of coverage)",
    5: "registered, roaming",
    6: "registered for SMS only, home network",
    7: "registered for SMS only, roaming",
    8: "attached for emergency bearer services only",
    9: "registered for CSFB not preferred, home network",
    10: "registered for CSFB not preferred, roaming",
    90: "not registered: UICC failure",
}

ACCESS_TECHNOLOGY = {
    0: "GSM",
    2: "UTRAN",
    3: "GSM/EGPRS",
    4: "UTRAN HSDPA",
    5: "UTRAN HSUPA",
    6: "UTRAN HSDPA+HSUPA",
    7: "E-UTRAN (LTE / LTE-M)",
    8: "EC-GSM-IoT",
    9: "E-UTRAN NB-IoT",
    10: "E-UTRA connected to 5GCN",
    11: "NR connected to 5GCN",
    12: "NG-RAN",
    13: "E-UTRA-NR dual connectivity",
}

#: The registration commands, by the service they report: LTE, packet, circuit-switched.
REGISTRATION_SOURCES = ("+CEREG", "+CGREG", "+CREG")

#: Short names of the access technologies (``<AcT>``), as progress and ``info`` say them.
RAT_NAMES = {
    0: "GSM",
    1: "GSM Compact",
    2: "WCDMA",
    3: "EDGE",
    4: "HSDPA",
    5: "HSUPA",
    6: "HSPA",
    7: "LTE",
    8: "EC-GSM-IoT",
    9: "NB-IoT",
    10: "LTE (5GC)",
    11: "NR (5GC)",
    12: "NG-RAN",
    13: "EN-DC",
}

FUNCTIONAL_MODE = {
    0: "minimum functionality (radio off)",
    1: "full functionality",
    4: "flight mode (radio off, SIM on)",
    20: "LTE off",
    21: "LTE on",
    30: "GNSS off",
    31: "GNSS on",
    40: "SIM off",
    41: "SIM on",
}


@dataclass(frozen=True, slots=True)
class Registration:
    """A decoded ``+CEREG``/``+CGREG``/``+CREG`` read response or notification."""

    stat: int
    tac: str | None = None
    cell_id: str | None = None
    act: int | None = None
    cause_type: int | None = None
    reject_cause: int | None = None
    #: The command it came from (``"+CEREG"``, ``"+CGREG"``, ``"+CREG"``), when known.
    source: str | None = None

    @property
    def registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def rat(self) -> str | None:
        """The access technology in words (``LTE``, ``NB-IoT``, ``GPRS``...), when reported.

        A GSM cell (AcT 0) means GPRS on ``+CGREG`` (packet service) and GSM elsewhere.
        """
        if self.act is None:
            return None
        if self.act == 0 and self.source == "+CGREG":
            return "GPRS"
        return RAT_NAMES.get(self.act, f"AcT {self.act}")

    def where(self) -> str:
        """Which source and RAT, for a person: ``+CGREG (GPRS)``, ``+CEREG``."""
        source = self.source or "+CEREG"
        return f"{source} ({self.rat})" if self.rat else source

    @property
    def status_text(self) -> str:
        return REGISTRATION_STATUS.get(self.stat, f"status {self.stat}")

    def describe(self) -> str:
        parts = [f"{self.status_text} (stat {self.stat})"]
        if self.act is not None:
            parts.append(ACCESS_TECHNOLOGY.get(self.act, f"AcT {self.act}"))
        if self.tac:
            parts.append(f"TAC {self.tac}")
        if self.cell_id:
            parts.append(f"cell {self.cell_id}")
        if self.reject_cause is not None:
            parts.append(f"reject cause {self.reject_cause}")
        return ", ".join(parts)


def parse_registration(
    value: str, *, is_read: bool, source: str | None = None
) -> Registration | None:
    """Decode the text after ``+CEREG:`` (or ``source``); ``is_read`` for the read form.

    The read form starts with ``<n>`` (skipped here, as it must be: parsers that
    assumed ``<n>`` = 2 broke on ``+CEREG: 3,1``), the notification does not.
    ``+CGREG`` has ``<rac>`` after ``<AcT>``, so its cause fields come one later.
    ``source`` is kept in the result (``None``: not said, the ``+CEREG`` layout).
    """
    params = split_params(value)
    if is_read:
        params = params[1:]
    stat = int_param(params, 0)
    if stat is None:
        return None
    causes = 5 if source == "+CGREG" else 4
    return Registration(
        stat,
        str_param(params, 1),
        str_param(params, 2),
        int_param(params, 3),
        int_param(params, causes),
        int_param(params, causes + 1),
        source,
    )


@dataclass(frozen=True, slots=True)
class Signal:
    """Decoded ``+CESQ``: RSRP in dBm and RSRQ in dB, ``None`` when unknown."""

    rsrp_index: int
    rsrq_index: int

    @property
    def rsrp_dbm(self) -> int | None:
        return None if self.rsrp_index == 255 else self.rsrp_index - 140

    @property
    def rsrq_db(self) -> float | None:
        return None if self.rsrq_index == 255 else self.rsrq_index / 2 - 19.5

    def describe(self) -> str:
        if self.rsrp_dbm is None:
            return "no LTE signal measured (RSRP/RSRQ unknown, index 255)"
        rsrq = "unknown" if self.rsrq_db is None else f"{self.rsrq_db:g} dB"
        return f"RSRP {self.rsrp_dbm} dBm ({rate_rsrp(self.rsrp_dbm)}), RSRQ {rsrq}"


def parse_cesq(value: str) -> Signal | None:
    """Decode ``<rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>``."""
    params = split_params(value)
    if len(params) < 6:
        return None
    rsrq, rsrp = parse_int(params[4]), parse_int(params[5])
    if rsrq is None or rsrp is None:
        return None
    return Signal(rsrp, rsrq)


#: RSRP ratings, (lowest dBm, rating) from best to worst: the usual field bands (a
#: convention, not a vendor specification; :mod:`atbridge.diagnostics` says more).
RSRP_RATINGS: tuple[tuple[float, str], ...] = (
    (-84, "excellent"),
    (-102, "good"),
    (-111, "fair"),
    (float("-inf"), "poor"),
)


def rate_rsrp(dbm: int) -> str:
    """Excellent / good / fair / poor, by :data:`RSRP_RATINGS`."""
    return next(rating for floor, rating in RSRP_RATINGS if dbm >= floor)


@dataclass(frozen=True, slots=True)
class Operator:
    """Decoded ``+COPS?``: selection mode and, when registered, the operator."""

    mode: int
    name: str | None = None
    act: int | None = None

    def describe(self) -> str:
        mode = {0: "automatic", 1: "manual", 2: "deregistered", 3: "format only", 4: "manual/auto"}
        text = f"{mode.get(self.mode, str(self.mode))} selection"
        if self.name:
            text += f", operator {self.name}"
        if self.act is not None:
            text += f" ({ACCESS_TECHNOLOGY.get(self.act, f'AcT {self.act}')})"
        return text


def parse_cops(value: str) -> Operator | None:
    """Decode ``<mode>[,<format>,"<oper>"[,<AcT>]]``."""
    params = split_params(value)
    mode = int_param(params, 0)
    if mode is None:
        return None
    return Operator(mode, str_param(params, 2), int_param(params, 3))


def describe_cfun(value: str) -> str:
    """Words for ``+CFUN: <fun>``."""
    mode = int_param(value, 0)
    if mode is None:
        return value
    return f"{FUNCTIONAL_MODE.get(mode, 'mode')} (CFUN={mode})"


#: Unit of each GPRS timer coding (3 high bits -> seconds; ``None``: deactivated).
#: TS 24.008 §10.5.7.3 (GPRS Timer, legacy T3412), Table 10.5.172 (GPRS Timer 2,
#: T3324 active time) and Table 10.5.163a (GPRS Timer 3, T3412 extended).
TIMER_UNITS: dict[str, dict[int, int | None]] = {
    "timer": {0: 2, 1: 60, 2: 360, 7: None},
    "timer2": {0: 2, 1: 60, 2: 360, 7: None},
    "timer3": {0: 600, 1: 3600, 2: 36000, 3: 2, 4: 30, 5: 60, 6: 1152000, 7: None},
}


@dataclass(frozen=True, slots=True)
class GprsTimer:
    """A decoded GPRS timer octet: as printed, in seconds, and whether deactivated."""

    raw: str
    seconds: int | None
    deactivated: bool


def parse_gprs_timer(raw: str | None, coding: str) -> GprsTimer | None:
    """Decode an 8-bit string (``"00100001"``) with ``coding`` (``timer``/``timer2``/``timer3``).

    The 3 high bits choose the unit, the 5 low bits count it. A unit the
    coding does not define is "1 minute" for ``timer``/``timer2`` (24.008 says
    so); ``None`` for a string that is not 8 binary digits.
    """
    if raw is None:
        return None
    raw = raw.strip().strip('"').strip()
    if len(raw) != 8 or set(raw) - {"0", "1"}:
        return None
    unit_bits, value = int(raw[:3], 2), int(raw[3:], 2)
    units = TIMER_UNITS[coding]
    if unit_bits in units and units[unit_bits] is None:
        return GprsTimer(raw, None, True)
    unit = units.get(unit_bits) or 60
    return GprsTimer(raw, value * unit, False)


@dataclass(frozen=True, slots=True)
class RegistrationExtras:
    """What a :class:`Registration` leaves out: ``<n>`` and the PSM timers of levels 4/5."""

    n: int | None = None
    active_time: GprsTimer | None = None
    periodic_tau: GprsTimer | None = None


def parse_registration_extras(
    value: str, *, is_read: bool, source: str | None = None
) -> RegistrationExtras:
    """The ``<n>`` of a read form and ``+CEREG``'s ``<Active-Time>,<Periodic-TAU-ext>``.

    The timers follow the cause fields (``stat,tac,ci,AcT,cause_type,reject_cause,
    Active-Time,Periodic-TAU-ext``); ``+CGREG``/``+CREG`` carry none decoded here.
    """
    params = split_params(value)
    n = int_param(params, 0) if is_read else None
    if is_read:
        params = params[1:]
    if source not in (None, "+CEREG"):
        return RegistrationExtras(n)
    return RegistrationExtras(
        n,
        parse_gprs_timer(str_param(params, 6), "timer2"),
        parse_gprs_timer(str_param(params, 7), "timer3"),
    )


#: eDRX AcT-types of TS 27.007 §7.40 (``+CEDRXS``/``+CEDRXRDP``/``%XPTW``): they are NOT
#: the ``<AcT>`` numbers of ``+CEREG`` (7 LTE-M, 9 NB-IoT).
EDRX_ACT_TYPES = {
    0: "not using eDRX",
    1: "EC-GSM-IoT (A/Gb mode)",
    2: "GSM (A/Gb mode)",
    3: "UTRAN (Iu mode)",
    4: "E-UTRAN WB-S1 (LTE-M)",
    5: "E-UTRAN NB-S1 (NB-IoT)",
}

#: eDRX cycle of TS 24.008 Table 10.5.5.32 in S1 mode, as multiples of 10.24 s per
#: 4-bit value (0 means 5.12 s). WB-S1 (LTE-M) reads 1110/1111 as 1101; NB-S1 (NB-IoT)
#: reads the values it does not define as 0010 (20.48 s) -- the table's notes, as
#: sdk-nrf ``lib/lte_link_control/modules/edrx.c`` applies them.
_EDRX_MULTIPLES = {
    "wb-s1": (0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 32, 64, 128, 256, 256, 256),
    "nb-s1": (2, 2, 2, 4, 2, 8, 2, 2, 2, 16, 32, 64, 128, 256, 512, 1024),
}

#: Paging time window unit per mode (TS 24.008 §10.5.5.32: (value + 1) × unit).
_PTW_UNITS = {"wb-s1": 1.28, "nb-s1": 2.56}


def edrx_mode(act_type: int | None = None, *, act: int | None = None) -> str | None:
    """``"wb-s1"`` (LTE-M) or ``"nb-s1"`` (NB-IoT) from an eDRX AcT-type (4/5) or an AcT (7/9)."""
    if act_type == 4 or act == 7:
        return "wb-s1"
    if act_type == 5 or act == 9:
        return "nb-s1"
    return None


def _nibble(raw: str | None) -> int | None:
    if raw is None:
        return None
    raw = raw.strip().strip('"').strip()
    if len(raw) != 4 or set(raw) - {"0", "1"}:
        return None
    return int(raw, 2)


def edrx_seconds(raw: str | None, mode: str | None) -> float | None:
    """The eDRX cycle of a 4-bit string (``"0101"`` -> 81.92 s) in ``mode``; ``None`` if unknown."""
    value = _nibble(raw)
    if value is None or mode not in _EDRX_MULTIPLES:
        return None
    multiple = _EDRX_MULTIPLES[mode][value]
    return 5.12 if multiple == 0 else round(multiple * 10.24, 2)


def ptw_seconds(raw: str | None, mode: str | None) -> float | None:
    """The paging time window of a 4-bit string (``"0011"`` -> 5.12 s on LTE-M), or ``None``."""
    value = _nibble(raw)
    if value is None or mode not in _PTW_UNITS:
        return None
    return round((value + 1) * _PTW_UNITS[mode], 2)
