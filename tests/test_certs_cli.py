"""``atbridge certs`` as a real process: bad input, round trips, masking, and TLS offload.

Bad input runs ``python -m atbridge certs ...`` with a port that does not exist: every
case exits 2 with what was wrong and what to do, and never names the port (the input is
checked before the port is opened). The round trips run the CLI as a child process
against the nRF91 fakes served by the test (tests/test_commands_bridge.py ``atbridge``),
so the fake's store, functional mode and command log can be checked afterwards. The end
to end proof writes the test CA with ``certs write`` and then publishes with ``--tls
modem --sec-tag N`` to the real mosquitto TLS listener (conftest ``tls_broker``), whose
certificate that CA signed; a tag nobody provisioned fails as the modem's connect does.
"""

# ruff: noqa: F811  (the fixtures, imported, are then named as parameters)
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from atbridge import certs
from atbridge.certs import CredentialKind
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener
from tests.fakes import Command, FakeModem, nrf91_tls
from tests.fakes import Response as FakeResponse
from tests.test_commands_bridge import (  # noqa: F401  (fixtures)
    StartCli,
    atbridge,
    run_cli,
)

ROOT = Path(__file__).resolve().parent.parent
NORDIC = ("nrf91-slm", "nrf91-sm")
WAIT = 30.0
NO_PORT = "/dev/atbridge-no-such-port"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files: a CA, a client certificate and key, an encrypted key, a DER file."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("device.example")
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key", "encrypted", "der")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    paths["encrypted"].write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    paths["der"].write_bytes(b"\x30\x82\x03\x00" + bytes(range(128, 256)))
    return paths


def key_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("-----")]


# -- bad input: exit 2 before the port is opened -------------------------------------------------

CLIENT_PAIR = ("--cert", "{cert}", "--key", "{key}")
BAD_INPUT = [
    (["write", "--sec-tag", "-1", "--ca", "{ca}"], "argument --sec-tag: -1 is outside"),
    (["write", "--sec-tag", "2147483648", "--ca", "{ca}"], "reserved for the modem"),
    (["write", "--sec-tag", "tag", "--ca", "{ca}"], "not a whole number: 'tag'"),
    (["write", "--ca", "{ca}"], "the following arguments are required: --sec-tag"),
    (["write", "--sec-tag", "1"], "nothing to write: give --ca FILE"),
    (["write", "--sec-tag", "1", "--ca", "{ca}.missing"], "cannot be read (No such file"),
    (["write", "--sec-tag", "1", "--ca", "{key}"], "where --ca needs a CERTIFICATE"),
    (["write", "--sec-tag", "1", "--ca", "{der}"], "is not PEM text"),
    (["write", "--sec-tag", "1", "--ca", "{ca}", "--cert", "{cert}"], "--cert needs --key"),
    (["write", "--sec-tag", "1", "--key", "{key}"], "--key needs --cert"),
    (["write", "--sec-tag", "1", "--cert", "{key}", "--key", "{key}"], "needs a CERTIFICATE"),
    (["write", "--sec-tag", "1", "--cert", "{cert}", "--key", "{cert}"], "needs a EC PRIVATE"),
    (["write", "--sec-tag", "1", "--cert", "{cert}", "--key", "{encrypted}"], "encrypted"),
    (["write", "--sec-tag", "1", "--psk", "00ff"], "--psk needs --identity"),
    (["write", "--sec-tag", "1", "--identity", "dev"], "--identity needs --psk"),
    (["write", "--sec-tag", "1", "--psk", "s3cr3t", "--identity", "d"], "not an even number"),
    (["write", "--sec-tag", "1", "--psk", "00ff", "--identity", 'a"b'], "--identity 'a\"b'"),
    (
        ["write", "--sec-tag", "1", "--psk", "00", "--identity", "d", *CLIENT_PAIR],
        "--psk and --cert/--key both authenticate",
    ),
    (["delete", "--sec-tag", "1", "--kind", "everything"], "invalid choice: 'everything'"),
    (["delete", "--kind", "ca"], "the following arguments are required: --sec-tag"),
    (["list", "--sec-tag", "-5"], "argument --sec-tag"),
    (["list", "--dialect", "sim9999"], "'sim9999' is not a dialect"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_exits_2_before_the_port_is_opened(
    argv: list[str], message: str, pki: dict[str, Path]
) -> None:
    names = {name: str(path) for name, path in pki.items()}
    args = [part.format(**names) for part in argv]
    done = subprocess.run(
        [sys.executable, "-m", "atbridge", "certs", *args, "--port", NO_PORT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert NO_PORT not in done.stderr  # nothing tried to open it
    assert "s3cr3t" not in done.stderr
    for line in key_lines(pki["key"]):
        assert line not in done.stderr
    if "usage:" not in done.stderr:  # argparse's own errors carry the usage instead
        assert "what to try:" in done.stderr


def test_help_imports_neither_rich_nor_asyncio() -> None:
    probe = (
        "import sys\n"
        "from atbridge.cli import main\n"
        "for argv in (['certs', '--help'], ['certs', 'write', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('rich', 'asyncio', 'serial', 'transitions')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, cwd=ROOT
    ).stdout
    assert "usage: atbridge certs write" in out and "--identity ID" in out
    assert "LOADED []" in out


def test_bad_input_with_json_is_one_error_object(pki: dict[str, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "atbridge", "certs", "write", "--sec-tag", "1", "--ca",
         str(pki["key"]), "--port", NO_PORT, "--format", "json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["exit_code"] == 2 and error["kind"] == "ConfigurationError"
    assert "--ca" in error["error"] and error["hint"]


# -- round trips through the CLI on the fakes ----------------------------------------------------


def certs_args(fake: FakeModem, dialect: str, *args: str) -> list[str]:
    return ["certs", *args, "--port", fake.port, "--dialect", dialect]


def offload_publish_args(
    fake: FakeModem, dialect: str, broker_port: int, tag: int, topic: str
) -> list[str]:
    """``atbridge publish`` of one QoS 1 message with TLS on the modem under ``tag``."""
    return [
        "publish", "--port", fake.port, "--dialect", dialect, "-h", "localhost",
        "-p", str(broker_port), "--tls", "modem", "--sec-tag", str(tag), "-t", topic,
        "-m", "provisioned by certs", "-q", "1", "--give-up-after", "5",
    ]  # fmt: skip


@pytest.mark.parametrize("dialect", NORDIC)
async def test_write_list_delete_round_trip(
    dialect: str, pki: dict[str, Path], atbridge: StartCli, tmp_path: Path
) -> None:
    transcript = tmp_path / "certs.log"
    files = ["--ca", str(pki["ca"]), "--cert", str(pki["cert"]), "--key", str(pki["key"])]
    async with FakeModem(dialect=dialect, cfun=1) as fake:
        write = await run_cli(
            atbridge,
            *certs_args(fake, dialect, "write", "--sec-tag", "42", *files),
            "--transcript",
            str(transcript),
        )
        assert write.proc.returncode == 0, write.stderr
        assert write.stdout.count("written") == 3
        assert (
            "changed: radio switched to offline (CFUN=4) to write credentials, then back to "
            "CFUN=1" in write.stdout
        )
        assert fake.state.cfun == 1
        stored = nrf91_tls.credentials(fake)
        assert sorted(stored) == [(42, 0), (42, 1), (42, 2)]

        again = await run_cli(
            atbridge, *certs_args(fake, dialect, "write", "--sec-tag", "42", *files, "--json")
        )
        report = json.loads(again.stdout)
        assert [item["status"] for item in report["items"]] == ["unchanged"] * 3
        assert report["changes"] == []
        assert report["items"][0]["sha256"] == certs.content_digest(stored[(42, 0)])
        assert report["items"][2]["sha256"] is None  # a key's digest is not printed

        listed = await run_cli(atbridge, *certs_args(fake, dialect, "list", "--json"))
        items = json.loads(listed.stdout)["items"]
        assert [(i["sec_tag"], i["kind"]) for i in items] == [(42, "ca"), (42, "cert"), (42, "key")]
        ca_digest = certs.content_digest(stored[(42, 0)])
        assert items[0]["sha256"] == ca_digest
        table = await run_cli(  # --dialect auto: the modem says which it is
            atbridge, "certs", "list", "--sec-tag", "42", "--port", fake.port
        )
        assert f"{dialect} on {fake.port}" in table.stdout
        assert "CA certificate" in table.stdout and "client private key" in table.stdout
        assert certs.content_digest(stored[(42, 0)])[:12] in table.stdout

        one = await run_cli(
            atbridge, *certs_args(fake, dialect, "delete", "--sec-tag", "42", "--kind", "key")
        )
        assert one.proc.returncode == 0, one.stderr
        assert "client private key" in one.stdout and "deleted" in one.stdout
        rest = await run_cli(
            atbridge, *certs_args(fake, dialect, "delete", "--sec-tag", "42", "--json")
        )
        deleted = json.loads(rest.stdout)["items"]
        assert deleted[0]["sha256"] == ca_digest  # what was there, as the modem listed it
        assert [(i["kind"], i["status"]) for i in deleted] == [
            ("ca", "deleted"),
            ("cert", "deleted"),
        ]
        assert nrf91_tls.credentials(fake) == {}
        assert fake.state.cfun == 1
        empty = await run_cli(atbridge, *certs_args(fake, dialect, "list"))
        assert "no credentials stored" in empty.stdout
    log = transcript.read_text()
    assert "AT%CMNG=0,42,2," in log
    for cli in (write, again, listed, table):
        for line in key_lines(pki["key"]):
            assert line not in cli.stdout and line not in cli.stderr
    for line in key_lines(pki["key"]):
        assert line not in log


@pytest.mark.parametrize("dialect", NORDIC)
async def test_a_refused_key_write_exits_3_with_no_key_byte_anywhere(
    dialect: str, pki: dict[str, Path], atbridge: StartCli, tmp_path: Path
) -> None:
    transcript = tmp_path / "refused.log"

    async def full(fake: FakeModem, cmd: Command) -> FakeResponse:
        if cmd.int_arg(0) == 0 and cmd.int_arg(2) == 2:
            return FakeResponse.error(515)
        return nrf91_tls.cmng(fake, cmd)

    async with FakeModem(dialect=dialect, cfun=1) as fake:
        fake.on_command("AT%CMNG", full)
        cli = await run_cli(
            atbridge,
            *certs_args(fake, dialect, "write", "--sec-tag", "9", "--cert", str(pki["cert"])),
            "--key", str(pki["key"]), "-d", "--transcript", str(transcript),
        )  # fmt: skip
        assert fake.state.cfun == 1
    assert cli.proc.returncode == 3, cli.stderr
    assert "memory full" in cli.stderr and "certs delete" in cli.stderr
    assert "client private key" in cli.stderr
    log = transcript.read_text()
    assert "+CME ERROR: 515" in log
    for line in key_lines(pki["key"]):
        assert line not in log and line not in cli.stderr and line not in cli.stdout


async def test_a_psk_never_appears(atbridge: StartCli, tmp_path: Path) -> None:
    transcript = tmp_path / "psk.log"
    psk = "5ec2e7a1b0c4d6e8f0a2b4c6d8e0f2a4"
    async with FakeModem(dialect="nrf91-slm") as fake:
        cli = await run_cli(
            atbridge,
            *certs_args(fake, "nrf91-slm", "write", "--sec-tag", "5", "--psk", psk),
            "--identity", "device-5", "--transcript", str(transcript),
        )  # fmt: skip
        assert cli.proc.returncode == 0, cli.stderr
        assert nrf91_tls.credentials(fake) == {(5, 3): psk, (5, 4): "device-5"}
    assert psk not in transcript.read_text() and psk not in cli.stdout + cli.stderr
    assert '"device-5"' in transcript.read_text()  # an identity is not secret


async def test_a_modem_without_a_store_exits_2_saying_what_to_use(atbridge: StartCli) -> None:
    async with FakeModem(dialect="sim7000") as fake:
        cli = await run_cli(atbridge, *certs_args(fake, "sim7000", "list"))
    assert cli.proc.returncode == 2, cli.stderr
    assert "sim7000 keeps no TLS credentials" in cli.stderr
    assert "--tls host" in cli.stderr
    assert "Traceback" not in cli.stderr


# -- the end-to-end proof: provisioned with certs, then TLS on the modem -------------------------


@pytest.mark.parametrize("dialect", NORDIC)
async def test_certs_write_then_publish_with_tls_on_the_modem(
    dialect: str,
    tls_broker: Mosquitto,
    tls_paho: PahoPeer,
    certs: Certificates,
    atbridge: StartCli,
) -> None:
    topic = f"certs/offload/{dialect}"
    await asyncio.to_thread(tls_paho.subscribe, topic, 1)
    before = len(tls_paho.messages)

    def publish(tag: int) -> list[str]:
        return offload_publish_args(fake, dialect, tls_broker.port, tag, topic)

    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        written = await run_cli(
            atbridge,
            *certs_args(fake, dialect, "write", "--sec-tag", "77", "--ca", str(certs.cafile)),
        )
        assert written.proc.returncode == 0, written.stderr
        forgot = await run_cli(atbridge, *publish(78))  # nobody wrote a CA under 78
        assert forgot.proc.returncode != 0
        assert "security tag 78" in forgot.stderr
        assert "Traceback" not in forgot.stderr
        cli = await run_cli(atbridge, *publish(77))
        assert cli.proc.returncode == 0, cli.stderr
        assert any(line.startswith("AT#XSSOCKET=") and ",77," in line for line in fake.commands)
    received = await asyncio.to_thread(tls_paho.wait_for, before + 1, WAIT)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, b"provisioned by certs")]


@pytest.fixture(scope="module")
def mtls_broker(certs: Certificates, server_pair: tuple[Path, Path]) -> Iterator[Mosquitto]:
    """A TLS mosquitto that requires a client certificate signed by the module's CA."""
    cert, key = server_pair
    listener = TlsListener(certs.cafile, cert, key, require_certificate=True)
    with Mosquitto(tls=listener) as broker:
        yield broker


async def test_mutual_tls_on_the_modem_with_the_client_pair_written_by_certs(
    mtls_broker: Mosquitto, certs: Certificates, atbridge: StartCli
) -> None:
    """The client certificate and key written with ``certs write`` are what the modem
    offers: with them the broker that requires one accepts the connection; a tag that
    holds only the CA is refused by it."""
    client_cert, client_key = certs.issue("device-1")
    paho = PahoPeer(mtls_broker.port, "paho-mtls", tls=(certs.cafile, client_cert, client_key))
    topic = "certs/mtls"
    try:
        await asyncio.to_thread(paho.subscribe, topic, 1)

        def publish(tag: int) -> list[str]:
            return [
                "publish", "--port", fake.port, "--dialect", "nrf91-sm", "-h", "localhost",
                "-p", str(mtls_broker.port), "--tls", "modem", "--sec-tag", str(tag),
                "-t", topic, "-m", "mutual", "-q", "1", "--give-up-after", "3",
            ]  # fmt: skip

        async with FakeModem(dialect="nrf91-sm", registration_delay=0.05) as fake:
            for tag, extra in ((90, ["--cert", str(client_cert), "--key", str(client_key)]),
                               (91, [])):  # fmt: skip
                written = await run_cli(
                    atbridge,
                    *certs_args(fake, "nrf91-sm", "write", "--sec-tag", str(tag)),
                    "--ca", str(certs.cafile), *extra,
                )  # fmt: skip
                assert written.proc.returncode == 0, written.stderr
            without = await run_cli(atbridge, *publish(91))
            # TLS 1.3: the broker refuses the missing certificate after the handshake, so
            # the connection breaks on the first send and the bridge gives up (exit 5)
            assert without.proc.returncode != 0
            assert "Traceback" not in without.stderr
            with_pair = await run_cli(atbridge, *publish(90))
            assert with_pair.proc.returncode == 0, with_pair.stderr
        received = await asyncio.to_thread(paho.wait_for, 1, WAIT)
        assert [(t, p) for t, p, _q in received] == [(topic, b"mutual")]
    finally:
        paho.close()


def test_the_kinds_the_cli_offers_are_the_store_kinds() -> None:
    from atbridge.commands.certs import KIND_NAMES

    assert sorted(KIND_NAMES) == sorted(str(kind) for kind in CredentialKind)
