"""What the probe and the configure step tell the user, through the real CLI (issue 14).

A forced ``--dialect`` that does not fit the modem, and a SIM that is missing, locked
or failing, each end the command at once with what is wrong and what to do, instead of
timing out (the dialect) or waiting out the attach (the SIM). Each test runs
``python -m atbridge`` as a real process (the fixtures of ``test_commands_bridge``)
against a fake modem on a pty; the broker is never reached.
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401 - fixtures
    StartCli,
    atbridge,
    fake,
    run_cli,
)

#: Nothing listens there; no test here gets as far as the broker.
NO_BROKER = ["--broker", "127.0.0.1:1", "--give-up-after", "30"]


def publish(fake: FakeModem, *extra: str) -> list[str]:
    return ["publish", "--port", fake.port, *NO_BROKER, "-t", "t", "-m", "x", *extra]


async def test_a_forced_dialect_that_is_not_the_modem_names_the_one_to_use(
    fake: FakeModem, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, *publish(fake, "--dialect", "sim7080"))
    assert cli.proc.returncode == 2, cli.stderr
    assert "does not match the modem: this is a Nordic nRF9160" in cli.stderr
    assert "with the Serial LTE Modem" in cli.stderr
    assert "use --dialect nrf91-slm (or auto)" in cli.stderr
    assert "AT+CNACT" not in cli.stderr  # nothing of the SIM7080's was sent or blamed


@pytest.fixture
async def simcom() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        yield fake


async def test_a_nordic_dialect_forced_on_a_simcom_modem_says_it_is_simcom(
    simcom: FakeModem, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, *publish(simcom, "--dialect", "nrf91-sm"))
    assert cli.proc.returncode == 2, cli.stderr
    assert "this is a SIMCom SIM7080G" in cli.stderr
    assert "use --dialect sim7080 (or auto)" in cli.stderr
