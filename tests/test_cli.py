"""The command line: instant help, and the commands against the fake modem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atbridge.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "asyncio",
    "serial",
    "serial_asyncio_fast",
    "transitions",
    "rich",
    "matplotlib",
    "argcomplete",
)


def test_help_imports_no_asyncio_serial_or_transitions() -> None:
    probe = (
        "import sys\n"
        "from atbridge.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, cwd=ROOT
    ).stdout
    assert "usage: atbridge" in out
    assert "LOADED []" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: atbridge {command}" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "atbridge"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert out.startswith("atbridge ")


def test_a_bug_exits_1_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lifecycle stopped by an exception that is not ours is a bug: exit 1, traceback shown."""
    from atbridge.cli import main
    from atbridge.commands import publish
    from atbridge.errors import Failed

    async def broken(args: object) -> int:
        def lifecycle_step() -> None:
            raise AssertionError("a lifecycle bug")

        try:
            lifecycle_step()
        except AssertionError as bug:
            raise Failed(bug) from None
        return 0

    monkeypatch.setattr(publish, "_main", broken)
    code = main(["publish", "--port", "/dev/null", "--broker", "h", "--topic", "t", "-m", "x"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "in lifecycle_step" in err  # where the bug happened
    assert "AssertionError: a lifecycle bug" in err
    assert "internal error" in err


def test_a_reader_that_goes_away_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``atbridge fsm --mermaid | head -1``: a closed pipe ends the command quietly, exit 0."""
    import os

    from atbridge.cli import main

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    with os.fdopen(write_end, "w", buffering=1) as closed_pipe:  # each line written at once
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        assert main(["fsm", "--mermaid"]) == 0
