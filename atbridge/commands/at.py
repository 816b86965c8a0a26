"""``atbridge at``: send AT commands and print the answers, or an interactive console.

Theory of operation
-------------------
With command lines as arguments, each is sent in turn and answered as a
terminal program would show it (the information lines, then the final result
code); exit 3 if any failed. Without, the lines come from standard input: piped,
one command per line until the end (exit 3 if any failed; Ctrl-C exits 130).

On a terminal it is a console (:class:`Console`): the line editor and history of
:mod:`readline` (the history kept in :func:`history_path`,
``$XDG_STATE_HOME/atbridge/history`` or ``~/.local/state/atbridge/history``).
``input()`` needs the main thread (only it gets ``KeyboardInterrupt``), so there
the asyncio loop that owns the modem runs in a second thread and each command is
handed to it. Ctrl-C while a command waits cancels that command (the modem may
still answer it: the AT channel resynchronises before the next one), Ctrl-C at
the prompt drops the line being typed, Ctrl-D (or ``exit``) ends the console with
a newline, exit 0. Notifications (URCs) are printed above the prompt, and the
prompt is drawn again with what was typed so far.

Every failure is told in AT words (:func:`error_lines`): the final result code
the modem gave, with its 27.007 meaning (``+CME ERROR: 10 (SIM not inserted)``);
a bare ``ERROR`` as the modem said it, and on stderr "the modem answered ERROR
to AT+FOO with no error code, although numeric errors were asked for
(AT+CMEE=1 ...)"; or what did not come
("no final result code to AT+COPS=? within 10 s"). A line the modem would
misread (no ``AT``, an unclosed quote that would leave the modem waiting for
the rest) is refused before it is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atbridge.commands.options import command_timeout_option, port_options

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine

    from atbridge.modem import Modem, Response, Urc

HELP = "send AT commands and print the responses (a console when none are given)"
PROMPT = "AT> "
#: Lines of history kept.
HISTORY_LENGTH = 1000


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: the modem's port (and --config)."""
    return [port_options(), command_timeout_option()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "commands",
        nargs="*",
        metavar="COMMAND",
        help='AT command lines, e.g. AT+CGMM "AT+CGDCONT?"; none: read commands from stdin '
        "(a console with line editing and history on a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    if not args.commands and sys.stdin.isatty() and sys.stdout.isatty():
        return Console(args).run()
    return eventloop.run(_main(args))


# -- the answers and errors, in AT words (pure) -----------------------------------------------


def answer_lines(response: Response) -> list[str]:
    """What a terminal shows for an answer: the information lines, then the final."""
    lines = list(response.lines)
    if response.data is not None:
        lines.append(f"<{len(response.data)} bytes of data: {response.data!r}>")
    lines.append(response.final)
    return lines


def check_line(line: str) -> None:
    """Refuse a line the modem would misread, before it is sent (ConfigurationError)."""
    from atbridge.errors import ConfigurationError

    if line.count('"') % 2:
        raise ConfigurationError(
            f"{line} has an unclosed quote: the modem would take the rest of the line, and "
            "the next ones, as the quoted text",
            hint='close the quote, e.g. AT+CGDCONT=1,"IP","internet"',
        )


def error_lines(error: BaseException, line: str) -> tuple[list[str], list[str]]:
    """``(stdout lines, stderr lines)`` for a command that failed, in AT words."""
    from atbridge.errors import AtBridgeError, AtTimeout, ModemError, ResyncFailed
    from atbridge.text import describe_bytes

    if isinstance(error, ModemError):
        if error.kind is None:  # the final as the modem said it; the words on stderr
            return [error.final], [
                f"atbridge: the modem answered ERROR to {line} with no error code, although "
                "numeric errors were asked for (AT+CMEE=1, sent when the port was opened): the "
                "command or a parameter is not accepted in this state"
            ]
        meaning = f" ({error.text})" if error.text and error.code is not None else ""
        return [f"{error.final}{meaning}"], []
    if isinstance(error, ResyncFailed):
        return [], [
            f"atbridge: the modem stopped answering: {', '.join(error.probes)} got no "
            f"answer within {error.timeout:g} s each; {line} was not sent",
            f"  what to try: {error.hint}",
        ]
    if isinstance(error, AtTimeout):
        return [], [
            f"atbridge: no final result code to {line} within {error.timeout:g} s "
            f"(received {describe_bytes(error.received)})",
            "  what to try: a network command (AT+COPS=?) can take minutes: raise --timeout; "
            "else check the port, the baud rate and the line ending",
        ]
    if isinstance(error, AtBridgeError):
        lines = [f"atbridge: {error.message}"]
        if error.hint:
            lines.append(f"  what to try: {error.hint}")
        return [], lines
    raise error


# -- one command, in the loop that owns the modem ----------------------------------------------


async def send(modem: Modem, line: str) -> tuple[list[str], list[str], bool]:
    """Send one line; ``(stdout lines, stderr lines, succeeded)``."""
    from atbridge.errors import AtBridgeError, LinkLost

    try:
        check_line(line)
        response = await modem.command(line)
    except LinkLost:
        raise
    except AtBridgeError as exc:
        out, err = error_lines(exc, line)
        return out, err, False
    return answer_lines(response), [], True


def _show(out: list[str], err: list[str]) -> None:
    for text in out:
        print(text, flush=True)
    for text in err:
        print(text, file=sys.stderr, flush=True)


def urc_lines(urc: Urc) -> list[str]:
    lines = [urc.text]
    if urc.data is not None:
        lines.append(f"<{len(urc.data)} bytes of data: {urc.data!r}>")
    return lines


async def _main(args: argparse.Namespace) -> int:
    from atbridge.commands.settings import open_modem

    modem = await open_modem(args)
    try:
        modem.subscribe(None, lambda urc: _show(urc_lines(urc), []))
        if args.commands:
            failures = 0
            for line in args.commands:
                out, err, ok = await send(modem, line)
                _show(out, err)
                failures += not ok
            return 3 if failures else 0
        return await _piped(modem)
    finally:
        await modem.close()


async def _piped(modem: Modem) -> int:
    """Command lines from piped stdin until its end, ``exit`` or ``quit``."""
    import asyncio

    from atbridge.commands.stdin import stdin_lines

    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    stdin_lines(lines, skip_empty=False)
    failures = 0
    while (raw := await lines.get()) is not None:
        line = raw.decode(errors="replace").strip()
        if line.lower() in ("exit", "quit"):
            break
        if line:
            out, err, ok = await send(modem, line)
            _show(out, err)
            failures += not ok
    return 3 if failures else 0


# -- the console on a terminal -----------------------------------------------------------------


def history_path(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$XDG_STATE_HOME/atbridge/history``, else ``~/.local/state/atbridge/history``."""
    environment = os.environ if env is None else env
    state = environment.get("XDG_STATE_HOME") or ""
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "atbridge" / "history"


class Console:
    """The interactive console (module doc): readline in the main thread, the modem in a loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.history = history_path()
        self.reading = False

    def run(self) -> int:
        import threading

        from atbridge import eventloop

        loop = eventloop.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="atbridge-modem", daemon=True)
        thread.start()
        try:
            return self._session(loop)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)

    def _call(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any]) -> Any:
        """Run ``work`` in the modem's loop and wait; Ctrl-C cancels it and is raised."""
        import asyncio

        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def _session(self, loop: asyncio.AbstractEventLoop) -> int:
        from atbridge.commands.settings import open_modem

        modem: Modem = self._call(loop, open_modem(self.args))
        readline = self._load_history()
        try:
            modem.subscribe(None, lambda urc: self._above_prompt(urc_lines(urc), readline))
            print(f"connected to {modem.port}; type AT commands; Ctrl-D or 'exit' to quit")
            self._loop(loop, modem)
        finally:
            self._save_history(readline)
            self._call(loop, modem.close())
        return 0

    def _loop(self, loop: asyncio.AbstractEventLoop, modem: Modem) -> None:
        while True:
            try:
                self.reading = True
                try:
                    line = input(PROMPT).strip()
                finally:
                    self.reading = False
            except EOFError:  # Ctrl-D
                print()
                return
            except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line typed
                print()
                continue
            if line.lower() in ("exit", "quit"):
                return
            if not line:
                continue
            try:
                out, err, _ok = self._call(loop, send(modem, line))
            except KeyboardInterrupt:
                print(
                    f"\ncancelled {line} (the modem may still answer it: the next command "
                    "resynchronises first)",
                    flush=True,
                )
                continue
            _show(out, err)

    def _above_prompt(self, lines: list[str], readline: Any) -> None:
        """Print notifications above the prompt; draw the prompt and the typed text again."""
        text = "".join(f"\r\x1b[K{line}\n" for line in lines)
        if self.reading:
            typed = readline.get_line_buffer() if readline is not None else ""
            text += PROMPT + typed
        sys.stdout.write(text)
        sys.stdout.flush()

    def _load_history(self) -> Any:
        try:
            import readline
        except ImportError:  # pragma: no cover - Python built without readline
            return None
        readline.set_history_length(HISTORY_LENGTH)
        with contextlib.suppress(OSError):  # no history yet, or unreadable: start empty
            readline.read_history_file(self.history)
        return readline

    def _save_history(self, readline: Any) -> None:
        if readline is None:
            return
        try:
            self.history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(self.history)
        except OSError as exc:
            print(f"atbridge: the history was not saved to {self.history}: {exc}", file=sys.stderr)
