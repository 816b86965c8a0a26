"""The example files in ``examples/`` load with the one loader, so they cannot rot.

Each example is loaded exactly as ``--config FILE`` / ``--credentials FILE`` loads it (an empty
environment, no options) and the values a reader would copy are checked.
"""

from __future__ import annotations

from pathlib import Path

from atbridge.config import load_config, load_credentials
from atbridge.credentials import ALIYUN_ROOT_CA, MqttCredentials, TlsMode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_configuration_loads_with_its_broker() -> None:
    config = load_config(EXAMPLES / "atbridge.toml", env={})
    assert config.port.startswith("/dev/serial/by-id/")
    assert config.dialect == "auto"
    assert config.apn == "iot.1nce.net"
    assert config.give_up_after == 900
    assert config.will_topic == "devices/dev-42/status" and config.will_retain
    assert config.timeouts.attach == 600
    broker = config.credentials
    assert isinstance(broker, MqttCredentials)
    assert (broker.host, broker.port, broker.client_id) == ("broker.example.com", 1883, "dev-42")
    assert broker.keepalive == 120 and broker.password is None


def test_the_example_configuration_takes_the_password_from_the_environment() -> None:
    config = load_config(EXAMPLES / "atbridge.toml", env={"ATBRIDGE_MQTT_PASSWORD": "s3cret"})
    assert config.credentials.secrets() == ("s3cret",)


def test_the_example_aliyun_credentials_load() -> None:
    device = load_credentials(EXAMPLES / "aliyun-credentials.toml", env={})
    assert device.host == "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert device.port == 8883 and device.keepalive == 300
    assert device.client_id == "a1B2c3D4e5F.dev-42|securemode=2,signmethod=hmacsha256|"
    # securemode 2: TLS on this computer, trusting the bundled Aliyun IoT Root CA.
    assert device.tls_mode is TlsMode.HOST
    assert device.tls_options.cafile == str(ALIYUN_ROOT_CA)
    assert device.username == "dev-42&a1B2c3D4e5F"
    assert device.secrets()  # the signed password, from the example's device secret


def test_the_example_mqtt_credentials_load() -> None:
    broker = load_credentials(EXAMPLES / "mqtt-credentials.toml", env={})
    assert (broker.host, broker.username, broker.password) == ("broker.example.com", "dev-42", None)
