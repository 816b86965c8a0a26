"""What ``atbridge`` says about a port that is wrong, busy or silent, through the real CLI
(issue 14).

Each test runs ``python -m atbridge at`` (or ``info``) as a real process (the fixtures of
``test_commands_bridge``) against what the user may have given as ``--port``: a regular
file, ``/dev/null``, a directory, a port another process holds (the fake modem's pty,
locked by a channel this test opened), and a silent modem (a pty nobody answers on,
from ``os.openpty()``). Each gets the message that fits it, and the exit code of its kind
(2: fix the arguments; 5: a timeout).
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from atbridge.modem import Modem
from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401 - fixtures
    StartCli,
    atbridge,
    fake,
    run_cli,
)

NOT_A_PORT_HINT = "give --port the modem's serial device (`atbridge ports` lists them"


async def test_a_regular_file_is_not_a_serial_port(atbridge: StartCli, tmp_path: Path) -> None:
    path = tmp_path / "modem.log"
    path.write_text("not a modem\n")
    cli = await run_cli(atbridge, "at", "--port", str(path), "AT")
    assert cli.proc.returncode == 2, cli.stderr
    assert f"atbridge: {path} is a regular file, not a serial port" in cli.stderr
    assert NOT_A_PORT_HINT in cli.stderr
    assert "ioctl" not in cli.stderr


async def test_dev_null_is_a_device_that_is_not_a_terminal(atbridge: StartCli) -> None:
    cli = await run_cli(atbridge, "at", "--port", "/dev/null", "AT")
    assert cli.proc.returncode == 2, cli.stderr
    assert "/dev/null is a device that is not a terminal, not a serial port" in cli.stderr
    assert "ioctl" not in cli.stderr and "permissions" not in cli.stderr


async def test_a_directory_is_not_a_serial_port(atbridge: StartCli, tmp_path: Path) -> None:
    cli = await run_cli(atbridge, "info", "--port", str(tmp_path))
    assert cli.proc.returncode == 2, cli.stderr
    assert f"{tmp_path} is a directory, not a serial port" in cli.stderr


async def test_a_port_in_use_names_the_process_that_holds_it(
    fake: FakeModem, atbridge: StartCli
) -> None:
    """A channel of this process holds the fake's port: a second atbridge does not share it."""
    async with await Modem.open(fake.port):
        cli = await run_cli(atbridge, "at", "--port", fake.port, "AT")
    assert cli.proc.returncode == 2, cli.stderr
    assert f"atbridge: port {fake.port} is in use by PID {os.getpid()} (" in cli.stderr
    assert "python" in cli.stderr  # the holder's command line
    assert "stop the other program" in cli.stderr


async def test_the_port_is_free_again_once_closed(fake: FakeModem, atbridge: StartCli) -> None:
    async with await Modem.open(fake.port):
        pass
    cli = await run_cli(atbridge, "at", "--port", fake.port, "AT+CGMI")
    assert cli.proc.returncode == 0, cli.stderr
    assert "Nordic Semiconductor ASA" in cli.stdout


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A pty whose other end nobody reads or answers: a modem that is off."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("command", [["at", "AT"], ["info"]])
async def test_a_silent_modem_fails_within_the_commands_timeout(
    command: list[str], silent_port: str, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, command[0], "--port", silent_port, "--timeout", "1", *command[1:])
    assert cli.proc.returncode == 5, cli.stderr
    assert "atbridge: no final result to 'AT' within 1 s; received nothing" in cli.stderr
    assert "nothing answered the first AT within the command's timeout" in cli.stderr
    assert "check power, the port, the baud rate and the line ending" in cli.stderr
