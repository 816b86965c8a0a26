"""``atbridge plot`` (atbridge/plot.py, atbridge/commands/plot.py): the image has the series.

The figure is checked through its matplotlib objects (each panel's line holds the
samples' values at their ``t_s``, the vertical lines sit at the handover and
registration-change times), the PNG through its pixels, the HTML for being one
self-contained page; bad input and a missing matplotlib exit 2 with what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.lines import Line2D

from atbridge.cli import main
from atbridge.commands import watch as watch_command
from atbridge.errors import PlotError
from atbridge.plot import (
    DPI,
    SIZE,
    build_figure,
    events,
    parse_records,
    signal_series,
)
from tests.fakes import FakeModem

T0 = "2024-05-01T12:00:00.000Z"


def sample(t: float, rsrp: int, rsrq: float, snr: int | None, cell: str, stat: int = 1) -> Any:
    record: dict[str, Any] = {
        "time": T0,
        "t_s": t,
        "kind": "sample",
        "rsrp_dbm": rsrp,
        "rsrq_db": rsrq,
        "stat": stat,
        "registered": stat in (1, 5),
        "cell_id": cell,
        "cell_id_int": int(cell, 16),
        "handover": False,
        "raw": ["..."],
    }
    if snr is not None:
        record["snr_db"] = snr
    return record


def drive() -> list[dict[str, Any]]:
    """A short drive: registered, a handover (notified), roaming, one sample with no SNR."""
    records = [
        sample(0.0, -85, -8.0, 12, "01234567"),
        sample(5.0, -97, -11.5, 6, "01234567"),
        {
            "time": T0,
            "t_s": 7.25,
            "kind": "urc",
            "urc": "+CEREG",
            "stat": 1,
            "cell_id": "0BADCAFE",
            "cell_id_int": 0x0BADCAFE,
            "handover": True,
            "previous_cell_id": "01234567",
            "raw": ['+CEREG: 1,"0A1B","0BADCAFE",7'],
        },
        sample(10.0, -104, -15.0, None, "0BADCAFE"),
        sample(15.0, -92, -9.5, 9, "0BADCAFE", stat=5),
    ]
    return records


def lines(ax: Any, gid: str) -> list[Line2D]:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def test_the_figure_has_each_series_and_the_markers() -> None:
    figure = build_figure(drive())
    rsrp, rsrq, snr = figure.axes
    expected = {
        rsrp: ([0.0, 5.0, 10.0, 15.0], [-85, -97, -104, -92]),
        rsrq: ([0.0, 5.0, 10.0, 15.0], [-8.0, -11.5, -15.0, -9.5]),
        snr: ([0.0, 5.0, 15.0], [12, 6, 9]),  # the sample without SNR is not a point
    }
    for ax, (times, values) in expected.items():
        (series,) = lines(ax, "series")
        assert xs(series) == times
        assert ys(series) == values
        handovers = [xs(line)[0] for line in lines(ax, "handover")]
        registrations = [xs(line)[0] for line in lines(ax, "registration")]
        assert handovers == [7.25]
        assert registrations == [0.0, 15.0]  # registered at the start, roaming at 15 s
    assert "RSRP" in rsrp.get_ylabel() and "dBm" in rsrp.get_ylabel()
    labels = [text.get_text() for text in rsrp.texts]
    assert "cell 01234567 → 0BADCAFE" in labels
    assert "registered (roaming)" in labels


def test_simcom_sinr_stands_in_for_snr() -> None:
    records = [
        dict(sample(t, -90, -10.0, None, "00000001"), sinr_db=s) for t, s in [(0, 4), (1, 8)]
    ]
    snr = signal_series(records)[2]
    assert (snr.field, snr.times, snr.values) == ("sinr_db", (0.0, 1.0), (4.0, 8.0))


def test_events_follow_stat_changes_and_handovers_in_time_order() -> None:
    marks = events(list(reversed(drive())))  # the file's order does not matter: t_s does
    assert [(m.t_s, m.kind) for m in marks] == [
        (0.0, "registration"),
        (7.25, "handover"),
        (15.0, "registration"),
    ]


def test_the_png_decodes_at_its_size_and_is_not_blank(tmp_path: Path) -> None:
    from matplotlib.image import imread

    source = tmp_path / "drive.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in drive()) + "\n")
    out = tmp_path / "drive.png"
    assert main(["plot", str(source), "-o", str(out)]) == 0
    pixels = imread(out)
    assert pixels.shape[:2] == (int(SIZE[1] * DPI), int(SIZE[0] * DPI))
    rgb = pixels[..., :3].reshape(-1, 3)
    colours = {tuple(round(float(c), 2) for c in row) for row in rgb[:: max(len(rgb) // 20000, 1)]}
    assert len(colours) > 20  # lines, text and markers, not one flat colour
    assert pixels[..., :3].std() > 0.01


def test_svg_and_self_contained_html(tmp_path: Path) -> None:
    source = tmp_path / "drive.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in drive()))
    svg, html = tmp_path / "d.svg", tmp_path / "d.html"
    assert main(["plot", str(source), "-o", str(svg)]) == 0
    assert main(["plot", str(source), "-o", str(html), "--title", "Drive <1>"]) == 0
    assert "<svg" in svg.read_text()
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</html>" in page
    assert "<title>Drive &lt;1&gt;</title>" in page
    assert "4 samples, 1 notification, 1 handover, 2 registration changes" in page
    for fetch in ("<script", "<link", "src=", "@import", "url(http"):
        assert fetch not in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json at all\n", "line 1 is not JSON"),
        ('{"kind": "sample", "t_s": 0}\n[1, 2]\n', "line 2 is not a JSON object"),
        ('{"kind": "urc", "t_s": 0, "rsrp_dbm": -90}\n', "no sample has a signal value"),
        ("", "no sample has a signal value"),
    ],
)
def test_bad_input_exits_2_with_what_was_wrong(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(text)
    assert main(["plot", str(source), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_a_missing_file_or_an_unknown_format_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "x.png")]) == 2
    assert "cannot read" in capsys.readouterr().err
    source = tmp_path / "drive.jsonl"
    source.write_text(json.dumps(drive()[0]))
    assert main(["plot", str(source), "-o", str(tmp_path / "x.jpeg")]) == 2
    assert ".png, .svg, .html" in capsys.readouterr().err


def test_without_matplotlib_it_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "drive.jsonl"
    source.write_text(json.dumps(drive()[0]))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["plot", str(source), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "needs matplotlib" in err and "pip install 'atbridge[plot]'" in err


def test_parse_records_skips_blank_lines() -> None:
    assert parse_records('\n{"a": 1}\n\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]
    with pytest.raises(PlotError):
        parse_records("{")


async def test_a_watch_of_the_fake_plots_what_it_recorded(tmp_path: Path) -> None:
    """End to end: atbridge watch on the fake, then the plot of what it wrote."""
    out = tmp_path / "watch.jsonl"
    async with FakeModem(dialect="nrf91-slm") as fake:
        fake.set_registration(1)
        fake.set_signal(55, 20)
        parser = argparse.ArgumentParser(parents=watch_command.parents())
        watch_command.configure(parser)
        args = parser.parse_args(
            ["--port", fake.port, "--interval", "0.01", "--count", "2", "-o", str(out)]
        )
        assert await watch_command._main(args) == 0
    records = parse_records(out.read_text())
    samples = [r for r in records if r["kind"] == "sample"]
    (series,) = lines(build_figure(records).axes[0], "series")
    assert xs(series) == [r["t_s"] for r in samples]
    assert ys(series) == [55 - 140] * 2
