"""Fuzzing the MQTT decoder, the MQTT session and the configuration loaders (issue 12).

The bar is zero unexpected exceptions: whatever bytes a broker sends and whatever a
configuration file or the environment holds, only the documented error classes come
out (:data:`DECODER_ERRORS`, :data:`SESSION_ERRORS`, :data:`LOADER_ERRORS`), and the
decoder's and the session's promises hold (what decodes re-encodes; the session's
receive queue never holds more than its window).

Each target is a plain function of its input (:func:`decode_stream`,
:func:`feed_session`, :func:`load_document`, :func:`load_environment`), so the same
targets run here under hypothesis with a CI budget (a few hundred examples each) and
for minutes in ``bench/fuzz_mqtt.py``, which draws its inputs with :mod:`random` from
the same :data:`CORPUS` of real packets and the same mutations.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atbridge.at_mqtt import (
    MqttSession,
    PacketDecoder,
    Properties,
    PropertyId,
    PropertyValue,
    SessionState,
    decode,
    encode,
)
from atbridge.config import BRIDGE, MQTT, TIMEOUTS, load_config
from atbridge.errors import (
    BrokerRefused,
    ConfigurationError,
    MalformedPacket,
    RemoteProtocolError,
)
from atbridge.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    UnsubAck,
)
from atbridge.mqtt.wire import ProtocolVersion

V3, V5 = ProtocolVersion.MQTT_3_1_1, ProtocolVersion.MQTT_5_0
#: What the stream decoder may raise on any input.
DECODER_ERRORS = MalformedPacket
#: What MqttSession.next_event may raise on any input from a broker.
SESSION_ERRORS: tuple[type[BaseException], ...] = (RemoteProtocolError, BrokerRefused)
#: What the loaders may raise on any file or environment.
LOADER_ERRORS = ConfigurationError
BUDGET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _corpus(protocol: ProtocolVersion) -> list[bytes]:
    values: dict[PropertyId, PropertyValue] = {
        PropertyId.REASON_STRING: "why",
        PropertyId.TOPIC_ALIAS_MAXIMUM: 5,
    }
    props = Properties(values)
    packets = [
        ConnAck(False, 0),
        ConnAck(True, 0),
        ConnAck(False, 5 if protocol == V3 else 0x87),
        Publish("down/a", b"payload", 0, False, False, None),
        Publish("down/b", b"x" * 300, 1, True, False, 7),
        Publish("down/c", b"", 2, False, True, 9),
        PubAck(1),
        PubRec(2),
        PubRel(3),
        PubComp(4),
        SubAck(1, (0, 1, 0x80)),
        UnsubAck(2, (0,) if protocol == V5 else ()),
        PingResp(),
    ]
    if protocol == V5:
        packets += [
            ConnAck(False, 0, props),
            Publish("down/d", b"p", 1, False, False, 11, Properties({PropertyId.TOPIC_ALIAS: 1})),
            Publish("", b"q", 0, False, False, None, Properties({PropertyId.TOPIC_ALIAS: 1})),
            Disconnect(0x8E, Properties({PropertyId.REASON_STRING: "taken over"})),
            Auth(0x18),
        ]
    return [encode(packet, protocol) for packet in packets]  # type: ignore[arg-type]


#: Real broker-to-client frames, per protocol: the seeds of every mutation.
CORPUS: dict[ProtocolVersion, list[bytes]] = {p: _corpus(p) for p in (V3, V5)}


def mutate(data: bytes, edits: Sequence[tuple[int, int, int]]) -> bytes:
    """``data`` with each ``(kind, position, value)`` edit: flip, insert, delete, truncate."""
    out = bytearray(data)
    for kind, position, value in edits:
        where = position % (len(out) + 1)
        if kind == 0 and out:
            out[where % len(out)] ^= 1 << (value % 8)
        elif kind == 1:
            out.insert(where, value & 0xFF)
        elif kind == 2 and out:
            del out[where % len(out)]
        elif kind == 3:
            del out[where:]
        else:
            out[where:where] = bytes([value & 0xFF]) * (value % 5)
    return bytes(out)


def chunks(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` split at ``cuts`` (any numbers; taken modulo the length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# -- the targets -----------------------------------------------------------------------------


def decode_stream(data: bytes, cuts: Sequence[int], protocol: ProtocolVersion) -> int:
    """Feed ``data`` to a PacketDecoder in chunks; every packet re-encodes and decodes the
    same, and only DECODER_ERRORS come out. Returns the packets decoded."""
    decoder = PacketDecoder(protocol, max_packet_size=4096)
    count = 0
    try:
        for chunk in chunks(data, cuts):
            decoder.receive_data(chunk)
            while (packet := decoder.next_packet()) is not None:
                count += 1
                assert decode(encode(packet, protocol), protocol) == packet
    except DECODER_ERRORS:
        pass
    with contextlib.suppress(DECODER_ERRORS):
        decode(data, protocol)
    return count


def feed_session(
    data: bytes, cuts: Sequence[int], protocol: ProtocolVersion, window: int, connack: bool
) -> int:
    """A session (CONNACK accepted first when ``connack``), with QoS 1 messages in flight
    and a receive window, fed hostile bytes in chunks; releases every delivery. Only
    SESSION_ERRORS come out, and the window holds. Returns the events seen."""
    props = Properties({PropertyId.TOPIC_ALIAS_MAXIMUM: 3}) if protocol == V5 else None
    connect = Connect("fuzz", keepalive=30, protocol=protocol)
    if props is not None:
        connect = Connect("fuzz", keepalive=30, protocol=protocol, properties=props)
    session = MqttSession(connect, receive_window=window, poison_after=2)
    session.publish("up/a", b"1", qos=1)
    session.publish("up/b", b"2", qos=2)
    seen = 0
    for attempt in range(2):
        session.connect()
        session.data_to_send(0.0)
        if connack:
            session.receive_data(encode(ConnAck(attempt == 1), protocol), 0.0)
        for chunk in chunks(data, cuts):
            session.receive_data(chunk, 1.0)
            delivered = 0
            while True:
                try:
                    event = session.next_event()
                except SESSION_ERRORS:
                    continue
                if event is None:
                    if delivered and session.release_message(2.0):
                        delivered -= 1
                        continue
                    break
                seen += 1
                if getattr(event, "qos", 0):
                    delivered += 1
                assert session.receive_window is None or delivered <= session.receive_window
            while delivered:
                session.release_message(2.0)
                delivered -= 1
            session.data_to_send(3.0)
            session.is_link_dead(4.0)
            session.next_ping_due(4.0)
            if session.state == SessionState.CONNECTED:
                session.ping()
        session.connection_lost()
        while True:
            try:
                if session.next_event() is None:
                    break
            except SESSION_ERRORS:
                continue
    return seen


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = "".join(
            c
            if c.isprintable() and c not in '"\\'
            else f"\\u{ord(c):04x}"
            if ord(c) < 0x10000
            else f"\\U{ord(c):08x}"
            for c in value
        )
        return f'"{escaped}"'
    return str(value)


def load_document(
    bridge: dict[str, object], timeouts: dict[str, object], mqtt: dict[str, object]
) -> None:
    """Write the tables as a TOML file and load it: only LOADER_ERRORS may come out."""
    lines = ["[bridge]", *(f"{k} = {_toml_value(v)}" for k, v in bridge.items())]
    lines += ["[bridge.timeouts]", *(f"{k} = {_toml_value(v)}" for k, v in timeouts.items())]
    lines += ["[mqtt]", *(f"{k} = {_toml_value(v)}" for k, v in mqtt.items())]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
        with contextlib.suppress(LOADER_ERRORS):
            load_config(path, env={})


def load_environment(env: dict[str, str]) -> None:
    """Load from the environment alone: only LOADER_ERRORS may come out."""
    with contextlib.suppress(LOADER_ERRORS):
        load_config(env=env)


#: Every key the loader knows, by table, and every environment variable.
KEYS = {
    name: list(table.keys)
    for name, table in (("bridge", BRIDGE), ("timeouts", TIMEOUTS), ("mqtt", MQTT))
}
VARIABLES = sorted(
    {BRIDGE.variable(k) for k in BRIDGE.keys}
    | {TIMEOUTS.variable(k) for k in TIMEOUTS.keys}
    | {MQTT.variable(k) for k in MQTT.keys}
)


# -- hypothesis, a CI budget -----------------------------------------------------------------

protocols = st.sampled_from([V3, V5])
edits = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6
)
cut_lists = st.lists(st.integers(0, 1 << 16), max_size=8)


@st.composite
def hostile_bytes(draw: st.DrawFn, protocol: ProtocolVersion) -> bytes:
    """Random bytes, or real frames (several, concatenated) mutated."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=512))
    frames = draw(st.lists(st.sampled_from(CORPUS[protocol]), min_size=1, max_size=6))
    return mutate(b"".join(frames), draw(edits))


@BUDGET
@given(st.data())
def test_the_stream_decoder_raises_only_malformed_packet(data: st.DataObject) -> None:
    protocol = data.draw(protocols)
    decode_stream(data.draw(hostile_bytes(protocol)), data.draw(cut_lists), protocol)


@BUDGET
@given(st.data())
def test_the_session_fed_hostile_bytes_raises_only_protocol_errors(data: st.DataObject) -> None:
    protocol = data.draw(protocols)
    feed_session(
        data.draw(hostile_bytes(protocol)),
        data.draw(cut_lists),
        protocol,
        data.draw(st.integers(1, 4)),
        data.draw(st.booleans()),
    )


toml_scalars = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["auto", "/dev/x", "crlf", "5", "3.1.1", "raise", "wait", "drop", "h"]),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, object]]:
    return st.dictionaries(st.sampled_from([*keys, "unknown_key"]), toml_values, max_size=6)


@BUDGET
@given(_table(KEYS["bridge"]), _table(KEYS["timeouts"]), _table(KEYS["mqtt"]))
def test_the_loader_raises_only_configuration_errors_on_any_file(
    bridge: dict[str, object], timeouts: dict[str, object], mqtt: dict[str, object]
) -> None:
    load_document({"port": "/dev/x", **bridge}, timeouts, {"host": "h", "client_id": "c", **mqtt})


env_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["nan", "inf", "-1", "0", "1e400", "65536", "true", "5", "\udcff"]),
)


@BUDGET
@given(st.dictionaries(st.sampled_from(VARIABLES), env_text, max_size=8))
def test_the_loader_raises_only_configuration_errors_on_any_environment(
    env: dict[str, str],
) -> None:
    load_environment(
        {
            "ATBRIDGE_PORT": "/dev/x",
            "ATBRIDGE_MQTT_HOST": "h",
            "ATBRIDGE_MQTT_CLIENT_ID": "c",
            **env,
        }
    )


# -- the same inputs drawn with random, for bench/fuzz_mqtt.py ---------------------------------


def random_input(rng: random.Random, target: str) -> Callable[[], object]:
    """One random call of ``target`` (``decoder``, ``session``, ``file``, ``environment``)."""
    protocol = rng.choice([V3, V5])
    if rng.random() < 0.3:
        data = rng.randbytes(rng.randrange(512))
    else:
        frames = b"".join(rng.choice(CORPUS[protocol]) for _ in range(rng.randrange(1, 7)))
        changes = [
            (rng.randrange(5), rng.randrange(1 << 16), rng.randrange(256))
            for _ in range(rng.randrange(7))
        ]
        data = mutate(frames, changes)
    cuts = [rng.randrange(1 << 16) for _ in range(rng.randrange(9))]
    if target == "decoder":
        return lambda: decode_stream(data, cuts, protocol)
    if target == "session":
        window, connack = rng.randrange(1, 5), rng.random() < 0.8
        return lambda: feed_session(data, cuts, protocol, window, connack)

    def value() -> object:
        choice = rng.randrange(6)
        if choice == 0:
            return rng.randrange(-(10**6), 10**6)
        if choice == 1:
            return rng.choice([math.nan, math.inf, -math.inf, rng.uniform(-1e6, 1e6)])
        if choice == 2:
            return rng.random() < 0.5
        if choice == 3:
            return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(8)))
        if choice == 4:
            return rng.choice(["auto", "/dev/x", "crlf", "5", "3.1.1", "raise", "h"])
        return [rng.randrange(10)]

    if target == "file":
        tables = {
            name: {rng.choice(keys): value() for _ in range(rng.randrange(5))}
            for name, keys in KEYS.items()
        }
        return lambda: load_document(
            {"port": "/dev/x", **tables["bridge"]},
            tables["timeouts"],
            {"host": "h", "client_id": "c", **tables["mqtt"]},
        )
    env = {"ATBRIDGE_PORT": "/dev/x", "ATBRIDGE_MQTT_HOST": "h", "ATBRIDGE_MQTT_CLIENT_ID": "c"}
    for _ in range(rng.randrange(6)):
        env[rng.choice(VARIABLES)] = rng.choice(
            ["nan", "inf", "-1", "1e400", "\udcff", str(value())]
        )
    return lambda: load_environment(env)


TARGETS = ("decoder", "session", "file", "environment")
