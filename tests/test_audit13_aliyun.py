"""Audit of issue 13: TLS on the modem with host files, ``creds aliyun`` and ``register``.

- A CA, certificate or key file given with TLS on the modem was silently unused (the
  modem trusts what its security tag holds; ``publish --tls modem --cafile KEY`` went
  online and failed the handshake): now refused, for plain credentials, Aliyun devices
  and registration alike.
- ``creds aliyun --tls modem --sec-tag 0`` printed ``ca -`` (tag 0 taken as none), and
  without ``--sec-tag`` said nothing of the tag it needs.
- ``register aliyun``: the DeviceSecret comes once, so a ``--output`` directory it
  cannot write, ``--tls modem`` without ``--sec-tag`` and a CA file that cannot be loaded
  are refused before the port is opened (they used to fail after going online, the
  first one after the secret had arrived).
"""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from atbridge.commands import creds, register
from atbridge.credentials import (
    AliyunDevice,
    AliyunProduct,
    MqttCredentials,
    Secret,
    TlsMode,
)
from atbridge.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
NO_PORT = "/dev/atbridge-no-such-port"
ALIYUN = ["aliyun", "--product-key", "a1PK", "--device-name", "d1", "--device-secret", "s3cr3t"]


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def creds_run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="atbridge creds")
    creds.configure(parser)
    assert creds.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


# -- host files with TLS on the modem ------------------------------------------------------------


def test_plain_credentials_refuse_a_ca_file_with_tls_on_the_modem(ca_file: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        MqttCredentials.plain(client_id="c", host="h", tls="modem", sec_tag=1, cafile=str(ca_file))
    assert 'cafile set with tls = "modem"' in str(refused.value)
    assert "atbridge certs write --sec-tag N" in (refused.value.hint or "")
    with pytest.raises(ConfigurationError, match="certfile, keyfile set with tls"):
        MqttCredentials.plain(
            client_id="c", host="h", tls="modem", sec_tag=1, certfile="c.pem", keyfile="k.pem"
        )
    # host-side TLS takes the same file; the modem takes its tag
    assert MqttCredentials.plain(client_id="c", host="h", tls="host", cafile=str(ca_file))
    modem = MqttCredentials.plain(client_id="c", host="h", tls="modem", sec_tag=1)
    assert modem.tls_options.cafile is None and modem.tls_options.sec_tag == 1


def test_aliyun_device_and_product_refuse_a_ca_file_with_tls_on_the_modem(ca_file: Path) -> None:
    device = AliyunDevice("pk", "d", Secret("s"), tls=TlsMode.MODEM, sec_tag=3, cafile=str(ca_file))
    with pytest.raises(ConfigurationError, match='cafile set with tls = "modem"'):
        device.credentials()
    with pytest.raises(ConfigurationError, match='cafile set with tls = "modem"'):
        AliyunProduct("pk", Secret("ps"), tls=TlsMode.MODEM, sec_tag=3, cafile=str(ca_file))
    product = AliyunProduct("pk", Secret("ps"), tls=TlsMode.MODEM, sec_tag=3)
    options = product.register_credentials("d").tls_options
    assert (options.cafile, options.sec_tag) == (None, 3)


def test_creds_aliyun_tls_modem_with_a_ca_file_is_refused(
    ca_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError, match='cafile set with tls = "modem"'):
        creds_run([*ALIYUN, "--tls", "modem", "--sec-tag", "2", "--cafile", str(ca_file)], capsys)


# -- creds aliyun: the security tag --------------------------------------------------------------


def test_creds_aliyun_names_security_tag_0(capsys: pytest.CaptureFixture[str]) -> None:
    text = creds_run([*ALIYUN, "--tls", "modem", "--sec-tag", "0"], capsys)
    assert "the CA under security tag 0 on the modem" in text


def test_creds_aliyun_tls_modem_without_a_tag_says_it_needs_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = creds_run([*ALIYUN, "--tls", "modem"], capsys)
    ca_line = next(line for line in text.splitlines() if line.startswith("ca "))
    assert "--tls modem needs --sec-tag N" in ca_line
    assert "s3cr3t" not in text


# -- register aliyun: refused before the port ----------------------------------------------------


def run_register(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATBRIDGE_PRODUCT_SECRET": "pr0ductS3cret"}
    return subprocess.run(
        [sys.executable, "-m", "atbridge", "register", "aliyun", "--port", NO_PORT,
         "--product-key", "a1PK", "--device-name", "d1", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tls", "modem"], "--tls modem needs --sec-tag N"),
        (["--cafile", "{missing}"], "cannot use the CA file"),
        (["--cafile", "{not_pem}"], "cannot use the CA file"),
        (["--tls", "modem", "--sec-tag", "1", "--cafile", "{ca}"], 'cafile set with tls = "modem"'),
    ],
)
def test_register_refuses_tls_it_cannot_use_before_the_port(
    extra: list[str], message: str, tmp_path: Path, ca_file: Path
) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    names = {"missing": str(tmp_path / "none.pem"), "not_pem": str(not_pem), "ca": str(ca_file)}
    done = run_register("--output", str(tmp_path / "d1.toml"), *(a.format(**names) for a in extra))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "what to try:" in done.stderr
    assert NO_PORT not in done.stderr and "Traceback" not in done.stderr
    assert "pr0ductS3cret" not in done.stderr + done.stdout


def test_register_refuses_an_output_under_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "plain-file"
    parent.write_text("x")
    done = run_register("--output", str(parent / "d1.toml"))
    assert done.returncode == 2, done.stderr
    assert f"{parent} is not a directory" in done.stderr
    assert NO_PORT not in done.stderr


def test_an_output_directory_that_cannot_be_written_is_found_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe creates a file: permissions and read-only file systems alike (also for
    root), here a read-only file system."""
    import tempfile

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ConfigurationError) as refused:
        register._check_output(str(tmp_path / "d1.toml"), force=False)
    assert "Read-only file system" in str(refused.value)
    assert "returned only once" in (refused.value.hint or "")


def test_the_write_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    register._check_output(str(tmp_path / "d1.toml"), force=False)
    assert list(tmp_path.iterdir()) == []
