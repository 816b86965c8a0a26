"""``atbridge register aliyun``: dynamic registration through a fake modem, as a real process.

The CLI runs in a subprocess on a fake modem's pty; the fake bridges its socket to the
local responder (tests/fakes/aliyun_register.py), a TLS server that answers like the
documented ``/ext/register`` flow and checks the client id form, the user name and the
HMAC. Host-side TLS puts ciphertext on the serial line; TLS on the modem (the nRF91's
``#XSSOCKET``, with the test CA provisioned in the fake's ``%CMNG`` store) puts the
broker's reply — the DeviceSecret — on the serial line in clear: the transcript and the
output must not show it either way.
"""

# ruff: noqa: F811  (the fixture, imported, is then named as a parameter)
from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from atbridge.aliyun import credentials_toml, write_private
from atbridge.config import load_credentials
from atbridge.credentials import AliyunDevice, Secret
from atbridge.dialects import DIALECTS
from atbridge.errors import ConfigurationError
from tests.brokers import Certificates
from tests.fakes import FakeModem
from tests.fakes.aliyun_register import AliyunRegisterResponder
from tests.test_commands_bridge import (  # noqa: F401  (the fixture)
    StartCli,
    atbridge,
    child_env,
    run_cli,
)

FIVE = sorted(name for name in DIALECTS if name != "generic")
PK, PS = "a1RegTest01", "ProductSecretOnlyForTests0123456"
DN, DS = "reg-device-01", "ReturnedDeviceSecretXyz987654321"
SECRETS = (PS, DS)


@asynccontextmanager
async def responder(
    certs: Certificates,
    server_pair: tuple[Path, Path],
    *,
    tls: bool = True,
    **options: object,
) -> AsyncIterator[AliyunRegisterResponder]:
    cert, key = server_pair
    async with AliyunRegisterResponder(
        {PK: PS},
        {(PK, DN): DS},
        certfile=cert if tls else None,
        keyfile=key if tls else None,
        **options,  # type: ignore[arg-type]
    ) as server:
        yield server


def register_args(
    fake: FakeModem,
    server: AliyunRegisterResponder,
    certs: Certificates,
    output: Path,
    *,
    modem_tag: int | None = None,
) -> list[str]:
    """The command line; ``modem_tag``: TLS on the modem under that tag (no --cafile: the
    modem reads no file here, its tag holds the CA)."""
    tls = (
        ["--cafile", str(certs.cafile)]
        if modem_tag is None
        else ["--tls", "modem", "--sec-tag", str(modem_tag)]
    )
    return [
        "register", "aliyun", "--port", fake.port, "--product-key", PK, "--device-name", DN,
        "--host", "localhost", "--broker-port", str(server.port), *tls,
        "--output", str(output), "--give-up-after", "30",
    ]  # fmt: skip


def env_with(product_secret: str = PS) -> dict[str, str]:
    return child_env(ATBRIDGE_PRODUCT_SECRET=product_secret)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def assert_registered_file(output: Path, port: int) -> None:
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    table = tomllib.loads(output.read_text())["aliyun"]
    device = AliyunDevice(**table)
    assert isinstance(device.device_secret, Secret)
    assert (device.product_key, device.device_name) == (PK, DN)
    assert device.device_secret.reveal() == DS
    # It loads back as the bridge loads any --credentials file, and signs with the secret.
    credentials = load_credentials(output, env={})
    assert (credentials.host, credentials.port, credentials.tls) == ("localhost", port, True)
    assert credentials.password == AliyunDevice(PK, DN, Secret(DS)).password()


def the_connect_was_documented(server: AliyunRegisterResponder) -> None:
    [connect] = server.connects
    base, params = connect.client_id.split("|")[:2]
    assert base == f"{PK}.{DN}" and connect.client_id.endswith("|")
    fields = dict(item.split("=") for item in params.split(","))
    assert fields["securemode"] == "2" and fields["authType"] == "register"
    assert fields["signmethod"] == "hmacsha256" and len(fields["random"]) >= 8
    assert connect.username == f"{DN}&{PK}"
    assert connect.return_code == 0


@pytest.mark.parametrize("dialect", FIVE)
async def test_register_over_host_side_tls_writes_the_device_file(
    dialect: str,
    certs: Certificates,
    server_pair: tuple[Path, Path],
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    output = tmp_path / "device.toml"
    transcript = tmp_path / "serial.log"
    async with responder(certs, server_pair) as server:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            args = [*register_args(fake, server, certs, output), "--transcript", str(transcript)]
            cli = await run_cli(atbridge, *args, env=env_with())
        assert cli.proc.returncode == 0, cli.stderr
        the_connect_was_documented(server)
    assert cli.out == [
        f"registered {DN} of product {PK} at localhost:{server.port}: its credentials "
        f"(DeviceSecret included) are in {output} (mode 0600)"
    ]
    assert_registered_file(output, server.port)
    assert_no_secret(cli.stdout, cli.stderr, transcript.read_text())


@pytest.mark.parametrize("dialect", ["nrf91-sm", "sim7080"])
async def test_a_platform_that_ends_tls_with_close_notify_after_its_reply(
    dialect: str,
    certs: Certificates,
    server_pair: tuple[Path, Path],
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    # An orderly TLS close right behind the reply ends the stream as a peer close; the
    # reply that came before it is taken (host-side TLS once spun on the empty reads).
    output = tmp_path / "device.toml"
    async with responder(certs, server_pair, close_notify=True) as server:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            cli = await run_cli(
                atbridge, *register_args(fake, server, certs, output), env=env_with()
            )
        assert cli.proc.returncode == 0, cli.stderr
    assert_registered_file(output, server.port)
    assert_no_secret(cli.stdout, cli.stderr)


@pytest.mark.parametrize("dialect", ["nrf91-slm", "nrf91-sm"])
async def test_with_tls_on_the_modem_the_clear_reply_is_masked_in_the_transcript(
    dialect: str,
    certs: Certificates,
    server_pair: tuple[Path, Path],
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    """The nRF91 does TLS: the reply crosses the serial line in clear, masked as it comes."""
    from tests.fakes import nrf91_tls

    output = tmp_path / "device.toml"
    transcript = tmp_path / "serial.log"
    async with responder(certs, server_pair) as server:
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            nrf91_tls.store(fake, 42, nrf91_tls.CA, certs.cafile.read_text())
            args = [
                *register_args(fake, server, certs, output, modem_tag=42),
                "--transcript", str(transcript), "--json",
            ]  # fmt: skip
            cli = await run_cli(atbridge, *args, env=env_with())
        assert cli.proc.returncode == 0, cli.stderr
        the_connect_was_documented(server)
    record = transcript.read_text()
    assert "/ext/register" in record  # the reply did cross the serial line in clear ...
    assert '"deviceSecret":"***"' in record
    assert_no_secret(cli.stdout, cli.stderr, record)  # ... and its secret was masked
    report = json.loads(cli.out[-1])
    assert report["registered"] is True and report["tls"] == "modem"
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    table = tomllib.loads(output.read_text())["aliyun"]
    assert (table["device_secret"], table["tls"], table["sec_tag"]) == (DS, "modem", 42)


async def test_debug_output_masks_the_secrets_too(
    certs: Certificates, server_pair: tuple[Path, Path], atbridge: StartCli, tmp_path: Path
) -> None:
    from tests.fakes import nrf91_tls

    output = tmp_path / "device.toml"
    async with responder(certs, server_pair) as server:
        async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
            nrf91_tls.store(fake, 42, nrf91_tls.CA, certs.cafile.read_text())
            args = [*register_args(fake, server, certs, output, modem_tag=42), "-d"]
            cli = await run_cli(atbridge, *args, env=env_with())
        assert cli.proc.returncode == 0, cli.stderr
    assert "RX " in cli.stderr and "/ext/register" in cli.stderr  # the transcript, on stderr
    assert_no_secret(cli.stdout, cli.stderr)


async def test_a_wrong_product_secret_is_refused_and_nothing_is_written(
    certs: Certificates, server_pair: tuple[Path, Path], atbridge: StartCli, tmp_path: Path
) -> None:
    output = tmp_path / "device.toml"
    async with responder(certs, server_pair) as server:
        async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
            wrong = "NotTheProductSecret000000000000"
            cli = await run_cli(
                atbridge, *register_args(fake, server, certs, output), env=env_with(wrong)
            )
        assert [c.return_code for c in server.connects] == [4]  # one attempt, no retry storm
    assert cli.proc.returncode == 4, cli.stderr
    assert "the registration was refused: " in cli.stderr
    assert "ProductSecret" in cli.stderr  # the hint names what to check
    assert not output.exists()
    assert_no_secret(cli.stdout, cli.stderr)
    assert wrong not in cli.stderr and "Traceback" not in cli.stderr


def not_json(_pk: str, _dn: str, secret: str) -> bytes:
    return b"deviceSecret=" + secret.encode()


def nothing(_pk: str, _dn: str, _secret: str) -> None:
    return None


@pytest.mark.parametrize(
    ("reply", "hold_open", "timeout", "code", "message"),
    [
        (not_json, False, "20", 3, "is not JSON"),
        (nothing, False, "20", 3, "ended after the CONNACK without a registration reply"),
        (nothing, True, "1", 5, "no registration reply on /ext/register within 1 s"),
    ],
)
async def test_a_bad_or_missing_reply_is_a_clear_error(
    reply: Callable[[str, str, str], bytes | None],
    hold_open: bool,
    timeout: str,
    code: int,
    message: str,
    certs: Certificates,
    server_pair: tuple[Path, Path],
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    output = tmp_path / "device.toml"
    async with responder(certs, server_pair, reply=reply, hold_open=hold_open) as server:
        async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
            args = [*register_args(fake, server, certs, output), "--timeout", timeout]
            cli = await run_cli(atbridge, *args, env=env_with())
        assert len(server.connects) == 1  # no second CONNECT with the same nonce
    assert cli.proc.returncode == code, cli.stderr
    assert message in cli.stderr
    assert not output.exists()
    assert_no_secret(cli.stdout, cli.stderr)
    assert "Traceback" not in cli.stderr


async def test_an_existing_output_is_kept_unless_force(
    certs: Certificates, server_pair: tuple[Path, Path], atbridge: StartCli, tmp_path: Path
) -> None:
    output = tmp_path / "device.toml"
    output.write_text("# mine\n")
    output.chmod(0o644)
    async with responder(certs, server_pair) as server:
        async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
            refused = await run_cli(
                atbridge, *register_args(fake, server, certs, output), env=env_with()
            )
            assert refused.proc.returncode == 2
            assert "exists: not overwritten" in refused.stderr and "--force" in refused.stderr
            assert server.connects == []  # refused before going online: the secret is one-time
            assert output.read_text() == "# mine\n"
            forced = await run_cli(
                atbridge, *register_args(fake, server, certs, output), "--force", env=env_with()
            )
        assert forced.proc.returncode == 0, forced.stderr
    assert_registered_file(output, server.port)


async def test_no_product_secret_is_a_usage_error(atbridge: StartCli, tmp_path: Path) -> None:
    env = child_env()
    cli = await run_cli(
        atbridge, "register", "aliyun", "--port", "/dev/null", "--product-key", PK,
        "--device-name", DN, "--output", str(tmp_path / "x.toml"), env=env,
    )  # fmt: skip
    assert cli.proc.returncode == 2
    assert "no ProductSecret given" in cli.stderr and "ATBRIDGE_PRODUCT_SECRET" in cli.stderr


# -- the file, without a modem ---------------------------------------------------------------


def test_write_private_creates_0600_whatever_the_umask(tmp_path: Path) -> None:
    output = tmp_path / "device.toml"
    device = AliyunDevice(PK, DN, Secret(DS), region="ap-southeast-1")
    old = os.umask(0)
    try:
        write_private(output, credentials_toml(device))
    finally:
        os.umask(old)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    loaded = load_credentials(output, env={})
    assert loaded.host == f"{PK}.iot-as-mqtt.ap-southeast-1.aliyuncs.com"
    assert loaded.password == device.password()
    with pytest.raises(ConfigurationError, match="exists: not overwritten"):
        write_private(output, "other")


def test_write_private_with_force_replaces_by_a_new_0600_file(tmp_path: Path) -> None:
    output = tmp_path / "device.toml"
    output.write_text("old")
    output.chmod(0o644)
    before = output.stat().st_ino
    write_private(output, "new\n", force=True)
    assert output.read_text() == "new\n"
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.stat().st_ino != before  # never the old (world-readable) file rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.toml"]


def test_the_file_keeps_what_is_not_a_default() -> None:
    device = AliyunDevice(
        PK, DN, Secret('with "quote" and \\'), instance_id="iot-x", cafile="/etc/ca.pem",
        port=443, endpoint="private.example",
    )  # fmt: skip
    table = tomllib.loads(credentials_toml(device))["aliyun"]
    assert table == {
        "product_key": PK, "device_name": DN, "device_secret": 'with "quote" and \\',
        "secure_mode": 2, "instance_id": "iot-x", "endpoint": "private.example", "port": 443,
        "cafile": "/etc/ca.pem",
    }  # fmt: skip
    assert AliyunDevice(**table).credentials() == device.credentials()


# -- the reply in clear on every dialect's serial framing ------------------------------------


@pytest.mark.parametrize("dialect", FIVE)
async def test_a_reply_in_clear_is_masked_on_every_dialect(
    dialect: str, certs: Certificates, server_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Plain TCP to the responder (the registration's bytes as TLS on the modem leaves them
    on the serial line): each dialect's framing of received data (``#XRECV``, ``+CARECV``,
    ``+CIPRXGET``...) carries the reply, and the transcript masks its secret."""
    from dataclasses import replace

    from atbridge import aliyun
    from atbridge.bridge import Bridge
    from atbridge.credentials import AliyunProduct
    from tests.test_fsm import config

    transcript = tmp_path / "serial.log"
    async with responder(certs, server_pair, tls=False) as server:
        product = AliyunProduct(PK, Secret(PS), endpoint="127.0.0.1", port=server.port)
        credentials = replace(product.register_credentials(DN), tls=False)
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            bridge = Bridge(
                config=config(
                    fake, server.port, credentials=credentials, transcript=str(transcript)
                )
            )
            transitions = aliyun.prepare(bridge)
            await bridge.start()
            try:
                device = await aliyun.register(bridge, product, DN, transitions=transitions)
            finally:
                await bridge.close()
        the_connect_was_documented(server)
    assert isinstance(device.device_secret, Secret) and device.device_secret.reveal() == DS
    record = transcript.read_text()
    assert "/ext/register" in record and '"deviceSecret":"***"' in record
    assert_no_secret(record)
