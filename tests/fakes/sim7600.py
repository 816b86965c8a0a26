"""The SIMCom SIM7600 / SIM7500 / A76xx (NETOPEN/CIPOPEN TCP stack), as a fake dialect.

Sources: shared/reference/at-dialects.md §5.3 and §5.4; the SIM7500/SIM7600 TCPIP manual's
information elements and error tables (+CIPEVENT, +IPCLOSE reasons, <err>, <err_info>, as
mirrored on momoiot.co.kr/lte-at); TinyGSM ``TinyGsmClientSIM7600.h`` as evidence of what the
module sends (``+CIPOPEN:`` after OK, ``+CIPSEND: <link>,<req>,<cnf>``, ``+CIPRXGET: 2,...``).

- Boot ``RDY``, ``+CPIN: READY``, ``SMS DONE``, ``PB DONE``; echo on, CR ends a line.
- Identity ``SIMCOM INCORPORATED`` / ``SIMCOM_SIM7600G-H`` / ``+CGMR: LE20B04SIM7600G22``.
- ``AT+NETOPEN`` -> ``OK`` then ``+NETOPEN: 0`` (``+NETOPEN: 1`` unregistered); again ->
  ``+IP ERROR: Network is already opened`` + ``ERROR``. ``AT+NETOPEN?`` -> ``+NETOPEN: <0|1>``.
  ``AT+NETCLOSE`` -> ``OK`` then ``+NETCLOSE: 0`` (closes every link); not open ->
  ``+IP ERROR: Network is already closed`` + ``ERROR``. ``AT+IPADDR`` -> ``+IPADDR: <ip>``.
- ``AT+CIPRXGET=1`` manual receive (0 = push: ``+IPD<len>`` or, with AT+CIPCCFG HeaderType=1,
  ``+RECEIVE,<link>,<len>``, then the data). ``+CIPRXGET: 1,<link>`` when data becomes
  readable; ``AT+CIPRXGET=2,<link>[,<len>]`` (1..1500) -> ``+CIPRXGET: 2,<link>,<read>,<rest>``
  CR LF, exactly read bytes, then ``OK`` (``...,0,0`` when nothing is buffered);
  ``AT+CIPRXGET=3,...`` the same in hex (up to 750 bytes); ``AT+CIPRXGET=4,<link>`` ->
  ``+CIPRXGET: 4,<link>,<avail>``.
- ``AT+CIPOPEN=<link>,"TCP","<host>",<port>`` (link 0..9) -> ``OK`` then
  ``+CIPOPEN: <link>,<err>`` (0 ok, 11 DNS parse failed, 1 network failure: refused, not
  loopback or PDP lost); a busy link -> ``+CIPOPEN: <link>,4`` + ``ERROR``; network not open
  -> ``+IP ERROR: Network not opened`` + ``ERROR``. ``AT+CIPOPEN?`` lists the links.
- ``AT+CIPSEND=<link>,<len>`` (1..1500) -> ``\\r\\n> `` -> exactly len bytes -> ``OK`` then
  ``+CIPSEND: <link>,<len>,<len>``; a failed send -> ``OK`` then ``+CIPSEND: <link>,<len>,-1``.
- ``+IPCLOSE: <link>,1`` when the peer closes (buffered data stays readable).
  ``AT+CIPCLOSE=<link>`` -> ``OK`` then ``+CIPCLOSE: <link>,0``; not open ->
  ``+CIPCLOSE: <link>,4`` + ``ERROR``. ``AT+CIPCLOSE?`` -> ``+CIPCLOSE: <s0>,...,<s9>``.
- PDP drop fault: ``+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY``; every link is reset (no
  +IPCLOSE), the network library stays "opened" (``+NETOPEN: 1``) but unusable until
  ``AT+NETCLOSE`` and ``AT+NETOPEN`` (the manual's recovery: close the sockets, NETCLOSE).
- ``AT+CDNSGIP="<host>"`` -> ``+CDNSGIP: 1,"<host>","<ip>"`` + ``OK``, or
  ``+CDNSGIP: 0,10`` + ``ERROR``.
- ``AT+CPSI?`` -> ``+CPSI: LTE,Online,...,<RSRQ>,<RSRP>,<RSSI>,<SNR>`` with RSRQ/RSRP/RSSI in
  0.1 dB units. Field diagnostics (+CBC ``3.900V``, +CPMUTEMP, +CNMP) are ``simcom_diag``'s.
  An LTE Cat-1/4 module: no ``rat="nbiot"``.
- Accepted and ignored: ``AT+CIPMODE=0``, ``AT+CIPSENDMODE``, ``AT+CIPTIMEOUT``, ``AT+CIPSRIP``,
  ``AT+CIPHEAD``; ``AT+CIPCCFG`` keeps only HeaderType (5th parameter).
- Links outlive the host: a host that goes away leaves them open; ``AT+CIPCLOSE?`` shows them
  (1) and ``AT+CIPOPEN`` on one is refused (``+CIPOPEN: <link>,4`` + ERROR) until it is closed.
- Every reboot comes back with echo on and receive mode 0 (push): a host must set
  ``ATE0`` and ``AT+CIPRXGET=1`` again.

Models (``model()``; ``FakeModem(dialect=model("A7672"))`` or ``--dialect a7672``):

- ``SIM7600`` (the registered ``sim7600``): as above.
- ``A7672``: identity ``SIMCOM INCORPORATED`` / ``A7672E-LASE`` / ``+CGMR: A011B06A7672M7``; it
  boots with ``*ATREADY: 1`` where the SIM7600 prints ``RDY`` (the issue's report of A76xx
  boards; the A76XX manual was not readable here), then ``+CPIN: READY``, ``SMS DONE``,
  ``PB DONE``. TinyGSM ``TinyGsmClientA7672x.h`` sets ``AT+CIPRXGET=1`` before ``AT+NETOPEN``.
- ``autobaud=True`` drops the power-on banner; ``late_boot=S`` sends ``SMS DONE`` and
  ``PB DONE`` ``S`` seconds after power-on instead of with it.
"""

from __future__ import annotations

from typing import Final, Literal

from . import simcom_common as sc
from . import simcom_diag
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response
from .registry import Dialect, Identity, register_dialect

__all__ = ["A7672", "A7672_BANNER", "MAX_RECV", "MAX_SEND", "SIM7600", "Sim7600State", "model"]

MAX_SEND: Final = 1500
MAX_RECV: Final = 1500
MAX_RECV_HEX: Final = 750
LINKS: Final = range(10)
RX_BUFFER: Final = 32768
#: +CIPOPEN <err> for a refused / unreachable peer: 1 "Network failure" (the manual lists no
#: "refused"; unverified on a board).
ERR_CONNECT: Final = 1
ERR_DNS: Final = 11
ERR_BUSY: Final = 4


class Sim7600State(sc.SimcomState):
    """Power-on state: network library, receive mode, header type, links."""

    def __init__(self) -> None:
        super().__init__()
        self.net_open = False
        self.net_broken = False
        self.rxget_mode = 0
        self.header_type = 0

    def drop_pdp(self, fake: FakeModem) -> None:
        if not self.net_open or self.net_broken:
            return
        self.net_broken = True
        for sock in self.sockets.values():
            sock.drop()
        fake.send_urc("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")

    def after_send(self, fake: FakeModem) -> None:
        if self.rxget_mode == 0:
            for sock in list(self.sockets.values()):
                if sock.state in ("open", "peer_closed") and sock.available:
                    _push(sock)


def _state(fake: FakeModem) -> Sim7600State:
    return fake.dialect_state_as(Sim7600State)


def _push(sock: sc.SimSocket) -> None:
    """Push mode (AT+CIPRXGET=0): the data goes out at once after a header line."""
    st = _state(sock.fake)
    if st.sending:  # not inside a send's prompt: after_send pushes it
        return
    data = sock.take(sock.available)
    header = f"+RECEIVE,{sock.link},{len(data)}" if st.header_type == 1 else f"+IPD{len(data)}"
    sock.fake.write_raw(f"\r\n{header}\r\n".encode() + data)


def _on_data(sock: sc.SimSocket) -> None:
    if _state(sock.fake).rxget_mode == 1:
        sc.send_notice(sock.fake, f"+CIPRXGET: 1,{sock.link}")
    else:
        _push(sock)


def _on_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"+IPCLOSE: {sock.link},1")


def _ip_error(text: str) -> Response:
    return Response(lines=(f"+IP ERROR: {text}",), final="ERROR")


def _netopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if cmd.kind is Kind.READ:
        return Response.ok(f"+NETOPEN: {int(st.net_open)}")
    if st.net_open:
        return _ip_error("Network is already opened")

    def opened() -> None:
        if fake.state.registered:
            st.net_open, st.net_broken = True, False
            fake.send_urc("+NETOPEN: 0")
        else:
            fake.send_urc("+NETOPEN: 1")

    fake.after_response(opened)
    return Response.ok()


def _netclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if not st.net_open:
        return _ip_error("Network is already closed")
    for sock in st.sockets.values():
        sock.close()
    st.sockets.clear()
    st.net_open = st.net_broken = False
    fake.after_response(lambda: fake.send_urc("+NETCLOSE: 0"))
    return Response.ok()


def _ipaddr(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if not st.net_open or st.net_broken:
        return _ip_error("Network not opened")
    return Response.ok(f"+IPADDR: {fake.network.ip}")


def _cipopen(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CIPOPEN: (0-9),("TCP","UDP")')
    if cmd.kind is Kind.READ:
        lines = []
        for link in LINKS:
            sock = st.sockets.get(link)
            if sock is not None and sock.connected:
                lines.append(f'+CIPOPEN: {link},"TCP","{sock.address}",{sock.port},-1')
            else:
                lines.append(f"+CIPOPEN: {link}")
        return Response.ok(*lines)
    link = cmd.int_arg(0, valid=LINKS)
    kind = cmd.str_arg(1).upper()
    host = cmd.str_arg(2)
    port = cmd.int_arg(3, valid=range(1, 65536))
    if kind != "TCP" or len(cmd.params) > 5:  # UDP and the local port are not modelled
        raise CommandError(None)
    if not st.net_open:
        return _ip_error("Network not opened")
    old = st.sockets.get(link)
    if old is not None and old.connected:
        return Response(lines=(f"+CIPOPEN: {link},{ERR_BUSY}",), final="ERROR")
    sock = sc.SimSocket(
        fake, link, host, port, rx_limit=RX_BUFFER, on_data=_on_data, on_peer_close=_on_peer_close
    )
    st.sockets[link] = sock

    async def connect() -> None:
        address = sc.resolve(fake, host)
        if address is None:
            err = ERR_DNS
        elif st.net_broken or not await sock.connect(address):
            err = ERR_CONNECT
        else:
            err = 0
        if st.sockets.get(link) is not sock:
            sock.abort()
            return
        if err:
            sock.abort()
            del st.sockets[link]
        fake.send_urc(f"+CIPOPEN: {link},{err}")
        if not err:
            sock.activate()

    def start() -> None:
        fake.spawn(connect())

    fake.after_response(start)
    return Response.ok()


async def _cipsend(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CIPSEND: (0-9),(1-{MAX_SEND})")
    link = cmd.int_arg(0, valid=LINKS)
    length = cmd.int_arg(1, valid=range(1, MAX_SEND + 1))
    sock = st.sockets.get(link)
    if sock is None or sock.state != "open":
        raise CommandError(None)
    payload, trailer = await sc.take_payload(fake, st, length)
    if st.faults.take_failed_send():
        trailer.append(f"+CIPSEND: {link},{length},-1")
    else:
        sock.send(payload)
        trailer.append(f"+CIPSEND: {link},{length},{length}")
    return Response.ok()


def _ciprxget(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CIPRXGET: (0-4),(0-9),(1-{MAX_RECV})")
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CIPRXGET: {st.rxget_mode}")
    mode = cmd.int_arg(0, valid=range(5))
    if mode in (0, 1):
        if len(cmd.params) > 1:
            raise CommandError(None)
        st.rxget_mode = mode
        return Response.ok()
    if st.rxget_mode != 1:
        raise CommandError(None)
    link = cmd.int_arg(1, valid=LINKS)
    sock = st.sockets.get(link)
    if sock is None:
        raise CommandError(None)
    if mode == 4:
        if len(cmd.params) > 2:
            raise CommandError(None)
        return Response.ok(f"+CIPRXGET: 4,{link},{sock.available}")
    limit = MAX_RECV if mode == 2 else MAX_RECV_HEX
    length = cmd.int_arg(2, valid=range(1, limit + 1), default=limit)
    data = sock.take(length)
    header = f"+CIPRXGET: {mode},{link},{len(data)},{sock.available}"
    if not data:
        return Response.ok(header)
    body = data if mode == 2 else data.hex().upper().encode()
    return Response(lines=(header, body))


def _cipclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CIPCLOSE: (0-9)")
    if cmd.kind is Kind.READ:
        flags = []
        for link in LINKS:
            sock = st.sockets.get(link)
            flags.append("1" if sock is not None and sock.connected else "0")
        return Response.ok("+CIPCLOSE: " + ",".join(flags))
    link = cmd.int_arg(0, valid=LINKS)
    sock = st.sockets.get(link)
    if sock is None or sock.state not in ("connecting", "open", "dropped"):
        return Response(lines=(f"+CIPCLOSE: {link},4",), final="ERROR")
    sock.close()
    del st.sockets[link]
    fake.after_response(lambda: fake.send_urc(f"+CIPCLOSE: {link},0"))
    return Response.ok()


def _cipccfg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is not Kind.SET:
        return Response.ok(f"+CIPCCFG: 10,0,0,1,{st.header_type},0,500")
    for index in range(len(cmd.params)):
        if cmd.has(index):
            cmd.int_arg(index)
    st.header_type = cmd.int_arg(4, valid=(0, 1), default=st.header_type)
    return Response.ok()


def _accept(valid: range | tuple[int, ...] | None) -> Handler:
    """A setting the fake accepts and ignores (integers; the first within ``valid``)."""

    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
        if cmd.kind is not Kind.SET:
            return Response.ok()
        cmd.int_arg(0, valid=valid)
        for index in range(1, len(cmd.params)):
            cmd.int_arg(index)
        return Response.ok()

    return handler


_BANNER: Final = ("RDY", "+CPIN: READY")
_LATE: Final = ("SMS DONE", "PB DONE")
#: What an A76xx prints at power-on where the SIM7600 prints ``RDY``.
A7672_BANNER: Final = "*ATREADY: 1"


def _net_usable(fake: FakeModem) -> bool:
    st = _state(fake)
    return st.net_open and not st.net_broken


def _ciccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok(f"+ICCID: {fake.identity.iccid}")


SIM7600: Final = register_dialect(
    Dialect(
        name="sim7600",
        description="SIMCom SIM7600 / SIM7500 / A76xx (NETOPEN/CIPOPEN TCP stack)",
        terminator="CR",
        boot_banner=sc.boot_lines(_BANNER, _LATE),
        default_echo=True,
        boot_cfun=1,
        identity=Identity(
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7600G-H",
            revision="LE20B04SIM7600G22",
            imei="862636051234567",
            imsi="262011234567891",
            iccid="89490200001234567891",
        ),
        cfun_modes=(0, 1, 4),
        cid_range=(1, 15),
        default_contexts={1: ("IP", "")},
        handlers={
            **sc.common_handlers(),
            **simcom_diag.SIM7600_HANDLERS,
            "+CICCID": _ciccid,
            "+CGMR": sc.cgmr_handler("+CGMR: "),
            "+CPSI": sc.cpsi_handler(lambda fake: "LTE", tenths=True),
            "+NETOPEN": _netopen,
            "+NETCLOSE": _netclose,
            "+IPADDR": _ipaddr,
            "+CIPOPEN": _cipopen,
            "+CIPSEND": _cipsend,
            "+CIPRXGET": _ciprxget,
            "+CIPCLOSE": _cipclose,
            "+CIPCCFG": _cipccfg,
            "+CIPMODE": _accept((0,)),
            "+CIPSENDMODE": _accept((0, 1)),
            "+CIPTIMEOUT": _accept(None),
            "+CIPSRIP": _accept((0, 1)),
            "+CIPHEAD": _accept((0, 1)),
            "+CDNSGIP": sc.cdnsgip_handler(
                _net_usable, result_after_ok=False, error_code=10, error_final=True
            ),
        },
        new_state=Sim7600State,
        rats=frozenset({"lte", "gprs", "gsm", "wcdma"}),  # an LTE Cat-1/4 module: no NB-IoT
        faults=sc.SIMCOM_FAULTS,
        on_reboot=sc.on_reboot,
        on_stop=sc.on_stop,
    )
)

_A7672_IDENTITY: Final = Identity(
    manufacturer="SIMCOM INCORPORATED",
    model="A7672E-LASE",
    revision="A011B06A7672M7",
    imei="862636051234575",
    imsi="262011234567894",
    iccid="89490200001234567894",
)


def model(
    name: Literal["SIM7600", "A7672"] = "SIM7600",
    *,
    autobaud: bool = False,
    late_boot: float | None = None,
) -> Dialect:
    """The fake of one model of the family (see the module docstring)."""
    if name == "SIM7600":
        return sc.boot_variant(SIM7600, _BANNER, _LATE, autobaud=autobaud, late_boot=late_boot)
    return sc.boot_variant(
        SIM7600,
        (A7672_BANNER, "+CPIN: READY"),
        _LATE,
        autobaud=autobaud,
        late_boot=late_boot,
        name="a7672",
        identity=_A7672_IDENTITY,
    )


#: ``--dialect a7672``: an A7672 with its ``*ATREADY: 1`` banner.
A7672: Final = register_dialect(model("A7672"))
