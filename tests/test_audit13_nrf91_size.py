"""The nRF91's AT command buffer bounds what ``AT%CMNG`` can write: refused before the port.

The Serial LTE Modem reads a command into ``slm_at_buf[SLM_AT_MAX_CMD_LEN + 1]``
(``SLM_AT_MAX_CMD_LEN`` 4096, sdk-nrf ``slm_defines.h``) and answers ``ERROR`` to a
longer line; the Serial Modem's ``CONFIG_SM_AT_BUF_SIZE`` is 4096 too. The fakes hold
the same limit, so a line of 4096 bytes is taken and one of 4097 refused, on both. A CA
bundle or a key too large for one line is refused by ``nrf91_certs.check_size`` with
what to do: before the port is opened when ``--dialect`` names an nRF91, before the first
write otherwise (nothing written, the radio never switched), and never naming a key.
"""

# ruff: noqa: F811  (the fixtures, imported, are then named as parameters)
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge.certs import CredentialKind, read_pem
from atbridge.dialects import dialect_class
from atbridge.dialects.nrf91_certs import MAX_COMMAND_LINE, Nrf91Store, check_size, write_line
from atbridge.errors import ConfigurationError, ModemError
from atbridge.modem import Modem
from tests.fakes import FakeModem, nrf91_tls
from tests.test_commands_bridge import (  # noqa: F401  (fixtures)
    StartCli,
    atbridge,
    run_cli,
)

ROOT = Path(__file__).resolve().parent.parent
NORDIC = ("nrf91-slm", "nrf91-sm")
NO_PORT = "/dev/atbridge-no-such-port"
TAG = 9


def certificate_of(length: int) -> str:
    """A PEM-shaped text of exactly ``length`` characters (the fake stores any text)."""
    head, tail = "-----BEGIN CERTIFICATE-----\n", "\n-----END CERTIFICATE-----"
    body = length - len(head) - len(tail)
    lines = [("A" * 64) for _ in range(body // 65)]
    filler = "\n".join(lines)
    rest = body - len(filler) - (1 if lines else 0)
    body_text = (filler + "\n" + "A" * rest) if lines else "A" * body
    text = head + body_text + tail
    assert len(text) == length
    return text


def fitting(extra: int) -> str:
    """A CA whose ``AT%CMNG=0`` line is ``MAX_COMMAND_LINE + extra`` bytes long."""
    overhead = len(write_line(TAG, CredentialKind.CA, "")[0])
    return certificate_of(MAX_COMMAND_LINE + extra - overhead)


def big_key_file(folder: Path) -> Path:
    """A PEM private key (DER-shaped) whose line would not fit in the buffer."""
    der = b"\x30\x82\x10\x00" + os.urandom(3600)
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    path = folder / "big.key"
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    return path


def key_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("-----")]


def test_check_size_takes_4096_bytes_and_refuses_4097() -> None:
    assert len(write_line(TAG, CredentialKind.CA, fitting(0))[0]) == MAX_COMMAND_LINE
    check_size(TAG, CredentialKind.CA, fitting(0))
    with pytest.raises(ConfigurationError) as refused:
        check_size(TAG, CredentialKind.CA, fitting(1))
    message = str(refused.value)
    assert "too large for the nRF91" in message and "4096 bytes a line" in message
    assert "not a whole bundle" in (refused.value.hint or "")
    assert "--tls host" in (refused.value.hint or "")


@pytest.mark.parametrize("dialect", NORDIC)
async def test_the_fake_takes_the_limit_and_refuses_one_byte_more(
    dialect: str, tmp_path: Path
) -> None:
    """The fakes' line buffer is the firmware's: the limit check_size applies is real."""
    async with FakeModem(dialect=dialect, cfun=4) as fake:
        modem = await Modem.open(fake.port, transcript=tmp_path / "t.log")
        try:
            line, _ = write_line(TAG, CredentialKind.CA, fitting(0))
            await modem.command(line, multiline=True, timeout=10)
            assert nrf91_tls.credentials(fake)[(TAG, nrf91_tls.CA)] == fitting(0)
            longer, _ = write_line(TAG, CredentialKind.CA, fitting(1))
            assert len(longer) == MAX_COMMAND_LINE + 1
            with pytest.raises(ModemError):
                await modem.command(longer, multiline=True, timeout=10)
            assert nrf91_tls.credentials(fake)[(TAG, nrf91_tls.CA)] == fitting(0)  # kept
        finally:
            await modem.close()


@pytest.mark.parametrize("dialect", NORDIC)
async def test_the_store_refuses_before_switching_the_radio(dialect: str, tmp_path: Path) -> None:
    async with FakeModem(dialect=dialect, cfun=1) as fake:
        modem = await Modem.open(fake.port, transcript=tmp_path / "t.log")
        try:
            store = Nrf91Store(dialect_class(dialect)(modem))
            with pytest.raises(ConfigurationError, match="too large for the nRF91"):
                await store.write(TAG, CredentialKind.CA, fitting(1))
        finally:
            await modem.close()
        assert not [line for line in fake.commands if line.upper().startswith("AT+CFUN")]
        assert not [line for line in fake.commands if line.upper().startswith("AT%CMNG=0")]
        assert fake.state.cfun == 1
        assert store.changes == []


@pytest.mark.parametrize("dialect", NORDIC)
def test_the_cli_refuses_before_the_port_with_an_nrf91_dialect(
    dialect: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.pem"
    cas = [trustme.CA() for _ in range(8)]
    bundle.write_text("".join(ca.cert_pem.bytes().decode() for ca in cas))
    assert len(read_pem(str(bundle), CredentialKind.CA).content) > MAX_COMMAND_LINE
    done = subprocess.run(
        [sys.executable, "-m", "atbridge", "certs", "write", "--sec-tag", "3", "--ca",
         str(bundle), "--port", NO_PORT, "--dialect", dialect.upper()],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--ca: the CA certificate is" in done.stderr
    assert "too large for the nRF91" in done.stderr and "what to try:" in done.stderr
    assert NO_PORT not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("dialect", NORDIC)
async def test_a_batch_with_one_item_too_large_writes_nothing(
    dialect: str, tmp_path: Path, atbridge: StartCli
) -> None:
    """Without --dialect the family is known only on the port: still nothing is written,
    the CA that would fit included, the radio is not switched, the key is not shown."""
    ca = trustme.CA()
    client = ca.issue_cert("device.example")
    ca_path, cert_path = tmp_path / "ca.pem", tmp_path / "cert.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    client.cert_chain_pems[0].write_to_path(str(cert_path))
    key = big_key_file(tmp_path)
    async with FakeModem(dialect=dialect, cfun=1) as fake:
        cli = await run_cli(
            atbridge, "certs", "write", "--sec-tag", "5", "--ca", str(ca_path),
            "--cert", str(cert_path), "--key", str(key), "--port", fake.port,
        )  # fmt: skip
        assert cli.proc.returncode == 2, cli.stderr
        assert "--key: the client private key is" in cli.stderr
        assert "smaller key" in cli.stderr
        assert nrf91_tls.credentials(fake) == {}
        assert not [line for line in fake.commands if line.upper().startswith("AT+CFUN=")]
        assert fake.state.cfun == 1
    for line in key_lines(key):
        assert line not in cli.stderr and line not in cli.stdout


def test_a_pem_file_larger_than_read_is_refused_not_cut(tmp_path: Path) -> None:
    """read_pem read the first MiB only: a bigger bundle lost its last certificates."""
    from atbridge.certs import MAX_PEM_FILE

    pem = trustme.CA().cert_pem.bytes()
    big = tmp_path / "big.pem"
    big.write_bytes(pem * (MAX_PEM_FILE // len(pem) + 1))
    with pytest.raises(ConfigurationError, match="is larger than 1 MiB"):
        read_pem(str(big), CredentialKind.CA)
    exact = tmp_path / "exact.pem"
    exact.write_bytes(pem + b"\n" * (MAX_PEM_FILE - len(pem)))
    assert read_pem(str(exact), CredentialKind.CA).blocks == 1
