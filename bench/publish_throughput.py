"""MQTT publish throughput per dialect from ``Bridge.publish`` through the fake modem.

For each dialect the fake modem runs as its own process (``python -m tests.fakes
--dialect D --baud 115200``) on a pty, a mosquitto listens on a free loopback
port, and a :class:`~atbridge.bridge.Bridge` is brought online through them. Then,
with ``--size`` byte payloads (default 32) to topic ``bench/t``:

- ``qos0``: ``--count`` QoS 0 publishes one after the other, each awaited (each
  returns when the modem accepted its bytes): the rate one caller gets;
- ``qos1``: ``--count`` QoS 1 publishes started together with ``asyncio.gather``
  so that the in-flight window (``--window``, default 10) is used; each returns
  on its PUBACK;
- ``qos0_concurrent`` (for information, no target): ``--count`` QoS 0 publishes
  started together, so the session can put several into one modem send.

Each phase runs ``--rounds`` times (default 3) and reports its median round, with
every round's ratio beside it: a machine hiccup (a few milliseconds lost to the
scheduler) then moves one round, not the figure. The fake paces its line as an
ideal modem (its answers start when their input is in) and polls its pty instead
of sleeping (``--cold-line`` turns that off).

The bytes that crossed the serial line during each phase, both directions
(payload, MQTT framing, the dialect's command framing, notifications and reads,
PUBACKs), are counted by the AT channel (``modem.bytes_written`` +
``modem.bytes_read``). The line-rate bound is the time those bytes need on an 8N1
line (10 bits a byte): ``bound = wire_bytes / (baud / 10)``; the figure is
``bound / measured``. Target: ``qos0`` >= 0.85 (QoS 1 and the concurrent QoS 0
are reported against the same kind of bound, without a target).

Delivery is checked: a paho-mqtt subscriber on the broker must receive every
message of every phase; a shortfall is printed as a FAILURE line (the run goes
on, and ``all_delivered`` is false in the JSON).

``--floor``: after each round the floor client (``bench/floor_client.py``) replays the
round's AT exchanges on the same paced line with bare ``os.read``/``os.write``; its ratio
of the same bound is printed beside atbridge's (``floor ...``): where the floor is no
faster, the rig (the fake's own work, the pty hops) is the limit, not atbridge. A floor
whose waits stalled (the modem batched its answers differently for it, as QoS 1 PUBACK
notifications can be; see ``floor_client``) is marked ``~`` with its stalls: its time
includes them and it is no floor; so the QoS 1 phase is not replayed.

Last line: a JSON object with every figure. Run from the repository root:
``python bench/publish_throughput.py [--count 200] [--rounds 3] [--dialect sim7080]
[--transcript /tmp/pub]`` (the transcript option writes
``/tmp/pub.<dialect>.log``, timestamped, for looking at where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``python bench/publish_throughput.py`` from anywhere
    sys.path.insert(0, str(ROOT))

from fake_process import (  # noqa: E402
    add_line_option,
    add_loop_option,
    in_the_background,
    start_fake,
    stop_fake,
)
from fake_process import run as run_on_loop  # noqa: E402
from floor_client import Recorder, replay  # noqa: E402

from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS  # noqa: E402
from tests.brokers import Mosquitto, PahoPeer  # noqa: E402

TOPIC = "bench/t"
TARGET_QOS0 = 0.85
TIMEOUTS = Timeouts(
    probe=30, configure=30, attach=60, activate=60, open_socket=60, connack=30, close=10
)


def payload_for(index: int, size: int) -> bytes:
    """``size`` bytes that start with the message number (for counting at the peer)."""
    head = f"{index:06d}:".encode()
    return (head + b"x" * size)[:size] if size >= len(head) else head[:size]


async def phase(
    bridge: Bridge,
    paho: PahoPeer,
    *,
    qos: int,
    concurrent: bool,
    count: int,
    size: int,
    baud: int,
    first: int,
    floor: bool = False,
) -> dict[str, Any]:
    """Publish ``count`` messages; time them, count the wire bytes and the deliveries.

    ``floor``: then the floor client replays the same exchanges on the same paced line
    (``bench/floor_client.py``), and its ratio of the same bound is reported beside.
    """
    modem = bridge.modem
    assert modem is not None
    payloads = [payload_for(first + i, size) for i in range(count)]
    before = len(paho.messages)
    w0, r0 = modem.bytes_written, modem.bytes_read
    with Recorder(modem) as recording:
        t0 = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(bridge.publish(TOPIC, p, qos=qos) for p in payloads))
        else:
            for payload in payloads:
                await bridge.publish(TOPIC, payload, qos=qos)
        if qos and concurrent:
            await asyncio.sleep(0)  # every PUBACK is in: the recording ends with it
        elapsed = time.perf_counter() - t0
    written = modem.bytes_written - w0
    read = modem.bytes_read - r0
    wire = written + read
    bound = wire / (baud / 10)
    # Delivery: every message must reach the subscriber (QoS 0 may still be on its way).
    with contextlib.suppress(TimeoutError):
        await asyncio.to_thread(paho.wait_for, before + count, 20.0)
    received = [p for t, p, _ in paho.messages[before:] if t == TOPIC]
    delivered = len(set(received) & set(payloads))
    floor_ratio = None
    floor_stalls = 0
    if floor:
        replayed = replay(modem, recording)
        floor_ratio = round(bound / replayed.seconds, 3)
        floor_stalls = replayed.stalls
        # The replay publishes the same messages again: let them arrive before the next
        # phase counts its own.
        with contextlib.suppress(TimeoutError):
            await asyncio.to_thread(paho.wait_for, len(paho.messages) + count, 5.0)
    return {
        "floor_ratio_bound_vs_measured": floor_ratio,
        "floor_stalls": floor_stalls,
        "qos": qos,
        "concurrent": concurrent,
        "messages": count,
        "seconds": round(elapsed, 4),
        "msgs_per_s": round(count / elapsed, 1),
        "wire_bytes": wire,
        "wire_bytes_written": written,
        "wire_bytes_read": read,
        "wire_bytes_per_msg": round(wire / count, 1),
        "line_rate_bound_s": round(bound, 4),
        "line_rate_bound_msgs_per_s": round(count / bound, 1) if bound else None,
        "ratio_bound_vs_measured": round(bound / elapsed, 3),
        "delivered": delivered,
        "received": len(received),
        "all_delivered": delivered == count,
    }


#: The phases in the order they run: (key, label, qos, concurrent).
PHASES = (
    ("qos0", "QoS 0", 0, False),
    ("qos1", "QoS 1", 1, True),
    ("qos0_concurrent", "QoS 0 gather", 0, True),
)


def median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median ratio, with every round's ratio and the delivery
    counts of all rounds (a message lost in any round is a failure)."""
    ranked = sorted(runs, key=lambda run: run["ratio_bound_vs_measured"])
    result = dict(ranked[len(ranked) // 2])
    result["round_ratios"] = [run["ratio_bound_vs_measured"] for run in runs]
    floors = [run["floor_ratio_bound_vs_measured"] for run in runs]
    if None not in floors:
        result["floor_ratio_bound_vs_measured"] = statistics.median(floors)
        result["floor_round_ratios"] = floors
    for field in ("messages", "delivered", "received", "floor_stalls"):
        result[field] = sum(run[field] for run in runs)
    result["all_delivered"] = all(run["all_delivered"] for run in runs)
    return result


async def measure(
    name: str,
    *,
    broker: Mosquitto,
    count: int,
    rounds: int,
    size: int,
    baud: int,
    window: int,
    transcript: str | None,
    hot_line: bool,
    floor: bool = False,
) -> dict[str, Any]:
    fake, port = await start_fake(name, baud, hot_line=hot_line)
    paho: PahoPeer | None = None
    bridge: Bridge | None = None
    try:
        paho = await asyncio.to_thread(PahoPeer, broker.port, f"bench-peer-{name}")
        await asyncio.to_thread(paho.subscribe, TOPIC, 1)
        creds = MqttCredentials.plain(client_id=f"bench-{name}", host="127.0.0.1", port=broker.port)
        config = BridgeConfig(
            port=port,
            credentials=creds,
            dialect=name,
            timeouts=TIMEOUTS,
            max_inflight=window,
            queue_size=max(1000, count * rounds),
            give_up_after=60.0,
            transcript=f"{transcript}.{name}.log" if transcript else None,
        )
        bridge = Bridge(config=config, online_timeout=120)
        t_online = time.perf_counter()
        await bridge.start()
        await bridge.wait_online(120)
        online_s = time.perf_counter() - t_online
        # One warm-up QoS 1 message (first-use costs), not counted.
        seen = len(paho.messages)
        await bridge.publish(TOPIC, payload_for(999_999, size), qos=1)
        await asyncio.to_thread(paho.wait_for, seen + 1, 5.0)
        phases: dict[str, dict[str, Any]] = {}
        for index, (key, _label, qos, concurrent) in enumerate(PHASES):
            runs = [
                await phase(
                    bridge,
                    paho,
                    qos=qos,
                    concurrent=concurrent,
                    count=count,
                    size=size,
                    baud=baud,
                    first=(index * rounds + round_) * count,
                    # QoS 1 replays stall on PUBACK notifications batched differently.
                    floor=floor and qos == 0,
                )
                for round_ in range(rounds)
            ]
            phases[key] = median_round(runs)
    finally:
        try:
            if bridge is not None:
                try:
                    await bridge.close()
                except Exception as error:  # report, keep stopping the rest
                    print(f"{name}: closing the bridge failed: {error!r}", file=sys.stderr)
        finally:
            try:
                if paho is not None:
                    await asyncio.to_thread(paho.close)
            finally:
                await stop_fake(fake)
    return {
        "dialect": name,
        "online_s": round(online_s, 2),
        **phases,
        "qos0_meets_target": phases["qos0"]["ratio_bound_vs_measured"] >= TARGET_QOS0,
    }


def show(name: str, result: dict[str, Any]) -> None:
    for key, label, _qos, _concurrent in PHASES:
        r = result[key]
        print(
            f"{name:10} {label:12} {r['msgs_per_s']:>7.1f} msg/s  "
            f"{r['wire_bytes_per_msg']:>6.1f} B/msg on the wire  "
            f"bound {r['line_rate_bound_msgs_per_s']:>7.1f} msg/s  "
            f"ratio {r['ratio_bound_vs_measured']:.3f}"
            + (f" (target >= {TARGET_QOS0})" if key == "qos0" else "")
            + " rounds "
            + "/".join(f"{ratio:.3f}" for ratio in r["round_ratios"])
            + f"  delivered {r['delivered']}/{r['messages']}"
            + (
                f"  floor {'~' if r['floor_stalls'] else ''}"
                f"{r['floor_ratio_bound_vs_measured']:.3f}"
                + (f" ({r['floor_stalls']} stalls)" if r["floor_stalls"] else "")
                if r.get("floor_ratio_bound_vs_measured") is not None
                else ""
            ),
            flush=True,
        )
        if not r["all_delivered"]:
            print(
                f"FAILURE: {name} {label}: the subscriber received {r['delivered']} "
                f"of {r['messages']} messages",
                flush=True,
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="messages per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per phase; the median round is reported"
    )
    parser.add_argument("--size", type=int, default=32, help="payload bytes")
    parser.add_argument("--baud", type=int, default=115200)
    add_line_option(parser)
    parser.add_argument("--window", type=int, default=10, help="QoS 1 in-flight window")
    parser.add_argument("--dialect", action="append", choices=sorted(DIALECTS))
    parser.add_argument(
        "--floor",
        action="store_true",
        help="after each round the floor client replays its exchanges on the same line: "
        "the rig's own ratio of the bound, printed beside atbridge's",
    )
    parser.add_argument(
        "--transcript", metavar="PREFIX", help="write each dialect's AT transcript to PREFIX.D.log"
    )
    add_loop_option(parser)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    with Mosquitto() as broker:
        print(in_the_background(broker.pid), file=sys.stderr, flush=True)
        for name in args.dialect or list(DIALECTS):
            try:
                result = await measure(
                    name,
                    broker=broker,
                    count=args.count,
                    rounds=args.rounds,
                    size=args.size,
                    baud=args.baud,
                    window=args.window,
                    transcript=args.transcript,
                    hot_line=not args.cold_line,
                    floor=args.floor,
                )
            except Exception as error:
                errors[name] = f"{type(error).__name__}: {error}"
                print(f"FAILURE: {name}: {errors[name]}", flush=True)
                continue
            results.append(result)
            show(name, result)
    delivered_all = all(r[k]["all_delivered"] for r in results for k, *_ in PHASES)
    summary = {
        "baud": args.baud,
        "payload_bytes": args.size,
        "topic": TOPIC,
        "messages_per_round": args.count,
        "rounds_per_phase": args.rounds,
        "qos1_window": args.window,
        "target_qos0_ratio": TARGET_QOS0,
        "qos0_target_met": [r["dialect"] for r in results if r["qos0_meets_target"]],
        "qos0_target_missed": [r["dialect"] for r in results if not r["qos0_meets_target"]],
        "all_delivered": delivered_all and not errors,
        "results": results,
        "errors": errors,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    run_on_loop(main())
