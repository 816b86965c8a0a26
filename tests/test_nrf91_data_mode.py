"""The nRF91 dialects getting out of data mode, left-over sockets and the APN, on the fakes.

The in-run wedges of issue 10: an ``OK`` to ``AT#XSEND`` that never arrives, and an
``AT#XSEND`` that reaches a modem that has just rebooted (back-to-back sends across a
reboot). Each leaves the SLM in data mode with no payload coming; without an escape the
channel's own resynchronisation would be taken as payload for ever. Each test checks that
the dialect escapes and the same dialect object opens, sends and receives again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atbridge.dialects.nrf91_slm import ncs_version
from atbridge.errors import CloseReason, SocketClosed
from tests.conftest import SHORT_GUARD
from tests.fakes import FakeModem
from tests.fakes.grammar import Command, HandlerResult
from tests.fakes.nrf91_sockets import sockets_of
from tests.pty_client import Client
from tests.test_dialect_nrf91 import WAIT, Rig, build_rig, rig

__all__ = ["rig"]

#: Seconds to wait for an OK that is never coming (an answer takes milliseconds).
LOST_OK_WAIT = 1.0


@pytest.fixture
async def slm_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The SLM only: its data mode ends with a terminator. The SM counts ``<data_len>``
    bytes (no terminator to escape with) and its data mode command names the socket.

    The fake matches the terminator with no guard time, so the escape's silence (the
    channel's ``escape_guard``, 1.1 s by default) is short here."""
    async with build_rig("nrf91-slm", tmp_path) as built:
        built.modem.escape_guard = SHORT_GUARD
        yield built


async def test_a_lost_ok_to_xsend_is_escaped_and_the_dialect_works_again(slm_rig: Rig) -> None:
    sock, far = await slm_rig.connect()
    await sock.send(b"first")
    assert await far.read_exactly(5) == b"first"
    slm_rig.fake.drop_next_response()  # the OK that says the modem entered data mode
    default_wait = slm_rig.dialect.data_mode_entry_timeout
    slm_rig.dialect.data_mode_entry_timeout = LOST_OK_WAIT
    with pytest.raises(SocketClosed, match="no answer to 'AT#XSEND'") as raised:
        async with asyncio.timeout(WAIT + 10):
            await sock.send(b"lost")
    slm_rig.dialect.data_mode_entry_timeout = default_wait
    assert raised.value.reason is CloseReason.ERROR
    assert sockets_of(slm_rig.fake).data_mode is None  # the escape took the modem out
    again, far2 = await slm_rig.connect()
    await again.send(b"back")
    assert await far2.read_exactly(4) == b"back"
    await far2.write(b"reply")
    assert await again.receive() == b"reply"


def rebooted_just_before(fake: FakeModem, cmd: Command) -> HandlerResult:
    """``AT#XSEND`` reaching a modem that has just restarted: ``Ready``, no socket, then
    the command is taken as on any fresh modem (data mode entered)."""
    sockets_of(fake).drop_sockets()
    fake.write_raw(b"Ready\r\n")
    result = fake.run_default(cmd)
    assert not isinstance(result, Exception)
    return result  # type: ignore[return-value]


async def test_back_to_back_sends_across_a_reboot_do_not_wedge_the_channel(slm_rig: Rig) -> None:
    sock, far = await slm_rig.connect()
    await sock.send(b"one")
    assert await far.read_exactly(3) == b"one"
    slm_rig.fake.on_command("#XSEND", rebooted_just_before, times=1)
    sends = [asyncio.ensure_future(sock.send(b"two")), asyncio.ensure_future(sock.send(b"x"))]
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(r, SocketClosed) for r in results), results
    assert sock.closed is not None and sock.closed.reason is CloseReason.REBOOT
    assert sockets_of(slm_rig.fake).data_mode is None
    await slm_rig.dialect.initialise()
    await slm_rig.dialect.attach(timeout=WAIT)
    again, far2 = await slm_rig.connect()
    await again.send(b"three")
    assert await far2.read_exactly(5) == b"three"


async def test_a_cancelled_data_mode_command_is_escaped_before_the_next_command(
    slm_rig: Rig,
) -> None:
    sock, _far = await slm_rig.connect()
    slm_rig.fake.drop_next_response()  # the OK is slow to come: the caller gives up first
    sending = asyncio.ensure_future(slm_rig.dialect._send(sock, b"never"))
    await slm_rig.fake.wait_for_command("AT#XSEND", timeout=WAIT)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    # The modem is in data mode; the next command resynchronises, escaping first.
    again, far2 = await slm_rig.connect()
    assert sockets_of(slm_rig.fake).data_mode is None
    await again.send(b"after")
    assert await far2.read_exactly(5) == b"after"


async def test_left_over_sockets_are_listed_and_closed(rig: Rig) -> None:
    ours, _far = await rig.connect()
    client = Client(rig.fake.port)  # another host, on the same port, leaves 3 sockets
    line_end = b"\r\n" if rig.name == "nrf91-slm" else b"\r"
    try:
        for handle in (1, 2, 3):
            client.write(b"AT#XSOCKET=1,1,0" + line_end)
            await client.read_until(b"#XSOCKET: %d,1,6\r\n\r\nOK\r\n" % handle)
    finally:
        client.close()
    async with asyncio.timeout(WAIT):
        closed = await rig.dialect.close_leftover_sockets()
    assert closed == 4
    assert sockets_of(rig.fake).sockets == {}
    assert ours.closed is not None and ours.closed.reason is CloseReason.LOCAL
    assert await rig.dialect.close_leftover_sockets() == 0
    sock, far = await rig.connect()
    await sock.send(b"fresh")
    assert await far.read_exactly(5) == b"fresh"


async def test_the_listing_is_skipped_until_a_socket_is_created_and_runs_again_after(
    rig: Rig,
) -> None:
    """Issue 16: the listing before the first open repeated the probe's. Once everything
    listed is closed, nothing is asked until this dialect creates a socket; after that
    (a reconnect) the listing runs again and closes what is still open."""
    listing = ("AT#XSOCKETSELECT?",) if rig.name == "nrf91-slm" else ("AT#XSOCKET?", "AT#XSSOCKET?")
    async with asyncio.timeout(WAIT):
        assert await rig.dialect.close_leftover_sockets() == 0
    asked = len(rig.fake.commands)
    assert [c for c in rig.fake.commands if c in listing] == list(listing)
    async with asyncio.timeout(WAIT):
        assert await rig.dialect.close_leftover_sockets() == 0
    assert len(rig.fake.commands) == asked  # nothing asked: nothing can be open
    ours, _far = await rig.connect()  # a socket of ours: the modem may hold it
    async with asyncio.timeout(WAIT):
        closed = await rig.dialect.close_leftover_sockets()
    assert closed == 1
    assert [c for c in rig.fake.commands[asked:] if c in listing] == list(listing)
    assert ours.closed is not None and ours.closed.reason is CloseReason.LOCAL
    assert sockets_of(rig.fake).sockets == {}


async def test_the_apn_is_set_once_and_not_again_when_the_modem_has_it(rig: Rig) -> None:
    await rig.dialect.configure_pdp("my.apn")
    await rig.dialect.configure_pdp("my.apn")
    sets = [c for c in rig.fake.commands if c.startswith("AT+CGDCONT=")]
    assert sets == ['AT+CGDCONT=0,"IP","my.apn"']
    await rig.dialect.configure_pdp("other.apn")
    assert rig.fake.commands[-1] == 'AT+CGDCONT=0,"IP","other.apn"'


@pytest.mark.parametrize(
    ("answer", "version"),
    [
        ('"2.5.0","2.5.0-lte-5ccd2d4dd54c"', (2, 5, 0)),
        ('"2.0.2","2.0.0"', (2, 0, 2)),
        ("1.2", (1, 2, 0)),
        ('"v3.1.0","3.1.0"', (3, 1, 0)),
        ('"custom"', None),
    ],
)
def test_the_slm_version_is_read_from_xslmver(answer: str, version: tuple[int, ...] | None) -> None:
    assert ncs_version(answer) == version
