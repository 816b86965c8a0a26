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

Last line: a JSON object with every figure. Run from the repository root:
``.venv/bin/python bench/many_modems.py [--dialect sim7080] [--modems 8] [--baud 921600]``.
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

from fake_process import add_line_option, start_fake, stop_fake  # noqa: E402

from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

TARGET = 0.85
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=8)
    parser.add_argument("--baud", type=int, default=921600)
    parser.add_argument("--count", type=int, default=300, help="messages per bridge per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dialect", default="sim7080", choices=sorted(DIALECTS))
    add_line_option(parser)
    args = parser.parse_args()
    fakes: list[asyncio.subprocess.Process] = []
    bridges: list[Bridge] = []
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
            singles: list[float] = []
            aggregates: list[float] = []
            for round_ in range(args.rounds):
                t0 = time.perf_counter()
                await run_one(bridges[0], args.count, round_)
                singles.append(args.count / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                await asyncio.gather(
                    *(run_one(b, args.count, 100 + i) for i, b in enumerate(bridges))
                )
                aggregates.append(args.count * args.modems / (time.perf_counter() - t0))
        finally:
            for bridge in bridges:
                try:
                    await bridge.close()
                except Exception as error:
                    print(f"closing a bridge failed: {error!r}", file=sys.stderr)
            for fake in fakes:
                await stop_fake(fake)
    single = statistics.median(singles)
    aggregate = statistics.median(aggregates)
    ratios = [a / (args.modems * s) for a, s in zip(aggregates, singles, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"{args.dialect} at {args.baud} baud: one modem {single:.0f} msg/s; "
        f"{args.modems} at once {aggregate:.0f} msg/s = {ratio:.3f} of {args.modems} x one "
        f"(target >= {TARGET}); rounds " + "/".join(f"{r:.3f}" for r in ratios),
        flush=True,
    )
    print(
        f"memory per bridge: {rss_per_bridge / 1024:.0f} KiB (resident set growth / {args.modems})"
    )
    summary: dict[str, Any] = {
        "dialect": args.dialect,
        "baud": args.baud,
        "modems": args.modems,
        "single_msgs_per_s": round(single, 1),
        "aggregate_msgs_per_s": round(aggregate, 1),
        "ratio_vs_n_times_single": round(ratio, 3),
        "round_ratios": [round(r, 3) for r in ratios],
        "rss_bytes_per_bridge": round(rss_per_bridge),
        "target": TARGET,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
