"""Asking a modem what it knows, one read-only query at a time, keeping every raw answer.

Theory of operation
-------------------
Field diagnostics (``atbridge diag``) and sampling (``atbridge watch``) send
many small queries (``AT+CESQ``, ``AT%XMONITOR``, ``AT+CPSI?``...), and a
modem that refuses one of them (an older firmware, a command the family lacks,
the SIM off in ``CFUN=0``) must not end the report: the refusal *is* the
finding. :func:`ask` sends one query and always returns an :class:`Answer`:
the command, when it started (seconds from the caller's origin) and how long it
took, the raw information lines and final result code exactly as the modem
sent them, and the decoded fields of the diagnostics vocabulary
(:func:`atbridge.diagnostics.decode_answer`) when the answer decodes. What
went wrong is :attr:`Answer.error` (``"+CME ERROR: 10 (SIM not inserted)"``,
``"no answer within 5 s"``, ``"not decoded: ..."``). Only a lost link
(:class:`~atbridge.errors.LinkLost`) or a cancellation ends the caller's work:
the modem is gone, there is nothing more to ask.

Which queries a modem family answers is the dialect's data
(:attr:`atbridge.dialects.base.Dialect.diagnostic_queries`,
:attr:`~atbridge.dialects.base.Dialect.sample_queries`); a few answers come
on lines without the command's own prefix, named in :data:`ANSWER_PREFIXES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atbridge.diagnostics import ExplainError, decode_answer
from atbridge.errors import AtTimeout, ModemError

if TYPE_CHECKING:
    from atbridge.modem import Modem, Urc

#: Answer lines whose prefix is not the command's own (the channel would take them for
#: notifications otherwise): SIM7600 ``AT+CICCID`` -> ``+ICCID: 8949...``.
ANSWER_PREFIXES: dict[str, tuple[str, ...]] = {
    "AT+CICCID": ("+ICCID:",),
}

#: Answers that come AFTER the final ``OK`` (SIM800/SIM7000 ``AT+CIPSTATUS``: ``OK``, then
#: ``STATE: IP STATUS`` and, in multi-IP mode, one ``C: <n>,...`` line per connection —
#: SIM800 Series AT Command Manual §8.2.8). They are collected until the modem has been
#: quiet for :data:`TRAILING_QUIET` seconds (at most :data:`TRAILING_MAX`): nothing
#: marks their end.
TRAILING_LINES: dict[str, tuple[str, ...]] = {
    "AT+CIPSTATUS": ("STATE:", "C:"),
}
TRAILING_QUIET = 0.3
TRAILING_MAX = 3.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One query and what came back (``fields`` is ``None`` when nothing decoded).

    ``started`` is seconds from the caller's origin (``time.monotonic()`` when none
    was given), ``seconds`` how long the exchange took. ``lines`` and ``final`` are
    the modem's own text; ``final`` is ``""`` when no final result code came.
    """

    command: str
    started: float
    seconds: float
    lines: tuple[str, ...]
    final: str
    fields: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        """The modem answered ``OK`` and the answer decoded (or needed no decoding)."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The JSON form: every attribute, times rounded to the millisecond."""
        return {
            "command": self.command,
            "started_s": round(self.started, 3),
            "duration_s": round(self.seconds, 3),
            "raw": list(self.lines),
            "final": self.final,
            "fields": self.fields,
            "error": self.error,
        }


async def ask(
    modem: Modem,
    command: str,
    *,
    timeout: float | None = None,
    origin: float | None = None,
    decode: bool = True,
) -> Answer:
    """Send ``command`` once and return its :class:`Answer`; never raises for the modem's no.

    ``decode=False`` keeps the raw lines only (``watch`` reading and restoring a
    reporting setting it decodes itself). :class:`~atbridge.errors.LinkLost` and
    cancellation propagate.
    """
    base = time.monotonic() if origin is None else origin
    start = time.monotonic()
    claims = ANSWER_PREFIXES.get(command.upper(), ())
    trailing = TRAILING_LINES.get(command.upper())
    after: list[str] = []
    arrived = asyncio.Event()

    def collect(urc: Urc) -> None:
        if trailing is not None and urc.text.startswith(trailing):
            after.append(urc.text)
            arrived.set()

    unsubscribe = modem.subscribe(None, collect) if trailing is not None else None
    try:
        response = await modem.command(command, timeout=timeout, claims=claims)
        if trailing is not None:
            await _quiet(arrived)
    except ModemError as exc:
        reason = f"{exc.final}{f' ({exc.text})' if exc.text else ''}"
        return Answer(command, start - base, time.monotonic() - start, (), exc.final, None, reason)
    except AtTimeout as exc:
        return Answer(
            command,
            start - base,
            time.monotonic() - start,
            (),
            "",
            None,
            f"no answer within {exc.timeout:g} s" if exc.timeout else "no answer",
        )
    finally:
        if unsubscribe is not None:
            unsubscribe()
    seconds = time.monotonic() - start
    lines = (*response.lines, *after)
    fields: dict[str, Any] | None = None
    error: str | None = None
    if decode and lines:
        try:
            fields = decode_answer(command, lines)
        except ExplainError as exc:
            error = f"not decoded: {exc}"
    return Answer(command, start - base, seconds, lines, response.final, fields, error)


async def _quiet(arrived: asyncio.Event) -> None:
    """Until no trailing line came for TRAILING_QUIET seconds (TRAILING_MAX at most)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TRAILING_MAX):
            while True:
                arrived.clear()
                try:
                    async with asyncio.timeout(TRAILING_QUIET):
                        await arrived.wait()
                except TimeoutError:
                    return
