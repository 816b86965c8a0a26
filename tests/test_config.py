"""The one configuration loader (atbridge/config.py): layers, types, and errors that say where."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from atbridge.config import (
    ALIYUN,
    BRIDGE,
    MQTT,
    TABLES,
    TIMEOUTS,
    BridgeConfig,
    PortSettings,
    Setting,
    Timeouts,
    env_variable,
    load_config,
    load_credentials,
    load_port_settings,
)
from atbridge.credentials import MqttCredentials
from atbridge.errors import ConfigurationError

CREDS = MqttCredentials.plain(client_id="c", host="broker.example")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "atbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_later_layers_win_defaults_file_environment_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[bridge]\nport = "/dev/file"\napn = "file"\nbaudrate = 9600\nqueue_size = 5\n'
        "[bridge.timeouts]\nattach = 300\nprobe = 7\n"
        '[mqtt]\nclient_id = "file"\nhost = "file.example"\nkeepalive = 30\n',
    )
    env = {
        "ATBRIDGE_APN": "env",
        "ATBRIDGE_BAUDRATE": "19200",
        "ATBRIDGE_TIMEOUT_PROBE": "8",
        "ATBRIDGE_MQTT_HOST": "env.example",
        "ATBRIDGE_MQTT_KEEPALIVE": "40",
    }
    arguments = {
        "baudrate": Setting(38400, "--baud"),
        "timeouts.attach": Setting(200.0, "--attach-timeout"),
        "credentials.keepalive": Setting(50, "--keepalive"),
    }
    config = load_config(
        path,
        env=env,
        arguments=arguments,
        defaults={"give_up_after": 300.0, "queue_size": 9, "mqtt.client_id": "default"},
    )
    assert (config.port, config.apn, config.baudrate) == ("/dev/file", "env", 38400)
    assert (config.queue_size, config.give_up_after) == (5, 300.0)
    assert (config.timeouts.attach, config.timeouts.probe) == (200.0, 8.0)
    creds = config.credentials
    assert (creds.client_id, creds.host, creds.keepalive) == ("file", "env.example", 50)


def test_types_come_from_the_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[bridge]\nport = "p"\nmqtt_version = 5\nrtscts = true\nbackoff_initial = 2\n'
        '[mqtt]\nclient_id = "c"\nhost = "h"\n',
    )
    env = {"ATBRIDGE_WILL_RETAIN": "yes", "ATBRIDGE_WILL_TOPIC": "dev/gone",
           "ATBRIDGE_SESSION_EXPIRY": " 60 ", "ATBRIDGE_LINE_ENDING": "cr"}  # fmt: skip
    config = load_config(path, env=env)
    assert config.mqtt_version == "5"
    assert config.rtscts is True and config.will_retain is True
    assert config.backoff_initial == 2.0 and isinstance(config.backoff_initial, float)
    assert (config.session_expiry, config.line_ending) == (60, "cr")


@pytest.mark.parametrize(
    ("text", "env", "arguments", "expected"),
    [
        ('[bridge]\nport = "p"\nbaudrate = "fast"\n', {}, {},
         "[bridge] baudrate='fast' in FILE is not a whole number"),
        ('[bridge]\nport = "p"\n', {"ATBRIDGE_BAUDRATE": "fast"}, {},
         "baudrate='fast' in $ATBRIDGE_BAUDRATE"),
        ('[bridge]\nport = "p"\n', {}, {"baudrate": Setting("fast", "--baud", text=True)},
         "baudrate='fast' in --baud"),
        ('[bridge]\nport = "p"\n', {}, {"baudrate": Setting(99999999999, "--baud")},
         "(baudrate from --baud)"),
        ('[bridge]\nport = "p"\nbaudrate = 99999999999\n', {}, {}, "(baudrate from FILE)"),
        ('[bridge]\nport = "p"\nbaud = 1\n', {}, {},
         "[bridge] baud in FILE is not a known field"),
        ('[bridge]\nport = "p"\n[bridge.timeouts]\nattach = -1\n', {}, {},
         "(attach from FILE)"),
        ('[bridge]\nport = "p"\n', {"ATBRIDGE_TIMEOUT_ATTACH": "soon"}, {},
         "$ATBRIDGE_TIMEOUT_ATTACH"),
        ('[bridge]\nport = "p"\n[brigde]\n', {}, {}, "[brigde] in FILE is not a known table"),
        ('[bridge]\nport = "p"\nqueue_full = "block"\n', {}, {},
         "queue_full='block' in FILE is not one of 'raise', 'wait'"),
        ('[bridge]\nport = "p"\ndialect = "nrf52"\n', {}, {}, "(dialect from FILE)"),
        ('[bridge]\nport = "p"\nwill_qos = 1\n', {}, {}, "without a Will topic"),
        ("[bridge]\n", {}, {}, "no modem port in FILE"),
        ('[bridge]\nport = "p"\ngive_up_after = inf\n', {}, {}, "is not a number"),
    ],
)  # fmt: skip
def test_every_error_names_where_the_value_came_from(
    tmp_path: Path,
    text: str,
    env: dict[str, str],
    arguments: dict[str, Setting],
    expected: str,
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path, env=env, credentials=CREDS, arguments=arguments)
    assert expected.replace("FILE", str(path)) in str(info.value)


def test_an_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nport = "p"\n[bridge.timeouts]\natach = 1\n')
    with pytest.raises(ConfigurationError) as info:
        load_config(path, env={}, credentials=CREDS)
    assert info.value.hint == f"known keys of [bridge.timeouts]: {', '.join(TIMEOUTS.keys)}"
    path = write(tmp_path, '[mqtt]\nclient_id = "c"\nhots = "h"\n')
    with pytest.raises(ConfigurationError, match="known keys of \\[mqtt\\]: client_id, host"):
        load_credentials(path, env={})


def test_every_field_has_one_key_and_one_variable() -> None:
    variables = [table.variable(key) for table in TABLES.values() for key in table.keys]
    assert len(variables) == len(set(variables))
    assert set(BRIDGE.keys) | {"credentials", "timeouts"} == set(BridgeConfig.__dataclass_fields__)
    assert set(TIMEOUTS.keys) == set(Timeouts.__dataclass_fields__)
    assert env_variable("bridge", "will_topic") == "ATBRIDGE_WILL_TOPIC"
    assert env_variable("bridge.timeouts", "attach") == "ATBRIDGE_TIMEOUT_ATTACH"
    assert env_variable("aliyun", "product_key") == "ATBRIDGE_PRODUCT_KEY"
    assert env_variable("aliyun", "region") == "ATBRIDGE_ALIYUN_REGION"
    assert MQTT.required() == ["client_id"]
    assert ALIYUN.required() == ["product_key", "device_name", "device_secret"]


@pytest.mark.parametrize(
    ("text", "env", "arguments", "table", "host"),
    [
        ('[mqtt]\nclient_id = "c"\nhost = "file"\n', {}, {}, "mqtt", "file"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = "s"\n', {}, {},
         "aliyun", "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com"),
        ('[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\ndevice_secret = "s"\n', {},
         {"mqtt.host": Setting("broker", "--broker")}, "mqtt", "broker"),
        ("", {"ATBRIDGE_MQTT_HOST": "env"}, {}, "mqtt", "env"),
        ("", {"ATBRIDGE_PRODUCT_KEY": "pk", "ATBRIDGE_DEVICE_NAME": "d",
              "ATBRIDGE_DEVICE_SECRET": "s"}, {},
         "aliyun", "pk.iot-as-mqtt.cn-shanghai.aliyuncs.com"),
    ],
)  # fmt: skip
def test_which_credentials_table_applies(
    tmp_path: Path,
    text: str,
    env: dict[str, str],
    arguments: dict[str, Setting],
    table: str,
    host: str,
) -> None:
    path = write(tmp_path, '[bridge]\nport = "p"\n' + text)
    config = load_config(
        path, env=env, arguments=arguments, defaults={"mqtt.client_id": "generated"}
    )
    assert config.credentials.host == host
    assert ("|securemode=" in config.credentials.client_id) == (table == "aliyun")


def test_no_broker_and_user_name_with_aliyun_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nport = "p"\n')
    with pytest.raises(ConfigurationError, match="no broker given"):
        load_config(path, env={})
    path = write(
        tmp_path,
        '[bridge]\nport = "p"\n[aliyun]\nproduct_key = "pk"\ndevice_name = "d"\n'
        'device_secret = "s"\n',
    )
    with pytest.raises(ConfigurationError, match="--username does not apply to"):
        load_config(path, env={}, arguments={"credentials.username": Setting("u", "--username")})


def test_a_secret_never_appears_in_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nclient_id = "c"\npassword = 12345678\n')
    with pytest.raises(ConfigurationError) as info:
        load_credentials(path, env={})
    assert "password in" in str(info.value) and "12345678" not in str(info.value)


def test_port_settings_read_the_bridge_table_and_check_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nport = "/dev/file"\napn = "ignored here"\n')
    settings = load_port_settings(
        path, env={"ATBRIDGE_LINE_ENDING": "cr"}, arguments={"baudrate": Setting(9600, "--baud")}
    )
    assert settings == PortSettings(port="/dev/file", baudrate=9600, line_ending="cr")
    assert settings.line_ending_text == "\r"
    assert PortSettings(port="p").line_ending_text == "\r\n"
    with pytest.raises(ConfigurationError, match="no modem port"):
        load_port_settings(None, env={})
    with pytest.raises(ConfigurationError, match=r"\[bridge\] aqn in .* is not a known field"):
        load_port_settings(write(tmp_path, '[bridge]\nport = "p"\naqn = "x"\n'), env={})


def test_the_transcript_must_be_writable(tmp_path: Path) -> None:
    arguments = {"transcript": Setting(str(tmp_path / "no" / "x.log"), "--transcript")}
    with pytest.raises(ConfigurationError, match=r"from --transcript.*does not exist"):
        load_config(None, env={}, credentials=CREDS, port="p", arguments=arguments)
    arguments = {"transcript": Setting(str(tmp_path), "--transcript")}
    with pytest.raises(ConfigurationError, match="it is a directory"):
        load_config(None, env={}, credentials=CREDS, port="p", arguments=arguments)
    good = str(tmp_path / "x.log")
    config = load_config(None, env={}, credentials=CREDS, port="p", transcript=good)
    assert config.transcript == good


def test_bridge_config_built_directly_is_validated_too() -> None:
    with pytest.raises(ConfigurationError, match="baudrate='115200' must be a whole number"):
        BridgeConfig(port="p", credentials=CREDS, baudrate="115200")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a baud rate"):
        BridgeConfig(port="p", credentials=CREDS, baudrate=0)
    with pytest.raises(ConfigurationError, match="line_ending='crlf\\\\r' must be one of"):
        BridgeConfig(port="p", credentials=CREDS, line_ending="crlf\r")  # type: ignore[arg-type]
    assert BridgeConfig(port="p", credentials=CREDS, backoff_max=200).backoff_max == 200.0


def test_the_readme_lists_every_key_and_variable() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    for table in TABLES.values():
        assert f"`[{table.name}]`" in section
        for key in table.keys:
            assert f"`{key}`" in section, key
            assert f"`{table.variable(key)}`" in section, table.variable(key)


# -- issue 12, defect 8: every field in its real range, from every source --------------------

ROOT = Path(__file__).resolve().parent.parent
BROKER = '[mqtt]\nhost = "h"\nclient_id = "c"\n'
MQTT_ENV = {"ATBRIDGE_MQTT_HOST": "h", "ATBRIDGE_MQTT_CLIENT_ID": "c"}


def load_from(tmp_path: Path, bridge: str = "", timeouts: str = "", **env: str) -> BridgeConfig:
    text = f'[bridge]\nport = "/dev/x"\n{bridge}\n[bridge.timeouts]\n{timeouts}\n{BROKER}'
    return load_config(write(tmp_path, text), env=env)


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_bytes(b'[mqtt]\nhost = "h"\nclient_id = "c"\npassword = "\xff\xfe"\n')
    with pytest.raises(ConfigurationError, match=r"creds.toml is not UTF-8 text \(byte \d+"):
        load_credentials(path, env={})
    with pytest.raises(ConfigurationError, match=r"credentials file .* is not UTF-8"):
        load_config(env={"ATBRIDGE_PORT": "/dev/x"}, credentials_path=path)
    with pytest.raises(ConfigurationError, match=r"config file .* is not UTF-8"):
        load_config(path, env={})


def test_a_secret_from_the_environment_that_is_not_utf8_is_refused_unseen() -> None:
    secret = b"s3cr\xffet".decode("utf-8", "surrogateescape")  # how Python hands it over
    env = {"ATBRIDGE_MQTT_HOST": "h", "ATBRIDGE_MQTT_CLIENT_ID": "c"}
    with pytest.raises(ConfigurationError) as raised:
        load_credentials(table="mqtt", env={**env, "ATBRIDGE_MQTT_PASSWORD": secret})
    assert "$ATBRIDGE_MQTT_PASSWORD is not UTF-8 text" in str(raised.value)
    assert "s3cr" not in str(raised.value)
    with pytest.raises(ConfigurationError, match=r"\$ATBRIDGE_MQTT_CLIENT_ID is not UTF-8"):
        load_credentials(table="mqtt", env={**env, "ATBRIDGE_MQTT_CLIENT_ID": secret})


@pytest.mark.parametrize("given", ["credentials file", "environment secret"])
def test_the_cli_exits_2_on_text_that_is_not_utf8(tmp_path: Path, given: str) -> None:
    env = {k: v for k, v in os.environb.items() if not k.startswith(b"ATBRIDGE_")}
    args = [sys.executable, "-m", "atbridge", "publish", "--port", "/dev/null", "--topic", "t"]
    if given == "credentials file":
        path = tmp_path / "creds.toml"
        path.write_bytes(b'[mqtt]\nhost = "h"\nclient_id = "c"\npassword = "\xff"\n')
        args += ["--credentials", str(path)]
    else:
        env[b"ATBRIDGE_MQTT_PASSWORD"] = b"s3cr\xffet"
        args += ["--broker", "127.0.0.1:1", "--client-id", "c"]
    done = subprocess.run(
        [*args, "-m", "x"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 2, done.stderr
    assert "not UTF-8 text" in done.stderr and "Traceback" not in done.stderr
    assert "s3cr" not in done.stderr


SECONDS = ["backoff_initial", "backoff_max", "give_up_after", "ping_grace", "healthy_after"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", SECONDS + [f"timeouts.{t.name}" for t in fields(Timeouts)])
def test_seconds_must_be_finite_from_the_file_and_the_environment(
    tmp_path: Path, key: str, value: str
) -> None:
    table, _, name = key.rpartition(".")
    line = f"{name} = {value}"
    with pytest.raises(ConfigurationError, match=rf"{name}={value}.* in .*atbridge.toml"):
        if table:
            load_from(tmp_path, timeouts=line)
        else:
            load_from(tmp_path, bridge=line)
    variable = f"ATBRIDGE_TIMEOUT_{name.upper()}" if table else f"ATBRIDGE_{name.upper()}"
    with pytest.raises(ConfigurationError, match=rf"\${variable} is not a number"):
        load_from(tmp_path, **{variable: value})


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "2.5"])
def test_a_count_that_is_not_a_whole_number_is_a_clear_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"queue_size=.* is not a whole number"):
        load_from(tmp_path, bridge=f"queue_size = {value}")
    with pytest.raises(ConfigurationError, match=r"\$ATBRIDGE_QUEUE_SIZE is not a whole number"):
        load_from(tmp_path, ATBRIDGE_QUEUE_SIZE=value)


COUNTS = {
    "queue_size": (1, 65535),
    "max_inflight": (1, 65535),
    "receive_queue": (1, 1_000_000),
    "poison_after": (1, 1000),
    "socket_failures_before_reattach": (1, 1000),
    "attach_failures_before_restart": (0, 1000),
}


@pytest.mark.parametrize("key", sorted(COUNTS))
def test_every_count_is_checked_for_its_real_range_with_its_source(
    tmp_path: Path, key: str
) -> None:
    low, high = COUNTS[key]
    assert getattr(load_from(tmp_path, bridge=f"{key} = {low}"), key) == low
    assert getattr(load_from(tmp_path, bridge=f"{key} = {high}"), key) == high
    for wrong in (low - 1, high + 1, -(10**30)):
        with pytest.raises(ConfigurationError, match=rf"{key}={wrong} must be .*atbridge.toml"):
            load_from(tmp_path, bridge=f"{key} = {wrong}")
    variable = f"ATBRIDGE_{key.upper()}"
    with pytest.raises(ConfigurationError, match=rf"{key}=-1 must be .*\${variable}"):
        load_from(tmp_path, **{variable: "-1"})
    with pytest.raises(ConfigurationError, match=rf"{key}={high + 1} must be .*--option"):
        load_config(
            write(tmp_path, f'[bridge]\nport = "/dev/x"\n{BROKER}'),
            env={},
            arguments={key: Setting(high + 1, "--option")},
        )


@pytest.mark.parametrize("key", ["give_up_after", "ping_grace", "healthy_after"])
def test_seconds_must_be_positive(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{key}=-1.0 must be more than 0 .*toml"):
        load_from(tmp_path, bridge=f"{key} = -1")


def test_fields_built_directly_refuse_non_finite_numbers_too() -> None:
    for key in SECONDS:
        with pytest.raises(ConfigurationError, match=f"{key}=nan must be a number"):
            BridgeConfig(port="p", credentials=CREDS, **{key: float("nan")})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="probe=inf must be a number"):
        Timeouts(probe=float("inf"))
    with pytest.raises(ConfigurationError, match="queue_size=inf must be a whole number"):
        BridgeConfig(port="p", credentials=CREDS, queue_size=float("inf"))  # type: ignore[arg-type]


@pytest.mark.parametrize("topic", ["", "up/+", "up/\x01"])
def test_a_will_topic_that_cannot_be_published_to_is_a_configuration_error(
    tmp_path: Path, topic: str
) -> None:
    """Found by tests/test_fuzz_mqtt.py: it raised LocalProtocolError, not naming its source."""
    with pytest.raises(ConfigurationError, match=r"will_topic=.* \$ATBRIDGE_WILL_TOPIC"):
        load_from(tmp_path, ATBRIDGE_WILL_TOPIC=topic)


def test_max_publish_size_is_a_packet_size_or_none(tmp_path: Path) -> None:
    assert load_from(tmp_path).max_publish_size is None
    assert load_from(tmp_path, bridge="max_publish_size = 5").max_publish_size == 5
    assert load_from(tmp_path, ATBRIDGE_MAX_PUBLISH_SIZE="268435460").max_publish_size
    for wrong in ("4", "268435461", "-1"):
        with pytest.raises(ConfigurationError, match=r"max_publish_size=.*MAX_PUBLISH_SIZE"):
            load_from(tmp_path, ATBRIDGE_MAX_PUBLISH_SIZE=wrong)


@pytest.mark.parametrize(
    ("file_value", "env", "expected"),
    [
        ("NRF91-SLM", {}, "nrf91-slm"),
        ("nrf91_slm", {}, "nrf91-slm"),
        ("Auto", {}, "auto"),
        ("auto", {"ATBRIDGE_DIALECT": "SIM7080"}, "sim7080"),
        ("auto", {"ATBRIDGE_DIALECT": " Nrf91-Slm "}, "nrf91-slm"),
    ],
)
def test_a_dialect_in_any_case_names_its_family(
    tmp_path: Path, file_value: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, f'[bridge]\nport = "p"\ndialect = "{file_value}"\n')
    config = load_config(path, env=env, credentials=CREDS)
    assert config.dialect == expected


def test_the_dataclass_itself_normalises_the_dialect() -> None:
    assert BridgeConfig(port="p", credentials=CREDS, dialect="SIM7080").dialect == "sim7080"
    assert BridgeConfig(port="p", credentials=CREDS, dialect="AUTO").dialect == "auto"


def test_a_dialect_that_names_no_family_lists_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nport = "p"\n')
    with pytest.raises(ConfigurationError) as info:
        load_config(path, env={"ATBRIDGE_DIALECT": "NRF52"}, credentials=CREDS)
    assert "dialect='NRF52'" in str(info.value) and "$ATBRIDGE_DIALECT" in str(info.value)
    assert info.value.hint is not None and "nrf91-slm" in info.value.hint


@pytest.mark.parametrize(
    "apn", ['iot"x', "iot\rx", "iot\nx", "a..b", ".iot", "x" * 101, "iot x", "iot\x00"]
)
def test_an_apn_that_is_not_one_is_refused_naming_its_source(apn: str) -> None:
    """Found when the configuration is built, before any port is opened (issue 14)."""
    with pytest.raises(ConfigurationError, match=r"apn=.*TS 23\.003") as refused:
        load_config(env={"ATBRIDGE_APN": apn, "ATBRIDGE_PORT": "/dev/x", **MQTT_ENV})
    assert "$ATBRIDGE_APN" in str(refused.value)


@pytest.mark.parametrize("apn", ["internet", "iot.1nce.net", "m2m_iot.example-op.com", ""])
def test_real_apns_are_accepted(apn: str) -> None:
    config = load_config(env={"ATBRIDGE_APN": apn, "ATBRIDGE_PORT": "/dev/x", **MQTT_ENV})
    assert config.apn == apn
