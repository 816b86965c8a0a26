"""labgrid://PLACE ports through a real labgrid: coordinator, exporter, ser2net, places.

The rig (:mod:`tests.labgrid_rig`) runs labgrid-coordinator and a labgrid-exporter per fake
modem on 127.0.0.1; atbridge is run as a command (``atbridge publish --port labgrid://P``)
and through the Python API (:func:`atbridge.farm.acquire`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("labgrid", reason="pip install 'atbridge[labgrid]'")

from atbridge.dialects import identify
from atbridge.errors import ConfigurationError, PortNotFound
from atbridge.farm import acquire, parse_labgrid_url
from atbridge.modem import Modem
from tests.brokers import Mosquitto, PahoPeer
from tests.labgrid_rig import LabgridRig

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabgridRig]:
    with LabgridRig(tmp_path_factory.mktemp("labgrid")) as rig:
        rig.board("rack-a", "nrf91-slm", tags={"board": "nrf9160dk"})
        yield rig


def atbridge(rig: LabgridRig, *args: str, user: str | None = None) -> subprocess.Popen[str]:
    env = dict(rig.env)
    if user is not None:
        env["LG_USERNAME"] = user
    return subprocess.Popen(
        [sys.executable, "-m", "atbridge", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_urls_name_the_place_and_the_coordinator() -> None:
    env = {"LG_COORDINATOR": "farm:20408"}
    assert parse_labgrid_url("labgrid://rack3", env).coordinator == "farm:20408"
    url = parse_labgrid_url("labgrid://10.0.0.2:1234/rack3?resource=uart1", env)
    assert (url.coordinator, url.place, url.resource) == ("10.0.0.2:1234", "rack3", "uart1")
    assert parse_labgrid_url("labgrid://rack3", {}).coordinator == "127.0.0.1:20408"
    with pytest.raises(ConfigurationError, match="no place named"):
        parse_labgrid_url("labgrid://", env)
    with pytest.raises(ConfigurationError, match="unknown option 'speed'"):
        parse_labgrid_url("labgrid://rack3?speed=9600", env)


def test_without_labgrid_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from atbridge.farm import places

    monkeypatch.setitem(sys.modules, "labgrid.remote", None)
    with pytest.raises(ConfigurationError) as caught:
        places.acquire_place("labgrid://rack3")
    assert "pip install 'atbridge[labgrid]'" in caught.value.hint


def test_publish_goes_online_through_a_place_and_releases_it(
    rig: LabgridRig, broker: Mosquitto, paho: PahoPeer
) -> None:
    paho.subscribe("farm/up", qos=1)
    publish = atbridge(
        rig,
        "publish",
        "--port",
        "labgrid://rack-a",
        "--broker",
        f"127.0.0.1:{broker.port}",
        "-t",
        "farm/up",
        "-m",
        "through labgrid",
        "-q",
        "1",
        "--give-up-after",
        "30",
    )
    _out, err = publish.communicate(timeout=60)
    assert publish.returncode == 0, err
    assert paho.wait_for(1, timeout=10) == [("farm/up", b"through labgrid", 1)]
    assert rig.acquired_by("rack-a") is None, "the place is released after the command"


def test_a_place_held_by_someone_else_is_refused_with_who_holds_it(rig: LabgridRig) -> None:
    rig.client("-p", "rack-a", "acquire", user="alice")
    try:
        holder = rig.acquired_by("rack-a")
        assert holder is not None and holder.endswith("/alice")
        info = atbridge(rig, "info", "--port", "labgrid://rack-a", user="bob")
        _out, err = info.communicate(timeout=60)
        host = holder.split("/")[0]
        assert info.returncode == 3, err
        assert f"place rack-a is acquired by alice@{host}" in err
        assert "Traceback" not in err
    finally:
        rig.client("-p", "rack-a", "release", user="alice")
    assert rig.acquired_by("rack-a") is None


def test_ctrl_c_releases_the_place(rig: LabgridRig, broker: Mosquitto) -> None:
    subscribe = atbridge(
        rig,
        "subscribe",
        "--port",
        "labgrid://rack-a",
        "--broker",
        f"127.0.0.1:{broker.port}",
        "-t",
        "farm/#",
    )
    try:
        assert subscribe.stderr is not None
        seen = []
        for line in subscribe.stderr:  # wait for it to be online: the place is held
            seen.append(line)
            if "subscribed to farm/#" in line:
                break
        else:
            pytest.fail(f"subscribe never got online: {seen} {subscribe.communicate()}")
        assert rig.acquired_by("rack-a") is not None
        subscribe.send_signal(signal.SIGINT)
        subscribe.communicate(timeout=30)
    finally:
        if subscribe.poll() is None:
            subscribe.kill()
            subscribe.wait()
    assert subscribe.returncode == 130  # interrupted (no -C reached), and the place released
    assert rig.acquired_by("rack-a") is None


def test_ports_lists_the_places_with_serial_ports(rig: LabgridRig) -> None:
    ports = atbridge(rig, "ports", "--labgrid", "--json")
    out, err = ports.communicate(timeout=60)
    assert ports.returncode == 0, err
    (place,) = json.loads(out)["places"]
    assert place["port"] == "labgrid://rack-a"
    assert place["tags"] == {"board": "nrf9160dk"}
    assert place["acquired_by"] is None
    assert place["serial"][0]["path"] == "exporter-rack-a/board/NetworkSerialPort/RawSerialPort"
    table = atbridge(rig, "ports", "--labgrid", rig.address)
    out, _ = table.communicate(timeout=60)
    assert "labgrid://rack-a" in out and "board=nrf9160dk" in out


async def test_the_python_api_holds_the_place_for_the_block(
    rig: LabgridRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_COORDINATOR", rig.address)
    async with acquire("rack-a") as lease:
        assert lease.url.startswith("rfc2217://127.0.0.1:")
        assert lease.baudrate == 115200 and lease.acquired_here
        assert rig.acquired_by("rack-a") is not None
        modem = await Modem.open(lease.url, baudrate=lease.baudrate)
        try:
            assert (await identify(modem)).dialect == "nrf91-slm"
        finally:
            await modem.close()
        # already this user's on this host: used as it is, and left to its holder
        async with acquire("rack-a", coordinator=rig.address) as again:
            assert again.url == lease.url and not again.acquired_here
        assert rig.acquired_by("rack-a") is not None
    assert rig.acquired_by("rack-a") is None


async def test_an_unknown_place_names_the_ones_there_are(rig: LabgridRig) -> None:
    with pytest.raises(PortNotFound, match=r"'rack-z' does not exist .*places: rack-a"):
        async with acquire("rack-z", coordinator=rig.address):
            pass


def test_a_coordinator_that_is_not_there_is_a_farm_failure(tmp_path: Path) -> None:
    from tests.brokers import free_port

    env = {**os.environ, "LG_COORDINATOR": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "atbridge", "info", "--port", "labgrid://rack-a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot reach the labgrid coordinator" in result.stderr
