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
from typing import cast

import pytest

from atbridge.cme import error_text
from atbridge.dialects.base import SIM_BUSY, SIM_NOT_POWERED, SIM_READY, Dialect
from atbridge.errors import ModemError
from atbridge.modem import Modem, Response
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


# -- the SIM, checked while configuring --------------------------------------------------------


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7080"])
async def test_no_sim_fails_at_configure_with_exit_3(dialect: str, atbridge: StartCli) -> None:
    """The nRF91 boots at CFUN=0 (its SIM unpowered), the SIM7080 at CFUN=1: both say
    "no SIM" from AT+CPIN? before any attach is waited for (the radio is never turned on).

    SimNotReady stops the lifecycle at once (no retry can put a SIM in): exit 3, and the
    SIM is asked about once, not once per retry until ``--give-up-after``."""
    async with FakeModem(dialect=dialect, registration_delay=0.05, sim=False) as fake:
        cli = await run_cli(atbridge, *publish(fake, "--give-up-after", "30"))
        assert cli.proc.returncode == 3, cli.stderr
        assert fake.commands.count("AT+CPIN?") == 1, fake.commands
        assert "no SIM: the modem answered +CME ERROR: 10 (SIM not inserted)" in cli.stderr
        assert not any(command.startswith("AT+CFUN=1") for command in fake.commands)
        assert "antenna" not in cli.stderr


async def test_a_sim_unpowered_at_cfun_0_is_judged_after_the_radio_is_on() -> None:
    """nRF91 at CFUN=0: AT+CPIN? is CME 13, which then means "not powered", not "failure";
    the attach asks again after AT+CFUN=1 and the SIM is ready."""
    from atbridge import steps
    from atbridge.dialects import open_dialect

    async with (
        FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake,
        await Modem.open(fake.port) as modem,
    ):
        dialect, _ = await open_dialect(modem)
        configured = await steps.configure(dialect, None, timeout=10)
        assert configured.sim == SIM_NOT_POWERED
        attached = await steps.attach(dialect, timeout=10)
        assert attached.registration.registered
        assert dialect.sim_state == SIM_READY
        assert fake.commands.count("AT+CPIN?") == 2


class SimAnswers:
    """A modem stand-in for the SIM check: ``AT+CPIN?`` and ``AT+CFUN?`` as a table says."""

    def __init__(self, cpin: str | ModemError, cfun: str = "1") -> None:
        self.cpin, self.cfun = cpin, cfun

    async def command(self, line: str, *, timeout: float | None = None) -> Response:
        answer = self.cpin if line == "AT+CPIN?" else f"+CFUN: {self.cfun}"
        if isinstance(answer, ModemError):
            raise answer
        return Response(line, (answer,), "OK")


def sim_checker(answers: SimAnswers) -> Dialect:
    """A bare dialect over ``answers`` (check_sim only talks to its modem)."""
    dialect = object.__new__(Dialect)
    dialect.modem = cast(Modem, answers)
    return dialect


def cme(code: int) -> ModemError:
    return ModemError(
        "AT+CPIN?", f"+CME ERROR: {code}", kind="CME", code=code, text=error_text("CME", code)
    )


@pytest.mark.parametrize(
    ("answers", "problem", "hint"),
    [
        (
            SimAnswers("+CPIN: SIM PIN"),
            "SIM PIN required: the modem answered '+CPIN: SIM PIN'",
            "AT+CPIN=",
        ),
        (SimAnswers('+CPIN: "SIM PUK"'), "SIM PUK required", "PUK from the operator"),
        (SimAnswers("+CPIN: NOT INSERTED"), "no SIM", "insert a SIM"),
        (SimAnswers("+CPIN: PH-NET PIN"), "SIM locked (PH-NET PIN)", "unlock it"),
        (SimAnswers(cme(10), cfun="0"), "no SIM: the modem answered +CME ERROR: 10", "insert"),
        (SimAnswers(cme(11)), "SIM PIN required", "AT+CPIN="),
        (SimAnswers(cme(13), cfun="1"), "SIM failure: the modem answered +CME ERROR: 13", "reseat"),
        (SimAnswers(cme(13), cfun="4"), "SIM failure", "reseat"),
        (
            SimAnswers(
                ModemError(
                    "AT+CPIN?", "+CME ERROR: SIM not inserted", kind="CME", text="SIM not inserted"
                )
            ),
            "no SIM",
            "insert",
        ),
    ],
)
async def test_each_sim_problem_is_named(answers: SimAnswers, problem: str, hint: str) -> None:
    with pytest.raises(ModemError) as caught:
        await sim_checker(answers).check_sim()
    assert caught.value.message.startswith(problem), caught.value.message
    assert hint in caught.value.hint


@pytest.mark.parametrize(
    ("answers", "state"),
    [
        (SimAnswers("+CPIN: READY"), SIM_READY),
        (SimAnswers(cme(13), cfun="0"), SIM_NOT_POWERED),  # nRF91 at CFUN=0: not a failure
        (SimAnswers(cme(14)), SIM_BUSY),  # SIM busy: still starting
        (SimAnswers("+CPIN: NOT READY"), SIM_BUSY),
        (SimAnswers(ModemError("AT+CPIN?", "ERROR")), SIM_BUSY),  # says nothing definite
    ],
)
async def test_a_sim_that_may_still_serve_lets_the_attach_go_on(
    answers: SimAnswers, state: str
) -> None:
    dialect = sim_checker(answers)
    assert await dialect.check_sim() == state
    assert dialect.sim_state == state
