"""The SIMCom SIM7080G (SIM7070/SIM7080 "CN*/CA*" application TCP stack), as a fake dialect.

Sources: shared/reference/at-dialects.md §5.1 and §5.4; TinyGSM ``TinyGsmClientSIM7080.h``
and Zephyr ``drivers/modem/simcom-sim7080.c`` as evidence of what the module sends (both read
``+CAOPEN`` before ``OK``, ``+CARECV: <len>,<data>`` without a cid, ``> `` then ``OK``).

- Boot ``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``SMS Ready``; echo on (V.250), CR ends a
  line (a following LF is ignored), CFUN=1 at power-on.
- Identity ``SIMCOM INCORPORATED`` / ``SIMCOM_SIM7080G`` / ``Revision:1951B08SIM7080``.
- ``AT+CNCFG=<pdpidx>,<ip_type>[,"<apn>"[,"<user>","<pwd>"[,<auth>]]]`` -> OK.
- ``AT+CNACT=<pdpidx>,<0|1|2>`` -> ``OK`` then ``+APP PDP: <pdpidx>,ACTIVE`` (or
  ``DEACTIVE`` when not registered; ERROR if already active). ``AT+CNACT=<pdpidx>,0`` closes
  every socket of that context. ``AT+CNACT?`` -> ``+CNACT: <pdpidx>,<status>,"<ip>"`` for
  contexts 0..3.
- ``AT+CACID=<cid>``, ``AT+CASSLCFG=<cid>,"SSL",<0|1>`` -> OK (TLS is not modelled: an SSL
  socket opens with result 7, not supported).
- ``AT+CAOPEN=<cid>,<pdpidx>,"TCP","<host>",<port>[,0]`` -> ``+CAOPEN: <cid>,<result>`` then
  ``OK`` (0 ok, 1 PDP not active — as observed in TinyGSM#829, 20 cannot resolve, 23 refused,
  27 connect failed / not loopback); cid 0..11 (TinyGSM's 12 connections); a bad parameter
  -> ERROR. A cid that is still open (sockets outlive the host: a killed host leaves them
  open, ``AT+CASTATE?`` lists them) is refused with ``+CAOPEN: <cid>,<CAOPEN_IN_USE>`` + OK
  until ``AT+CACLOSE`` (the code is not in the sources read; unverified on a board).
- ``AT+CASEND=<cid>,<len>[,<inputtime>]`` (1..1460) -> ``\\r\\n> `` -> exactly len raw bytes
  -> ``OK`` (nothing else); a failed send -> ``ERROR``.
- ``+CADATAIND: <cid>`` when data becomes readable; ``AT+CARECV=<cid>,<readlen>`` (1..1460)
  -> ``+CARECV: <recvlen>,<data>`` then ``OK`` (data inline after the comma, then CR LF);
  ``+CARECV: 0`` when nothing is buffered. ``CARECV_SHOWS_CID`` switches to the manual's
  ``+CARECV: <cid>,<recvlen>,<data>``. ``AT+CARECV?`` -> ``+CARECV: <cid>,<available>`` for
  sockets with data.
- ``AT+CASTATE?`` -> ``+CASTATE: <cid>,<state>`` per socket (1 connected, 0 closed);
  URC ``+CASTATE: <cid>,0`` when the peer closes. ``AT+CACLOSE=<cid>`` -> OK.
- ``AT+CDNSGIP="<host>"[,<retries>,<timeout>]`` -> ``OK`` then ``+CDNSGIP: 1,"<host>","<ip>"``
  or ``+CDNSGIP: 0,8``.
- ``AT+CPSI?`` -> ``+CPSI: LTE CAT-M1,Online,262-01,0x0A1B,...`` (dB units; ``LTE NB-IOT`` on
  ``rat="nbiot"``). Field diagnostics (+CBC, +CNMP, +CMNB, +CBANDCFG, +CENG) are
  ``simcom_diag``'s.
- PDP drop fault: ``+APP PDP: 0,DEACTIVE``, every socket reset (no per-socket URC).
- ``late_boot=S`` (``model()``): ``SMS Ready`` comes ``S`` seconds after power-on.
"""

from __future__ import annotations

from typing import Final

from . import simcom_common as sc
from . import simcom_diag
from .core import FakeModem
from .grammar import Command, CommandError, Kind, Response
from .registry import Dialect, Identity, register_dialect

__all__ = [
    "CAOPEN_IN_USE",
    "CARECV_SHOWS_CID",
    "MAX_RECV",
    "MAX_SEND",
    "SIM7080",
    "Sim7080State",
    "model",
]

#: The single switch for the open question of reference §8: the manual writes
#: ``+CARECV: <cid>,<recvlen>,<data>``? TinyGSM and Zephyr read ``+CARECV: <recvlen>,<data>``.
CARECV_SHOWS_CID: bool = False
MAX_SEND: Final = 1460
MAX_RECV: Final = 1460
CIDS: Final = range(12)
PDP_INDEXES: Final = range(4)
RX_BUFFER: Final = 32768
#: ``+CAOPEN`` result for a cid that is already open. The result table (TinyGSM, the manual)
#: names no code for this case; 4 "parameter invalid" is assumed (unverified on a board).
CAOPEN_IN_USE: Final = 4


class Sim7080State(sc.SimcomState):
    """Power-on state: PDP contexts (CNACT), SSL flags, sockets by cid."""

    def __init__(self) -> None:
        super().__init__()
        self.active: set[int] = set()
        self.ssl: dict[int, bool] = {}
        self.pdp_of: dict[int, int] = {}

    def drop_pdp(self, fake: FakeModem) -> None:
        for pdpidx in sorted(self.active):
            self._deactivate(pdpidx)
            fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE")

    def _deactivate(self, pdpidx: int) -> None:
        self.active.discard(pdpidx)
        for cid, sock in self.sockets.items():
            if self.pdp_of.get(cid) == pdpidx:
                sock.drop()


def _state(fake: FakeModem) -> Sim7080State:
    return fake.dialect_state_as(Sim7080State)


def _on_data(sock: sc.SimSocket) -> None:
    sc.send_notice(sock.fake, f"+CADATAIND: {sock.link}")


def _on_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"+CASTATE: {sock.link},0")


def _cnact(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CNACT: (0-3),(0-2)")
    if cmd.kind is Kind.READ:
        lines = []
        for pdpidx in PDP_INDEXES:
            on = pdpidx in st.active
            address = fake.network.ip if on else "0.0.0.0"
            lines.append(f'+CNACT: {pdpidx},{int(on)},"{address}"')
        return Response.ok(*lines)
    pdpidx = cmd.int_arg(0, valid=PDP_INDEXES)
    action = cmd.int_arg(1, valid=(0, 1, 2))
    if action == 0:
        if pdpidx not in st.active:
            raise CommandError(None)
        st._deactivate(pdpidx)
        fake.after_response(lambda: fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE"))
        return Response.ok()
    if pdpidx in st.active:
        raise CommandError(None)

    def activate() -> None:
        if fake.state.registered:
            st.active.add(pdpidx)
            fake.send_urc(f"+APP PDP: {pdpidx},ACTIVE")
        else:
            fake.send_urc(f"+APP PDP: {pdpidx},DEACTIVE")

    fake.after_response(activate)
    return Response.ok()


def _cncfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CNCFG: (0-3),(0-2),"APN","USER","PWD",(0-3)')
    cmd.int_arg(0, valid=PDP_INDEXES)
    cmd.int_arg(1, valid=(0, 1, 2))
    for index in (2, 3, 4):
        if cmd.has(index):
            cmd.str_arg(index)
    if cmd.has(5):
        cmd.int_arg(5, valid=range(4))
    return Response.ok()


def _cacid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    cmd.int_arg(0, valid=CIDS)
    return Response.ok()


def _casslcfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    cid = cmd.int_arg(0, valid=CIDS)
    if len(cmd.params) < 3:
        raise CommandError(None)
    if cmd.params[1].text.upper() == "SSL":
        _state(fake).ssl[cid] = cmd.int_arg(2, valid=(0, 1)) == 1
    return Response.ok()


async def _caopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    st = _state(fake)
    cid = cmd.int_arg(0, valid=CIDS)
    pdpidx = cmd.int_arg(1, valid=PDP_INDEXES)
    kind = cmd.str_arg(2).upper()
    host = cmd.str_arg(3)
    port = cmd.int_arg(4, valid=range(1, 65536))
    cmd.int_arg(5, valid=(0,), default=0)  # recv_mode 1 (+CAURC pushes) is not modelled
    if kind not in ("TCP", "UDP") or len(cmd.params) > 6:
        raise CommandError(None)

    def result(code: int) -> Response:
        return Response.ok(f"+CAOPEN: {cid},{code}")

    old = st.sockets.get(cid)
    if old is not None and old.connected:
        return result(CAOPEN_IN_USE)

    if pdpidx not in st.active:
        return result(1)
    if kind == "UDP" or st.ssl.get(cid, False):
        return result(7)
    address = sc.resolve(fake, host)
    if address is None:
        return result(20)
    sock = sc.SimSocket(
        fake, cid, host, port, rx_limit=RX_BUFFER, on_data=_on_data, on_peer_close=_on_peer_close
    )
    st.sockets[cid] = sock
    st.pdp_of[cid] = pdpidx
    if not await sock.connect(address):
        del st.sockets[cid]
        return result(23 if sc.is_loopback(address) else 27)
    fake.after_response(sock.activate)
    return result(0)


def _open_socket(fake: FakeModem, cid: int) -> sc.SimSocket:
    sock = _state(fake).sockets.get(cid)
    if sock is None:
        raise CommandError(None)
    return sock


async def _casend(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET)
    st = _state(fake)
    cid = cmd.int_arg(0, valid=CIDS)
    length = cmd.int_arg(1, valid=range(1, MAX_SEND + 1))
    cmd.int_arg(2, default=0)  # <inputtime>: no time-out is modelled
    sock = _open_socket(fake, cid)
    if sock.state != "open":
        raise CommandError(None)
    payload, _ = await sc.take_payload(fake, st, length)
    if st.faults.take_failed_send():
        raise CommandError(None)
    sock.send(payload)
    return Response.ok()


def _carecv(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CARECV: (0-11),(1-{MAX_RECV})")
    if cmd.kind is Kind.READ:
        return Response.ok(
            *(
                f"+CARECV: {cid},{s.available}"
                for cid, s in sorted(st.sockets.items())
                if s.available
            )
        )
    cid = cmd.int_arg(0, valid=CIDS)
    readlen = cmd.int_arg(1, valid=range(1, MAX_RECV + 1))
    sock = _open_socket(fake, cid)
    data = sock.take(readlen)
    head = f"+CARECV: {cid}," if CARECV_SHOWS_CID else "+CARECV: "
    if not data:
        return Response.ok(f"{head}0")
    return Response(lines=(f"\r\n{head}{len(data)},".encode(), data))


def _castate(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.READ, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    lines = [
        f"+CASTATE: {cid},{1 if sock.connected else 0}"
        for cid, sock in sorted(_state(fake).sockets.items())
    ]
    return Response.ok(*lines)


def _caclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    cid = cmd.int_arg(0, valid=CIDS)
    sock = _open_socket(fake, cid)
    sock.close()
    del _state(fake).sockets[cid]
    return Response.ok()


_BANNER: Final = ("RDY", "+CFUN: 1", "+CPIN: READY")


def _pdp_active(fake: FakeModem) -> bool:
    return bool(_state(fake).active)


SIM7080: Final = register_dialect(
    Dialect(
        name="sim7080",
        description="SIMCom SIM7080G (CN*/CA* application TCP stack)",
        terminator="CR",
        boot_banner=sc.boot_lines(_BANNER, ("SMS Ready",)),
        default_echo=True,
        boot_cfun=1,
        identity=Identity(
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7080G",
            revision="1951B08SIM7080",
            imei="869951031234567",
            imsi="262011234567890",
            iccid="89490200001234567890",
        ),
        cfun_modes=(0, 1, 4),
        cid_range=(1, 15),
        default_contexts={1: ("IP", "")},
        handlers={
            **sc.common_handlers(),
            **simcom_diag.SIM7080_HANDLERS,
            "+CGMR": sc.cgmr_handler("Revision:"),
            "+CPSI": sc.cpsi_handler(sc.sim70x0_system_mode, tenths=False),
            "+CNACT": _cnact,
            "+CNCFG": _cncfg,
            "+CACID": _cacid,
            "+CASSLCFG": _casslcfg,
            "+CAOPEN": _caopen,
            "+CASEND": _casend,
            "+CARECV": _carecv,
            "+CASTATE": _castate,
            "+CACLOSE": _caclose,
            "+CDNSGIP": sc.cdnsgip_handler(
                _pdp_active, result_after_ok=True, error_code=8, error_final=False
            ),
        },
        new_state=Sim7080State,
        faults=sc.SIMCOM_FAULTS,
        on_reboot=sc.on_reboot,
        on_stop=sc.on_stop,
    )
)


def model(*, autobaud: bool = False, late_boot: float | None = None) -> Dialect:
    """The SIM7080G fake auto-bauding (no banner) and/or with ``SMS Ready`` ``late_boot``
    seconds after power-on."""
    return sc.boot_variant(SIM7080, _BANNER, ("SMS Ready",), autobaud=autobaud, late_boot=late_boot)
