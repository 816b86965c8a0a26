"""The nRF91 fakes' behaviours of real boards (issue 10), driven with raw bytes, no driver.

Each test talks to the fake through the plain pty client and checks the exact bytes the
firmware sources say the modem sends: sockets that outlive the host, the modem-core fault
without ``Ready``, a modem left in data mode and its inactivity flush, a build from before
sdk-nrf PR #7951, and the non-default line terminators. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fakes.nrf91_slm import LEGACY_NCS_VERSION, slm_build, start_in_data_mode
from tests.fakes.nrf91_sm import sm_build
from tests.fakes.nrf91_sockets import MAX_SOCKETS, modem_fault
from tests.fakes.registry import Dialect
from tests.pty_client import Client
from tests.test_fakes import ERROR, OK
from tests.test_fakes_nrf91 import (
    Modem,
    OpenModem,
    Server,
    nrf,
    open_modem,
    server,
    slm_connect,
    urc,
)

__all__ = ["open_modem", "server"]


def reconnect(modem: Modem) -> None:
    """The host process dies and a new one opens the same port."""
    modem.client.close()
    modem.client = Client(modem.fake.port)


# ---- sockets outlive the host


async def test_slm_sockets_stay_open_when_the_host_goes(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem("nrf91-slm")
    peer = await slm_connect(modem, server)
    for handle in range(1, MAX_SOCKETS):
        await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: %d,1,6" % handle))
    reconnect(modem)
    await modem.ask("AT#XSOCKET=1,1,0", ERROR)  # still 8 open: the limit holds
    rows = [b"#XSOCKETSELECT: %d,1,0,1,-1,%d,0" % (h, h + 1) for h in range(MAX_SOCKETS)]
    await modem.ask("AT#XSOCKETSELECT?", nrf(*rows, b"#XSOCKETSELECT: 7"))
    await modem.ask("AT#XSOCKETSELECT=0", nrf(b"#XSOCKETSELECT: 0"))
    await peer.send(b"still here")
    await modem.ask("AT#XRECV=2", b"\r\n#XRECV: 10\r\nstill here" + OK)
    await modem.ask("AT#XSOCKET=0", nrf(b'#XSOCKET: 0,"closed"'))
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))  # a handle is free again


async def test_sm_sockets_stay_open_when_the_host_goes(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem("nrf91-sm")
    for handle in range(MAX_SOCKETS - 1):
        await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: %d,1,6" % handle))
    await modem.ask("AT#XSSOCKET=1,1,0,42", nrf(b"#XSSOCKET: 7,1,258"))
    await modem.ask(f'AT#XCONNECT=0,"127.0.0.1",{server.port}', nrf(b"#XCONNECT: 0,1"))
    peer = await server.accept()
    reconnect(modem)
    await modem.ask("AT#XSOCKET=1,1,0", ERROR)
    await modem.ask(
        "AT#XSOCKET?", nrf(*(b"#XSOCKET: %d,1,0,1,0" % h for h in range(MAX_SOCKETS - 1)))
    )
    await modem.ask("AT#XSSOCKET?", nrf(b"#XSSOCKET: 7,1,0,1,42,0"))
    await modem.ask("AT#XCLOSE", nrf(*(b"#XCLOSE: %d,0" % h for h in range(MAX_SOCKETS))))
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XSOCKET?", OK)


# ---- modem-core fault


FAULT = urc(b"#XMODEM: FAULT,0x2,0x12345")
SHUTDOWN_AND_INIT = urc(b"#XMODEM: SHUTDOWN,0") + urc(b"#XMODEM: INIT,0")


@pytest.mark.parametrize("dialect", ["nrf91-slm", "nrf91-sm"])
async def test_modem_fault_restarts_the_modem_library_without_ready(
    dialect: str, open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem(dialect)
    slm = dialect == "nrf91-slm"
    await modem.ask("AT+CGEREP=1", OK)
    await modem.ask("AT+CEREG=5", OK)
    await modem.ask("AT#XAPOLL=1,1" if slm else "AT#XAPOLL=,1,1", OK)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))
    connect = f'AT#XCONNECT="127.0.0.1",{server.port}'
    if not slm:
        connect = f'AT#XCONNECT=0,"127.0.0.1",{server.port}'
    await modem.ask(connect, nrf(b"#XCONNECT: 1" if slm else b"#XCONNECT: 0,1"))
    peer = await server.accept()
    modem_fault(modem.fake)
    await modem.expect(FAULT + SHUTDOWN_AND_INIT)
    assert await peer.read_to_eof() == b""  # the connection is gone with the socket
    await modem.ask("AT+CFUN?", nrf(b"+CFUN: 0"))
    await modem.ask("AT+CEREG?", nrf(b"+CEREG: 0,0"))
    await modem.ask("AT+CGEREP?", nrf(b"+CGEREP: 0,0"))
    if slm:
        await modem.ask("AT#XAPOLL?", nrf(b"#XAPOLL: 0,0"))
        await modem.ask("AT#XSOCKETSELECT?", OK)
    else:
        await modem.ask("AT#XSOCKET?", OK)
    assert b"Ready" not in modem.client.pending()
    # The modem works again from CFUN=1, as after power-on.
    await modem.ask("AT+CEREG=1", OK)
    await modem.ask("AT+CFUN=1", OK + urc(b"+CEREG: 2") + urc(b"+CEREG: 1"))


# ---- data mode left on, and its inactivity timer


async def test_slm_left_in_data_mode_takes_at_commands_as_payload(open_modem: OpenModem) -> None:
    modem = await open_modem("nrf91-slm")
    await start_in_data_mode(modem.fake)
    modem.client = Client(modem.fake.port)  # the next host
    modem.send("AT")  # payload on a socket that is not connected: the send fails
    await modem.expect(b"+++")  # the modem's own terminator: it drops input until ours
    modem.send("AT")
    modem.client.write(b"+++")
    await modem.expect(urc(b"#XDATAMODE: -128"))
    await modem.ask("AT", OK)
    await modem.ask("AT#XSOCKET?", nrf(b"#XSOCKET: 0,1,0,1,0"))  # the dead host's socket


async def test_slm_left_with_a_lone_plus_ends_data_mode_early_on_the_next_plus_plus(
    open_modem: OpenModem,
) -> None:
    modem = await open_modem("nrf91-slm")
    await start_in_data_mode(modem.fake, b"+")  # a partial terminator, nothing buffered
    modem.client = Client(modem.fake.port)
    modem.client.write(b"+++")  # "++" completes the match; the last "+" is command input
    await modem.expect(urc(b"#XDATAMODE: 0"))
    await modem.ask("AT", OK)  # what precedes "AT" on a line is skipped


async def test_slm_partial_terminator_is_data_after_the_inactivity_timer(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem("nrf91-slm")
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XSEND", OK)
    modem.client.write(b"abc+")
    # Silence: the timer sends the buffered data, the partial "+" with it.
    assert await peer.read_exactly(4) == b"abc+"
    modem.client.write(b"++")  # not the end: the "+" before it was data
    modem.client.write(b"+")
    await modem.expect(urc(b"#XDATAMODE: 0"))
    await modem.ask("AT#XSEND", OK)
    modem.client.write(b"+")  # a partial terminator alone stays a partial match
    modem.client.write(b"++")
    await modem.expect(urc(b"#XDATAMODE: 0"))
    await modem.ask("AT#XSOCKET=0", nrf(b'#XSOCKET: 0,"closed"'))
    assert await peer.read_to_eof() == b""  # nothing else was sent


# ---- older and non-default builds


async def test_slm_before_pr_7951_sends_no_ok_in_data_mode(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem(slm_build(ncs_version=LEGACY_NCS_VERSION, legacy_datamode=True))
    await modem.ask("AT#XSLMVER", nrf(b'#XSLMVER: "2.0.2","2.5.0-lte-5ccd2d4dd54c"'))
    peer = await slm_connect(modem, server)
    modem.send("AT#XSEND")
    modem.client.write(b"payload+++")
    await modem.expect(OK)  # the answer to AT#XSEND comes when data mode ends
    assert await peer.read_exactly(7) == b"payload"
    assert modem.client.pending() == b""  # no #XDATAMODE


async def test_slm_cr_build_takes_the_lf_after_xsend_as_payload(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await open_modem(slm_build(terminator="CR"))
    modem.client.write(b"AT\r\n")  # the LF is skipped before the next AT
    await modem.expect(OK)
    peer = await slm_connect(modem, server)
    modem.client.write(b"AT#XSEND\r\n")
    await modem.expect(OK)
    modem.client.write(b"xyz+++")
    await modem.expect(urc(b"#XDATAMODE: 0"))
    assert await peer.read_exactly(4) == b"\nxyz"


@pytest.mark.parametrize("terminator", ["CR", "LF", "CRLF"])
@pytest.mark.parametrize(
    ("build", "version"),
    [
        (slm_build, b'#XSLMVER: "2.5.0","2.5.0-lte-5ccd2d4dd54c"'),
        (sm_build, b'#XSMVER: "v2.0.0","3.4.0"'),
    ],
    ids=["slm", "sm"],
)
async def test_builds_end_lines_with_their_terminator(
    terminator: str, build: Callable[..., Dialect], version: bytes, open_modem: OpenModem
) -> None:
    modem = await open_modem(build(terminator=terminator), attach=False)
    await modem.ask("AT+CFUN?", nrf(b"+CFUN: 0"))
    await modem.ask("AT#XSMVER" if build is sm_build else "AT#XSLMVER", nrf(version))
