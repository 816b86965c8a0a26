"""V.250 command concatenation in the fakes: several commands after one ``AT`` on one line.

ITU-T V.250 §5.2.1 and the SIMCom manuals (SIM800 Series AT Command Manual V1.09 §1.4.4) say
the commands of one line run in order, each one's information text comes out in order, the line
has one final result code, and the first error ends the line with that error (the rest does not
run). The nRF91 fakes keep one command a line (Nordic documents no concatenation; see
``tests/fakes/nrf91_slm.py``). Every expectation is the exact bytes through the fake's pty.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.fakes import Command, FakeModem, Response
from tests.fakes.grammar import split_commands
from tests.pty_client import Client

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
SIM7080_BANNER = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n"

Start = Callable[[str], Awaitable[tuple[FakeModem, Client]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start fakes with a client each (banner read); all stopped and closed afterwards."""
    running: list[tuple[FakeModem, Client]] = []

    async def begin(dialect: str) -> tuple[FakeModem, Client]:
        fake = FakeModem(dialect)
        await fake.start()
        client = Client(fake.port)
        running.append((fake, client))
        banner = {"sim7080": SIM7080_BANNER, "nrf91-sm": b"Ready\r\n", "nrf91-slm": b"Ready\r\n"}
        await client.expect(banner.get(dialect, b""))
        return fake, client

    yield begin
    for fake, client in running:
        client.close()
        await fake.stop()


def info(*lines: str) -> bytes:
    return b"".join(b"\r\n" + text.encode() + b"\r\n" for text in lines)


# ---- the split itself


@pytest.mark.parametrize(
    ("line", "pieces"),
    [
        ("AT", ["AT"]),
        ("AT+CIFSR;E0", ["AT+CIFSR", "ATE0"]),
        ("ATE0V1+CMEE=1;&W", ["ATE0", "ATV1", "AT+CMEE=1", "AT&W"]),
        ("ATS3=13S0?E1", ["ATS3=13", "ATS0?", "ATE1"]),
        ('AT+A="x;y";;+B;', ['AT+A="x;y"', "AT+B"]),
        ('at+a="1;2","3;4";+b?', ['at+a="1;2","3;4"', "at+b?"]),
        ("ATD*99#;", ["ATD*99#;"]),
        ("ATE0!x", ["ATE0", "AT!x"]),
        ('AT+A="open;+B', ['AT+A="open;+B']),
    ],
)
def test_a_line_is_cut_into_its_commands(line: str, pieces: list[str]) -> None:
    assert split_commands(line) == pieces


# ---- through a SIMCom fake (echo on, as the SIMCom modules power on)


async def test_commands_answer_in_order_with_one_final_result(start: Start) -> None:
    fake, client = await start("sim7080")
    await client.ask(
        b"AT+CGMI;+CGMM\r",
        b"AT+CGMI;+CGMM\r" + info("SIMCOM INCORPORATED", "SIMCOM_SIM7080G") + OK,
    )
    assert fake.commands == ["AT+CGMI;+CGMM"]  # the line as received


async def test_an_extended_command_then_a_basic_one(start: Start) -> None:
    """TinyGSM's ``AT+CIFSR;E0``: the bare address of AT+CIFSR, then the OK that E0 adds."""
    fake, client = await start("sim7000")
    await client.expect(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n")
    await client.ask(b'AT+CSTT="internet"\r', b'AT+CSTT="internet"\r' + OK)
    await client.ask(b"AT+CIICR\r", b"AT+CIICR\r" + OK)
    await client.ask(b"AT+CIFSR;E0\r", b"AT+CIFSR;E0\r" + info(fake.network.ip) + OK)
    await client.ask(b"AT\r", OK)  # E0 ran: no echo any more


async def test_the_first_error_ends_the_line(start: Start) -> None:
    _, client = await start("sim7080")
    await client.ask(b"AT+CMEE=1;+NOSUCH;E0\r", b"AT+CMEE=1;+NOSUCH;E0\r" + ERROR)
    # AT+CMEE=1 ran, ATE0 did not: the next line is still echoed.
    await client.ask(b"AT+CMEE?\r", b"AT+CMEE?\r" + info("+CMEE: 1") + OK)


async def test_an_error_is_shaped_by_cmee_and_stops_what_follows(start: Start) -> None:
    _, client = await start("sim7080")
    await client.ask(
        b"AT+CMEE=2;+CGMI;+CFUN=9;E0\r",
        b"AT+CMEE=2;+CGMI;+CFUN=9;E0\r"
        + info("SIMCOM INCORPORATED")
        + b"\r\n+CME ERROR: Incorrect parameters\r\n",
    )
    await client.ask(b"AT\r", b"AT\r" + OK)  # still echoed: E0 never ran


async def test_basic_commands_back_to_back_run_until_one_is_unknown(start: Start) -> None:
    _, client = await start("sim7080")
    await client.ask(b"ATE0Q9\r", b"ATE0Q9\r" + ERROR)  # ATQ9 is unknown to the fake
    await client.ask(b"AT\r", OK)  # but ATE0 before it ran


async def test_urcs_a_command_causes_follow_the_final_result_of_the_line(start: Start) -> None:
    _, client = await start("sim7080")
    await client.ask(b"AT+CEREG=1;+CFUN=0\r", b"AT+CEREG=1;+CFUN=0\r" + OK + info("+CEREG: 0"))


async def test_a_semicolon_inside_quotes_separates_nothing(start: Start) -> None:
    fake, client = await start("sim7080")

    def echo_back(_fake: FakeModem, cmd: Command) -> Response:
        return Response.ok(f"+XECHO: {cmd.str_arg(0)}")

    fake.on_command("+XECHO", echo_back)
    await client.ask(
        b'AT+XECHO="a;b";+XECHO="c"\r',
        b'AT+XECHO="a;b";+XECHO="c"\r' + info("+XECHO: a;b", "+XECHO: c") + OK,
    )
    await client.ask(b'AT+XECHO="x;y"\r', b'AT+XECHO="x;y"\r' + info("+XECHO: x;y") + OK)


async def test_a_command_that_waits_keeps_the_order(start: Start) -> None:
    """A handler that waits (as one that waits on the network) holds the rest of the line
    back; the rest then runs in order and the line still ends with one OK."""
    fake, client = await start("sim7080")
    release = asyncio.Event()

    async def slow(_fake: FakeModem, _cmd: Command) -> Response:
        await release.wait()
        return Response.ok("+XSLOW: done")

    fake.on_command("+XSLOW", slow)
    client.write(b"AT+XSLOW;+CGMI\r")
    await client.expect(b"AT+XSLOW;+CGMI\r")
    await fake.wait_for_command("AT+XSLOW;+CGMI")
    assert client.pending() == b""  # nothing of the line answered while the first waits
    release.set()
    await client.expect(info("+XSLOW: done", "SIMCOM INCORPORATED") + OK)


async def test_a_dropped_response_drops_the_whole_line(start: Start) -> None:
    fake, client = await start("sim7080")
    fake.drop_next_response()
    client.write(b"AT+CGMI;+CGMM\r")
    await client.expect(b"AT+CGMI;+CGMM\r")
    await client.ask(b"AT\r", b"AT\r" + OK)  # nothing of the dropped line came before it


# ---- the nRF91 fakes keep one command a line (not documented by Nordic)


@pytest.mark.parametrize(("dialect", "end"), [("nrf91-sm", b"\r"), ("nrf91-slm", b"\r\n")])
async def test_nrf91_refuses_a_concatenated_line(start: Start, dialect: str, end: bytes) -> None:
    fake, client = await start(dialect)
    await client.ask(b"AT+CGMI;+CGMM" + end, ERROR)
    await client.ask(b"AT+CMEE=1" + end, OK)
    # A set command passes the grammar check whole: one command, its parameter malformed.
    await client.ask(b"AT+CFUN=0;+CEREG=5" + end, b"\r\n+CME ERROR: 50\r\n")
    assert fake.state.cereg_n == 0
