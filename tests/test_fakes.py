"""Tests of the fake modem itself, through the pty slave with plain os.open/os.read/os.write.

Every expectation is the exact byte string the documented modem sends; reads are bounded waits
for a known number of bytes, so a stray or missing byte fails the test.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakes import DIALECTS, Command, Dialect, FakeModem, Identity, Kind, Response
from tests.fakes.__main__ import spawn
from tests.pty_client import Client

READ_TIMEOUT = 2.0
OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
REGISTERED_CELL = b'"0A1B","01234567",7'


Start = Callable[..., Awaitable[tuple[FakeModem, Client]]]


@pytest.fixture
async def start_fake() -> AsyncIterator[Start]:
    """Start fakes and open a client on each; everything is stopped and closed afterwards."""
    fakes: list[FakeModem] = []
    clients: list[Client] = []

    async def start(
        dialect: str | Dialect = "nrf91-slm", **kwargs: Any
    ) -> tuple[FakeModem, Client]:
        fake = FakeModem(dialect, **kwargs)
        await fake.start()
        fakes.append(fake)
        client = Client(fake.port)
        clients.append(client)
        return fake, client

    yield start
    for client in clients:
        client.close()
    for fake in fakes:
        await fake.stop()


@pytest.fixture
async def slm(start_fake: Start) -> tuple[FakeModem, Client]:
    """An nRF91 SLM fake whose boot banner has been read."""
    fake, client = await start_fake("nrf91-slm")
    await client.expect(b"Ready\r\n")
    return fake, client


@pytest.fixture
async def generic(start_fake: Start) -> tuple[FakeModem, Client]:
    """A generic 3GPP fake (no banner, echo on, CR terminator)."""
    return await start_fake("generic")


def info(*lines: bytes) -> bytes:
    """Information text then OK, as a 27.007 modem frames it."""
    return b"\r\n" + b"".join(line + b"\r\n" for line in lines) + OK


# ---- start, banner, identity


async def test_start_exposes_a_pty_and_sends_the_slm_banner(start_fake: Start) -> None:
    fake, client = await start_fake("nrf91-slm")
    assert re.fullmatch(r"/dev/pts/\d+", fake.port)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT\r\n", OK)
    assert fake.commands == ["AT"]
    assert fake.bytes_in == 4
    assert fake.bytes_out == len(b"Ready\r\n") + len(OK)


async def test_registry_lists_the_dialects() -> None:
    assert {"nrf91-slm", "generic"} <= set(DIALECTS)
    with pytest.raises(ValueError, match="unknown dialect"):
        FakeModem("no-such-modem")


async def test_slm_identity(slm: tuple[FakeModem, Client]) -> None:
    _, client = slm
    await client.ask(b"AT+CGMI\r\n", info(b"Nordic Semiconductor ASA"))
    await client.ask(b"AT+CGMM\r\n", info(b"nRF9160-SICA"))
    await client.ask(b"AT+CGMR\r\n", info(b"mfw_nrf9160_1.3.5"))
    await client.ask(b"AT+CGSN\r\n", info(b"352656100367872"))
    await client.ask(b"AT+CGSN=1\r\n", info(b'+CGSN: "352656100367872"'))
    await client.ask(b"AT#XSLMVER\r\n", info(b'#XSLMVER: "2.5.0","2.5.0-lte-5ccd2d4dd54c"'))
    await client.ask(b"at+cgmm\r\n", info(b"nRF9160-SICA"))


async def test_slm_sim_answers_only_when_powered(slm: tuple[FakeModem, Client]) -> None:
    _, client = slm
    await client.ask(b"AT+CMEE=1\r\n", OK)
    # Power-on is CFUN=0: the SIM is off.
    await client.ask(b"AT+CIMI\r\n", b"\r\n+CME ERROR: 13\r\n")
    await client.ask(b"AT+CFUN=4\r\n", OK)
    await client.ask(b"AT+CIMI\r\n", info(b"284011234567890"))
    await client.ask(b"AT%XICCID\r\n", info(b"%XICCID: 8901234567012345678F"))


async def test_no_sim(start_fake: Start) -> None:
    fake, client = await start_fake("nrf91-slm", sim=False, cfun=4)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"AT+CIMI\r\n", b"\r\n+CME ERROR: 10\r\n")
    await client.ask(b"AT+CEREG=1\r\n", OK)
    await client.ask(b"AT+CFUN=1\r\n", OK + b"\r\n+CEREG: 90\r\n")
    fake.set_sim(True)
    await client.ask(b"AT+CIMI\r\n", info(b"284011234567890"))


# ---- errors


async def test_cmee_shapes_errors(start_fake: Start) -> None:
    _, client = await start_fake("nrf91-slm", sim=False, cfun=4)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CMEE?\r\n", info(b"+CMEE: 0"))
    await client.ask(b"AT+CIMI\r\n", ERROR)
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"AT+CIMI\r\n", b"\r\n+CME ERROR: 10\r\n")
    await client.ask(b"AT+CMEE=2\r\n", OK)
    await client.ask(b"AT+CMEE?\r\n", info(b"+CMEE: 2"))
    await client.ask(b"AT+CIMI\r\n", b"\r\n+CME ERROR: SIM not inserted\r\n")
    await client.ask(b"AT+CMEE=3\r\n", b"\r\n+CME ERROR: Incorrect parameters\r\n")
    await client.ask(b"AT+CMEE=0\r\n", OK)
    await client.ask(b"AT+CMEE=?\r\n", info(b"+CMEE: (0-2)"))


async def test_unknown_commands_answer_plain_error(slm: tuple[FakeModem, Client]) -> None:
    _, client = slm
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"AT+NOSUCH\r\n", ERROR)
    await client.ask(b"AT%NOSUCH=1\r\n", ERROR)
    await client.ask(b"AT+CGMI?\r\n", ERROR)


async def test_slm_grammar_check_rejects_basic_commands(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    # The SLM has no echo command: ATE0/ATE1 fail its grammar check, whatever AT+CMEE says.
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"ATE0\r\n", ERROR)
    await client.ask(b"ATE1\r\n", ERROR)
    await client.ask(b"AT+CGMI!\r\n", ERROR)
    await client.ask(b"hello\r\n", ERROR)
    assert fake.state.echo is False


# ---- line discipline


async def test_slm_needs_cr_lf(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    # A lone CR is an ordinary character: "AT\rAT+CGMI" is one (invalid) command line.
    client.write(b"AT\r")
    await client.ask(b"AT+CGMI\r\n", ERROR)
    assert fake.commands == ["AT\rAT+CGMI"]
    # CR LF inside quotes does not end the line either.
    await client.ask(b'AT+CMEE=1\r\nAT+CGDCONT=1,"IP","a\r\nb"\r\n', OK + b"\r\n+CME ERROR: 50\r\n")
    assert fake.commands[-1] == 'AT+CGDCONT=1,"IP","a\r\nb"'


async def test_stray_line_endings_and_leading_bytes_are_ignored(
    slm: tuple[FakeModem, Client],
) -> None:
    fake, client = slm
    await client.ask(b"\r\n\r\n\n\rAT\r\n\r\n\n", OK)
    await client.ask(b"xyzAT+CGMM\r\n", info(b"nRF9160-SICA"))
    await client.ask(b"AT+CGMX\x08I\r\n", info(b"Nordic Semiconductor ASA"))
    assert fake.commands == ["AT", "xyzAT+CGMM", "AT+CGMI"]


async def test_non_ascii_input_never_breaks_the_fake(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"\xff\x00\xfe\x80AT\r\n", OK)
    await client.ask(b"\xc3\xa9\xff\r\n", ERROR)
    await client.ask(b'AT+CGDCONT=1,"IP","\xff"\r\n', ERROR)
    await client.ask(b"AT\r\n", OK)
    assert len(fake.commands) == 4


async def test_generic_dialect_line_rules_and_echo(generic: tuple[FakeModem, Client]) -> None:
    fake, client = generic
    # V.250 defaults: echo on, CR terminates, a following LF is a stray byte.
    await client.ask(b"AT\r\n", b"AT\r" + OK)
    await client.ask(b"AT+CGMI\r", b"AT+CGMI\r" + info(b"atbridge"))
    await client.ask(b"ATE0\r", b"ATE0\r" + OK)
    await client.ask(b"AT\r", OK)
    await client.ask(b"ATE1\r", OK)
    await client.ask(b"AT+CGMM\r", b"AT+CGMM\r" + info(b"Fake 3GPP modem"))
    # A line without the AT prefix is ignored (echoed, never answered).
    await client.ask(b"hello\rAT\r", b"hello\rAT\r" + OK)
    await client.ask(b"ATE2\r", b"ATE2\r" + ERROR)
    # Not quote-aware: CR ends the line, and the unclosed quote makes it a syntax error.
    await client.ask(b'AT+CGDCONT=1,"IP","apn\r', b'AT+CGDCONT=1,"IP","apn\r' + ERROR)
    assert fake.commands[-4:] == ["hello", "AT", "ATE2", 'AT+CGDCONT=1,"IP","apn']


async def test_set_echo_returns_the_line_exactly(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    fake.set_echo(True)
    await client.ask(b"AT+CGMM\r\n", b"AT+CGMM\r\n" + info(b"nRF9160-SICA"))
    await client.ask(b"\r\nAT\r\n", b"AT\r\n" + OK)
    fake.set_echo(False)
    await client.ask(b"AT\r\n", OK)


async def test_overlong_line_is_an_error(slm: tuple[FakeModem, Client]) -> None:
    _, client = slm
    await client.ask(b"AT+CGMI" + b"X" * 5000 + b"\r\n", ERROR)
    await client.ask(b"AT\r\n", OK)


# ---- registration


async def test_cfun1_registers_after_the_delay(start_fake: Start) -> None:
    fake, client = await start_fake("nrf91-slm", registration_delay=0.05)
    loop = asyncio.get_running_loop()
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CFUN?\r\n", info(b"+CFUN: 0"))
    await client.ask(b"AT+CEREG=1\r\n", OK)
    started = loop.time()
    await client.ask(b"AT+CFUN=1\r\n", OK + b"\r\n+CEREG: 2\r\n")
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 1,2"))
    await client.expect(b"\r\n+CEREG: 1\r\n")
    assert loop.time() - started >= 0.05
    await client.ask(b"AT+CFUN?\r\n", info(b"+CFUN: 1"))
    await client.ask(b"AT+CFUN=4\r\n", OK + b"\r\n+CEREG: 0\r\n")
    await client.ask(b"AT+CFUN=?\r\n", info(b"+CFUN: (0,1,4)"))
    assert fake.state.stat == 0


async def test_cereg_read_and_urc_shapes(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 0,0"))
    await client.ask(b"AT+CEREG=?\r\n", info(b"+CEREG: (0-5)"))
    await client.ask(b"AT+CEREG=2\r\n", OK)
    await client.ask(
        b"AT+CFUN=1\r\n",
        OK + b"\r\n+CEREG: 2\r\n" + b"\r\n+CEREG: 1," + REGISTERED_CELL + b"\r\n",
    )
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 2,1," + REGISTERED_CELL))
    await client.ask(b"AT+CEREG=1\r\n", OK)
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 1,1"))
    fake.set_registration(5)
    await client.expect(b"\r\n+CEREG: 5\r\n")
    await client.ask(b"AT+CEREG=5\r\n", OK)
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 5,5," + REGISTERED_CELL))
    fake.set_psm("00100001", "00000110")
    await client.ask(
        b"AT+CEREG?\r\n", info(b"+CEREG: 5,5," + REGISTERED_CELL + b',,,"00100001","00000110"')
    )
    fake.set_registration(3, reject_cause=15)
    await client.expect(b"\r\n+CEREG: 3,,,,0,15\r\n")
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 5,3,,,,0,15"))
    await client.ask(b"AT+CEREG=4\r\n", OK)
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 4,3"))
    fake.set_registration(1, tac="002F", ci="0012BEEF")
    await client.expect(b'\r\n+CEREG: 1,"002F","0012BEEF",7,,,"00100001","00000110"\r\n')
    await client.ask(b"AT+CEREG=6\r\n", ERROR)


async def test_cesq_and_cops_follow_registration(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"AT+CESQ\r\n", info(b"+CESQ: 99,99,255,255,255,255"))
    await client.ask(b"AT+COPS?\r\n", info(b"+COPS: 0"))
    await client.ask(b"AT+CEREG=1\r\n", OK)
    await client.ask(b"AT+CFUN=1\r\n", OK + b"\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n")
    await client.ask(b"AT+CESQ\r\n", info(b"+CESQ: 99,99,255,255,31,62"))
    fake.set_signal(rsrp_index=39, rsrq_index=13)
    await client.ask(b"AT+CESQ\r\n", info(b"+CESQ: 99,99,255,255,13,39"))
    await client.ask(b"AT+COPS?\r\n", info(b'+COPS: 0,2,"26201",7'))
    await client.ask(b"AT+COPS=0\r\n", OK)
    await client.ask(b"AT+COPS=3,0\r\n", OK)
    await client.ask(b"AT+COPS?\r\n", info(b'+COPS: 0,0,"Fake Network",7'))
    await client.ask(b"AT+COPS=2\r\n", OK + b"\r\n+CEREG: 0\r\n")
    await client.ask(b"AT+COPS?\r\n", info(b"+COPS: 2"))
    await client.ask(b"AT+COPS=0\r\n", OK + b"\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n")


async def test_cgdcont_set_read_and_validation(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"AT+CGDCONT?\r\n", info(b'+CGDCONT: 0,"IP","","",0,0'))
    await client.ask(b'AT+CGDCONT=1,"IPV4V6","iot.example-1.com"\r\n', OK)
    await client.ask(
        b"AT+CGDCONT?\r\n",
        info(b'+CGDCONT: 0,"IP","","",0,0', b'+CGDCONT: 1,"IPV4V6","iot.example-1.com","",0,0'),
    )
    bad = [
        b'AT+CGDCONT=12,"IP","apn"',  # nRF cids are 0..11
        b'AT+CGDCONT=x,"IP","apn"',
        b'AT+CGDCONT=1,"X25","apn"',
        b"AT+CGDCONT=1,IP,apn",  # strings must be quoted
        b'AT+CGDCONT=1,"IP","bad apn"',
        b'AT+CGDCONT=1,"IP","' + b"a" * 101 + b'"',
        b'AT+CGDCONT=1,"IP","apn","",0,0,9',
        b"AT+CGDCONT=",
    ]
    for command in bad:
        await client.ask(command + b"\r\n", b"\r\n+CME ERROR: 50\r\n")
    await client.ask(b"AT+CGDCONT=1\r\n", OK)  # undefines cid 1
    # Registered, the default bearer shows the network's APN and an address.
    fake.set_registration(1)
    await client.ask(b"AT+CGDCONT?\r\n", info(b'+CGDCONT: 0,"IP","internet","10.0.1.1",0,0'))


# ---- faults


async def test_send_urc_and_garbage(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    fake.send_urc("+CSCON: 1")
    await client.expect(b"\r\n+CSCON: 1\r\n")
    fake.send_garbage(b"\xff\x00\xfe")
    await client.expect(b"\xff\x00\xfe")
    await client.ask(b"AT\r\n", OK)


async def test_urc_during_next_response(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    urc = '+CEREG: 1,"0A1B","01234567",7'
    fake.urc_during_next_response(urc)
    await client.ask(
        b"AT+CGMI\r\n",
        b"\r\nNordic Semiconductor ASA\r\n" + b"\r\n" + urc.encode() + b"\r\n" + OK,
    )
    # No information lines: the URC comes between the echo and the final result code.
    fake.set_echo(True)
    fake.urc_during_next_response("+CSCON: 0")
    await client.ask(b"AT\r\n", b"AT\r\n" + b"\r\n+CSCON: 0\r\n" + OK)
    await client.ask(b"AT\r\n", b"AT\r\n" + OK)


async def test_drop_next_response(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    fake.drop_next_response(2)
    client.write(b"AT+CGMI\r\nAT+CGMR\r\n")
    await fake.wait_for_command("AT+CGMR")
    # The next bytes are the answer to the third command: the first two got nothing.
    await client.ask(b"AT+CGMM\r\n", info(b"nRF9160-SICA"))
    fake.set_echo(True)
    fake.drop_next_response()
    client.write(b"AT\r\n")
    await client.ask(b"AT+CGMM\r\n", b"AT\r\n" + b"AT+CGMM\r\n" + info(b"nRF9160-SICA"))


async def test_delay_next_response(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    loop = asyncio.get_running_loop()
    fake.delay_next_response(0.05)
    started = loop.time()
    client.write(b"AT+CGMM\r\nAT\r\n")
    await fake.wait_for_command("AT+CGMM")
    # A URC sent while the modem is busy goes out before the delayed response; the second
    # command waits behind the first.
    fake.send_urc("+CSCON: 1")
    await client.expect(b"\r\n+CSCON: 1\r\n" + info(b"nRF9160-SICA") + OK)
    assert loop.time() - started >= 0.05
    assert fake.commands == ["AT+CGMM", "AT"]


async def test_reboot_resets_state_and_sends_banner(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    fake.set_echo(True)
    await client.ask(b"AT+CMEE=1\r\n", b"AT+CMEE=1\r\n" + OK)
    await client.ask(b"AT+CEREG=1\r\n", b"AT+CEREG=1\r\n" + OK)
    await client.ask(
        b"AT+CFUN=1\r\n", b"AT+CFUN=1\r\n" + OK + b"\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n"
    )
    fake.reboot()
    await client.expect(b"Ready\r\n")
    # Echo off again, CMEE 0, CFUN 0, not registered, URCs off.
    await client.ask(b"AT+CIMI\r\n", ERROR)
    await client.ask(b"AT+CFUN?\r\n", info(b"+CFUN: 0"))
    await client.ask(b"AT+CEREG?\r\n", info(b"+CEREG: 0,0"))
    fake.reboot(banner="INIT ERROR")
    await client.expect(b"INIT ERROR\r\n")
    fake.reboot(banner=b"\r\nRDY\r\n")
    await client.expect(b"\r\nRDY\r\n")


async def test_reboot_loses_the_command_in_progress(start_fake: Start) -> None:
    fake, client = await start_fake("nrf91-slm", registration_delay=30.0, cfun=1)
    await client.expect(b"Ready\r\n")
    fake.delay_next_response(30.0)
    client.write(b"AT+CGMI\r\n")
    await fake.wait_for_command("AT+CGMI")
    fake.reboot()
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CGMM\r\n", info(b"nRF9160-SICA"))
    assert fake.state.stat == 2  # power-on CFUN=1 searches again, its timer restarted


async def test_slm_xreset_answers_ok_then_reboots(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"AT+CMEE=1\r\n", OK)
    await client.ask(b"AT#XRESET\r\n", OK + b"Ready\r\n")
    await client.ask(b"AT+CMEE?\r\n", info(b"+CMEE: 0"))
    # Paced, the OK still leaves in full before the reset.
    fake.set_baud(9600)
    await client.ask(b"AT#XRESET\r\n", OK + b"Ready\r\n")


async def test_pacing_holds_both_directions_to_the_line_rate(start_fake: Start) -> None:
    baud = 9600
    rate = baud / 10
    fake, client = await start_fake("nrf91-slm", baud=baud)
    loop = asyncio.get_running_loop()
    await client.expect(b"Ready\r\n")
    command = b"AT+CGMI\r\n"
    response = info(b"Nordic Semiconductor ASA")
    client.arrivals.clear()
    started = loop.time()
    client.write(command)
    await client.expect(response)
    finished = loop.time()
    first_arrival = client.arrivals[0][0]
    # The modem acts only once the command's last byte is in, and each answer byte takes
    # its 10 bit times on the wire.
    assert first_arrival - started >= len(command) / rate
    assert finished - started >= (len(command) + len(response)) / rate
    assert fake.baud == baud
    fake.set_baud(None)
    await client.ask(b"AT\r\n", OK)


async def test_hot_line_polls_for_a_while_after_each_byte_then_sleeps(
    start_fake: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes import wire

    def spinning(fake: FakeModem) -> bool:
        return fake._hot is not None and fake._hot.spinning

    monkeypatch.setattr(wire, "HOT_LINE_SECONDS", 3600.0)
    fake, client = await start_fake("nrf91-slm", baud=115200, hot_line=True)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT+CGMI\r\n", info(b"Nordic Semiconductor ASA"))
    assert spinning(fake)  # polling after its output
    await fake.stop()
    assert not spinning(fake)
    monkeypatch.setattr(wire, "HOT_LINE_SECONDS", 0.0)
    fake, client = await start_fake("nrf91-slm", baud=115200, hot_line=True)
    await client.expect(b"Ready\r\n")
    await client.ask(b"AT\r\n", OK)
    assert not spinning(fake)  # the hot time is over: back to sleeping in the kernel
    monkeypatch.setattr(wire, "HOT_LINE_SECONDS", 3600.0)
    unpaced, other = await start_fake("nrf91-slm", hot_line=True)
    await other.expect(b"Ready\r\n")
    await other.ask(b"AT\r\n", OK)
    assert not spinning(unpaced)  # only a paced line is kept hot


async def test_pacing_applies_to_urcs_and_stops_when_cleared(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    loop = asyncio.get_running_loop()
    fake.set_baud(115200)
    garbage = bytes(range(256)) * 2
    started = loop.time()
    fake.send_garbage(garbage)
    await client.expect(garbage)
    assert loop.time() - started >= len(garbage) / 11520
    fake.set_baud(None)
    await client.ask(b"AT\r\n", OK)


# ---- scripting hooks


async def test_on_command_overrides(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    await client.ask(b"AT+CMEE=1\r\n", OK)
    fake.on_command("AT+CGATT", Response.error(30), times=1)
    await client.ask(b"AT+CGATT=1\r\n", b"\r\n+CME ERROR: 30\r\n")
    await client.ask(b"AT+CGATT=1\r\n", ERROR)  # unknown to this fake once the override is used

    def model(fake: FakeModem, cmd: Command) -> Response | None:
        if cmd.kind is Kind.TEST:
            return Response.ok("+CGMM: (custom)")
        result = fake.run_default(cmd)
        assert isinstance(result, Response)
        return result

    fake.on_command("+cgmm", model)
    await client.ask(b"AT+CGMM=?\r\n", info(b"+CGMM: (custom)"))
    await client.ask(b"AT+CGMM\r\n", info(b"nRF9160-SICA"))
    # An override wins over the SLM grammar check, so a test can script anything.
    fake.on_command("ATE", lambda fake, cmd: fake.run_default(cmd))
    await client.ask(b"ATE1\r\n", OK)  # echo starts with the next line
    fake.clear_on_command("ATE")
    await client.ask(b"ATE0\r\n", b"ATE0\r\n" + ERROR)


async def test_async_handler_reads_a_binary_payload(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm

    async def send(fake: FakeModem, cmd: Command) -> Response:
        size = cmd.int_arg(0)
        fake.write_raw(b"\r\n> ")
        payload = await fake.read_raw(size)
        return Response.ok(f"+TESTSEND: {len(payload)},{payload.hex()}")

    fake.on_command("+TESTSEND", send)
    client.write(b"AT+TESTSEND=6\r\n")
    await client.expect(b"\r\n> ")
    await client.ask(b"OK\r\n\x00\xff", info(b"+TESTSEND: 6,4f4b0d0a00ff"))
    await client.ask(b"AT\r\n", OK)
    assert fake.commands == ["AT+TESTSEND=6", "AT"]


async def test_data_mode_primitives(slm: tuple[FakeModem, Client]) -> None:
    """What a data-mode dialect script needs: OK first, raw bytes until a terminator, URCs
    held meanwhile and delivered after the exit notification."""
    fake, client = slm

    async def data_mode(fake: FakeModem, cmd: Command) -> None:
        fake.respond_now(Response.ok())
        fake.hold_urcs(True)
        data = await fake.read_until(b"+++")
        fake.write_raw(f"\r\n#XDATAMODE: 0,{len(data)}\r\n".encode())  # a response, not a URC
        fake.hold_urcs(False)

    fake.on_command("#XSEND", data_mode)
    await client.ask(b"AT#XSEND\r\n", OK)
    fake.send_urc("+CSCON: 1")
    client.write(b"AT+CGMI\r\n\xff")
    await fake.wait_for_command("AT#XSEND")
    await client.ask(b"+++", b"\r\n#XDATAMODE: 0,10\r\n\r\n+CSCON: 1\r\n")
    await client.ask(b"AT\r\n", OK)
    assert fake.commands == ["AT#XSEND", "AT"]


async def test_a_failing_handler_answers_error_and_the_fake_goes_on(
    slm: tuple[FakeModem, Client],
) -> None:
    fake, client = slm

    def broken(fake: FakeModem, cmd: Command) -> Response:
        raise RuntimeError("bug in a script")

    def explode() -> None:
        raise RuntimeError("bug in an action")

    def late_failure(fake: FakeModem, cmd: Command) -> Response:
        fake.after_response(explode)
        return Response.ok("caf\u00e9 \u2603")

    fake.on_command("+BROKEN", broken)
    fake.on_command("+LATE", late_failure)
    await client.ask(b"AT+BROKEN\r\n", ERROR)
    await client.ask(b"AT+LATE\r\n", info(b"caf\xe9 ?"))
    await client.ask(b"AT\r\n", OK)


async def test_wait_for_command(slm: tuple[FakeModem, Client]) -> None:
    fake, client = slm
    client.write(b"AT+CGMI\r\nAT+CGMR\r\n")
    assert await fake.wait_for_command(re.compile(r"AT\+CGM.")) == "AT+CGMI"
    assert await fake.wait_for_command(lambda line: line.endswith("R")) == "AT+CGMR"
    with pytest.raises(TimeoutError):
        await fake.wait_for_command("AT+NEVER", timeout=0.01)


async def test_a_dialect_object_can_be_used_without_registering(start_fake: Start) -> None:
    dialect = Dialect(
        name="test-lf",
        terminator="LF",
        boot_banner=((0.0, "RDY"), (0.0, "SMS Ready")),
        default_echo=False,
        identity=Identity(
            manufacturer="ACME",
            model="M1",
            revision="1",
            imei="490154203237518",
            imsi="001010123456789",
            iccid="1",
        ),
        handlers={"+CGMR": None, "+PING": lambda fake, cmd: Response.ok("+PONG")},
    )
    fake, client = await start_fake(dialect)
    await client.expect(b"\r\nRDY\r\n\r\nSMS Ready\r\n")
    await client.ask(b"AT+PING\n", info(b"+PONG"))
    await client.ask(b"AT+CGMR\n", ERROR)
    await client.ask(b"AT+CGMI\n", info(b"ACME"))
    await client.ask(b"AT+CGMI\r\n", ERROR)  # with LF termination the CR is part of the line
    assert "test-lf" not in DIALECTS
    assert fake.commands == ["AT+PING", "AT+CGMR", "AT+CGMI", "AT+CGMI\r"]


async def test_stop_is_idempotent_and_closes_the_pty() -> None:
    async with FakeModem("generic") as fake:
        port = fake.port
    await fake.stop()
    with pytest.raises(RuntimeError):
        fake.send_urc("+CEREG: 1")
    assert port.startswith("/dev/pts/")


# ---- the shell entry point


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_python_m_tests_fakes_serves_until_signalled(signum: signal.Signals) -> None:
    proc = await spawn("--dialect", "nrf91-slm", "--registration-delay", "0.01")
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        port = first.decode().strip()
        assert re.fullmatch(r"/dev/pts/\d+", port)
        client = Client(port)
        try:
            await client.expect(b"Ready\r\n")
            await client.ask(b"AT+CGMM\r\n", info(b"nRF9160-SICA"))
        finally:
            client.close()
        proc.send_signal(signum)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class _StubLoop:
    """Just enough of a loop for ``_Pacer``: a settable clock; timers never fire."""

    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def get_debug(self) -> bool:
        return False

    def call_at(self, when: float, callback: object, *args: object) -> asyncio.Handle:
        return asyncio.Handle(lambda: None, (), self)  # type: ignore[arg-type]

    def call_soon(self, callback: object, *args: object) -> asyncio.Handle:
        return self.call_at(self.now, callback)


def test_pacer_starts_an_answer_when_its_input_arrived_not_when_it_was_written() -> None:
    from tests.fakes.wire import Pacer

    loop = _StubLoop()
    released: list[bytes] = []
    pacer = Pacer(loop, released.append)  # type: ignore[arg-type]
    pacer.set_rate(1000.0)  # 1 ms a byte, from loop time 100.000
    loop.now = 100.001  # the fake took 1 ms to think about input that arrived at 100.000
    pacer.push(b"OK\r\n", since=100.000)
    assert pacer.drained_at() == pytest.approx(100.004)
    assert released == []
    # More output on a busy line queues behind the bytes still going out.
    pacer.push(b"xx", since=99.0)
    assert pacer.drained_at() == pytest.approx(100.006)
    # Without ``since`` an idle line starts now.
    pacer.clear()
    pacer.push(b"a")
    assert pacer.drained_at() == pytest.approx(100.002)
    # An answer that took longer to think about than to send goes out at once.
    pacer.clear()
    loop.now = 100.010
    pacer.push(b"late", since=100.001)
    assert released == [b"late"]
