"""The board strategy latches broken on the first failure; later board tests are skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil.strategy import BoardState, BoardStrategy

ROOT = Path(__file__).resolve().parent.parent


def state_of(strategy: BoardStrategy) -> BoardState:
    return strategy.state


def test_a_board_goes_unknown_ready_broken_and_stays_broken() -> None:
    strategy = BoardStrategy("/dev/ttyACM0")
    assert state_of(strategy) is BoardState.UNKNOWN
    strategy.require()
    strategy.ready()
    assert state_of(strategy) is BoardState.READY
    strategy.broken("test_a failed in call: no OK")
    strategy.broken("test_b failed in call: later")
    strategy.ready()
    assert state_of(strategy) is BoardState.BROKEN
    assert strategy.reason == "test_a failed in call: no OK"
    with pytest.raises(pytest.skip.Exception, match="broken since test_a failed"):
        strategy.require()


CASCADE = """
from atbridge.farm.plugin import Board


async def test_first(board: Board) -> None:
    async with board.open():
        raise AssertionError("the modem said nonsense")


async def test_second(board: Board) -> None:
    async with board.open():
        pass


def test_without_board() -> None:
    pass
"""


def test_a_failure_skips_later_board_tests_and_prints_the_transcript(tmp_path: Path) -> None:
    (tmp_path / "test_cascade.py").write_text(CASCADE)
    logs = tmp_path / "logs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_cascade.py"),
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--atbridge-dialect",
            "nrf91-slm",
            "--hil-log-dir",
            str(logs),
            "--rootdir",
            str(tmp_path),
            "-rs",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout
    assert "1 failed, 1 passed, 1 skipped" in out, out
    assert "board fake nrf91-slm is broken since test_first failed in call" in out, out
    assert "the modem said nonsense" in out, out
    assert f"modem transcript: {logs / 'test_first.log'}" in out, out
    assert (logs / "test_first.log").read_text().count('TX "AT') >= 1
