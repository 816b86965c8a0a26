"""The ``atbridge at`` console on a real terminal (pexpect's pty) against the fake modem.

The console runs as a real process; the fake is served by this test's event loop, so
every expect is pexpect's asyncio form (``async_=True``) and each is bounded by the
spawn's timeout. The history lives in a temporary ``$XDG_STATE_HOME``.
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pexpect  # type: ignore[import-untyped]  # no stubs in the test environment
import pytest

from tests.fakes import FakeModem
from tests.test_commands_bridge import ROOT, WAIT, StartCli, atbridge, run_cli  # noqa: F401

PROMPT = "AT> "


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


@pytest.fixture
def consoles() -> Iterator[list[pexpect.spawn]]:
    started: list[pexpect.spawn] = []
    yield started
    for child in started:
        child.close(force=True)


def spawn(consoles: list[pexpect.spawn], port: str, state: Path) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATBRIDGE_")}
    env.update(XDG_STATE_HOME=str(state), COLUMNS="200", TERM="xterm")
    child = pexpect.spawn(
        sys.executable, ["-m", "atbridge", "at", "--port", port],
        cwd=str(ROOT), env=env, encoding="utf-8", timeout=WAIT,
    )  # fmt: skip
    consoles.append(child)
    return child


async def expect(child: pexpect.spawn, pattern: object) -> str:
    await child.expect(pattern, async_=True)
    return str(child.before)


async def test_the_console_edits_lines_prints_urcs_above_the_prompt_and_exits_on_ctrl_d(
    fake: FakeModem, consoles: list[pexpect.spawn], tmp_path: Path
) -> None:
    child = spawn(consoles, fake.port, tmp_path)
    await expect(child, "Ctrl-D or 'exit' to quit")
    await expect(child, PROMPT)
    child.send("AT+CG")  # half a line typed when the URC comes
    await expect(child, "AT\\+CG")
    fake.send_urc("+CEREG: 2")
    await expect(child, "\r\x1b\\[K\\+CEREG: 2\r\n")  # on its own line, above the prompt
    await expect(child, "AT> AT\\+CG")  # the prompt again, with what was typed
    child.send("MX\x7fI\r")  # the line editor: a backspace fixes the typo
    await expect(child, "Nordic Semiconductor ASA\r\nOK\r\n")
    await expect(child, PROMPT)
    child.sendeof()
    await expect(child, pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "AT+CGMI" in (tmp_path / "atbridge" / "history").read_text()


async def test_ctrl_c_cancels_the_command_not_the_console(
    fake: FakeModem, consoles: list[pexpect.spawn], tmp_path: Path
) -> None:
    child = spawn(consoles, fake.port, tmp_path)
    await expect(child, PROMPT)
    child.send("AT+CGM")
    await expect(child, "AT\\+CGM")  # the line editor has it (echoed) before the Ctrl-C
    child.sendintr()  # at the prompt: the line typed is dropped
    await expect(child, PROMPT)
    fake.drop_next_response()  # the next command waits for an answer that never comes
    child.send("AT+CGMM\r")
    await fake.wait_for_command("AT+CGMM", timeout=WAIT)
    child.sendintr()
    await expect(child, "cancelled AT\\+CGMM \\(the modem may still answer it")
    await expect(child, PROMPT)
    child.send("AT+CGMR\r")  # the console goes on, in step with the modem
    await expect(child, "mfw_nrf9160_1.3.5\r\nOK\r\n")
    child.send("exit\r")
    await expect(child, pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_errors_are_in_at_words(
    fake: FakeModem, consoles: list[pexpect.spawn], tmp_path: Path
) -> None:
    child = spawn(consoles, fake.port, tmp_path)
    await expect(child, PROMPT)
    child.send("AT+FOO\r")
    await expect(child, "\r\nERROR\r\n")
    await expect(child, "the modem answered ERROR to AT\\+FOO with no error code, although")
    await expect(child, PROMPT)
    child.send("AT+CIMI\r")  # the fake starts at CFUN=0: no SIM access
    await expect(child, "\\+CME ERROR: 13 \\(SIM failure\\)\r\n")
    child.send('AT+CGDCONT=1,"IP\r')
    await expect(child, 'atbridge: AT\\+CGDCONT=1,"IP has an unclosed quote')
    await expect(child, PROMPT)
    child.send("AT+CGMI\r")  # nothing was sent: the modem is not left inside a quote
    await expect(child, "Nordic Semiconductor ASA\r\nOK\r\n")
    child.sendeof()
    await expect(child, pexpect.EOF)
    child.close()
    assert "format_command" not in str(child.before)


async def test_the_history_is_kept_between_consoles(
    fake: FakeModem, consoles: list[pexpect.spawn], tmp_path: Path
) -> None:
    first = spawn(consoles, fake.port, tmp_path)
    await expect(first, PROMPT)
    first.send("AT+CGMR\r")
    await expect(first, "OK\r\n")
    first.sendeof()
    await expect(first, pexpect.EOF)
    first.close()
    second = spawn(consoles, fake.port, tmp_path)
    await expect(second, PROMPT)
    second.send("\x1b[A\r")  # the up arrow: the last line of the first console
    await expect(second, "mfw_nrf9160_1.3.5\r\nOK\r\n")
    second.sendeof()
    await expect(second, pexpect.EOF)


async def test_command_lines_as_arguments_say_errors_in_at_words(
    fake: FakeModem, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, "at", "--port", fake.port, "AT+FOO", "AT+CIMI", 'AT+X="a')
    assert cli.proc.returncode == 3
    assert cli.out == ["ERROR", "+CME ERROR: 13 (SIM failure)"]
    assert (
        "atbridge: the modem answered ERROR to AT+FOO with no error code, although numeric "
        "errors were asked for (AT+CMEE=1, sent when the port was opened)" in cli.stderr
    )
    assert 'atbridge: AT+X="a has an unclosed quote' in cli.stderr
    assert "Traceback" not in cli.stderr


async def test_piped_command_lines_still_end_at_the_end_of_stdin(
    fake: FakeModem, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, "at", "--port", fake.port, stdin=b"AT+CGMI\n\nAT+CGMM\n")
    assert cli.proc.returncode == 0, cli.stderr
    assert cli.out == ["Nordic Semiconductor ASA", "OK", "nRF9160-SICA", "OK"]
