"""MQTT codec throughput: atbridge.at_mqtt against paho-mqtt 2.x's own encoder and decoder.

Both libraries do the same work in the same run, in alternating rounds (within a round
the two sides run back to back, and the side that goes first swaps every round), so
machine noise hits both alike. Each ops/s figure is the median over the rounds of
``time.perf_counter`` timings; each ratio is the median of the per-round ratios
atbridge/paho; encode+decode is the rate of one encode plus one decode,
1 / (t_encode + t_decode), per round. Protocol: MQTT 3.1.1.

Cases
- PUBLISH, QoS 0 and QoS 1 (packet id 0x1234), payloads of 16 B, 256 B and 4 KiB, on
  an Aliyun-style topic.
- CONNECT with client id, user name, password, keep alive and clean session: the
  Aliyun one-device-one-secret credentials (long ``...|securemode=2,...|`` client id,
  HMAC-SHA256 hex password) and a short plain set.

What each side runs
- atbridge encode: ``encode(packet)`` of a prebuilt packet dataclass (topic str -> UTF-8,
  every validation). atbridge decode: ``decode(frame)``, the whole frame, fixed header
  included, into a packet dataclass (topic decoded and validated).
- paho encode: the frame builders of ``paho.mqtt.client.Client`` themselves,
  ``_send_publish(mid, topic, payload, qos)`` and ``_send_connect(keepalive)``, on a
  client configured with the same identity. No network: ``_sock`` is a stub (the
  builders only check it is set) and the instance's ``_packet_queue`` is replaced by a
  function that returns the finished frame, so only paho's frame building is timed
  (not its out-queue, locking and socket write). For PUBLISH, atbridge's ``encode``
  takes the topic as str and validates topic, QoS and payload type; so paho's side
  starts from the same str and does what ``Client.publish()`` does before it calls
  ``_send_publish`` (:func:`paho_publish_frame`: the empty-topic check, UTF-8
  encoding, ``_raise_for_invalid_topic``, the QoS range, ``_encode_payload`` and the
  size check), and nothing after (no mid, message info, lock or queue).
- paho decode: ``paho.mqtt._packet.decode_publish(first_byte, body, protocol)``, the
  parser paho's ``_handle_publish`` calls, on the body as the bytearray ``_packet_read``
  hands it over, and the topic's UTF-8 decoding that ``_handle_publish`` does next
  (:func:`paho_receive`): atbridge's ``decode`` returns the topic as str. paho still
  gets its fixed header parsed for free (the body is sliced off outside the timing;
  ``_packet_read`` reads it a byte at a time from the socket), so the decode ratio is
  a lower bound.
- ``--paho-builders-only`` times paho's two functions alone, without the topic work
  above (the definition before issue 16's 3x target; paho's side then skips work
  atbridge's side does), to compare with older figures.
- CONNECT decode: paho is a client and has no CONNECT parser, so only atbridge's figure
  is shown; the CONNECT ratio is the encode ratio.

Before timing, the benchmark checks that both sides produce identical bytes for every
case and that both decoders return the same fields; it stops if they differ.

Targets: atbridge >= 3x paho on encode + decode for each PUBLISH case (issue 16), and
>= 2x on encode for each CONNECT case. This is a benchmark, not a test: it reports, it
asserts nothing about time. The last line printed is one JSON object with every
figure. Run from the repository root:
``python bench/mqtt_codec.py [--rounds N] [--loop-ms MS] [--paho-builders-only]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from itertools import repeat
from typing import Any

import paho.mqtt.client as paho_client
from paho.mqtt import _packet as paho_packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from atbridge.at_mqtt import Connect, Publish, decode, encode
from atbridge.credentials import AliyunDevice, MqttCredentials, Secret

PUBLISH_TARGET = 3.0
CONNECT_TARGET = 2.0
TOPIC = "/a1X2bEnP82z/sensor-north-0042/user/update"
PACKET_ID = 0x1234
PAYLOAD_SIZES = (16, 256, 4096)
PAHO_V311 = MQTTProtocolVersion.MQTTv311

Op = Callable[[], object]


# --- paho without a network -----------------------------------------------------------


class _StubSocket:
    """Stands in for the broker socket; paho's frame builders only check it is set."""

    def close(self) -> None:
        pass


def _return_frame(
    command: int, packet: bytes | bytearray, mid: int, qos: int, info: object = None
) -> bytes | bytearray:
    """Replaces ``Client._packet_queue``: hands back the frame paho just built."""
    return packet


def paho_client_for(connect: Connect | None = None) -> paho_client.Client:
    """A paho Client with ``connect``'s identity whose frame builders return bytes."""
    if connect is None:
        client = paho_client.Client(CallbackAPIVersion.VERSION2, protocol=paho_client.MQTTv311)
    else:
        client = paho_client.Client(
            CallbackAPIVersion.VERSION2,
            client_id=connect.client_id,
            clean_session=connect.clean_session,
            protocol=paho_client.MQTTv311,
        )
        if connect.username is not None:
            client.username_pw_set(connect.username, connect.password)  # type: ignore[arg-type]
    client._sock = _StubSocket()  # type: ignore[assignment]
    client._packet_queue = _return_frame  # type: ignore[method-assign,assignment]
    return client


def paho_publish_frame(
    client: paho_client.Client, mid: int, topic: str, payload: bytes, qos: int
) -> object:
    """The frame paho builds for ``Client.publish(topic, payload, qos)``: the checks and
    conversions ``publish()`` runs before ``_send_publish`` (paho-mqtt 2.x), then the
    builder; the message id is passed in, as ``_mid_generate`` would hand it over."""
    if client._protocol != paho_client.MQTTv5 and (topic is None or len(topic) == 0):
        raise ValueError("Invalid topic.")
    topic_bytes = topic.encode("utf-8")
    client._raise_for_invalid_topic(topic_bytes)
    if qos < 0 or qos > 2:
        raise ValueError("Invalid QoS level.")
    local_payload = paho_client._encode_payload(payload)
    if len(local_payload) > 268435455:
        raise ValueError("Payload too large.")
    return client._send_publish(mid, topic_bytes, local_payload, qos)


def paho_receive(first: int, body: bytearray) -> paho_packet.PublishPacket:
    """What paho's ``_handle_publish`` makes of a PUBLISH body before its callbacks: the
    parsed packet and the topic decoded from UTF-8 (``print_topic``)."""
    result = paho_packet.decode_publish(first, body, PAHO_V311)
    try:  # noqa: SIM105 (as paho does it: contextlib.suppress would cost paho a call)
        result.topic.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return result


def header_length(frame: bytes) -> int:
    """Bytes of the fixed header (type byte + Remaining Length)."""
    index = 1
    while frame[index] & 0x80:
        index += 1
    return index + 1


# --- cases --------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    frame: bytes
    ops: dict[str, dict[str, Op | None]]  # op -> side -> callable (None: not available)
    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def fail(message: str) -> None:
    raise SystemExit(f"mqtt_codec: {message}")


def publish_case(qos: int, size: int, builders_only: bool) -> Case:
    payload = bytes(i & 0xFF for i in range(size))
    packet = Publish(TOPIC, payload, qos, packet_id=PACKET_ID if qos else None)
    frame = encode(packet)

    name = f"publish qos{qos} {size}B"
    client = paho_client_for()
    mid = PACKET_ID if qos else 0
    paho_encode: Op = partial(paho_publish_frame, client, mid, TOPIC, payload, qos)
    if builders_only:
        paho_encode = partial(client._send_publish, mid, TOPIC.encode(), payload, qos)
    paho_frame = bytes(paho_encode())  # type: ignore[call-overload]
    if paho_frame != frame:
        fail(f"{name}: paho built {paho_frame[:24].hex()}..., atbridge {frame[:24].hex()}...")

    body = bytearray(frame[header_length(frame) :])
    paho_decode: Op = partial(paho_receive, frame[0], body)
    if builders_only:
        paho_decode = partial(paho_packet.decode_publish, frame[0], body, PAHO_V311)
    mine, theirs = decode(frame), paho_decode()
    assert isinstance(theirs, paho_packet.PublishPacket)
    same = (
        isinstance(mine, Publish)
        and mine == packet
        and theirs.topic.decode() == mine.topic
        and theirs.payload == mine.payload
        and (theirs.qos, theirs.retain, theirs.dup) == (mine.qos, mine.retain, mine.dup)
        and theirs.mid == (mine.packet_id or 0)
    )
    if not same:
        fail(f"{name}: the decoders disagree: atbridge {mine!r}, paho {theirs!r}")

    return Case(
        name,
        frame,
        {
            "encode": {"atbridge": partial(encode, packet), "paho": paho_encode},
            "decode": {"atbridge": partial(decode, frame), "paho": paho_decode},
        },
    )


def connect_case(name: str, credentials: MqttCredentials) -> Case:
    packet = credentials.connect_packet(clean_session=True)
    frame = encode(packet)
    client = paho_client_for(packet)
    paho_encode = partial(client._send_connect, packet.keepalive)
    paho_frame = bytes(paho_encode())
    if paho_frame != frame:
        fail(f"{name}: paho built {paho_frame.hex()}, atbridge {frame.hex()}")
    if decode(frame) != packet:
        fail(f"{name}: atbridge does not decode its own CONNECT back")
    return Case(
        f"{name} ({len(frame)}B)",
        frame,
        {
            "encode": {"atbridge": partial(encode, packet), "paho": paho_encode},
            "decode": {"atbridge": partial(decode, frame), "paho": None},
        },
    )


def build_cases(builders_only: bool = False) -> list[Case]:
    cases = [publish_case(qos, size, builders_only) for qos in (0, 1) for size in PAYLOAD_SIZES]
    aliyun = AliyunDevice(
        product_key="a1X2bEnP82z",
        device_name="sensor-north-0042",
        device_secret=Secret("xDjPbA0bJ5XnGr4YqK6v2nHqBm9TtYw3"),
        timestamp="1700000000000",
    ).credentials()
    short = MqttCredentials.plain(client_id="dev-01", username="user", password="secret")
    cases.append(connect_case("connect aliyun", aliyun))
    cases.append(connect_case("connect short", short))
    return cases


# --- timing -----------------------------------------------------------------------


def run(op: Op, count: int) -> float:
    """ops/s of ``count`` calls of ``op``."""
    loop = repeat(None, count)
    start = time.perf_counter()
    for _ in loop:
        op()
    return count / (time.perf_counter() - start)


def calibrate(op: Op, seconds: float) -> int:
    """How many calls of ``op`` take about ``seconds``."""
    count = 64
    while True:
        elapsed = count / run(op, count)
        if elapsed >= 0.01:
            return max(64, int(count * seconds / elapsed))
        count *= 4


def sides(case: Case, op: str) -> list[tuple[str, Op]]:
    return [(side, fn) for side, fn in case.ops[op].items() if fn is not None]


def measure(cases: list[Case], rounds: int, loop_seconds: float) -> None:
    for case in cases:
        for op in case.ops:
            case.rates[op] = {side: [] for side, _ in sides(case, op)}
            case.counts[op] = {side: calibrate(fn, loop_seconds) for side, fn in sides(case, op)}
    for index in range(rounds):
        for case in cases:
            for op in case.ops:
                order = sides(case, op)
                if index % 2:
                    order.reverse()
                for side, fn in order:
                    gc.collect()
                    case.rates[op][side].append(run(fn, case.counts[op][side]))


# --- report -------------------------------------------------------------------------


def summary(per_side: dict[str, list[float]]) -> dict[str, Any]:
    """Median ops/s of each side, and the median of the per-round ratios atbridge/paho.

    Both sides of a round ran back to back, so the paired ratio cancels the slow drifts
    (other processes, CPU clock) that the two medians alone would not.
    """
    mine = per_side["atbridge"]
    theirs = per_side.get("paho")
    entry: dict[str, Any] = {"atbridge": round(statistics.median(mine)), "paho": None}
    entry["ratio"] = None
    if theirs:
        entry["paho"] = round(statistics.median(theirs))
        ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
        entry["ratio"] = round(statistics.median(ratios), 2)
    return entry


def figures(case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {"frame_bytes": len(case.frame)}
    for op, per_side in case.rates.items():
        out[op] = summary(per_side)
    enc, dec = case.rates["encode"], case.rates["decode"]
    if "paho" in dec:
        # encode + decode of one message: per round 1 / (t_encode + t_decode).
        both = {
            side: [1 / (1 / e + 1 / d) for e, d in zip(enc[side], dec[side], strict=True)]
            for side in ("atbridge", "paho")
        }
        out["encode_decode"] = summary(both)
        out["headline"] = "encode_decode"
    else:
        out["headline"] = "encode"
    return out


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (>= 5)")
    parser.add_argument("--loop-ms", type=float, default=20.0, help="length of one timed loop")
    parser.add_argument(
        "--paho-builders-only",
        action="store_true",
        help="time paho's PUBLISH builder and parser alone, without publish()'s topic and "
        "payload checks or the topic's decoding (the older, lower-bound definition)",
    )
    args = parser.parse_args()
    rounds = max(5, args.rounds)

    started = time.perf_counter()
    cases = build_cases(args.paho_builders_only)
    paho_side = (
        "builders only"
        if args.paho_builders_only
        else "publish() checks + builder, parser + topic decode"
    )
    print(
        f"MQTT 3.1.1 codec, atbridge vs paho-mqtt {version('paho-mqtt')} "
        f"(Python {platform.python_version()}); paho side: {paho_side}; frames checked "
        f"byte-identical; {rounds} alternating rounds, median ops/s",
        flush=True,
    )
    measure(cases, rounds, args.loop_ms / 1000)

    results = {case.name: figures(case) for case in cases}
    print(f"\n{'case':<28}{'op':<15}{'atbridge ops/s':>16}{'paho ops/s':>14}{'ratio':>8}")
    for name, result in results.items():
        for op in ("encode", "decode", "encode_decode"):
            if op not in result:
                continue
            entry = result[op]
            ratio = "n/a" if entry["ratio"] is None else f"{entry['ratio']:.2f}x"
            label = op.replace("_", "+")
            print(
                f"{name:<28}{label:<15}{fmt(entry['atbridge']):>16}{fmt(entry['paho']):>14}"
                f"{ratio:>8}"
            )
            name = ""
    print("(paho has no CONNECT parser: CONNECT is compared on encode)")

    headline = {name: r[r["headline"]]["ratio"] for name, r in results.items()}
    targets = {
        name: PUBLISH_TARGET if name.startswith("publish") else CONNECT_TARGET for name in headline
    }
    short = {name: headline[name] / targets[name] for name in headline}
    worst = min(short, key=lambda name: short[name])
    met = all(headline[name] >= targets[name] for name in headline)
    for kind, target, op in (
        ("publish", PUBLISH_TARGET, "encode+decode"),
        ("connect", CONNECT_TARGET, "encode"),
    ):
        mine = {name: ratio for name, ratio in headline.items() if name.startswith(kind)}
        low = min(mine, key=lambda name: mine[name])
        print(
            f"target: {kind.upper()} {op} >= {target:.1f}x paho: "
            f"{'MET' if mine[low] >= target else 'NOT MET'}; lowest {mine[low]:.2f}x ({low})"
        )
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bench": "mqtt_codec",
                "protocol": "3.1.1",
                "python": platform.python_version(),
                "paho_mqtt": version("paho-mqtt"),
                "rounds": rounds,
                "paho_side": paho_side,
                "unit": "ops/s (median over rounds); ratio: median of per-round ratios",
                "target_ratio": {"publish": PUBLISH_TARGET, "connect": CONNECT_TARGET},
                "target_met": met,
                "lowest_ratio": headline[worst],
                "lowest_case": worst,
                "seconds": round(elapsed, 1),
                "cases": results,
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
