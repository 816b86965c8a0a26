"""``atbridge completion bash|zsh|fish``: shell code completing atbridge commands and options.

Completion is generated from the parser itself by ``argcomplete``: the shell
calls ``atbridge`` with the line typed so far in the environment
(``_ARGCOMPLETE``), and :func:`atbridge.cli.main` answers with the matching
commands and options before parsing anything, so completion can never list an
option the parser does not have. This command prints the hook to put in the
shell's start-up file::

    eval "$(atbridge completion bash)"            # ~/.bashrc
    eval "$(atbridge completion zsh)"             # ~/.zshrc
    atbridge completion fish > ~/.config/fish/completions/atbridge.fish
"""

from __future__ import annotations

import argparse

HELP = "print the shell code that completes atbridge commands and options (bash, zsh, fish)"

SHELLS = ("bash", "zsh", "fish")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["atbridge"], shell=args.shell))
    return 0
