"""MQTT control packets, one frozen dataclass each, and the rules for topic names and filters.

Every control packet of MQTT 3.1.1 and 5.0 is a frozen dataclass (:class:`Connect`,
:class:`ConnAck`, :class:`Publish`, ...) whose ``packet_type`` class attribute names
it; :data:`Packet` is their union. They hold values only: :mod:`atbridge.mqtt.codec`
turns them into bytes and back, and checks them against the spec on the way.

The topic rules (MQTT 3.1.1 §4.7) are here because both directions need them: a topic
the user wants to publish to (:func:`validate_topic_name`) and a topic a broker sent
are checked by the same function, one raising a local error, the other a remote one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from atbridge.errors import LocalProtocolError
from atbridge.mqtt.properties import (
    CONNACK_RETURN_CODES_311,
    NO_PROPERTIES,
    Properties,
    reason_name,
)
from atbridge.mqtt.wire import PacketType, ProtocolVersion, encode_string


@dataclass(frozen=True, slots=True)
class Will:
    """The Will message the broker publishes if the link dies without DISCONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True, repr=False)
class Connect:
    """CONNECT (3.1.1 §3.1, 5.0 §3.1). ``password`` is never shown by ``repr``."""

    packet_type: ClassVar[PacketType] = PacketType.CONNECT
    client_id: str = ""
    clean_session: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1
    properties: Properties = NO_PROPERTIES

    def __repr__(self) -> str:
        password = "None" if self.password is None else "'********'"
        return (
            f"Connect(client_id={self.client_id!r}, clean_session={self.clean_session}, "
            f"keepalive={self.keepalive}, username={self.username!r}, password={password}, "
            f"will={self.will!r}, protocol={self.protocol.name}, properties={self.properties!r})"
        )


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK. ``reason_code`` is the 3.1.1 return code or the 5.0 reason code."""

    packet_type: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class Publish:
    """PUBLISH. ``packet_id`` is set exactly when ``qos`` > 0 [MQTT-2.3.1-1], [MQTT-2.3.1-5].

    Immutable and compared by value like the other packets, which are frozen
    dataclasses; Publish is written out instead, with its fields in slots behind
    read-only properties, because it is built for every message sent and received
    and a frozen dataclass pays a guarded ``object.__setattr__`` per field (the
    largest cost of decoding a PUBLISH). :mod:`atbridge.mqtt.fast` fills the slots
    of a new instance directly. Use :meth:`replace` where a dataclass would use
    :func:`dataclasses.replace`.
    """

    __slots__ = ("_dup", "_packet_id", "_payload", "_properties", "_qos", "_retain", "_topic")
    __match_args__ = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")
    packet_type: ClassVar[PacketType] = PacketType.PUBLISH

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        packet_id: int | None = None,
        properties: Properties = NO_PROPERTIES,
    ) -> None:
        self._topic = topic
        self._payload = payload
        self._qos = qos
        self._retain = retain
        self._dup = dup
        self._packet_id = packet_id
        self._properties = properties

    @property
    def topic(self) -> str:
        """The topic name (empty in MQTT 5.0 when a Topic Alias stands for it)."""
        return self._topic

    @property
    def payload(self) -> bytes:
        """The application message."""
        return self._payload

    @property
    def qos(self) -> int:
        """Quality of service: 0, 1 or 2."""
        return self._qos

    @property
    def retain(self) -> bool:
        """The broker keeps the message for future subscribers."""
        return self._retain

    @property
    def dup(self) -> bool:
        """This is a re-delivery of an earlier attempt (QoS 1 and 2 only)."""
        return self._dup

    @property
    def packet_id(self) -> int | None:
        """The packet identifier (QoS 1 and 2 only)."""
        return self._packet_id

    @property
    def properties(self) -> Properties:
        """MQTT 5.0 properties."""
        return self._properties

    def replace(self, **changes: Any) -> Publish:
        """A copy with some fields changed, like :func:`dataclasses.replace`."""
        return Publish(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__match_args__}

    def _key(self) -> tuple[object, ...]:
        return (
            self._topic,
            self._payload,
            self._qos,
            self._retain,
            self._dup,
            self._packet_id,
            self._properties,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not Publish:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._asdict().items())
        return f"Publish({inner})"


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: the broker (or we) received a QoS 1 PUBLISH."""

    packet_type: ClassVar[PacketType] = PacketType.PUBACK
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first answer to a QoS 2 PUBLISH."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREC
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: the sender of a QoS 2 message releases it."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREL
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: the QoS 2 exchange is complete."""

    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE and its options (the last three are MQTT 5.0 only)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE with one or more filters."""

    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one code per filter: granted QoS 0..2, or a failure (0x80 and up)."""

    packet_type: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE with one or more filters."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK; ``reason_codes`` exist only in MQTT 5.0 (empty in 3.1.1)."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK
    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: keep-alive probe from the client."""

    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the broker's answer to PINGREQ."""

    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT; reason code and properties exist only in MQTT 5.0."""

    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (MQTT 5.0 only): enhanced authentication exchange."""

    packet_type: ClassVar[PacketType] = PacketType.AUTH
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)


def connack_reason(code: int, protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1) -> str:
    """The spec's name for a CONNACK code: 3.1.1 return code or 5.0 reason code."""
    if protocol == ProtocolVersion.MQTT_5_0:
        return reason_name(code, PacketType.CONNACK)
    return CONNACK_RETURN_CODES_311.get(code, f"reserved return code {code}")


# --- validation shared by the encoder (local errors) and decoder (remote errors) ---


def topic_name_problem(topic: str) -> str | None:
    if not topic:
        return "[MQTT-4.7.3-1] a topic name must be at least one character long"
    if "+" in topic or "#" in topic:
        return f"[MQTT-3.3.2-2] a PUBLISH topic must not contain wildcards (+ or #): {topic!r}"
    return None


#: What MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4 say a string SHOULD NOT hold, and mosquitto
#: (``mosquitto_validate_utf8``) refuses by dropping the connection: the control
#: characters U+0001..U+001F and U+007F..U+009F, and the non-characters U+FDD0..U+FDEF
#: and U+nFFFE / U+nFFFF of every plane.
_REFUSED_CODE_POINTS = re.compile(
    "[\x01-\x1f\x7f-\x9f\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def refused_code_point_problem(text: str, what: str) -> str | None:
    """Why a broker would drop the connection over ``text`` (a control or non-character)."""
    found = _REFUSED_CODE_POINTS.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a control character" if code < 0xA0 else "a Unicode non-character"
    return (
        f"(MQTT 3.1.1 §1.5.3) {what} contains {kind}, U+{code:04X} at index {found.start()}: "
        "brokers such as mosquitto close the connection over it"
    )


def publish_topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or ``None``: :func:`topic_name_problem`,
    then what brokers refuse (:func:`refused_code_point_problem`)."""
    return topic_name_problem(topic) or refused_code_point_problem(topic, "the topic name")


def topic_filter_problem(topic_filter: str) -> str | None:
    if not topic_filter:
        return "[MQTT-4.7.3-1] a topic filter must be at least one character long"
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return (
                "[MQTT-4.7.1-2] '#' must be the last level of a topic filter and stand alone "
                f"in it: {topic_filter!r}"
            )
        if "+" in level and level != "+":
            return (
                f"[MQTT-4.7.1-3] '+' must occupy a whole level of a topic filter: {topic_filter!r}"
            )
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a PUBLISH on ``topic`` matches ``topic_filter`` (MQTT 3.1.1 §4.7).

    ``+`` matches one level, a final ``#`` the parent level and every level below
    [MQTT-4.7.1-2]; a filter that starts with a wildcard matches no topic that
    starts with ``$`` [MQTT-4.7.2-1]. A shared subscription
    (``$share/<group>/<filter>``, MQTT 5.0 §4.8.2) matches as its filter.
    """
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)


def validate_topic_name(topic: str) -> None:
    """Raise LocalProtocolError unless ``topic`` can be published to (3.1.1 §4.7, §1.5.3)."""
    problem = publish_topic_problem(topic)
    if problem:
        raise LocalProtocolError(problem)
    encode_string(topic, "topic name")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise LocalProtocolError unless ``topic_filter`` can be subscribed to (3.1.1 §4.7)."""
    problem = topic_filter_problem(topic_filter)
    if problem:
        raise LocalProtocolError(problem)
    encode_string(topic_filter, "topic filter")
