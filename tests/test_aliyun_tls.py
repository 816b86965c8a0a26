"""Aliyun over TLS (securemode 2) through every dialect's fake, to a mosquitto set up like
the platform's endpoint.

The broker listens with TLS on a free loopback port, with a certificate for the device's
own Aliyun host name (``<pk>.iot-as-mqtt.cn-shanghai.aliyuncs.com``, resolved to
127.0.0.1 on the fake's network) from a test CA, ``allow_anonymous false`` and a
password file holding the user name and password atbridge computes for the device
(:meth:`~atbridge.credentials.AliyunDevice.credentials`): the broker accepts only
the signed CONNECT, as the platform does. A paho subscriber checks that a publish
arrives. The device names the test CA as its instance's own (``cafile``); without
it, the bundled Aliyun IoT Root CA is trusted, which did not sign the test broker's
certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge.bridge import Bridge
from atbridge.credentials import ALIYUN_ROOT_CA, AliyunDevice, Secret, TlsMode
from atbridge.dialects import DIALECTS
from atbridge.errors import ConnectRefused, Failed, TlsRefused
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener
from tests.fakes import FakeModem
from tests.fakes.loopback import add_host
from tests.test_fsm import config

FIVE = sorted(name for name in DIALECTS if name != "generic")
WAIT = 30.0
PK, DN, DS = "a1TlsTest01", "tls-device", "Dev1ceSecretForTlsTestsOnly0123"
HOST = f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com"
PAHO_USER, PAHO_PASSWORD = "paho-observer", "observer-password"


def device(certs: Certificates, port: int, secret: str = DS, **more: object) -> AliyunDevice:
    return AliyunDevice(
        PK,
        DN,
        Secret(secret),
        port=port,
        cafile=str(certs.cafile),
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def aliyun_broker(certs: Certificates) -> Iterator[Mosquitto]:
    """A TLS mosquitto that accepts only the device's signed CONNECT (and paho's)."""
    cert, key = certs.issue(HOST, "127.0.0.1")  # paho connects by address
    signed = device(certs, 1).credentials()  # the port is not part of the signature
    assert signed.username is not None and signed.password is not None
    users = {signed.username: signed.password.reveal(), PAHO_USER: PAHO_PASSWORD}
    with Mosquitto(users=users, tls=TlsListener(certs.cafile, cert, key)) as broker:
        yield broker


@pytest.fixture
def observer(aliyun_broker: Mosquitto, certs: Certificates) -> Iterator[PahoPeer]:
    peer = PahoPeer(
        aliyun_broker.port,
        "paho-aliyun",
        username=PAHO_USER,
        password=PAHO_PASSWORD,
        tls=(certs.cafile, None, None),
    )
    try:
        yield peer
    finally:
        peer.close()


def test_securemode_2_is_host_side_tls_on_8883_with_the_bundled_root_ca() -> None:
    creds = AliyunDevice(PK, DN, Secret(DS)).credentials()
    assert (creds.host, creds.port, creds.tls_mode) == (HOST, 8883, TlsMode.HOST)
    assert creds.tls_options.cafile == ALIYUN_ROOT_CA
    instance = AliyunDevice(PK, DN, Secret(DS), instance_id="iot-06z00abc").credentials()
    assert instance.host == "iot-06z00abc.mqtt.iothub.aliyuncs.com"
    assert (instance.port, instance.tls_options.cafile) == (8883, ALIYUN_ROOT_CA)
    plain = AliyunDevice(PK, DN, Secret(DS), secure_mode=3).credentials()
    assert (plain.port, plain.tls, plain.tls_mode) == (1883, False, TlsMode.OFF)


@pytest.mark.parametrize("dialect", FIVE)
async def test_a_securemode_2_device_connects_and_publishes_over_tls(
    dialect: str, aliyun_broker: Mosquitto, observer: PahoPeer, certs: Certificates
) -> None:
    topic = f"/{PK}/{DN}/user/update/{dialect}"
    await asyncio.to_thread(observer.subscribe, topic, 1)
    credentials = device(certs, aliyun_broker.port).credentials()
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        add_host(fake, HOST)
        async with Bridge(config=config(fake, aliyun_broker.port, credentials=credentials)) as b:
            opened = b.steps["open_socket"]
            assert getattr(opened, "tls", False)  # the socket was TLS, on this host
            await b.publish(topic, b'{"temperature":21.5}', qos=1)
    received = await asyncio.to_thread(observer.wait_for, 1, WAIT)
    assert (topic, b'{"temperature":21.5}', 1) in received


async def test_a_wrong_device_secret_is_refused_with_a_clear_message(
    aliyun_broker: Mosquitto, certs: Certificates
) -> None:
    credentials = device(certs, aliyun_broker.port, secret="NotTheDeviceSecret").credentials()
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        add_host(fake, HOST)
        bridge = Bridge(config=config(fake, aliyun_broker.port, credentials=credentials))
        with pytest.raises(Failed) as info:
            async with bridge:
                pass
    cause = info.value.cause
    assert isinstance(cause, ConnectRefused)
    assert "refused the connection" in cause.message
    assert cause.code in (4, 5)  # bad user name or password / not authorised (mosquitto)
    assert cause.hint is not None and "password" in cause.hint
    assert "NotTheDeviceSecret" not in f"{cause.message} {cause.hint}"


async def test_without_the_instance_ca_the_bundled_root_ca_is_trusted_and_refuses(
    aliyun_broker: Mosquitto,
) -> None:
    """The test broker's certificate is not Aliyun's: the default CA says so, and stops."""
    credentials = AliyunDevice(PK, DN, Secret(DS), port=aliyun_broker.port).credentials()
    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        add_host(fake, HOST)
        bridge = Bridge(config=config(fake, aliyun_broker.port, credentials=credentials))
        with pytest.raises(Failed) as info:
            async with bridge:
                pass
    cause = info.value.cause
    assert isinstance(cause, TlsRefused)
    assert "not signed by a CA you trust" in cause.message
