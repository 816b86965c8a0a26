"""The SIM7080 credential store: files in the module's flash, converted for its TLS.

Theory of operation
-------------------
The SIM7070/SIM7080/SIM7090 keep certificates as files in their application file
system and use them for TLS only once converted into the SSL store. Sources: the
SIM7070/SIM7080/SIM7090 AT Command Manual, file system chapter (as mirrored on
momoiot.co.kr ``catm-at/cmd/fs``: ``AT+CFSINIT`` allocates the buffer the file commands
use, ``AT+CFSWFILE=<index>,"<name>",<mode>,<size>,<inputtime>`` answers ``DOWNLOAD`` and
takes ``<size>`` bytes within ``<inputtime>`` ms, index 3 is ``/customer/``, names up to
50 characters, files up to 10240 bytes, ``AT+CFSGFIS`` gives a file's size,
``AT+CFSDFILE`` deletes one, ``AT+CFSTERM`` frees the buffer; there is no command that
lists a directory), and Zephyr ``drivers/modem/simcom/sim7080/sim7080_tls.c``
(``mdm_sim7080_import_root_ca``/``_client_cert``: upload to index 3, then
``AT+CSSLCFG="CONVERT",2,<ca>`` for a CA and ``AT+CSSLCFG="CONVERT",1,<cert>,<key>`` for
a client certificate with its key; the PSK table, type 3, is used only for DTLS).

So that ``--sec-tag N`` means the same on every modem, the files are named after the
tag (:func:`atbridge.dialects.sim7080.tls_file_name`): ``/customer/atb<N>ca.pem``,
``atb<N>cert.pem``, ``atb<N>key.pem``, at most 21 characters. Files with other names are
left alone.

- ``write``: ``AT+CFSINIT``; an existing file of that name is deleted first (mode 0
  writes from the start of the file and, as the manual words it, would leave the tail
  of a longer old file); ``AT+CFSWFILE=3,"<name>",0,<size>,10000`` with the bytes after
  ``DOWNLOAD``; ``AT+CFSGFIS`` checks that the size the module stored is the size sent;
  ``AT+CFSTERM``; then the conversion: the CA at once, the client pair once both its
  files are there (inside :meth:`Sim7080Store.batch`, the way ``atbridge certs write``
  runs, at the end of the batch, so a new certificate is never converted with the old
  key). It always writes and returns True: the module reports no digest, and a file's
  size proves nothing about its content. The files are kept after the conversion (Zephyr
  deletes them) so that ``list`` can show them and ``open_socket`` can check the tag.
- ``list``: ``AT+CFSGFIS`` for the three names of the tag: ``size`` as the module
  says, ``sha256`` None (no digest), ``name`` the file name. Without a tag it is refused:
  the file system has no listing command, and guessing tags is no listing.
- ``delete``: ``AT+CFSDFILE``; False when ``AT+CFSGFIS`` finds no file. The converted
  copy in the SSL store has no documented delete command and stays until a conversion
  under the same name replaces it, but ``open_socket`` looks the tag's files up first
  and refuses a tag without its CA file, so atbridge no longer uses it.
- Keys: the key's bytes are masked in the transcript (``payload_secret_spans``) and
  added to the channel's secrets; the command lines hold only file names.
- PSKs and PSK identities are refused with the reason: the module's pre-shared keys
  (the ``CONVERT`` type 3 table) are for DTLS, and MQTT here runs over TLS on TCP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from atbridge.at_syntax import format_command
from atbridge.certs import CredentialKind, StoredCredential, check_file_tag, upload_bytes
from atbridge.dialects.sim7080 import CUSTOMER_DIR, file_size, file_system, tls_file_name
from atbridge.errors import ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect

#: ``AT+CFSWFILE``'s largest file (its test command: ``<file size>`` 1-10240).
MAX_FILE = 10240
#: Milliseconds the module waits for the file's bytes after ``DOWNLOAD`` (its largest).
INPUT_TIME_MS = 10000

_KINDS = (CredentialKind.CA, CredentialKind.CLIENT_CERT, CredentialKind.CLIENT_KEY)


class Sim7080Store:
    """The SIM7080's credential files under atbridge's names (see the module docstring)."""

    kinds: frozenset[CredentialKind] = frozenset(_KINDS)

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.modem = dialect.modem
        self.changes: list[str] = []
        #: Inside :meth:`batch`: the tags whose client pair is to be converted at its end.
        self._pairs: set[int] | None = None

    async def list(self, sec_tag: int | None = None) -> list[StoredCredential]:
        """The tag's files (the module cannot list a directory: ``sec_tag`` is needed)."""
        if sec_tag is None:
            raise ConfigurationError(
                f"the {self.dialect.name} has no command that lists its files, so atbridge "
                "can list only one security tag's files",
                hint="give --sec-tag N (atbridge certs list --sec-tag N)",
            )
        tag = check_file_tag(sec_tag)
        found: list[StoredCredential] = []
        async with file_system(self.modem):
            for kind in _KINDS:
                name = tls_file_name(tag, kind.value)
                size = await file_size(self.modem, name)
                if size is not None:
                    found.append(StoredCredential(tag, kind, None, name, size))
        return found

    def check(self, sec_tag: int, kind: CredentialKind, content: str) -> None:
        """Refuse, before anything is sent, what :meth:`write` could not write (a kind
        the module has no TLS use for, text that is not PEM, a file over 10240 bytes)."""
        self._file(sec_tag, kind)
        _pem_bytes(sec_tag, kind, content)

    async def write(self, sec_tag: int, kind: CredentialKind, content: str) -> bool:
        """Upload ``content`` as the tag's file for ``kind`` and convert it (always: True)."""
        name = self._file(sec_tag, kind)
        data = _pem_bytes(sec_tag, kind, content)
        if kind.secret:
            self.modem.add_secret(content)
        modem = self.modem
        async with file_system(modem):
            if await file_size(modem, name) is not None:
                await modem.command(format_command("AT+CFSDFILE", CUSTOMER_DIR, name), timeout=10)
            try:
                await modem.command(
                    format_command("AT+CFSWFILE", CUSTOMER_DIR, name, 0, len(data), INPUT_TIME_MS),
                    payload=data,
                    payload_secret_spans=((0, len(data)),) if kind.secret else (),
                    prompt_line="DOWNLOAD",
                    timeout=INPUT_TIME_MS / 1000 + 10,
                )
            except ModemError as exc:
                exc.hint = (
                    f"the modem refused /customer/{name}: check that its flash has room "
                    "(AT+CFSGFRS?) and retry"
                )
                raise
            stored = await file_size(modem, name)
            if stored != len(data):
                raise ModemError(
                    format_command("AT+CFSGFIS", CUSTOMER_DIR, name),
                    f"+CFSGFIS: {stored}",
                    hint=f"the module stored {stored} bytes of the {len(data)} sent to "
                    f"/customer/{name}; write it again",
                )
            pair = kind is not CredentialKind.CA
            for other in ("cert", "key"):
                pair = pair and await file_size(modem, tls_file_name(sec_tag, other)) is not None
        if kind is CredentialKind.CA:
            await self._convert(
                sec_tag, format_command("AT+CSSLCFG", "convert", 2, name), "CA certificate"
            )
        elif pair:
            if self._pairs is not None:
                self._pairs.add(sec_tag)
            else:
                await self._convert_pair(sec_tag)
        return True

    async def delete(self, sec_tag: int, kind: CredentialKind) -> bool:
        """Delete the tag's file for ``kind``; False when there was none."""
        name = self._file(sec_tag, kind)
        async with file_system(self.modem):
            if await file_size(self.modem, name) is None:
                return False
            await self.modem.command(format_command("AT+CFSDFILE", CUSTOMER_DIR, name), timeout=10)
        return True

    @contextlib.asynccontextmanager
    async def batch(self, purpose: str) -> AsyncIterator[None]:
        """Several writes (``atbridge.certs.batch``): a client pair is converted once, at
        the end, when both its files are new."""
        del purpose  # nothing about the modem's state changes for either purpose
        self._pairs = set()
        try:
            yield
            pairs = sorted(self._pairs)
        finally:
            self._pairs = None
        for tag in pairs:
            await self._convert_pair(tag)

    async def _convert_pair(self, sec_tag: int) -> None:
        line = format_command(
            "AT+CSSLCFG",
            "convert",
            1,
            tls_file_name(sec_tag, "cert"),
            tls_file_name(sec_tag, "key"),
        )
        await self._convert(sec_tag, line, "client certificate and key")

    async def _convert(self, sec_tag: int, line: str, what: str) -> None:
        try:
            await self.modem.command(line, timeout=30)
        except ModemError as exc:
            exc.hint = (
                f"the modem could not convert the {what} of security tag {sec_tag}: check "
                "that it is PEM the module's TLS reads (a certificate; an unencrypted key "
                "that belongs to the certificate) and write them again together"
            )
            raise

    def file_name(self, sec_tag: int, kind: CredentialKind) -> str:
        """The name of the tag's file for ``kind`` on the module (what ``list`` shows)."""
        return self._file(sec_tag, kind)

    def _file(self, sec_tag: int, kind: CredentialKind) -> str:
        if kind not in self.kinds:
            raise ConfigurationError(
                f"the {self.dialect.name} stores no {kind.words} for TLS: its pre-shared "
                "keys (the CONVERT type 3 table) are for DTLS, and MQTT runs over TLS on TCP",
                hint="use a client certificate and key (--cert/--key) for mutual TLS, or "
                "host-side TLS (--tls host)",
            )
        return tls_file_name(check_file_tag(sec_tag), kind.value)


def _pem_bytes(sec_tag: int, kind: CredentialKind, content: str) -> bytes:
    why = f"the SIM7080 takes files of at most {MAX_FILE} (AT+CFSWFILE)"
    return upload_bytes(sec_tag, kind, content, MAX_FILE, why)


__all__ = ["INPUT_TIME_MS", "MAX_FILE", "Sim7080Store"]
