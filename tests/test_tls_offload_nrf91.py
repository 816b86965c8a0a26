"""TLS on the modem (offload) through the nRF91 fakes to a real TLS mosquitto.

The fakes make the TLS connection with Python's :mod:`ssl` on their side of the TCP
bridge, trusting only the CA stored under the socket's security tag (``AT%CMNG``) and
checking the host name set with ``AT#XSSOCKETOPT`` (``tests/fakes/nrf91_tls.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge import steps
from atbridge.at_mqtt import ConnAck, Connect, PacketDecoder, Publish, encode
from atbridge.credentials import MqttCredentials
from atbridge.errors import ConfigurationError, ModemError, SocketError, TlsRefused
from atbridge.modem import Modem
from atbridge.tls import ModemTls
from tests.brokers import Certificates, Mosquitto, PahoPeer
from tests.fakes import FakeModem, nrf91_tls
from tests.fakes.loopback import add_host

WAIT = 30.0
NORDIC = ("nrf91-slm", "nrf91-sm")
SEC_TAG = 16842753


class Online:
    def __init__(self, fake: FakeModem, modem: Modem, dialect: steps.DialectLink) -> None:
        self.fake, self.modem, self.dialect = fake, modem, dialect


@pytest.fixture(params=NORDIC)
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


def modem_credentials(port: int, sec_tag: int | None = SEC_TAG) -> MqttCredentials:
    return MqttCredentials.plain(
        client_id="offload", host="localhost", port=port, tls="modem", sec_tag=sec_tag
    )


async def next_packet(sock: steps.SocketLink, decoder: PacketDecoder) -> object:
    async with asyncio.timeout(WAIT):
        while (packet := decoder.next_packet()) is None:
            decoder.receive_data(await sock.receive())
        return packet


def provision(online: Online, cafile: Path) -> None:
    nrf91_tls.store(online.fake, SEC_TAG, nrf91_tls.CA, cafile.read_text())


async def test_publish_round_trip_with_tls_on_the_modem(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    provision(online, certs.cafile)
    setting = steps.tls_setting(modem_credentials(tls_broker.port))
    assert setting == ModemTls("localhost", SEC_TAG, 2)
    paho = PahoPeer(tls_broker.port, "paho-offload", tls=(certs.cafile, None, None))
    try:
        opened = await steps.open_socket(
            online.dialect, "localhost", tls_broker.port, tls=setting, timeout=WAIT
        )
        assert opened.tls and opened.tls_handshake is None  # the modem did the handshake
        sock, decoder = opened.socket, PacketDecoder(max_packet_size=1 << 20)
        await sock.send(encode(Connect(client_id="offload", keepalive=60)))
        assert await next_packet(sock, decoder) == ConnAck(session_present=False, reason_code=0)
        paho.subscribe("up/offload", qos=1)
        payload = bytes(range(256)) * 4
        await sock.send(encode(Publish("up/offload", payload, qos=0)))
        assert paho.wait_for(1, timeout=WAIT)[0] == ("up/offload", payload, 0)
        await sock.close()
    finally:
        paho.close()


async def test_no_ca_under_the_tag_fails_the_connect_with_a_clear_error(
    online: Online, tls_broker: Mosquitto
) -> None:
    # The connect fails; AT%CMNG then tells "no CA under the tag" (a setting: retrying
    # cannot fix it) from every other failure.
    setting = steps.tls_setting(modem_credentials(tls_broker.port))
    with pytest.raises(TlsRefused) as raised:
        await steps.open_socket(
            online.dialect, "localhost", tls_broker.port, tls=setting, timeout=WAIT
        )
    assert f"no CA certificate is stored under security tag {SEC_TAG}" in str(raised.value)
    assert f"atbridge certs write --sec-tag {SEC_TAG} --ca FILE" in (raised.value.hint or "")
    assert online.fake.commands[-1] == f"AT%CMNG=1,{SEC_TAG},0"


async def test_a_host_name_the_certificate_does_not_name_is_refused(
    online: Online, tls_broker: Mosquitto, certs: Certificates
) -> None:
    provision(online, certs.cafile)
    add_host(online.fake, "wrong.example")
    setting = ModemTls("wrong.example", SEC_TAG, 2)
    with pytest.raises(SocketError, match="over TLS on the modem"):
        await steps.open_socket(
            online.dialect, "wrong.example", tls_broker.port, tls=setting, timeout=WAIT
        )


async def test_a_ca_that_did_not_sign_the_broker_is_refused(
    online: Online, tls_broker: Mosquitto
) -> None:
    other = Certificates()
    try:
        provision(online, other.cafile)
        setting = steps.tls_setting(modem_credentials(tls_broker.port))
        with pytest.raises(SocketError, match="over TLS on the modem"):
            await steps.open_socket(
                online.dialect, "localhost", tls_broker.port, tls=setting, timeout=WAIT
            )
    finally:
        other.remove()


async def test_cmng_lists_digests_and_writes_only_offline(online: Online) -> None:
    content = "-----BEGIN CERTIFICATE-----MIIB-----END CERTIFICATE-----"
    line = f'AT%CMNG=0,{SEC_TAG},0,"{content}"'
    with pytest.raises(ModemError) as raised:
        await online.modem.command(line)  # CFUN=1: not allowed in active state
    assert "518" in str(raised.value.final)
    await online.modem.command("AT+CFUN=4")
    await online.modem.command(line)
    listed = await online.modem.command(f"AT%CMNG=1,{SEC_TAG}")
    digest = hashlib.sha256(content.encode()).hexdigest().upper()
    assert listed.values("%CMNG:") == [f'{SEC_TAG},0,"{digest}"']
    await online.modem.command(f"AT%CMNG=3,{SEC_TAG},0")
    assert (await online.modem.command(f"AT%CMNG=1,{SEC_TAG}")).values("%CMNG:") == []


async def test_tls_on_the_modem_without_a_security_tag_is_a_configuration_error(
    online: Online,
) -> None:
    with pytest.raises(ConfigurationError) as made:
        steps.tls_setting(modem_credentials(8883, sec_tag=None))
    assert "--sec-tag" in (made.value.hint or "")
    before = list(online.fake.commands)
    with pytest.raises(ConfigurationError) as raised:  # a caller that passes True
        await steps.open_socket(online.dialect, "localhost", 8883, tls=True, timeout=WAIT)
    assert "--sec-tag" in (raised.value.hint or "")
    assert online.fake.commands == before  # refused before anything is sent
    with pytest.raises(ConfigurationError):
        MqttCredentials.plain(client_id="c", host="h", tls="modem", sec_tag=-1)
