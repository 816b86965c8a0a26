"""The channel's two ways to send what does not fit one ``> `` prompt or one line.

- a quoted parameter holding CR/LF (a PEM certificate in ``AT%CMNG``: nRF91 AT Commands
  Reference, ``%CMNG`` set command), sent with ``multiline=True`` and masked by position;
- a payload the modem asks for with a whole line (the SIM7080's ``DOWNLOAD`` after
  ``AT+CFSWFILE``: SIM7080 Series AT Command Manual, ``AT+CFSWFILE``), with ``prompt_line``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atbridge.at_syntax import format_command, quote_text
from atbridge.errors import ConfigurationError
from atbridge.modem import Modem
from tests.fakes import Command, FakeModem
from tests.fakes import Response as FakeResponse

PEM = "-----BEGIN CERTIFICATE-----\r\nMIIBszCCAVmgAwIBAgIU\r\n-----END CERTIFICATE-----\r\n"


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


async def test_a_multiline_quoted_parameter_reaches_the_modem_whole(
    fake: FakeModem, tmp_path: Path
) -> None:
    path = tmp_path / "t.log"
    async with await Modem.open(fake.port, line_ending="\r\n", transcript=path) as modem:
        await modem.command("AT+CFUN=4")
        line = f"AT%CMNG=0,42,0,{quote_text(PEM, name='CA certificate')}"
        start = line.index('"') + 1
        await modem.command(line, multiline=True, secret_spans=((start, len(line) - 1),))
        listed = await modem.command("AT%CMNG=1,42")
        read = await modem.command("AT%CMNG=2,42,0")
    assert listed.values("%CMNG:")[0].startswith('42,0,"')
    assert PEM in read.lines[0] or PEM.replace("\r\n", "") in "".join(read.lines)
    transcript = path.read_text()
    assert "MIIBszCCAVmgAwIBAgIU" not in transcript.split("AT%CMNG=2")[0]
    assert '***"' in transcript


async def test_line_breaks_are_refused_outside_quotes_and_without_multiline(
    fake: FakeModem,
) -> None:
    async with await Modem.open(fake.port, line_ending="\r\n") as modem:
        before = list(fake.commands)
        with pytest.raises(ConfigurationError, match="exactly one command line"):
            await modem.command(f"AT%CMNG=0,42,0,{quote_text(PEM)}")
        with pytest.raises(ConfigurationError, match="exactly one command line"):
            await modem.command('AT%CMNG=0,42,0,"x"\r\nAT+CFUN=0', multiline=True)
        with pytest.raises(ConfigurationError, match="end of the parameter"):
            quote_text('-----BEGIN\r\n"\r\nAT+CFUN=0\r\n')
        with pytest.raises(ConfigurationError, match="end of the parameter"):
            quote_text("key\\x")
        assert fake.commands == before


async def test_a_payload_asked_for_by_a_whole_line_goes_after_it() -> None:
    received: list[bytes] = []

    async def cfswfile(fake: FakeModem, command: Command) -> FakeResponse | None:
        length = int(command.params[3].text)
        fake.discard_stray_line_feed()
        fake.write_raw(b"\r\nDOWNLOAD\r\n")
        received.append(await fake.read_raw(length))
        return FakeResponse.ok()

    async with FakeModem(dialect="sim7080") as fake:
        fake.on_command("AT+CFSWFILE", cfswfile)
        async with await Modem.open(fake.port, line_ending="\r\n") as modem:
            data = b"> not a prompt\r\nOK\r\nbinary\x00\xff"
            line = format_command("AT+CFSWFILE", 3, "ca.pem", 0, len(data), 10000)
            response = await modem.command(line, payload=data, prompt_line="DOWNLOAD")
    assert response.final == "OK"
    assert received == [data]
