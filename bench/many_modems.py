"""Several modems from one process: aggregate publish throughput against N times one modem.

``--modems`` (default 8) fake modems run as processes of their own, each paced at
``--baud`` (default 921600, ``--hot-line`` polling unless ``--cold-line``: eight polling
fakes need eight cores, so on a small machine ``--cold-line`` is the fairer rig), each behind one
:class:`~atbridge.bridge.Bridge` in this one process and event loop, all to one
mosquitto. First one bridge alone publishes ``--count`` QoS 0 messages one after the
other (the single-modem figure, msg/s); then all the bridges do the same at once, and
the aggregate (all messages over the time until the last bridge is done) is compared
with N times the single figure (target >= 0.85). Both are repeated ``--rounds`` times,
alternating, and the medians reported. Memory per bridge: the growth of this process's
resident set (``VmRSS``) from before the N bridges were opened to when all were online,
divided by N.

The floor, in the same run (``bench/floor_client.py``): after each run its exchanges are
replayed with nothing but ``os.read``/``os.write``, the single run by one floor client and
the all-at-once run by N floor clients at once (one thread each, each on its bridge's port
and fake), and the floor's aggregate is compared with N times its single figure the same
way. If the floor clients stay under the target too, the rig (N fakes, mosquitto and the
clients on this machine's cores) is the limit, and the output says so, and whether atbridge
gets as far as the rig allows (at least 0.9 of the floor's ratio). Printed too: the CPU
seconds of all the fakes and of this process (every bridge) during the all-at-once run, of
the fakes and the floor clients during the floor's, and mosquitto's over all rounds.

Last line: a JSON object with every figure. Run from the repository root:
``.venv/bin/python bench/many_modems.py [--dialect sim7080] [--modems 8] [--baud 921600]``.
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_process import (  # noqa: E402
    add_line_option,
    add_loop_option,
    process_cpu_seconds,
    start_fake,
    stop_fake,
)
from fake_process import run as run_on_loop  # noqa: E402
from floor_client import Recorder, replay, replay_concurrently  # noqa: E402

from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

TARGET = 0.85
#: atbridge's aggregate ratio at least this share of the floor's: it scales as the rig does.
RIG_LIMITED_SHARE = 0.9
TIMEOUTS = Timeouts(
    probe=30, configure=30, attach=60, activate=60, open_socket=60, connack=30, close=10
)


def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def run_one(bridge: Bridge, count: int, tag: int) -> None:
    for i in range(count):
        await bridge.publish("bench/many", b"%08d:" % (tag * 1_000_000 + i) + b"x" * 23, qos=0)


def verdict(ratio: float, floor_ratio: float, target: float = TARGET) -> str:
    """What the two aggregate ratios of one run say: the target met; the rig the limit (the
    floor clients, with no atbridge, stay under the target too), and whether atbridge gets
    as far as the rig allows; or atbridge the limit (the floor reaches the target)."""
    if ratio >= target:
        return f"target met: atbridge's {ratio:.3f} >= {target}"
    if floor_ratio < target:
        share = ratio / floor_ratio if floor_ratio > 0 else 0.0
        how = (
            "as far as the rig allows"
            if share >= RIG_LIMITED_SHARE
            else f"below what the rig allows (under {RIG_LIMITED_SHARE} of it)"
        )
        return (
            f"the rig is the limit: the floor clients alone (the same exchanges with nothing "
            f"but os.read/os.write, no atbridge) reach only {floor_ratio:.3f}, under the "
            f"target {target}: this machine cannot run this many fakes, clients and a broker "
            f"any faster; atbridge's {ratio:.3f} is {share:.2f} of that, {how}"
        )
    return (
        f"atbridge is the limit: the floor clients reach {floor_ratio:.3f} (target {target}), "
        f"atbridge only {ratio:.3f}"
    )


def fakes_cpu_seconds(fakes: list[asyncio.subprocess.Process]) -> float:
    """CPU seconds the fake modems' processes have used so far, all together."""
    return sum(process_cpu_seconds(fake.pid) for fake in fakes)


async def publish_round(
    bridges: list[Bridge], fakes: list[asyncio.subprocess.Process], count: int, round_: int
) -> dict[str, float]:
    """One bridge alone, then all at once, each recorded; then the floor: one floor client
    replaying the single run, then one per bridge replaying its part of the run together,
    each in its own thread. CPU seconds of the fakes and of this process (the bridges)
    during the all-at-once run, and of the fakes during the floors'."""
    n = len(bridges)
    first = bridges[0].modem
    assert first is not None
    with Recorder(first) as single_recording:
        t0 = time.perf_counter()
        await run_one(bridges[0], count, round_)
        single = count / (time.perf_counter() - t0)
    single_floor = replay(first, single_recording)
    with contextlib.ExitStack() as stack:
        recordings = []
        for bridge in bridges:
            assert bridge.modem is not None
            recordings.append((bridge.modem, stack.enter_context(Recorder(bridge.modem))))
        fake0, cpu0 = fakes_cpu_seconds(fakes), time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(run_one(b, count, 100 + i) for i, b in enumerate(bridges)))
        aggregate = count * n / (time.perf_counter() - t0)
        bridges_cpu = time.process_time() - cpu0
        fakes_cpu = fakes_cpu_seconds(fakes) - fake0
    fake0 = fakes_cpu_seconds(fakes)
    floors = replay_concurrently(recordings)
    floor_fakes_cpu = fakes_cpu_seconds(fakes) - fake0
    return {
        "single": single,
        "aggregate": aggregate,
        "ratio": aggregate / (n * single),
        "floor_single": count / single_floor.seconds,
        "floor_aggregate": count * n / floors.seconds,
        "floor_ratio": (count * n / floors.seconds) / (n * count / single_floor.seconds),
        "floor_stalls": single_floor.stalls + sum(r.stalls for r in floors.results),
        "fakes_cpu_s": fakes_cpu,
        "bridges_cpu_s": bridges_cpu,
        "floor_fakes_cpu_s": floor_fakes_cpu,
        "floor_clients_cpu_s": sum(r.cpu_seconds for r in floors.results),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=8)
    parser.add_argument("--baud", type=int, default=921600)
    parser.add_argument("--count", type=int, default=300, help="messages per bridge per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dialect", default="sim7080", choices=sorted(DIALECTS))
    add_line_option(parser)
    add_loop_option(parser)
    args = parser.parse_args()
    fakes: list[asyncio.subprocess.Process] = []
    bridges: list[Bridge] = []
    rounds: list[dict[str, float]] = []
    with Mosquitto() as broker:
        try:
            ports = []
            for _ in range(args.modems):
                fake, port = await start_fake(args.dialect, args.baud, hot_line=not args.cold_line)
                fakes.append(fake)
                ports.append(port)
            rss0 = rss_bytes()
            for index, port in enumerate(ports):
                creds = MqttCredentials.plain(
                    client_id=f"many-{index}", host="127.0.0.1", port=broker.port
                )
                config = BridgeConfig(
                    port=port,
                    credentials=creds,
                    dialect=args.dialect,
                    baudrate=args.baud,
                    timeouts=TIMEOUTS,
                    give_up_after=60.0,
                )
                bridges.append(Bridge(config=config, online_timeout=120))
            await asyncio.gather(*(b.start() for b in bridges))
            await asyncio.gather(*(b.wait_online(120) for b in bridges))
            rss_per_bridge = (rss_bytes() - rss0) / args.modems
            broker_proc = getattr(broker, "_proc", None)
            broker0 = 0.0 if broker_proc is None else process_cpu_seconds(broker_proc.pid)
            for round_ in range(args.rounds):
                rounds.append(await publish_round(bridges, fakes, args.count, round_))
            broker_cpu = 0.0 if broker_proc is None else process_cpu_seconds(broker_proc.pid)
            broker_cpu -= broker0
        finally:
            for bridge in bridges:
                try:
                    await bridge.close()
                except Exception as error:
                    print(f"closing a bridge failed: {error!r}", file=sys.stderr)
            for fake in fakes:
                await stop_fake(fake)
    show(args, rounds, rss_per_bridge, broker_cpu)


def show(
    args: argparse.Namespace,
    rounds: list[dict[str, float]],
    rss_per_bridge: float,
    broker_cpu: float,
) -> None:
    n = args.modems
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    messages = n * args.count
    line = "cold line" if args.cold_line else "hot line"
    print(
        f"{args.dialect} at {args.baud} baud ({line}): one modem {med['single']:.0f} msg/s; "
        f"{n} at once {med['aggregate']:.0f} msg/s = {med['ratio']:.3f} of {n} x one "
        f"(target >= {TARGET}); rounds " + "/".join(f"{r['ratio']:.3f}" for r in rounds),
        flush=True,
    )
    stalls = sum(int(r["floor_stalls"]) for r in rounds)
    print(
        f"floor (the same exchanges replayed with os.read/os.write, {n} threads at once): one "
        f"{med['floor_single']:.0f} msg/s; {n} at once {med['floor_aggregate']:.0f} msg/s = "
        f"{med['floor_ratio']:.3f} of {n} x one; rounds "
        + "/".join(f"{r['floor_ratio']:.3f}" for r in rounds)
        + (f"; {stalls} floor stalls (its time includes them)" if stalls else ""),
        flush=True,
    )
    print(verdict(med["ratio"], med["floor_ratio"]), flush=True)
    print(
        f"CPU during the {n}-modem run ({messages} messages, median of rounds): fakes "
        f"{med['fakes_cpu_s']:.2f} s together ({med['fakes_cpu_s'] / messages * 1e6:.0f} µs a "
        f"message), the bridges' process {med['bridges_cpu_s']:.2f} s "
        f"({med['bridges_cpu_s'] / messages * 1e6:.0f} µs a message); during the floor's: fakes "
        f"{med['floor_fakes_cpu_s']:.2f} s, floor clients {med['floor_clients_cpu_s']:.2f} s; "
        f"mosquitto {broker_cpu:.2f} s over all rounds",
        flush=True,
    )
    print(f"memory per bridge: {rss_per_bridge / 1024:.0f} KiB (resident set growth / {n})")
    summary: dict[str, Any] = {
        "dialect": args.dialect,
        "baud": args.baud,
        "hot_line": not args.cold_line,
        "modems": n,
        "count": args.count,
        "single_msgs_per_s": round(med["single"], 1),
        "aggregate_msgs_per_s": round(med["aggregate"], 1),
        "ratio_vs_n_times_single": round(med["ratio"], 3),
        "round_ratios": [round(r["ratio"], 3) for r in rounds],
        "floor_single_msgs_per_s": round(med["floor_single"], 1),
        "floor_aggregate_msgs_per_s": round(med["floor_aggregate"], 1),
        "floor_ratio_vs_n_times_single": round(med["floor_ratio"], 3),
        "floor_round_ratios": [round(r["floor_ratio"], 3) for r in rounds],
        "floor_stalls": stalls,
        "verdict": verdict(med["ratio"], med["floor_ratio"]),
        "fakes_cpu_s": round(med["fakes_cpu_s"], 3),
        "bridges_process_cpu_s": round(med["bridges_cpu_s"], 3),
        "floor_fakes_cpu_s": round(med["floor_fakes_cpu_s"], 3),
        "floor_clients_cpu_s": round(med["floor_clients_cpu_s"], 3),
        "mosquitto_cpu_s_all_rounds": round(broker_cpu, 3),
        "rss_bytes_per_bridge": round(rss_per_bridge),
        "target": TARGET,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    run_on_loop(main())
