"""The SIM7600/A76xx credential store: certificate files, for ``atbridge certs``.

Theory of operation
-------------------
The module keeps certificates and keys as files in its own store, written with
``AT+CCERTDOWN="<name>",<len>`` (the module answers ``>``, takes exactly ``<len>``
bytes and answers ``OK``), listed with ``AT+CCERTLIST`` (``+CCERTLIST: "<name>"`` per
file: names only, no size and no digest) and removed with ``AT+CCERTDELE="<name>"``.
The TLS client then refers to them by name (``AT+CSSLCFG="cacert",<ctx>,"<name>"``).
Sources: the SIM7500/SIM7600 Series AT Command Manual V2.00, SSL chapter (as mirrored
on momoiot.co.kr ``lte-at/cmd/ssl``), TinyGSM ``TinyGsmClientSIM7600.h``
(``loadCertificateImpl``/``deleteCertificateImpl``: no conversion step, unlike the
SIM7080; and no pre-shared keys: "The SIM7600 does not support SSL using pre-shared
keys").

So that ``--sec-tag N`` means the same on every modem, atbridge names the files after
the tag (:func:`atbridge.dialects.sim7600.tls_file_name`): ``atb<N>ca.pem``,
``atb<N>cert.pem``, ``atb<N>key.pem`` (the manual asks for a ``.pem`` or ``.der``
name; PEM text is what ``certs write`` takes). Files with other names (put there by
other software) are left alone and not listed.

- ``list``: ``AT+CCERTLIST``; ``sha256`` and ``size`` are None (the module says
  neither), ``name`` the file name.
- ``write``: always writes (without a digest there is nothing to compare) and returns
  True. A key's bytes are masked in the transcript (``payload_secret_spans``) and added
  to the channel's secrets; an error names the command line, which holds only the file
  name.
- ``delete``: ``AT+CCERTDELE``; False when ``AT+CCERTLIST`` does not show the file.
- PSKs and PSK identities are refused with a clear error: the module's SSL client has
  no pre-shared-key mode atbridge can drive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atbridge.at_syntax import format_command, str_param
from atbridge.certs import CredentialKind, StoredCredential, check_file_tag, upload_bytes
from atbridge.dialects.sim7600 import tls_file_name
from atbridge.errors import ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect

#: The largest file the store takes here (the module's limit is not documented in the
#: sources above; a CA chain of a few certificates fits).
MAX_FILE = 10240

_KINDS = (CredentialKind.CA, CredentialKind.CLIENT_CERT, CredentialKind.CLIENT_KEY)


def parse_file_name(name: str) -> tuple[int, CredentialKind] | None:
    """``atb<tag><kind>.pem`` -> (tag, kind); None for a file atbridge did not name."""
    if not (name.startswith("atb") and name.endswith(".pem")):
        return None
    stem = name[3:-4]
    for kind in _KINDS:
        digits = stem.removesuffix(kind.value)
        if digits != stem and digits.isascii() and digits.isdigit():
            tag = int(digits)
            if tls_file_name(tag, kind.value) == name:
                return tag, kind
    return None


class Sim7600Store:
    """The SIM7600's certificate files under atbridge's names (see the module docstring)."""

    kinds: frozenset[CredentialKind] = frozenset(_KINDS)

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.modem = dialect.modem
        self.changes: list[str] = []

    async def _names(self) -> list[str]:
        response = await self.modem.command("AT+CCERTLIST", timeout=10)
        names = (str_param(value, 0) for value in response.values("+CCERTLIST:"))
        return [name for name in names if name]

    async def list(self, sec_tag: int | None = None) -> list[StoredCredential]:
        """Every file atbridge named (of ``sec_tag`` only, when given), by tag and kind."""
        found: list[StoredCredential] = []
        for name in await self._names():
            parsed = parse_file_name(name)
            if parsed is None or (sec_tag is not None and parsed[0] != sec_tag):
                continue
            found.append(StoredCredential(parsed[0], parsed[1], None, name, None))
        return sorted(found, key=lambda item: (item.sec_tag, _KINDS.index(item.kind)))

    def check(self, sec_tag: int, kind: CredentialKind, content: str) -> None:
        """Refuse, before anything is sent, what :meth:`write` could not write (a PSK,
        text that is not PEM, a file over :data:`MAX_FILE` bytes)."""
        self._file(sec_tag, kind)
        _pem_data(sec_tag, kind, content)

    async def write(self, sec_tag: int, kind: CredentialKind, content: str) -> bool:
        """Upload ``content`` as the tag's file for ``kind`` (always written: True)."""
        name = self._file(sec_tag, kind)
        data = _pem_data(sec_tag, kind, content)
        spans = ((0, len(data)),) if kind.secret else ()
        if kind.secret:
            self.modem.add_secret(content)
        try:
            await self.modem.command(
                format_command("AT+CCERTDOWN", name, len(data)),
                payload=data,
                payload_secret_spans=spans,
                timeout=30,
            )
        except ModemError as exc:
            exc.hint = (
                f"the modem refused {name}: check that the file is a valid PEM "
                f"{kind.words} and that the store has room (atbridge certs list; delete "
                "what is no longer used)"
            )
            raise
        return True

    async def delete(self, sec_tag: int, kind: CredentialKind) -> bool:
        """Remove the tag's file for ``kind``; False when there was none."""
        name = self._file(sec_tag, kind)
        if name not in await self._names():
            return False
        await self.modem.command(format_command("AT+CCERTDELE", name), timeout=10)
        return True

    def file_name(self, sec_tag: int, kind: CredentialKind) -> str:
        """The name of the tag's file for ``kind`` on the module (what ``list`` shows)."""
        return self._file(sec_tag, kind)

    def _file(self, sec_tag: int, kind: CredentialKind) -> str:
        if kind not in self.kinds:
            raise ConfigurationError(
                f"the {self.dialect.name} stores no {kind.words}: its SSL client has no "
                "pre-shared-key mode atbridge can drive",
                hint="use a client certificate and key (--cert/--key) for mutual TLS, or "
                "host-side TLS (--tls host)",
            )
        return tls_file_name(check_file_tag(sec_tag), kind.value)


def _pem_data(sec_tag: int, kind: CredentialKind, content: str) -> bytes:
    why = f"atbridge writes at most {MAX_FILE} to the SIM7600's store"
    return upload_bytes(sec_tag, kind, content, MAX_FILE, why)
