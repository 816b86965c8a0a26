"""atbridge.survey: one read-only query, its raw answer kept and decoded, never raising for a no."""

from __future__ import annotations

from atbridge.modem import Modem
from atbridge.survey import ask
from tests.fakes import FakeModem
from tests.fakes.grammar import Response


async def test_an_answer_keeps_the_raw_lines_and_the_decoded_fields() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake, await Modem.open(fake.port) as modem:
        answer = await ask(modem, "AT+CFUN?", origin=0.0)
    assert answer.ok and answer.final == "OK"
    assert answer.lines == ("+CFUN: 0",)
    assert answer.fields == {"functional_mode": 0}
    assert answer.seconds >= 0
    as_json = answer.to_json()
    assert as_json["raw"] == ["+CFUN: 0"] and as_json["error"] is None


async def test_a_refused_query_is_an_answer_with_the_reason() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake, await Modem.open(fake.port) as modem:
        fake.on_command("AT+CIMI", Response.error(13))
        answer = await ask(modem, "AT+CIMI")
    assert not answer.ok
    assert answer.final.startswith("+CME ERROR: 13") or answer.final == "+CME ERROR: 13"
    assert answer.error is not None and "SIM failure" in answer.error
    assert answer.fields is None


async def test_a_query_without_an_answer_is_an_answer_that_says_so() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake, await Modem.open(fake.port) as modem:
        fake.on_command("AT%XTEMP?", lambda fake, cmd: None)  # no response at all
        answer = await ask(modem, "AT%XTEMP?", timeout=0.3)
        assert answer.error == "no answer within 0.3 s"
        after = await ask(modem, "AT+CFUN?")  # the channel is usable again
    assert after.ok


async def test_cipstatus_lines_after_the_ok_belong_to_the_answer() -> None:
    """SIM800/SIM7000 print STATE: and the C: lines after OK (SIM800 manual §8.2.8)."""
    async with FakeModem(dialect="sim7000") as fake, await Modem.open(fake.port) as modem:
        answer = await ask(modem, "AT+CIPSTATUS")
    assert answer.final == "OK"
    assert any(line.startswith("STATE:") for line in answer.lines)
    assert answer.fields is not None and "state" in answer.fields
