"""Host-side TLS: the MQTT session encrypted on this computer, over any modem's TCP socket.

Theory of operation
-------------------
TLS offloaded to a modem is a different set of commands, certificate stores and
limits per family (the nRF91 needs a security tag and its own host-name option, the
SIMCom families upload files and convert them). Host-side TLS needs nothing from the
modem but a plain TCP socket, so it works the same on every dialect, present or
future: this module is the TLS client, and the modem only carries its bytes.

It is sans-IO around :mod:`ssl`: a :class:`TlsSocket` holds an :class:`ssl.SSLObject`
made by :meth:`ssl.SSLContext.wrap_bio` over two :class:`ssl.MemoryBIO` (what arrived
from the broker, what is to go to it), and moves bytes between them and the socket it
wraps (any :class:`~atbridge.steps.SocketLink`: a
:class:`~atbridge.dialects.base.ModemSocket`) with that socket's own ``send`` and
``receive``. No private asyncio API, no file descriptor:

- *handshake* (:meth:`TlsClient.connect`, timed by the caller): ``do_handshake`` until
  it stops asking for more (``SSLWantReadError``: send what it wrote, read what came);
- *send*: encrypt into the outgoing BIO, then hand its bytes to the socket, under one
  lock so records of two sends never interleave (bytes a cancelled sender left behind
  go out with the next holder's);
- *receive*: decrypt what is buffered; ``SSLWantReadError`` means read more from the
  socket. A TLS 1.3 broker's session tickets and key updates arrive here too (whatever
  ``read`` wrote in answer is sent); the broker's ``close_notify`` ends the stream as a
  peer close;
- *close*: ``close_notify`` (``unwrap``), sent, then the socket closed. ``closed``
  mirrors the socket's.

Verification is on, always: the broker's certificate must chain to the CA file given
(``cafile``) or to the system's CA store, and name the broker's host (SNI and the
host-name check both come from the configured host; an IP address is checked against
the certificate's IP addresses and sends no SNI). A client certificate and key make it
mutual TLS. TLS 1.2 and 1.3 (``min_version``; 1.0 and 1.1 are deprecated, RFC 8996).

Resumption: bytes on a metered SIM cost money, and a full handshake carries the
broker's certificate chain (kilobytes) each time. A :class:`TlsClient` keeps one
:class:`ssl.SSLContext` for the bridge's life and the last :class:`ssl.SSLSession`,
and offers it on every reconnect (a TLS 1.2 session id or ticket, RFC 5077; a TLS 1.3
ticket, RFC 8446 §4.6.1). In TLS 1.3 the tickets come *after* the handshake, so the
session is taken again after every read of application data and at the close.
Resuming after a connection that ended without ``close_notify`` (the network dropped
it) is allowed since TLS 1.1 (RFC 5246 §7.2.1, RFC 8446 §6.1), and that is when a
reconnect is most common; a handshake that failed leaves no session behind.

Errors say what to fix: an unknown CA (pass ``--cafile``), a host-name mismatch, an
expired or not-yet-valid certificate (the only case that mentions this computer's
clock: host-side TLS checks dates against it), a client certificate the broker
refused, no common TLS version, a port that does not speak TLS. Those cannot be fixed
by retrying and stop the bridge (:class:`~atbridge.errors.TlsRefused`); a TLS record
that breaks mid-session is a :class:`~atbridge.errors.TlsProtocolError` (a
:class:`~atbridge.errors.RemoteProtocolError`: reconnect).

Sources: Python's :mod:`ssl` (memory BIO support, ``SSLSession``); RFC 8446 (TLS 1.3:
§4.6.1 NewSessionTicket, §6.1 closure alerts), RFC 5246 §7.2.1 and RFC 5077 (TLS 1.2
closure and tickets); OpenSSL's ``X509_V_ERR_*`` codes (``openssl-verify(1)``);
issue sdk-nrf #20182 (the nRF91's limit on incoming TLS records, which host-side TLS
does not have).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from atbridge.credentials import MqttCredentials, TlsMode, TlsOptions
from atbridge.errors import (
    AtBridgeError,
    CloseReason,
    ConfigurationError,
    SocketClosed,
    StepTimeout,
    TlsProtocolError,
    TlsRefused,
)


class ByteLink(Protocol):
    """What TLS runs over: a socket through the modem (a :class:`~atbridge.steps.SocketLink`)."""

    @property
    def closed(self) -> SocketClosed | None: ...

    async def send(self, data: bytes) -> None: ...

    async def receive(self, max_bytes: int = 1 << 20) -> bytes: ...

    async def close(self) -> None: ...


#: Seconds a failed first send waits for the broker's alert that explains it (the socket's
#: end, as the modem reports it, usually comes sooner).
EXPLAIN_WITHIN = 5.0

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The client :class:`ssl.SSLContext` of ``options``: verifying, with the CA and our
    certificate loaded. A file that cannot be used is a ConfigurationError naming it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, host names checked
    context.minimum_version = _VERSIONS[options.min_version]
    if options.cafile is not None:
        try:
            context.load_verify_locations(cafile=options.cafile)
        except (OSError, ssl.SSLError) as error:
            raise _unreadable("CA file", options.cafile, "cafile", "--cafile", error) from None
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if options.certfile is not None:
        try:
            context.load_cert_chain(options.certfile, options.keyfile, password=_no_password)
        except _KeyIsEncrypted:
            raise ConfigurationError(
                f"the client key {options.keyfile or options.certfile} is encrypted",
                hint="give --key an unencrypted PEM key (openssl pkey -in KEY -out PLAIN)",
            ) from None
        except (OSError, ssl.SSLError) as error:
            if "KEY_VALUES_MISMATCH" in str(error):
                raise ConfigurationError(
                    f"the client key {options.keyfile or options.certfile} does not belong "
                    f"to the certificate {options.certfile}",
                    hint="pass --cert and --key of the same pair",
                ) from None
            raise _unreadable(
                "client certificate or key",
                f"{options.certfile}{f' / {options.keyfile}' if options.keyfile else ''}",
                "certfile",
                "--cert/--key",
                error,
            ) from None
    return context


class _KeyIsEncrypted(Exception):
    """Raised from the password callback: OpenSSL would otherwise prompt on the terminal."""


def _no_password() -> str:
    raise _KeyIsEncrypted


def _unreadable(what: str, name: str, key: str, option: str, error: OSError) -> ConfigurationError:
    if isinstance(error, ssl.SSLError):  # an OSError too: first
        why = "it holds no usable PEM data"
    elif isinstance(error, FileNotFoundError):
        why = "it does not exist"
    else:
        why = error.strerror or str(error)
    return ConfigurationError(
        f"cannot use the {what} {name}: {why}",
        hint=f"give {option} (or {key} in [mqtt] or [aliyun]) a readable PEM file",
    )


@dataclass(frozen=True, slots=True)
class Handshake:
    """One TLS handshake done: what was agreed, whether it resumed, the bytes it took."""

    version: str
    cipher: str
    resumed: bool
    #: TLS bytes handed to the socket and read from it during the handshake.
    bytes_sent: int
    bytes_received: int


class TlsClient:
    """The TLS client of one broker for a bridge's life: one context, the last session.

    ``server_hostname`` is the broker's host as configured (SNI and the name checked).
    """

    def __init__(self, options: TlsOptions, server_hostname: str) -> None:
        self.options = options
        self.server_hostname = server_hostname
        self.context = client_context(options)
        #: The session offered on the next handshake (None: a full handshake).
        self.session: ssl.SSLSession | None = None

    @classmethod
    def for_credentials(cls, credentials: MqttCredentials) -> TlsClient | None:
        """The client for host-side TLS to the credentials' broker (None unless host-side)."""
        if credentials.tls_mode is not TlsMode.HOST:
            return None
        host, _port = credentials.endpoint()
        return cls(credentials.tls_options, host)

    async def connect(self, sock: ByteLink, *, timeout: float | None = None) -> TlsSocket:
        """Run the handshake over ``sock`` (within ``timeout`` s); the TLS stream on it.

        On any failure the socket is closed and the error says what to fix.
        """
        tls = TlsSocket(sock, self)
        try:
            try:
                async with asyncio.timeout(timeout):
                    await tls.handshake()
            except TimeoutError as error:
                if isinstance(error, AtBridgeError):
                    raise
                raise StepTimeout(
                    f"the TLS handshake with {self.server_hostname} did not finish "
                    f"within {timeout:g} s",
                    hint="raise the open_socket timeout (a handshake is a few kilobytes: "
                    "slow on a weak link), or check that the port speaks TLS",
                ) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await sock.close()
            raise
        return tls

    def keep(self, connection: ssl.SSLObject) -> None:
        """Keep ``connection``'s session for the next handshake, once it can be resumed."""
        session = connection.session
        if session is None:
            return
        # TLS 1.3 resumes with a ticket only (one arrives after the handshake); 1.2 with
        # a ticket or a session id.
        if session.has_ticket or (connection.version() == "TLSv1.2" and session.id):
            self.session = session


class TlsSocket:
    """A TLS stream over a socket through the modem; the same surface as that socket."""

    def __init__(self, inner: ByteLink, client: TlsClient) -> None:
        self.inner = inner
        self.client = client
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = client.context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_hostname=client.server_hostname,
            session=client.session,
        )
        self._lock = asyncio.Lock()
        self._ended: SocketClosed | None = None
        self._shut = False
        self._read_any = False
        #: TLS bytes (records) handed to the socket and read from it.
        self.tls_bytes_sent = 0
        self.tls_bytes_received = 0
        #: Whether our close_notify went out (set by :meth:`close`).
        self.close_notify_sent = False
        #: What the handshake agreed (None until it is done).
        self.handshake_info: Handshake | None = None

    def __repr__(self) -> str:
        return f"<TlsSocket {self.version or 'handshaking'} over {self.inner!r}>"

    @property
    def closed(self) -> SocketClosed | None:
        """Why the socket underneath closed, or ``None`` while it is open."""
        return self.inner.closed

    @property
    def version(self) -> str | None:
        """``"TLSv1.3"``, ``"TLSv1.2"`` once the handshake is done."""
        return self._tls.version()

    @property
    def session_reused(self) -> bool:
        """Whether the handshake resumed the session the client kept."""
        return self._tls.session_reused

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The :class:`ssl.SSLObject` (the peer certificate, the cipher...)."""
        return self._tls

    def on_close(self, callback: Callable[[SocketClosed], None]) -> Callable[[], None]:
        """Call ``callback(error)`` once when the socket underneath closes."""
        listen = getattr(self.inner, "on_close", None)
        if listen is None:
            raise TypeError(f"{type(self.inner).__name__} reports no close")
        remove: Callable[[], None] = listen(callback)
        return remove

    async def handshake(self) -> Handshake:
        """Run the TLS handshake (no time limit: :meth:`TlsClient.connect` sets one)."""
        sent, received = self.tls_bytes_sent, self.tls_bytes_received
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill(handshaking=True)
            except ssl.SSLError as error:
                with contextlib.suppress(Exception):
                    await self._flush()  # our alert tells the broker (and its log) why
                raise tls_failure(error, self.client.server_hostname) from None
        await self._flush()
        self.client.keep(self._tls)
        cipher = self._tls.cipher()
        self.handshake_info = Handshake(
            version=self._tls.version() or "",
            cipher=cipher[0] if cipher else "",
            resumed=self._tls.session_reused,
            bytes_sent=self.tls_bytes_sent - sent,
            bytes_received=self.tls_bytes_received - received,
        )
        return self.handshake_info

    async def send(self, data: bytes) -> None:
        """Encrypt ``data`` and send it; returns when the socket took every record."""
        if self._ended is not None:
            raise self._ended
        if self.inner.closed is not None:
            raise self.inner.closed
        view = memoryview(data)
        try:
            while view:
                view = view[self._tls.write(view) :]
        except ssl.SSLError as error:
            raise tls_failure(error, self.client.server_hostname) from None
        try:
            await self._flush()
        except AtBridgeError as failed:
            if self._read_any:
                raise
            # In TLS 1.3 a broker refuses our certificate (or its absence) after our
            # Finished: its alert is on the way while the send meets the closed socket.
            explained = await self._alert_before_the_end()
            if explained is None:
                raise
            raise explained from failed

    async def _alert_before_the_end(self) -> AtBridgeError | None:
        """What the broker's alert says, read from what arrived before the socket ended."""
        try:
            async with asyncio.timeout(EXPLAIN_WITHIN):
                while True:
                    try:
                        self._tls.read()
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLZeroReturnError:
                        return None
                    except ssl.SSLError as error:
                        return tls_failure(error, self.client.server_hostname)
                    self._incoming.write(await self.inner.receive())
        except (TimeoutError, AtBridgeError):
            return None

    async def receive(self, max_bytes: int = 1 << 20) -> bytes:
        """Wait for decrypted bytes and return up to ``max_bytes`` of them."""
        while True:
            if self._ended is not None:
                raise self._ended
            try:
                data = self._tls.read(max_bytes)
            except ssl.SSLWantReadError:
                self.client.keep(self._tls)  # a TLS 1.3 ticket may just have arrived
                if self._outgoing.pending:
                    await self._flush()
                await self._fill(handshaking=False)
                continue
            except ssl.SSLZeroReturnError:
                self.client.keep(self._tls)
                self._ended = SocketClosed(CloseReason.PEER, "the broker ended TLS: close_notify")
                raise self._ended from None
            except ssl.SSLError as error:
                raise tls_failure(error, self.client.server_hostname) from None
            self.client.keep(self._tls)
            if self._outgoing.pending:
                await self._flush()
            if data:
                self._read_any = True
                return data
            # Nothing, and no want-read: the broker's close_notify is in (after it, the
            # object answers every read with b"" instead of raising SSLZeroReturnError).
            self._ended = SocketClosed(CloseReason.PEER, "the broker ended TLS: close_notify")
            raise self._ended

    async def close(self, final: bytes = b"") -> None:
        """Send ``final`` (an MQTT DISCONNECT) and ``close_notify`` in one send, then close
        the socket underneath.

        One send, because a broker closes the connection as soon as it reads a DISCONNECT
        (MQTT 3.1.1 §3.14.4): a close_notify sent after it meets a closed socket.
        """
        if self.inner.closed is not None:
            self.client.keep(self._tls)
            return
        try:
            if not self._shut:
                self._shut = True
                with contextlib.suppress(ssl.SSLError, ValueError):
                    if final:
                        self._tls.write(final)
                    self._tls.unwrap()  # writes close_notify; the broker's may never come
                with contextlib.suppress(AtBridgeError):
                    await self._flush()
                    self.close_notify_sent = True
        finally:
            self.client.keep(self._tls)
            await self.inner.close()

    # -- moving bytes ----------------------------------------------------------------------

    async def _flush(self) -> None:
        """Hand everything TLS wrote to the socket, in order (one flusher at a time)."""
        async with self._lock:
            while self._outgoing.pending:
                data = self._outgoing.read()
                await self.inner.send(data)
                self.tls_bytes_sent += len(data)

    async def _fill(self, *, handshaking: bool) -> None:
        """Read what the socket has and feed it to TLS."""
        try:
            data = await self.inner.receive()
        except SocketClosed as closed:
            if handshaking and closed.reason is CloseReason.PEER:
                raise SocketClosed(
                    CloseReason.PEER,
                    f"during the TLS handshake with {self.client.server_hostname}: is this "
                    "the broker's TLS port (8883 is usual, 1883 is plain MQTT)?",
                ) from None
            raise
        self.tls_bytes_received += len(data)
        self._incoming.write(data)


# -- what went wrong, in the words that say what to fix --------------------------------------

#: OpenSSL X509_V_ERR_* codes (openssl-verify(1)) of a chain that ends in no trusted CA.
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 24, 27})
_NOT_YET_VALID = 9
_EXPIRED = 10
_HOST_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH

#: Alerts (OpenSSL reason names) and what they mean to a user: retrying cannot help.
_REFUSALS: dict[str, tuple[str, str]] = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        "the broker requires a client certificate (mutual TLS) and none was sent",
        "pass --cert FILE and --key FILE (certfile, keyfile in [mqtt] or [aliyun])",
    ),
    "TLSV1_ALERT_UNKNOWN_CA": (
        "the broker does not trust the CA of this client's certificate",
        "pass a --cert signed by a CA the broker trusts (its cafile)",
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": (
        "the broker refused this client's certificate",
        "check --cert/--key: a certificate the broker's CA signed, not expired",
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": (
        "the broker says this client's certificate has expired",
        "renew the client certificate (--cert)",
    ),
    "SSLV3_ALERT_HANDSHAKE_FAILURE": (
        "the broker ended the TLS handshake: no client certificate when it requires one, "
        "or no cipher in common",
        "pass --cert and --key if the broker requires mutual TLS",
    ),
    "TLSV1_ALERT_PROTOCOL_VERSION": (
        "the broker speaks no TLS version this client allows",
        "lower --tls-min-version to 1.2 (TLS 1.0/1.1 are not offered)",
    ),
    "UNSUPPORTED_PROTOCOL": (
        "the broker speaks no TLS version this client allows",
        "lower --tls-min-version to 1.2 (TLS 1.0/1.1 are not offered)",
    ),
    "NO_PROTOCOLS_AVAILABLE": (
        "the broker speaks no TLS version this client allows",
        "lower --tls-min-version to 1.2 (TLS 1.0/1.1 are not offered)",
    ),
    "WRONG_VERSION_NUMBER": (
        "the broker's port does not speak TLS",
        "use the broker's TLS port (8883 is usual; 1883 is plain MQTT), or turn TLS off",
    ),
}


@dataclass(frozen=True, slots=True)
class ModemTls:
    """TLS on the modem (offload): what a dialect that can needs to open a TLS socket.

    ``hostname`` is the broker's host (SNI and the modem's host-name check: the nRF91
    sets neither unless told), ``sec_tag`` the security tag its CA (and client
    certificate and key, for mutual TLS) were written to with ``atbridge certs write``:
    the nRF91's ``AT%CMNG`` tag, on SIMCom modems the number in the names of the files
    ``certs write`` uploaded. ``peer_verify`` 0 none, 1 optional, 2 required;
    ``min_version`` the oldest TLS version offered (``"1.2"`` or ``"1.3"``), where the
    modem lets it be chosen.
    """

    hostname: str
    sec_tag: int
    peer_verify: int = 2
    min_version: str = "1.2"


def tls_failure(error: ssl.SSLError, host: str) -> AtBridgeError:
    """``error`` as the atbridge error that says what to fix (see the module doc)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _verify_failure(error, host)
    reason = error.reason or ""
    if reason in _REFUSALS:
        message, hint = _REFUSALS[reason]
        return _refused(message, hint)
    return TlsProtocolError(f"TLS with {host} failed: {error.reason or error}")


def _verify_failure(error: ssl.SSLCertVerificationError, host: str) -> AtBridgeError:
    code = error.verify_code
    said = error.verify_message
    if code in _UNTRUSTED:
        return _refused(
            f"the broker's certificate is not signed by a CA you trust ({said})",
            "pass --cafile with the CA that signed the broker's certificate (cafile in "
            "[mqtt] or [aliyun]); without one, the system's CA store is used (the "
            "bundled Aliyun IoT Root CA for an Aliyun device)",
        )
    if code in _HOST_MISMATCH:
        return _refused(
            f"the broker's certificate is not for {host} ({said})",
            f"connect with a host name the certificate names (check --broker), or give "
            f"the broker a certificate for {host}",
        )
    if code == _EXPIRED:
        return _refused(
            "the broker's certificate has expired (by this computer's clock)",
            "check this computer's clock (host-side TLS checks dates against it: date -u); "
            "if it is right, the broker's certificate must be renewed",
        )
    if code == _NOT_YET_VALID:
        return _refused(
            "the broker's certificate is not valid yet (by this computer's clock)",
            "check this computer's clock: it is probably behind (date -u; NTP)",
        )
    return _refused(
        f"the broker's certificate was refused: {said}",
        "check the broker's certificate and --cafile",
    )


def _refused(message: str, hint: str) -> AtBridgeError:
    """A TLS refusal retrying cannot fix: it stops the bridge."""
    return TlsRefused(message, hint=hint)


__all__ = [
    "ByteLink",
    "Handshake",
    "ModemTls",
    "TlsClient",
    "TlsSocket",
    "client_context",
    "tls_failure",
]
