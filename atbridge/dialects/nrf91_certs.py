"""The nRF91's credential store, ``AT%CMNG``: list, write and delete under a security tag.

Theory of operation
-------------------
The modem keeps credentials in non-volatile memory, one item per ``(<sec_tag>, <type>)``:
type 0 root CA certificate, 1 client certificate, 2 client private key, 3 PSK (hex
text), 4 PSK identity (nRF91 AT Commands Reference, ``%CMNG`` set command). The same
command works on the Serial LTE Modem and the Serial Modem: both hand it to the modem.

- list: ``AT%CMNG=1[,<sec_tag>[,<type>]]`` answers ``%CMNG: <sec_tag>,<type>[,"<sha>"]``
  per item (:func:`parse_list`); types atbridge does not write (5 and up: the modem's
  own public keys and identities) are left out. The digest is the SHA-256 of the item
  as written, upper-case hex (Nordic's ``nrfcredstore`` compares it with the SHA-256 of
  the text it wrote), so :meth:`Nrf91Store.write` skips an item whose listed digest is
  that of the content it would write (:func:`atbridge.certs.same_digest`).
- write: ``AT%CMNG=0,<sec_tag>,<type>,"<content>"``, the PEM's line breaks inside the
  quotes (``Modem.command(multiline=True)``); an existing item is replaced, as
  ``modem_key_mgmt_write`` (sdk-nrf) and ``nrfcredstore`` rely on.
- delete: ``AT%CMNG=3,<sec_tag>,<type>``; an item that is not there (513, or not
  listed) is "absent", not an error.

Size: the whole write is one AT command line, and the line is what limits it. The
Serial LTE Modem keeps a command in ``slm_at_buf[SLM_AT_MAX_CMD_LEN + 1]`` with
``SLM_AT_MAX_CMD_LEN`` 4096 (sdk-nrf ``applications/serial_lte_modem/src/slm_defines.h``);
a longer line is dropped with ``AT command buffer overflow`` and answered ``ERROR``
(``slm_at_host.c`` ``cmd_rx_handler``). The Serial Modem's buffer is
``CONFIG_SM_AT_BUF_SIZE``, 4096 by default (ncs-serial-modem ``app/Kconfig``, ``sm_at_host.c``;
later builds grow the buffer as a line arrives, up to ``AT_BUF_MAX_SIZE`` 8192, and answer
``ERROR`` past it: 4096 is what every build takes).
So :func:`check_size` refuses content whose line would pass 4096 bytes, before the radio
is switched or anything is sent, naming the size and what to do (one CA instead of a
bundle; a smaller key; host-side TLS, which has no such limit). The CLI runs it before
the port is opened when ``--dialect`` names an nRF91, and before the first write
otherwise, so a batch is refused whole rather than half written.

Writes and deletes are allowed only while the modem is not activated, ``+CFUN`` 0 or 4
(``+CME ERROR: 518`` otherwise). Inside :meth:`Nrf91Store.batch` the first write or
delete that is needed reads ``AT+CFUN?``, switches to 4 (radio off, SIM on) when the mode
is another, and the mode it found is put back when the batch ends — also when a write
fails or the task is cancelled — and said in :attr:`Nrf91Store.changes`. A batch whose
writes were all unchanged never touches the mode. Each write or delete outside a batch
is its own batch.
``nrfcredstore`` goes offline the same way (``AT+CFUN=4`` before it writes).

Secrets: a key's or a PSK's content is masked by position in the command line
(``secret_spans``) and, in both directions of the transcript, by value
(``Modem.add_secret``: each base64 line of a key, the whole PSK), so an echo or a
modem that repeats the line cannot show it. An error names the command with the
content replaced by its kind and size, and decodes the ``%CMNG`` CME codes:
513 not found, 514 no access, 515 memory full, 518 not allowed in active state,
519 already exists, 528 not allowed while a power-off warning is active.

Sources: Nordic nRF91 AT Commands Reference and nRF91x1 AT Commands Reference
(``%CMNG`` set command; ``+CFUN``); sdk-nrf ``lib/modem_key_mgmt/modem_key_mgmt.c``
(the error codes it translates, write as replace); Nordic ``nrfcredstore``
(``credstore.py``: ``AT+CFUN=4`` then ``AT%CMNG``; ``command_interface.py``: the
digest of the written text); sdk-nrf ``slm_defines.h`` (``SLM_AT_MAX_CMD_LEN``) and
``slm_at_host.c`` (the overflow answered ``ERROR``), ncs-serial-modem ``app/Kconfig``
(``CONFIG_SM_AT_BUF_SIZE``): the longest command line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from atbridge.at_syntax import quote, quote_text, split_params
from atbridge.certs import CredentialKind, StoredCredential, same_digest, secret_parts
from atbridge.errors import AtBridgeError, ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect
    from atbridge.modem import Response

log = logging.getLogger("atbridge.certs")

#: ``%CMNG`` ``<type>`` of each kind.
TYPES: Final[dict[CredentialKind, int]] = {
    CredentialKind.CA: 0,
    CredentialKind.CLIENT_CERT: 1,
    CredentialKind.CLIENT_KEY: 2,
    CredentialKind.PSK: 3,
    CredentialKind.PSK_IDENTITY: 4,
}
KINDS: Final[dict[int, CredentialKind]] = {number: kind for kind, number in TYPES.items()}
#: The functional modes in which ``%CMNG`` may write and delete.
OFFLINE_MODES: Final = frozenset({0, 4})
#: ``%CMNG`` CME error -> (what it means, what to try).
CMNG_ERRORS: Final[dict[int, tuple[str, str]]] = {
    513: ("not found", "check the security tag and kind with atbridge certs list"),
    514: (
        "no access",
        "the modem does not let this item be changed: tags above 2147483647 and some "
        "factory credentials belong to the modem; use another security tag",
    ),
    515: (
        "memory full",
        "the credential store is full: delete what is no longer used (atbridge certs "
        "list, then atbridge certs delete --sec-tag N)",
    ),
    518: (
        "not allowed in active state",
        "the radio was on when the modem got the command: something turned it on "
        "meanwhile (another program on the port?); run the command again",
    ),
    519: ("already exists", "delete the item first (atbridge certs delete), then write it"),
    528: (
        "not allowed while a power-off warning is active",
        "the supply voltage is low (%XPOFWARN): fix the power supply, then try again",
    ),
}
TIMEOUT: Final = 30.0
#: The longest AT command line the SLM and the SM take, terminator not counted (module doc).
MAX_COMMAND_LINE: Final = 4096


def write_line(sec_tag: int, kind: CredentialKind, content: str) -> tuple[str, str]:
    """The ``AT%CMNG=0`` line that writes ``content``, and its head (before the quote)."""
    if kind is CredentialKind.PSK_IDENTITY:
        quoted = quote(content, name="PSK identity")
    else:
        quoted = quote_text(content, name=kind.words)
    head = f"AT%CMNG=0,{sec_tag},{TYPES[kind]},"
    return head + quoted, head


def check_size(sec_tag: int, kind: CredentialKind, content: str) -> None:
    """A ConfigurationError when the line writing ``content`` is longer than the nRF91's
    AT command buffer takes (:data:`MAX_COMMAND_LINE`); never names the content."""
    line, _ = write_line(sec_tag, kind, content)
    if len(line) <= MAX_COMMAND_LINE:
        return
    room = MAX_COMMAND_LINE - (len(line) - len(content))
    what = (
        f"--{kind}: the {kind.words} is {len(content)} bytes, too large for the nRF91: "
        f"AT%CMNG writes it in one AT command line and the Serial LTE Modem / Serial Modem "
        f"take at most {MAX_COMMAND_LINE} bytes a line (this one would be {len(line)}; at "
        f"most {room} bytes of content fit)"
    )
    if kind is CredentialKind.CA:
        hint = (
            "write only the CA that signed the broker's certificate, not a whole bundle "
            "(split the file and keep that one certificate), or use host-side TLS "
            "(--tls host --cafile FILE), which has no such limit"
        )
    elif kind is CredentialKind.CLIENT_CERT:
        hint = (
            "write the device's own certificate without its chain, or use host-side TLS "
            "(--tls host --cert FILE --key FILE), which has no such limit"
        )
    else:
        hint = (
            "use a smaller key (an EC P-256 key is about 240 bytes), or host-side TLS "
            "(--tls host --cert FILE --key FILE), which has no such limit"
        )
    raise ConfigurationError(what, hint=hint)


def parse_list(values: list[str]) -> list[StoredCredential]:
    """The ``%CMNG:`` lines of a list answer (text after the prefix) as stored items.

    ``'16842753,0,"2C43...BD1"'`` -> ``StoredCredential(16842753, CA, "2c43...bd1")``; a
    line without a digest has ``sha256`` None; types other than 0-4 and lines that are
    not ``<tag>,<type>[,...]`` are left out.
    """
    items: list[StoredCredential] = []
    for value in values:
        params = split_params(value)
        if len(params) < 2 or not params[0].isdigit() or not params[1].isdigit():
            continue
        kind = KINDS.get(int(params[1]))
        if kind is None:
            continue
        digest = params[2].strip('"').lower() if len(params) > 2 and params[2] else None
        items.append(StoredCredential(int(params[0]), kind, digest or None))
    return items


def parse_cfun(response: Response) -> int:
    """The mode of an ``AT+CFUN?`` answer (``+CFUN: 4`` -> 4)."""
    text = response.value("+CFUN:").split(",")[0].strip()
    if not text.isdigit():
        raise ModemError("AT+CFUN?", f"+CFUN: {text}", hint="the modem's answer has no mode")
    return int(text)


def cmng_error(error: ModemError, action: str, shown: str) -> ModemError:
    """``error`` from a ``%CMNG`` command, said in its words (``shown``: the command with
    the content replaced by its kind and size)."""
    meaning = CMNG_ERRORS.get(error.code or -1) if error.kind == "CME" else None
    if meaning is None:
        hint = (
            "the modem refused the content or the security tag (it gave no reason); check "
            "that the file is the right PEM"
            if error.kind is None
            else None
        )
        return ModemError(
            shown, error.final, kind=error.kind, code=error.code, text=error.text, hint=hint
        )
    text, hint = meaning
    failed = ModemError(shown, error.final, kind=error.kind, code=error.code, text=text, hint=hint)
    failed.message = f"could not {action}: {failed.message}"
    return failed


@dataclass
class _Batch:
    """One :meth:`Nrf91Store.batch`: what it is for, whether ``AT+CFUN?`` was read, and the
    mode to put back (None: not switched)."""

    purpose: str
    checked: bool = False
    found: int | None = None


class Nrf91Store:
    """The ``AT%CMNG`` store of an nRF91 bound as ``dialect`` (module doc)."""

    kinds: frozenset[CredentialKind] = frozenset(TYPES)

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.modem = dialect.modem
        self.changes: list[str] = []
        self._batch: _Batch | None = None

    async def list(self, sec_tag: int | None = None) -> list[StoredCredential]:
        line = "AT%CMNG=1" if sec_tag is None else f"AT%CMNG=1,{sec_tag}"
        try:
            response = await self.modem.command(line, timeout=TIMEOUT)
        except ModemError as exc:
            raise cmng_error(exc, "list the credentials", line) from None
        return parse_list(response.values("%CMNG:"))

    def check(self, sec_tag: int, kind: CredentialKind, content: str) -> None:
        """Refuse, before anything is sent, what :meth:`write` could not write."""
        check_size(sec_tag, kind, content)

    async def write(self, sec_tag: int, kind: CredentialKind, content: str) -> bool:
        if kind.secret:
            self._mask(kind, content)
        self.check(sec_tag, kind, content)
        listed = await self._listed(sec_tag, kind)
        if listed is not None and same_digest(listed.sha256, content):
            return False
        line, head = write_line(sec_tag, kind, content)
        spans = ((len(head) + 1, len(line) - 1),) if kind.secret else ()
        shown = f'{head}"<{kind.words}, {len(content)} bytes>"'
        async with self.batch("write"):
            await self._go_offline()
            try:
                await self.modem.command(line, multiline=True, secret_spans=spans, timeout=TIMEOUT)
            except ModemError as exc:
                action = f"write the {kind.words} to security tag {sec_tag}"
                raise cmng_error(exc, action, shown) from None
        return True

    async def delete(self, sec_tag: int, kind: CredentialKind) -> bool:
        if await self._listed(sec_tag, kind) is None:
            return False
        line = f"AT%CMNG=3,{sec_tag},{TYPES[kind]}"
        async with self.batch("delete"):
            await self._go_offline()
            try:
                await self.modem.command(line, timeout=TIMEOUT)
            except ModemError as exc:
                if exc.kind == "CME" and exc.code == 513:
                    return False
                raise cmng_error(
                    exc, f"delete the {kind.words} of security tag {sec_tag}", line
                ) from None
        return True

    @contextlib.asynccontextmanager
    async def batch(self, purpose: str = "change") -> AsyncIterator[None]:
        """Writes and deletes inside the block share one switch to offline: the first one
        that needs it reads ``AT+CFUN?`` and, unless the mode is 0 or 4, sets 4; the mode
        found is put back when the block ends, even on an error or a cancellation. A
        block that changes nothing (every write unchanged) never touches the mode.
        ``purpose`` (``write``, ``delete``) is what :attr:`changes` says it was for."""
        if self._batch is not None:
            yield
            return
        batch = self._batch = _Batch(purpose)
        try:
            yield
        except BaseException as failure:
            self._batch = None
            if batch.found is not None:
                await self._restore(batch, failing=failure)
            raise
        self._batch = None
        if batch.found is not None:
            await self._restore(batch, failing=None)

    async def _go_offline(self) -> None:
        """Inside a batch, right before a write or a delete: offline, once (:meth:`batch`)."""
        batch = self._batch
        assert batch is not None, "a write or delete runs inside a batch"
        if batch.checked:
            return
        mode = parse_cfun(await self.modem.command("AT+CFUN?", timeout=TIMEOUT))
        batch.checked = True
        if mode not in OFFLINE_MODES:
            await self.modem.command("AT+CFUN=4", timeout=TIMEOUT)
            batch.found = mode

    async def _restore(self, batch: _Batch, *, failing: BaseException | None) -> None:
        """Put the mode found back. When that fails it is raised, unless another error
        (``failing``) is on its way: then that one's hint says the radio stayed offline."""
        mode = batch.found
        switched = f"radio switched to offline (CFUN=4) to {batch.purpose} credentials"
        left = (
            f"the radio was left offline (CFUN=4): turn it on with "
            f"atbridge at --port {self.modem.port} AT+CFUN={mode}"
        )
        try:
            await self.modem.command(f"AT+CFUN={mode}", timeout=TIMEOUT)
        except (AtBridgeError, OSError) as exc:
            self.changes.append(f"{switched}; putting CFUN={mode} back failed: {exc}")
            if failing is not None:
                log.warning("could not put CFUN=%s back: %s", mode, exc)
                if isinstance(failing, AtBridgeError):
                    failing.hint = f"{failing.hint}; {left}" if failing.hint else left
                return
            raise ModemError(f"AT+CFUN={mode}", getattr(exc, "final", str(exc)), hint=left) from exc
        self.changes.append(f"{switched}, then back to CFUN={mode}")

    async def _listed(self, sec_tag: int, kind: CredentialKind) -> StoredCredential | None:
        line = f"AT%CMNG=1,{sec_tag},{TYPES[kind]}"
        try:
            response = await self.modem.command(line, timeout=TIMEOUT)
        except ModemError as exc:
            if exc.kind == "CME" and exc.code == 513:
                return None
            raise cmng_error(exc, "list the credentials", line) from None
        found = [item for item in parse_list(response.values("%CMNG:")) if item.kind is kind]
        return next((item for item in found if item.sec_tag == sec_tag), None)

    def _mask(self, kind: CredentialKind, content: str) -> None:
        """Mask a secret's content by value in both directions of the transcript."""
        for part in secret_parts(kind, content):
            self.modem.add_secret(part)
