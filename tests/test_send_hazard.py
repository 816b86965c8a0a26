"""What a send meets on the line (issue 12): numbers beyond any modem's range in a SIMCom
SIM7000's send and close lines, and a modem that reboots in the middle of a send.

- A ``DATA ACCEPT: <n>,<taken>`` or ``<n>, CLOSED`` with thousands of digits is a line the
  dialect does not understand, never an ``int()`` of thousands of digits (``ValueError`` in
  the read callback or the send task).
- A reboot during a send must never make the modem run the rest of the payload as AT
  commands (see the tests further down and the dialects' docstrings for what shrinks the
  window on each family).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.dialects.sim7000 import Sim7000
from atbridge.modem import Modem, Urc
from atbridge.text import escape_bytes
from tests.brokers import Mosquitto
from tests.fakes import FakeModem

HUGE = b"9" * 5000  # beyond Python's 4300-digit int-from-string limit
WAIT = 10.0


@pytest.fixture
async def sim7000() -> AsyncIterator[tuple[FakeModem, Modem, Sim7000]]:
    async with FakeModem(dialect="sim7000") as fake:
        modem = await Modem.open(fake.port, line_ending=Sim7000.line_ending)
        dialect = Sim7000(modem)
        try:
            yield fake, modem, dialect
        finally:
            dialect.detach_from_modem()
            await modem.close()


def urc_future(modem: Modem, prefix: str) -> asyncio.Future[Urc]:
    found: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()

    def check(urc: Urc) -> None:
        if not found.done():
            found.set_result(urc)

    modem.subscribe(prefix, check)
    return found


def test_a_huge_data_accept_is_no_final_result_code() -> None:
    """Before the bound, this line ended the send and ``int()`` raised in the send task."""
    modem = Modem(line_ending=Sim7000.line_ending)
    Sim7000(modem)
    events = modem.parser.feed(b"\r\nDATA ACCEPT: 0," + HUGE + b"\r\n")
    assert [type(event).__name__ for event in events] == ["Line"]
    events = modem.parser.feed(b"\r\nDATA ACCEPT: 0,12\r\n")
    assert [type(event).__name__ for event in events] == ["Final"]


async def test_a_huge_connection_number_in_closed_is_survived(
    sim7000: tuple[FakeModem, Modem, Sim7000],
) -> None:
    """Before the bound, the dialect's bare-line handler raised ``ValueError`` (the channel
    kept reading only because it guards its subscribers)."""
    fake, modem, dialect = sim7000
    line = HUGE + b", CLOSED"
    dialect._on_bare_line(Urc(line.decode(), line))  # no ValueError: not a connection of ours
    marker = urc_future(modem, "+MARK:")
    fake.write_raw(b"\r\n" + line + b"\r\n\r\n+MARK: 1\r\n")
    async with asyncio.timeout(WAIT):
        assert (await marker).text == "+MARK: 1"


# -- the password in a SIMCom send, masked by its position --------------------------------


@pytest.mark.parametrize("dialect", ["sim7000", "sim7080", "sim7600"])
async def test_the_connect_password_in_a_simcom_send_is_masked_by_position(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CONNECT goes out as the payload of ``AT+CASEND``/``AT+CIPSEND``: the send names
    where its password sits (``payload_secret_spans``), so the transcript masks it by
    position, not only by searching for its text (the second net)."""
    password = "Pw7x\r\n+++q\"'Zr9"
    named: list[bytes] = []
    command = Modem.command

    async def spying(self: Modem, line: str, **kw: Any) -> Any:
        payload, spans = kw.get("payload"), kw.get("payload_secret_spans", ())
        if payload is not None and payload[:1] == b"\x10":  # a CONNECT
            named.extend(payload[start:end] for start, end in spans)
        return await command(self, line, **kw)

    monkeypatch.setattr(Modem, "command", spying)
    transcript = tmp_path / "transcript.log"
    with Mosquitto() as broker:
        credentials = MqttCredentials.plain(
            client_id=f"masked-{dialect}",
            host="127.0.0.1",
            port=broker.port,
            username="device",
            password=password,
        )
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            config = BridgeConfig(
                port=fake.port,
                credentials=credentials,
                timeouts=Timeouts(probe=10, configure=10, attach=10, open_socket=10, connack=10),
                give_up_after=30.0,
                transcript=str(transcript),
            )
            async with Bridge(config=config) as bridge:
                await bridge.publish("hardening/masked", b"accepted", qos=1)
    assert b"".join(named) == password.encode()
    text = transcript.read_text()
    assert "***" in text
    for form in ("Pw7x", "Zr9", escape_bytes(password.encode())):
        assert form not in text, form
