"""How the commands show things: received messages, progress, results and errors.

:class:`Output` decides where each kind of line goes (a live status line on a
terminal, plain lines, or JSON objects); :func:`message_text` and
:func:`message_object` render a received message, :func:`render_payload` its
payload (text when it is printable UTF-8, else hex).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atbridge.errors import Failed
    from atbridge.fsm import Message


def render_payload(payload: bytes) -> tuple[str, str]:
    """``(text, "utf-8")`` when the payload is printable UTF-8 text, else ``(hex, "hex")``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.hex(), "hex"
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return text, "utf-8"
    return payload.hex(), "hex"


def message_object(message: Message) -> dict[str, Any]:
    """The JSON object of a received message."""
    payload, encoding = render_payload(message.payload)
    return {
        "topic": message.topic,
        "payload": payload,
        "encoding": encoding,
        "bytes": len(message.payload),
        "qos": message.qos,
        "retain": message.retain,
    }


def payload_text(payload: bytes) -> str:
    """The payload for a line: text with \\t, \\r, \\n escaped, or ``hex:<hex>``."""
    text, encoding = render_payload(payload)
    if encoding == "hex":
        return f"hex:{text}"
    return text.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")


def message_text(message: Message) -> str:
    """``<topic>  <payload>`` (:func:`payload_text`), as ``run`` prints a message."""
    return f"{message.topic}  {payload_text(message.payload)}"


class Output:
    """Where a command's lines go.

    ``progress`` is where lifecycle progress goes: ``"stderr"`` (plain lines,
    publish and subscribe), ``"stdout"`` (plain ``state`` lines, run when piped),
    ``"status"`` (one live line rewritten with ``\\r``, run on a terminal),
    ``"json"`` (JSON objects on stdout, run --json) or ``"none"``.
    """

    def __init__(self, *, json_lines: bool, progress: str, timestamps: bool = False) -> None:
        self.json_lines = json_lines
        self.progress_mode = progress
        self.timestamps = timestamps
        self.started = time.monotonic()
        self._status: str | None = None
        self._in_state: float | None = None

    @property
    def live(self) -> bool:
        """Whether progress is one live status line (redrawn as time passes)."""
        return self.progress_mode == "status"

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:7.1f}s]"

    def redraw(self, *, seconds_in_state: float) -> None:
        """Redraw the live status line with the times now (the state's own time too)."""
        if self._status is None:
            return
        self._in_state = seconds_in_state
        self._draw()

    def progress(self, state: str, detail: str, event: dict[str, Any]) -> None:
        """A state change, a registration status, or a "still waiting" line."""
        mode = self.progress_mode
        if mode == "stderr":
            self._write(sys.stderr, f"{self.elapsed()} {state}: {detail}\n")
        elif mode == "stdout":
            self.line(f"{'state':<10} {state}: {detail}")
        elif mode == "json":
            self.line(json.dumps(event))
        elif mode == "status":
            self._status = f"{state}: {detail}"
            self._in_state = None
            self._draw()

    def note(self, kind: str, text: str, event: dict[str, Any]) -> None:
        """Something the user should know that is not a result (a subscription granted)."""
        mode = self.progress_mode
        if mode == "stderr":
            self._write(sys.stderr, f"{self.elapsed()} {text}\n")
        elif mode == "json":
            self.line(json.dumps(event))
        elif mode in ("stdout", "status"):
            self.line(f"{kind:<10} {text}")

    def result(self, text: str, event: dict[str, Any]) -> None:
        """One result on stdout: ``event`` as JSON with --json, else ``text``."""
        self.line(json.dumps(event) if self.json_lines else text)

    def text(self, text: str) -> None:
        """Text on stdout with no newline (``subscribe -N``)."""
        self._write(sys.stdout, text)

    def line(self, text: str) -> None:
        """A whole line on stdout (above the live status line, if one is shown)."""
        if self.timestamps:
            text = f"{stamp()} {text}"
        if self._status is not None:
            self._write(sys.stdout, "\r\x1b[K" + text + "\n")
            self._draw()
        else:
            self._write(sys.stdout, text + "\n")

    def error(self, text: str) -> None:
        if self._status is not None:
            self._write(sys.stdout, "\r\x1b[K")
        self._write(sys.stderr, f"atbridge: {text}\n")
        if self._status is not None:
            self._draw()

    def close(self) -> None:
        """End the live status line, if any."""
        if self._status is not None:
            self._status = None
            self._write(sys.stdout, "\n")

    def _draw(self) -> None:
        import shutil

        assert self._status is not None
        width = shutil.get_terminal_size().columns
        text = f"{self.elapsed()} {self._status}"
        if self._in_state is not None and self._in_state >= 1:
            state, _, detail = self._status.partition(": ")
            text = f"{self.elapsed()} {state} ({self._in_state:.0f} s): {detail}"
        if len(text) >= width:
            text = text[: max(width - 2, 1)] + "…"
        self._write(sys.stdout, "\r\x1b[K" + text)

    @staticmethod
    def _write(stream: Any, text: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.write(text)
            stream.flush()


def stamp() -> str:
    """The wall-clock time of a piped line: ISO 8601 UTC to the millisecond."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unwrap(failed: Failed) -> BaseException:
    """The error to report for a lifecycle that gave up: its cause.

    A cause that is not an :class:`~atbridge.errors.AtBridgeError` is a bug and
    is returned as it is (the CLI prints its traceback); a bare
    :class:`TimeoutError` becomes a :class:`~atbridge.errors.StepTimeout`.
    """
    from atbridge.errors import StepTimeout

    cause = failed.cause
    if isinstance(cause, TimeoutError) and not isinstance(cause, StepTimeout):
        return StepTimeout(failed.message)
    return cause


def describe_error(error: BaseException) -> str:
    """One line for an error: our message (for a Failed, its cause's), or type and text."""
    from atbridge import errors

    if isinstance(error, errors.Failed):
        error = unwrap(error)
    return errors.describe_error(error)
