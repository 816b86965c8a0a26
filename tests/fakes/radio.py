"""The fake radio: the serving cell, the signal and the modem's radio reporting settings.

Theory of operation
-------------------
The air around a fake is its ``Network`` (``registry``: PLMN, TAC, cell id, PCI, EARFCN, band)
and its signal, ``fake.rsrp_index`` / ``fake.rsrq_index`` (TS 27.007 §8.69 +CESQ indices:
RSRP dBm = index − 140, RSRQ dB = index / 2 − 19.5). Every answer that reports the signal
(+CESQ, %XMONITOR, %CONEVAL, %CESQ, +CPSI, +CSQ, +CENG) derives its figures from those two
numbers with the pure functions here, so they always agree with each other:

- SNR (%XMONITOR/%CONEVAL ``<snr>``, index = dB + 24) is a function of RSRP
  (:func:`snr_index`): half a dB per dB from 0 dB at −100 dBm — the fake's model of a cell with
  a fixed interference floor, not a measurement rule.
- RSSI (SIMCom +CPSI, +CSQ) is RSRP + 20 dB (a 6-resource-block LTE-M carrier: RSSI ≈ RSRP +
  10·log10(12·6)); +CSQ's index is (RSSI + 113) / 2 (TS 27.007 §8.5).
- The nRF91 connection evaluation (%CONEVAL, nRF91 AT Commands Reference "Connectivity
  evaluation %CONEVAL") needs an energy estimate (5 bad .. 9 excellent), a CE level, a downlink
  path loss, a TX power and repetitions: :func:`coneval_figures` derives them from RSRP with
  the thresholds written there (the fake's model: reference signal power 18 dBm, CE level 0/1/2
  at −105/−115 dBm; the real modem measures them).
- %CESQ threshold indices use the default thresholds the nRF91 AT reference gives (§5.6
  "Signal quality notification %CESQ": RSRP 20, 40, 60, 80; RSRQ 7, 14, 21, 28).

``RadioSettings`` is what a power cycle resets: the notification levels of +CSCON
(TS 27.007 §10.1.30), %CESQ and %MDMEV (nRF91 AT reference), the RRC state, the requested PSM
timers (+CPSMS, §7.38) and eDRX settings (+CEDRXS, §7.40) and the %XPTW paging time windows.

Cells: :data:`LTE_M_CELLS` and :data:`NB_IOT_CELLS` are two neighbouring cells of the fake
network per RAT; ``handover()`` moves the fake from one to the other. The LTE-M cells are on
band 20 (EARFCN 6300/6400, 3GPP TS 36.101 Table 5.7.3-1: band 20 is 6150-6449), the NB-IoT
cells on band 8 (EARFCN 3740/3750, band 8 is 3450-3799).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Final

from .registry import Network

__all__ = [
    "LTE_M_CELLS",
    "NB_IOT_CELLS",
    "RSRP_THRESHOLDS",
    "RSRQ_THRESHOLDS",
    "Coneval",
    "RadioSettings",
    "cell_of",
    "coneval_figures",
    "csq_index",
    "neighbour_cell",
    "rsrp_dbm",
    "rsrp_index_of",
    "rsrq_tenths",
    "rssi_dbm",
    "snr_db",
    "snr_index",
    "threshold_index",
]


@dataclass(frozen=True)
class Cell:
    """One cell of the fake network."""

    tac: str
    ci: str
    pci: int
    earfcn: int
    band: int


LTE_M_CELLS: Final = (
    Cell(tac="0A1B", ci="01234567", pci=94, earfcn=6300, band=20),
    Cell(tac="0A1B", ci="01234568", pci=95, earfcn=6400, band=20),
)
NB_IOT_CELLS: Final = (
    Cell(tac="0A1C", ci="0123A001", pci=293, earfcn=3740, band=8),
    Cell(tac="0A1C", ci="0123A002", pci=294, earfcn=3750, band=8),
)

#: %CESQ default thresholds (nRF91 AT Commands Reference §5.6).
RSRP_THRESHOLDS: Final = (20, 40, 60, 80)
RSRQ_THRESHOLDS: Final = (7, 14, 21, 28)


def cell_of(network: Network) -> Cell:
    """The network's serving cell as a ``Cell``."""
    return Cell(network.tac, network.ci, network.pci, network.earfcn, network.band)


def on_cell(network: Network, cell: Cell) -> Network:
    """``network`` with ``cell`` as its serving cell."""
    return dataclasses.replace(
        network, tac=cell.tac, ci=cell.ci, pci=cell.pci, earfcn=cell.earfcn, band=cell.band
    )


def neighbour_cell(network: Network) -> Cell:
    """The other cell of the network's RAT (the handover target, the %NBRGRSRP neighbour)."""
    cells = NB_IOT_CELLS if network.act == 9 else LTE_M_CELLS
    serving = cell_of(network)
    for cell in cells:
        if cell.ci != serving.ci:
            return cell
    return cells[0]


def rsrp_dbm(index: int) -> int:
    """RSRP in dBm of a 0..97 index (index − 140, the nRF91 / Cellular Monitor convention)."""
    return index - 140


def rsrp_index_of(dbm: int) -> int:
    """The +CESQ RSRP index of a level in dBm (clamped to 0..97)."""
    return max(0, min(97, dbm + 140))


def rsrq_tenths(index: int) -> int:
    """RSRQ in tenths of a dB of a 0..34 index (index / 2 − 19.5 dB)."""
    return index * 5 - 195


def snr_db(rsrp_index: int) -> int:
    """The fake's SNR in dB for an RSRP index (see the module docstring), −24..25."""
    return max(-24, min(25, (rsrp_dbm(rsrp_index) + 100) // 2))


def snr_index(rsrp_index: int) -> int:
    """%XMONITOR / %CONEVAL ``<snr>``: dB + 24 (0..49)."""
    return snr_db(rsrp_index) + 24


def rssi_dbm(rsrp_index: int) -> int:
    """RSSI in dBm: RSRP + 20 dB (see the module docstring)."""
    return rsrp_dbm(rsrp_index) + 20


def csq_index(rsrp_index: int) -> int:
    """+CSQ ``<rssi>`` (0..31) for an RSRP index; 99 for unknown (255)."""
    if rsrp_index == 255:
        return 99
    return max(0, min(31, (rssi_dbm(rsrp_index) + 113) // 2))


def threshold_index(value: int, thresholds: tuple[int, ...]) -> int:
    """%CESQ ``<..._threshold_index>``: how many thresholds ``value`` is at or above; 255
    stays 255 (unknown)."""
    if value == 255:
        return 0
    return sum(1 for limit in thresholds if value >= limit)


@dataclass(frozen=True)
class Coneval:
    """The derived %CONEVAL figures of one RSRP (see :func:`coneval_figures`)."""

    energy_estimate: int
    ce_level: int
    dl_pathloss: int
    tx_power: int
    tx_repetitions: int
    rx_repetitions: int


#: Reference signal power of the fake's cells (dBm per resource element).
_RS_POWER: Final = 18


def coneval_figures(rsrp_index: int) -> Coneval:
    """Energy estimate, CE level, path loss, TX power and repetitions for an RSRP index."""
    dbm = rsrp_dbm(rsrp_index)
    pathloss = _RS_POWER - dbm
    if dbm >= -105:
        ce_level, repetitions = 0, 1
    elif dbm >= -115:
        ce_level, repetitions = 1, 8
    else:
        ce_level, repetitions = 2, 32
    energy = 9 if dbm >= -85 else 8 if dbm >= -95 else 7 if dbm >= -105 else 6 if dbm >= -115 else 5
    tx_power = max(-40, min(23, pathloss - 90))
    return Coneval(energy, ce_level, pathloss, tx_power, repetitions, repetitions)


@dataclass
class RadioSettings:
    """The radio reporting and power-saving settings a power cycle resets."""

    #: AT+CSCON=<n> (0 off, 1 ``+CSCON: <mode>`` on a change).
    cscon_n: int = 0
    #: RRC state: 0 idle, 1 connected.
    rrc: int = 0
    #: AT%CESQ=<n> and AT%MDMEV=<n> (nRF91).
    cesq_n: int = 0
    mdmev_n: int = 0
    #: AT+CPSMS=<mode>,,,<Requested_Periodic-TAU>,<Requested_Active-Time>.
    psm_mode: int = 0
    requested_tau: str | None = None
    requested_active_time: str | None = None
    #: AT+CEDRXS=<mode>,<AcT-type>,<Requested_eDRX_value>: AcT-type -> value.
    edrx: dict[int, str] = field(default_factory=dict)
    edrx_mode: int = 0
    #: AT%XPTW=<AcT>,<ptw>: AcT (4 LTE-M, 5 NB-IoT) -> requested paging time window.
    ptw: dict[int, str] = field(default_factory=dict)
    #: The last %CESQ values reported (to report a change only).
    last_cesq: tuple[int, int] | None = None
    #: AT%XSYSTEMMODE=<LTE-M>,<NB-IoT>,<GNSS>,<preference> as set (None: the RAT's default).
    system_mode: tuple[int, ...] | None = None
    #: Registered at the last registration event; PSM timers granted by the PSM logic.
    was_registered: bool = False
    psm_applied: bool = False
    #: SIMCom AT+CMNB=<mode> (None: the RAT's) and AT+CENG=<mode>,<Ncell>.
    cmnb: int | None = None
    ceng: tuple[int, int] = (0, 0)
