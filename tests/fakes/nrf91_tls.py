"""The nRF91 fakes' TLS: the modem's credential store (``AT%CMNG``) and TLS sockets.

Theory of operation
-------------------
The modem keeps credentials in non-volatile memory under a *security tag*: one item per
``(<sec_tag>, <type>)``, types 0 root CA, 1 client certificate, 2 client private key,
3 PSK, 4 PSK identity (nRF91 AT Commands Reference, ``%CMNG`` set command). The store
here is one per ``FakeModem`` and survives reboots, as NVM does.

``AT%CMNG=<opcode>[,<sec_tag>[,<type>[,<content>]]]``:

- 0 write: ``<content>`` in double quotes (PEM, CR/LF inside the quotes kept), replacing
  an item already there; refused with ``+CME ERROR: 518`` (not allowed in active state)
  unless CFUN is 0 or 4; an empty content is refused (``ERROR``);
- 1 list: ``%CMNG: <sec_tag>,<type>,"<sha256>"`` per item (all, or one tag, or one pair;
  none: just ``OK``). The digest is the SHA-256 of the content exactly as written, in
  upper-case hex: what Nordic's ``nrfcredstore`` expects (``calculate_expected_hash``:
  the SHA-256 of the text it wrote) and the reference's "digest of the entity as stored";
- 2 read: ``%CMNG: <sec_tag>,<type>,"<sha256>","<content>"``; only certificates are
  readable, keys and PSKs answer ``+CME ERROR: 514`` (no access); 513 not found;
- 3 delete: 513 not found, 518 in an active state.

``<sec_tag>`` is 0..2147483647 for write, read and delete (higher tags are the modem's
own); a tag outside the range is a parameter error (``ERROR``). Sources: nRF91 and
nRF91x1 AT Commands Reference (``%CMNG`` set command); sdk-nrf ``modem_key_mgmt.c``
(write replaces, the CME codes it translates); Nordic ``nrfcredstore`` (``credstore.py``,
``command_interface.py``).

A TLS socket (``AT#XSSOCKET``) connects with Python's :mod:`ssl` on the fake's side of
the TCP bridge: the CA written under the socket's security tag is the only trust
anchor, the host name set with ``AT#XSSOCKETOPT`` (name 2, ``TLS_HOSTNAME``) is sent as
SNI and checked against the broker's certificate when ``peer_verify`` is 2 (with no host
name set there is neither, as on the modem), a client certificate and key under the same
tag are offered. A tag with no CA, a CA that did not sign the broker or a host name
that does not match make ``connect()`` fail, which the SLM and SM answer with ``ERROR``
to ``AT#XCONNECT`` (``slm_at_socket.c``/``sm_at_socket.c`` ``do_connect``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import tempfile
import weakref
from typing import TYPE_CHECKING, Final

from .grammar import Command, CommandError, Kind, Response
from .loopback import LoopbackConnection, Receiver, is_loopback

if TYPE_CHECKING:
    from .core import FakeModem

__all__ = [
    "CA",
    "CLIENT_CERT",
    "CLIENT_KEY",
    "PSK",
    "PSK_IDENTITY",
    "TlsLoopbackConnection",
    "cmng",
    "credentials",
    "store",
    "tls_context",
]

log = logging.getLogger("tests.fakes.nrf91_tls")

CA: Final = 0
CLIENT_CERT: Final = 1
CLIENT_KEY: Final = 2
PSK: Final = 3
PSK_IDENTITY: Final = 4
_READABLE: Final = frozenset({CA, CLIENT_CERT})
#: ``%CMNG`` errors (nRF91 AT Commands Reference).
NOT_FOUND: Final = 513
NO_ACCESS: Final = 514
NOT_ALLOWED_ACTIVE: Final = 518
#: The highest ``<sec_tag>`` the set command takes for write, read and delete.
MAX_SEC_TAG: Final = 2147483647
#: ``#XSSOCKETOPT`` TLS_HOSTNAME, as the fakes store it (``options[1000 + name]``).
TLS_HOSTNAME_OPTION: Final = 1000 + 2

_STORES: weakref.WeakKeyDictionary[FakeModem, dict[tuple[int, int], str]] = (
    weakref.WeakKeyDictionary()
)


def credentials(fake: FakeModem) -> dict[tuple[int, int], str]:
    """The fake's credential store: ``(sec_tag, type) -> content`` (kept across reboots)."""
    return _STORES.setdefault(fake, {})


def store(fake: FakeModem, sec_tag: int, kind: int, content: str) -> None:
    """Put a credential in the store, as a factory-provisioned modem would have it."""
    credentials(fake)[(sec_tag, kind)] = content


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode("latin-1")).hexdigest().upper()


def cmng(fake: FakeModem, cmd: Command) -> Response:
    """``AT%CMNG`` (module doc)."""
    cmd.require_kind(Kind.SET)
    items = credentials(fake)
    opcode = cmd.int_arg(0)
    if opcode == 1:
        tag = cmd.int_arg(1) if len(cmd.params) > 1 else None
        kind = cmd.int_arg(2) if len(cmd.params) > 2 else None
        listed = [
            f'%CMNG: {t},{k},"{_sha(v)}"'
            for (t, k), v in sorted(items.items())
            if (tag is None or t == tag) and (kind is None or k == kind)
        ]
        return Response.ok(*listed)
    if opcode not in (0, 2, 3) or len(cmd.params) < 3:
        raise CommandError(None)
    tag, kind = cmd.int_arg(1), cmd.int_arg(2)
    if kind not in (CA, CLIENT_CERT, CLIENT_KEY, PSK, PSK_IDENTITY) or not 0 <= tag <= MAX_SEC_TAG:
        raise CommandError(None)
    if opcode == 2:
        if (tag, kind) not in items:
            raise CommandError(NOT_FOUND)
        if kind not in _READABLE:
            raise CommandError(NO_ACCESS)
        value = items[(tag, kind)]
        return Response.ok(f'%CMNG: {tag},{kind},"{_sha(value)}","{value}"')
    if fake.state.cfun not in (0, 4):
        raise CommandError(NOT_ALLOWED_ACTIVE)
    if opcode == 3:
        if items.pop((tag, kind), None) is None:
            raise CommandError(NOT_FOUND)
        return Response.ok()
    if len(cmd.params) < 4:
        raise CommandError(None)
    content = cmd.str_arg(3)
    if not content:
        raise CommandError(None)
    items[(tag, kind)] = content
    return Response.ok()


def tls_context(
    fake: FakeModem, sec_tag: int, peer_verify: int, hostname: str | None
) -> ssl.SSLContext | None:
    """The client context of a TLS socket on ``sec_tag`` (None: nothing to trust)."""
    items = credentials(fake)
    ca = items.get((sec_tag, CA))
    if ca is None and peer_verify != 0:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = peer_verify == 2 and hostname is not None
    context.verify_mode = ssl.CERT_NONE if peer_verify == 0 else ssl.CERT_REQUIRED
    if ca is not None and peer_verify != 0:
        context.load_verify_locations(cadata=ca)
    cert, key = items.get((sec_tag, CLIENT_CERT)), items.get((sec_tag, CLIENT_KEY))
    if cert is not None and key is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "client.pem")
            with open(path, "w", encoding="latin-1") as file:
                file.write(key + "\n" + cert)
            context.load_cert_chain(path)
    return context


class TlsLoopbackConnection(LoopbackConnection):
    """A loopback connection with TLS made by the fake (the modem's TLS stack).

    A family's fake tells its own failure codes from :attr:`error` (why the last connect
    failed: an :class:`ssl.SSLError` for a refused handshake) and may refuse a made
    connection in :meth:`accepted` (what its module checks beyond Python's ``ssl``).
    """

    def __init__(self, receiver: Receiver, context: ssl.SSLContext, hostname: str | None) -> None:
        super().__init__(receiver)
        self.context = context
        self.hostname = hostname
        self.error: BaseException | None = None

    async def connect(self, address: str, port: int, *, timeout: float) -> bool:
        if not is_loopback(address):
            return await super().connect(address, port, timeout=timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: self,
                    address,
                    port,
                    ssl=self.context,
                    server_hostname=self.hostname or "",
                    ssl_handshake_timeout=timeout,
                )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.debug("TLS connect %s:%d failed: %s", address, port, exc)
            self.error = exc
            self.fail()
            return False
        if not self.accepted(transport):
            transport.abort()
            self.fail()
            return False
        return self._receiver is not None

    def accepted(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the module keeps the connection Python's ``ssl`` made (all: True)."""
        return True

    def fail(self) -> None:
        """The connection is not made: detached, and ``lost`` done."""
        self.detach()
        if not self.lost.done():
            self.lost.set_result(None)
