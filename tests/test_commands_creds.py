"""Tests for ``atbridge creds`` (atbridge/commands/creds.py), driven through configure/run."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from atbridge.at_mqtt import Connect, decode
from atbridge.commands import creds
from atbridge.errors import ConfigurationError, LocalProtocolError

DOCS_PASSWORD = "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
DOCS_ARGS = [
    "aliyun", "--product-key", "pk", "--device-name", "device", "--device-secret", "secret",
    "--client-id", "12345", "--timestamp", "789", "--sign-method", "hmacsha1",
    "--secure-mode", "3",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATBRIDGE_DEVICE_SECRET", "ATBRIDGE_PRODUCT_KEY", "ATBRIDGE_DEVICE_NAME",
                 "ATBRIDGE_MQTT_PASSWORD"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="atbridge creds")
    creds.configure(parser)
    code = creds.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_aliyun_json_has_the_documented_keys_and_masks_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run([*DOCS_ARGS, "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["client_id"] == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert report["username"] == "device&pk"
    assert report["password"] == "********"
    assert report["host"] == "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert (report["port"], report["tls"]) == (1883, False)
    assert DOCS_PASSWORD not in out
    assert "secret" not in out


def test_show_secret_prints_the_published_password(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run([*DOCS_ARGS, "--json", "--show-secret"], capsys)
    assert json.loads(out)["password"] == DOCS_PASSWORD


def test_text_output_is_readable_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(DOCS_ARGS, capsys)
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["username"] == "device&pk"
    assert lines["tls"] == "no"
    assert lines["password"].startswith("********")
    assert "--show-secret" in lines["password"]
    assert DOCS_PASSWORD not in out


def test_connect_frame_with_show_secret_is_a_valid_connect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = run([*DOCS_ARGS, "--keepalive", "120", "--json", "--show-secret",
                     "--connect-frame"], capsys)  # fmt: skip
    frame = bytes.fromhex(json.loads(out)["connect_frame"].replace(" ", ""))
    packet = decode(frame)
    assert isinstance(packet, Connect)
    assert packet.client_id == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert packet.password == DOCS_PASSWORD.encode()
    assert packet.keepalive == 120


def test_connect_frame_masks_exactly_the_password_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run([*DOCS_ARGS, "--connect-frame"], capsys)
    frame_line = next(line for line in out.splitlines() if line.startswith("connect_frame"))
    octets = frame_line.split()[1:]
    assert octets[-40:] == ["**"] * 40  # a 40-hex-digit SHA-1 password
    assert octets[-42:-40] == ["00", "28"]  # its length prefix is still shown
    assert octets[0] == "10"
    assert DOCS_PASSWORD.encode().hex() not in "".join(octets)
    assert "add --show-secret" in out


def test_secret_from_environment_and_region(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATBRIDGE_DEVICE_SECRET", "secret")
    _, out = run(["aliyun", "--product-key", "a1PK", "--device-name", "dev",
                     "--region", "ap-southeast-1", "--json"], capsys)  # fmt: skip
    report = json.loads(out)
    assert report["host"] == "a1PK.iot-as-mqtt.ap-southeast-1.aliyuncs.com"
    assert (report["port"], report["tls"], report["keepalive"]) == (8883, True, 300)


def test_instance_id_and_region_are_mutually_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run([*DOCS_ARGS, "--region", "r", "--instance-id", "i"], capsys)


def test_credentials_file_with_option_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "device.toml"
    toml = 'product_key = "pk"\ndevice_name = "device"\ndevice_secret = "secret"\n'
    path.write_text(f'[aliyun]\n{toml}client_id = "12345"\n', encoding="utf-8")
    _, out = run(["aliyun", "--credentials", str(path), "--timestamp", "789",
                     "--sign-method", "hmacsha1", "--secure-mode", "3", "--json",
                     "--show-secret"], capsys)  # fmt: skip
    assert json.loads(out)["password"] == DOCS_PASSWORD


def test_missing_device_secret_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError, match="device_secret is missing"):
        run(["aliyun", "--product-key", "pk", "--device-name", "d"], capsys)


def test_aliyun_keepalive_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError, match="keepalive"):
        run([*DOCS_ARGS, "--keepalive", "10"], capsys)


def test_plain_json_and_frame(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(["plain", "--client-id", "bench-1", "--username", "u", "--password", "pw",
                     "--host", "10.0.0.2", "--port", "1884", "--json", "--show-secret",
                     "--connect-frame"], capsys)  # fmt: skip
    report = json.loads(out)
    assert report["client_id"] == "bench-1"
    assert (report["host"], report["port"], report["tls"]) == ("10.0.0.2", 1884, False)
    assert report["password"] == "pw"
    assert report["connect_frame"] == (
        "10 1a 00 04 4d 51 54 54 04 c2 00 3c 00 07 62 65 6e 63 68 2d 31 00 01 75 00 02 70 77"
    )


def test_plain_without_host_shows_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(["plain", "--client-id", "c"], capsys)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["host"] == "-"
    assert lines["port"] == "1883"


def test_plain_password_without_username_cannot_make_a_311_frame(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for extra in (["--connect-frame"], [], ["--json"]):
        # Refused whether or not the frame is printed: the bridge could not send it.
        with pytest.raises(LocalProtocolError, match=r"\[MQTT-3.1.2-22\]"):
            run(["plain", "--client-id", "c", "--password", "pw", *extra], capsys)


ROOT = Path(__file__).resolve().parent.parent


def atbridge(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI as a process, without the caller's ATBRIDGE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "atbridge", *argv],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_plain_without_a_client_id_shows_the_one_publish_would_invent() -> None:
    done = atbridge("creds", "plain", "--host", "h")
    assert done.returncode == 0, done.stderr
    client_id = dict(line.split(None, 1) for line in done.stdout.splitlines())["client_id"]
    assert re.fullmatch(
        r"atbridge-\d+-[0-9a-f]{6}  \(the default, atbridge-<pid>-<6 hex digits>: new each "
        r"run; set --client-id\)",
        client_id,
    ), client_id
    report = json.loads(atbridge("creds", "plain", "--host", "h", "--json").stdout)
    assert re.fullmatch(r"atbridge-\d+-[0-9a-f]{6}", report["client_id"])
    assert report["client_id_default"] is True
    given = json.loads(atbridge("creds", "plain", "--client-id", "me", "--json").stdout)
    assert given["client_id"] == "me" and "client_id_default" not in given


@pytest.mark.parametrize(
    ("kind", "table", "other"), [("plain", "aliyun", "aliyun"), ("aliyun", "mqtt", "plain")]
)
def test_a_credentials_file_of_the_other_kind_names_the_command_that_reads_it(
    kind: str, table: str, other: str, tmp_path: Path
) -> None:
    path = tmp_path / "creds.toml"
    if table == "aliyun":
        path.write_text('[aliyun]\nproduct_key = "pk"\ndevice_name = "dn"\ndevice_secret = "s"\n')
    else:
        path.write_text('[mqtt]\nhost = "h"\nclient_id = "c"\n')
    done = atbridge("creds", kind, "--credentials", str(path))
    assert done.returncode == 2
    assert f"atbridge: {path} has an [{table}] table" in done.stderr
    assert f"what to try: use `atbridge creds {other} --credentials {path}`" in done.stderr
    assert "Traceback" not in done.stderr and "s\n" not in done.stdout


def test_command_module_imports_only_stdlib_at_top_level() -> None:
    import ast

    tree = ast.parse(Path(creds.__file__).read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = [
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in top_level
        for alias in node.names
    ]
    assert not [name for name in names if name.startswith("atbridge")]


# -- Aliyun over TLS: which CA, which port -------------------------------------------------

TLS_ARGS = ["aliyun", "--product-key", "a1PK", "--device-name", "d1", "--device-secret", "s3"]


def test_aliyun_tls_says_the_bundled_root_ca_and_port_8883(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from atbridge.credentials import ALIYUN_ROOT_CA

    _, out = run([*TLS_ARGS, "--json"], capsys)
    report = json.loads(out)
    assert (report["port"], report["tls"], report["tls_mode"]) == (8883, True, "host")
    assert (report["ca"], report["ca_bundled"]) == (ALIYUN_ROOT_CA, True)
    assert report["ca_subject"].endswith("O=Aliyun IoT, OU=Root CA, CN=Aliyun IoT Root CA")
    assert report["ca_expires"] == "2053-07-04T06:36:58Z"
    _, text = run(TLS_ARGS, capsys)
    lines = dict(line.split(None, 1) for line in text.splitlines())
    assert lines["ca"] == f"bundled Aliyun IoT Root CA ({ALIYUN_ROOT_CA})"
    assert lines["tls_mode"] == "host" and lines["ca_expires"] == "2053-07-04T06:36:58Z"


def test_aliyun_an_instance_ca_and_port_of_its_own(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.brokers import Certificates

    made = Certificates()
    try:
        args = [*TLS_ARGS, "--instance-id", "iot-x1", "--cafile", str(made.cafile),
                "--port", "443", "--json"]  # fmt: skip
        report = json.loads(run(args, capsys)[1])
    finally:
        made.remove()
    assert (report["host"], report["port"]) == ("iot-x1.mqtt.iothub.aliyuncs.com", 443)
    assert (report["ca"], report["ca_bundled"]) == (str(made.cafile), False)
    assert "Aliyun" not in report["ca_subject"]


def test_aliyun_tls_on_the_modem_names_the_security_tag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = json.loads(run([*TLS_ARGS, "--tls", "modem", "--sec-tag", "7", "--json"], capsys)[1])
    assert (report["tls_mode"], report["ca"], report["ca_sec_tag"]) == ("modem", None, 7)
    text = run([*TLS_ARGS, "--tls", "modem", "--sec-tag", "7"], capsys)[1]
    assert "the CA under security tag 7 on the modem" in text


def test_aliyun_securemode_3_has_no_ca_and_refuses_tls_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = json.loads(run([*TLS_ARGS, "--secure-mode", "3", "--json"], capsys)[1])
    assert (report["port"], report["tls"]) == (1883, False)
    assert "ca" not in report and "tls_mode" not in report
    with pytest.raises(ConfigurationError, match="cafile set but tls is off"):
        run([*TLS_ARGS, "--secure-mode", "3", "--cafile", str(tmp_path / "ca.pem")], capsys)
    with pytest.raises(ConfigurationError, match="secure_mode 3, which is plain TCP"):
        run([*TLS_ARGS, "--secure-mode", "3", "--tls", "host"], capsys)


def test_aliyun_an_unreadable_ca_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigurationError, match=f"cannot use the CA file {missing}"):
        run([*TLS_ARGS, "--cafile", str(missing)], capsys)
