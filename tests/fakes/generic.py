"""The generic 3GPP TS 27.007 / V.250 modem: the commands every fake dialect inherits.

Each handler here is registered in ``registry.GENERIC_COMMANDS`` under its command name
(``""`` for a bare AT, ``"E"`` for ATE, ``"+CFUN"``...); a dialect replaces or removes them in
its own ``handlers`` table. ``GENERIC`` is the plain 3GPP modem built from them alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, TypeVar

from .core import PdpContext
from .grammar import Command, CommandError, Handler, Kind, Response
from .registry import GENERIC_COMMANDS, Dialect, Identity, register_dialect

if TYPE_CHECKING:
    from .core import FakeModem

__all__ = ["GENERIC", "GENERIC_COMMANDS", "identity_command"]

_H = TypeVar("_H", bound=Handler)


def _generic(name: str) -> Callable[[_H], _H]:
    def register(handler: _H) -> _H:
        GENERIC_COMMANDS[name] = handler
        return handler

    return register


def _range_list(values: Iterable[int]) -> str:
    return "(" + ",".join(str(v) for v in values) + ")"


@_generic("")
def _at(fake: FakeModem, cmd: Command) -> Response:
    return Response.ok()


@_generic("E")
def _echo(fake: FakeModem, cmd: Command) -> Response:
    # V.250 §6.2.4: ATE means ATE0; values other than 0 and 1 are an error.
    if cmd.kind is Kind.EXEC:
        fake.state.echo = False
    elif cmd.kind is Kind.SET and cmd.params[0].text in ("0", "1"):
        fake.state.echo = cmd.params[0].text == "1"
    else:
        raise CommandError(None)
    return Response.ok()


@_generic("+CMEE")
def _cmee(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CMEE: {fake.state.cmee}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CMEE: (0-2)")
    fake.state.cmee = cmd.int_arg(0, valid=range(3), default=0)
    return Response.ok()


def identity_command(value: Callable[[FakeModem], str]) -> Handler:
    """A handler for an identity command (``AT+CGMI``...): ``value(fake)`` as the bare
    information line of the exec form; the test form answers OK."""

    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.EXEC, Kind.TEST)
        return Response.ok() if cmd.kind is Kind.TEST else Response.ok(value(fake))

    return handler


GENERIC_COMMANDS["+CGMI"] = identity_command(lambda fake: fake.identity.manufacturer)
GENERIC_COMMANDS["+CGMM"] = identity_command(lambda fake: fake.identity.model)
GENERIC_COMMANDS["+CGMR"] = identity_command(lambda fake: fake.identity.revision)


@_generic("+CGSN")
def _cgsn(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.SET, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CGSN: (0-3)")
    ident = fake.identity
    snt = 0 if cmd.kind is Kind.EXEC else cmd.int_arg(0, valid=range(4), default=0)
    if snt == 0:
        return Response.ok(ident.imei)
    value = {1: ident.imei, 2: ident.imei[:14] + ident.svn, 3: ident.svn}[snt]
    return Response.ok(f'+CGSN: "{value}"')


@_generic("+CIMI")
def _cimi(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok(fake.identity.imsi)


@_generic("+CFUN")
def _cfun(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state = fake.state
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CFUN: {state.cfun}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CFUN: " + _range_list(fake.dialect.cfun_modes))
    fun = cmd.int_arg(0, valid=fake.dialect.cfun_modes)
    cmd.int_arg(1, valid=(0, 1), default=0)
    if fun != state.cfun:
        state.cfun = fun
        if fun != 1:
            fake.after_response(fake.stop_registration)
        elif state.cops_mode != 2:
            fake.after_response(fake.begin_registration)
    return Response.ok()


@_generic("+CEREG")
def _cereg(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    if cmd.kind is Kind.READ:
        n = fake.state.cereg_n
        return Response.ok(f"+CEREG: {n},{fake.cereg_fields(n)}")
    if cmd.kind is Kind.TEST:
        return Response.ok("+CEREG: (0-5)")
    fake.state.cereg_n = cmd.int_arg(0, valid=range(6), default=0)
    return Response.ok()


def _registration_command(source: str, levels: range, test: str) -> Handler:
    """The +CGREG / +CREG handler: set the URC level, read the state on this fake's RAT."""

    def handler(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
        if cmd.kind is Kind.READ:
            n = fake.state.level(source)
            return Response.ok(f"{source}: {n},{fake.registration_fields(source, n)}")
        if cmd.kind is Kind.TEST:
            return Response.ok(f"{source}: {test}")
        level = cmd.int_arg(0, valid=levels, default=0)
        if source == "+CGREG":
            fake.state.cgreg_n = level
        else:
            fake.state.creg_n = level
        return Response.ok()

    return handler


# TS 27.007 §10.1.20 (+CGREG) and §7.2 (+CREG): levels 0-3 (3 adds the reject causes).
GENERIC_COMMANDS["+CGREG"] = _registration_command("+CGREG", range(4), "(0-3)")
GENERIC_COMMANDS["+CREG"] = _registration_command("+CREG", range(4), "(0-3)")


@_generic("+CESQ")
def _cesq(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
    registered = fake.state.registered
    rsrq = fake.rsrq_index if registered else 255
    rsrp = fake.rsrp_index if registered else 255
    return Response.ok(f"+CESQ: 99,99,255,255,{rsrq},{rsrp}")


@_generic("+COPS")
def _cops(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state, net = fake.state, fake.network
    if cmd.kind is Kind.READ:
        if not state.registered:
            return Response.ok(f"+COPS: {state.cops_mode}")
        name = {0: net.long_name, 1: net.short_name, 2: net.plmn}[state.cops_format]
        return Response.ok(f'+COPS: {state.cops_mode},{state.cops_format},"{name}",{fake.act}')
    if cmd.kind is Kind.TEST:
        network = f'(2,"{net.long_name}","{net.short_name}","{net.plmn}",{net.act})'
        return Response.ok(f"+COPS: {network},,(0,1,2,3,4),(0,1,2)")
    mode = cmd.int_arg(0, valid=(0, 1, 2, 3))
    if mode == 3:
        state.cops_format = cmd.int_arg(1, valid=(0, 1, 2))
        return Response.ok()
    if mode == 1:
        fmt = cmd.int_arg(1, valid=(0, 1, 2))
        operator = cmd.str_arg(2)
        if operator != {0: net.long_name, 1: net.short_name, 2: net.plmn}[fmt]:
            raise CommandError(30)
        state.cops_format = fmt
    state.cops_mode = mode
    if mode == 2:
        fake.after_response(fake.stop_registration)
    elif state.cfun == 1 and state.stat in (0, 3):
        fake.after_response(fake.begin_registration)
    return Response.ok()


_PDP_TYPES: Final = {"IP": "IP", "IPV6": "IPV6", "IPV4V6": "IPV4V6", "NON-IP": "Non-IP"}
_APN_RE: Final = re.compile(r"[A-Za-z0-9.\-]*")


@_generic("+CGDCONT")
def _cgdcont(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    state, dialect = fake.state, fake.dialect
    low, high = dialect.cid_range
    default_cid = min(dialect.default_contexts, default=low)
    if cmd.kind is Kind.TEST:
        return Response.ok(
            *(f'+CGDCONT: ({low}-{high}),"{t}",,,(0),(0)' for t in _PDP_TYPES.values())
        )
    if cmd.kind is Kind.READ:
        lines = []
        for cid, ctx in sorted(state.contexts.items()):
            active = state.registered and cid == default_cid
            apn = ctx.apn or (fake.network.apn if active else "")
            address = fake.network.ip if active else ""
            lines.append(f'+CGDCONT: {cid},"{ctx.pdp_type}","{apn}","{address}",0,0')
        return Response.ok(*lines)
    if len(cmd.params) > 6:
        raise CommandError(50)
    cid = cmd.int_arg(0, valid=range(low, high + 1))
    if len(cmd.params) == 1:
        state.contexts.pop(cid, None)
        return Response.ok()
    pdp_type = _PDP_TYPES.get(cmd.str_arg(1).upper())
    apn = cmd.str_arg(2, default="")
    if pdp_type is None or len(apn) > 100 or not _APN_RE.fullmatch(apn):
        raise CommandError(50)
    if cmd.has(3):
        cmd.str_arg(3)
    for index in (4, 5):
        cmd.int_arg(index, valid=range(4), default=0)
    state.contexts[cid] = PdpContext(pdp_type, apn)
    return Response.ok()


_BITS8: Final = re.compile(r"[01]{8}")
_BITS4: Final = re.compile(r"[01]{4}")


def _timer_arg(cmd: Command, index: int, pattern: re.Pattern[str]) -> str | None:
    """An optional quoted bit-string timer parameter (CME 50 when malformed)."""
    if not cmd.has(index):
        return None
    value = cmd.str_arg(index)
    if not pattern.fullmatch(value):
        raise CommandError(50)
    return value


@_generic("+CPIN")
def _cpin(fake: FakeModem, cmd: Command) -> Response:
    # TS 27.007 §8.3: the read form names the code the SIM waits for; READY: none.
    cmd.require_kind(Kind.READ, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    fake.check_sim()
    return Response.ok("+CPIN: READY")


@_generic("+CPSMS")
def _cpsms(fake: FakeModem, cmd: Command) -> Response:
    """TS 27.007 §7.38: ``AT+CPSMS=[<mode>[,<RAU>[,<GPRS-READY>[,<TAU>[,<Active-Time>]]]]]``;
    the read form gives the *requested* values (``+CPSMS: 1,,,"00000110","00100001"``, the
    nRF91 reference's example shape); what the network granted shows in +CEREG levels 4/5."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    radio = fake.state.radio
    if cmd.kind is Kind.TEST:
        return Response.ok('+CPSMS: (0,1),,,("00000000"-"11111111"),("00000000"-"11111111")')
    if cmd.kind is Kind.READ:
        tau_text = f'"{radio.requested_tau}"' if radio.requested_tau else ""
        active_text = f'"{radio.requested_active_time}"' if radio.requested_active_time else ""
        return Response.ok(f"+CPSMS: {radio.psm_mode},,,{tau_text},{active_text}")
    if len(cmd.params) > 5:
        raise CommandError(50)
    mode = cmd.int_arg(0, valid=(0, 1), default=0)
    tau = _timer_arg(cmd, 3, _BITS8)
    active = _timer_arg(cmd, 4, _BITS8)
    radio.psm_mode = mode
    if not cmd.has(0):  # "AT+CPSMS=": PSM off, requested values back to the defaults
        radio.requested_tau = radio.requested_active_time = None
    if tau is not None:
        radio.requested_tau = tau
    if active is not None:
        radio.requested_active_time = active
    fake.after_response(fake.psm_changed)
    return Response.ok()


@_generic("+CEDRXS")
def _cedrxs(fake: FakeModem, cmd: Command) -> Response:
    """TS 27.007 §7.40: ``AT+CEDRXS=<mode>,<AcT-type>,<Requested_eDRX_value>`` (mode 0 off,
    1 on, 2 on with +CEDRXP notifications (not sent by the fake), 3 off and defaults)."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    radio = fake.state.radio
    if cmd.kind is Kind.TEST:
        return Response.ok('+CEDRXS: (0-3),(4,5),("0000"-"1111")')
    if cmd.kind is Kind.READ:
        lines = [f'+CEDRXS: {act},"{value}"' for act, value in sorted(radio.edrx.items())]
        return Response.ok(*lines)
    mode = cmd.int_arg(0, valid=range(4), default=0)
    act = cmd.int_arg(1, valid=(4, 5), default=4)
    value = _timer_arg(cmd, 2, _BITS4)
    radio.edrx_mode = mode
    if mode in (0, 3):
        radio.edrx.pop(act, None)
    elif value is not None:
        radio.edrx[act] = value
    return Response.ok()


def edrx_act_type(fake: FakeModem) -> int:
    """The +CEDRX ``<AcT-type>`` of the RAT the fake camps on: 5 NB-S1 (NB-IoT), else 4
    (E-UTRAN WB-S1, LTE-M)."""
    return 5 if fake.act == 9 else 4


#: The paging time window the fake network grants with eDRX when none was requested.
DEFAULT_PTW: Final = "0011"


@_generic("+CEDRXRDP")
def _cedrxrdp(fake: FakeModem, cmd: Command) -> Response:
    """TS 27.007 §7.41: ``+CEDRXRDP: <AcT-type>[,<Requested_eDRX_value>[,<NW-provided_eDRX_
    value>[,<Paging_time_window>]]]``; ``+CEDRXRDP: 0`` when eDRX is not in use. The fake
    network grants what was requested (with the %XPTW window, or ``DEFAULT_PTW``)."""
    cmd.require_kind(Kind.EXEC, Kind.TEST)
    if cmd.kind is Kind.TEST:
        return Response.ok()
    radio, act = fake.state.radio, edrx_act_type(fake)
    value = radio.edrx.get(act)
    if not fake.state.registered or value is None or radio.edrx_mode not in (1, 2):
        return Response.ok("+CEDRXRDP: 0")
    ptw = radio.ptw.get(act, DEFAULT_PTW)
    return Response.ok(f'+CEDRXRDP: {act},"{value}","{value}","{ptw}"')


def context_active(fake: FakeModem, cid: int) -> bool:
    """Whether context ``cid`` is active: the default context while registered (an EPS
    attach activates the default bearer, TS 23.401 §5.3.2)."""
    low = fake.dialect.cid_range[0]
    default_cid = min(fake.dialect.default_contexts, default=low)
    return fake.state.registered and cid == default_cid


@_generic("+CGPADDR")
def _cgpaddr(fake: FakeModem, cmd: Command) -> Response:
    """TS 27.007 §10.1.14: ``+CGPADDR: <cid>[,<PDP_addr>]`` for every defined context (the
    given ones with ``AT+CGPADDR=<cid>[,...]``); the address only while active."""
    cmd.require_kind(Kind.EXEC, Kind.SET, Kind.TEST)
    contexts = fake.state.contexts
    if cmd.kind is Kind.TEST:
        return Response.ok("+CGPADDR: (" + ",".join(str(c) for c in sorted(contexts)) + ")")
    if cmd.kind is Kind.SET:
        cids = [cmd.int_arg(i) for i in range(len(cmd.params))]
        if any(cid not in contexts for cid in cids):
            raise CommandError(50)
    else:
        cids = sorted(contexts)
    lines = [
        f'+CGPADDR: {cid},"{fake.network.ip}"' if context_active(fake, cid) else f"+CGPADDR: {cid}"
        for cid in cids
    ]
    return Response.ok(*lines)


@_generic("+CSCON")
def _cscon(fake: FakeModem, cmd: Command) -> Response:
    """TS 27.007 §10.1.30: ``AT+CSCON=<n>`` (1: ``+CSCON: <mode>`` on every RRC change),
    read ``+CSCON: <n>,<mode>`` (0 idle, 1 connected)."""
    cmd.require_kind(Kind.SET, Kind.READ, Kind.TEST)
    radio = fake.state.radio
    if cmd.kind is Kind.TEST:
        return Response.ok("+CSCON: (0,1)")
    if cmd.kind is Kind.READ:
        return Response.ok(f"+CSCON: {radio.cscon_n},{radio.rrc}")
    radio.cscon_n = cmd.int_arg(0, valid=(0, 1), default=0)
    return Response.ok()


#: The plain 3GPP modem: CR terminator, echo on at power-on (V.250 default), CFUN=1 at
#: power-on, no boot banner, lines without an AT prefix ignored.
GENERIC: Final = register_dialect(
    Dialect(
        name="generic",
        description="plain 3GPP TS 27.007 modem (V.250 defaults)",
        identity=Identity(
            manufacturer="atbridge",
            model="Fake 3GPP modem",
            revision="fake-3gpp-1.0.0",
            imei="490154203237518",
            imsi="001010123456789",
            iccid="89882390000012345678",
        ),
    )
)
