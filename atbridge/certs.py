"""Credentials stored on the modem for TLS offload: what ``atbridge certs`` drives.

Theory of operation
-------------------
A modem that speaks TLS itself needs its trust anchor (and, for mutual TLS, a client
certificate and key, or a pre-shared key) in its own store, referred to later by a
*security tag*: the nRF91 keeps them in ``AT%CMNG`` under ``<sec_tag>``; the SIMCom
families keep files, which atbridge names after the tag so that ``--sec-tag N`` means
the same thing on every modem (the family's module says how).

This module is the contract every family's store follows (:class:`CertificateStore`),
the one place that finds the store of a bound dialect (:func:`store_for`), and the pure
checks every store and the command share, run before any port is opened:

- :func:`read_pem` reads a PEM file and keeps only its PEM blocks, each of the type the
  kind needs (``CERTIFICATE`` for a CA or a client certificate, one of the private key
  labels for a key; an encrypted key is refused: the modem would need its passphrase),
  with LF line breaks and no trailing newline — the text Nordic's own ``nrfcredstore``
  writes (``file.read().rstrip()``), so a digest the modem lists for a credential
  written by either tool matches;
- :func:`check_psk` (hex digits, an even number of them), :func:`check_identity`
  (printable ASCII an AT string can carry), :func:`check_sec_tag` (0..2147483647: the
  nRF91 AT Commands Reference reserves higher tags for the modem);
- :func:`content_digest` — the SHA-256 of the content exactly as written (lower-case hex,
  as :class:`StoredCredential` holds it), which is what ``AT%CMNG=1`` lists in upper case
  (the reference: "SHA-256 digest of the entity as stored"; ``nrfcredstore``'s
  ``calculate_expected_hash`` hashes the written text);
- :func:`batch` — hold a family's preparation (the nRF91's radio off) across several
  writes or deletes where the store offers it.

Sources: Nordic nRF91 AT Commands Reference (``%CMNG`` set command: opcodes, types 0-4,
``<sec_tag>`` range, error codes 513-519 and 528); Nordic's ``nrfcredstore``
(``credstore.py``, ``command_interface.py``): what it writes, lists and compares.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from atbridge.credentials import MAX_SEC_TAG
from atbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from atbridge.dialects.base import Dialect


class CredentialKind(StrEnum):
    """What one stored item is (the nRF91's ``%CMNG`` types 0-4, in words)."""

    CA = "ca"
    CLIENT_CERT = "cert"
    CLIENT_KEY = "key"
    PSK = "psk"
    PSK_IDENTITY = "identity"

    @property
    def secret(self) -> bool:
        """A key or a PSK: never shown, logged or put in a transcript."""
        return self in (CredentialKind.CLIENT_KEY, CredentialKind.PSK)

    @property
    def words(self) -> str:
        """The kind for a sentence: ``CA certificate``, ``client private key``..."""
        return _WORDS[self]


_WORDS = {
    CredentialKind.CA: "CA certificate",
    CredentialKind.CLIENT_CERT: "client certificate",
    CredentialKind.CLIENT_KEY: "client private key",
    CredentialKind.PSK: "pre-shared key",
    CredentialKind.PSK_IDENTITY: "PSK identity",
}


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """One item in the modem's store, as the modem lists it.

    ``sha256`` is the digest the modem reports (lower-case hex), None where it reports
    none; ``name`` the file name on the modem (SIMCom), None on the nRF91; ``size`` in
    bytes where the modem says.
    """

    sec_tag: int
    kind: CredentialKind
    sha256: str | None = None
    name: str | None = None
    size: int | None = None

    def to_json(self) -> dict[str, object]:
        """``{sec_tag, kind, sha256, name, size}`` (absent values ``null``)."""
        return {
            "sec_tag": self.sec_tag,
            "kind": str(self.kind),
            "sha256": self.sha256,
            "name": self.name,
            "size": self.size,
        }


class CertificateStore(Protocol):
    """A family's credential store, bound to one modem.

    ``changes`` lists, in words, what the store changed in the modem's state to do its
    work (a functional mode switched and restored) for the command to report.

    A store may also offer ``check(sec_tag, kind, content)`` (refuse, without I/O, what
    ``write`` could not write: ``atbridge certs write`` checks every item before the first
    is written), ``file_name(sec_tag, kind)`` (the file an item is kept in, for families
    that keep files) and ``batch(purpose)`` (:func:`batch`).
    """

    #: The kinds this family stores.
    kinds: frozenset[CredentialKind]
    changes: list[str]

    async def list(self, sec_tag: int | None = None) -> list[StoredCredential]:
        """Every stored item (of ``sec_tag`` only, when given)."""
        ...

    async def write(self, sec_tag: int, kind: CredentialKind, content: str) -> bool:
        """Store ``content`` (PEM text; a PSK as hex; a PSK identity as text) under
        ``sec_tag``; False when the same content was already there and nothing was
        written. A secret kind's content is masked in the transcript and in errors."""
        ...

    async def delete(self, sec_tag: int, kind: CredentialKind) -> bool:
        """Remove one item; False when there was none."""
        ...


def store_for(dialect: Dialect) -> CertificateStore:
    """The credential store of ``dialect``'s modem; a ConfigurationError naming the
    family when it has none atbridge can drive."""
    name = dialect.name
    store: CertificateStore
    if name in ("nrf91-slm", "nrf91-sm"):
        from atbridge.dialects.nrf91_certs import Nrf91Store

        store = Nrf91Store(dialect)
        return store
    if name == "sim7080":
        from atbridge.dialects.sim7080_certs import Sim7080Store

        store = Sim7080Store(dialect)
        return store
    if name == "sim7600":
        from atbridge.dialects.sim7600_certs import Sim7600Store

        store = Sim7600Store(dialect)
        return store
    raise ConfigurationError(
        f"the {name} keeps no TLS credentials atbridge can write: its TLS offload is not supported",
        hint="use host-side TLS (--tls host with --cafile/--cert/--key): the certificates "
        "stay on this computer and work through every modem",
    )


def batch(store: CertificateStore, purpose: str) -> AbstractAsyncContextManager[None]:
    """``async with batch(store, "write"):`` several writes or deletes, one preparation.

    A store may offer ``batch(purpose)`` (the nRF91's: the radio switched off once for
    all of them and back on at the end, ``purpose`` named in its ``changes``); for one
    that does not, this does nothing.
    """
    hold = getattr(store, "batch", None)
    if callable(hold):
        held: AbstractAsyncContextManager[None] = hold(purpose)
        return held
    return _nothing()


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


# -- the input, checked before the port is opened ---------------------------------------------

#: The PEM labels each kind accepts (RFC 7468; PKCS#1 and SEC 1 keys as OpenSSL writes them).
PEM_LABELS: dict[CredentialKind, frozenset[str]] = {
    CredentialKind.CA: frozenset({"CERTIFICATE"}),
    CredentialKind.CLIENT_CERT: frozenset({"CERTIFICATE"}),
    CredentialKind.CLIENT_KEY: frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"}),
}
_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\n(.*?)\n?-----END ([A-Z0-9 ]+)-----",
    re.DOTALL,
)
_HEX = re.compile(r"[0-9A-Fa-f]+")
_IDENTITY = re.compile(r"[\x20-\x7e]+")


#: The largest PEM file read (a whole system CA store is about 0.2 MiB).
MAX_PEM_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class PemFile:
    """A PEM file read for one kind: the ``content`` to write and what it holds."""

    path: str
    kind: CredentialKind
    content: str
    blocks: int


def _pem_error(path: str, what: str, kind: CredentialKind, hint: str) -> ConfigurationError:
    option = f"--{kind}"
    return ConfigurationError(f"{option} {path}: {what}", hint=hint)


def read_pem(path: str, kind: CredentialKind) -> PemFile:
    """The PEM file at ``path`` checked for ``kind`` (module doc); a ConfigurationError
    naming the option, the file and what is wrong otherwise. A key's content is never in
    the message."""
    labels = PEM_LABELS[kind]
    wanted = " or ".join(sorted(labels))
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PEM_FILE + 1)
    except OSError as exc:
        raise _pem_error(
            path, f"cannot be read ({exc.strerror})", kind, f"give --{kind} a readable PEM file"
        ) from None
    if len(raw) > MAX_PEM_FILE:  # read whole or refused: never a bundle cut short
        raise _pem_error(
            path,
            f"is larger than {MAX_PEM_FILE // (1 << 20)} MiB: no modem stores that much",
            kind,
            f"give --{kind} the one {'certificate' if 'CERTIFICATE' in labels else 'key'} "
            "needed, not a whole store",
        )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _pem_error(
            path,
            "is not PEM text (it holds bytes that are not ASCII: a DER file?)",
            kind,
            f"convert it to PEM (openssl x509 -inform der -in {path} -out cert.pem, or "
            "openssl pkey -inform der for a key)",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    found = list(_BLOCK.finditer(text))
    if not found:
        raise _pem_error(
            path,
            f"holds no PEM block (no -----BEGIN {wanted}----- line)",
            kind,
            f"give --{kind} a PEM file ({'a certificate' if 'CERTIFICATE' in labels else 'a key'})",
        )
    blocks: list[str] = []
    for match in found:
        label, body, end = match.group(1), match.group(2), match.group(3)
        if label != end:
            raise _pem_error(
                path,
                f"has a BEGIN {label} block that ends with END {end}",
                kind,
                "the file is damaged: export it again",
            )
        if label == "ENCRYPTED PRIVATE KEY" or "Proc-Type: 4,ENCRYPTED" in body:
            raise _pem_error(
                path,
                "is an encrypted private key; the modem needs it unencrypted",
                kind,
                f"decrypt it first: openssl pkey -in {path} -out key.pem (keep the "
                "decrypted file private)",
            )
        if label not in labels:
            raise _pem_error(
                path,
                f"holds a {label} where --{kind} needs a {wanted}",
                kind,
                _wrong_label_hint(kind),
            )
        lines = [line.strip() for line in body.split("\n") if line.strip()]
        try:
            der = base64.b64decode("".join(lines), validate=True)
        except (binascii.Error, ValueError):
            raise _pem_error(
                path,
                f"has a {label} block whose body is not valid base64",
                kind,
                "the file is damaged: export it again",
            ) from None
        if not der or der[0] != 0x30:  # every X.509 / PKCS structure is a DER SEQUENCE
            raise _pem_error(
                path,
                f"has a {label} block that does not hold DER data",
                kind,
                "the file is damaged: export it again",
            )
        blocks.append("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]))
    if kind is CredentialKind.CLIENT_KEY and len(blocks) > 1:
        raise _pem_error(
            path, f"holds {len(blocks)} private keys", kind, "give --key the one key of --cert"
        )
    return PemFile(path, kind, "\n".join(blocks), len(blocks))


def _wrong_label_hint(kind: CredentialKind) -> str:
    if kind is CredentialKind.CLIENT_KEY:
        return "give --key the private key file (BEGIN PRIVATE KEY) and --cert the certificate"
    if kind is CredentialKind.CA:
        return "give --ca the certificate of the CA that signed the broker's certificate"
    return "give --cert the client certificate (BEGIN CERTIFICATE) and --key its private key"


def check_psk(text: str) -> str:
    """A PSK as the nRF91 takes it: hex digits, an even number of them (a ConfigurationError
    otherwise, which never repeats the value)."""
    value = text.strip()
    if not value or not _HEX.fullmatch(value) or len(value) % 2:
        what = "is empty" if not value else "is not an even number of hex digits"
        raise ConfigurationError(
            f"--psk {what}",
            hint="give the pre-shared key as hex, two digits per byte (--psk 0a1b2c...)",
        )
    return value


def check_identity(text: str) -> str:
    """A PSK identity: printable ASCII without a double quote or a backslash."""
    if not _IDENTITY.fullmatch(text) or '"' in text or "\\" in text:
        raise ConfigurationError(
            f"--identity {text!r} is not printable ASCII an AT string can carry",
            hint='use letters, digits and punctuation other than " and \\ (no spaces at the '
            "ends, nothing else)",
        )
    return text


def check_sec_tag(tag: int) -> int:
    """A security tag a user may write: 0..2147483647."""
    if not 0 <= tag <= MAX_SEC_TAG:
        raise ConfigurationError(
            f"--sec-tag {tag} is outside 0..{MAX_SEC_TAG}",
            hint=f"use a tag from 0 to {MAX_SEC_TAG}: higher ones are reserved for the modem",
        )
    return tag


def check_file_tag(sec_tag: int) -> int:
    """A security tag that names files on a SIMCom modem (``atb<tag><kind>.pem``): a whole
    number of 0 or more."""
    if isinstance(sec_tag, bool) or not isinstance(sec_tag, int) or sec_tag < 0:
        raise ConfigurationError(
            f"security tag {sec_tag!r} is not a whole number of 0 or more",
            hint="give --sec-tag a number such as 16842753",
        )
    return sec_tag


def upload_bytes(sec_tag: int, kind: CredentialKind, content: str, limit: int, why: str) -> bytes:
    """PEM ``content`` as the bytes a file-keeping store uploads; a ConfigurationError for
    text that is not PEM, or for more than ``limit`` bytes (``why`` names the limit)."""
    if not content.isascii() or "-----BEGIN " not in content:
        raise ConfigurationError(
            f"the {kind.words} for security tag {sec_tag} is not PEM text",
            hint="give a PEM file (-----BEGIN ...----- lines with base64 between)",
        )
    data = content.encode("ascii")
    if len(data) > limit:
        raise ConfigurationError(
            f"the {kind.words} for security tag {sec_tag} is {len(data)} bytes; {why}",
            hint="store only the CA that signed the broker's certificate (not a bundle)",
        )
    return data


def secret_parts(kind: CredentialKind, content: str) -> tuple[str, ...]:
    """What to mask by value of a secret's ``content`` (``Modem.add_secret``): the whole
    PSK, each base64 line of a key; nothing for a kind that is not secret."""
    if kind is CredentialKind.PSK:
        return (content,)
    if kind is CredentialKind.CLIENT_KEY:
        return tuple(line for line in content.split("\n") if line and not line.startswith("-----"))
    return ()


def content_digest(content: str) -> str:
    """The SHA-256 of ``content`` as written, lower-case hex (``AT%CMNG=1`` lists it in
    upper case)."""
    return hashlib.sha256(content.encode("ascii")).hexdigest()


def same_digest(listed: str | None, content: str) -> bool:
    """Whether a listed digest is that of ``content`` (hex compared case-insensitively)."""
    return listed is not None and listed.lower() == content_digest(content)


def short_digest(digest: str | None) -> str:
    """The first 12 hex digits and an ellipsis, for a table; ``-`` for none."""
    if not digest:
        return "-"
    return digest[:12].lower() + "…"
