"""Plotting a watch: RSRP, RSRQ and SNR over time, with registration changes and handovers.

Theory of operation
-------------------
``atbridge watch`` writes JSON lines (:mod:`atbridge.watch`); this module reads
them back and draws them. The pure part needs no plotting library:

- :func:`parse_records` reads the JSONL text (blank lines skipped); a line that is
  not a JSON object is a :class:`PlotError` naming the line;
- :func:`signal_series` takes the samples (``kind: "sample"``) in ``t_s`` order and
  returns, for each quantity, the ``(t_s, value)`` points of the samples that
  measured it: RSRP (``rsrp_dbm``), RSRQ (``rsrq_db``) and SNR (``snr_db``, or the
  SIMCom ``sinr_db`` when a sample has no ``snr_db``). No sample with any of them
  is a :class:`PlotError`;
- :func:`events` finds what is marked: a *registration change* wherever ``stat``
  differs from the previous record's that had one (samples and notifications
  alike, the first ``stat`` included), and every record with ``handover: true``.

:func:`build_figure` draws one panel per quantity on a shared time axis, each
event a vertical line on every panel (labelled on the top one); it returns the
matplotlib :class:`~matplotlib.figure.Figure`, built with the object API and no
``pyplot`` (no global state, no GUI backend). :func:`save` writes it as PNG or
SVG, or as a self-contained HTML page with the SVG inline (no script, no
network). matplotlib is the optional ``plot`` extra, imported only here and only
when drawing: without it :func:`require_matplotlib` says how to install it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atbridge.errors import PlotError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Record = dict[str, Any]

#: The panels: (title, unit, the fields read in order of preference).
QUANTITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("RSRP", "dBm", ("rsrp_dbm",)),
    ("RSRQ", "dB", ("rsrq_db",)),
    ("SNR", "dB", ("snr_db", "sinr_db")),
)
#: The output formats, by file suffix.
FORMATS = (".png", ".svg", ".html")
#: Figure size in inches and resolution: 1200 x 800 pixels as PNG.
SIZE = (12.0, 8.0)
DPI = 100

_REGISTRATION_WORDS = {
    0: "not registered",
    1: "registered (home)",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "registered (roaming)",
}


def parse_records(text: str, *, source: str = "the input") -> list[Record]:
    """The JSON objects of a JSONL text, in order (blank lines skipped)."""
    records: list[Record] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlotError(
                f"{source} line {number} is not JSON ({exc.msg}): {line[:60]!r}",
                hint="give the JSON lines atbridge watch wrote (--output FILE)",
            ) from None
        if not isinstance(record, dict):
            raise PlotError(
                f"{source} line {number} is not a JSON object: {line[:60]!r}",
                hint="give the JSON lines atbridge watch wrote (--output FILE)",
            )
        records.append(record)
    return records


def _time(record: Mapping[str, Any]) -> float | None:
    value = record.get("t_s")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Series:
    """One quantity over time: its panel title, unit, the field it came from, the points."""

    title: str
    unit: str
    field: str
    times: tuple[float, ...]
    values: tuple[float, ...]


def _in_time_order(records: Iterable[Record]) -> list[Record]:
    timed = [r for r in records if _time(r) is not None]
    return sorted(timed, key=lambda r: _time(r) or 0.0)


def signal_series(records: Sequence[Record]) -> list[Series]:
    """RSRP, RSRQ and SNR of the samples (see the module docstring); empty ones kept."""
    samples = [r for r in _in_time_order(records) if r.get("kind") == "sample"]
    series: list[Series] = []
    for title, unit, names in QUANTITIES:
        times: list[float] = []
        values: list[float] = []
        used: str | None = None
        for record in samples:
            for name in names:
                value = _number(record.get(name))
                if value is not None:
                    t = _time(record)
                    assert t is not None
                    times.append(t)
                    values.append(value)
                    used = used or name
                    break
        series.append(Series(title, unit, used or names[0], tuple(times), tuple(values)))
    if not any(s.values for s in series):
        raise PlotError(
            f"no sample has a signal value ({', '.join(n for _, _, ns in QUANTITIES for n in ns)})",
            hint="record with atbridge watch while the modem measures (radio on, camped on a cell)",
        )
    return series


@dataclass(frozen=True, slots=True)
class Event:
    """A vertical line: when, what kind (``"registration"`` / ``"handover"``), its label."""

    t_s: float
    kind: str
    label: str


def events(records: Sequence[Record]) -> list[Event]:
    """Registration changes and handovers, in time order."""
    found: list[Event] = []
    stat: int | None = None
    for record in _in_time_order(records):
        t = _time(record)
        assert t is not None
        new = record.get("stat")
        if isinstance(new, int) and not isinstance(new, bool) and new != stat:
            words = _REGISTRATION_WORDS.get(new, f"stat {new}")
            cause = record.get("reject_cause")
            if cause is not None:
                words += f", cause {cause}"
            found.append(Event(t, "registration", words))
            stat = new
        if record.get("handover") is True:
            before, after = record.get("previous_cell_id"), record.get("cell_id")
            found.append(Event(t, "handover", f"cell {before} → {after}"))
    return found


def require_matplotlib() -> None:
    """Raise a :class:`PlotError` saying how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError(
            "atbridge plot needs matplotlib, which is not installed",
            hint="pip install 'atbridge[plot]' (or pip install matplotlib)",
        ) from None


_COLOURS = {"registration": "tab:purple", "handover": "tab:red"}


def build_figure(records: Sequence[Record], *, title: str | None = None) -> Figure:
    """The figure of a watch: a panel per quantity, the events as vertical lines."""
    require_matplotlib()
    from matplotlib.figure import Figure

    series = signal_series(records)
    marks = events(records)
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, quantity in zip(axes, series, strict=True):
        ax.set_ylabel(f"{quantity.title} ({quantity.unit})")
        ax.grid(True, alpha=0.3)
        if quantity.values:
            ax.plot(
                quantity.times,
                quantity.values,
                marker="o",
                markersize=3,
                label=quantity.field,
                gid="series",
            )
        else:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center")
        for mark in marks:
            ax.axvline(
                mark.t_s,
                color=_COLOURS[mark.kind],
                linestyle="--" if mark.kind == "registration" else "-",
                linewidth=1,
                label=mark.kind,
                gid=mark.kind,
            )
    top = axes[0]
    for mark in marks:
        top.annotate(
            mark.label,
            xy=(mark.t_s, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=_COLOURS[mark.kind],
        )
    axes[-1].set_xlabel("time since the watch started (s)")
    start = next((r.get("time") for r in records if isinstance(r.get("time"), str)), None)
    heading = title or "atbridge watch"
    figure.suptitle(f"{heading}, from {start}" if start else heading)
    return figure


def output_format(path: str | Path) -> str:
    """``.png``, ``.svg`` or ``.html`` from the output file name (else a :class:`PlotError`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(
            f"cannot tell the image format of {str(path)!r}",
            hint=f"name the output file with one of: {', '.join(FORMATS)}",
        )
    return suffix


def html_page(svg: str, *, title: str, summary: str) -> str:
    """A self-contained HTML page with ``svg`` inline (no script, nothing fetched)."""
    start = svg.find("<svg")
    inline = svg[start:] if start >= 0 else svg
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}svg{max-width:100%;height:auto}</style>\n"
        f"</head>\n<body>\n<h1>{escape(title)}</h1>\n<p>{escape(summary)}</p>\n"
        f"{inline}\n</body>\n</html>\n"
    )


def describe(records: Sequence[Record]) -> str:
    """``42 samples, 3 notifications, 2 handovers, 1 registration change``."""
    samples = sum(1 for r in records if r.get("kind") == "sample")
    urcs = sum(1 for r in records if r.get("kind") == "urc")
    marks = events(records)
    handovers = sum(1 for m in marks if m.kind == "handover")
    changes = sum(1 for m in marks if m.kind == "registration")

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return ", ".join(
        (
            plural(samples, "sample"),
            plural(urcs, "notification"),
            plural(handovers, "handover"),
            plural(changes, "registration change"),
        )
    )


def save(figure: Figure, path: str | Path, *, title: str, summary: str) -> None:
    """Write ``figure`` to ``path`` as its suffix says (PNG, SVG or HTML with the SVG inline)."""
    import io

    suffix = output_format(path)
    try:
        if suffix == ".html":
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg")
            Path(path).write_text(
                html_page(buffer.getvalue(), title=title, summary=summary), encoding="utf-8"
            )
        else:
            figure.savefig(path, format=suffix[1:])
    except OSError as exc:
        raise PlotError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="give -o a file in a folder that exists and is writable",
        ) from None
