"""atbridge on an unpaced line (a pty with no pacing, as a USB modem) against the floor client.

For each dialect the fake modem runs as its own process with no baud rate (``python -m
tests.fakes --dialect D``), a mosquitto listens on a free loopback port, and in
alternating rounds (``--rounds``, default 3; medians reported):

- ``qos0``: ``--count`` QoS 0 ``Bridge.publish`` one after the other, each awaited; with
  the CPU µs per message of the bridge's thread (``time.thread_time``) and of the fake
  modem's process (``/proc``: ``fake_process.process_cpu_seconds``), and the same for the
  floor's replay (its thread, the fake), so where the time goes is visible in the run;
- ``qos1``: ``--count`` QoS 1 publishes started together (window ``--window``, 10; the
  same CPU figures);
- after each, the floor client (``bench/floor_client.py``) replays the same exchanges on
  the same port, fake, socket and broker with nothing but ``os.read``/``os.write``;
  the figure is atbridge's messages/s over the floor's (target >= 0.8);
- ``--asyncio-floor``: after each QoS 0 floor, the asyncio floor
  (``bench/asyncio_floor.py``) replays the same exchanges once more through the event
  loop with the least a loop allows, which splits the gap: the loop's own share (asyncio
  floor over floor) and atbridge's (atbridge over asyncio floor). QoS 0 only: a QoS 1
  replay makes the broker acknowledge again, and those late PUBACKs (read by atbridge's
  receivers, which run in the same loop) change what the next phase records;
- ``cpu``: ``--cpu-count`` (10,000) QoS 1 publishes, window 10: CPU seconds of the
  thread that runs the bridge (``time.thread_time``: the fake, the broker and any
  other thread are not counted) per 10,000 publishes;
- ``socket``: ``--size`` bytes (16 KiB) up through a dialect socket (no MQTT) to a TCP
  server on 127.0.0.1, then replayed by the floor client: bytes/s and the ratio.

The floor's stalls (a wait for a byte count that the modem's batching did not meet,
see ``floor_client``) are printed; a floor with stalls is marked ``~`` (its time
includes them). No subscriber runs (it would share this process's CPU); delivery is
checked by ``bench/publish_throughput.py``.

Last line: a JSON object with every figure. Run from the repository root:
``.venv/bin/python bench/unpaced.py [--dialect sim7080] [--count 500] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from asyncio_floor import replay_async  # noqa: E402
from fake_process import (  # noqa: E402
    add_loop_option,
    process_cpu_seconds,
    start_fake,
    stop_fake,
)
from fake_process import run as run_on_loop  # noqa: E402
from floor_client import Recorder, replay  # noqa: E402
from socket_throughput import Server  # noqa: E402

from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS, open_dialect  # noqa: E402
from atbridge.modem import Modem  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

TOPIC = "bench/t"
#: CPU µs per message in a publish phase: the bridge's thread and the fake's process in
#: atbridge's run, the floor client's thread and the fake's process in the floor's replay.
CPU_FIELDS = (
    "bridge_cpu_us_per_msg",
    "fake_cpu_us_per_msg",
    "floor_cpu_us_per_msg",
    "floor_fake_cpu_us_per_msg",
)
#: The asyncio floor's figures (``--asyncio-floor``): its rate, its share of the blocking
#: floor's, and atbridge's share of its own.
ASYNCIO_FIELDS = ("asyncio_floor_msgs_per_s", "asyncio_floor_ratio", "ratio_to_asyncio_floor")
TARGET_FLOOR = 0.8
TIMEOUTS = Timeouts(
    probe=30, configure=30, attach=60, activate=60, open_socket=60, connack=30, close=10
)


def payload(index: int, size: int = 32) -> bytes:
    return (b"%06d:" % index + b"x" * size)[:size]


async def publish_phase(
    bridge: Bridge, fake_pid: int, qos: int, count: int, first: int, *, looped: bool = False
) -> dict[str, Any]:
    """atbridge's run (recorded), then the floor's replay of the same exchanges; with the
    CPU time of the bridge's thread and of the fake modem's process in each."""
    modem = bridge.modem
    assert modem is not None
    payloads = [payload(first + i) for i in range(count)]
    with Recorder(modem) as recording:
        fake0, thread0 = process_cpu_seconds(fake_pid), time.thread_time()
        t0 = time.perf_counter()
        if qos:
            await asyncio.gather(*(bridge.publish(TOPIC, p, qos=1) for p in payloads))
        else:
            for p in payloads:
                await bridge.publish(TOPIC, p, qos=0)
        if qos:
            # Every PUBACK is in: the recording ends with the modem's last byte.
            await asyncio.sleep(0)
        seconds = time.perf_counter() - t0
        bridge_cpu = time.thread_time() - thread0
        fake_cpu = process_cpu_seconds(fake_pid) - fake0
    fake0 = process_cpu_seconds(fake_pid)
    floor = replay(modem, recording)
    floor_fake_cpu = process_cpu_seconds(fake_pid) - fake0
    extra: dict[str, Any] = {}
    if looped:
        through_loop = await replay_async(modem, recording)
        extra = {
            "asyncio_floor_msgs_per_s": count / through_loop.seconds,
            "asyncio_floor_ratio": floor.seconds / through_loop.seconds,
            "ratio_to_asyncio_floor": through_loop.seconds / seconds,
            "asyncio_floor_stalls": through_loop.stalls,
        }
    return {
        **extra,
        "msgs_per_s": count / seconds,
        "floor_msgs_per_s": count / floor.seconds,
        "ratio": floor.seconds / seconds,
        "bridge_cpu_us_per_msg": bridge_cpu / count * 1e6,
        "fake_cpu_us_per_msg": fake_cpu / count * 1e6,
        "floor_cpu_us_per_msg": floor.cpu_seconds / count * 1e6,
        "floor_fake_cpu_us_per_msg": floor_fake_cpu / count * 1e6,
        "floor_stalls": floor.stalls,
        "writes": floor.writes,
        "floor_reads": floor.reads,
    }


async def cpu_phase(bridge: Bridge, count: int, window: int) -> float:
    """Thread CPU seconds per 10,000 QoS 1 publishes (batches of 10 x window)."""
    batch = window * 10
    c0 = time.thread_time()
    for start in range(0, count, batch):
        await asyncio.gather(
            *(bridge.publish(TOPIC, payload(i), qos=1) for i in range(start, start + batch))
        )
    return (time.thread_time() - c0) / count * 10_000


async def measure_publish(
    name: str,
    broker: Mosquitto,
    *,
    count: int,
    rounds: int,
    window: int,
    cpu_count: int,
    asyncio_floor: bool = False,
) -> dict[str, Any]:
    fake, port = await start_fake(name, None, hot_line=False)
    bridge: Bridge | None = None
    try:
        creds = MqttCredentials.plain(
            client_id=f"unpaced-{name}", host="127.0.0.1", port=broker.port
        )
        config = BridgeConfig(
            port=port,
            credentials=creds,
            dialect=name,
            timeouts=TIMEOUTS,
            max_inflight=window,
            queue_size=max(1000, count),
            give_up_after=60.0,
        )
        bridge = Bridge(config=config, online_timeout=120)
        await bridge.start()
        await bridge.wait_online(120)
        await bridge.publish(TOPIC, payload(999_999), qos=1)  # warm-up
        runs: dict[str, list[dict[str, Any]]] = {"qos0": [], "qos1": []}
        for round_ in range(rounds):
            for key, qos in (("qos0", 0), ("qos1", 1)):
                looped = asyncio_floor and qos == 0  # (module doc: QoS 0 only)
                run = await publish_phase(
                    bridge, fake.pid, qos, count, round_ * count, looped=looped
                )
                runs[key].append(run)
        cpu = [await cpu_phase(bridge, cpu_count, window) for _ in range(max(1, rounds // 2))]
    finally:
        try:
            if bridge is not None:
                await bridge.close()
        finally:
            await stop_fake(fake)
    result: dict[str, Any] = {"dialect": name}
    for key, values in runs.items():
        result[key] = {
            field: round(statistics.median(run[field] for run in values), 3)
            for field in ("msgs_per_s", "floor_msgs_per_s", "ratio", *CPU_FIELDS)
        }
        result[key]["floor_stalls"] = sum(run["floor_stalls"] for run in values)
        if "asyncio_floor_ratio" in values[0]:
            for field in ASYNCIO_FIELDS:
                result[key][field] = round(statistics.median(run[field] for run in values), 3)
            result[key]["asyncio_floor_stalls"] = sum(run["asyncio_floor_stalls"] for run in values)
        result[key]["round_ratios"] = [round(run["ratio"], 3) for run in values]
    result["cpu_s_per_10k_qos1"] = round(statistics.median(cpu), 3)
    return result


async def measure_socket(name: str, size: int, rounds: int) -> dict[str, Any]:
    fake, port = await start_fake(name, None, hot_line=False)
    server = Server()
    ratios: list[float] = []
    rates: list[float] = []
    floors: list[float] = []
    stalls = 0
    try:
        server_port = await server.start()
        modem = await Modem.open(port, default_timeout=30)
        try:
            dialect, _ = await open_dialect(modem, name)
            await dialect.attach(timeout=60)
            await dialect.activate_data()
            sock = await dialect.open_socket("127.0.0.1", server_port, timeout=60)
            await asyncio.wait_for(server.connected.wait(), 30)
            data = bytes((i * 31 + 7) % 256 for i in range(size))
            for _ in range(rounds):
                server.got_all.clear()
                server.expect = server.received + size
                with Recorder(modem) as recording:
                    t0 = time.perf_counter()
                    await sock.send(data)
                    seconds = time.perf_counter() - t0
                await asyncio.wait_for(server.got_all.wait(), 60)
                server.got_all.clear()
                server.expect = server.received + size
                floor = replay(modem, recording)
                await asyncio.wait_for(server.got_all.wait(), 60)
                stalls += floor.stalls
                rates.append(size / seconds)
                floors.append(size / floor.seconds)
                ratios.append(floor.seconds / seconds)
            await sock.close()
        finally:
            await modem.close()
    finally:
        await server.stop()
        await stop_fake(fake)
    return {
        "up_bytes_per_s": round(statistics.median(rates)),
        "floor_up_bytes_per_s": round(statistics.median(floors)),
        "up_ratio": round(statistics.median(ratios), 3),
        "up_round_ratios": [round(r, 3) for r in ratios],
        "floor_stalls": stalls,
    }


def show(result: dict[str, Any]) -> None:
    name = result["dialect"]
    for key, label in (("qos0", "QoS 0"), ("qos1", "QoS 1 w10")):
        r = result[key]
        mark = "~" if r["floor_stalls"] else ""
        print(
            f"{name:10} {label:10} {r['msgs_per_s']:>8.0f} msg/s  floor {mark}"
            f"{r['floor_msgs_per_s']:>8.0f} msg/s  ratio {r['ratio']:.3f} "
            f"(target >= {TARGET_FLOOR}) rounds "
            + "/".join(f"{x:.3f}" for x in r["round_ratios"])
            + (f"  floor stalls {r['floor_stalls']}" if r["floor_stalls"] else ""),
            flush=True,
        )
        if "asyncio_floor_ratio" in r:
            amark = "~" if r["asyncio_floor_stalls"] else ""
            print(
                f"{'':10} {'':10} asyncio floor {amark}{r['asyncio_floor_msgs_per_s']:.0f} msg/s:"
                f" {r['asyncio_floor_ratio']:.3f} of the floor; atbridge"
                f" {r['ratio_to_asyncio_floor']:.3f} of it",
                flush=True,
            )
        print(
            f"{'':10} {'':10} CPU per message: bridge thread {r['bridge_cpu_us_per_msg']:.0f} µs,"
            f" fake {r['fake_cpu_us_per_msg']:.0f} µs; floor client"
            f" {r['floor_cpu_us_per_msg']:.0f} µs, fake {r['floor_fake_cpu_us_per_msg']:.0f} µs",
            flush=True,
        )
    print(f"{name:10} CPU        {result['cpu_s_per_10k_qos1']:.3f} s per 10,000 QoS 1 publishes")
    s = result["socket"]
    mark = "~" if s["floor_stalls"] else ""
    print(
        f"{name:10} socket up  {s['up_bytes_per_s']:>8} B/s    floor {mark}"
        f"{s['floor_up_bytes_per_s']:>8} B/s    ratio {s['up_ratio']:.3f} rounds "
        + "/".join(f"{x:.3f}" for x in s["up_round_ratios"]),
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--cpu-count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=16384, help="socket bytes per round")
    parser.add_argument("--dialect", action="append", choices=sorted(DIALECTS))
    parser.add_argument(
        "--asyncio-floor",
        action="store_true",
        help="after each QoS 0 floor, replay through the event loop too (bench/asyncio_floor.py)",
    )
    add_loop_option(parser)
    args = parser.parse_args()
    results = []
    with Mosquitto() as broker:
        for name in args.dialect or list(DIALECTS):
            result = await measure_publish(
                name,
                broker,
                count=args.count,
                rounds=args.rounds,
                window=args.window,
                cpu_count=args.cpu_count,
                asyncio_floor=args.asyncio_floor,
            )
            result["socket"] = await measure_socket(name, args.size, args.rounds)
            results.append(result)
            show(result)
    print(json.dumps({"unpaced": True, "target_floor_ratio": TARGET_FLOOR, "results": results}))


if __name__ == "__main__":
    run_on_loop(main())
