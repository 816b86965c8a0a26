"""TLS on the modem (offload) through the SIM7600/A76xx fake to a real TLS mosquitto.

The fake speaks the CCH* SSL client with Python's :mod:`ssl` on its side of the TCP bridge,
trusting only the file named by ``AT+CSSLCFG="cacert"`` and offering the client pair named by
"clientcert"/"clientkey" (``tests/fakes/sim7600.py``). Certificates get there the way a user
puts them there: through :class:`~atbridge.dialects.sim7600_certs.Sim7600Store`
(``AT+CCERTDOWN``), so a test that forgot to provision fails as a real module would.
"""

# ruff: noqa: F811  (the atbridge fixture, imported, is then named as a parameter)
from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge import steps
from atbridge.at_mqtt import (
    ConnAck,
    Connect,
    PacketDecoder,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    encode,
)
from atbridge.bridge import Bridge
from atbridge.certs import CredentialKind
from atbridge.credentials import MqttCredentials
from atbridge.dialects.sim7600 import CchSocket, Sim7600
from atbridge.dialects.sim7600_certs import Sim7600Store
from atbridge.errors import (
    CloseReason,
    ConfigurationError,
    Failed,
    SocketClosed,
    TlsRefused,
)
from atbridge.fsm import Recovery, State, decide
from atbridge.modem import Modem
from atbridge.tls import ModemTls
from atbridge.transcript import Transcript
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener
from tests.fakes import FakeModem
from tests.fakes import sim7600 as fake_sim7600
from tests.fakes.grammar import Command, Kind, Response, frame_line
from tests.fakes.loopback import add_host
from tests.test_certs import key_lines
from tests.test_certs_cli import certs_args, offload_publish_args
from tests.test_commands_bridge import StartCli, atbridge, run_cli  # noqa: F401  (fixture)

WAIT = 30.0
TAG = 7


class Online:
    def __init__(
        self, fake: FakeModem, modem: Modem, dialect: Sim7600, transcript: io.StringIO
    ) -> None:
        self.fake, self.modem, self.dialect, self.transcript = fake, modem, dialect, transcript

    @property
    def store(self) -> Sim7600Store:
        return Sim7600Store(self.dialect)

    def opens(self) -> int:
        """How many AT+CCHOPEN the fake was sent."""
        return sum(1 for line in self.fake.commands if line.upper().startswith("AT+CCHOPEN="))

    async def provision(
        self, cafile: Path, pair: tuple[Path, Path] | None = None, tag: int = TAG
    ) -> None:
        await self.store.write(tag, CredentialKind.CA, pem(cafile))
        if pair is not None:
            await self.store.write(tag, CredentialKind.CLIENT_CERT, pem(pair[0]))
            await self.store.write(tag, CredentialKind.CLIENT_KEY, pem(pair[1]))

    async def open(self, host: str, port: int, tag: int = TAG) -> steps.SocketLink:
        opened = await steps.open_socket(
            self.dialect, host, port, tls=ModemTls(host, tag, 2), timeout=WAIT
        )
        assert opened.tls and opened.tls_handshake is None  # the modem did the handshake
        return opened.socket


async def bring_up(fake: FakeModem, stream: io.StringIO) -> tuple[Modem, Sim7600]:
    modem = await Modem.open(fake.port, transcript=Transcript(stream))
    probed = await steps.probe(modem, "sim7600", timeout=WAIT)
    await steps.configure(probed.dialect, "iot.example", timeout=WAIT)
    await steps.attach(probed.dialect, timeout=WAIT)
    await steps.activate_data(probed.dialect, timeout=WAIT)
    dialect = probed.dialect
    assert isinstance(dialect, Sim7600)
    dialect.rx_poll_interval = 0.5
    return modem, dialect


@pytest.fixture(params=["sim7600", "a7672"])
async def online(request: pytest.FixtureRequest) -> AsyncIterator[Online]:
    async with FakeModem(dialect=request.param, registration_delay=0.05) as fake:
        stream = io.StringIO()
        modem, dialect = await bring_up(fake, stream)
        try:
            yield Online(fake, modem, dialect, stream)
        finally:
            await modem.close()


@pytest.fixture(scope="module")
def client_pair(certs: Certificates) -> tuple[Path, Path]:
    return certs.issue("device-1")


@pytest.fixture(scope="module")
def mtls_broker(certs: Certificates, server_pair: tuple[Path, Path]) -> Iterator[Mosquitto]:
    cert, key = server_pair
    with Mosquitto(tls=TlsListener(certs.cafile, cert, key, require_certificate=True)) as broker:
        yield broker


@pytest.fixture(scope="module")
def expired_broker(certs: Certificates) -> Iterator[Mosquitto]:
    now = datetime.now(UTC)
    cert, key = certs.issue(
        "localhost", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    with Mosquitto(tls=TlsListener(certs.cafile, cert, key)) as broker:
        yield broker


async def next_packet(sock: steps.SocketLink, decoder: PacketDecoder) -> object:
    async with asyncio.timeout(WAIT):
        while (packet := decoder.next_packet()) is None:
            decoder.receive_data(await sock.receive())
        return packet


async def mqtt_connect(sock: steps.SocketLink, client_id: str) -> PacketDecoder:
    decoder = PacketDecoder(max_packet_size=1 << 20)
    await sock.send(encode(Connect(client_id=client_id, keepalive=60)))
    assert await next_packet(sock, decoder) == ConnAck(session_present=False, reason_code=0)
    return decoder


def pem(path: Path) -> str:
    """A PEM file's text (read outside the event loop's async code paths)."""
    return path.read_text()


def stops_the_bridge(error: BaseException) -> bool:
    """The lifecycle's policy stops on ``error`` (no reconnect storm)."""
    return all(
        decide(error, state).recovery is Recovery.FAIL
        for state in (State.opening_socket, State.mqtt_connecting)
    )


# -- the store ------------------------------------------------------------------------------


async def test_the_store_writes_lists_and_deletes_files_named_after_the_tag(
    online: Online, certs: Certificates, client_pair: tuple[Path, Path]
) -> None:
    store = online.store
    await online.provision(certs.cafile, client_pair)
    listed = await store.list()
    assert [(item.sec_tag, item.kind, item.name, item.sha256) for item in listed] == [
        (TAG, CredentialKind.CA, f"atb{TAG}ca.pem", None),
        (TAG, CredentialKind.CLIENT_CERT, f"atb{TAG}cert.pem", None),
        (TAG, CredentialKind.CLIENT_KEY, f"atb{TAG}key.pem", None),
    ]
    files = fake_sim7600.certificate_files(online.fake)
    assert files[f"atb{TAG}ca.pem"] == pem(certs.cafile).encode()
    assert files[f"atb{TAG}key.pem"] == pem(client_pair[1]).encode()
    # Another tag, and a file other software put there: listed by tag, the stranger left out.
    await online.provision(certs.cafile, tag=9)
    fake_sim7600.store_certificate(online.fake, "vendor.pem", "x")
    assert [item.name for item in await store.list(9)] == ["atb9ca.pem"]

    assert await store.delete(TAG, CredentialKind.CLIENT_KEY) is True
    assert await store.delete(TAG, CredentialKind.CLIENT_KEY) is False
    assert f"atb{TAG}key.pem" not in files and "vendor.pem" in files
    assert [item.kind for item in await store.list(TAG)] == [
        CredentialKind.CA,
        CredentialKind.CLIENT_CERT,
    ]

    # The key's bytes never reach the transcript; the store keeps them over a reboot.
    key_lines = pem(client_pair[1]).splitlines()[1:-1]
    await online.modem.close()
    text = online.transcript.getvalue()
    assert "AT+CCERTDOWN" in text and key_lines
    assert not any(line in text for line in key_lines)


async def test_pre_shared_keys_and_bad_input_are_refused_before_anything_is_sent(
    online: Online,
) -> None:
    sent = len(online.fake.commands)
    with pytest.raises(ConfigurationError, match="pre-shared-key") as psk:
        await online.store.write(TAG, CredentialKind.PSK, "0123456789abcdef")
    assert "--cert/--key" in psk.value.hint
    with pytest.raises(ConfigurationError, match="not PEM text"):
        await online.store.write(TAG, CredentialKind.CA, "not a certificate")
    with pytest.raises(ConfigurationError, match="security tag"):
        await online.store.write(-1, CredentialKind.CA, "-----BEGIN CERTIFICATE-----")
    assert len(online.fake.commands) == sent


# -- offload -------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 20  # several CCHSEND chunks and CCHRECV reads, every byte value


async def test_publish_and_subscribe_with_tls_on_the_modem(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    name = online.fake.dialect.name
    paho = PahoPeer(tls_broker.port, f"paho-{name}", tls=(certs.cafile, None, None))
    try:
        sock = await online.open("localhost", tls_broker.port)
        assert isinstance(sock, CchSocket) and sock.session == 0
        handshake = fake_sim7600.last_handshake(online.fake)
        assert handshake is not None and handshake.err == 0
        assert handshake.sni == "localhost" and handshake.checked_host
        decoder = await mqtt_connect(sock, f"offload-{name}")
        paho.subscribe(f"up/{name}", qos=1)
        await sock.send(encode(Publish(f"up/{name}", PAYLOAD, qos=0)))
        assert paho.wait_for(1, timeout=WAIT)[0] == (f"up/{name}", PAYLOAD, 0)

        await sock.send(encode(Subscribe(2, (Subscription(f"down/{name}", qos=0),))))
        assert await next_packet(sock, decoder) == SubAck(2, (0,))
        paho.publish(f"down/{name}", PAYLOAD, qos=0)
        incoming = await next_packet(sock, decoder)
        assert isinstance(incoming, Publish) and incoming.payload == PAYLOAD
        await sock.close()
        assert sock.closed is not None and sock.closed.reason is CloseReason.LOCAL
    finally:
        paho.close()
    commands = online.fake.commands
    assert "AT+CCHSET=1,1" in commands and commands.count("AT+CCHSTART") == 1
    assert f'AT+CSSLCFG="cacert",0,"atb{TAG}ca.pem"' in commands
    assert 'AT+CSSLCFG="enableSNI",0,1' in commands
    assert "AT+CCHCLOSE=0" in commands

    # Plain TCP keeps working beside it (the CIP* stack), and a second TLS open needs
    # no second CCHSTART.
    again = await online.open("localhost", tls_broker.port)
    await mqtt_connect(again, f"again-{name}")
    await again.close()
    assert online.fake.commands.count("AT+CCHSTART") == 1


async def test_plain_tcp_is_unchanged_beside_the_ssl_client(
    online: Online, broker: Mosquitto
) -> None:
    opened = await steps.open_socket(online.dialect, "127.0.0.1", broker.port, timeout=WAIT)
    assert not opened.tls and not isinstance(opened.socket, CchSocket)
    await mqtt_connect(opened.socket, "plain")
    await opened.socket.close()
    assert not any("CCH" in line or "CSSL" in line for line in online.fake.commands)


async def test_a_lost_notification_and_data_after_the_ok_lose_nothing(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    """The safety net (AT+CCHRECV?) finds data whose +CCHEVENT was lost; a module that
    sends the data after the OK of AT+CCHRECV (the sources disagree on the order) is read
    the same."""
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    online.fake.lose_next_notification()
    await mqtt_connect(sock, "lost-notice")  # the CONNACK's notice is lost
    assert "AT+CCHRECV?" in online.fake.commands

    def data_after_ok(fake: FakeModem, cmd: Command) -> Response:
        answer = fake.run_default(cmd)
        assert isinstance(answer, Response)
        if cmd.kind is not Kind.SET:
            return answer
        late = b"".join(frame_line(p) if isinstance(p, str) else p for p in answer.lines)
        fake.after_response(lambda: fake.write_raw(late))
        return Response.ok()

    online.fake.on_command("+CCHRECV", data_after_ok)
    decoder = PacketDecoder(max_packet_size=1 << 20)
    await sock.send(encode(Subscribe(3, (Subscription("down/late", qos=0),))))
    assert await next_packet(sock, decoder) == SubAck(3, (0,))
    await sock.close()


async def test_mutual_tls_offers_the_tags_client_certificate(
    online: Online,
    mtls_broker: Mosquitto,
    certs: Certificates,
    client_pair: tuple[Path, Path],
) -> None:
    await online.provision(certs.cafile, client_pair)
    sock = await online.open("localhost", mtls_broker.port)
    handshake = fake_sim7600.last_handshake(online.fake)
    assert handshake is not None and handshake.client_certificate
    await mqtt_connect(sock, "mtls-offload")
    await sock.close()
    assert 'AT+CSSLCFG="authmode",0,2' in online.fake.commands
    assert f'AT+CSSLCFG="clientkey",0,"atb{TAG}key.pem"' in online.fake.commands

    # Without a client certificate under the tag the broker refuses the handshake.
    await online.store.delete(TAG, CredentialKind.CLIENT_CERT)
    await online.store.delete(TAG, CredentialKind.CLIENT_KEY)
    before = online.opens()
    with pytest.raises(TlsRefused) as refused:
        await online.open("localhost", mtls_broker.port)
    assert "client certificate" in refused.value.message
    assert online.opens() == before + 1
    await online.modem.close()
    key_lines = pem(client_pair[1]).splitlines()[1:-1]
    assert not any(line in online.transcript.getvalue() for line in key_lines)


async def test_wrong_ca_wrong_host_and_expired_each_refuse_and_stop(
    online: Online, tls_broker: Mosquitto, expired_broker: Mosquitto, certs: Certificates
) -> None:
    other = Certificates()  # a CA that signed nothing the brokers send
    try:
        await online.provision(other.cafile, tag=8)
        with pytest.raises(TlsRefused) as unknown_ca:
            await online.open("localhost", tls_broker.port, tag=8)
    finally:
        other.remove()
    await online.provision(certs.cafile)
    add_host(online.fake, "wrong.example")
    with pytest.raises(TlsRefused) as mismatch:
        await online.open("wrong.example", tls_broker.port)
    with pytest.raises(TlsRefused) as expired:
        await online.open("localhost", expired_broker.port)

    assert "security tag 8" in unknown_ca.value.message
    assert "does not name wrong.example" in mismatch.value.message
    assert "has expired" in expired.value.message
    for error in (unknown_ca.value, mismatch.value, expired.value):
        assert "+CCHOPEN: 0,15 (handshake error)" in error.message
        assert "clock" not in str(error)  # the modem's clock agrees with this computer's
        assert "atbridge certs" in error.hint
        assert stops_the_bridge(error)
    assert online.opens() == 3  # one open each, no retry
    assert online.fake.commands.count("AT+CCLK?") == 3
    # Nothing is left behind: the next open works at once.
    sock = await online.open("localhost", tls_broker.port)
    await mqtt_connect(sock, "after-refusals")
    await sock.close()


async def test_a_modem_clock_far_off_is_named_as_the_cause(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    # An unset module clock (the certificates here are valid from 2000 to 3000).
    fake_sim7600.set_clock(online.fake, datetime(1980, 1, 6, tzinfo=UTC))
    with pytest.raises(TlsRefused) as refused:
        await online.open("localhost", tls_broker.port)
    assert "the modem's clock reads 1980-01-06" in refused.value.message
    assert "behind" in refused.value.message and "AT+CCLK" in refused.value.hint
    assert stops_the_bridge(refused.value)
    await online.modem.command(
        'AT+CCLK="' + datetime.now(UTC).strftime("%y/%m/%d,%H:%M:%S") + '+00"'
    )
    sock = await online.open("localhost", tls_broker.port)
    await sock.close()


async def test_no_ca_under_the_tag_is_refused_before_any_open(
    online: Online, tls_broker: Mosquitto
) -> None:
    with pytest.raises(TlsRefused) as refused:
        await online.open("localhost", tls_broker.port, tag=99)
    assert "security tag 99" in refused.value.message
    assert "atbridge certs write --sec-tag 99 --ca FILE" in refused.value.hint
    assert online.opens() == 0 and "AT+CCHSTART" not in online.fake.commands


async def test_tls_settings_the_module_cannot_honour_are_refused_before_anything_is_sent(
    online: Online,
) -> None:
    sent = len(online.fake.commands)
    with pytest.raises(ConfigurationError, match=r"TLS 1\.2 at most") as newer:
        await online.dialect.open_socket(
            "localhost", 8883, tls=ModemTls("localhost", TAG, 2, "1.3"), timeout=WAIT
        )
    assert "--tls host" in newer.value.hint
    with pytest.raises(ConfigurationError, match="not against another TLS host name"):
        await online.dialect.open_socket(
            "127.0.0.1", 8883, tls=ModemTls("localhost", TAG, 2), timeout=WAIT
        )
    with pytest.raises(ConfigurationError, match="security tag"):
        await online.dialect.open_socket("localhost", 8883, tls=True, timeout=WAIT)
    assert len(online.fake.commands) == sent


async def test_without_peer_verification_no_ca_is_needed(
    online: Online, tls_broker: Mosquitto
) -> None:
    opened = await steps.open_socket(
        online.dialect, "localhost", tls_broker.port, tls=ModemTls("localhost", 55, 0)
    )
    await mqtt_connect(opened.socket, "unverified")
    await opened.socket.close()
    handshake = fake_sim7600.last_handshake(online.fake)
    assert handshake is not None and not handshake.checked_host
    commands = online.fake.commands
    assert 'AT+CSSLCFG="authmode",0,0' in commands
    assert 'AT+CSSLCFG="ignorelocaltime",0,1' in commands
    assert not any('"cacert"' in line for line in commands)


async def test_the_broker_closing_ends_the_socket_as_a_peer_close(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    await mqtt_connect(sock, "closed-by-broker")
    await sock.send(encode(Connect(client_id="again", keepalive=60)))  # a protocol error
    assert await closed_reason(sock) is CloseReason.PEER
    assert sock.closed is not None and "+CCH_PEER_CLOSED: 0" in sock.closed.detail


async def closed_reason(sock: steps.SocketLink) -> CloseReason:
    with pytest.raises(SocketClosed) as ended:
        async with asyncio.timeout(WAIT):
            while True:
                await sock.receive()
    return ended.value.reason


async def test_a_network_loss_or_a_reboot_ends_the_socket_and_the_service_starts_again(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    await mqtt_connect(sock, "before-loss")
    online.fake.drop_pdp()  # +CIPEVENT: NETWORK CLOSED UNEXPECTEDLY
    assert await closed_reason(sock) is CloseReason.NETWORK
    await steps.activate_data(online.dialect, timeout=WAIT)
    tail = online.fake.commands[online.fake.commands.index("AT+CCHSTART") :]
    assert tail.index("AT+CCHSTOP") < tail.index("AT+NETCLOSE") < tail.index("AT+NETOPEN")
    again = await online.open("localhost", tls_broker.port)
    await mqtt_connect(again, "after-loss")
    assert online.fake.commands.count("AT+CCHSTART") == 2

    online.fake.reboot()
    assert await closed_reason(again) is CloseReason.REBOOT
    await steps.attach(online.dialect, timeout=WAIT)
    await steps.activate_data(online.dialect, timeout=WAIT)
    third = await online.open("localhost", tls_broker.port)  # the files survived the reboot
    await mqtt_connect(third, "after-reboot")
    await third.close()
    assert online.fake.commands.count("AT+CCHSTART") == 3
    assert online.fake.commands.count("AT+CCHOPEN?") == 0  # each start was a fresh one


async def test_a_session_left_open_by_an_earlier_process_is_closed_first(
    tls_broker: Mosquitto, certs: Certificates
) -> None:
    async with FakeModem(dialect="sim7600", registration_delay=0.05) as fake:
        first = io.StringIO()
        modem, dialect = await bring_up(fake, first)
        await Sim7600Store(dialect).write(TAG, CredentialKind.CA, pem(certs.cafile))
        left = Online(fake, modem, dialect, first)
        await left.open("localhost", tls_broker.port)
        await modem.close()  # the process dies with its session open on the modem

        modem, dialect = await bring_up(fake, io.StringIO())
        try:
            later = Online(fake, modem, dialect, io.StringIO())
            start = len(fake.commands)
            sock = await later.open("localhost", tls_broker.port)
            assert isinstance(sock, CchSocket) and sock.session == 0
            tail = fake.commands[start:]
            assert tail.index("AT+CCHSTART") < tail.index("AT+CCHOPEN?")
            assert tail.index("AT+CCHCLOSE=0") < tail.index(
                f'AT+CCHOPEN=0,"localhost",{tls_broker.port},2'
            )
            await mqtt_connect(sock, "after-leftover")
            await sock.close()
        finally:
            await modem.close()


async def test_the_bridge_stops_on_a_refused_certificate_without_reconnecting(
    tls_broker: Mosquitto,
) -> None:
    other = Certificates()
    try:
        async with FakeModem(dialect="sim7600", registration_delay=0.05) as fake:
            fake_sim7600.store_certificate(fake, f"atb{TAG}ca.pem", pem(other.cafile))
            credentials = MqttCredentials.plain(
                client_id="storm", host="localhost", port=tls_broker.port, tls="modem", sec_tag=TAG
            )
            bridge = Bridge(
                port=fake.port, credentials=credentials, dialect="sim7600", apn="iot.example"
            )
            with pytest.raises(Failed):
                async with bridge:
                    pass
            assert isinstance(bridge.failure, TlsRefused)
            assert sum(1 for line in fake.commands if line.startswith("AT+CCHOPEN=")) == 1
    finally:
        other.remove()


# -- atbridge certs and publish --tls modem, as real processes ------------------------------


async def test_certs_cli_round_trip_then_publish_with_tls_on_the_modem(
    tls_broker: Mosquitto,
    tls_paho: PahoPeer,
    certs: Certificates,
    client_pair: tuple[Path, Path],
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    transcript = tmp_path / "certs.log"
    topic = "certs/offload/sim7600"
    await asyncio.to_thread(tls_paho.subscribe, topic, 1)
    before = len(tls_paho.messages)
    pair = ["--cert", str(client_pair[0]), "--key", str(client_pair[1])]

    def certs_cli(*args: str) -> list[str]:
        return certs_args(fake, "sim7600", *args)

    def publish(tag: int) -> list[str]:
        return offload_publish_args(fake, "sim7600", tls_broker.port, tag, topic)

    async with FakeModem(dialect="sim7600", registration_delay=0.05) as fake:
        write = await run_cli(
            atbridge,
            *certs_cli("write", "--sec-tag", "77", "--ca", str(certs.cafile), *pair),
            "--transcript",
            str(transcript),
        )
        assert write.proc.returncode == 0, write.stderr
        assert write.stdout.count("written") == 3
        files = fake_sim7600.certificate_files(fake)
        assert sorted(files) == ["atb77ca.pem", "atb77cert.pem", "atb77key.pem"]

        listed = await run_cli(atbridge, *certs_cli("list", "--json"))
        assert listed.proc.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)["items"]
        assert [(i["sec_tag"], i["kind"], i["sha256"]) for i in items] == [
            (77, "ca", None),
            (77, "cert", None),
            (77, "key", None),
        ]
        deleted = await run_cli(atbridge, *certs_cli("delete", "--sec-tag", "77", "--kind", "key"))
        assert deleted.proc.returncode == 0, deleted.stderr
        assert "deleted" in deleted.stdout and "atb77key.pem" not in files
        deleted = await run_cli(atbridge, *certs_cli("delete", "--sec-tag", "77", "--kind", "cert"))
        assert deleted.proc.returncode == 0, deleted.stderr

        forgot = await run_cli(atbridge, *publish(78))  # nobody wrote a CA under 78
        assert forgot.proc.returncode != 0
        assert "security tag 78" in forgot.stderr and "Traceback" not in forgot.stderr
        cli = await run_cli(atbridge, *publish(77))
        assert cli.proc.returncode == 0, cli.stderr
        assert 'AT+CSSLCFG="cacert",0,"atb77ca.pem"' in fake.commands
    received = await asyncio.to_thread(tls_paho.wait_for, before + 1, WAIT)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, b"provisioned by certs")]
    log = transcript.read_text()
    assert 'AT+CCERTDOWN="atb77key.pem"' in log
    for line in key_lines(client_pair[1].read_text()):
        assert line not in log
        for run in (write, listed):
            assert line not in run.stdout and line not in run.stderr
