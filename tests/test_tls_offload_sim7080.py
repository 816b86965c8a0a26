"""TLS on the modem (offload) through the SIM7080 fake to a real TLS mosquitto.

The fake keeps files in its flash (``AT+CFSWFILE`` after ``DOWNLOAD``), converts them into
its SSL store (``AT+CSSLCFG="CONVERT"``) and speaks TLS with Python's :mod:`ssl` on its side
of the TCP bridge, trusting only the converted CA named by ``AT+CASSLCFG=<cid>,"CACERT"``
and answering ``+CAOPEN: <cid>,24/25/26`` for the certificate's dates and name
(``tests/fakes/sim7080.py``). Certificates get there the way a user puts them there:
through :class:`~atbridge.dialects.sim7080_certs.Sim7080Store`.
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
from atbridge.certs import CredentialKind, StoredCredential, store_for
from atbridge.credentials import MqttCredentials
from atbridge.dialects.sim7080 import Sim7080
from atbridge.dialects.sim7080_certs import Sim7080Store
from atbridge.errors import ConfigurationError, Failed, ModemError, SocketError, TlsRefused
from atbridge.modem import Modem
from atbridge.tls import ModemTls
from atbridge.transcript import Transcript
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener
from tests.fakes import FakeModem
from tests.fakes import sim7080 as fake_sim7080
from tests.fakes.loopback import add_host
from tests.test_certs import key_lines
from tests.test_certs_cli import certs_args, offload_publish_args
from tests.test_commands_bridge import StartCli, atbridge, run_cli  # noqa: F401  (fixture)

WAIT = 30.0
TAG = 7
CA_FILE = f"atb{TAG}ca.pem"


class Online:
    def __init__(
        self, fake: FakeModem, modem: Modem, dialect: Sim7080, transcript: io.StringIO
    ) -> None:
        self.fake, self.modem, self.dialect, self.transcript = fake, modem, dialect, transcript

    @property
    def store(self) -> Sim7080Store:
        return Sim7080Store(self.dialect)

    def opens(self) -> int:
        """How many AT+CAOPEN the fake was sent."""
        return sum(1 for line in self.fake.commands if line.upper().startswith("AT+CAOPEN="))

    async def provision(
        self, cafile: Path, pair: tuple[Path, Path] | None = None, tag: int = TAG
    ) -> None:
        store = self.store
        async with store.batch("write"):
            await store.write(tag, CredentialKind.CA, pem(cafile))
            if pair is not None:
                await store.write(tag, CredentialKind.CLIENT_CERT, pem(pair[0]))
                await store.write(tag, CredentialKind.CLIENT_KEY, pem(pair[1]))

    async def open(self, host: str, port: int, tag: int = TAG) -> steps.SocketLink:
        opened = await steps.open_socket(
            self.dialect, host, port, tls=ModemTls(host, tag, 2), timeout=WAIT
        )
        assert opened.tls and opened.tls_handshake is None  # the modem did the handshake
        return opened.socket


@pytest.fixture
async def online() -> AsyncIterator[Online]:
    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        stream = io.StringIO()
        modem = await Modem.open(fake.port, transcript=Transcript(stream))
        try:
            probed = await steps.probe(modem, "sim7080", timeout=WAIT)
            await steps.configure(probed.dialect, "iot.example", timeout=WAIT)
            await steps.attach(probed.dialect, timeout=WAIT)
            await steps.activate_data(probed.dialect, timeout=WAIT)
            dialect = probed.dialect
            assert isinstance(dialect, Sim7080)
            dialect.rx_poll_interval = 0.5
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


def pem(path: Path) -> str:
    return path.read_text()


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


# -- the store ------------------------------------------------------------------------------


async def test_the_store_uploads_converts_lists_and_deletes_files_named_after_the_tag(
    online: Online, certs: Certificates, client_pair: tuple[Path, Path]
) -> None:
    store = store_for(online.dialect)
    assert isinstance(store, Sim7080Store)
    assert await store.list(TAG) == []
    await online.provision(certs.cafile, client_pair)
    files = fake_sim7080.files(online.fake)
    assert files[(3, CA_FILE)] == pem(certs.cafile).encode()
    assert files[(3, f"atb{TAG}key.pem")] == pem(client_pair[1]).encode()
    converted = fake_sim7080.converted(online.fake)
    assert converted[CA_FILE].ca == pem(certs.cafile)
    pair = converted[f"atb{TAG}cert.pem"].pair
    assert pair is not None and pair[:2] == (pem(client_pair[0]), pem(client_pair[1]))
    commands = online.fake.commands
    size = len(pem(certs.cafile).encode())
    assert f'AT+CFSWFILE=3,"{CA_FILE}",0,{size},10000' in commands
    assert f'AT+CSSLCFG="convert",2,"{CA_FILE}"' in commands
    # The pair is converted once, at the end of the batch, with both new files.
    convert_pair = f'AT+CSSLCFG="convert",1,"atb{TAG}cert.pem","atb{TAG}key.pem"'
    assert commands.count(convert_pair) == 1
    assert commands.index(convert_pair) > commands.index(
        f'AT+CFSWFILE=3,"atb{TAG}key.pem",0,{len(pem(client_pair[1]).encode())},10000'
    )
    assert await store.list(TAG) == [
        StoredCredential(TAG, CredentialKind.CA, None, CA_FILE, size),
        StoredCredential(
            TAG, CredentialKind.CLIENT_CERT, None, f"atb{TAG}cert.pem", len(pem(client_pair[0]))
        ),
        StoredCredential(
            TAG, CredentialKind.CLIENT_KEY, None, f"atb{TAG}key.pem", len(pem(client_pair[1]))
        ),
    ]
    # A shorter file over a longer one: the old one is deleted first (mode 0 would keep its tail).
    short = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
    with pytest.raises(ModemError) as unconvertible:
        await store.write(TAG, CredentialKind.CA, short)
    assert files[(3, CA_FILE)] == short.encode()
    assert "convert" in (unconvertible.value.hint or "")
    assert await store.write(TAG, CredentialKind.CA, pem(certs.cafile)) is True
    assert await store.delete(TAG, CredentialKind.CLIENT_KEY) is True
    assert await store.delete(TAG, CredentialKind.CLIENT_KEY) is False
    assert [item.kind for item in await store.list(TAG)] == [
        CredentialKind.CA,
        CredentialKind.CLIENT_CERT,
    ]
    assert await store.list(TAG + 1) == []
    assert not online.fake.dialect_state_as(fake_sim7080.Sim7080State).fs_open  # CFSTERM sent
    log = online.transcript.getvalue()
    assert "AT+CFSWFILE" in log
    for line in key_lines(client_pair[1].read_text()):
        assert line not in log


async def test_what_the_store_cannot_do_is_refused_before_anything_is_sent(
    online: Online,
) -> None:
    store = online.store
    before = len(online.fake.commands)
    with pytest.raises(ConfigurationError, match="no command that lists") as listing:
        await store.list()
    assert "--sec-tag" in (listing.value.hint or "")
    with pytest.raises(ConfigurationError, match="DTLS"):
        await store.write(TAG, CredentialKind.PSK, "00112233")
    with pytest.raises(ConfigurationError, match="not PEM"):
        await store.write(TAG, CredentialKind.CA, "not a certificate")
    big = "-----BEGIN CERTIFICATE-----\n" + "A" * 10300 + "\n-----END CERTIFICATE-----\n"
    with pytest.raises(ConfigurationError, match="at most 10240"):
        await store.write(TAG, CredentialKind.CA, big)
    with pytest.raises(ConfigurationError, match="whole number"):
        await store.write(-1, CredentialKind.CA, big)
    assert len(online.fake.commands) == before


async def test_a_file_buffer_left_allocated_is_freed_and_allocated_again(
    online: Online, certs: Certificates
) -> None:
    await online.modem.command("AT+CFSINIT")  # an earlier process died before AT+CFSTERM
    await online.store.write(TAG, CredentialKind.CA, pem(certs.cafile))
    assert (3, CA_FILE) in fake_sim7080.files(online.fake)


# -- the fake's file system and SSL commands, from the manual -------------------------------


async def test_the_fake_file_system_takes_exactly_the_bytes_announced(online: Online) -> None:
    modem = online.modem
    with pytest.raises(ModemError):  # no buffer allocated
        await modem.command('AT+CFSGFIS=3,"x.pem"')
    await modem.command("AT+CFSINIT")
    with pytest.raises(ModemError):  # allocated twice
        await modem.command("AT+CFSINIT")
    data = b"0123456789\r\nOK\r\n"
    await modem.command(
        f'AT+CFSWFILE=3,"x.pem",0,{len(data)},1000', payload=data, prompt_line="DOWNLOAD"
    )
    assert (await modem.command('AT+CFSGFIS=3,"x.pem"')).values("+CFSGFIS:") == [str(len(data))]
    await modem.command('AT+CFSWFILE=3,"x.pem",1,2,1000', payload=b"!!", prompt_line="DOWNLOAD")
    assert fake_sim7080.files(online.fake)[(3, "x.pem")] == data + b"!!"
    with pytest.raises(ModemError):  # the size limit of the test command
        await modem.command('AT+CFSWFILE=3,"x.pem",0,10241,1000')
    with pytest.raises(ModemError):  # not PEM: nothing to convert
        await modem.command('AT+CSSLCFG="CONVERT",2,"x.pem"')
    with pytest.raises(ModemError):  # no such file
        await modem.command('AT+CSSLCFG="CONVERT",2,"none.pem"')
    await modem.command('AT+CFSDFILE=3,"x.pem"')
    with pytest.raises(ModemError):
        await modem.command('AT+CFSDFILE=3,"x.pem"')
    await modem.command("AT+CFSTERM")


async def test_a_ca_named_but_never_converted_fails_the_open_as_the_module_would(
    online: Online, tls_broker: Mosquitto
) -> None:
    modem = online.modem
    await modem.command('AT+CASSLCFG=0,"SSL",1')
    await modem.command('AT+CASSLCFG=0,"CACERT","never.pem"')
    with modem.expect_urc("+CAOPEN:") as result:  # the dialect takes +CAOPEN as a URC
        await modem.command(f'AT+CAOPEN=0,0,"TCP","localhost",{tls_broker.port}')
        urc = await result.wait(WAIT)
    assert urc.text == "+CAOPEN: 0,27"


# -- offload ----------------------------------------------------------------------------------


async def test_publish_and_subscribe_with_tls_on_the_modem(
    online: Online, tls_broker: Mosquitto, tls_paho: PahoPeer, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    commands = online.fake.commands
    sequence = [
        'AT+CSSLCFG="sslversion",0,3',
        'AT+CSSLCFG="sni",0,"localhost"',
        'AT+CASSLCFG=0,"SSL",1',
        'AT+CASSLCFG=0,"CRINDEX",0',
        f'AT+CASSLCFG=0,"CACERT","{CA_FILE}"',
    ]
    start = commands.index(sequence[0])
    assert commands[start : start + len(sequence) + 1] == [
        *sequence,
        f'AT+CAOPEN=0,0,"TCP","localhost",{tls_broker.port}',
    ]
    assert not any('"CERT"' in line for line in commands)  # no client pair under the tag
    decoder = await mqtt_connect(sock, "offload-7080")
    await sock.send(
        encode(Subscribe(packet_id=1, subscriptions=(Subscription("down/7080", qos=1),)))
    )
    assert isinstance(await next_packet(sock, decoder), SubAck)
    await asyncio.to_thread(tls_paho.subscribe, "up/7080", 1)
    payload = bytes(range(256)) * 5  # more than one AT+CASEND and one AT+CARECV
    await sock.send(encode(Publish("up/7080", payload, qos=0)))
    received = await asyncio.to_thread(tls_paho.wait_for, 1, WAIT)
    assert received[-1] == ("up/7080", payload, 0)
    await asyncio.to_thread(tls_paho.publish, "down/7080", payload, 0)
    message = await next_packet(sock, decoder)
    assert isinstance(message, Publish) and message.payload == payload
    await sock.close()


async def test_mutual_tls_offers_the_tags_client_certificate(
    online: Online,
    mtls_broker: Mosquitto,
    certs: Certificates,
    client_pair: tuple[Path, Path],
) -> None:
    await online.provision(certs.cafile)
    # Without a client certificate under the tag the broker ends the handshake: TLS, not TCP.
    with pytest.raises(TlsRefused) as refused:
        await online.open("localhost", mtls_broker.port)
    assert "client certificate" in (refused.value.hint or "")
    assert "plain TCP connection to it works" in refused.value.message
    await online.provision(certs.cafile, client_pair)
    sock = await online.open("localhost", mtls_broker.port)
    assert f'AT+CASSLCFG=0,"CERT","atb{TAG}cert.pem"' in online.fake.commands
    await mqtt_connect(sock, "mutual-7080")
    await sock.close()
    log = online.transcript.getvalue()
    for line in key_lines(client_pair[1].read_text()):
        assert line not in log


async def test_a_ca_that_did_not_sign_the_broker_is_refused_after_one_plain_probe(
    online: Online, tls_broker: Mosquitto
) -> None:
    other = Certificates()
    try:
        await online.provision(other.cafile)
        with pytest.raises(TlsRefused) as refused:
            await online.open("localhost", tls_broker.port)
    finally:
        other.remove()
    assert f"security tag {TAG}" in (refused.value.hint or "")
    assert online.opens() == 2  # the TLS open, then one plain TCP open to tell
    assert 'AT+CASSLCFG=0,"SSL",0' in online.fake.commands
    assert "AT+CACLOSE=0" in online.fake.commands
    assert online.dialect.sockets == {}


async def test_a_host_name_the_certificate_does_not_name_is_refused(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    add_host(online.fake, "wrong.example")
    with pytest.raises(TlsRefused) as refused:
        await online.open("wrong.example", tls_broker.port)
    assert "+CAOPEN: 0,25" in refused.value.message
    assert "not for wrong.example" in refused.value.message
    assert "clock" not in refused.value.message + (refused.value.hint or "")
    assert online.opens() == 1


async def test_an_expired_certificate_names_the_modems_clock(
    online: Online, expired_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    with pytest.raises(TlsRefused) as refused:
        await online.open("localhost", expired_broker.port)
    assert "+CAOPEN: 0,24" in refused.value.message
    assert "AT+CCLK?" in (refused.value.hint or "")
    add_host(online.fake, "wrong.example")
    with pytest.raises(TlsRefused) as both:
        await online.open("wrong.example", expired_broker.port)
    assert "+CAOPEN: 0,26" in both.value.message
    assert "AT+CCLK?" in (both.value.hint or "") and "wrong.example" in both.value.message
    assert online.opens() == 2


async def test_a_modem_clock_never_set_sees_a_valid_certificate_out_of_its_dates(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    # A module that never had network time runs from its epoch: before the certificate.
    await online.modem.command('AT+CCLK="80/01/06,00:00:00+00"')
    with pytest.raises(TlsRefused, match=r"not valid yet\) by the modem's clock"):
        await online.open("localhost", tls_broker.port)
    now = datetime.now(UTC)
    await online.modem.command(f'AT+CCLK="{now:%y/%m/%d,%H:%M:%S}+00"')
    sock = await online.open("localhost", tls_broker.port)
    await sock.close()


async def test_no_ca_under_the_tag_is_refused_before_any_open(
    online: Online, tls_broker: Mosquitto
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        await online.open("localhost", tls_broker.port, tag=99)
    assert "security tag 99" in refused.value.message
    assert "atbridge certs write --sec-tag 99" in (refused.value.hint or "")
    assert online.opens() == 0
    assert not online.fake.dialect_state_as(fake_sim7080.Sim7080State).fs_open


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        (ModemTls("localhost", TAG, 2, "1.3"), "TLS 1.2 at most"),
        (ModemTls("localhost", TAG, 0), "peer verification 0"),
        (ModemTls("localhost", TAG, 1), "peer verification 1"),
        (ModemTls('local"host', TAG, 2), "TLS host name"),
    ],
)
async def test_tls_settings_the_module_cannot_honour_are_refused_before_anything_is_sent(
    online: Online, setting: ModemTls, words: str
) -> None:
    before = len(online.fake.commands)
    with pytest.raises(ConfigurationError, match=words):
        await online.dialect.open_socket("localhost", 8883, tls=setting)
    with pytest.raises(ConfigurationError, match="security tag"):
        await online.dialect.open_socket("localhost", 8883, tls=True)
    assert len(online.fake.commands) == before


async def test_plain_tcp_after_tls_on_the_same_cid_turns_ssl_off_first(
    online: Online, tls_broker: Mosquitto, broker: Mosquitto, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    await sock.close()
    plain = await online.dialect.open_socket("127.0.0.1", broker.port)
    commands = online.fake.commands
    last_open = max(i for i, line in enumerate(commands) if line.startswith("AT+CAOPEN="))
    assert commands[last_open - 1] == 'AT+CASSLCFG=0,"SSL",0'
    await plain.send(encode(Connect(client_id="plain-7080", keepalive=60)))
    decoder = PacketDecoder(max_packet_size=1 << 16)
    assert await next_packet(plain, decoder) == ConnAck(session_present=False, reason_code=0)
    await plain.close()
    # This object knows the cid is plain now: the next plain open sends no SSL setting.
    count = len(commands)
    again = await online.dialect.open_socket("127.0.0.1", broker.port)
    assert not any("SSL" in line for line in online.fake.commands[count:])
    await again.close()


async def test_a_new_process_after_a_tls_run_turns_ssl_off_before_its_first_plain_open(
    online: Online, tls_broker: Mosquitto, broker: Mosquitto, certs: Certificates
) -> None:
    # The modem keeps "SSL",1 on the cid after the process that set it is gone (a
    # --tls modem run, then a plain atbridge publish on the same boot): a dialect object
    # that has not turned TLS off on a cid does so before its first plain open there.
    await online.provision(certs.cafile)
    sock = await online.open("localhost", tls_broker.port)
    await sock.close()
    await online.modem.close()
    async with await Modem.open(online.fake.port) as modem:
        probed = await steps.probe(modem, "sim7080", timeout=WAIT)
        count = len(online.fake.commands)
        plain = await probed.dialect.open_socket("127.0.0.1", broker.port)
        sent = online.fake.commands[count:]
        assert sent.index('AT+CASSLCFG=0,"SSL",0') < next(
            i for i, line in enumerate(sent) if line.startswith("AT+CAOPEN=")
        )
        await plain.send(encode(Connect(client_id="after-tls-7080", keepalive=60)))
        decoder = PacketDecoder(max_packet_size=1 << 16)
        assert await next_packet(plain, decoder) == ConnAck(session_present=False, reason_code=0)
        await plain.close()


async def test_the_bridge_stops_on_a_refused_certificate_without_reconnecting(
    tls_broker: Mosquitto,
) -> None:
    other = Certificates()
    try:
        async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
            fake_sim7080.files(fake)[(3, CA_FILE)] = pem(other.cafile).encode()
            fake_sim7080.converted(fake)[CA_FILE] = fake_sim7080.Converted(ca=pem(other.cafile))
            credentials = MqttCredentials.plain(
                client_id="storm", host="localhost", port=tls_broker.port, tls="modem", sec_tag=TAG
            )
            bridge = Bridge(
                port=fake.port, credentials=credentials, dialect="sim7080", apn="iot.example"
            )
            with pytest.raises(Failed):
                async with bridge:
                    pass
            assert isinstance(bridge.failure, TlsRefused)
            # The TLS open and the one plain open that told it was TLS; no retry.
            assert sum(1 for line in fake.commands if line.startswith("AT+CAOPEN=")) == 2
    finally:
        other.remove()


async def test_a_network_failure_of_a_tls_open_stays_a_socket_error(
    online: Online, certs: Certificates
) -> None:
    await online.provision(certs.cafile)
    with pytest.raises(SocketError) as failed:  # nothing listens: refused, retried later
        await online.open("localhost", 9)
    assert not isinstance(failed.value, TlsRefused)
    assert "+CAOPEN: 0,23" in failed.value.message
    assert online.opens() == 1


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
    topic = "certs/offload/sim7080"
    await asyncio.to_thread(tls_paho.subscribe, topic, 1)
    before = len(tls_paho.messages)
    pair = ["--cert", str(client_pair[0]), "--key", str(client_pair[1])]

    def certs_cli(*args: str) -> list[str]:
        return certs_args(fake, "sim7080", *args)

    def publish(tag: int) -> list[str]:
        return offload_publish_args(fake, "sim7080", tls_broker.port, tag, topic)

    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        write = await run_cli(
            atbridge,
            *certs_cli("write", "--sec-tag", "77", "--ca", str(certs.cafile), *pair),
            "--transcript",
            str(transcript),
        )
        assert write.proc.returncode == 0, write.stderr
        assert write.stdout.count("written") == 3
        files = fake_sim7080.files(fake)
        assert sorted(name for _index, name in files) == [
            "atb77ca.pem",
            "atb77cert.pem",
            "atb77key.pem",
        ]
        listed = await run_cli(atbridge, *certs_cli("list", "--sec-tag", "77", "--json"))
        assert listed.proc.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)["items"]
        assert [(i["sec_tag"], i["kind"], i["sha256"], i["name"]) for i in items] == [
            (77, "ca", None, "atb77ca.pem"),
            (77, "cert", None, "atb77cert.pem"),
            (77, "key", None, "atb77key.pem"),
        ]
        everything = await run_cli(atbridge, *certs_cli("list"))
        assert everything.proc.returncode == 2
        assert "--sec-tag" in everything.stderr and "Traceback" not in everything.stderr
        deleted = await run_cli(atbridge, *certs_cli("delete", "--sec-tag", "77", "--kind", "key"))
        assert deleted.proc.returncode == 0, deleted.stderr
        assert "deleted" in deleted.stdout and (3, "atb77key.pem") not in files

        forgot = await run_cli(atbridge, *publish(78))  # nobody wrote a CA under 78
        assert forgot.proc.returncode != 0
        assert "security tag 78" in forgot.stderr and "Traceback" not in forgot.stderr
        cli = await run_cli(atbridge, *publish(77))
        assert cli.proc.returncode == 0, cli.stderr
        assert 'AT+CASSLCFG=0,"CACERT","atb77ca.pem"' in fake.commands
    received = await asyncio.to_thread(tls_paho.wait_for, before + 1, WAIT)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, b"provisioned by certs")]
    log = transcript.read_text()
    assert 'AT+CFSWFILE=3,"atb77key.pem"' in log
    for line in key_lines(client_pair[1].read_text()):
        assert line not in log
        for run in (write, listed):
            assert line not in run.stdout and line not in run.stderr
