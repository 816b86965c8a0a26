"""What a bridge is configured with: timeouts, backoff, :class:`BridgeConfig` and its loader."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atbridge.credentials import MqttCredentials
from atbridge.errors import ConfigurationError

# -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """How long each waiting state may take, in seconds (cellular-network defaults)."""

    probe: float = 30.0
    configure: float = 60.0
    attach: float = 600.0
    activate: float = 150.0
    open_socket: float = 160.0
    connack: float = 30.0
    close: float = 10.0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(
                    f"timeout {name}={value!r} must be a positive number of seconds",
                    hint="registration can take minutes: keep attach in the hundreds of seconds",
                )


@dataclass
class Backoff:
    """Exponential backoff with jitter and a cap; ``reset`` after a good session."""

    initial: float = 1.0
    maximum: float = 120.0
    jitter: float = 0.5
    attempt: int = 0
    rng: Callable[[], float] = random.random

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return float(base * (1 - self.jitter * self.rng()))

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the lifecycle needs, validated when it is built."""

    port: str
    credentials: MqttCredentials
    dialect: str = "auto"
    apn: str | None = None
    baudrate: int = 115200
    rtscts: bool = False
    line_ending: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    backoff_initial: float = 1.0
    backoff_max: float = 120.0
    socket_failures_before_reattach: int = 3
    attach_failures_before_restart: int = 2
    give_up_after: float | None = None
    queue_size: int = 1000
    queue_full: Literal["raise", "wait"] = "raise"
    qos0_offline: Literal["raise", "drop"] = "raise"
    max_inflight: int = 10
    ping_grace: float | None = None
    transcript: str | None = None
    #: MQTT protocol of the session: "3.1.1" or "5" (5.0: reason strings, session expiry,
    #: topic aliases for repeated topics, the broker's Receive Maximum honoured).
    mqtt_version: Literal["3.1.1", "5"] = "3.1.1"
    #: The Will: published by the broker when the bridge dies without a DISCONNECT.
    will_topic: str | None = None
    will_message: str = ""
    will_qos: int = 0
    will_retain: bool = False
    #: MQTT 5.0 Session Expiry Interval in seconds (None: the session ends with the connection).
    session_expiry: int | None = None
    #: MQTT 5.0: send repeated topics as topic aliases (as many as the broker allows).
    topic_aliases: bool = True

    def __post_init__(self) -> None:
        if not self.port:
            raise ConfigurationError(
                "no port given", hint="pass --port /dev/ttyACM0 or socket://h:p"
            )
        if not isinstance(self.credentials, MqttCredentials):
            raise ConfigurationError(
                "credentials must be an MqttCredentials",
                hint="use MqttCredentials.plain(...) or AliyunDevice(...).credentials()",
            )
        if self.credentials.host is None:
            raise ConfigurationError(
                "the credentials name no broker host", hint="pass --broker HOST:PORT"
            )
        for name in ("queue_size", "max_inflight", "socket_failures_before_reattach"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}={value!r} must be a whole number >= 1")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ConfigurationError(
                f"backoff {self.backoff_initial}..{self.backoff_max} s is not a valid range"
            )
        if self.queue_full not in ("raise", "wait"):
            raise ConfigurationError(f"queue_full={self.queue_full!r}: use 'raise' or 'wait'")
        if self.qos0_offline not in ("raise", "drop"):
            raise ConfigurationError(f"qos0_offline={self.qos0_offline!r}: use 'raise' or 'drop'")
        if self.mqtt_version not in ("3.1.1", "5"):
            raise ConfigurationError(
                f"mqtt_version={self.mqtt_version!r}: use '3.1.1' or '5'",
                hint="most brokers speak both; Aliyun IoT Platform speaks 3.1.1 and 5",
            )
        if self.will_qos not in (0, 1, 2):
            raise ConfigurationError(f"will_qos={self.will_qos!r} must be 0, 1 or 2")
        if self.will_topic is None and (self.will_message or self.will_qos or self.will_retain):
            raise ConfigurationError(
                "a Will message, QoS or retain flag was given without a Will topic",
                hint="pass --will-topic TOPIC as well",
            )
        if self.session_expiry is not None:
            if self.mqtt_version != "5":
                raise ConfigurationError(
                    "session_expiry needs MQTT 5.0", hint="pass --mqtt-version 5 as well"
                )
            if not 0 <= self.session_expiry <= 0xFFFFFFFF:
                raise ConfigurationError(
                    f"session_expiry={self.session_expiry!r} must be 0..4294967295 seconds"
                )


#: ``[bridge]`` fields, their types, and the environment variable of each.
BRIDGE_FIELDS: dict[str, type] = {
    "port": str,
    "dialect": str,
    "apn": str,
    "baudrate": int,
    "rtscts": bool,
    "line_ending": str,
    "backoff_initial": float,
    "backoff_max": float,
    "socket_failures_before_reattach": int,
    "attach_failures_before_restart": int,
    "give_up_after": float,
    "queue_size": int,
    "queue_full": str,
    "qos0_offline": str,
    "max_inflight": int,
    "ping_grace": float,
    "transcript": str,
    "mqtt_version": str,
    "will_topic": str,
    "will_message": str,
    "will_qos": int,
    "will_retain": bool,
    "session_expiry": int,
    "topic_aliases": bool,
}


def _coerce(name: str, kind: type, value: object, where: str) -> object:
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name}={value!r} in {where} is not a valid {kind.__name__}",
            hint=f"give {name} as a {kind.__name__}",
        ) from None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    credentials: MqttCredentials | None = None,
    **overrides: object,
) -> BridgeConfig:
    """A :class:`BridgeConfig` from a TOML file, the environment and keyword overrides.

    The file holds a ``[bridge]`` table (the fields of :data:`BRIDGE_FIELDS`, and a
    ``[bridge.timeouts]`` table with the fields of :class:`Timeouts`) and the
    credentials' ``[aliyun]`` or ``[mqtt]`` table. Environment variables
    ``ATBRIDGE_<FIELD>`` (``ATBRIDGE_PORT``, ``ATBRIDGE_APN``...) override the
    file; keyword arguments (``None`` ignored) override both. Every error names
    the field and where it came from.
    """
    import os
    import tomllib

    environment = os.environ if env is None else env
    where = str(path) if path is not None else "the arguments"
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"configuration file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from None
    table = document.get("bridge", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"[bridge] in {where} must be a table")
    raw_timeouts = table.pop("timeouts", {})
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in BRIDGE_FIELDS:
            raise ConfigurationError(
                f"[bridge] {key} in {where} is not a known field",
                hint=f"known fields: {', '.join(BRIDGE_FIELDS)}, timeouts",
            )
        values[key] = _coerce(key, BRIDGE_FIELDS[key], value, where)
    for key, kind in BRIDGE_FIELDS.items():
        variable = f"ATBRIDGE_{key.upper()}"
        if variable in environment:
            values[key] = _coerce(key, kind, environment[variable], f"${variable}")
    for key, value in overrides.items():
        if key == "timeouts":
            continue
        if key not in BRIDGE_FIELDS:
            raise ConfigurationError(f"unknown bridge option {key!r}")
        if value is not None:
            values[key] = _coerce(key, BRIDGE_FIELDS[key], value, "the arguments")
    if not isinstance(raw_timeouts, dict):
        raise ConfigurationError(f"[bridge.timeouts] in {where} must be a table")
    timeout_fields = set(Timeouts.__dataclass_fields__)
    for key in raw_timeouts:
        if key not in timeout_fields:
            raise ConfigurationError(
                f"[bridge.timeouts] {key} in {where} is not a known timeout",
                hint=f"known timeouts: {', '.join(sorted(timeout_fields))}",
            )
    timeouts = overrides.get("timeouts")
    if not isinstance(timeouts, Timeouts):
        timeouts = Timeouts(
            **{k: float(_coerce(k, float, v, where)) for k, v in raw_timeouts.items()}  # type: ignore[arg-type]
        )
    if credentials is None:
        from atbridge.credentials import load_credentials

        credentials = load_credentials(path, env=environment)
    if "port" not in values:
        raise ConfigurationError(
            f"no modem port in {where}",
            hint="pass --port, set $ATBRIDGE_PORT, or put port = ... in [bridge]",
        )
    return BridgeConfig(credentials=credentials, timeouts=timeouts, **values)  # type: ignore[arg-type]
