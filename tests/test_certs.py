"""The credential store: the input checks of ``atbridge.certs`` and the nRF91's ``AT%CMNG``.

The store runs against the nRF91 fakes on a real pty (``tests/fakes/nrf91_tls.py``: the
``%CMNG`` store as the nRF91 AT Commands Reference describes it, digest over the written
text as Nordic's nrfcredstore computes it), on the Serial LTE Modem and the Serial Modem.
The fake's command log shows what went to the modem: the functional mode switched to 4
and put back, no write for an item whose digest matched, no byte of a key in the
transcript — also when the modem refuses the write.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge import certs
from atbridge.certs import CredentialKind, StoredCredential
from atbridge.dialects import dialect_class
from atbridge.dialects.nrf91_certs import Nrf91Store, parse_list
from atbridge.errors import ConfigurationError, ModemError
from atbridge.modem import Modem
from tests.fakes import Command, FakeModem, nrf91_tls
from tests.fakes import Response as FakeResponse
from tests.fakes.grammar import Kind

NORDIC = ("nrf91-slm", "nrf91-sm")
TAG = 42


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a client certificate and its key as PEM files (trustme)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("device.example")
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def key_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


class Bound:
    def __init__(self, fake: FakeModem, modem: Modem, store: Nrf91Store) -> None:
        self.fake, self.modem, self.store = fake, modem, store

    def sent(self, prefix: str) -> list[str]:
        return [line for line in self.fake.commands if line.startswith(prefix)]


@pytest.fixture(params=NORDIC)
async def bound(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bound]:
    async with FakeModem(dialect=request.param, cfun=1) as fake:
        modem = await Modem.open(fake.port, transcript=tmp_path / "transcript.log")
        try:
            dialect = dialect_class(request.param)(modem)
            store = certs.store_for(dialect)
            assert isinstance(store, Nrf91Store)
            yield Bound(fake, modem, store)
        finally:
            await modem.close()


# -- the store on the fake modem -----------------------------------------------------------------


async def test_write_list_delete_round_trip(bound: Bound, pki: dict[str, Path]) -> None:
    ca = certs.read_pem(str(pki["ca"]), CredentialKind.CA).content
    key = certs.read_pem(str(pki["key"]), CredentialKind.CLIENT_KEY).content
    assert await bound.store.write(TAG, CredentialKind.CA, ca) is True
    assert await bound.store.write(TAG, CredentialKind.CLIENT_KEY, key) is True
    assert nrf91_tls.credentials(bound.fake)[(TAG, nrf91_tls.CA)] == ca
    assert await bound.store.list(TAG) == [
        StoredCredential(TAG, CredentialKind.CA, certs.content_digest(ca)),
        StoredCredential(TAG, CredentialKind.CLIENT_KEY, certs.content_digest(key)),
    ]
    assert await bound.store.delete(TAG, CredentialKind.CLIENT_KEY) is True
    assert await bound.store.delete(TAG, CredentialKind.CLIENT_KEY) is False  # absent
    assert [item.kind for item in await bound.store.list()] == [CredentialKind.CA]


async def test_the_radio_goes_offline_for_the_write_and_comes_back(
    bound: Bound, pki: dict[str, Path]
) -> None:
    ca = certs.read_pem(str(pki["ca"]), CredentialKind.CA).content
    start = len(bound.fake.commands)
    await bound.store.write(TAG, CredentialKind.CA, ca)
    sent = [
        line.split(",")[0] for line in bound.fake.commands[start:] if "CFUN" in line or "=0" in line
    ]
    assert sent == ["AT+CFUN?", "AT+CFUN=4", "AT%CMNG=0", "AT+CFUN=1"]
    assert bound.fake.state.cfun == 1
    assert bound.store.changes == [
        "radio switched to offline (CFUN=4) to write credentials, then back to CFUN=1"
    ]


async def test_a_modem_already_offline_is_left_as_it_is(bound: Bound, pki: dict[str, Path]) -> None:
    await bound.modem.command("AT+CFUN=4")
    start = len(bound.fake.commands)
    async with certs.batch(bound.store, "write"):
        await bound.store.write(TAG, CredentialKind.CA, pki["ca"].read_text().strip())
        await bound.store.delete(TAG, CredentialKind.CA)
    assert not [line for line in bound.fake.commands[start:] if line.startswith("AT+CFUN=")]
    assert bound.store.changes == []
    assert bound.fake.state.cfun == 4


async def test_one_batch_switches_once_for_several_items(
    bound: Bound, pki: dict[str, Path]
) -> None:
    start = len(bound.fake.commands)
    async with certs.batch(bound.store, "write"):
        for kind, name in ((CredentialKind.CA, "ca"), (CredentialKind.CLIENT_CERT, "cert")):
            await bound.store.write(TAG, kind, certs.read_pem(str(pki[name]), kind).content)
    switches = [line for line in bound.fake.commands[start:] if line.startswith("AT+CFUN=")]
    assert switches == ["AT+CFUN=4", "AT+CFUN=1"]
    assert len(bound.store.changes) == 1


async def test_a_write_whose_digest_matches_is_skipped(bound: Bound, pki: dict[str, Path]) -> None:
    ca = certs.read_pem(str(pki["ca"]), CredentialKind.CA).content
    nrf91_tls.store(bound.fake, TAG, nrf91_tls.CA, ca)  # as another tool wrote it
    start = len(bound.fake.commands)
    assert await bound.store.write(TAG, CredentialKind.CA, ca) is False
    assert bound.fake.commands[start:] == [f"AT%CMNG=1,{TAG},0"]  # no CFUN, no write
    assert bound.store.changes == []
    assert await bound.store.write(TAG, CredentialKind.CA, ca + "\n") is True  # other bytes


async def test_a_batch_of_unchanged_items_leaves_the_mode_alone(
    bound: Bound, pki: dict[str, Path]
) -> None:
    ca = certs.read_pem(str(pki["ca"]), CredentialKind.CA).content
    nrf91_tls.store(bound.fake, TAG, nrf91_tls.CA, ca)
    start = len(bound.fake.commands)
    async with certs.batch(bound.store, "write"):
        assert await bound.store.write(TAG, CredentialKind.CA, ca) is False
        assert await bound.store.delete(TAG + 1, CredentialKind.CA) is False  # nothing there
    assert not [line for line in bound.fake.commands[start:] if "CFUN" in line]
    assert bound.store.changes == []


async def test_the_digest_is_the_one_nrfcredstore_expects(pki: dict[str, Path]) -> None:
    """nrfcredstore writes ``file.read().rstrip()`` and expects the SHA-256 of that text,
    upper-case hex: the same file read here gives the same content, CRLF or LF."""
    text = pki["ca"].read_text()
    expected = hashlib.sha256(text.rstrip().encode("utf-8")).hexdigest().upper()
    crlf = pki["ca"].with_name("ca-crlf.pem")
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    for path in (pki["ca"], crlf):
        content = certs.read_pem(str(path), CredentialKind.CA).content
        assert content == text.rstrip()
        assert certs.same_digest(expected, content)


async def test_the_mode_is_restored_when_the_write_fails(
    bound: Bound, pki: dict[str, Path], tmp_path: Path
) -> None:
    bound.fake.on_command("AT%CMNG", refuse_writes(515))
    key = certs.read_pem(str(pki["key"]), CredentialKind.CLIENT_KEY).content
    with pytest.raises(ModemError) as raised:
        await bound.store.write(TAG, CredentialKind.CLIENT_KEY, key)
    error = raised.value
    assert error.code == 515
    assert "memory full" in error.message and "certs delete" in (error.hint or "")
    assert f'AT%CMNG=0,{TAG},2,"<client private key, {len(key)} bytes>"' in error.message
    assert bound.fake.state.cfun == 1
    await bound.modem.close()
    transcript = (tmp_path / "transcript.log").read_text()
    assert "AT%CMNG=0" in transcript and "+CME ERROR: 515" in transcript
    for line in key_lines(key):
        assert line not in transcript
        assert line not in str(error)


async def test_no_byte_of_the_key_reaches_the_transcript(
    bound: Bound, pki: dict[str, Path], tmp_path: Path
) -> None:
    key = certs.read_pem(str(pki["key"]), CredentialKind.CLIENT_KEY).content
    await bound.store.write(TAG, CredentialKind.CLIENT_KEY, key)
    psk = "00112233445566778899aabbccddeeff"
    await bound.store.write(TAG, CredentialKind.PSK, psk)
    await bound.modem.close()
    transcript = (tmp_path / "transcript.log").read_text()
    assert transcript.count("AT%CMNG=0") == 2
    body = "".join(key_lines(key))
    for line in key_lines(key):
        assert line not in transcript
    for start in range(0, len(body) - 16, 16):  # no 16-character piece of the body either
        assert body[start : start + 16] not in transcript
    assert psk not in transcript
    assert nrf91_tls.credentials(bound.fake)[(TAG, nrf91_tls.PSK)] == psk


async def test_the_mode_is_restored_when_the_write_is_cancelled(
    bound: Bound, pki: dict[str, Path]
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(fake: FakeModem, cmd: Command) -> FakeResponse:
        if cmd.int_arg(0) == 0:
            started.set()
            await release.wait()
        return nrf91_tls.cmng(fake, cmd)

    bound.fake.on_command("AT%CMNG", slow)
    ca = certs.read_pem(str(pki["ca"]), CredentialKind.CA).content
    task = asyncio.create_task(bound.store.write(TAG, CredentialKind.CA, ca))
    async with asyncio.timeout(10):
        await started.wait()
    assert bound.fake.state.cfun == 4
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(10):
        await bound.fake.wait_for_command("AT+CFUN=1", start=0)
    assert bound.fake.state.cfun == 1


async def test_a_mode_that_cannot_be_put_back_is_said(bound: Bound) -> None:
    bound.fake.on_command("AT%CMNG", refuse_writes(515))
    bound.fake.on_command("AT+CFUN", refuse_cfun_1)
    with pytest.raises(ModemError) as raised:
        await bound.store.write(TAG, CredentialKind.PSK_IDENTITY, "device-1")
    assert raised.value.code == 515  # the write's own error, not the restore's
    assert "the radio was left offline (CFUN=4)" in (raised.value.hint or "")
    assert "AT+CFUN=1" in (raised.value.hint or "")
    assert bound.fake.state.cfun == 4
    assert "putting CFUN=1 back failed" in bound.store.changes[0]
    bound.fake.clear_on_command("AT%CMNG")
    bound.fake.clear_on_command("AT+CFUN")
    await bound.modem.command("AT+CFUN=1")
    bound.fake.on_command("AT+CFUN", refuse_cfun_1)
    with pytest.raises(ModemError) as restore:
        await bound.store.write(TAG, CredentialKind.PSK_IDENTITY, "device-1")
    assert restore.value.command == "AT+CFUN=1"  # nothing else failed: this is the error
    assert "left offline" in (restore.value.hint or "")


def refuse_cfun_1(fake: FakeModem, cmd: Command) -> FakeResponse | None:
    if cmd.kind is Kind.SET and cmd.int_arg(0) == 1:
        return FakeResponse.error(30)
    result = fake.run_default(cmd)
    assert not isinstance(result, Awaitable)
    return result


async def test_cme_errors_are_said_in_words(bound: Bound) -> None:
    for code, words in ((514, "no access"), (518, "not allowed in active state"), (528, "power")):
        bound.fake.on_command("AT%CMNG", refuse_writes(code))
        with pytest.raises(ModemError) as raised:
            await bound.store.write(TAG, CredentialKind.PSK_IDENTITY, "device-1")
        assert raised.value.code == code
        assert words in raised.value.message
        assert f"could not write the PSK identity to security tag {TAG}" in raised.value.message
    bound.fake.on_command("AT%CMNG", refuse_writes(None))
    with pytest.raises(ModemError) as plain:
        await bound.store.write(TAG, CredentialKind.PSK_IDENTITY, "device-1")
    assert "right PEM" in (plain.value.hint or "")
    assert bound.fake.state.cfun == 1


async def test_a_delete_the_modem_does_not_find_is_absent(bound: Bound) -> None:
    nrf91_tls.store(bound.fake, TAG, nrf91_tls.PSK_IDENTITY, "device-1")

    async def gone(fake: FakeModem, cmd: Command) -> FakeResponse:
        if cmd.int_arg(0) == 3:
            return FakeResponse.error(513)  # removed meanwhile by someone else
        return nrf91_tls.cmng(fake, cmd)

    bound.fake.on_command("AT%CMNG", gone)
    assert await bound.store.delete(TAG, CredentialKind.PSK_IDENTITY) is False
    assert bound.fake.state.cfun == 1


def refuse_writes(code: int | None) -> Callable[[FakeModem, Command], Awaitable[FakeResponse]]:
    async def refuse(fake: FakeModem, cmd: Command) -> FakeResponse:
        if cmd.int_arg(0) == 0:
            return FakeResponse.error(code)
        return nrf91_tls.cmng(fake, cmd)

    return refuse


# -- parsing the list answer ---------------------------------------------------------------------


def test_parse_list_reads_tags_types_and_digests() -> None:
    digest = "2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1"
    values = [
        f'16842753,0,"{digest}"',
        "12,4",  # no digest
        f'4294967292,10,"{digest}"',  # a type atbridge does not write: left out
        "garbage",
        f' 7 , 2 , "{digest.lower()}"',
    ]
    assert parse_list(values) == [
        StoredCredential(16842753, CredentialKind.CA, digest.lower()),
        StoredCredential(12, CredentialKind.PSK_IDENTITY, None),
        StoredCredential(7, CredentialKind.CLIENT_KEY, digest.lower()),
    ]


# -- the input checks ---------------------------------------------------------------------------


async def test_the_fake_refuses_tags_the_modem_keeps_for_itself(bound: Bound) -> None:
    await bound.modem.command("AT+CFUN=4")
    for line in ('AT%CMNG=0,2147483648,4,"x"', "AT%CMNG=3,2147483648,4"):
        with pytest.raises(ModemError) as raised:
            await bound.modem.command(line)
        assert raised.value.kind is None  # a parameter out of range: plain ERROR
    await bound.modem.command('AT%CMNG=0,2147483647,4,"x"')
    assert nrf91_tls.credentials(bound.fake) == {(2147483647, 4): "x"}


async def test_list_of_one_tag_shows_that_tag_only(bound: Bound) -> None:
    nrf91_tls.store(bound.fake, 7, nrf91_tls.PSK_IDENTITY, "seven")
    nrf91_tls.store(bound.fake, 8, nrf91_tls.PSK_IDENTITY, "eight")
    assert [item.sec_tag for item in await bound.store.list(8)] == [8]
    assert [item.sec_tag for item in await bound.store.list()] == [7, 8]
    assert await bound.store.list(9) == []


def test_a_ca_bundle_keeps_every_certificate(pki: dict[str, Path], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(pki["ca"].read_text() + pki["cert"].read_text())
    read = certs.read_pem(str(bundle), CredentialKind.CA)
    assert read.blocks == 2
    assert read.content == pki["ca"].read_text() + pki["cert"].read_text().rstrip()


def test_read_pem_keeps_only_the_pem_blocks(pki: dict[str, Path], tmp_path: Path) -> None:
    bag = tmp_path / "bag.pem"
    text = pki["ca"].read_text()
    bag.write_text("Bag Attributes\n    friendlyName: ca\n" + text + "\ntrailing words\n")
    assert certs.read_pem(str(bag), CredentialKind.CA).content == text.rstrip()


def pem(label: str, body: str, end: str | None = None) -> bytes:
    return f"-----BEGIN {label}-----\n{body}\n-----END {end or label}-----\n".encode()


ENCRYPTED_HEADERS = "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAA="


@pytest.mark.parametrize(
    ("kind", "content", "message"),
    [
        (CredentialKind.CA, b"\x30\x82\x01\x00\xff\xfe", "not PEM text"),
        (CredentialKind.CA, b"hello\n", "holds no PEM block"),
        (CredentialKind.CLIENT_CERT, pem("CERTIFICATE", "!!!!"), "not valid base64"),
        (CredentialKind.CA, pem("CERTIFICATE", "AAAA"), "does not hold DER"),
        (CredentialKind.CA, pem("CERTIFICATE", "MAA=", "X509 CRL"), "ends with END X509 CRL"),
        (CredentialKind.CLIENT_KEY, pem("ENCRYPTED PRIVATE KEY", "MAA="), "encrypted private key"),
        (CredentialKind.CLIENT_KEY, pem("RSA PRIVATE KEY", ENCRYPTED_HEADERS), "encrypted"),
    ],
)
def test_read_pem_refuses_what_is_not_the_kind_it_needs(
    kind: CredentialKind, content: bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "input.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as raised:
        certs.read_pem(str(path), kind)
    assert message in raised.value.message
    assert raised.value.message.startswith(f"--{kind} {path}: ")
    assert raised.value.hint


def test_a_key_given_as_a_certificate_and_the_reverse(pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        certs.read_pem(str(pki["key"]), CredentialKind.CA)
    assert "holds a" in raised.value.message and "PRIVATE KEY" in raised.value.message
    for line in key_lines(pki["key"].read_text()):
        assert line not in str(raised.value)
    with pytest.raises(ConfigurationError, match=r"needs a .*PRIVATE KEY"):
        certs.read_pem(str(pki["cert"]), CredentialKind.CLIENT_KEY)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        certs.read_pem(str(pki["ca"]) + ".missing", CredentialKind.CA)


def test_two_keys_in_one_file_are_refused(pki: dict[str, Path], tmp_path: Path) -> None:
    two = tmp_path / "two.pem"
    two.write_text(pki["key"].read_text() * 2)
    with pytest.raises(ConfigurationError, match="holds 2 private keys"):
        certs.read_pem(str(two), CredentialKind.CLIENT_KEY)


def test_psk_identity_and_tag_checks() -> None:
    assert certs.check_psk(" 0A1b ") == "0A1b"
    for bad in ("", "abc", "0g", "12 34"):
        with pytest.raises(ConfigurationError, match="--psk") as raised:
            certs.check_psk(bad)
        assert bad.strip() == "" or bad not in str(raised.value)  # never repeated
    assert certs.check_identity("device-1@example") == "device-1@example"
    for bad in ("", 'a"b', "a\\b", "a\nb", "é"):
        with pytest.raises(ConfigurationError, match="--identity"):
            certs.check_identity(bad)
    assert certs.check_sec_tag(2147483647) == 2147483647
    with pytest.raises(ConfigurationError, match="reserved for the modem"):
        certs.check_sec_tag(2147483648)


def test_a_family_without_a_store_says_what_to_use(tmp_path: Path) -> None:
    class Sim7000Like:
        name = "sim7000"

    with pytest.raises(ConfigurationError) as raised:
        certs.store_for(Sim7000Like())  # type: ignore[arg-type]
    assert "sim7000 keeps no TLS credentials" in raised.value.message
    assert "--tls host" in (raised.value.hint or "")
