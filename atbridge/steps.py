"""The bring-up steps: each does one thing once, times it, and says what it learnt.

Theory of operation
-------------------
Getting a modem online is a fixed sequence: *probe* (sync the AT channel, identify the
modem, bind its dialect, close the sockets an earlier run left open on the modem),
*configure* (the SIM checked, then the APN), *attach* (registered on the network: on any
of ``+CEREG``/``+CGREG``/``+CREG``), *activate data* (the PDP context up), *resolve*
(DNS through the modem), *open socket* (what is still open on the modem closed first,
then TCP through the modem, and TLS over it on this host: :mod:`atbridge.tls`, its
handshake timed on its own), *MQTT connect* (CONNECT, CONNACK) and *ping*
(PINGREQ, PINGRESP). Each step here is a public coroutine that does its step once — no
retry, no recovery — under the time limit it is given, and returns a small frozen
dataclass: the step name, how long it took (monotonic seconds) and what it learnt
(:class:`Probed`, :class:`Configured`, ...). A step that runs out of time raises
:class:`~atbridge.errors.StepTimeout` naming the step; any other failure is the
dialect's or the session's own error, unchanged.

Three callers share them, so the sequence is written once:

- :class:`~atbridge.fsm.Lifecycle` runs them in its states and records the last
  result of each (``bridge.steps``); recovery is its job, not theirs;
- ``hil/`` runs them one by one against a board (or the fake);
- a diagnostic command times each one.

The steps work on the small protocols below (:class:`ModemPort`,
:class:`DialectLink`, :class:`SocketLink`), which the real
:class:`~atbridge.modem.Modem`, :class:`~atbridge.dialects.base.Dialect` and
:class:`~atbridge.dialects.base.ModemSocket` satisfy, so the lifecycle's
recovery rules are tested with in-memory stand-ins. :func:`open_port` and
:func:`bind_dialect` are the real opener the lifecycle uses by default.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from atbridge.at_mqtt import Connected, MqttSession, PongReceived
from atbridge.config import LINE_ENDINGS, BridgeConfig
from atbridge.credentials import MqttCredentials, TlsMode
from atbridge.decode import Registration
from atbridge.dialects import open_dialect
from atbridge.dialects.base import DataBearer, Identity
from atbridge.errors import AtBridgeError, ConfigurationError, SocketClosed, StepTimeout
from atbridge.modem import Modem
from atbridge.tls import ModemTls, TlsClient
from atbridge.transcript import Transcript

T = TypeVar("T")
log = logging.getLogger(__name__)

# -- what the steps work on ------------------------------------------------------------------


class ModemPort(Protocol):
    """The AT channel as the lifecycle sees it (a :class:`~atbridge.modem.Modem`)."""

    @property
    def is_open(self) -> bool: ...

    @property
    def bytes_written(self) -> int: ...

    @property
    def bytes_read(self) -> int: ...

    async def close(self) -> None: ...


@runtime_checkable
class SimChecker(Protocol):
    """A dialect that checks the SIM before configuring (every real
    :class:`~atbridge.dialects.base.Dialect`; in-memory stand-ins need not)."""

    async def check_sim(self) -> str: ...


class SocketLink(Protocol):
    """A socket through the modem (a :class:`~atbridge.dialects.base.ModemSocket`)."""

    @property
    def closed(self) -> SocketClosed | None: ...

    async def send(self, data: bytes) -> None: ...

    async def receive(self, max_bytes: int = 1 << 20) -> bytes: ...

    async def close(self) -> None: ...


class DialectLink(Protocol):
    """One modem family's operations (a :class:`~atbridge.dialects.base.Dialect`)."""

    @property
    def name(self) -> str: ...

    def detach_from_modem(self) -> None: ...

    def on_registration(self, callback: Callable[[Registration], None]) -> Callable[[], None]: ...

    async def restart(self, timeout: float = 60.0) -> None: ...

    async def detach(self) -> None: ...

    async def configure_pdp(self, apn: str | None, *, pdp_type: str = "IP") -> None: ...

    async def attach(
        self,
        timeout: float = 600.0,
        *,
        poll_interval: float = 10.0,
        progress: Callable[[Registration], None] | None = None,
    ) -> Registration: ...

    async def activate_data(self, timeout: float = 60.0) -> DataBearer: ...

    async def resolve_addresses(self, host: str, timeout: float = 30.0) -> tuple[str, ...]: ...

    async def open_socket(
        self, host: str, port: int, *, tls: bool = False, timeout: float = 60.0
    ) -> SocketLink: ...

    async def close_leftover_sockets(self) -> int: ...


@runtime_checkable
class TlsOffloader(Protocol):
    """A dialect whose modem speaks TLS itself (nRF91, SIM7080, SIM7600): its
    ``open_socket`` takes a :class:`~atbridge.tls.ModemTls` as ``tls``. One that cannot
    says why in ``tls_unsupported`` (a ``str`` class attribute)."""

    @property
    def offloads_tls(self) -> bool: ...

    async def open_socket(
        self, host: str, port: int, *, tls: bool | ModemTls = False, timeout: float = 60.0
    ) -> SocketLink: ...


#: What :func:`open_socket` takes as ``tls`` (:func:`tls_setting` makes it).
TlsSetting = bool | TlsClient | ModemTls

#: Opens the port named by a config (the real one: :func:`open_port`).
PortOpener = Callable[[BridgeConfig], Awaitable[ModemPort]]
#: Identifies the modem on a port and binds a dialect (the real one: :func:`bind_dialect`).
DialectBinder = Callable[[ModemPort, str], Awaitable[tuple[DialectLink, Identity | None]]]


async def open_port(config: BridgeConfig) -> Modem:
    """Open ``config.port`` with its serial settings, transcript and secrets.

    A transcript that cannot be written is a :class:`ConfigurationError` (a bad
    local setting), raised before the port is touched. Without a configured line
    ending the channel finds the modem's on its first sync.
    """
    transcript: Transcript | None = None
    if config.transcript is not None:
        try:
            transcript = Transcript(config.transcript)
        except OSError as error:
            raise ConfigurationError(
                f"cannot write the transcript {config.transcript}: {error.strerror or error}",
                hint="give --transcript a file in a folder that exists and is writable",
            ) from error
    line_ending = LINE_ENDINGS[config.line_ending] if config.line_ending else None
    try:
        modem = await Modem.open(
            config.port,
            baudrate=config.baudrate,
            rtscts=config.rtscts,
            line_ending=line_ending,
            transcript=transcript,
        )
    except BaseException:
        if transcript is not None:
            transcript.close()
        raise
    for secret in config.credentials.secrets():
        modem.add_secret(secret)
    return modem


async def bind_dialect(modem: ModemPort, name: str) -> tuple[DialectLink, Identity | None]:
    """Identify the modem on ``modem`` (for ``auto``) and bind the dialect ``name``."""
    if not isinstance(modem, Modem):
        raise TypeError(f"bind_dialect needs an atbridge Modem, not {type(modem).__name__}")
    return await open_dialect(modem, name)


# -- what the steps learn ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step done: its name and how long it took (monotonic seconds)."""

    step: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Probed(StepResult):
    """The AT channel answers; ``identity`` is who answered (``None`` when not asked)."""

    identity: Identity | None
    dialect_name: str
    #: Sockets an earlier run left open on the modem, closed after binding.
    leftover_sockets: int
    #: The bound dialect, for the next steps.
    dialect: DialectLink = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Configured(StepResult):
    """The PDP context is set (``apn`` ``None``: the modem's own was kept).

    ``sim`` is what the SIM check found (``"ready"``, ``"not powered (radio off)"``:
    judged again by the attach; ``None`` when the dialect does not check).
    """

    apn: str | None
    sim: str | None = None


@dataclass(frozen=True, slots=True)
class Attached(StepResult):
    """Registered on the network (home or roaming)."""

    registration: Registration


@dataclass(frozen=True, slots=True)
class DataActivated(StepResult):
    """The data bearer is up: its address when the modem said it, whether it already was."""

    address: str | None
    already_active: bool


@dataclass(frozen=True, slots=True)
class Resolved(StepResult):
    """``host`` looked up through the modem's DNS."""

    host: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TlsHandshaken(StepResult):
    """The TLS handshake on this host, over the modem's TCP socket (part of opening it).

    ``resumed``: the session kept from the last connection was resumed (no certificate
    chain on the line). The byte counts are TLS records on the socket, both ways.
    """

    version: str
    cipher: str
    resumed: bool
    bytes_sent: int
    bytes_received: int


@dataclass(frozen=True, slots=True)
class SocketOpened(StepResult):
    """A TCP (or TLS) connection through the modem; ``seconds`` covers the TLS handshake."""

    host: str
    port: int
    tls: bool
    #: Sockets still open on the modem, closed before this one was opened.
    leftover_sockets: int
    #: The open socket, for the next steps (a :class:`~atbridge.tls.TlsSocket` with TLS).
    socket: SocketLink = field(repr=False, compare=False)
    #: Host-side TLS: its handshake, timed on its own (None: plain TCP or offload).
    tls_handshake: TlsHandshaken | None = None


@dataclass(frozen=True, slots=True)
class MqttConnected(StepResult):
    """The broker accepted the session (CONNACK)."""

    session_present: bool
    #: MQTT 5.0: the client id the broker assigned (an empty one was sent).
    assigned_client_id: str | None
    connack: Connected


@dataclass(frozen=True, slots=True)
class Pinged(StepResult):
    """PINGRESP came back; ``round_trip`` is seconds since the PINGREQ left."""

    round_trip: float


# -- the steps -----------------------------------------------------------------------------


async def _timed(name: str, timeout: float | None, work: Awaitable[T]) -> tuple[T, float]:
    """Await ``work`` within ``timeout``; the value and the seconds it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            value = await work
    except TimeoutError as error:
        if isinstance(error, AtBridgeError):
            raise
        raise StepTimeout(
            f"{name.replace('_', ' ')} did not finish within {timeout:g} s",
            hint=f"raise the {name} timeout, or check the transcript for what the modem answered",
        ) from None
    return value, time.monotonic() - started


async def probe(
    modem: ModemPort,
    dialect: str = "auto",
    *,
    timeout: float | None = None,
    bind: DialectBinder = bind_dialect,
) -> Probed:
    """Identify the modem on ``modem``, bind its dialect (``auto``: from its identity).

    Then close what an earlier run left open on the modem (a killed process, a link
    that dropped): sockets outlive the host, and the modem refuses new ones.
    """

    async def bind_and_clean() -> tuple[DialectLink, Identity | None, int]:
        bound, identity = await bind(modem, dialect)
        return bound, identity, await _close_leftovers(bound)

    (bound, identity, leftovers), seconds = await _timed("probe", timeout, bind_and_clean())
    return Probed("probe", seconds, identity, bound.name, leftovers, bound)


async def _close_leftovers(dialect: DialectLink) -> int:
    """Close the sockets left open on the modem; log how many."""
    closed = await dialect.close_leftover_sockets()
    if closed:
        log.info("%s: closed %d socket(s) left open on the modem", dialect.name, closed)
    return closed


async def configure(
    dialect: DialectLink, apn: str | None, *, timeout: float | None = None
) -> Configured:
    """Check the SIM, then set the APN of the default PDP context (``None``: keep the
    modem's).

    No SIM, a SIM locked by its PIN or PUK, or a failing SIM raise
    :class:`~atbridge.errors.ModemError` here, at once, saying which
    (:meth:`~atbridge.dialects.base.Dialect.check_sim`), rather than after the attach
    has waited for a registration that cannot come.
    """

    async def check_and_configure() -> str | None:
        sim = await dialect.check_sim() if isinstance(dialect, SimChecker) else None
        await dialect.configure_pdp(apn)
        return sim

    sim, seconds = await _timed("configure", timeout, check_and_configure())
    return Configured("configure", seconds, apn, sim)


async def attach(
    dialect: DialectLink,
    *,
    timeout: float = 600.0,
    progress: Callable[[Registration], None] | None = None,
) -> Attached:
    """Radio on and wait until registered; ``progress`` sees every report on the way."""
    registration, seconds = await _timed(
        "attach", None, dialect.attach(timeout=timeout, progress=progress)
    )
    return Attached("attach", seconds, registration)


async def activate_data(dialect: DialectLink, *, timeout: float = 150.0) -> DataActivated:
    """Bring the data bearer up (a no-op for the families that need no command)."""
    bearer, seconds = await _timed("activate", timeout, dialect.activate_data(timeout=timeout))
    return DataActivated("activate_data", seconds, bearer.address, bearer.already_active)


async def resolve(dialect: DialectLink, host: str, *, timeout: float = 30.0) -> Resolved:
    """Look ``host`` up through the modem's DNS (every address it gives)."""
    addresses, seconds = await _timed(
        "resolve", None, dialect.resolve_addresses(host, timeout=timeout)
    )
    return Resolved("resolve", seconds, host, tuple(addresses))


def _no_sec_tag() -> ConfigurationError:
    return ConfigurationError(
        'TLS on the modem (tls = "modem") needs the security tag of the CA '
        "certificate stored on the modem",
        hint="give --sec-tag, the security tag the CA was written to with atbridge certs "
        "write (offload works on the nRF91, SIM7080 and SIM7600), or use host-side TLS "
        "(--tls host), which works through every modem",
    )


def tls_setting(credentials: MqttCredentials) -> TlsSetting:
    """What :func:`open_socket` takes as ``tls`` for ``credentials``: ``False`` (plain
    TCP), a :class:`~atbridge.tls.TlsClient` (host-side: keep it for the bridge's life,
    so every reconnect resumes its session) or a :class:`~atbridge.tls.ModemTls` (on the
    modem: the broker's host, the security tag of its CA, peer verification).

    A CA file, certificate or key that cannot be used, or TLS on the modem without a
    security tag, is a ConfigurationError here (the lifecycle asks before it opens the
    port, so such a setting fails before anything is sent).
    """
    mode = credentials.tls_mode
    options = credentials.tls_options
    if mode is TlsMode.HOST:
        return TlsClient(options, credentials.endpoint()[0])
    if mode is TlsMode.MODEM:
        if options.sec_tag is None:
            raise _no_sec_tag()
        return ModemTls(
            credentials.endpoint()[0], options.sec_tag, options.peer_verify, options.min_version
        )
    return False


async def open_socket(
    dialect: DialectLink,
    host: str,
    port: int,
    *,
    tls: TlsSetting = False,
    timeout: float = 160.0,
) -> SocketOpened:
    """Open a TCP connection to ``host:port`` through the modem, with TLS when asked.

    ``tls`` a :class:`~atbridge.tls.TlsClient`: TLS on this host over the modem's TCP
    socket, handshake within ``timeout`` too (:func:`tls_setting` makes the client);
    a :class:`~atbridge.tls.ModemTls`: TLS on the modem (offload), for the dialects
    that have it (:class:`TlsOffloader`: nRF91, SIM7080, SIM7600); any other dialect, or ``True``
    (no security tag, no host name), is a ConfigurationError before anything is sent.

    What is still open on the modem is closed first (TinyGSM does the same before
    every connect): a socket this process lost track of would hold a handle, a
    link or a cid the modem then refuses to reuse.
    """
    offload = tls if isinstance(tls, ModemTls) else None
    offloads = isinstance(dialect, TlsOffloader) and dialect.offloads_tls
    if tls is True and offloads:
        raise _no_sec_tag()
    if tls is True or (offload is not None and not offloads):
        why = getattr(dialect, "tls_unsupported", None)
        raise ConfigurationError(
            f'TLS on the modem (tls = "modem") is not supported on the {dialect.name}'
            + (f": {why}" if isinstance(why, str) and why else ""),
            hint='use host-side TLS (tls = "host", --tls host): it works through every '
            "modem, this one included",
        )
    client = tls if isinstance(tls, TlsClient) else None

    async def clean_and_open() -> tuple[SocketLink, int, TlsHandshaken | None]:
        leftovers = await _close_leftovers(dialect)
        if offload is not None:
            assert isinstance(dialect, TlsOffloader)
            offloaded = await dialect.open_socket(host, port, tls=offload, timeout=timeout)
            return offloaded, leftovers, None
        sock = await dialect.open_socket(host, port, tls=False, timeout=timeout)
        if client is None:
            return sock, leftovers, None
        secured, seconds = await _timed(
            "tls_handshake", None, client.connect(sock, timeout=timeout)
        )
        done = secured.handshake_info
        assert done is not None
        handshaken = TlsHandshaken(
            "tls_handshake",
            seconds,
            done.version,
            done.cipher,
            done.resumed,
            done.bytes_sent,
            done.bytes_received,
        )
        return secured, leftovers, handshaken

    (sock, leftovers, handshaken), seconds = await _timed("open_socket", None, clean_and_open())
    return SocketOpened(
        "open_socket",
        seconds,
        host,
        port,
        client is not None or offload is not None,
        leftovers,
        sock,
        handshaken,
    )


E = TypeVar("E")


async def _exchange(
    sock: SocketLink, session: MqttSession, answer: type[E], clock: Callable[[], float]
) -> E:
    """Send what ``session`` queued, then read until it yields an ``answer`` event."""
    await sock.send(session.data_to_send(clock()))
    while True:
        session.receive_data(await sock.receive(), clock())
        while (event := session.next_event()) is not None:
            if isinstance(event, answer):
                return event


async def mqtt_connect(
    sock: SocketLink,
    session: MqttSession,
    *,
    timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> MqttConnected:
    """Send the session's CONNECT on ``sock`` and read until its CONNACK.

    A refusal raises :class:`~atbridge.errors.ConnectRefused` (from the session).
    What arrived after the CONNACK stays in the session for its owner to read.
    """

    async def connect() -> Connected:
        session.connection_lost()
        session.connect()
        return await _exchange(sock, session, Connected, clock)

    connack, seconds = await _timed("connack", timeout, connect())
    return MqttConnected(
        "mqtt_connect", seconds, connack.session_present, connack.assigned_client_id, connack
    )


async def ping(
    sock: SocketLink,
    session: MqttSession,
    *,
    timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> Pinged:
    """Send a PINGREQ and read until its PINGRESP, on a session nobody else reads.

    Other packets read on the way are dropped: online, the lifecycle's own ping
    loop does this instead and records a :class:`Pinged` for each PINGRESP.
    """

    session.ping()
    pong, seconds = await _timed("ping", timeout, _exchange(sock, session, PongReceived, clock))
    return Pinged("ping", seconds, pong.round_trip)


__all__ = [
    "Attached",
    "Configured",
    "DataActivated",
    "DialectBinder",
    "DialectLink",
    "ModemPort",
    "MqttConnected",
    "Pinged",
    "PortOpener",
    "Probed",
    "Resolved",
    "SimChecker",
    "SocketLink",
    "SocketOpened",
    "StepResult",
    "TlsHandshaken",
    "TlsOffloader",
    "TlsSetting",
    "activate_data",
    "attach",
    "bind_dialect",
    "configure",
    "mqtt_connect",
    "open_port",
    "open_socket",
    "ping",
    "probe",
    "resolve",
    "tls_setting",
]
