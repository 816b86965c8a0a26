"""The SIMCom field-diagnostics commands, each family's own form.

Sources: SIM7000 Series / SIM7070_SIM7080_SIM7090 Series AT Command Manuals (AT+CBC
``+CBC: <bcs>,<bcl>,<voltage>`` in mV, AT+CNMP, AT+CMNB, AT+CBANDCFG, AT+CENG); the
SIM7500_SIM7600 Series AT Command Manual (AT+CBC ``+CBC: <vol>V``, AT+CPMUTEMP, AT+CNMP);
TinyGSM ``TinyGsmClientSIM7600.h`` (``getTemperatureImpl`` reads ``+CPMUTEMP:``) and
``TinyGsmBattery.tpp``; public SIM7600/SIM7080 logs quoted in shared/reference/at-dialects.md
§5 and on GitHub (``+CBC: 3.978V``, ``+CPMUTEMP: 23``, ``+CENG: 1,1,1,LTE NB-IOT`` then
``+CENG: 0,"3700,29,-74,-72,-3,12,199,8381899,284,01,255"``).

- ``AT+CBC``: SIM7000/SIM7080/SIM800 ``+CBC: 0,75,3900`` (not charging, 75 %, 3900 mV);
  SIM7600/A7672 ``+CBC: 3.900V``.
- ``AT+CPMUTEMP`` (SIM7600/A7672 only) -> ``+CPMUTEMP: 25``; the others answer ERROR.
- ``AT+CNMP?`` -> ``+CNMP: 38`` (LTE only) on SIM7000/SIM7080 camping on LTE, ``13`` (GSM only)
  on GSM/GPRS; SIM7600 ``+CNMP: 2`` (automatic); set forms take the manual's values.
  SIM800 has no AT+CNMP (ERROR).
- ``AT+CMNB?`` (SIM7000/SIM7080) -> ``+CMNB: 1`` (CAT-M) or ``2`` (NB-IoT).
- ``AT+CBANDCFG?`` (SIM7080) -> ``+CBANDCFG: "CAT-M",<bands>`` and ``+CBANDCFG: "NB-IOT",
  <bands>``.
- ``AT+CENG?`` (SIM7080) -> ``+CENG: <mode>,<Ncell>,<num>,<system mode>``, then (engineering
  mode on, ``AT+CENG=1[,1]``) ``+CENG: 0,"<earfcn>,<pci>,<rsrp>,<rssi>,<rsrq>,<sinr>,<tac>,
  <cellid>,<mcc>,<mnc>,<tx power>"`` for the serving cell (TAC and cell id in decimal, tx power
  255 in idle) and, with ``<Ncell>`` 1, ``+CENG: 1,"<earfcn>,<pci>,<rsrp>,<rssi>,<rsrq>,<sinr>"``
  for the neighbour.
"""

from __future__ import annotations

from typing import Final

from . import radio as rf
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response

__all__ = [
    "CBC_MILLIVOLTS",
    "CPMUTEMP_CELSIUS",
    "SIM70X0_HANDLERS",
    "SIM7080_HANDLERS",
    "SIM7600_HANDLERS",
]

CBC_MILLIVOLTS: Final = 3900
CBC_PERCENT: Final = 75
CPMUTEMP_CELSIUS: Final = 25
SIM70X0_CNMP: Final = (2, 13, 38, 51)
SIM7600_CNMP: Final = (2, 13, 14, 38, 39, 48, 51, 54, 59, 60, 63, 67, 71)
CAT_M_BANDS: Final = (1, 2, 3, 4, 5, 8, 12, 13, 14, 18, 19, 20, 25, 26, 27, 28, 66, 85)
NB_IOT_BANDS: Final = (1, 2, 3, 4, 5, 8, 12, 13, 18, 19, 20, 25, 26, 28, 66, 71, 85)


def _cbc_sim70x0(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CBC: (0-2),(1-100),(voltage)")
    return Response.ok(f"+CBC: 0,{CBC_PERCENT},{CBC_MILLIVOLTS}")


def _cbc_sim7600(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    return Response.ok(f"+CBC: {CBC_MILLIVOLTS / 1000:.3f}V")


def _cpmutemp(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    return Response.ok(f"+CPMUTEMP: {CPMUTEMP_CELSIUS}")


def _cnmp(valid: tuple[int, ...], default: int | None) -> Handler:
    """AT+CNMP: ``default`` (None: 38 on LTE, 13 on GSM/GPRS) until set."""

    def handler(fake: FakeModem, cmd: Command) -> Response:
        radio = fake.state.radio
        if cmd.kind is Kind.TEST:
            return Response.ok("+CNMP: (" + ",".join(str(v) for v in valid) + ")")
        if cmd.kind is Kind.READ:
            if radio.system_mode is not None:
                return Response.ok(f"+CNMP: {radio.system_mode[0]}")
            mode = default if default is not None else 13 if fake.rat in ("gsm", "gprs") else 38
            return Response.ok(f"+CNMP: {mode}")
        cmd.require_kind(Kind.SET)
        radio.system_mode = (cmd.int_arg(0, valid=valid),)
        return Response.ok()

    return handler


def _cmnb(fake: FakeModem, cmd: Command) -> Response:
    radio = fake.state.radio
    if cmd.kind is Kind.TEST:
        return Response.ok("+CMNB: (1-3)")
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CMNB: {radio.cmnb or (2 if fake.act == 9 else 1)}")
    cmd.require_kind(Kind.SET)
    radio.cmnb = cmd.int_arg(0, valid=(1, 2, 3))
    return Response.ok()


def _cbandcfg(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is Kind.READ:
        return Response.ok(
            '+CBANDCFG: "CAT-M",' + ",".join(str(b) for b in CAT_M_BANDS),
            '+CBANDCFG: "NB-IOT",' + ",".join(str(b) for b in NB_IOT_BANDS),
        )
    if cmd.kind is Kind.TEST:
        return Response.ok('+CBANDCFG: ("CAT-M","NB-IOT"),(list of bands)')
    cmd.require_kind(Kind.SET)
    if cmd.str_arg(0).upper() not in ("CAT-M", "NB-IOT") or len(cmd.params) < 2:
        raise CommandError(50)
    return Response.ok()


def _ceng(fake: FakeModem, cmd: Command) -> Response:
    radio = fake.state.radio
    if cmd.kind is Kind.TEST:
        return Response.ok("+CENG: (0-1),(0-1)")
    if cmd.kind is Kind.SET:
        radio.ceng = (cmd.int_arg(0, valid=(0, 1)), cmd.int_arg(1, valid=(0, 1), default=0))
        return Response.ok()
    cmd.require_kind(Kind.READ)
    mode, ncell = radio.ceng
    s, net = fake.state, fake.network
    system_mode = "LTE NB-IOT" if fake.act == 9 else "LTE CAT-M1"
    camped = s.registered and s.tac is not None and s.ci is not None
    cells = (2 if ncell else 1) if mode and camped else 0
    lines = [f"+CENG: {mode},{ncell},{cells},{system_mode}"]
    if cells:
        rsrp, sinr = fake.rsrp_index, rf.snr_db(fake.rsrp_index)
        rsrq = rf.rsrq_tenths(fake.rsrq_index) // 10
        serving = [
            net.earfcn,
            net.pci,
            rf.rsrp_dbm(rsrp),
            rf.rssi_dbm(rsrp),
            rsrq,
            sinr,
            int(str(s.tac), 16),
            int(str(s.ci), 16),
            net.plmn[:3],
            net.plmn[3:],
            255,
        ]
        lines.append('+CENG: 0,"' + ",".join(str(v) for v in serving) + '"')
    if cells == 2:
        cell = rf.neighbour_cell(net)
        weaker = max(0, fake.rsrp_index - 6)
        neighbour = [cell.earfcn, cell.pci, rf.rsrp_dbm(weaker), rf.rssi_dbm(weaker), rsrq - 3]
        neighbour.append(rf.snr_db(weaker))
        lines.append('+CENG: 1,"' + ",".join(str(v) for v in neighbour) + '"')
    return Response.ok(*lines)


#: SIM7000 (and SIM800, which removes +CNMP and +CMNB) diagnostics.
SIM70X0_HANDLERS: Final[dict[str, Handler | None]] = {
    "+CBC": _cbc_sim70x0,
    "+CNMP": _cnmp(SIM70X0_CNMP, None),
    "+CMNB": _cmnb,
}
SIM7080_HANDLERS: Final[dict[str, Handler | None]] = {
    **SIM70X0_HANDLERS,
    "+CBANDCFG": _cbandcfg,
    "+CENG": _ceng,
}
SIM7600_HANDLERS: Final[dict[str, Handler | None]] = {
    "+CBC": _cbc_sim7600,
    "+CPMUTEMP": _cpmutemp,
    "+CNMP": _cnmp(SIM7600_CNMP, 2),
}
