"""The nRF9160 running Nordic's Serial LTE Modem application (NCS <= v3.1), as a fake dialect.

What sets it apart from the generic 3GPP modem, with sources (shared/reference/at-dialects.md
§3.2 and §4; sdk-nrf ``applications/serial_lte_modem/src/slm_at_host.c``):

- Boot banner ``Ready\\r\\n`` (``SLM_SYNC_STR``: no leading CR LF), sent when the AT host starts.
- Command lines end with CR LF (``CONFIG_SLM_CR_LF_TERMINATION``): a lone CR is an ordinary
  character, CR and LF inside double quotes do not end a line, backspace (0x08) and DEL (0x7F)
  delete the previous character, empty lines are ignored, and bytes before the first ``AT`` of
  a line are skipped (``cmd_send``).
- Every line goes through the SLM grammar check (``cmd_grammar_check``): ``AT``, or ``AT``,
  one of ``+ % #``, an alphanumeric name, then nothing, ``?``, ``=``, ``=?`` or ``=<params>``.
  Anything else answers a plain ``ERROR`` whatever AT+CMEE says. So basic V.250 commands such as
  ``ATE0``/``ATE1`` are rejected: the SLM has no command echo (the reference lists echo only for
  the later Serial Modem). A line with no ``AT`` at all also answers ``ERROR``.
- No concatenation (``Dialect.concatenation`` off): the grammar check refuses a ``;`` after a
  name or after ``?``, so ``AT+CGMR;+CGMI`` is ``ERROR``; a set command passes it and goes whole
  to the modem (``nrf_modem_at_cmd``), and the SLM's own ``#X`` commands are found by the start
  of the line (the modem library's custom AT filters) and get the whole line. Nordic documents
  no command-line concatenation for either: the nRF91 AT Commands Reference's "AT command
  syntax" chapter has set, read, test and the response only, and its one ``;`` form is the
  restricted command after ``%XSUDO`` (``AT%XSUDO=<len>,<signature>;+CMD``). So the fake keeps
  one command a line: ``AT+CFUN=1;+CEREG=5`` is one set command whose parameter is malformed
  (CME 50) - what the real modem does with it is unverified.
- Identity: ``Nordic Semiconductor ASA`` / ``nRF9160-SICA`` / ``mfw_nrf9160_1.3.5``;
  ``AT#XSLMVER`` -> ``#XSLMVER: "<NCS version>","<modem library version>"`` (a third
  ``"<customer version>"`` only when the firmware was built with one).
- Powers up in CFUN=0 (SIM off: AT+CIMI and AT%XICCID fail until CFUN=1 or 4), default bearer
  on cid 0 (``+CGDCONT: 0,"IP","","",0,0``), cids 0..11; +CEREG stat 90 (UICC failure) when
  CFUN=1 finds no SIM.
- ``AT%XICCID`` -> ``%XICCID: <iccid>`` (may end in an ``F`` pad); ``AT#XRESET`` answers OK,
  then reboots (``Ready`` again).

Sockets (shared/reference/at-dialects.md §2.5, §3.4, §3.5; sdk-nrf
``applications/serial_lte_modem/doc/SOCKET_AT_commands.rst`` and ``slm_data_mode.rst``; the
NCS ~3.1 code as copied into ncs-serial-modem, ``slm_at_socket.c`` with ``#XAPOLL``). Commands act
on the *selected* socket: a newly opened socket is selected, ``AT#XSOCKETSELECT=<handle>``
selects another, closing selects the highest-ranked (most recently opened) one left. Handles are
the lowest free of 0..7 (8 sockets). Every failure of a ``#X`` command is a plain ``ERROR``.

- ``AT#XSOCKET=<op>,<type>,<role>[,<cid>]`` (op 1 IPv4, 2 IPv6) -> ``#XSOCKET: <h>,<type>,6``;
  ``AT#XSOCKET=0`` -> ``#XSOCKET: 0,"closed"``; ``AT#XSOCKET?`` -> ``#XSOCKET: <h>,<family>,
  <role>,<type>,<cid>`` (selected socket). ``AT#XSSOCKET=<op>,<type>,<role>,<sec_tag>
  [,<peer_verify>[,<cid>]]`` -> ``#XSSOCKET: <h>,<type>,258`` (TLS made by the fake with the CA
  written with ``AT%CMNG``, the credential store: ``nrf91_tls``). The fake opens TCP clients
  only (type 1, role 0).
- ``AT#XCONNECT="<host>",<port>`` -> ``#XCONNECT: 1`` (real TCP to 127.0.0.1).
- ``AT#XSEND="<data>"[,<flags>]`` (at most 1024 bytes, no ``,`` or ``"``) -> ``#XSEND: <size>``;
  a failed send answers ``#XSEND: 0`` then ``ERROR``. ``AT#XSEND`` (or an empty ``<data>``)
  enters data mode: ``OK``, bytes up to ``+++`` (matched anywhere), ``#XDATAMODE: 0``; a failed
  data-mode send gives ``+++`` from the modem and ``#XDATAMODE: <-errno>``.
- ``AT#XRECV=<timeout>[,<flags>]`` -> ``#XRECV: <size>`` CRLF, exactly size raw bytes (at most
  2048), CRLF ``OK``; bare ``OK`` once the peer has closed and the buffer is empty; ``ERROR`` on a
  timeout or a failed socket.
- ``AT#XPOLL=<timeout_ms>[,<h>...]`` -> ``#XPOLL: <h>,"0x<revents hex4>"`` per ready socket.
- ``AT#XAPOLL=<op>,<events>[,<h>...]`` -> URC ``#XAPOLL: <h>,<revents>`` (decimal: 1 POLLIN,
  4 POLLOUT, 8 POLLERR, 16 POLLHUP). POLLIN/POLLOUT fire once until ``AT#XRECV``/``AT#XSEND``
  re-arm them; ERR/HUP fire once; none are sent in data mode (POLLIN is re-armed when it ends).
  The peer closing shows only here (``#XAPOLL: <h>,17``), in ``#XPOLL`` and in ``AT#XRECV``: the
  SLM has no unsolicited "closed" line (``#XSOCKET: 0,"closed"`` answers ``AT#XSOCKET=0``).
- ``AT#XGETADDRINFO="<host>"[,<family>]`` -> ``#XGETADDRINFO: "<ip>"``.
- ``AT+CGEREP=1`` enables ``+CGEV`` (``nrf91_sockets.network_detach``).

Field diagnostics (%XMONITOR, %CONEVAL, %NBRGRSRP, %XCBAND, %XSYSTEMMODE, %XTEMP, %XVBAT,
+CGCONTRDP, %XPTW, %CESQ and %MDMEV notifications) are ``nrf91_diag``'s, shared with the SM.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Final, Literal

from . import nrf91_diag, nrf91_tls
from .core import FakeModem
from .grammar import Command, CommandError, Handler, Kind, Response
from .nrf91_sockets import (
    COMMON_HANDLERS,
    MAX_HOSTNAME,
    NRF_FAULTS,
    POLL_FAILURES,
    POLLIN,
    POLLOUT,
    RECV_CHUNK,
    DataMode,
    NrfSockets,
    Socket,
    error_with,
    int_param,
    lines,
    on_reboot,
    on_stop,
    str_param,
    text_payload,
    xgetaddrinfo,
)
from .registry import Dialect, Identity, register_dialect

__all__ = [
    "LEGACY_NCS_VERSION",
    "NRF91_SLM",
    "SLM_CUSTOMER_VERSION",
    "SLM_LIBMODEM_VERSION",
    "SLM_NCS_VERSION",
    "SlmSockets",
    "slm_build",
    "start_in_data_mode",
]

SLM_NCS_VERSION: Final = "2.5.0"
SLM_LIBMODEM_VERSION: Final = "2.5.0-lte-5ccd2d4dd54c"
SLM_CUSTOMER_VERSION: Final[str | None] = None


def _is_name_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def slm_grammar_ok(line: str) -> bool:
    """The SLM's AT command grammar check, applied to the line from its AT prefix on."""
    if len(line) < 2 or line[:2].upper() != "AT":
        return False
    rest = line[2:]
    if rest == "":
        return True
    if rest[0] not in "+%#":
        return False
    end = 1
    while end < len(rest) and _is_name_char(rest[end]):
        end += 1
    if end == 1:
        return False
    tail = rest[end:]
    if tail in ("", "?", "=", "=?"):
        return True
    return tail.startswith("=") and not tail.startswith("=?")


def _version_handler(ncs_version: str) -> Handler:
    def xslmver(fake: FakeModem, cmd: Command) -> Response:
        cmd.require_kind(Kind.EXEC)
        fields = [ncs_version, SLM_LIBMODEM_VERSION]
        if SLM_CUSTOMER_VERSION:
            fields.append(SLM_CUSTOMER_VERSION)
        return Response.ok("#XSLMVER: " + ",".join(f'"{value}"' for value in fields))

    return xslmver


_xslmver = _version_handler(SLM_NCS_VERSION)


def _xiccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    fake.check_sim()
    return Response.ok(f"%XICCID: {fake.identity.iccid}")


def _xreset(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is not Kind.EXEC:
        raise CommandError(None)
    fake.after_response(lambda: fake.after_output(fake.reboot))
    return Response.ok()


# --------------------------------------------------------------------------------------------
# Sockets

#: Largest ``AT#XSEND="<data>"`` payload (SLM_MAX_PAYLOAD_SIZE).
SLM_MAX_PAYLOAD: Final = 1024
#: Socket options ``AT#XSOCKETOPT`` knows, and those that are set-only.
_SOCKET_OPTIONS: Final = frozenset({2, 20, 21, 30, 31, 32, 40, 55, 61})
_SET_ONLY_OPTIONS: Final = frozenset({2, 40, 61})
_SOCKET_OPTION_DEFAULTS: Final = {21: 30}  # SO_SNDTIMEO is set to 30 s at open
_TLS_OPTIONS: Final = frozenset({2, 4, 5, 12, 13, 14, 15, 18})


class SlmSockets(NrfSockets):
    """SLM socket state: the selected socket and the ``#XAPOLL`` thread's settings."""

    def __init__(self) -> None:
        super().__init__()
        self.selected: Socket | None = None
        self.apoll_running = False
        self.apoll_all = False
        self.apoll_requested = 0

    def reset_poll_settings(self) -> None:
        self.selected = None
        self.apoll_running = False
        self.apoll_all = False
        self.apoll_requested = 0

    def select_best(self) -> None:
        """After a close: the highest-ranked socket left becomes the selected one."""
        self.selected = max(self.sockets.values(), key=lambda s: s.ranking, default=None)

    def kick(self) -> None:
        # The SLM's poll reports #XAPOLL and nothing else: with #XAPOLL not running a poll
        # would do nothing, so none is scheduled (AT#XAPOLL=1 kicks as it starts). Saves a
        # timer and a loop turn per send.
        if self.apoll_running:
            super().kick()

    def polled(self, sock: Socket) -> bool:
        return self.apoll_running and (self.apoll_all or sock.apoll_specific)

    def delegate(self, sock: Socket, events: int) -> None:
        """``delegate_poll_event``: (re)start polling ``events`` of ``sock`` if it is polled."""
        if self.polled(sock):
            sock.apoll_events |= self.apoll_requested & events
            self.kick()

    def poll(self) -> None:
        fake = self.require_fake()
        for sock in self.ordered():
            if not self.polled(sock) or sock.poll_disabled:
                continue
            ready = sock.readiness()
            revents = (ready & sock.apoll_events) | (ready & POLL_FAILURES)
            if not revents:
                continue
            if revents & POLL_FAILURES:
                sock.poll_disabled = True  # removed from the poll set until closed
                sock.apoll_events = 0
            else:
                sock.apoll_events &= ~revents
            if self.data_mode is not None:
                continue  # not sent in data mode
            if revents & POLLIN and self.take_lost_notification():
                continue
            fake.send_urc(f"#XAPOLL: {sock.handle},{revents}")

    def on_data_mode_exit(self, dm: DataMode) -> None:
        # slm_at_socket_notify_datamode_exit(): POLLIN refreshed and polling re-enabled for all;
        # the data-mode socket polls POLLOUT again.
        for sock in self.ordered():
            if self.polled(sock):
                sock.poll_disabled = False
            self.delegate(sock, POLLIN)
        if dm.sock is not None and dm.sock.handle in self.sockets:
            self.delegate(dm.sock, POLLOUT)


def _slm(fake: FakeModem) -> SlmSockets:
    state = fake.dialect_state_as(SlmSockets)
    state.bind(fake)
    return state


def _selected(state: SlmSockets) -> Socket:
    if state.selected is None:
        raise CommandError(None)
    return state.selected


def _close_selected(state: SlmSockets) -> Response:
    if state.selected is None:
        return Response.ok()
    state.close(state.selected)
    state.select_best()
    return Response.ok('#XSOCKET: 0,"closed"')


def _xsocket(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.READ:
        sock = state.selected
        if sock is None:
            return Response.ok()
        return Response.ok(
            f"#XSOCKET: {sock.handle},{sock.family},{sock.role},{sock.type},{sock.cid}"
        )
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSOCKET: (0,1,2),(1,2,3),(0,1),<cid>")
    cmd.require_kind(Kind.SET)
    op = int_param(cmd, 0)
    if op == 0:
        return _close_selected(state)
    if op not in (1, 2) or len(cmd.params) > 4:
        raise CommandError(None)
    sock = state.open(op, int_param(cmd, 1), int_param(cmd, 2), int_param(cmd, 3, default=0))
    state.selected = sock
    state.delegate(sock, POLLIN | POLLOUT)
    return Response.ok(f"#XSOCKET: {sock.handle},{sock.type},{sock.protocol}")


def _xssocket(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.READ:
        sock = state.selected
        if sock is None:
            return Response.ok()
        sec_tag = -1 if sock.sec_tag is None else sock.sec_tag
        return Response.ok(
            f"#XSSOCKET: {sock.handle},{sock.family},{sock.role},{sock.type},{sec_tag},{sock.cid}"
        )
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSSOCKET: (0,1,2),(1,2),(0,1),<sec_tag>,<peer_verify>,<cid>")
    cmd.require_kind(Kind.SET)
    op = int_param(cmd, 0)
    if op == 0:
        return _close_selected(state)
    if op not in (1, 2) or len(cmd.params) > 6:
        raise CommandError(None)
    sock_type, role, sec_tag = int_param(cmd, 1), int_param(cmd, 2), int_param(cmd, 3)
    peer_verify = int_param(cmd, 4, default=2 if role == 0 else 0)
    if peer_verify not in (0, 1, 2) or sec_tag < 0:
        raise CommandError(None)
    sock = state.open(op, sock_type, role, int_param(cmd, 5, default=0), sec_tag)
    sock.peer_verify = peer_verify
    state.selected = sock
    state.delegate(sock, POLLIN | POLLOUT)
    return Response.ok(f"#XSSOCKET: {sock.handle},{sock.type},{sock.protocol}")


def _xsocketselect(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.READ:
        rows = []
        for sock in state.ordered():
            sec_tag = -1 if sock.sec_tag is None else sock.sec_tag
            rows.append(
                f"#XSOCKETSELECT: {sock.handle},{sock.family},{sock.role},{sock.type},"
                f"{sec_tag},{sock.ranking},{sock.cid}"
            )
        if state.selected is not None:
            rows.append(f"#XSOCKETSELECT: {state.selected.handle}")
        return Response(lines=lines(*rows))
    if cmd.kind is not Kind.SET:
        return Response.ok()  # the code answers OK to the unsupported forms
    handle = int_param(cmd, 0)
    if handle < 0:
        raise CommandError(None)
    state.selected = state.find(handle)
    return Response.ok(f"#XSOCKETSELECT: {handle}")


def _xsocketopt(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSOCKETOPT: (0,1),<name>,<value>")
    cmd.require_kind(Kind.SET)
    op, name = int_param(cmd, 0), int_param(cmd, 1)
    sock = _selected(state)
    if name not in _SOCKET_OPTIONS or op not in (0, 1):
        raise CommandError(None)
    if op == 1:
        sock.options[name] = int_param(cmd, 2, default=0)
        return Response.ok()
    if name in _SET_ONLY_OPTIONS:
        raise CommandError(None)
    value = sock.options.get(name, _SOCKET_OPTION_DEFAULTS.get(name, 0))
    return Response.ok(f"#XSOCKETOPT: {value}")


def _xssocketopt(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSSOCKETOPT: (0,1),<name>,<value>")
    cmd.require_kind(Kind.SET)
    sock = _selected(state)
    if not sock.secure:
        raise CommandError(None)
    op, name = int_param(cmd, 0), int_param(cmd, 1)
    if name not in _TLS_OPTIONS or op not in (0, 1):
        raise CommandError(None)
    if op == 1:
        if len(cmd.params) > 2 and cmd.params[2].quoted:
            sock.options[1000 + name] = str_param(cmd, 2)
        else:
            sock.options[1000 + name] = int_param(cmd, 2)
        return Response.ok()
    if 1000 + name not in sock.options:
        raise CommandError(None)
    return Response.ok(f"#XSSOCKETOPT: {sock.options[1000 + name]}")


async def _xconnect(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    cmd.require_kind(Kind.SET)
    sock = _selected(state)
    if len(cmd.params) != 2:
        raise CommandError(None)
    host, port = str_param(cmd, 0), int_param(cmd, 1)
    if len(host.encode("latin-1")) > MAX_HOSTNAME:
        raise CommandError(None)
    await state.connect(sock, host, port)
    return Response.ok("#XCONNECT: 1")


async def _xsend(fake: FakeModem, cmd: Command) -> Response | None:
    state = _slm(fake)
    if cmd.kind not in (Kind.SET, Kind.EXEC):
        raise CommandError(None)
    text = ""
    flags = 0
    if cmd.kind is Kind.SET:
        first = cmd.params[0]
        if first.text and not first.quoted:
            raise CommandError(None)
        text = first.text
        flags = int_param(cmd, 1, default=0)
        if flags not in (0, 512) or len(cmd.params) > 2:
            raise CommandError(None)
    if not text:
        await state.run_data_mode(state.selected, data_len=0, flags=flags)
        return None
    data = text_payload(text, SLM_MAX_PAYLOAD)
    sock = state.selected
    if state.faults.take_failed_send():
        return error_with("#XSEND: 0")
    if sock is None or sock.transmit(data):
        return error_with("#XSEND: 0")
    state.delegate(sock, POLLOUT)
    return Response.ok(f"#XSEND: {len(data)}")


async def _xrecv(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 2:
        raise CommandError(None)
    timeout, flags = int_param(cmd, 0), int_param(cmd, 1, default=0)
    if timeout < 0:
        raise CommandError(None)
    sock = _selected(state)
    data = await state.receive(sock, timeout=timeout, flags=flags, max_size=RECV_CHUNK)
    if data is None:
        raise CommandError(None)
    if not data:
        return Response.ok()
    state.delegate(sock, POLLIN)
    return Response(lines=(f"\r\n#XRECV: {len(data)}\r\n".encode(), data))


async def _xpoll(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    cmd.require_kind(Kind.SET)
    if state.apoll_running:
        raise CommandError(None)  # "cannot be used with AT#XAPOLL"
    timeout = int_param(cmd, 0)
    if len(cmd.params) > 9:
        raise CommandError(None)
    if len(cmd.params) > 1:
        socks = [state.find(int_param(cmd, i)) for i in range(1, len(cmd.params))]
    else:
        socks = list(state.ordered())

    def ready() -> list[str]:
        rows = []
        for sock in socks:
            revents = sock.readiness() & (POLLIN | POLL_FAILURES)
            if revents:
                rows.append(f'#XPOLL: {sock.handle},"0x{revents:04x}"')
        return rows

    rows = ready()
    if not rows and socks and timeout != 0:
        try:
            async with asyncio.timeout(timeout / 1000 if timeout > 0 else None):
                while not rows:
                    await state.wait_any_change()
                    rows = ready()
        except TimeoutError:
            pass
    return Response(lines=lines(*rows))


def _xapoll(fake: FakeModem, cmd: Command) -> Response:
    state = _slm(fake)
    if cmd.kind is Kind.READ:
        fields = [str(int(state.apoll_running)), str(state.apoll_requested)]
        fields += [str(s.handle) for s in state.ordered() if state.apoll_all or s.apoll_specific]
        return Response.ok("#XAPOLL: " + ",".join(fields))
    if cmd.kind is Kind.TEST:
        return Response.ok("#XAPOLL: (0,1),<0,1,4,5>,<handle1>,<handle2>,...")
    cmd.require_kind(Kind.SET)
    op = int_param(cmd, 0)
    if op == 0:
        state.apoll_running = False
        state.apoll_requested = 0
        return Response.ok()
    if op != 1 or len(cmd.params) > 10:
        raise CommandError(None)
    events = int_param(cmd, 1)
    if events & ~(POLLIN | POLLOUT) or events < 0:
        raise CommandError(None)
    targets = [state.find(int_param(cmd, i)) for i in range(2, len(cmd.params))]
    state.apoll_requested = events
    state.apoll_all = not targets
    for sock in state.ordered():
        sock.apoll_specific = sock in targets
        if state.apoll_all or sock.apoll_specific:
            sock.apoll_events = events
    state.apoll_running = True
    state.kick()
    return Response.ok()


def _slm_banner(text: str) -> bytes:
    return text.encode("latin-1") + b"\r\n"


NRF91_SLM: Final = register_dialect(
    Dialect(
        name="nrf91-slm",
        description="nRF9160 with the Serial LTE Modem application (NCS <= 3.1)",
        terminator="CRLF",
        quote_aware=True,
        backspace=b"\x08\x7f",
        max_line=4096,
        non_at_line="error",
        syntax_check=slm_grammar_ok,
        concatenation=False,  # not documented by Nordic (module docstring)
        boot_banner=((0.0, "Ready"),),
        frame_banner=_slm_banner,
        default_echo=False,
        boot_cfun=0,
        identity=Identity(
            manufacturer="Nordic Semiconductor ASA",
            model="nRF9160-SICA",
            revision="mfw_nrf9160_1.3.5",
            imei="352656100367872",
            imsi="284011234567890",
            iccid="8901234567012345678F",
        ),
        cfun_modes=(0, 1, 4),
        sim_powered_cfun=frozenset({1, 4}),
        sim_off_error=13,
        no_sim_stat=90,
        cid_range=(0, 11),
        default_contexts={0: ("IP", "")},
        handlers={
            "#XSLMVER": _xslmver,
            "%XICCID": _xiccid,
            "#XRESET": _xreset,
            **COMMON_HANDLERS,
            **nrf91_diag.DIAG_HANDLERS,
            "#XSOCKET": _xsocket,
            "#XSSOCKET": _xssocket,
            "#XSOCKETSELECT": _xsocketselect,
            "#XSOCKETOPT": _xsocketopt,
            "#XSSOCKETOPT": _xssocketopt,
            "%CMNG": nrf91_tls.cmng,
            "#XCONNECT": _xconnect,
            "#XSEND": _xsend,
            "#XRECV": _xrecv,
            "#XPOLL": _xpoll,
            "#XAPOLL": _xapoll,
            "#XGETADDRINFO": xgetaddrinfo,
        },
        new_state=SlmSockets,
        faults=NRF_FAULTS,
        on_reboot=on_reboot,
        on_stop=on_stop,
        on_radio=nrf91_diag.on_radio,
    )
)


#: An NCS release from before sdk-nrf PR #7951 (v2.1.0 is the first with it).
LEGACY_NCS_VERSION: Final = "2.0.2"


def slm_build(
    *,
    terminator: Literal["CR", "LF", "CRLF"] = "CRLF",
    ncs_version: str = SLM_NCS_VERSION,
    legacy_datamode: bool = False,
) -> Dialect:
    """The SLM fake as another firmware build: ``FakeModem(dialect=slm_build(...))``.

    ``terminator`` is the command line ending the build was made with
    (``CONFIG_SLM_CR_LF_TERMINATION`` by default, ``CONFIG_SLM_CR_TERMINATION``,
    ``CONFIG_SLM_LF_TERMINATION``; ``slm_at_host.c`` ``cmd_rx_handler``): with CR, an LF
    after it is an ordinary character (skipped before the next ``AT``, a payload byte in data
    mode). ``ncs_version`` is what ``AT#XSLMVER`` reports first. ``legacy_datamode`` is a
    build from before sdk-nrf PR #7951 (give it an ``ncs_version`` before 2.1.0, such as
    ``LEGACY_NCS_VERSION``): no ``OK`` on entering data mode, ``OK`` instead of
    ``#XDATAMODE`` on leaving it.
    """

    def new_state() -> SlmSockets:
        state = SlmSockets()
        state.legacy_datamode = legacy_datamode
        return state

    return dataclasses.replace(
        NRF91_SLM,
        terminator=terminator,
        handlers={**NRF91_SLM.handlers, "#XSLMVER": _version_handler(ncs_version)},
        new_state=new_state,
    )


async def start_in_data_mode(fake: FakeModem, payload: bytes = b"") -> None:
    """Leave ``fake`` in data mode as a host that died mid-send does: a client opens the port,
    opens a socket, sends ``AT#XSEND`` (and ``payload``, if any) and closes the port without
    the terminator. The socket stays open and the modem takes every later byte as payload.
    """
    from tests.pty_client import Client  # the raw client of the fake tests

    ending = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}[fake.dialect.terminator]
    client = Client(fake.port)
    try:
        client.write(b"AT#XSOCKET=1,1,0" + ending)
        await client.read_until(b"OK\r\n")
        client.write(b"AT#XSEND" + ending)
        if fake.dialect_state_as(SlmSockets).legacy_datamode:
            await fake.wait_for_command("AT#XSEND")  # no OK: the bytes wait in the modem
        else:
            await client.read_until(b"OK\r\n")
        client.write(payload)  # a few bytes: the pty takes them at once
    finally:
        client.close()
