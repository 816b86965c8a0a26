"""Audit of issue 13: ``certs write --json`` on the SIMCom families names the files.

The SIMCom stores keep files named after the tag (``atb<N>ca.pem``...), which ``certs
list`` shows as ``name``; ``certs write --json`` said ``"name": null`` for the same items.
Each family's write report now names the file its list shows, through the real CLI on the
family's fake.
"""

# ruff: noqa: F811  (the fixtures, imported, are then named as parameters)
from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401  (fixtures)
    StartCli,
    atbridge,
    run_cli,
)


@pytest.mark.parametrize("dialect", ["sim7080", "sim7600"])
async def test_write_json_names_the_files_list_shows(
    dialect: str, tmp_path: Path, atbridge: StartCli
) -> None:
    ca = trustme.CA()
    client = ca.issue_cert("device.example")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    async with FakeModem(dialect=dialect) as fake:
        common = ["--port", fake.port, "--dialect", dialect, "--sec-tag", "8", "--json"]
        write = await run_cli(
            atbridge, "certs", "write", *common,
            "--ca", str(files["ca"]), "--cert", str(files["cert"]), "--key", str(files["key"]),
        )  # fmt: skip
        assert write.proc.returncode == 0, write.stderr
        written = {item["kind"]: item["name"] for item in json.loads(write.stdout)["items"]}
        listed = await run_cli(atbridge, "certs", "list", *common)
        assert listed.proc.returncode == 0, listed.stderr
        names = {item["kind"]: item["name"] for item in json.loads(listed.stdout)["items"]}
    assert written == names == {"ca": "atb8ca.pem", "cert": "atb8cert.pem", "key": "atb8key.pem"}


@pytest.mark.parametrize("dialect", ["sim7080", "sim7600"])
async def test_a_batch_with_one_file_too_large_writes_nothing(
    dialect: str, tmp_path: Path, atbridge: StartCli
) -> None:
    """The CA fits, the client certificate (a chain padded past 10240 bytes) does not: the
    whole write is refused before the first upload, so no tag is left half provisioned."""
    ca = trustme.CA()
    client = ca.issue_cert("device.example")
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "k.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    chain = client.cert_chain_pems[0].bytes()
    cert_path.write_bytes(chain * (10240 // len(chain) + 1))
    client.private_key_pem.write_to_path(str(key_path))
    async with FakeModem(dialect=dialect) as fake:
        cli = await run_cli(
            atbridge, "certs", "write", "--port", fake.port, "--dialect", dialect,
            "--sec-tag", "8", "--ca", str(ca_path), "--cert", str(cert_path),
            "--key", str(key_path),
        )  # fmt: skip
        assert cli.proc.returncode == 2, cli.stderr
        assert "client certificate for security tag 8 is" in cli.stderr
        uploads = [line for line in fake.commands if "CFSWFILE" in line or "CCERTDOWN" in line]
        assert uploads == []
