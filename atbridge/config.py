"""What a bridge is configured with, and the one loader that builds it.

Theory of operation
-------------------
:class:`BridgeConfig` (with its :class:`Timeouts`) is everything the lifecycle
needs; :class:`PortSettings` is the part that opens the serial port (all that
``atbridge at`` and ``atbridge info`` need). Both validate every field when they
are built, whoever builds them.

The loader reads the settings in layers, later layers winning:

1. the dataclass defaults, then a command's own defaults (``defaults=``);
2. a TOML file: ``[bridge]`` (the fields of :class:`BridgeConfig`),
   ``[bridge.timeouts]`` (those of :class:`Timeouts`), and one credentials
   table, ``[mqtt]`` (:class:`~atbridge.credentials.PlainBroker`) or
   ``[aliyun]`` (:class:`~atbridge.credentials.AliyunDevice`);
3. the environment: ``ATBRIDGE_<FIELD>`` for ``[bridge]``,
   ``ATBRIDGE_TIMEOUT_<FIELD>``, ``ATBRIDGE_MQTT_<FIELD>``,
   ``ATBRIDGE_ALIYUN_<FIELD>`` (the Aliyun triple as ``ATBRIDGE_PRODUCT_KEY``,
   ``ATBRIDGE_DEVICE_NAME``, ``ATBRIDGE_DEVICE_SECRET``) — :func:`env_variable`;
4. the arguments (the command-line options), each a :class:`Setting` that
   names its option.

Nothing about a key is written twice: the keys of a table, their types and
their variables come from the fields and type hints of its dataclass
(:data:`TABLES`), and one converter (:func:`convert`) turns TOML values and
environment text into those types. Every value remembers where it came from,
so an error names the file, the variable or the option (``[bridge]
baudrate='fast' in /etc/atbridge.toml``, ``$ATBRIDGE_BAUDRATE``, ``--baud``);
an unknown key is an error that lists the known ones.

Which credentials table applies: ``[mqtt]`` when an argument sets a broker
(``mqtt.host``: ``--broker``); else the one table of the credentials file;
else the one table of the configuration file; else ``$ATBRIDGE_MQTT_HOST``
means ``[mqtt]`` and ``$ATBRIDGE_PRODUCT_KEY`` ``[aliyun]``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from atbridge.credentials import AliyunDevice, MqttCredentials, PlainBroker, Secret
from atbridge.errors import ConfigurationError, LocalProtocolError

#: ``line_ending`` names and the bytes they stand for.
LINE_ENDINGS: Mapping[str, str] = {"crlf": "\r\n", "cr": "\r", "lf": "\n"}
#: Baud rates a serial port can be asked for (pyserial passes the number to the OS).
BAUD_RANGE = (50, 16_000_000)


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
        _check_types(self)
        for item in fields(self):
            value = getattr(self, item.name)
            if value <= 0:
                raise ConfigurationError(
                    f"timeout {item.name}={value!r} must be a positive number of seconds",
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
class PortSettings:
    """How to open the modem's port: the ``[bridge]`` fields of the serial side.

    ``line_ending`` ``None`` means found on the first sync (CR, CR LF or LF).
    """

    port: str
    baudrate: int = 115200
    rtscts: bool = False
    line_ending: Literal["crlf", "cr", "lf"] | None = None
    transcript: str | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.port:
            raise ConfigurationError(
                "no port given", hint="pass --port /dev/ttyACM0 or socket://h:p"
            )
        low, high = BAUD_RANGE
        if not low <= self.baudrate <= high:
            raise ConfigurationError(
                f"baudrate={self.baudrate} is not a baud rate: use {low}..{high}",
                hint="most modems run at 115200; nRF91 kits also at 1000000",
            )

    @property
    def line_ending_text(self) -> str:
        """The characters that end a command line (``\\r\\n`` when the dialect decides)."""
        return LINE_ENDINGS[self.line_ending or "crlf"]

    @property
    def line_ending_bytes(self) -> bytes | None:
        """The line ending the user set, as bytes; ``None``: detect it on the first sync."""
        return LINE_ENDINGS[self.line_ending].encode("ascii") if self.line_ending else None


#: The smallest PUBLISH (a 2-byte fixed header, a 1-byte topic) and the largest MQTT
#: packet (a 5-byte fixed header, then a Remaining Length of 268,435,455).
_SMALLEST_PUBLISH = 5
_LARGEST_PACKET = 268_435_460
#: The real range of every count of :class:`BridgeConfig` (inclusive).
_COUNT_RANGES: Mapping[str, tuple[int, int]] = {
    # Every QoS 1/2 message waiting holds a packet identifier, and there are 65,535.
    "queue_size": (1, 0xFFFF),
    "max_inflight": (1, 0xFFFF),
    "receive_queue": (1, 1_000_000),
    "poison_after": (1, 1000),
    "socket_failures_before_reattach": (1, 1000),
    "attach_failures_before_restart": (0, 1000),
}
_COUNT_HINTS: Mapping[str, str] = {
    "queue_size": "each waiting QoS 1 message holds one of MQTT's 65,535 packet identifiers",
    "max_inflight": "MQTT's Receive Maximum is at most 65,535",
}


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the lifecycle needs, validated when it is built."""

    port: str
    credentials: MqttCredentials
    dialect: str = "auto"
    apn: str | None = None
    baudrate: int = 115200
    rtscts: bool = False
    line_ending: Literal["crlf", "cr", "lf"] | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    backoff_initial: float = 1.0
    backoff_max: float = 120.0
    socket_failures_before_reattach: int = 3
    attach_failures_before_restart: int = 2
    give_up_after: float | None = None
    #: False: a connection to the broker that fails to open (refused, unknown host) before
    #: the bridge was ever online stops it at once (publish and subscribe: a one-shot
    #: command should say so, not retry until give_up_after); True (run, the API): retry.
    retry_unreachable_broker: bool = True
    queue_size: int = 1000
    queue_full: Literal["raise", "wait"] = "raise"
    qos0_offline: Literal["raise", "drop"] = "raise"
    max_inflight: int = 10
    ping_grace: float | None = None
    #: Received messages kept until the application reads them (see OnlineSession).
    receive_queue: int = 1000
    #: Disconnects in a row right after the same QoS 1/2 message went out before that
    #: message is taken out of the queue as one the broker refuses (PublishRefused).
    poison_after: int = 3
    #: Seconds a session must stay up (unless a PUBACK, SUBACK or PINGRESP proves it
    #: sooner) before it counts as good: the backoff resets, give_up_after restarts.
    healthy_after: float = 30.0
    #: The largest PUBLISH packet (bytes, fixed header included) the broker takes, for
    #: brokers that cannot say so (MQTT 3.1.1; mosquitto's max_packet_size). None: the
    #: MQTT limit, or the broker's Maximum Packet Size (5.0). Larger is refused at publish.
    max_publish_size: int | None = None
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
        if not isinstance(self.credentials, MqttCredentials):
            raise ConfigurationError(
                "credentials must be an MqttCredentials",
                hint="use MqttCredentials.plain(...) or AliyunDevice(...).credentials()",
            )
        if not isinstance(self.timeouts, Timeouts):
            raise ConfigurationError("timeouts must be a Timeouts")
        _check_types(self)
        self.port_settings  # noqa: B018 -- validates the port fields
        if self.credentials.host is None:
            raise ConfigurationError(
                "the credentials name no broker host", hint="pass --broker HOST:PORT"
            )
        from atbridge.dialects import DIALECTS, canonical_name  # light: a table of names

        dialect = canonical_name(self.dialect)  # any case, "_" for "-": "NRF91_SLM"
        if dialect is None:
            raise ConfigurationError(
                f"dialect={self.dialect!r} is not a modem family",
                hint=f"use one of: auto, {', '.join(DIALECTS)}",
            )
        object.__setattr__(self, "dialect", dialect)
        if self.apn is not None:
            _check_apn(self.apn)
        for name, (low, high) in _COUNT_RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigurationError(
                    f"{name}={value!r} must be {low}..{high:,}",
                    hint=_COUNT_HINTS.get(name, f"give {name} a whole number in {low}..{high}"),
                )
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ConfigurationError(
                f"backoff {self.backoff_initial}..{self.backoff_max} s is not a valid range"
            )
        if self.max_publish_size is not None and not (
            _SMALLEST_PUBLISH <= self.max_publish_size <= _LARGEST_PACKET
        ):
            raise ConfigurationError(
                f"max_publish_size={self.max_publish_size!r} must be "
                f"{_SMALLEST_PUBLISH}..{_LARGEST_PACKET:,} bytes",
                hint="the broker's packet limit, e.g. mosquitto's max_packet_size",
            )
        for name in ("give_up_after", "ping_grace", "healthy_after"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name}={value!r} must be more than 0 seconds")
        if self.will_qos not in (0, 1, 2):
            raise ConfigurationError(f"will_qos={self.will_qos!r} must be 0, 1 or 2")
        if self.will_topic is None and (self.will_message or self.will_qos or self.will_retain):
            raise ConfigurationError(
                "a Will message, QoS or retain flag was given without a Will topic",
                hint="pass --will-topic TOPIC as well",
            )
        if self.will_topic is not None:
            from atbridge.at_mqtt import validate_topic_name

            try:
                validate_topic_name(self.will_topic)
            except LocalProtocolError as error:
                raise ConfigurationError(
                    f"will_topic={self.will_topic!r} cannot be published to: {error.message}",
                    hint="give the Will a topic of printable characters, without + or #",
                ) from None
        if self.session_expiry is not None:
            if self.mqtt_version != "5":
                raise ConfigurationError(
                    "session_expiry needs MQTT 5.0", hint="pass --mqtt-version 5 as well"
                )
            if not 0 <= self.session_expiry <= 0xFFFFFFFF:
                raise ConfigurationError(
                    f"session_expiry={self.session_expiry!r} must be 0..4294967295 seconds"
                )

    @property
    def port_settings(self) -> PortSettings:
        """The serial-side fields as :class:`PortSettings`."""
        return PortSettings(
            port=self.port,
            baudrate=self.baudrate,
            rtscts=self.rtscts,
            line_ending=self.line_ending,
            transcript=self.transcript,
        )


# -- one converter, driven by type hints ------------------------------------------------


class Unconvertible(ValueError):
    """A value that is not of the field's type; ``kind`` says what it should be."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


#: An APN's network identifier (3GPP TS 23.003 §9.1): labels separated by dots, at most 100
#: octets (63 a label). The spec's labels are letters, digits and hyphens; underscores are
#: accepted too (some operators' APNs have them, and modems take them). None of these can
#: break the quoted AT+CGDCONT parameter (no quote, no line ending, no control character).
_APN = re.compile(r"(?!.{101})[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*")


def _check_apn(apn: str) -> None:
    """An APN as TS 23.003 §9.1 spells it, or a ConfigurationError saying what is wrong."""
    if apn == "" or _APN.fullmatch(apn):
        return
    bad = next((c for c in apn if c in '"\r\n' or not c.isprintable()), None)
    what = f"it contains {bad!r}" if bad is not None else "it is not an APN"
    raise ConfigurationError(
        f"apn={apn!r}: {what} (an APN is labels of letters, digits, hyphens (and underscores) "
        "separated by dots, at most 100 characters: 3GPP TS 23.003 §9.1)",
        hint="give the APN your operator documents, e.g. iot.1nce.net",
    )


def convert(hint: Any, value: object, *, text: bool = False) -> object:
    """``value`` as the type ``hint`` names, or :class:`Unconvertible`.

    Handles ``str``, ``int``, ``float``, ``bool``, ``Literal[...]``, enums,
    :class:`~atbridge.credentials.Secret` and ``X | None``. ``text`` values (from
    the environment or the command line) are parsed; others must already have
    the type (a TOML integer is accepted for a string or a float field).
    """
    if get_origin(hint) in (Union, types.UnionType):
        members = [member for member in get_args(hint) if member is not type(None)]
        if value is None and len(members) < len(get_args(hint)):
            return None
        if Secret in members:
            return convert(Secret, value, text=text)
        (hint,) = members
    if isinstance(value, str) and not _is_utf8(value):
        # From the environment or the command line: bytes that were not UTF-8
        # (Python keeps them as lone surrogates), which no MQTT string can carry.
        raise Unconvertible("UTF-8 text")
    if isinstance(value, str) and text and hint is not Secret:
        value = value.strip()
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value in choices:
            return value
        raise Unconvertible("one of " + ", ".join(repr(choice) for choice in choices))
    if hint is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value)
        raise Unconvertible("a string")
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value.lower() if isinstance(value, str) else value)
        except ValueError:
            raise Unconvertible(
                "one of " + ", ".join(repr(member.value) for member in hint)
            ) from None
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise Unconvertible("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise Unconvertible("a whole number")
    if hint is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif text and isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None or not math.isfinite(number):
            raise Unconvertible("a number")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # timestamp = 789
        raise Unconvertible("a string")
    raise TypeError(f"no conversion to {hint!r}")  # a field type this loader does not know


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in get_args(hint)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass (computed once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _check_types(instance: Any) -> None:
    """Check (and normalise: 1 -> 1.0) every plain-typed field of a frozen dataclass."""
    hints = _hints(type(instance))
    for item in fields(instance):
        value = getattr(instance, item.name)
        try:
            converted = convert(hints[item.name], value)
        except TypeError:
            continue  # a structured field (credentials, timeouts): checked by its owner
        except Unconvertible as wrong:
            shown = "" if _is_secret(hints[item.name]) else f"={value!r}"
            raise ConfigurationError(f"{item.name}{shown} must be {wrong.kind}") from None
        if converted is not value:
            object.__setattr__(instance, item.name, converted)


# -- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One TOML table: the dataclass whose fields are its keys, and their variables."""

    name: str
    target: type
    prefix: str
    #: Fields of ``target`` that are not keys of the table.
    skip: frozenset[str] = frozenset()
    #: Variables that do not follow ``prefix + FIELD``.
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> dict[str, Any]:
        """Key -> type hint, in the dataclass's order."""
        hints = _hints(self.target)
        return {f.name: hints[f.name] for f in fields(self.target) if f.name not in self.skip}

    def required(self) -> list[str]:
        """The keys without a default."""
        return [
            f.name
            for f in fields(self.target)
            if f.name not in self.skip and f.default is MISSING and f.default_factory is MISSING
        ]

    def variable(self, key: str) -> str:
        """The environment variable of ``key``."""
        return self.variables.get(key, self.prefix + key.upper())


BRIDGE = Table("bridge", BridgeConfig, "ATBRIDGE_", skip=frozenset({"credentials", "timeouts"}))
TIMEOUTS = Table("bridge.timeouts", Timeouts, "ATBRIDGE_TIMEOUT_")
MQTT = Table("mqtt", PlainBroker, "ATBRIDGE_MQTT_")
ALIYUN = Table(
    "aliyun",
    AliyunDevice,
    "ATBRIDGE_ALIYUN_",
    variables={
        "product_key": "ATBRIDGE_PRODUCT_KEY",
        "device_name": "ATBRIDGE_DEVICE_NAME",
        "device_secret": "ATBRIDGE_DEVICE_SECRET",
    },
)
#: Every table a configuration file may hold, by name.
TABLES: Mapping[str, Table] = {t.name: t for t in (BRIDGE, TIMEOUTS, MQTT, ALIYUN)}
CREDENTIAL_TABLES = ("mqtt", "aliyun")


def env_variable(table: str, key: str) -> str:
    """The environment variable that sets ``[table] key`` (``mqtt``, ``password``...)."""
    return TABLES[table].variable(key)


@dataclass(frozen=True)
class Setting:
    """A value and where it came from: a file, ``$VARIABLE`` or ``--option``.

    ``text`` values are parsed (environment variables, untyped options).
    """

    value: object
    origin: str
    text: bool = False


def _read_toml(path: str | Path, what: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(
            f"cannot read the {what} {path}: it does not exist",
            hint=f"check the path given to --{what.split()[0]}",
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (tomllib decodes before parsing)
        raise ConfigurationError(
            f"the {what} {path} is not UTF-8 text "
            f"(byte {exc.start} is 0x{exc.object[exc.start]:02X})",
            hint="save it as UTF-8 (TOML files are UTF-8)",
        ) from None


def _check_known(document: Mapping[str, Any], where: str, known: Iterable[str]) -> None:
    names = list(known)
    for name, value in document.items():
        if name not in names:
            raise ConfigurationError(
                f"[{name}] in {where} is not a known table",
                hint=f"known tables: {', '.join(f'[{n}]' for n in names)}",
            )
        if not isinstance(value, dict):
            raise ConfigurationError(f"{name} in {where} must be a table ([{name}])")


def _gather(
    table: Table,
    document: Mapping[str, Any],
    where: str,
    env: Mapping[str, str],
    arguments: Mapping[str, Setting],
    defaults: Mapping[str, object],
) -> dict[str, Setting]:
    """The settings of ``table``, layer over layer (see the module doc)."""
    keys = table.keys
    known = f"known keys of [{table.name}]: {', '.join(keys)}"
    settings = {key: Setting(value, "the defaults") for key, value in defaults.items()}
    for key, value in document.items():
        if key not in keys:
            raise ConfigurationError(
                f"[{table.name}] {key} in {where} is not a known field", hint=known
            )
        settings[key] = Setting(value, where)
    for key in keys:
        variable = table.variable(key)
        if variable in env:
            settings[key] = Setting(env[variable], f"${variable}", text=True)
    for key, setting in arguments.items():
        if key not in keys:
            raise ConfigurationError(
                f"{setting.origin} does not apply to [{table.name}]", hint=known
            )
        settings[key] = setting
    return settings


def _convert_all(table: Table, settings: Mapping[str, Setting]) -> dict[str, object]:
    keys = table.keys
    values: dict[str, object] = {}
    for key, setting in settings.items():
        try:
            values[key] = convert(keys[key], setting.value, text=setting.text)
        except Unconvertible as wrong:
            shown = "" if _is_secret(keys[key]) else f"={setting.value!r}"
            raise ConfigurationError(
                f"[{table.name}] {key}{shown} in {setting.origin} is not {wrong.kind}",
                hint=_how_to_fix(key, setting.origin, wrong.kind),
            ) from None
    return values


def _how_to_fix(key: str, origin: str, kind: str) -> str:
    if origin.startswith("--"):
        return f"give {origin} {kind}"
    if origin.startswith("$"):
        return f"set {origin} to {kind}"
    return f"set {key} in {origin} to {kind}"


def _build(
    table: Table,
    settings: Mapping[str, Setting],
    looked_in: str,
    missing: Mapping[str, ConfigurationError] | None = None,
    **extra: object,
) -> Any:
    """``table.target(**values, **extra)``; its errors name where the culprit came from."""
    values = _convert_all(table, settings)
    for key in table.required():
        if key not in values:
            if missing and key in missing:
                raise missing[key]
            raise ConfigurationError(
                f"[{table.name}] {key} is missing "
                f"(looked in {looked_in} and ${table.variable(key)})"
            )
    try:
        return table.target(**values, **extra)
    except ConfigurationError as error:
        raise _blame(error, table, settings) from None


def _blame(error: ConfigurationError, table: Table, settings: Mapping[str, Setting]) -> Exception:
    """``error`` with the origin of the fields it names (or of every given field)."""
    named = [key for key in settings if re.search(rf"\b{re.escape(key)}\b", error.message)]
    origins = {settings[key].origin for key in named or settings}
    origins.discard("the defaults")
    message = error.message
    if not message.startswith("["):
        message = f"[{table.name}] {message}"
    if named:
        where = "; ".join(f"{key} from {settings[key].origin}" for key in named)
    else:
        where = "from " + ", ".join(sorted(origins)) if origins else ""
    if where and all(origin in message for origin in origins):
        where = ""
    return ConfigurationError(f"{message} ({where})" if where else message, hint=error.hint)


# -- the loaders ------------------------------------------------------------------------------


def _split(arguments: Mapping[str, Setting]) -> dict[str, dict[str, Setting]]:
    """``{"baudrate": s, "timeouts.attach": t}`` -> ``{"bridge": ..., "bridge.timeouts": ...}``."""
    split: dict[str, dict[str, Setting]] = {}
    for key, setting in arguments.items():
        table, _, name = key.rpartition(".")
        table = {"": "bridge", "timeouts": "bridge.timeouts"}.get(table, table)
        if table not in (*TABLES, "credentials"):
            raise ConfigurationError(f"unknown setting {key!r}")
        split.setdefault(table, {})[name] = setting
    return split


def _choose_table(
    split: Mapping[str, Mapping[str, Setting]],
    documents: list[tuple[dict[str, Any], str]],
    env: Mapping[str, str],
) -> tuple[str, dict[str, Any], str]:
    """(table, its document table, where it was read) of the credentials: see the module doc."""
    for forced in CREDENTIAL_TABLES:
        if forced in split:
            for document, where in documents:
                if forced in document:
                    return forced, document[forced], where
            return forced, {}, "the arguments"
    for document, where in documents:
        present = [name for name in CREDENTIAL_TABLES if name in document]
        if len(present) > 1:
            raise ConfigurationError(
                f"{where} must contain exactly one [aliyun] or [mqtt] table, it has 2"
            )
        if present:
            return present[0], document[present[0]], where
    if MQTT.variable("host") in env:
        return "mqtt", {}, "the environment"
    if ALIYUN.variable("product_key") in env:
        return "aliyun", {}, "the environment"
    raise ConfigurationError(
        "no broker given",
        hint="pass --broker HOST:PORT or --credentials FILE (or a --config FILE with an "
        "[mqtt] or [aliyun] table), or set $ATBRIDGE_MQTT_HOST",
    )


def _credentials(
    split: Mapping[str, Mapping[str, Setting]],
    documents: list[tuple[dict[str, Any], str]],
    env: Mapping[str, str],
    defaults: Mapping[str, Mapping[str, object]],
) -> MqttCredentials:
    name, document, where = _choose_table(split, documents, env)
    table = TABLES[name]
    arguments = {**split.get("credentials", {}), **split.get(name, {})}
    if name == "aliyun":
        for key in ("username", "password"):
            if key in arguments:
                raise ConfigurationError(
                    f"{arguments[key].origin} does not apply to [aliyun] credentials",
                    hint="the user name and the password are derived from the device triple",
                )
    settings = _gather(table, document, where, env, arguments, defaults.get(name, {}))
    device = _build(table, settings, where)
    try:
        credentials: MqttCredentials = device.credentials()
    except ConfigurationError as error:
        raise _blame(error, table, settings) from None
    return credentials


def load_credentials(
    path: str | Path | None = None,
    *,
    table: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    arguments: Mapping[str, Setting] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> MqttCredentials:
    """Credentials from a TOML file, the environment and the arguments, later winning.

    ``table`` is ``"aliyun"`` or ``"mqtt"``; without it the file must hold exactly
    one of those tables. ``env`` defaults to ``os.environ``. ``overrides`` maps
    keys to plain values (``None`` ignored), ``arguments`` to :class:`Setting`
    (naming their option); ``defaults`` lie under the file. Every error names
    the key and where its value came from; no error shows a secret.
    """
    environment = os.environ if env is None else env
    document = _read_toml(path, "credentials file") if path is not None else {}
    where = str(path) if path is not None else "the arguments and environment"
    if table is None:
        present = [name for name in CREDENTIAL_TABLES if name in document]
        if len(present) != 1:
            raise ConfigurationError(
                f"{where} must contain exactly one [aliyun] or [mqtt] table, "
                f"it has {len(present) or 'none'}"
            )
        table = present[0]
    if table not in CREDENTIAL_TABLES:
        raise ConfigurationError(f"unknown credentials table [{table}]: use aliyun or mqtt")
    _check_known(document, where, [*CREDENTIAL_TABLES, "bridge"])
    given = {
        key: Setting(value, "the arguments")
        for key, value in (overrides or {}).items()
        if value is not None
    }
    given.update(arguments or {})
    return _credentials(
        {table: given}, [(document, where)], environment, {table: dict(defaults or {})}
    )


def _check_transcript(setting: Setting | None, path: object) -> None:
    """A transcript must be a file that can be created (or appended to)."""
    if not isinstance(path, str):
        return
    origin = setting.origin if setting is not None else "the arguments"
    target = Path(path)
    folder = target.parent
    reason = None
    if target.is_dir():
        reason = "it is a directory"
    elif not folder.is_dir():
        reason = f"the directory {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        reason = "it is not writable"
    if reason is not None:
        raise ConfigurationError(
            f"cannot write the transcript {path} (from {origin}): {reason}",
            hint="give --transcript a file in an existing, writable directory",
        )


def _bridge_settings(
    path: str | Path | None,
    env: Mapping[str, str],
    split: Mapping[str, Mapping[str, Setting]],
    defaults: Mapping[str, object],
) -> tuple[dict[str, Any], str, dict[str, Setting], dict[str, Setting]]:
    """(the file, its name, the [bridge] settings, the [bridge.timeouts] settings)."""
    document = _read_toml(path, "config file") if path is not None else {}
    where = str(path) if path is not None else "the arguments"
    _check_known(document, where, ["bridge", *CREDENTIAL_TABLES])
    bridge = dict(document.get("bridge", {}))
    timeouts = bridge.pop("timeouts", {})
    if not isinstance(timeouts, dict):
        raise ConfigurationError(f"timeouts in [bridge] of {where} must be a table")
    split_defaults = _split({k: Setting(v, "the defaults") for k, v in defaults.items()})
    plain = {k: s.value for k, s in split_defaults.get("bridge", {}).items()}
    settings = _gather(BRIDGE, bridge, where, env, split.get("bridge", {}), plain)
    timeout_defaults = {k: s.value for k, s in split_defaults.get("bridge.timeouts", {}).items()}
    timeout_settings = _gather(
        TIMEOUTS, timeouts, where, env, split.get("bridge.timeouts", {}), timeout_defaults
    )
    return document, where, settings, timeout_settings


def _no_port(where: str) -> dict[str, ConfigurationError]:
    return {
        "port": ConfigurationError(
            f"no modem port in {where}",
            hint="pass --port, set $ATBRIDGE_PORT, or put port = ... in [bridge]",
        )
    }


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    credentials: MqttCredentials | None = None,
    credentials_path: str | Path | None = None,
    arguments: Mapping[str, Setting] | None = None,
    defaults: Mapping[str, object] | None = None,
    **overrides: object,
) -> BridgeConfig:
    """A :class:`BridgeConfig` from a TOML file, the environment and the arguments.

    ``arguments`` maps keys to :class:`Setting`: ``baudrate`` for ``[bridge]``,
    ``timeouts.attach``, ``mqtt.host``, ``aliyun.region``, and ``credentials.KEY``
    for whichever credentials table applies (``client_id``, ``keepalive``...).
    ``overrides`` are ``[bridge]`` values from "the arguments" (``None`` ignored;
    ``timeouts`` may be a :class:`Timeouts`). ``defaults`` (same keys, plain
    values) lie under the file. ``credentials`` given skips the credentials
    tables; else they come from ``credentials_path`` or ``path`` (module doc).
    """
    environment = os.environ if env is None else env
    given = dict(arguments or {})
    timeouts: Timeouts | None = None
    for key, value in overrides.items():
        if isinstance(value, Timeouts) and key == "timeouts":
            timeouts = value
        elif value is not None:
            given.setdefault(key, Setting(value, "the arguments"))
    split = _split(given)
    document, where, settings, timeout_settings = _bridge_settings(
        path, environment, split, defaults or {}
    )
    values = _convert_all(BRIDGE, settings)
    if timeouts is None:
        timeouts = _build(TIMEOUTS, timeout_settings, where)
    if credentials is None:
        documents = [(document, where)]
        if credentials_path is not None:
            documents.insert(
                0, (_read_toml(credentials_path, "credentials file"), str(credentials_path))
            )
            _check_known(documents[0][0], str(credentials_path), [*CREDENTIAL_TABLES, "bridge"])
        plain_defaults: dict[str, dict[str, object]] = {}
        for key, value in (defaults or {}).items():
            table, _, name = key.rpartition(".")
            if table in CREDENTIAL_TABLES:
                plain_defaults.setdefault(table, {})[name] = value
        credentials = _credentials(split, documents, environment, plain_defaults)
    _check_transcript(settings.get("transcript"), values.get("transcript"))
    config: BridgeConfig = _build(
        BRIDGE,
        settings,
        where,
        _no_port(where),
        credentials=credentials,
        timeouts=timeouts,
    )
    return config


def load_port_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    arguments: Mapping[str, Setting] | None = None,
) -> PortSettings:
    """The :class:`PortSettings` of a file's ``[bridge]`` table, the environment, the arguments.

    The whole ``[bridge]`` table is read and checked (an unknown key is still an
    error); only the port's fields are kept.
    """
    environment = os.environ if env is None else env
    split = _split(dict(arguments or {}))
    _document, where, settings, _timeouts = _bridge_settings(path, environment, split, {})
    values = _convert_all(BRIDGE, settings)
    _check_transcript(settings.get("transcript"), values.get("transcript"))
    port_table = replace(
        BRIDGE,
        target=PortSettings,
        skip=frozenset(),
    )
    kept = {key: setting for key, setting in settings.items() if key in port_table.keys}
    result: PortSettings = _build(port_table, kept, where, _no_port(where))
    return result
