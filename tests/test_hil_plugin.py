"""The hil/ suite through a real labgrid: two fake boards (two dialects) on two places, one
pytest run with ``-n 2``, JUnit properties and the summary; and the AtBridgeDriver from an
environment YAML (``imports:``, ``--lg-env``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="pip install 'atbridge[labgrid]'")
pytest.importorskip("xdist", reason="pip install pytest-xdist")

from tests.labgrid_rig import ROOT, LabgridRig

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabgridRig]:
    with LabgridRig(tmp_path_factory.mktemp("labgrid-hil")) as rig:
        rig.board("rack-a", "nrf91-slm")
        rig.board("rack-b", "sim7080")
        yield rig


def run_pytest(rig: LabgridRig, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *args],
        cwd=ROOT,
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=140,
    )


def properties(junit: Path) -> dict[str, dict[str, str]]:
    """Test name -> its JUnit properties."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        found[case.attrib["name"]] = {
            p.attrib["name"]: p.attrib["value"] for p in case.iter("property")
        }
    return found


def test_two_boards_on_two_workers(rig: LabgridRig, tmp_path: Path) -> None:
    junit, logs = tmp_path / "junit.xml", tmp_path / "logs"
    result = run_pytest(
        rig,
        tmp_path,
        "hil/test_board.py",
        "hil/test_online.py",
        "-k",
        "identified or mqtt_round_trip",
        "-n",
        "2",
        "--atbridge-port",
        "labgrid://rack-a",
        "--atbridge-port",
        "labgrid://rack-b",
        f"--hil-log-dir={logs}",
        f"--junitxml={junit}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout, result.stdout[-2000:]
    found = properties(junit)
    assert len(found) == 4, found
    dialects: dict[str, set[str]] = {}
    for name, props in found.items():
        board = props["board"]
        assert board in ("labgrid://rack-a", "labgrid://rack-b"), props
        assert props["imei"].isdigit() and props["firmware"], props
        assert Path(props["transcript"]).read_text().count("AT") > 0
        assert name.endswith(("[rack-a]", "[rack-b]")), name
        dialects.setdefault(board, set()).add(props["dialect"])
        if "round_trip" in name:
            assert float(props["time_to_online_s"]) > 0
    assert dialects == {"labgrid://rack-a": {"nrf91-slm"}, "labgrid://rack-b": {"sim7080"}}
    # one board per worker: each board's tests ran in one xdist worker
    summary = json.loads((logs / "hil-summary.json").read_text())
    rows = {row["board"]: row for row in summary["boards"]}
    assert rows["labgrid://rack-a"]["passed"] == 2 and rows["labgrid://rack-b"]["passed"] == 2
    assert rows["labgrid://rack-b"]["dialect"] == "sim7080"
    assert re.search(r"labgrid://rack-a\s+nrf91-slm", result.stdout), result.stdout[-2000:]
    assert rig.acquired_by("rack-a") is None and rig.acquired_by("rack-b") is None


ENV = """\
imports:
  - atbridge.farm.driver
targets:
  main:
    resources:
      NetworkSerialPort:
        host: 127.0.0.1
        port: {port}
        speed: 115200
        protocol: rfc2217
    drivers:
      AtBridgeDriver:
        dialect: sim7080
"""


def test_the_driver_from_an_environment_yaml(rig: LabgridRig, tmp_path: Path) -> None:
    rig.client("-p", "rack-b", "acquire")
    try:
        shown = rig.client("-p", "rack-b", "show").stdout
        port = re.search(r"'port': (\d+)", shown)
        assert port is not None, shown
        env = tmp_path / "env.yaml"
        env.write_text(ENV.format(port=port.group(1)))
        junit = tmp_path / "junit.xml"
        result = run_pytest(
            rig,
            tmp_path,
            "hil/test_board.py",
            "-k",
            "identified",
            f"--lg-env={env}",
            "--atbridge-dialect",
            "sim7080",
            f"--hil-log-dir={tmp_path / 'logs'}",
            f"--junitxml={junit}",
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        ((name, props),) = properties(junit).items()
        assert name.endswith("[lg-env_main]"), name
        assert props["board"] == "lg-env:main" and props["dialect"] == "sim7080"
    finally:
        rig.client("-p", "rack-b", "release")
