"""An nRF91x1 running Nordic's Serial Modem add-on (nrfconnect/ncs-serial-modem), as a fake dialect.

What sets it apart from the SLM (shared/reference/at-dialects.md §0, §3.2, §3.3, §3.5;
ncs-serial-modem ``doc/app/at_socket.rst``, ``doc/app/sm_data_mode.rst``, ``app/src/sm_at_host.c``,
``app/src/sm_at_socket.c``; migration notes ``migration_notes_ncs_slm_v3.1.x.rst``):

- Boot banner ``Ready\\r\\n`` (``SM_SYNC_STR``), command lines end with a CR
  (``CONFIG_SM_CR_TERMINATION``), quote aware, backspace/DEL edit the line.
- The grammar check also accepts ``ATE0``/``ATE1`` and ``_`` in command names; echo is off at
  power-on. Lines without ``AT`` are ignored (the current ``cmd_rx_handler`` buffers nothing until
  ``AT``; older releases answered ``ERROR`` - unverified which one v2.0.0 does).
- No concatenation, as on the SLM (see ``nrf91_slm``): ``cmd_grammar_check`` in
  ``sm_at_host.c`` refuses a ``;`` after a command name, after ``?`` and after ``ATE0``, and the
  rest goes whole to ``nrf_modem_at_cmd``; Nordic documents no command-line concatenation.
- ``AT#XSMVER`` -> ``#XSMVER: "<SM version>","<NCS version>"``; ``AT#XSLMVER`` is unknown.
- Identity ``nRF9151-LACA`` / ``mfw_nrf91x1_2.0.2``; power-on CFUN=0, default bearer cid 0.

Sockets are handle based (up to 8, lowest free handle first); every ``#X`` failure is a plain
``ERROR``:

- ``AT#XSOCKET=<family>,<type>,<role>[,<cid>]`` -> ``#XSOCKET: <h>,<type>,6``;
  ``AT#XSOCKET?`` -> ``#XSOCKET: <h>,<family>,<role>,<type>,<cid>`` per plain socket;
  ``AT#XSSOCKET=<family>,<type>,<role>,<sec_tag>[,<peer_verify>[,<cid>]]`` ->
  ``#XSSOCKET: <h>,<type>,258`` (TLS made by the fake with the CA of
  ``AT%CMNG``: ``nrf91_tls``). ``AT%CMNG`` is the credential store (``nrf91_tls``).
  The fake opens TCP clients only.
- ``AT#XCONNECT=<h>,"<host>",<port>`` -> ``#XCONNECT: <h>,1``.
- ``AT#XSEND=<h>,0,<flags>,"<text>"`` / ``AT#XSEND=<h>,1,<flags>,"<hex>"`` (at most 1400 bytes)
  -> ``#XSEND: <h>,<result_type>,<size>`` (result_type 1 with flag 8192, then URC
  ``#XSENDNTF: <h>,0,<size>``); a failed send answers ``#XSEND: <h>,<result_type>,0`` then
  ``ERROR``. ``AT#XSEND=<h>,2,<flags>[,<data_len>]`` enters data mode: ``OK``, then exactly
  ``<data_len>`` bytes (terminator not scanned) or bytes up to ``+++`` (matched anywhere), then
  ``#XDATAMODE: 0``; on a failure the modem sends ``+++``, drops input until the host's ``+++``
  (or ``<data_len>`` bytes) and answers ``#XDATAMODE: -1``. The data-mode socket failing
  (POLLERR/POLLHUP, e.g. the peer closing) during data mode does the same.
- ``AT#XRECV=<h>,<mode>,<flags>,<timeout>[,<data_len>]`` -> ``#XRECV: <h>,<mode>,<size>`` CRLF,
  the data (raw, or lowercase hex in mode 1; size counts bytes before hex), CRLF ``OK``; at most
  2048 bytes; bare ``OK`` after the peer closed and the buffer is empty.
- ``AT#XRECVCFG=[<h>],<flags>[,<hex>]`` auto-reception: data is pushed as
  ``#XRECV: <h>,<mode>,<size>`` CRLF data CRLF (CRLF *after* the data) in AT mode, raw in data
  mode (flag 2). When the peer closes with nothing left to push the modem sends a bare CRLF
  (``auto_reception``: recv() returns 0 and the trailing CRLF is still written).
- ``AT#XAPOLL=[<h>],<op>[,<events>]`` -> URC ``#XAPOLL: <h>,<revents>``; POLLIN/POLLOUT once
  until ``AT#XRECV``/``AT#XSEND`` re-arm them, ERR/HUP/NVAL once; events seen in data mode are
  re-evaluated when it ends. No event for ``#XCLOSE``. ``AT#XAPOLL?`` -> ``#XAPOLL: <h>,<events>``.
- ``AT#XCLOSE[=<h>]`` -> ``#XCLOSE: <h>,0`` (one line per socket without a handle).
- ``AT#XGETADDRINFO="<host>"[,<family>]`` -> ``#XGETADDRINFO: "<ip>"``.
- ``AT+CGEREP=1`` enables ``+CGEV`` (``nrf91_sockets.network_detach``).

Field diagnostics (%XMONITOR, %CONEVAL, ...) are ``nrf91_diag``'s, shared with the SLM.
"""

from __future__ import annotations

import binascii
import dataclasses
from collections.abc import Coroutine
from typing import Any, Final, Literal

from . import nrf91_diag, nrf91_tls
from .core import FakeModem
from .grammar import Command, CommandError, Kind, Response
from .nrf91_sockets import (
    COMMON_HANDLERS,
    ECONNRESET,
    EIO,
    ENETDOWN,
    MAX_HOSTNAME,
    NRF_FAULTS,
    POLL_FAILURES,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
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
    "NRF91_SM",
    "SM_NCS_VERSION",
    "SM_VERSION",
    "SmSockets",
    "sm_build",
    "sm_grammar_ok",
]

SM_VERSION: Final = "v2.0.0"
SM_NCS_VERSION: Final = "3.4.0"
#: Hex string mode carries at most 1400 bytes (2800 hex characters).
SM_MAX_HEX_PAYLOAD: Final = 1400
#: String mode is limited by the AT command buffer (CONFIG_SM_AT_BUF_SIZE, 4096).
SM_MAX_LINE: Final = 4096
#: The send flags the command reference lists: none, wait for the network ack, #XSENDNTF.
_SEND_FLAGS: Final = frozenset({0, 512, 8192})
SM_MSG_SEND_ACK: Final = 8192
_SOCKET_OPTIONS: Final = frozenset({2, 20, 21, 30, 31, 32, 40, 55, 61, 62})
_SET_ONLY_OPTIONS: Final = frozenset({2, 40, 61})
_SOCKET_OPTION_DEFAULTS: Final = {21: 30}
_TLS_OPTIONS: Final = frozenset({2, 4, 5, 12, 13, 14, 15, 18, 22})


def sm_grammar_ok(line: str) -> bool:
    """The Serial Modem's AT grammar check (``cmd_grammar_check`` in ``sm_at_host.c``)."""
    if len(line) < 2 or line[:2].upper() != "AT":
        return False
    rest = line[2:]
    if rest == "" or (len(rest) == 2 and rest[0] in "Ee" and rest[1] in "01"):
        return True
    if rest[0] not in "+%#":
        return False
    end = 1
    while end < len(rest) and rest[end].isascii() and (rest[end].isalnum() or rest[end] == "_"):
        end += 1
    if end == 1:
        return False
    tail = rest[end:]
    if tail in ("", "?", "=", "=?"):
        return True
    return tail.startswith("=") and not tail.startswith("=?")


# --------------------------------------------------------------------------------------------
# Socket state and poll rules


class SmSockets(NrfSockets):
    """Serial Modem socket state: poll-callback events per socket, #XAPOLL and #XRECVCFG."""

    def __init__(self) -> None:
        super().__init__()
        self.xapoll_requested = 0  # for all sockets, also those opened later
        self.adr_flags = 0
        self.adr_hex = False

    def update(self, sock: Socket, events: int, update_xapoll: bool) -> None:
        """``update_poll_events``: (re)register ``events``, optionally re-arm #XAPOLL."""
        if sock.poll_disabled:
            return
        if update_xapoll:
            sock.xapoll_armed |= sock.xapoll_requested & events
        sock.events |= events
        self.kick()

    def poll(self) -> None:
        """``poll_work_fn``: one pass per change until no socket has anything to report."""
        dm = self.data_mode
        at_mode = dm is None
        for _ in range(1000):
            progressed = False
            for sock in list(self.ordered()):
                if sock.handle not in self.sockets:
                    continue
                in_dm = dm is not None and dm.sock is sock
                revents = 0
                if not sock.poll_disabled and (at_mode or in_dm or not sock.delayed):
                    revents = sock.readiness() & sock.events
                if not at_mode:
                    sock.delayed |= revents
                if not at_mode and not in_dm:
                    continue
                if at_mode and sock.delayed:
                    # Back in AT mode: re-enable what was seen meanwhile, see what still holds.
                    sock.poll_disabled = False
                    self.update(sock, sock.delayed | revents, True)
                    sock.delayed = 0
                    progressed = True
                    continue
                if not revents:
                    continue
                progressed = True
                self._process(sock, revents, dm)
            if not progressed:
                return

    def _process(self, sock: Socket, revents: int, dm: DataMode | None) -> None:
        fake = self.require_fake()
        lost = False
        if dm is None:
            xapoll = revents & sock.xapoll_armed
            sock.xapoll_armed &= ~xapoll
            if revents & POLLIN and (xapoll & POLLIN or sock.adr_flags & 1):
                lost = self.take_lost_notification()
            if xapoll and not lost:
                fake.send_urc(f"#XAPOLL: {sock.handle},{xapoll}")
        if revents & POLLOUT:
            sock.events &= ~POLLOUT
        if revents & POLL_FAILURES:
            sock.poll_disabled = True
        if revents & POLLIN:
            sock.events &= ~POLLIN
            adr_flag = 1 if dm is None else 2
            if sock.adr_flags & adr_flag and not lost:
                self._auto_receive(sock, dm)
        if dm is not None and revents & POLL_FAILURES:
            error = EIO if revents & POLLERR else ENETDOWN if revents & POLLNVAL else ECONNRESET
            self.fail_data_mode(dm, error)

    def _auto_receive(self, sock: Socket, dm: DataMode | None) -> None:
        fake = self.require_fake()
        data = sock.take(RECV_CHUNK)
        if not data and not sock.peer_closed:
            return  # recv() failed: logged, nothing sent
        if dm is not None:
            fake.write_raw(data)
        else:
            if data:
                mode = 1 if sock.adr_hex else 0
                body = data.hex().encode() if sock.adr_hex else data
                header = f"\r\n#XRECV: {sock.handle},{mode},{len(data)}\r\n"
                fake.write_raw(header.encode() + body)
            fake.write_raw(b"\r\n")
        if data:
            self.update(sock, POLLIN, True)

    def reset_poll_settings(self) -> None:
        self.xapoll_requested = 0
        self.adr_flags = 0
        self.adr_hex = False

    def datamode_status(self, dm: DataMode) -> int:
        return -1 if dm.failed else 0

    def on_data_mode_exit(self, dm: DataMode) -> None:
        sock = dm.sock
        if sock is None or sock.handle not in self.sockets:
            return
        if dm.flags & SM_MSG_SEND_ACK and dm.sent:
            self.require_fake().send_urc(f"#XSENDNTF: {sock.handle},0,{dm.sent}")
        self.update(sock, POLLOUT, True)

    def opened(self, sock: Socket) -> None:
        sock.adr_flags = self.adr_flags
        sock.adr_hex = self.adr_hex
        sock.xapoll_requested = self.xapoll_requested
        self.update(sock, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLNVAL, True)


def _sm(fake: FakeModem) -> SmSockets:
    state = fake.dialect_state_as(SmSockets)
    state.bind(fake)
    return state


def _optional_handle(state: SmSockets, cmd: Command) -> Socket | None:
    if not cmd.has(0):
        return None
    return state.find(int_param(cmd, 0))


# --------------------------------------------------------------------------------------------
# Handlers


def _xsmver(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    return Response.ok(f'#XSMVER: "{SM_VERSION}","{SM_NCS_VERSION}"')


def _xiccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    fake.check_sim()
    return Response.ok(f"%XICCID: {fake.identity.iccid}")


def _xreset(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is not Kind.EXEC:
        raise CommandError(None)
    fake.after_response(lambda: fake.after_output(fake.reboot))
    return Response.ok()


def _xsocket(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.READ:
        rows = [
            f"#XSOCKET: {s.handle},{s.family},{s.role},{s.type},{s.cid}"
            for s in state.ordered()
            if not s.secure
        ]
        return Response(lines=lines(*rows))
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSOCKET: <handle>,(1,2,3),(1,2,3),(0,1),<cid>")
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 4:
        raise CommandError(None)
    family, sock_type, role = int_param(cmd, 0), int_param(cmd, 1), int_param(cmd, 2)
    sock = state.open(family, sock_type, role, int_param(cmd, 3, default=0))
    state.opened(sock)
    return Response.ok(f"#XSOCKET: {sock.handle},{sock.type},{sock.protocol}")


def _xssocket(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.READ:
        rows = [
            f"#XSSOCKET: {s.handle},{s.family},{s.role},{s.type},{s.sec_tag},{s.cid}"
            for s in state.ordered()
            if s.secure
        ]
        return Response(lines=lines(*rows))
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSSOCKET: <handle>,(1,2),(1,2),(0,1),<sec_tag>,<peer_verify>,<cid>")
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 6:
        raise CommandError(None)
    family, sock_type, role = int_param(cmd, 0), int_param(cmd, 1), int_param(cmd, 2)
    sec_tag = int_param(cmd, 3)
    peer_verify = int_param(cmd, 4, default=2 if role == 0 else 0)
    if peer_verify not in (0, 1, 2) or sec_tag < 0:
        raise CommandError(None)
    sock = state.open(family, sock_type, role, int_param(cmd, 5, default=0), sec_tag)
    sock.peer_verify = peer_verify
    state.opened(sock)
    return Response.ok(f"#XSSOCKET: {sock.handle},{sock.type},{sock.protocol}")


def _xclose(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.EXEC:
        targets = list(state.ordered())
    else:
        cmd.require_kind(Kind.SET)
        if len(cmd.params) != 1:
            raise CommandError(None)
        targets = [state.find(int_param(cmd, 0))]
    for sock in targets:
        state.close(sock)
    return Response(lines=lines(*(f"#XCLOSE: {s.handle},0" for s in targets)))


def _xsocketopt(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSOCKETOPT: <handle>,(0,1),<name>,<value>")
    cmd.require_kind(Kind.SET)
    sock = state.find(int_param(cmd, 0))
    op, name = int_param(cmd, 1), int_param(cmd, 2)
    if name not in _SOCKET_OPTIONS or op not in (0, 1):
        raise CommandError(None)
    if op == 1:
        sock.options[name] = int_param(cmd, 3, default=0)
        return Response.ok()
    if name in _SET_ONLY_OPTIONS:
        raise CommandError(None)
    value = sock.options.get(name, _SOCKET_OPTION_DEFAULTS.get(name, 0))
    return Response.ok(f"#XSOCKETOPT: {sock.handle},{value}")


def _xssocketopt(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.TEST:
        return Response.ok("#XSSOCKETOPT: <handle>,(0,1),<name>,<value>")
    cmd.require_kind(Kind.SET)
    sock = state.find(int_param(cmd, 0))
    if not sock.secure:
        raise CommandError(None)
    op, name = int_param(cmd, 1), int_param(cmd, 2)
    if name not in _TLS_OPTIONS or op not in (0, 1):
        raise CommandError(None)
    if op == 1:
        if len(cmd.params) > 3 and cmd.params[3].quoted:
            sock.options[1000 + name] = str_param(cmd, 3)
        else:
            sock.options[1000 + name] = int_param(cmd, 3)
        return Response.ok()
    if 1000 + name not in sock.options:
        raise CommandError(None)
    return Response.ok(f"#XSSOCKETOPT: {sock.handle},{sock.options[1000 + name]}")


async def _xconnect(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    cmd.require_kind(Kind.SET)
    if len(cmd.params) != 3:
        raise CommandError(None)
    sock = state.find(int_param(cmd, 0))
    host, port = str_param(cmd, 1), int_param(cmd, 2)
    if len(host.encode("latin-1")) > MAX_HOSTNAME:
        raise CommandError(None)
    await state.connect(sock, host, port)
    return Response.ok(f"#XCONNECT: {sock.handle},1")


def _hex_payload(text: str) -> bytes:
    if len(text) % 2 or len(text) > 2 * SM_MAX_HEX_PAYLOAD or not text:
        raise CommandError(None)
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise CommandError(None) from None


def _xsend(fake: FakeModem, cmd: Command) -> Response | Coroutine[Any, Any, None]:
    # Answered at once, without a task, unless it enters data mode (which waits for input).
    state = _sm(fake)
    cmd.require_kind(Kind.SET)
    sock = state.find(int_param(cmd, 0))
    mode, flags = int_param(cmd, 1), int_param(cmd, 2)
    if flags not in _SEND_FLAGS:
        raise CommandError(None)
    if mode == 2:
        if len(cmd.params) > 4:
            raise CommandError(None)
        data_len = int_param(cmd, 3, default=0)
        if data_len < 0:
            raise CommandError(None)
        return _xsend_data_mode(state, sock, data_len, flags)
    if mode not in (0, 1) or len(cmd.params) != 4:
        raise CommandError(None)
    text = str_param(cmd, 3)
    data = _hex_payload(text) if mode == 1 else text_payload(text, SM_MAX_LINE)
    result_type = 1 if flags & SM_MSG_SEND_ACK else 0
    if state.faults.take_failed_send() or sock.transmit(data):
        return error_with(f"#XSEND: {sock.handle},{result_type},0")
    if result_type:
        fake.after_response(lambda: fake.send_urc(f"#XSENDNTF: {sock.handle},0,{len(data)}"))
    fake.after_response(lambda: state.update(sock, POLLOUT, True))
    return Response.ok(f"#XSEND: {sock.handle},{result_type},{len(data)}")


async def _xsend_data_mode(state: SmSockets, sock: Socket, data_len: int, flags: int) -> None:
    if sock.adr_flags & 2:
        state.update(sock, POLLIN, False)
    await state.run_data_mode(sock, data_len=data_len, flags=flags)


async def _xrecv(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 5:
        raise CommandError(None)
    sock = state.find(int_param(cmd, 0))
    mode, flags, timeout = int_param(cmd, 1), int_param(cmd, 2), int_param(cmd, 3)
    data_len = int_param(cmd, 4, default=RECV_CHUNK)
    if mode not in (0, 1) or timeout < 0 or not 0 <= data_len <= RECV_CHUNK:
        raise CommandError(None)
    if data_len == 0:
        return Response.ok()
    data = await state.receive(sock, timeout=timeout, flags=flags, max_size=data_len)
    if data is None:
        raise CommandError(None)
    if not data:
        return Response.ok()
    state.update(sock, POLLIN, True)
    body = data.hex().encode() if mode == 1 else data
    header = f"\r\n#XRECV: {sock.handle},{mode},{len(data)}\r\n".encode()
    return Response(lines=(header, body))


def _xapoll(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.READ:
        rows = [
            f"#XAPOLL: {s.handle},{s.xapoll_requested & ~POLL_FAILURES}"
            for s in state.ordered()
            if s.xapoll_requested
        ]
        return Response(lines=lines(*rows))
    if cmd.kind is Kind.TEST:
        return Response.ok("#XAPOLL: <handle>,(0,1),(0,1,4,5)")
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 3:
        raise CommandError(None)
    sock = _optional_handle(state, cmd)
    op = int_param(cmd, 1)
    targets = [sock] if sock is not None else list(state.ordered())
    if op == 0:
        if sock is None:
            state.xapoll_requested = 0
        for target in targets:
            target.xapoll_requested = 0
            target.xapoll_armed = 0
        return Response.ok()
    if op != 1:
        raise CommandError(None)
    events = int_param(cmd, 2)
    if events < 0 or events & ~(POLLIN | POLLOUT):
        raise CommandError(None)
    events |= POLL_FAILURES  # libmodem always reports these
    if sock is None:
        state.xapoll_requested = events
    for target in targets:
        target.xapoll_requested = events
        state.update(target, events, True)
    return Response.ok()


def _xrecvcfg(fake: FakeModem, cmd: Command) -> Response:
    state = _sm(fake)
    if cmd.kind is Kind.READ:
        rows = [
            f"#XRECVCFG: {s.handle},{s.adr_flags},{int(s.adr_hex)}"
            for s in state.ordered()
            if s.adr_flags
        ]
        return Response(lines=lines(*rows))
    if cmd.kind is Kind.TEST:
        return Response.ok("#XRECVCFG: <handle>,(0,1,2,3),(0,1)")
    cmd.require_kind(Kind.SET)
    if len(cmd.params) > 3:
        raise CommandError(None)
    sock = _optional_handle(state, cmd)
    flags, hex_mode = int_param(cmd, 1), int_param(cmd, 2, default=0)
    if flags < 0 or flags & ~3 or hex_mode not in (0, 1) or (flags & 2 and hex_mode):
        raise CommandError(None)
    if sock is None:
        state.adr_flags, state.adr_hex = flags, bool(hex_mode)
    for target in [sock] if sock is not None else list(state.ordered()):
        target.adr_flags, target.adr_hex = flags, bool(hex_mode)
        state.update(target, POLLIN, False)
    return Response.ok()


def _sm_banner(text: str) -> bytes:
    return text.encode("latin-1") + b"\r\n"


NRF91_SM: Final = register_dialect(
    Dialect(
        name="nrf91-sm",
        description="nRF91x1 with the Serial Modem add-on (ncs-serial-modem)",
        terminator="CR",
        quote_aware=True,
        backspace=b"\x08\x7f",
        max_line=SM_MAX_LINE,
        non_at_line="ignore",
        syntax_check=sm_grammar_ok,
        concatenation=False,  # not documented by Nordic (module docstring)
        boot_banner=((0.0, "Ready"),),
        frame_banner=_sm_banner,
        default_echo=False,
        boot_cfun=0,
        identity=Identity(
            manufacturer="Nordic Semiconductor ASA",
            model="nRF9151-LACA",
            revision="mfw_nrf91x1_2.0.2",
            imei="359404230035913",
            imsi="284011234567891",
            iccid="8901234567012345679F",
        ),
        cfun_modes=(0, 1, 4),
        sim_powered_cfun=frozenset({1, 4}),
        sim_off_error=13,
        no_sim_stat=90,
        cid_range=(0, 11),
        default_contexts={0: ("IP", "")},
        handlers={
            "#XSMVER": _xsmver,
            "%XICCID": _xiccid,
            "#XRESET": _xreset,
            **COMMON_HANDLERS,
            **nrf91_diag.DIAG_HANDLERS,
            "#XSOCKET": _xsocket,
            "#XSSOCKET": _xssocket,
            "#XCLOSE": _xclose,
            "#XSOCKETOPT": _xsocketopt,
            "#XSSOCKETOPT": _xssocketopt,
            "%CMNG": nrf91_tls.cmng,
            "#XCONNECT": _xconnect,
            "#XSEND": _xsend,
            "#XRECV": _xrecv,
            "#XAPOLL": _xapoll,
            "#XRECVCFG": _xrecvcfg,
            "#XGETADDRINFO": xgetaddrinfo,
        },
        new_state=SmSockets,
        faults=NRF_FAULTS,
        on_reboot=on_reboot,
        on_stop=on_stop,
        on_radio=nrf91_diag.on_radio,
    )
)


def sm_build(*, terminator: Literal["CR", "LF", "CRLF"] = "CR") -> Dialect:
    """The SM fake built with another command line ending: ``FakeModem(dialect=sm_build(...))``
    (``CONFIG_SM_CR_TERMINATION`` by default, ``CONFIG_SM_LF_TERMINATION``,
    ``CONFIG_SM_CR_LF_TERMINATION``)."""
    return dataclasses.replace(NRF91_SM, terminator=terminator)
