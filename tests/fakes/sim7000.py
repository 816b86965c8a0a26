"""The SIMCom SIM7000 (and SIM800 family) "CIP*" TCP/IP application toolkit, as a fake dialect.

Sources: shared/reference/at-dialects.md §5.2 and §5.4; SIM7000 Series AT Command Manual V1.03
pp.125-126 (AT+CIPSEND results); SIM800 Series AT Command Manual V1.09 §8.2 (AT+CIPSTART
results, AT+CIPCLOSE only in CONNECTING/CONNECT OK, AT+CIPSHUT -> SHUT OK, the IP state
machine); TinyGSM ``TinyGsmClientSIM7000.h`` as evidence of what the module sends.

Only the multi-connection form (``AT+CIPMUX=1``, connections 0..7) is modelled; the
single-connection forms (no ``<n>``) and the Ctrl-Z terminated ``AT+CIPSEND=<n>`` answer ERROR.

- Boot ``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``SMS Ready``; echo on, CR ends a line.
- Identity ``SIMCOM INCORPORATED`` / ``SIMCOM_SIM7000G`` / ``Revision:1529B08SIM7000G``.
- ``AT+CIPMUX=1`` (only in IP INITIAL), ``AT+CIPQSEND=<0|1>``, ``AT+CIPRXGET=<0|1>``.
- IP state machine (``STATE: ...``): IP INITIAL -(``AT+CSTT="apn"[,"user","pwd"]``)-> IP START
  -(``AT+CIICR``, registered)-> IP GPRSACT -(``AT+CIFSR``: the bare address line, no OK)->
  IP STATUS -(``AT+CIPSTART``)-> IP PROCESSING; ``+PDP: DEACT`` -> PDP DEACT;
  ``AT+CIPSHUT`` -> ``SHUT OK`` -> IP INITIAL. A command in the wrong state answers ERROR.
- ``AT+CIPSTART=<n>,"TCP","<host>",<port>`` (IP INITIAL, IP STATUS or IP PROCESSING; IP
  INITIAL brings the bearer up itself) -> ``OK`` then ``<n>, CONNECT OK`` /
  ``<n>, CONNECT FAIL`` (refused, unresolvable, not loopback) / ``<n>, ALREADY CONNECT``.
- ``AT+CIPSEND=<n>,<len>`` (1..1460, connected) -> ``\\r\\n> `` -> exactly len bytes ->
  ``DATA ACCEPT:<n>,<len>`` (CIPQSEND=1) or ``<n>, SEND OK`` (CIPQSEND=0); a failed send
  -> ``<n>, SEND FAIL``.
- Manual receive (CIPRXGET=1): ``+CIPRXGET: 1,<n>`` when data becomes readable;
  ``AT+CIPRXGET=2,<n>,<len>`` (1..1460) -> ``+CIPRXGET: 2,<n>,<read>,<rest>`` CR LF, exactly
  read bytes, ``OK``; ``=3`` the same in hex (up to 730 bytes); ``AT+CIPRXGET=4,<n>`` ->
  ``+CIPRXGET: 4,<n>,<avail>``. Push mode (CIPRXGET=0): ``+RECEIVE,<n>,<len>:`` then the data.
- ``<n>, CLOSED`` when the peer closes (buffered data stays readable).
  ``AT+CIPCLOSE=<n>[,<quick>]`` -> ``<n>, CLOSE OK`` (connecting/connected only, else ERROR).
- ``AT+CIPSTATUS`` -> ``OK``, ``STATE: <state>``, then ``C: <n>,<bearer>,"TCP","<ip>",
  "<port>","<client state>"`` for 0..7; ``AT+CIPSTATUS=<n>`` -> ``+CIPSTATUS: <n>,...`` + OK.
- ``AT+CDNSGIP="<host>"`` -> ``OK`` then ``+CDNSGIP: 1,"<host>","<ip>"`` or ``+CDNSGIP: 0,8``.
- ``AT+CDNSCFG="<pri>"[,"<sec>"]``; ``AT+CDNSCFG?`` -> ``PrimaryDns: <pri>`` and
  ``SecondaryDns: <sec>`` (SIM800 manual V1.09 §8.2.13): the servers set, else the network's
  once the bearer is up, else ``0.0.0.0``. Field diagnostics (+CBC, +CNMP, +CMNB) are
  ``simcom_diag``'s; +CPSI is ``LTE CAT-M1`` (or ``LTE NB-IOT`` on ``rat="nbiot"``).
- PDP drop fault: ``+PDP: DEACT``, every connection reset (no ``<n>, CLOSED``), state PDP DEACT
  until ``AT+CIPSHUT``.
- Connections outlive the host: a host that goes away (killed, port closed) leaves them open;
  the next host sees them in ``AT+CIPSTATUS`` and gets ``<n>, ALREADY CONNECT`` for an
  ``AT+CIPSTART`` on one of them until it closes it (or ``AT+CIPSHUT``).
- ``AT+CIPSEND?`` -> ``+CIPSEND: <n>,<size>`` for 0..7: the most one send takes (SIM7000
  manual V1.03 p.125: ``<length>`` must be less than ``<size>``, which "depends on network
  status"); the model's value, and ``AT+CIPSEND=<n>,<len>`` above it answers ERROR.

Models (``model()``; ``FakeModem(dialect=model("SIM800"))`` or ``--dialect sim800``):

- ``SIM7000`` (the registered ``sim7000``): as above.
- ``SIM800``: identity ``SIMCOM_Ltd`` / ``SIMCOM_SIM800L`` / ``Revision:1418B05SIM800L24``; a
  2G module, so ``AT+CEREG``, ``AT+CPSI`` and the other LTE queries (+CESQ, +CNMP, +CMNB,
  +CPSMS, +CEDRXS, +CEDRXRDP, +CSCON) answer ERROR and registration is on
  ``+CGREG``/``+CREG`` only (TinyGSM ``TinyGsmClientSIM800.h`` asks ``CREG``); boots as shipped,
  auto-bauding (``AT+IPR=0`` is the factory setting, SIM800 manual V1.09 §2.2.41): no ``RDY``,
  ``+CFUN: 1`` or ``+CPIN: READY`` at power-on, the host must sync with ``AT``; then
  ``Call Ready`` and ``SMS Ready``. Its send size is 1352 bytes (an example value: the manual
  leaves it to the network; unverified on a board).
- ``autobaud=True`` on either model drops the power-on banner; ``late_boot=S`` sends the late
  boot lines (``Call Ready``, ``SMS Ready``) ``S`` seconds after power-on instead of with the
  banner (an auto-bauding module without ``late_boot`` prints nothing at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from . import simcom_common as sc
from . import simcom_diag
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response
from .registry import Dialect, Identity, register_dialect

__all__ = [
    "DATA_ACCEPT_FORMAT",
    "MAX_RECV",
    "MAX_SEND",
    "SIM800",
    "SIM800_SEND_SIZE",
    "SIM7000",
    "Sim7000State",
    "model",
]

MAX_SEND: Final = 1460
#: The SIM800 model's ``AT+CIPSEND?`` size (an example: the manual leaves it to the network).
SIM800_SEND_SIZE: Final = 1352
MAX_RECV: Final = 1460
MAX_RECV_HEX: Final = 730
CONNECTIONS: Final = range(8)
RX_BUFFER: Final = 32768
#: CIPQSEND=1 result: SIM800 manual and observed output write ``DATA ACCEPT:<n>,<length>``;
#: the SIM7000 manual V1.03 prints a space after the colon. One place to change it.
DATA_ACCEPT_FORMAT: Final = "DATA ACCEPT:{n},{length}"

INITIAL: Final = "IP INITIAL"
START: Final = "IP START"
GPRSACT: Final = "IP GPRSACT"
STATUS: Final = "IP STATUS"
PROCESSING: Final = "IP PROCESSING"
PDP_DEACT: Final = "PDP DEACT"
BEARER_UP: Final = (GPRSACT, STATUS, PROCESSING)


class Sim7000State(sc.SimcomState):
    """Power-on state: the IP state machine, modes, APN, connections."""

    def __init__(self) -> None:
        super().__init__()
        self.ip_state = INITIAL
        self.mux = 0
        self.qsend = 0
        self.rxget_mode = 0
        self.apn = ("CMNET", "", "")
        self.dns: tuple[str, str] | None = None

    def drop_pdp(self, fake: FakeModem) -> None:
        if self.ip_state not in BEARER_UP:
            return
        self.ip_state = PDP_DEACT
        for sock in self.sockets.values():
            sock.drop()
        fake.send_urc("+PDP: DEACT")

    def after_send(self, fake: FakeModem) -> None:
        if self.rxget_mode == 0:
            for sock in list(self.sockets.values()):
                if sock.state in ("open", "peer_closed") and sock.available:
                    _push(sock)


def _state(fake: FakeModem) -> Sim7000State:
    return fake.dialect_state_as(Sim7000State)


def _push(sock: sc.SimSocket) -> None:
    st = _state(sock.fake)
    if st.sending:
        return
    data = sock.take(sock.available)
    sock.fake.write_raw(f"\r\n+RECEIVE,{sock.link},{len(data)}:\r\n".encode() + data)


def _on_data(sock: sc.SimSocket) -> None:
    if _state(sock.fake).rxget_mode == 1:
        sc.send_notice(sock.fake, f"+CIPRXGET: 1,{sock.link}")
    else:
        _push(sock)


def _on_peer_close(sock: sc.SimSocket) -> None:
    sock.fake.send_urc(f"{sock.link}, CLOSED")


def _int_setting(
    name: str, attribute: str, valid: tuple[int, ...]
) -> Callable[[FakeModem, Command], Response]:
    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
        st = _state(fake)
        if cmd.kind is Kind.TEST:
            return Response.ok(f"+{name}: ({','.join(map(str, valid))})")
        if cmd.kind is Kind.READ:
            return Response.ok(f"+{name}: {getattr(st, attribute)}")
        value = cmd.int_arg(0, valid=valid)
        if len(cmd.params) > 1:
            raise CommandError(None)
        setattr(st, attribute, value)
        return Response.ok()

    return handler


_cipqsend = _int_setting("CIPQSEND", "qsend", (0, 1))
_cipmux_setting = _int_setting("CIPMUX", "mux", (0, 1))


def _cipmux(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is Kind.SET and _state(fake).ip_state != INITIAL:
        raise CommandError(None)
    return _cipmux_setting(fake, cmd)


def _cstt(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CSTT: "APN","USER","PWD"')
    if cmd.kind is Kind.READ:
        return Response.ok("+CSTT: " + ",".join(f'"{v}"' for v in st.apn))
    if st.ip_state != INITIAL or len(cmd.params) > 3:
        raise CommandError(None)
    st.apn = (cmd.str_arg(0), cmd.str_arg(1, default=""), cmd.str_arg(2, default=""))
    st.ip_state = START
    return Response.ok()


def _ciicr(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if st.ip_state != START or not fake.state.registered:
        raise CommandError(None)
    st.ip_state = GPRSACT
    return Response.ok()


def _cifsr(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if st.ip_state not in BEARER_UP:
        raise CommandError(None)
    if st.ip_state == GPRSACT:
        st.ip_state = STATUS
    return Response(lines=(fake.network.ip,), final=None)  # the bare address, no OK


def _connection(cmd: Command, st: Sim7000State) -> int:
    if st.mux != 1:
        raise CommandError(None)
    return cmd.int_arg(0, valid=CONNECTIONS)


def _cipstart(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(
            '+CIPSTART: (0-7),("TCP","UDP"),("(0-255).(0-255).(0-255).(0-255)"),(1-65535)'
        )
    n = _connection(cmd, st)
    kind = cmd.str_arg(1).upper()
    host = cmd.str_arg(2)
    port_param = cmd.params[3] if len(cmd.params) > 3 else None
    if port_param is None or len(cmd.params) > 4 or kind != "TCP":  # UDP is not modelled
        raise CommandError(None)
    if not port_param.text.isdigit() or not 0 < int(port_param.text) < 65536:
        raise CommandError(None)  # the port may be quoted or not
    port = int(port_param.text)
    if st.ip_state not in (INITIAL, STATUS, PROCESSING):
        raise CommandError(None)
    if st.ip_state == INITIAL and not fake.state.registered:
        raise CommandError(None)
    old = st.sockets.get(n)
    if old is not None and old.connected:
        fake.after_response(lambda: fake.send_urc(f"{n}, ALREADY CONNECT"))
        return Response.ok()
    st.ip_state = PROCESSING
    sock = sc.SimSocket(
        fake, n, host, port, rx_limit=RX_BUFFER, on_data=_on_data, on_peer_close=_on_peer_close
    )
    st.sockets[n] = sock

    async def connect() -> None:
        address = sc.resolve(fake, host)
        ok = address is not None and await sock.connect(address)
        if st.sockets.get(n) is not sock or sock.state != "connecting":
            sock.abort()
            return
        if not ok:
            sock.abort()
        fake.send_urc(f"{n}, CONNECT OK" if ok else f"{n}, CONNECT FAIL")
        if ok:
            sock.activate()

    def begin() -> None:
        fake.spawn(connect())

    fake.after_response(begin)
    return Response.ok()


def _cipsend_handler(size: int) -> Handler:
    """``AT+CIPSEND`` taking at most ``size`` bytes a command (``AT+CIPSEND?`` says so)."""

    async def cipsend(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
        st = _state(fake)
        if cmd.kind is Kind.TEST:
            return Response.ok(f"+CIPSEND: (0-7),{size}")
        if cmd.kind is Kind.READ:
            return Response.ok(*(f"+CIPSEND: {n},{size}" for n in CONNECTIONS))
        n = _connection(cmd, st)
        if len(cmd.params) != 2:
            raise CommandError(None)  # the Ctrl-Z terminated form scans the payload: not modelled
        length = cmd.int_arg(1, valid=range(1, size + 1))
        sock = st.sockets.get(n)
        if sock is None or sock.state != "open":
            raise CommandError(None)
        payload, _ = await sc.take_payload(fake, st, length)
        if st.faults.take_failed_send():
            return Response(final=f"{n}, SEND FAIL")
        sock.send(payload)
        if st.qsend == 1:
            return Response(final=DATA_ACCEPT_FORMAT.format(n=n, length=length))
        return Response(final=f"{n}, SEND OK")

    return cipsend


def _ciprxget(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok(f"+CIPRXGET: (0-4),(0-7),(1-{MAX_RECV})")
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CIPRXGET: {st.rxget_mode}")
    mode = cmd.int_arg(0, valid=range(5))
    if mode in (0, 1):
        if len(cmd.params) > 1:
            raise CommandError(None)
        st.rxget_mode = mode
        return Response.ok()
    if st.rxget_mode != 1 or st.mux != 1:
        raise CommandError(None)
    n = cmd.int_arg(1, valid=CONNECTIONS)
    sock = st.sockets.get(n)
    if sock is None:
        raise CommandError(None)
    if mode == 4:
        if len(cmd.params) > 2:
            raise CommandError(None)
        return Response.ok(f"+CIPRXGET: 4,{n},{sock.available}")
    limit = MAX_RECV if mode == 2 else MAX_RECV_HEX
    length = cmd.int_arg(2, valid=range(1, limit + 1))
    data = sock.take(length)
    header = f"+CIPRXGET: {mode},{n},{len(data)},{sock.available}"
    if not data:
        return Response.ok(header)
    body = data if mode == 2 else data.hex().upper().encode()
    return Response(lines=(header, body))


def _cipclose(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    n = _connection(cmd, st)
    cmd.int_arg(1, valid=(0, 1), default=0)
    sock = st.sockets.get(n)
    if sock is None or not sock.connected or len(cmd.params) > 2:
        raise CommandError(None)
    sock.close()
    return Response(final=f"{n}, CLOSE OK")


def _cipshut(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    for sock in st.sockets.values():
        sock.close()
    st.sockets.clear()
    st.ip_state = INITIAL
    return Response(final="SHUT OK")


_CLIENT_STATE: Final = {
    "connecting": "CONNECTING",
    "open": "CONNECTED",
    "peer_closed": "CLOSED",
    "dropped": "CLOSED",
    "closed": "CLOSED",
}


def _status_fields(st: Sim7000State, n: int) -> str:
    sock = st.sockets.get(n)
    if sock is None:
        return f'{n},,"","","","INITIAL"'
    return f'{n},0,"TCP","{sock.address or sock.host}","{sock.port}","{_CLIENT_STATE[sock.state]}"'


def _cipstatus(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.SET, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    if cmd.kind is Kind.SET:
        n = _connection(cmd, st)
        return Response.ok(f"+CIPSTATUS: {_status_fields(st, n)}")
    text = f"\r\nOK\r\n\r\nSTATE: {st.ip_state}\r\n"
    if st.mux == 1:
        text += "\r\n" + "".join(f"C: {_status_fields(st, n)}\r\n" for n in CONNECTIONS)
    return Response(lines=(text.encode(),), final=None)


def _cdnscfg(fake: FakeModem, cmd: Command) -> Response:
    """``AT+CDNSCFG="<pri>"[,"<sec>"]``; read ``PrimaryDns: <pri>`` / ``SecondaryDns: <sec>``
    (SIM800 manual V1.09 §8.2.13): the servers set, else the network's once the bearer is up,
    else ``0.0.0.0``."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    st = _state(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok('+CDNSCFG: ("pri_dns"),("sec_dns")')
    if cmd.kind is Kind.READ:
        servers = st.dns or (fake.network.dns if st.ip_state in BEARER_UP else None)
        primary, secondary = servers or ("0.0.0.0", "0.0.0.0")
        return Response.ok(f"PrimaryDns: {primary}", f"SecondaryDns: {secondary}")
    if len(cmd.params) > 2:
        raise CommandError(None)
    primary = cmd.str_arg(0)
    st.dns = (primary, cmd.str_arg(1, default="0.0.0.0"))
    return Response.ok()


def _accept(fake: FakeModem, cmd: Command) -> Response:
    """A setting the fake accepts and ignores (AT+CIPHEAD, AT+CIPSRIP)."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    return Response.ok()


#: The power-on lines both models print at a fixed baud rate.
_BANNER: Final = ("RDY", "+CFUN: 1", "+CPIN: READY")


def _bearer_up(fake: FakeModem) -> bool:
    return _state(fake).ip_state in BEARER_UP


SIM7000: Final = register_dialect(
    Dialect(
        name="sim7000",
        description="SIMCom SIM7000 / SIM800 family (CIP* TCP/IP application toolkit)",
        terminator="CR",
        boot_banner=sc.boot_lines(_BANNER, ("SMS Ready",)),
        default_echo=True,
        boot_cfun=1,
        identity=Identity(
            manufacturer="SIMCOM INCORPORATED",
            model="SIMCOM_SIM7000G",
            revision="1529B08SIM7000G",
            imei="869951031234568",
            imsi="262011234567892",
            iccid="89490200001234567892",
        ),
        cfun_modes=(0, 1, 4),
        cid_range=(1, 15),
        default_contexts={1: ("IP", "")},
        handlers={
            **sc.common_handlers(),
            **simcom_diag.SIM70X0_HANDLERS,
            "+CGMR": sc.cgmr_handler("Revision:"),
            "+CPSI": sc.cpsi_handler(sc.sim70x0_system_mode, tenths=False),
            "+CIPMUX": _cipmux,
            "+CIPQSEND": _cipqsend,
            "+CIPRXGET": _ciprxget,
            "+CSTT": _cstt,
            "+CIICR": _ciicr,
            "+CIFSR": _cifsr,
            "+CIPSTART": _cipstart,
            "+CIPSEND": _cipsend_handler(MAX_SEND),
            "+CIPCLOSE": _cipclose,
            "+CIPSHUT": _cipshut,
            "+CIPSTATUS": _cipstatus,
            "+CDNSCFG": _cdnscfg,
            "+CIPHEAD": _accept,
            "+CIPSRIP": _accept,
            "+CDNSGIP": sc.cdnsgip_handler(
                _bearer_up, result_after_ok=True, error_code=8, error_final=False
            ),
        },
        new_state=Sim7000State,
        faults=sc.SIMCOM_FAULTS,
        on_reboot=sc.on_reboot,
        on_stop=sc.on_stop,
    )
)

_SIM800_IDENTITY: Final = Identity(
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800L",
    revision="1418B05SIM800L24",
    imei="865067021234569",
    imsi="262011234567893",
    iccid="89490200001234567893",
)


#: What the 2G SIM800 lacks (SIM800 Series AT Command Manual V1.09 has none of these LTE/UMTS
#: or SIM7000-only commands): they answer ERROR there.
_SIM800_LACKS: Final = (
    "+CEREG",
    "+CPSI",
    "+CNMP",
    "+CMNB",
    "+CPSMS",
    "+CEDRXS",
    "+CEDRXRDP",
    "+CESQ",
    "+CSCON",
)


def model(
    name: Literal["SIM7000", "SIM800"] = "SIM7000",
    *,
    autobaud: bool | None = None,
    late_boot: float | None = None,
) -> Dialect:
    """The fake of one model of the family (see the module docstring). ``autobaud`` defaults
    to the model's factory setting (SIM800: on, SIM7000: off); ``late_boot`` is the time from
    power-on to the late boot lines (None: with the banner)."""
    if name == "SIM7000":
        return sc.boot_variant(
            SIM7000, _BANNER, ("SMS Ready",), autobaud=bool(autobaud), late_boot=late_boot
        )
    return sc.boot_variant(
        SIM7000,
        _BANNER,
        ("Call Ready", "SMS Ready"),
        autobaud=True if autobaud is None else autobaud,
        late_boot=late_boot,
        name="sim800",
        identity=_SIM800_IDENTITY,
        handlers={
            "+CIPSEND": _cipsend_handler(SIM800_SEND_SIZE),
            **dict.fromkeys(_SIM800_LACKS),
        },
        rats=frozenset({"lte", "gprs", "gsm"}),  # a GSM/GPRS module: no NB-IoT, no UMTS
    )


#: ``--dialect sim800``: the SIM800 as shipped (auto-bauding, no CEREG).
SIM800: Final = register_dialect(model("SIM800"))
