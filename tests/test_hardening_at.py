"""Hardening of the AT channel (issue 12, defects 4, 6 and 7), on real ptys and brokers.

- **4**: a modem streaming garbage without line ends while a command waits grows no
  buffer: the parser discards the overlong line, the timeout report keeps a head and a
  tail and says how many bytes it elided.
- **6**: numbers of thousands of digits (``+CME ERROR``, ``#XRECV``, ``+CARECV``,
  ``+CIPRXGET`` lengths) are protocol errors of the modem, never an exception out of the
  read callback: the rest of the read is still handled.
- **7**: a password holding ``+++``, CR, LF and quotes never reaches the transcript in
  any form on nrf91-slm or a SIMCom dialect, and the broker still accepts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atbridge.at_parser import MAX_LINE
from atbridge.errors import AtTimeout
from atbridge.modem import KEEP_RECEIVED, Modem, Urc
from tests.fakes import Command, FakeModem
from tests.fakes import Response as FakeResponse

FLOOD = 8 << 20  # 8 MiB without a line end


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


@pytest.fixture
async def modem(fake: FakeModem, tmp_path: Path) -> AsyncIterator[Modem]:
    modem = await Modem.open(fake.port, line_ending="\r\n", transcript=tmp_path / "t.log")
    try:
        yield modem
    finally:
        await modem.close()


def garbage(size: int) -> bytes:
    """``size`` printable bytes with no CR or LF (and no ``>`` to look like a prompt)."""
    pattern = bytes(range(0x21, 0x7F)).replace(b">", b"")
    return (pattern * (size // len(pattern) + 1))[:size]


def urc_future(modem: Modem, prefix: str) -> asyncio.Future[Urc]:
    found: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()

    def check(urc: Urc) -> None:
        if not found.done():
            found.set_result(urc)

    modem.subscribe(prefix, check)
    return found


# -- defect 4: bounded buffering while a command waits ---------------------------------


async def test_a_garbage_flood_while_a_command_waits_grows_no_buffer(
    fake: FakeModem, modem: Modem
) -> None:
    fake.on_command("AT+CGMR", FakeResponse(lines=(), final=None), times=1)
    marker = urc_future(modem, "+MARK:")
    waiting = asyncio.ensure_future(modem.command("AT+CGMR", timeout=60))
    try:
        await fake.wait_for_command("AT+CGMR")
        fake.write_raw(garbage(FLOOD) + b"\r\n+MARK: 1\r\n")
        async with asyncio.timeout(60):
            await marker
        assert modem.bytes_read > FLOOD
        # Nothing of the flood is held: not by the parser, not for the timeout report.
        assert len(modem.parser.pending) <= MAX_LINE
        assert modem.parser.protocol_errors == 1  # the one overlong line, discarded
        pending = modem._pending
        assert pending is not None and not waiting.done()
        kept = bytes(pending.received)
        assert len(kept) <= 2 * KEEP_RECEIVED + 64
        assert kept.endswith(b"\r\n+MARK: 1\r\n") and b"bytes elided" in kept
    finally:
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    # The channel still works (after its resync).
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)


async def test_the_timeout_report_of_a_flood_is_bounded_and_names_the_elision(
    fake: FakeModem, modem: Modem
) -> None:
    def flood(fake: FakeModem, command: Command) -> None:
        fake.write_raw(garbage(1 << 20))

    fake.on_command("AT+CGMR", flood, times=1)
    with pytest.raises(AtTimeout) as caught:
        await modem.command("AT+CGMR", timeout=1.0)
    received = caught.value.received
    assert len(received) <= 2 * KEEP_RECEIVED + 64
    assert b"bytes elided]" in received
    assert received.startswith(garbage(KEEP_RECEIVED))
    assert "elided" in (caught.value.hint or "")
    assert len(str(caught.value)) < 2000


# -- defect 6: numbers beyond any modem's range -----------------------------------------

HUGE = b"9" * 5000  # beyond Python's 4300-digit int-from-string limit


def dialect_modem(name: str) -> Modem:
    """A channel configured by dialect ``name`` (its block rules and finals), not opened."""
    from atbridge.dialects import dialect_class

    cls = dialect_class(name)
    modem = Modem(line_ending=cls.line_ending)
    cls(modem)
    return modem


@pytest.mark.parametrize(
    ("dialect", "header"),
    [
        ("nrf91-slm", b"#XRECV: " + HUGE),
        ("nrf91-sm", b"#XRECV: 0,0," + HUGE),
        ("sim7000", b"+CIPRXGET: 2,0," + HUGE + b",0"),
        ("sim7600", b"+CIPRXGET: 2,0," + HUGE + b",0"),
        ("sim7080", b"+CARECV: " + HUGE + b",abc"),
    ],
)
def test_a_block_length_of_thousands_of_digits_is_a_line_not_a_crash(
    dialect: str, header: bytes
) -> None:
    parser = dialect_modem(dialect).parser
    events = parser.feed(b"\r\n" + header + b"\r\nOK\r\n")
    assert [type(event).__name__ for event in events] == ["Line", "Final"]
    # A length that parses but exceeds any modem's (1 MiB) is a counted protocol error.
    big = header.replace(HUGE, b"%d" % (1 << 30))
    assert [type(e).__name__ for e in parser.feed(b"\r\n" + big + b"\r\nOK\r\n")] == [
        "Line",
        "Final",
    ]
    assert parser.protocol_errors == 1


async def test_a_huge_error_code_fails_the_command_and_the_rest_of_the_read_is_kept(
    fake: FakeModem, modem: Modem
) -> None:
    """Before the fix, ValueError escaped into the read callback and ``+MARK`` was lost."""

    def huge_error(fake: FakeModem, command: Command) -> None:
        fake.write_raw(b"\r\n+CME ERROR: " + HUGE + b"\r\n\r\n+MARK: 2\r\n")

    fake.on_command("AT+CGMR", huge_error, times=1)
    marker = urc_future(modem, "+MARK:")
    with pytest.raises(Exception) as caught:
        await modem.command("AT+CGMR", timeout=5)
    from atbridge.errors import ModemError

    assert isinstance(caught.value, ModemError)
    assert caught.value.kind == "CME" and caught.value.code is None
    async with asyncio.timeout(5):
        assert (await marker).text == "+MARK: 2"


async def test_a_huge_xrecv_length_through_the_slm_dialect_is_survived(
    fake: FakeModem, modem: Modem
) -> None:
    from atbridge.dialects.nrf91_slm import Nrf91Slm

    dialect = Nrf91Slm(modem)
    try:

        def huge_recv(fake: FakeModem, command: Command) -> None:
            fake.write_raw(b"\r\n#XRECV: " + HUGE + b"\r\nOK\r\n\r\n+MARK: 3\r\n")

        fake.on_command("AT+CGMR", huge_recv, times=1)
        marker = urc_future(modem, "+MARK:")
        response = await modem.command("AT+CGMR", timeout=5)
        assert response.final == "OK" and response.data is None
        async with asyncio.timeout(5):
            assert (await marker).text == "+MARK: 3"
    finally:
        dialect.detach_from_modem()


# -- defect 7: secrets masked by where they sit -----------------------------------------

#: Fragments no transcript holds by chance; joined by what the SLM must send apart.
FRAGMENTS = ("ZqW8k", 'Xv"Kw9,Jr', "YpT4m")


def leaks(text: str, password: str) -> list[str]:
    """Every form of ``password`` or its fragments that ``text`` (a transcript) holds."""
    from atbridge.text import escape_bytes

    forms = {password, escape_bytes(password.encode())}
    for fragment in FRAGMENTS:
        forms |= {fragment, escape_bytes(fragment.encode())}
    return sorted(form for form in forms if form in text)


def bridge_config(fake: FakeModem, port: int, password: str, transcript: Path) -> object:
    from atbridge.config import BridgeConfig, Timeouts
    from atbridge.credentials import MqttCredentials

    credentials = MqttCredentials.plain(
        client_id="hardening", host="127.0.0.1", port=port, username="device", password=password
    )
    timeouts = Timeouts(
        probe=10, configure=10, attach=10, activate=10, open_socket=10, connack=10, close=5
    )
    return BridgeConfig(
        port=fake.port,
        credentials=credentials,
        timeouts=timeouts,
        give_up_after=30.0,
        transcript=str(transcript),
    )


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7080", "sim7600"])
async def test_a_password_with_plus_quotes_and_commas_is_masked_and_accepted(
    dialect: str, tmp_path: Path
) -> None:
    from atbridge.bridge import Bridge
    from tests.brokers import Mosquitto

    password = f"{FRAGMENTS[0]}+++{FRAGMENTS[1]}'+{FRAGMENTS[2]}"
    transcript = tmp_path / "transcript.log"
    with Mosquitto(users={"device": password}) as broker:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            config = bridge_config(fake, broker.port, password, transcript)
            async with Bridge(config=config) as bridge:  # type: ignore[arg-type]
                await bridge.publish("hardening/masked", b"accepted", qos=1)
    text = transcript.read_text()
    assert "AT" in text and leaks(text, password) == []


@pytest.mark.parametrize("dialect", ["nrf91-slm", "nrf91-sm", "sim7080"])
async def test_a_password_with_cr_lf_and_plus_runs_is_masked(dialect: str, tmp_path: Path) -> None:
    """A password file cannot hold CR or LF: an anonymous broker accepts the CONNECT."""
    from atbridge.bridge import Bridge
    from tests.brokers import Mosquitto

    password = f'{FRAGMENTS[0]}\r\n+++{FRAGMENTS[1]}"\r{FRAGMENTS[2]}\n++'
    transcript = tmp_path / "transcript.log"
    with Mosquitto() as broker:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            config = bridge_config(fake, broker.port, password, transcript)
            async with Bridge(config=config) as bridge:  # type: ignore[arg-type]
                await bridge.publish("hardening/masked", b"accepted", qos=1)
    text = transcript.read_text()
    assert "AT" in text and leaks(text, password) == []
