"""Watching a modem: signal, cell and registration as JSON lines, sampled and notified.

Theory of operation
-------------------
``atbridge watch`` writes one JSON object per line (JSONL): a *sample* every
``interval`` seconds and a *notification* record for every URC the modem sends
on its own (``+CEREG``, ``%CESQ``, ``%MDMEV``, ``+CSCON``...). The pure part
turns what the modem said into records:

- :func:`sample_record` merges the decoded :class:`~atbridge.survey.Answer`\\ s of
  one sample (the dialect's :attr:`~atbridge.dialects.base.Dialect.sample_queries`
  and a registration read on each of its registration sources) into one flat
  dict of the diagnostics vocabulary (``rsrp_dbm``, ``rsrq_db``, ``snr_db``,
  ``stat``, ``registered``, ``roaming``, ``tac``, ``cell_id``, ``pci``,
  ``earfcn``, ``band``, ``act``, ``plmn``...). The registration that counts
  comes first (the first registered source, else the first that answered: the
  rule of :meth:`~atbridge.dialects.base.Dialect.attach`), then the other
  answers in the dialect's order; the first non-``null`` value of a field wins.
  Every information line goes to ``raw``; a query the modem refused or that
  did not decode is in ``errors`` (command -> reason), its lines still in ``raw``;
- :func:`urc_record` decodes one notification line the same way
  (:func:`atbridge.diagnostics.decode_line`, the URC form); one that does not
  decode keeps its line in ``raw`` and says why in ``error``;
- :class:`CellTracker` marks a cell change: a record whose serving cell differs
  from the last one seen (samples and notifications alike) gets
  ``handover: true`` and ``previous_cell_id``. Cells compare by ``cell_id_int``
  (a ``+CPSI`` id printed as 8 hex digits and a ``+CEREG`` id printed as 7 are
  the same cell), the ``FFFFFFFF`` sentinel never counts.

Each record opens with ``time`` (ISO 8601 UTC with milliseconds), ``t_s``
(monotonic seconds since the watch started) and ``kind`` (``"sample"`` or
``"urc"``); a sample taken with ``--mqtt-rtt`` has ``mqtt_rtt_ms`` (``null``
and ``mqtt_error`` when the PINGREQ got no PINGRESP).

The loop (:func:`watch`) is thin I/O: the URC callbacks only stamp the line with
the clock and queue it (a modem's reader must not block); the loop writes the
queued notifications, takes a sample when it is due, and otherwise waits for a
notification, the next sample time, the end of ``duration`` or ``stop`` — one
bounded wait, no polling. A sample is stamped when its first query leaves, the
notifications that came before that instant are written before it, the ones
that came while it was being asked after it, so ``t_s`` never goes backwards.
A query the modem refuses with a plain ``ERROR`` (the command does not exist
on this model: a SIM800 has no ``+CEREG``) is reported in the first sample and
not asked again.

Turning notifications on changes the modem's reporting settings:
:func:`enable_notifications` reads each setting first (``AT+CEREG?`` gives
``<n>``), turns it on (``AT+CEREG=5``, falling back to 2, as the attach does;
the dialect's :attr:`~atbridge.dialects.base.Dialect.watch_notifications`) and
returns the :class:`SettingChange` list that :func:`restore_notifications`
undoes at the end; a setting without a read form is set back to ``0``, its
documented "off".

Sources: 3GPP TS 27.007 §10.1.22 (``+CEREG`` levels 0-5), §10.1.30 (``+CSCON``),
§7.2 (``+CREG``), §10.1.20 (``+CGREG``); Nordic nRF91 AT Commands Reference
(``%CESQ`` signal quality notification, ``%MDMEV`` modem domain events,
``%XMONITOR``); SIMCom SIM7080/SIM7600 AT manuals (``AT+CPSI?``). Field names
follow ``shared/reference/diagnostics.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from atbridge.at_syntax import int_param
from atbridge.diagnostics import ExplainError, decode_line
from atbridge.errors import AtBridgeError, describe_error
from atbridge.survey import Answer, ask

if TYPE_CHECKING:
    from atbridge.modem import Modem, Urc

Record = dict[str, Any]

#: Registration notifications, always listened for (registration is part of every sample).
REGISTRATION_PREFIXES = ("+CEREG", "+CGREG", "+CREG")
#: Fields a sample or notification never carries: ``n`` is a reporting setting, not a
#: measurement; the lists belong to ``diag``.
SKIPPED_FIELDS = frozenset({"n", "contexts", "addresses", "available"})
#: Stats that mean registered (home or roaming, the vocabulary's ``registered``).
REGISTERED_STATS = frozenset({1, 5, 6, 7, 9, 10})

# -- the pure part ---------------------------------------------------------------------------


def iso_time(wall: float) -> str:
    """``2024-05-01T12:00:00.123Z``: the UTC time of ``wall`` (seconds since the epoch)."""
    stamp = datetime.fromtimestamp(wall, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def header(kind: str, t_s: float, wall: float) -> Record:
    """The keys every record opens with."""
    return {"time": iso_time(wall), "t_s": round(t_s, 3), "kind": kind}


def flat_fields(fields: Mapping[str, Any] | None) -> Record:
    """Decoded fields as one flat dict: an answer of several commands (keyed by prefix)
    is merged, the first value of a name kept; :data:`SKIPPED_FIELDS` dropped."""
    flat: Record = {}
    if not fields:
        return flat
    for name, value in fields.items():
        if name[:1] in "+%" and isinstance(value, Mapping):
            for inner, item in flat_fields(value).items():
                flat.setdefault(inner, item)
        elif name not in SKIPPED_FIELDS:
            flat.setdefault(name, value)
    return flat


def merge(into: Record, fields: Mapping[str, Any]) -> None:
    """Add ``fields`` to ``into``: a name already there with a value keeps it."""
    for name, value in fields.items():
        if into.get(name) is None:
            into[name] = value


def counting_registration(answers: Sequence[Answer]) -> Answer | None:
    """Of the registration reads, the one that counts: the first registered, else the first
    that decoded (the rule of :meth:`~atbridge.dialects.base.Dialect.attach`)."""
    decoded = [a for a in answers if a.fields and "stat" in a.fields]
    registered = [a for a in decoded if a.fields and a.fields["stat"] in REGISTERED_STATS]
    chosen = registered or decoded
    return chosen[0] if chosen else None


def sample_record(
    samples: Sequence[Answer],
    registrations: Sequence[Answer],
    *,
    t_s: float,
    wall: float,
) -> Record:
    """One sample (see the module docstring): header, vocabulary fields, ``raw``, ``errors``."""
    record = header("sample", t_s, wall)
    counting = counting_registration(registrations)
    fields: Record = {}
    if counting is not None:
        fields["registration_source"] = counting.command.removeprefix("AT").rstrip("?")
        merge(fields, flat_fields(counting.fields))
    for answer in (*samples, *registrations):
        if answer is not counting:
            merge(fields, flat_fields(answer.fields))
    record.update(fields)
    record["raw"] = [line for answer in (*samples, *registrations) for line in answer.lines]
    errors = {a.command: a.error for a in (*samples, *registrations) if a.error is not None}
    if errors:
        record["errors"] = errors
    return record


_URC = re.compile(r"^\s*([+%#][A-Z]+)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def urc_record(line: str, *, t_s: float, wall: float) -> Record:
    """One notification line as a record: ``urc`` (its prefix), its fields, ``raw``."""
    record = header("urc", t_s, wall)
    match = _URC.match(line)
    prefix = match.group(1).upper() if match else line.strip()
    record["urc"] = prefix
    if match is not None:
        try:
            decoded = decode_line(prefix, match.group(2), is_read=False)
        except ExplainError as exc:
            record["error"] = f"not decoded: {exc}"
        else:
            record.update(flat_fields(decoded))
    else:
        record["error"] = "not decoded: no '<prefix>: <value>' in the line"
    record["raw"] = [line]
    return record


def cell_key(record: Mapping[str, Any]) -> int | str | None:
    """The serving cell of a record, for comparing (``None``: the record names none)."""
    if record.get("cell_id_valid") is False:
        return None
    number = record.get("cell_id_int")
    if isinstance(number, int):
        return None if number == 0xFFFFFFFF else number
    text = record.get("cell_id")
    if isinstance(text, str) and text.strip():
        return text.strip().upper().lstrip("0") or "0"
    return None


@dataclass
class CellTracker:
    """Marks the records whose serving cell differs from the last one seen."""

    cell: int | str | None = None
    cell_id: str | None = None

    def mark(self, record: Record) -> Record:
        """Set ``handover`` (and ``previous_cell_id`` when true) on ``record``; return it."""
        key = cell_key(record)
        changed = key is not None and self.cell is not None and key != self.cell
        record["handover"] = changed
        if changed:
            record["previous_cell_id"] = self.cell_id
        if key is not None:
            self.cell, self.cell_id = key, record.get("cell_id")
        return record


def json_line(record: Mapping[str, Any]) -> str:
    """One record as one line of JSON (no newline inside; non-ASCII kept)."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def summary(record: Mapping[str, Any], samples: int) -> str:
    """The live one-line summary of the last sample, for a person."""
    from atbridge.diagnostics import rate

    parts = [f"{record.get('t_s', 0):7.1f}s", f"#{samples}"]
    for name, label, unit in (
        ("rsrp_dbm", "RSRP", "dBm"),
        ("rsrq_db", "RSRQ", "dB"),
        ("snr_db", "SNR", "dB"),
        ("sinr_db", "SINR", "dB"),
        ("rssi_dbm", "RSSI", "dBm"),
    ):
        value = record.get(name)
        if value is not None:
            rating = rate(name, value)
            parts.append(f"{label} {value:g} {unit}{f' {rating}' if rating else ''}")
    if record.get("cell_id") is not None:
        parts.append(f"cell {record['cell_id']}")
    if "registered" in record:
        status = "roaming" if record.get("roaming") else "home"
        parts.append(f"registered ({status})" if record["registered"] else "not registered")
    if record.get("mqtt_rtt_ms") is not None:
        parts.append(f"rtt {record['mqtt_rtt_ms']:g} ms")
    return "  ".join(parts)


# -- changing and restoring the reporting settings ----------------------------------------


@dataclass(frozen=True, slots=True)
class SettingChange:
    """A reporting setting watch turned on: what it sent, and what sets it back."""

    command: str
    restore: str

    def describe(self) -> str:
        return f"{self.command} (set back with {self.restore})"


def setting_name(command: str) -> str | None:
    """``AT%CESQ=1`` -> ``%CESQ``: the notification a setting command turns on."""
    match = re.fullmatch(r"AT([+%#][A-Z]+)=.*", command.strip(), re.IGNORECASE)
    return match.group(1).upper() if match else None


def notification_prefixes(commands: Iterable[str], sources: Iterable[str]) -> tuple[str, ...]:
    """The URC prefixes watch listens for: registration (every source) and each setting's."""
    names = [*REGISTRATION_PREFIXES, *sources]
    names += [name for name in map(setting_name, commands) if name is not None]
    return tuple(dict.fromkeys(names))


async def _current_level(modem: Modem, name: str, timeout: float | None) -> int | None:
    """The first parameter of ``AT<name>?`` (``<n>``), or ``None`` without a read form."""
    answer = await ask(modem, f"AT{name}?", timeout=timeout, decode=False)
    for line in answer.lines:
        if line.upper().startswith(f"{name}:"):
            return int_param(line.partition(":")[2], 0)
    return None


async def enable_notifications(
    modem: Modem,
    *,
    sources: Sequence[str],
    commands: Sequence[str],
    timeout: float | None = None,
) -> list[SettingChange]:
    """Turn on registration reports on each source and the dialect's notifications.

    Returns what changed (a setting already at the level asked is not a change);
    a command the modem refuses is skipped.
    """
    changes: list[SettingChange] = []
    wanted: list[tuple[str, tuple[str, ...]]] = []
    for source in sources:
        levels = ("5", "2") if source == "+CEREG" else ("2", "1")
        wanted.append((source, tuple(f"AT{source}={level}" for level in levels)))
    for command in commands:
        name = setting_name(command)
        if name is not None:
            wanted.append((name, (command,)))
    for name, tries in wanted:
        before = await _current_level(modem, name, timeout)
        for command in tries:
            if before is not None and command.endswith(f"={before}"):
                break  # already reporting at this level
            answer = await ask(modem, command, timeout=timeout, decode=False)
            if answer.final == "OK":
                changes.append(
                    SettingChange(command, f"AT{name}={0 if before is None else before}")
                )
                break
    return changes


async def restore_notifications(
    modem: Modem, changes: Sequence[SettingChange], *, timeout: float | None = None
) -> list[str]:
    """Set back what :func:`enable_notifications` changed (last first); what failed."""
    failed: list[str] = []
    for change in reversed(changes):
        answer = await ask(modem, change.restore, timeout=timeout, decode=False)
        if answer.final != "OK":
            failed.append(f"{change.restore}: {answer.error or answer.final}")
    return failed


# -- the loop --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What one watch asks and listens for, and when it ends."""

    sample_queries: tuple[str, ...]
    registration_sources: tuple[str, ...]
    prefixes: tuple[str, ...]
    interval: float
    count: int | None = None
    duration: float | None = None
    timeout: float | None = None


@dataclass
class _Notifications:
    """URC lines as they arrived (callback side), for the loop to write in order."""

    clock: Callable[[], float]
    queue: deque[tuple[float, str]] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, urc: Urc) -> None:
        self.queue.append((self.clock(), urc.text))
        self.arrived.set()

    def take(self, until: float | None = None) -> list[tuple[float, str]]:
        taken: list[tuple[float, str]] = []
        while self.queue and (until is None or self.queue[0][0] <= until):
            taken.append(self.queue.popleft())
        return taken


#: A PINGREQ round trip in seconds (raises when no PINGRESP came).
Ping = Callable[[], Awaitable[float]]


async def watch(
    modem: Modem,
    plan: Plan,
    emit: Callable[[Record], None],
    *,
    stop: asyncio.Event | None = None,
    ping: Ping | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """Sample and listen until ``count`` samples, ``duration`` seconds or ``stop``.

    ``emit`` gets every record in order (a sample's keys: see the module
    docstring). Returns the number of samples taken.
    """
    stop = stop or asyncio.Event()
    origin, wall_origin = clock(), wall_clock()
    tracker = CellTracker()
    notifications = _Notifications(clock)
    unhooks = [modem.subscribe(f"{prefix}:", notifications) for prefix in plan.prefixes]
    queries = list(plan.sample_queries)
    sources = list(plan.registration_sources)
    samples = 0

    def stamp(at: float) -> tuple[float, float]:
        return at - origin, wall_origin + (at - origin)

    def write_notifications(until: float | None) -> None:
        for at, line in notifications.take(until):
            t_s, wall = stamp(at)
            emit(tracker.mark(urc_record(line, t_s=t_s, wall=wall)))

    async def take_sample() -> None:
        started = clock()
        write_notifications(started)
        asked = [await ask(modem, q, timeout=plan.timeout, origin=origin) for q in queries]
        reads = [await ask(modem, f"AT{s}?", timeout=plan.timeout, origin=origin) for s in sources]
        t_s, wall = stamp(started)
        record = sample_record(asked, reads, t_s=t_s, wall=wall)
        if ping is not None:
            try:
                record["mqtt_rtt_ms"] = round(await ping() * 1000, 1)
            except AtBridgeError as exc:  # a lost PINGRESP is a finding, not the end
                record["mqtt_rtt_ms"] = None
                record["mqtt_error"] = describe_error(exc)
        emit(tracker.mark(record))
        # A command this model lacks (plain ERROR) is not asked again.
        queries[:] = [a.command for a in asked if a.final != "ERROR"]
        sources[:] = [s for s, a in zip(sources, reads, strict=True) if a.final != "ERROR"]

    next_at = origin
    end_at = None if plan.duration is None else origin + plan.duration
    waiter: asyncio.Task[Any] | None = None
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            now = clock()
            if end_at is not None and now >= end_at:
                break
            if now >= next_at:
                await take_sample()
                samples += 1
                if plan.count is not None and samples >= plan.count:
                    break
                next_at = max(next_at + plan.interval, clock())
                continue
            write_notifications(None)
            notifications.arrived.clear()
            deadline = next_at if end_at is None else min(next_at, end_at)
            waiter = asyncio.ensure_future(notifications.arrived.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=deadline - now, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
        write_notifications(None)
    finally:
        for unhook in unhooks:
            unhook()
        for task in (waiter, stopper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return samples
