"""Tests for atbridge.credentials: Aliyun signing, dynamic registration, plain, TOML + env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atbridge.at_mqtt import Connect, decode, encode
from atbridge.config import env_variable, load_credentials
from atbridge.credentials import (
    MASK,
    AliyunDevice,
    AliyunProduct,
    AliyunTokenDevice,
    MqttCredentials,
    Secret,
    SignMethod,
    aliyun_sign_content,
)
from atbridge.errors import ConfigurationError, RemoteProtocolError

# --- published vectors (reference §1.2) -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "password"),
    [
        ("hmacsha1", "fafd82a3d602b37fb0fa8b7892f24a477f851a14"),
        ("hmacmd5", "14b198324fe55e1d3c88f2e705e201ee"),
        ("hmacsha256", "6074a46a91b1ebb2cc4ea42790ad0e80202c9843859fc292e57c4eb19fad9e57"),
    ],
)
def test_aliyun_docs_example_for_every_sign_method(method: str, password: str) -> None:
    device = AliyunDevice(
        "pk", "device", Secret("secret"), client_id="12345", timestamp="789",
        sign_method=SignMethod(method), secure_mode=3,
    )  # fmt: skip
    creds = device.credentials()
    assert creds.client_id == f"12345|securemode=3,signmethod={method},timestamp=789|"
    assert creds.username == "device&pk"
    assert aliyun_sign_content(device.sign_params()) == (
        "clientId12345deviceNamedeviceproductKeypktimestamp789"
    )
    assert creds.password is not None
    assert creds.password.reveal() == password
    assert (creds.host, creds.port, creds.tls) == (
        "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com",
        1883,
        False,
    )


def test_aliyun_paho_c_guide_value_uppercase_accepted() -> None:
    device = AliyunDevice(
        "a11xsrWmW14",
        "paho_mqtt",
        Secret("Y877Bgo8X5owd3lcB5wWDjryNPoBUdiH"),
        client_id="paho_mqtt&a11xsrWmW14",
        timestamp="2524608000000",
        sign_method=SignMethod.HMACSHA256,
        secure_mode=3,
    )
    published = "36E955DC3D9D012EF62C80657A29328B1CFAE6186C611A17DC7939FAB6378ED9"
    assert device.password().reveal() == published.lower()
    assert device.password_matches(published)  # uppercase (Link SDK 4.x) ...
    assert device.password_matches(published.lower())  # ... and lowercase (linkkit) both match
    assert not device.password_matches(published[:-1] + "0")


def test_no_timestamp_drops_the_term_from_client_id_and_signature() -> None:
    device = AliyunDevice("pk", "device", Secret("secret"), client_id="12345",
                          sign_method=SignMethod.HMACSHA1)  # fmt: skip
    assert device.mqtt_client_id() == "12345|securemode=2,signmethod=hmacsha1|"
    assert aliyun_sign_content(device.sign_params()) == "clientId12345deviceNamedeviceproductKeypk"
    import hashlib
    import hmac

    expected = hmac.new(b"secret", b"clientId12345deviceNamedeviceproductKeypk", hashlib.sha1)
    assert device.password().reveal() == expected.hexdigest()


def test_default_client_id_is_pk_dot_dn_and_tls_default_port_8883() -> None:
    creds = AliyunDevice("a1PK", "dev-01", Secret("s")).credentials()
    assert creds.client_id.startswith("a1PK.dev-01|securemode=2,signmethod=hmacsha256|")
    assert (creds.tls, creds.port, creds.keepalive) == (True, 8883, 300)


def test_instance_id_selects_the_instance_endpoint() -> None:
    device = AliyunDevice("pk", "d", Secret("s"), instance_id="iot-06z00h6z06dknsn")
    assert device.credentials().host == "iot-06z00h6z06dknsn.mqtt.iothub.aliyuncs.com"


@pytest.mark.parametrize("keepalive", [29, 1201, 0])
def test_aliyun_keepalive_outside_platform_range_is_refused(keepalive: int) -> None:
    with pytest.raises(ConfigurationError, match=r"30\.\.1200"):
        AliyunDevice("pk", "d", Secret("s"), keepalive=keepalive)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"secure_mode": 1}, "secure_mode"),
        ({"sign_method": "sha512"}, "sign_method"),
        ({"timestamp": "12ab"}, "timestamp"),
        ({"client_id": "a|b"}, "client_id"),
        ({"client_id": "x" * 65}, "client_id"),
        ({"device_name": "with space"}, "device_name"),
        ({"product_key": "p&k"}, "product_key"),
        ({"device_secret": Secret("")}, "device_secret"),
    ],
)
def test_bad_aliyun_fields_are_named(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "product_key": "pk", "device_name": "d", "device_secret": Secret("topsecret"),
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ConfigurationError) as info:
        AliyunDevice(**args)  # type: ignore[arg-type]
    assert field in str(info.value)
    assert "topsecret" not in str(info.value)


# --- secrets never shown -------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str() -> None:
    device = AliyunDevice("pk", "device", Secret("DEVSECRET"), timestamp="1")
    creds = device.credentials()
    password = creds.password.reveal() if creds.password else ""
    for text in (repr(device), str(device), repr(creds), str(creds), f"{creds.password}",
                 repr(creds.connect_packet()), str(creds.as_dict())):  # fmt: skip
        assert "DEVSECRET" not in text
        assert password not in text
    assert repr(Secret("x")) == f"Secret('{MASK}')"
    assert creds.secrets() == (password, "DEVSECRET")
    assert creds.as_dict()["password"] == MASK
    assert creds.as_dict(show_secret=True)["password"] == password


def test_connect_packet_carries_the_credentials() -> None:
    creds = AliyunDevice("pk", "device", Secret("secret"), client_id="12345", timestamp="789",
                         sign_method=SignMethod.HMACSHA1, secure_mode=3,
                         keepalive=120).credentials()  # fmt: skip
    packet = decode(encode(creds.connect_packet()))
    assert isinstance(packet, Connect)
    assert packet.client_id == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert packet.username == "device&pk"
    assert packet.password == b"fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert packet.keepalive == 120


@settings(max_examples=200, deadline=None)
@given(
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1,
            max_size=20),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-_@.:", min_size=1, max_size=32),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40),
)  # fmt: skip
def test_password_is_the_hmac_of_the_sorted_parameters(pk: str, dn: str, secret: str) -> None:
    import hashlib
    import hmac

    device = AliyunDevice(pk, dn, Secret(secret), timestamp="42")
    content = f"clientId{pk}.{dn}deviceName{dn}productKey{pk}timestamp42"
    expected = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    assert device.password().reveal() == expected


# --- one type one secret --------------------------------------------------------------------


def test_dynamic_registration_connect_credentials() -> None:
    product = AliyunProduct("a1PK", Secret("PRODSECRET"))
    creds = product.register_credentials("dev-01", random="8Ygb7ULYh53B6OA")
    assert creds.client_id == (
        "a1PK.dev-01|securemode=2,authType=register,random=8Ygb7ULYh53B6OA,signmethod=hmacsha256|"
    )
    assert creds.username == "dev-01&a1PK"
    import hashlib
    import hmac

    expected = hmac.new(b"PRODSECRET", b"deviceNamedev-01productKeya1PKrandom8Ygb7ULYh53B6OA",
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert creds.password is not None and creds.password.reveal() == expected
    assert creds.tls
    assert "PRODSECRET" in creds.secrets()
    assert "PRODSECRET" not in repr(product)

    nwl = AliyunProduct("a1PK", Secret("p"), instance_id="iot-x").register_credentials(
        "dev-01", preregistered=False, random="r1"
    )
    assert nwl.client_id == (
        "a1PK.dev-01|securemode=-2,authType=regnwl,random=r1,signmethod=hmacsha256,instanceId=iot-x|"
    )
    assert nwl.host == "iot-x.mqtt.iothub.aliyuncs.com"


def test_random_nonce_differs_between_attempts() -> None:
    product = AliyunProduct("a1PK", Secret("p"))
    first = product.register_credentials("d").client_id
    second = product.register_credentials("d").client_id
    assert first != second


def test_register_reply_yields_a_device_with_its_secret() -> None:
    product = AliyunProduct("a1PK", Secret("p"), region="ap-southeast-1")
    payload = json.dumps({"productKey": "a1PK", "deviceName": "d1", "deviceSecret": "NEWSECRET"})
    device = product.parse_registration_reply("d1", "/ext/register", payload.encode())
    assert isinstance(device, AliyunDevice)
    assert isinstance(device.device_secret, Secret)
    assert device.device_secret.reveal() == "NEWSECRET"
    assert device.credentials().host == "a1PK.iot-as-mqtt.ap-southeast-1.aliyuncs.com"


def test_regnwl_reply_yields_token_credentials() -> None:
    product = AliyunProduct("a1PK", Secret("p"))
    payload = json.dumps({"clientId": "cid123", "productKey": "a1PK", "deviceName": "d1",
                          "deviceToken": "TOKEN"})  # fmt: skip
    device = product.parse_registration_reply("d1", "/ext/regnwl", payload.encode())
    assert isinstance(device, AliyunTokenDevice)
    creds = device.credentials()
    assert creds.client_id == "cid123|securemode=-2,authType=connwl|"
    assert creds.username == "d1&a1PK"
    assert creds.password is not None and creds.password.reveal() == "TOKEN"
    assert "TOKEN" not in repr(device) and "TOKEN" not in repr(creds)


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("/ext/register", b"not json SECRETISH", "not JSON"),
        ("/ext/register", b'{"deviceName": "d1"}', "deviceSecret"),
        ("/ext/regnwl", b'{"clientId": "c", "deviceToken": 5}', "deviceToken"),
        ("/ext/register", b'{"deviceName": "other", "deviceSecret": "s"}', "'other'"),
        ("/other", b"{}", "unexpected topic"),
    ],
)
def test_bad_registration_replies_are_remote_errors_without_the_payload(
    topic: str, payload: bytes, message: str
) -> None:
    product = AliyunProduct("a1PK", Secret("p"))
    with pytest.raises(RemoteProtocolError) as info:
        product.parse_registration_reply("d1", topic, payload)
    assert message in str(info.value)
    assert "SECRETISH" not in str(info.value)


# --- plain ------------------------------------------------------------------------------------


def test_plain_credentials_are_used_as_given() -> None:
    creds = MqttCredentials.plain(client_id="c", host="broker.lan", username="u",
                                  password="pw", tls=True)  # fmt: skip
    assert (creds.host, creds.port, creds.tls, creds.keepalive) == ("broker.lan", 8883, True, 60)
    assert creds.endpoint() == ("broker.lan", 8883)
    assert creds.secrets() == ("pw",)
    with pytest.raises(ConfigurationError, match="no MQTT host"):
        MqttCredentials.plain(client_id="c").endpoint()
    with pytest.raises(ConfigurationError, match="port"):
        MqttCredentials.plain(client_id="c", port=70000)


# --- TOML + environment -----------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "creds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_aliyun_table(tmp_path: Path) -> None:
    path = write(tmp_path, """
[aliyun]
product_key = "pk"
device_name = "device"
device_secret = "secret"
client_id = "12345"
timestamp = 789
sign_method = "hmacsha1"
secure_mode = 3
keepalive = 120
""")  # fmt: skip
    creds = load_credentials(path, env={})
    assert creds.password is not None
    assert creds.password.reveal() == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert creds.keepalive == 120


def test_environment_overrides_the_file_and_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path, '[aliyun]\nproduct_key = "pk"\ndevice_name = "device"\n'
                 'device_secret = "wrong"\n')  # fmt: skip
    env = {"ATBRIDGE_DEVICE_SECRET": "secret", "ATBRIDGE_ALIYUN_SECURE_MODE": "3",
           "ATBRIDGE_ALIYUN_KEEPALIVE": "600"}  # fmt: skip
    creds = load_credentials(path, env=env, overrides={"client_id": "12345", "timestamp": "789",
                             "sign_method": "hmacsha1", "keepalive": None})  # fmt: skip
    assert creds.password is not None
    assert creds.password.reveal() == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert creds.keepalive == 600
    assert not creds.tls


def test_load_mqtt_table_with_env_password(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[mqtt]\nhost = "10.0.0.2"\nclient_id = "c"\nusername = "u"\ntls = true\n'
    )
    creds = load_credentials(
        path, env={"ATBRIDGE_MQTT_PASSWORD": "pw", "ATBRIDGE_MQTT_PORT": "9883"}
    )
    assert (creds.host, creds.port, creds.tls) == ("10.0.0.2", 9883, True)
    assert creds.password is not None and creds.password.reveal() == "pw"
    assert env_variable("mqtt", "password") == "ATBRIDGE_MQTT_PASSWORD"
    assert env_variable("aliyun", "device_secret") == "ATBRIDGE_DEVICE_SECRET"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\n', {},
         "device_secret is missing"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = 12345678\n', {},
         "device_secret in"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = "s"\nport = "x"\n',
         {}, "port in"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_nmae = "d"\n', {}, "device_nmae"),
        ('[mqtt]\nclient_id = "c"\n[aliyun]\n', {}, "exactly one"),
        ("[other]\n", {}, "exactly one"),
        ('[mqtt]\nclient_id = "c"\ntls = "maybe"\n', {}, "tls in"),
        ('[mqtt]\nclient_id = "c"\n', {"ATBRIDGE_MQTT_KEEPALIVE": "soon"},
         "$ATBRIDGE_MQTT_KEEPALIVE"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = "s"\n'
         "keepalive = 5000\n", {}, "keepalive"),
        ("[mqtt\n", {}, "not valid TOML"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field_and_the_file(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_credentials(path, env=env)
    assert message in str(info.value)
    # the culprit is named: the file, or the environment variable that overrode it
    assert str(path) in str(info.value) or "$ATBRIDGE_" in str(info.value)
    assert "12345678" not in str(info.value)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the credentials file"):
        load_credentials(tmp_path / "nope.toml")


def test_secret_from_env_never_in_errors() -> None:
    env = {"ATBRIDGE_DEVICE_SECRET": "ENVSECRET", "ATBRIDGE_PRODUCT_KEY": "pk",
           "ATBRIDGE_DEVICE_NAME": "bad name"}  # fmt: skip
    with pytest.raises(ConfigurationError) as info:
        load_credentials(None, table="aliyun", env=env)
    assert "device_name" in str(info.value)
    assert "ENVSECRET" not in str(info.value)


# --- Aliyun over TLS: the bundled CA, the port, the settings --------------------------------


def test_the_bundled_ca_is_the_aliyun_iot_root_ca_valid_to_2053() -> None:
    import hashlib
    import ssl

    from atbridge.aliyun import describe_ca
    from atbridge.credentials import ALIYUN_ROOT_CA

    ca = describe_ca(ALIYUN_ROOT_CA)
    assert ca.bundled
    assert ca.subjects == (
        "C=CN, ST=Zhejiang, L=Hangzhou, O=Aliyun IoT, OU=Root CA, CN=Aliyun IoT Root CA",
    )
    assert ca.expires.isoformat() == "2053-07-04T06:36:58+00:00"
    der = ssl.PEM_cert_to_DER_cert(Path(ALIYUN_ROOT_CA).read_text())
    assert hashlib.sha256(der).hexdigest().upper() == (
        "7CA438A3976B5242D231F861499822DA855831382735836B361E7E9715661676"
    )


def test_tls_settings_of_an_aliyun_device() -> None:
    from atbridge.credentials import ALIYUN_ROOT_CA, TlsMode

    modem = AliyunDevice("pk", "d", Secret("s"), tls=TlsMode.MODEM, sec_tag=12).credentials()
    assert (modem.tls_mode, modem.tls_options.sec_tag, modem.port) == (TlsMode.MODEM, 12, 8883)
    assert modem.tls_options.cafile is None  # the modem trusts the CA under its tag
    own = AliyunDevice("pk", "d", Secret("s"), cafile="/etc/own-ca.pem", endpoint="10.0.0.9")
    creds = own.credentials()
    assert (creds.host, creds.tls_options.cafile) == ("10.0.0.9", "/etc/own-ca.pem")
    assert AliyunDevice(
        "pk", "d", Secret("s"), tls=TlsMode.HOST
    ).credentials().tls_options.cafile == (ALIYUN_ROOT_CA)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secure_mode": 3, "tls": "host"}, "secure_mode 3, which is plain TCP"),
        ({"secure_mode": 2, "tls": "off"}, "secure_mode 2 means TLS"),
        ({"endpoint": "a/b"}, "endpoint"),
    ],
)
def test_contradictory_aliyun_tls_settings_are_refused(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AliyunDevice("pk", "d", Secret("topsecret"), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cafile set but tls is off"):
        AliyunDevice("pk", "d", Secret("s"), secure_mode=3, cafile="ca.pem").credentials()


def test_registration_is_tls_with_the_bundled_ca_and_passes_its_settings_on() -> None:
    from atbridge.credentials import ALIYUN_ROOT_CA, TlsMode

    product = AliyunProduct("a1PK", Secret("p"))
    creds = product.register_credentials("d1", random="r")
    assert (creds.port, creds.tls_mode, creds.tls_options.cafile) == (
        8883, TlsMode.HOST, ALIYUN_ROOT_CA,
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="over TLS only"):
        AliyunProduct("a1PK", Secret("p"), tls=TlsMode.OFF)
    offload = AliyunProduct("a1PK", Secret("p"), tls=TlsMode.MODEM, sec_tag=3, endpoint="h.lan")
    payload = json.dumps({"deviceSecret": "NEW"}).encode()
    device = offload.parse_registration_reply("d1", "/ext/register", payload)
    assert isinstance(device, AliyunDevice)
    registered = device.credentials()
    assert (registered.host, registered.tls_mode, registered.tls_options.sec_tag) == (
        "h.lan", TlsMode.MODEM, 3,
    )  # fmt: skip


def test_the_aliyun_table_takes_the_tls_keys(tmp_path: Path) -> None:
    from atbridge.credentials import TlsMode

    path = tmp_path / "dev.toml"
    path.write_text(
        '[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = "s"\n'
        'tls = "modem"\nsec_tag = 9\nendpoint = "private.example"\n'
    )
    creds = load_credentials(path, env={})
    assert (creds.host, creds.tls_mode, creds.tls_options.sec_tag) == (
        "private.example", TlsMode.MODEM, 9,
    )  # fmt: skip
    env = {"ATBRIDGE_ALIYUN_CAFILE": "/etc/ca.pem"}
    with pytest.raises(ConfigurationError, match='cafile set with tls = "modem"'):
        load_credentials(path, env=env)  # the modem reads no file here: it would go unused
    host = tmp_path / "host.toml"
    host.write_text(path.read_text().replace('tls = "modem"\nsec_tag = 9\n', 'tls = "host"\n'))
    assert load_credentials(host, env=env).tls_options.cafile == "/etc/ca.pem"
