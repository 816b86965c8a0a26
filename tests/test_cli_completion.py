"""Shell completion (atbridge/commands/completion.py): generated from the parser by argcomplete.

The shell's side of the protocol is played here: ``atbridge`` runs with the line typed so far in
``COMP_LINE``/``COMP_POINT`` and ``_ARGCOMPLETE`` set, and writes the candidates to the file
named by ``_ARGCOMPLETE_STDOUT_FILENAME`` (argcomplete's documented hook for tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ATBRIDGE = str(Path(sys.executable).parent / "atbridge")


def _complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "COMP_TYPE": "9",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    subprocess.run([ATBRIDGE], env=env, capture_output=True, timeout=30, check=True)
    return out.read_text().split("\n")


def test_commands_complete_from_the_parser(tmp_path: Path) -> None:
    found = _complete("atbridge p", tmp_path)
    assert {"publish", "ports", "plot"} <= {word.strip() for word in found}


def test_options_of_a_command_complete(tmp_path: Path) -> None:
    found = {word.strip() for word in _complete("atbridge info --j", tmp_path)}
    assert found == {"--json"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_hook_for_each_shell_names_atbridge(shell: str) -> None:
    out = subprocess.run(
        [ATBRIDGE, "completion", shell], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "atbridge" in out
    assert ("complete " in out) or ("compdef" in out)
