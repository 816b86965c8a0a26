"""The nRF91 field-diagnostics commands both nRF91 fakes (SLM and Serial Modem) answer.

Sources: the Nordic nRF91 AT Commands Reference (nRF9160 v1.x / nRF91x1 pages on
docs.nordicsemi.com: "%XMONITOR" ``nw_service/xmonitor_set``, "Connectivity evaluation
%CONEVAL", "Signal quality notification %CESQ" §5.6, "+CSQ" §5.7, "Current band %XCBAND"
§5.14, "Read neighbor cells %NBRGRSRP" §5.15, "%XSYSTEMMODE", "%XTEMP", "%XVBAT", "%MDMEV",
"%XPTW", "+CGCONTRDP"); shared/reference/at-dialects.md §4 (the shapes with real examples);
Cellular Monitor (pc-nrfconnect-cellularmonitor) ``%MDMEV`` event texts; sdk-nrf
``lib/lte_link_control`` (``coneval.c`` reads 17 values when ``<result>`` is 0).

Answers, from the fake's state (``radio`` derives the signal figures):

- ``AT%XTEMP?`` -> ``%XTEMP: 24``; ``AT%XVBAT`` -> ``%XVBAT: 3600`` (mV).
- ``AT%XSYSTEMMODE?`` -> ``%XSYSTEMMODE: 1,0,1,0`` (LTE-M, GNSS) or ``0,1,1,0`` on NB-IoT, or
  what ``AT%XSYSTEMMODE=`` set (only outside CFUN=1; ERROR in CFUN=1, as the reference says
  to set it before activating the modem).
- ``AT%XCBAND`` -> ``%XCBAND: <band>`` while registered, ``%XCBAND: 0`` otherwise ("0 when
  current band information not available").
- ``AT%XMONITOR`` -> registered (stat 1/5): ``%XMONITOR: <reg_status>,"<full_name>",
  "<short_name>","<plmn>","<tac>",<AcT>,<band>,"<cell_id>",<phys_cell_id>,<EARFCN>,<rsrp>,
  <snr>,"<NW provided eDRX>","<Active-Time>","<Periodic-TAU-ext>","<Periodic-TAU>"`` (the
  mfw 1.2+ layout; timers: the granted PSM timers, ``"11100000"`` (deactivated) without PSM,
  legacy T3412 ``"01001001"`` (54 min, the reference's example)); otherwise only
  ``%XMONITOR: <reg_status>`` ("the optional part is included only when <reg_status> is 1 or
  5").
- ``AT%CONEVAL`` -> registered: ``%CONEVAL: 0,<rrc_state>,<energy_estimate>,<rsrp>,<rsrq>,
  <snr>,"<cell_id>","<plmn>",<phys_cell_id>,<earfcn>,<band>,<tau_triggered>,<ce_level>,
  <tx_power>,<tx_repetitions>,<rx_repetitions>,<dl-pathloss>``; no cell (searching, no
  service) ``%CONEVAL: 1``; no SIM ``%CONEVAL: 2``; camped but not registered (denied)
  ``%CONEVAL: 6``; ERROR outside CFUN=1 (lte_lc evaluates only in CFUN 1).
- ``AT%NBRGRSRP`` -> ``%NBRGRSRP: <pci>,<EARFCN>,<rsrp>`` of the network's other cell (the fake
  network configures neighbour monitoring); bare ``OK`` when not camped, ERROR outside CFUN=1
  ("valid response only when the modem is activated").
- ``AT+CSQ`` -> ``+CSQ: 99,99`` always ("not detectable, RAT not supported": use +CESQ).
- ``AT%CESQ=1`` -> ``%CESQ: <rsrp>,<rsrp_threshold_index>,<rsrq>,<rsrq_threshold_index>`` on
  every change of the reported signal (255 values when the cell is lost; default thresholds).
- ``AT%MDMEV=1`` -> ``%MDMEV: SEARCH STATUS 2`` when a search ends (a cell found, or every
  frequency scanned), ``%MDMEV: SEARCH STATUS 1`` after a light search found nothing
  (Cellular Monitor's event descriptions).
- ``AT+CGCONTRDP=0`` -> ``+CGCONTRDP: 0,,"<apn>","","","<dns1>","<dns2>",,,,,1500`` while the
  default PDN is active; plain ERROR when it is not.
- ``AT%XPTW=<AcT>,"<ptw>"`` / ``AT%XPTW?`` -> ``%XPTW: <AcT>,"<ptw>"[,<AcT>,"<ptw>"]`` (the
  windows set; bare OK when none is).
"""

from __future__ import annotations

import re
from typing import Final

from . import radio as rf
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response

__all__ = ["DIAG_HANDLERS", "XTEMP_CELSIUS", "XVBAT_MILLIVOLTS", "on_radio"]

XTEMP_CELSIUS: Final = 24
XVBAT_MILLIVOLTS: Final = 3600
#: Legacy T3412 the fake network gives (6 min x 9 = 54 min, GPRS Timer coding).
LEGACY_T3412: Final = "01001001"
DEACTIVATED: Final = "11100000"
MTU: Final = 1500
#: Bands an nRF9160 supports (%XCBAND=? example of the AT reference's later releases).
SUPPORTED_BANDS: Final = (1, 2, 3, 4, 5, 8, 12, 13, 17, 19, 20, 25, 26, 28, 66)
_PTW_RE: Final = re.compile(r"[01]{4}")


def _xtemp(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is Kind.READ:
        return Response.ok(f"%XTEMP: {XTEMP_CELSIUS}")
    if cmd.kind is Kind.SET and cmd.int_arg(0, valid=(0, 1)) in (0, 1):
        return Response.ok()
    raise CommandError(None)


def _xvbat(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    return Response.ok(f"%XVBAT: {XVBAT_MILLIVOLTS}")


def _xsystemmode(fake: FakeModem, cmd: Command) -> Response:
    radio = fake.state.radio
    if cmd.kind is Kind.READ:
        mode = radio.system_mode or ((0, 1, 1, 0) if fake.act == 9 else (1, 0, 1, 0))
        return Response.ok("%XSYSTEMMODE: " + ",".join(str(v) for v in mode))
    if cmd.kind is Kind.TEST:
        return Response.ok("%XSYSTEMMODE: (0,1),(0,1),(0,1),(0-4)")
    cmd.require_kind(Kind.SET)
    if fake.state.cfun == 1 or len(cmd.params) not in (4, 5):
        raise CommandError(None)
    values = [cmd.int_arg(i, valid=(0, 1)) for i in range(3)]
    values.append(cmd.int_arg(3, valid=range(5)))
    if len(cmd.params) == 5:
        values.append(cmd.int_arg(4, valid=(0, 1)))
    radio.system_mode = tuple(values)
    return Response.ok()


def _xcband(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is Kind.TEST:
        return Response.ok("%XCBAND: (" + ",".join(str(b) for b in SUPPORTED_BANDS) + ")")
    cmd.require_kind(Kind.EXEC)
    band = fake.network.band if fake.state.registered and fake.state.tac is not None else 0
    return Response.ok(f"%XCBAND: {band}")


def _psm_timers(fake: FakeModem) -> tuple[str, str]:
    s = fake.state
    if s.active_time is None:
        return DEACTIVATED, DEACTIVATED
    return s.active_time, s.periodic_tau or DEACTIVATED


def nw_edrx(fake: FakeModem) -> str:
    """The eDRX value the network provides (what was requested; "" when none)."""
    radio = fake.state.radio
    if radio.edrx_mode not in (1, 2):
        return ""
    return radio.edrx.get(5 if fake.act == 9 else 4, "")


def _xmonitor(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    s, net = fake.state, fake.network
    if not s.registered or s.tac is None or s.ci is None:
        return Response.ok(f"%XMONITOR: {s.stat}")
    active, tau = _psm_timers(fake)
    fields = [
        str(s.stat),
        f'"{net.long_name}"',
        f'"{net.short_name}"',
        f'"{net.plmn}"',
        f'"{s.tac}"',
        str(fake.act),
        str(net.band),
        f'"{s.ci}"',
        str(net.pci),
        str(net.earfcn),
        str(fake.rsrp_index),
        str(rf.snr_index(fake.rsrp_index)),
        f'"{nw_edrx(fake)}"',
        f'"{active}"',
        f'"{tau}"',
        f'"{LEGACY_T3412}"',
    ]
    return Response.ok("%XMONITOR: " + ",".join(fields))


def _coneval(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    s, net = fake.state, fake.network
    if s.cfun != 1:
        raise CommandError(None)
    if not fake.sim_inserted:
        return Response.ok("%CONEVAL: 2")
    if s.tac is None or s.ci is None:
        return Response.ok("%CONEVAL: 1")
    if not s.registered:
        return Response.ok("%CONEVAL: 6")
    figures = rf.coneval_figures(fake.rsrp_index)
    fields = [
        0,
        s.radio.rrc,
        figures.energy_estimate,
        fake.rsrp_index,
        fake.rsrq_index,
        rf.snr_index(fake.rsrp_index),
        f'"{s.ci}"',
        f'"{net.plmn}"',
        net.pci,
        net.earfcn,
        net.band,
        0,  # registered on the evaluated cell: no TAU needed before sending
        figures.ce_level,
        figures.tx_power,
        figures.tx_repetitions,
        figures.rx_repetitions,
        figures.dl_pathloss,
    ]
    return Response.ok("%CONEVAL: " + ",".join(str(v) for v in fields))


#: How much weaker the neighbour cell is than the serving one (RSRP index steps).
NEIGHBOUR_OFFSET: Final = 6


def _nbrgrsrp(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    s = fake.state
    if s.cfun != 1:
        raise CommandError(None)
    if not s.registered or s.tac is None:
        return Response.ok()
    cell = rf.neighbour_cell(fake.network)
    rsrp = max(0, fake.rsrp_index - NEIGHBOUR_OFFSET)
    return Response.ok(f"%NBRGRSRP: {cell.pci},{cell.earfcn},{rsrp}")


def _csq(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CSQ: (99),(99)")
    return Response.ok("+CSQ: 99,99")


def _notification_level(attribute: str, levels: range) -> Handler:
    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET)
        setattr(fake.state.radio, attribute, cmd.int_arg(0, valid=levels))
        if attribute == "cesq_n":
            fake.state.radio.last_cesq = None
        return Response.ok()

    return handler


def _cgcontrdp(fake: FakeModem, cmd: Command) -> Response:
    from .nrf91_sockets import sockets_of

    cmd.require_kind(Kind.EXEC, Kind.SET)
    cid = cmd.int_arg(0, valid=range(12)) if cmd.kind is Kind.SET else 0
    ctx = fake.state.contexts.get(cid)
    active = cid == 0 and fake.state.registered and sockets_of(fake).pdn_active
    if ctx is None or not active:
        raise CommandError(None)
    net = fake.network
    apn = ctx.apn or net.apn
    dns1, dns2 = net.dns
    return Response.ok(f'+CGCONTRDP: 0,,"{apn}","","","{dns1}","{dns2}",,,,,{MTU}')


def _xptw(fake: FakeModem, cmd: Command) -> Response:
    radio = fake.state.radio
    if cmd.kind is Kind.READ:
        if not radio.ptw:
            return Response.ok()
        pairs = (f'{act},"{value}"' for act, value in sorted(radio.ptw.items()))
        return Response.ok("%XPTW: " + ",".join(pairs))
    cmd.require_kind(Kind.SET)
    act = cmd.int_arg(0, valid=(4, 5))
    value = cmd.str_arg(1)
    if not _PTW_RE.fullmatch(value):
        raise CommandError(50)
    radio.ptw[act] = value
    return Response.ok()


DIAG_HANDLERS: Final[dict[str, Handler]] = {
    "%XTEMP": _xtemp,
    "%XVBAT": _xvbat,
    "%XSYSTEMMODE": _xsystemmode,
    "%XCBAND": _xcband,
    "%XMONITOR": _xmonitor,
    "%CONEVAL": _coneval,
    "%NBRGRSRP": _nbrgrsrp,
    "+CSQ": _csq,
    "%CESQ": _notification_level("cesq_n", range(2)),
    "%MDMEV": _notification_level("mdmev_n", range(3)),
    "+CGCONTRDP": _cgcontrdp,
    "%XPTW": _xptw,
}


def on_radio(fake: FakeModem, kind: str) -> None:
    """``Dialect.on_radio``: ``%CESQ`` on a change of the reported signal, ``%MDMEV`` when a
    search ends."""
    radio = fake.state.radio
    if kind in ("signal", "registration") and radio.cesq_n == 1:
        camped = fake.state.registered
        now = (fake.rsrp_index, fake.rsrq_index) if camped else (255, 255)
        if now != (radio.last_cesq or (255, 255)):  # nothing reported yet: unknown
            radio.last_cesq = now
            rsrp, rsrq = now
            fake.send_urc(
                f"%CESQ: {rsrp},{rf.threshold_index(rsrp, rf.RSRP_THRESHOLDS)},"
                f"{rsrq},{rf.threshold_index(rsrq, rf.RSRQ_THRESHOLDS)}"
            )
    if radio.mdmev_n and kind in ("light_search", "search_done"):
        fake.send_urc("%MDMEV: SEARCH STATUS " + ("1" if kind == "light_search" else "2"))
