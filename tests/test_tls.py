"""Host-side TLS (atbridge.tls) through every dialect's fake modem to a real TLS mosquitto.

The fakes bridge their sockets to real TCP on 127.0.0.1, so the TLS records made on the
host cross the fake modem as bytes, as they cross a real modem. Certificates come from a
test CA (trustme, tests/brokers.py ``Certificates``); mosquitto listens with TLS
(``TlsListener``), and a paho subscriber with TLS checks what atbridge publishes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge import steps
from atbridge.at_mqtt import (
    ConnAck,
    Connect,
    Packet,
    PacketDecoder,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    encode,
)
from atbridge.credentials import MqttCredentials, PlainBroker, TlsMode, TlsOptions
from atbridge.dialects import DIALECTS
from atbridge.errors import (
    ConfigurationError,
    RemoteProtocolError,
    SocketClosed,
    TlsProtocolError,
    TlsRefused,
)
from atbridge.fsm import Recovery, State, decide
from atbridge.modem import Modem
from atbridge.tls import ModemTls, TlsClient, TlsSocket, client_context, tls_failure
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener
from tests.fakes import FakeModem
from tests.fakes.loopback import add_host

FIVE = sorted(name for name in DIALECTS if name != "generic")
WAIT = 30.0


# -- the broker side ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_pair(certs: Certificates) -> tuple[Path, Path]:
    return certs.issue("device-1")


@pytest.fixture(scope="module")
def mtls_broker(certs: Certificates, server_pair: tuple[Path, Path]) -> Iterator[Mosquitto]:
    cert, key = server_pair
    listener = TlsListener(certs.cafile, cert, key, require_certificate=True)
    with Mosquitto(tls=listener) as broker:
        yield broker


@pytest.fixture(scope="module")
def expired_broker(certs: Certificates) -> Iterator[Mosquitto]:
    now = datetime.now(UTC)
    cert, key = certs.issue(
        "localhost", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    with Mosquitto(tls=TlsListener(certs.cafile, cert, key)) as broker:
        yield broker


# -- the modem side ----------------------------------------------------------------------


class Online:
    """A fake modem brought up to the point of opening sockets (attached, bearer up)."""

    def __init__(self, fake: FakeModem, modem: Modem, dialect: steps.DialectLink) -> None:
        self.fake = fake
        self.modem = modem
        self.dialect = dialect

    async def open(self, client: TlsClient, port: int, host: str = "localhost") -> TlsSocket:
        opened = await steps.open_socket(self.dialect, host, port, tls=client, timeout=WAIT)
        assert opened.tls and opened.tls_handshake is not None
        sock = opened.socket
        assert isinstance(sock, TlsSocket)
        return sock


@pytest.fixture(params=FIVE)
async def online(request: pytest.FixtureRequest) -> AsyncIterator[Online]:
    async with FakeModem(dialect=request.param, registration_delay=0.05) as fake:
        modem = await Modem.open(fake.port)
        try:
            probed = await steps.probe(modem, "auto", timeout=WAIT)
            await steps.configure(probed.dialect, "iot.example", timeout=WAIT)
            await steps.attach(probed.dialect, timeout=WAIT)
            await steps.activate_data(probed.dialect, timeout=WAIT)
            yield Online(fake, modem, probed.dialect)
        finally:
            await modem.close()


class Mqtt:
    """Raw MQTT packets over a (TLS) socket."""

    def __init__(self, sock: steps.SocketLink) -> None:
        self.sock = sock
        self.decoder = PacketDecoder(max_packet_size=1 << 20)

    async def send(self, packet: Packet) -> None:
        await self.sock.send(encode(packet))

    async def next_packet(self) -> Packet:
        async with asyncio.timeout(WAIT):
            while True:
                packet = self.decoder.next_packet()
                if packet is not None:
                    return packet
                self.decoder.receive_data(await self.sock.receive())

    async def connect(self, client_id: str) -> None:
        await self.send(Connect(client_id=client_id, keepalive=60))
        assert await self.next_packet() == ConnAck(session_present=False, reason_code=0)


def options(certs: Certificates, **more: object) -> TlsOptions:
    return TlsOptions(TlsMode.HOST, cafile=str(certs.cafile), **more)  # type: ignore[arg-type]


def stops_the_bridge(error: BaseException) -> bool:
    """The lifecycle's policy stops on ``error`` (no reconnect storm) in every TLS state."""
    return all(
        decide(error, state).recovery is Recovery.FAIL
        for state in (State.opening_socket, State.mqtt_connecting)
    )


# -- through every dialect ---------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 20  # several TLS records' worth, every byte value


async def test_publish_and_subscribe_over_host_side_tls(
    online: Online, tls_broker: Mosquitto, tls_paho: PahoPeer, certs: Certificates
) -> None:
    name = online.dialect.name
    client = TlsClient(options(certs), "localhost")
    opened = await steps.open_socket(
        online.dialect, "localhost", tls_broker.port, tls=client, timeout=WAIT
    )
    handshake = opened.tls_handshake
    assert handshake is not None and handshake.step == "tls_handshake"
    assert handshake.version == "TLSv1.3" and not handshake.resumed
    assert handshake.bytes_received > 0 and opened.seconds >= handshake.seconds
    sock = opened.socket
    assert isinstance(sock, TlsSocket)
    mqtt = Mqtt(sock)
    await mqtt.connect(f"tls-{name}")
    tls_paho.subscribe(f"up/{name}", qos=1)
    await mqtt.send(Publish(f"up/{name}", PAYLOAD, qos=1, packet_id=7))
    assert await mqtt.next_packet() == PubAck(7)
    assert tls_paho.wait_for(1, timeout=WAIT)[0] == (f"up/{name}", PAYLOAD, 1)

    await mqtt.send(Subscribe(2, (Subscription(f"down/{name}", qos=1),)))
    assert await mqtt.next_packet() == SubAck(2, (1,))
    tls_paho.publish(f"down/{name}", b"over TLS", qos=1)
    incoming = await mqtt.next_packet()
    assert isinstance(incoming, Publish) and incoming.payload == b"over TLS"
    # The broker's certificate was checked against our CA and the host name.
    peer = sock.ssl_object.getpeercert()
    assert peer is not None and ("DNS", "localhost") in peer["subjectAltName"]
    await sock.close()
    assert sock.close_notify_sent and sock.closed is not None


async def test_mutual_tls_with_and_without_a_client_certificate(
    online: Online,
    mtls_broker: Mosquitto,
    certs: Certificates,
    client_pair: tuple[Path, Path],
) -> None:
    cert, key = client_pair
    mutual = TlsClient(options(certs, certfile=str(cert), keyfile=str(key)), "localhost")
    mqtt = Mqtt(await online.open(mutual, mtls_broker.port))
    await mqtt.connect(f"mtls-{online.dialect.name}")
    await mqtt.sock.close()

    # Without a certificate: in TLS 1.3 the broker's refusal comes after our Finished,
    # so the first read reports it. (Read before sending: a CONNECT sent into the closing
    # socket may fail first, and a modem can drop the alert with the closed socket.)
    anonymous = TlsClient(options(certs), "localhost")
    bare = await online.open(anonymous, mtls_broker.port)
    with pytest.raises(ConfigurationError) as caught:
        await asyncio.wait_for(bare.receive(), WAIT)
    assert "requires a client certificate" in caught.value.message
    assert "--cert" in caught.value.hint
    assert stops_the_bridge(caught.value)


async def test_wrong_ca_wrong_host_and_expired_certificate_each_say_what_to_fix(
    online: Online, tls_broker: Mosquitto, expired_broker: Mosquitto, certs: Certificates
) -> None:
    other = Certificates()  # a CA that signed nothing the brokers send
    try:
        strangers = TlsClient(TlsOptions(cafile=str(other.cafile)), "localhost")
        with pytest.raises(ConfigurationError) as unknown_ca:
            await online.open(strangers, tls_broker.port)
    finally:
        other.remove()
    assert "not signed by a CA you trust" in unknown_ca.value.message
    assert "--cafile" in unknown_ca.value.hint
    assert "clock" not in str(unknown_ca.value)

    add_host(online.fake, "wrong.example")
    elsewhere = TlsClient(options(certs), "wrong.example")
    with pytest.raises(ConfigurationError) as mismatch:
        await online.open(elsewhere, tls_broker.port, host="wrong.example")
    assert "not for wrong.example" in mismatch.value.message
    assert "clock" not in str(mismatch.value)

    stale = TlsClient(options(certs), "localhost")
    with pytest.raises(ConfigurationError) as expired:
        await online.open(stale, expired_broker.port)
    assert "has expired" in expired.value.message
    assert "clock" in expired.value.hint

    for error in (unknown_ca.value, mismatch.value, expired.value):
        assert isinstance(error, TlsRefused)
        assert stops_the_bridge(error)
    # A failed handshake leaves no session to resume, and the socket is closed: the
    # next open works at once.
    assert stale.session is None
    mqtt = Mqtt(await online.open(TlsClient(options(certs), "localhost"), tls_broker.port))
    await mqtt.connect(f"after-{online.dialect.name}")
    await mqtt.sock.close()


async def test_the_second_connection_resumes_the_session_with_fewer_bytes(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    client = TlsClient(options(certs), "localhost")
    line: list[int] = []
    for attempt in range(3):
        before = online.modem.bytes_written + online.modem.bytes_read
        sock = await online.open(client, tls_broker.port)
        mqtt = Mqtt(sock)
        await mqtt.connect(f"resume-{attempt}")  # the TLS 1.3 ticket arrives with the CONNACK
        await sock.close()
        assert sock.session_reused is (attempt > 0)
        assert sock.handshake_info is not None
        assert sock.handshake_info.resumed is (attempt > 0)
        line.append(online.modem.bytes_written + online.modem.bytes_read - before)
    assert client.session is not None and client.session.has_ticket
    assert line[1] < line[0] and line[2] < line[0]


# -- close_notify, seen by a TLS server that tells a clean close from a cut one -------------


class RecordingTlsServer:
    """A blocking TLS server on 127.0.0.1 (a thread): echoes, then records how it ended."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = False
        self.port: int = self.listener.getsockname()[1]
        self.endings: list[str] = []
        self.received: list[bytes] = []
        self.ended = threading.Condition()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            if self._stopping:
                raw.close()
                return
            with raw:
                raw.settimeout(WAIT)
                ending = "error"
                try:
                    with self.context.wrap_socket(
                        raw, server_side=True, suppress_ragged_eofs=False
                    ) as tls:
                        while data := tls.recv(4096):
                            self.received.append(data)
                            if data != b"bye":  # a last word is not answered
                                tls.sendall(data)
                        ending = "close_notify"
                except ssl.SSLEOFError:
                    ending = "cut"
                except (OSError, ssl.SSLError):
                    ending = "error"
                with self.ended:
                    self.endings.append(ending)
                    self.ended.notify_all()

    def wait_endings(self, count: int) -> list[str]:
        with self.ended:
            assert self.ended.wait_for(lambda: len(self.endings) >= count, WAIT)
            return list(self.endings)

    def close(self) -> None:
        self._stopping = True
        socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()  # wake accept
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def echo_server(server_pair: tuple[Path, Path]) -> Iterator[RecordingTlsServer]:
    server = RecordingTlsServer(*server_pair)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
async def test_close_sends_close_notify_and_a_cut_connection_still_resumes(
    version: str, echo_server: RecordingTlsServer, certs: Certificates
) -> None:
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        modem = await Modem.open(fake.port)
        try:
            probed = await steps.probe(modem, "auto", timeout=WAIT)
            await steps.attach(probed.dialect, timeout=WAIT)
            await steps.activate_data(probed.dialect, timeout=WAIT)
            client = TlsClient(options(certs), "localhost")
            client.context.maximum_version = getattr(ssl.TLSVersion, version)
            online = Online(fake, modem, probed.dialect)

            sock = await online.open(client, echo_server.port)
            await sock.send(b"ping")
            assert await sock.receive() == b"ping"
            await sock.close(final=b"bye")  # a DISCONNECT and close_notify in one send
            assert echo_server.wait_endings(1) == ["close_notify"]
            assert echo_server.received == [b"ping", b"bye"] and sock.close_notify_sent

            # Cut without close_notify (as a dropped network does): the session was kept
            # and the next connection resumes it (allowed since TLS 1.1: RFC 5246 7.2.1,
            # RFC 8446 6.1).
            sock = await online.open(client, echo_server.port)
            assert sock.session_reused
            await sock.send(b"pong")
            assert await sock.receive() == b"pong"
            await sock.inner.close()
            assert echo_server.wait_endings(2)[1] == "cut"
            again = await online.open(client, echo_server.port)
            assert again.session_reused
            await again.close()
        finally:
            await modem.close()


# -- settings and errors without a modem -------------------------------------------------


def test_tls_modes_from_the_config_words() -> None:
    for given, mode in ((True, "host"), ("on", "host"), ("1", "host"), ("HOST", "host"),
                        (False, "off"), ("no", "off"), ("modem", "modem")):  # fmt: skip
        assert TlsMode.of(given) is TlsMode(mode)
    with pytest.raises(ConfigurationError, match="one of 'off', 'host', 'modem'"):
        TlsMode.of("maybe")
    broker = PlainBroker(client_id="c", host="h", tls=True)  # type: ignore[arg-type]
    creds = broker.credentials()
    assert (creds.tls, creds.tls_mode, creds.port) == (True, TlsMode.HOST, 8883)
    assert MqttCredentials.plain(client_id="c", host="h").tls_mode is TlsMode.OFF


def test_tls_settings_without_tls_or_half_a_pair_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="cafile set but tls is off"):
        MqttCredentials.plain(client_id="c", host="h", cafile="ca.pem")
    with pytest.raises(ConfigurationError, match="keyfile was given without certfile"):
        MqttCredentials.plain(client_id="c", host="h", tls="host", keyfile="k.pem")
    with pytest.raises(ConfigurationError, match=r"tls_min_version='1\.1'"):
        MqttCredentials.plain(client_id="c", host="h", tls=True, tls_min_version="1.1")


def test_tls_setting_is_a_client_for_host_and_a_tag_for_the_modem(certs: Certificates) -> None:
    host = MqttCredentials.plain(client_id="c", host="broker.lan", tls="host",
                                 cafile=str(certs.cafile), tls_min_version="1.3")  # fmt: skip
    client = steps.tls_setting(host)
    assert isinstance(client, TlsClient) and client.server_hostname == "broker.lan"
    assert client.context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert client.context.verify_mode is ssl.CERT_REQUIRED and client.context.check_hostname
    modem = MqttCredentials.plain(client_id="c", host="broker.lan", tls="modem", sec_tag=7)
    assert steps.tls_setting(modem) == ModemTls("broker.lan", 7, 2, "1.2")
    untagged = MqttCredentials.plain(client_id="c", host="broker.lan", tls="modem")
    with pytest.raises(ConfigurationError, match="needs the security tag") as raised:
        steps.tls_setting(untagged)
    assert "--sec-tag" in raised.value.hint
    assert steps.tls_setting(MqttCredentials.plain(client_id="c", host="b")) is False


def test_files_that_cannot_be_used_are_named(
    tmp_path: Path, certs: Certificates, client_pair: tuple[Path, Path]
) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as missing:
        client_context(TlsOptions(cafile=str(tmp_path / "nope.pem")))
    assert "--cafile" in missing.value.hint
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="no usable PEM data"):
        client_context(TlsOptions(cafile=str(junk)))
    cert, key = client_pair
    _other_cert, other_key = certs.issue("device-2")
    with pytest.raises(ConfigurationError, match="does not belong to the certificate"):
        client_context(TlsOptions(certfile=str(cert), keyfile=str(other_key)))
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigurationError, match="is encrypted"):
        client_context(TlsOptions(certfile=str(cert), keyfile=str(locked)))


async def test_tls_on_the_modem_is_refused_before_anything_is_sent() -> None:
    class NoModem:
        name = "sim7080"

    with pytest.raises(ConfigurationError, match="not supported on the sim7080") as caught:
        await steps.open_socket(NoModem(), "h", 8883, tls=True)  # type: ignore[arg-type]
    assert "--tls host" in caught.value.hint


def test_alerts_and_broken_records_are_told_apart() -> None:
    def alert(reason: str) -> ssl.SSLError:
        error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
        error.reason = reason
        return error

    version = tls_failure(alert("WRONG_VERSION_NUMBER"), "h")
    assert isinstance(version, TlsRefused) and "8883" in version.hint
    assert stops_the_bridge(version)
    broken = tls_failure(alert("DECRYPTION_FAILED_OR_BAD_RECORD_MAC"), "h")
    assert isinstance(broken, TlsProtocolError) and isinstance(broken, RemoteProtocolError)
    assert decide(broken, State.online).recovery is Recovery.SOCKET


async def test_a_plain_port_is_named_when_the_handshake_meets_it(
    online: Online, certs: Certificates
) -> None:
    with Mosquitto() as plain:
        client = TlsClient(options(certs), "localhost")
        with pytest.raises((SocketClosed, ConfigurationError)) as caught:
            await online.open(client, plain.port)
    assert "TLS port" in str(caught.value) or "does not speak TLS" in str(caught.value)
