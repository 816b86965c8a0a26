"""Where the host's time goes per publish: cProfile over unpaced publishes, one dialect.

The fake modem runs as its own process with no pacing (``python -m tests.fakes --dialect
D``, as a USB modem), a mosquitto listens on a free loopback port, and a
:class:`~atbridge.bridge.Bridge` is brought online through them. Then ``--count`` QoS 1
publishes (window ``--window``, started together in batches of ten windows, as
``bench/unpaced.py``'s CPU phase) and as many QoS 0 publishes one after the other run
under :mod:`cProfile`; only this process (the bridge's thread) is profiled, the fake and
the broker are not. Printed: the ``--top`` functions by own time and by cumulative time,
and the event loop's figures (``_run_once`` turns, ``call_soon``, tasks created), which
are what "wake-ups per AT exchange" counts.

Run from the repository root:
``.venv/bin/python bench/profile_publish.py [--dialect sim7080] [--count 3000] [--qos 1]
[--top 25] [--save /tmp/prof.out]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_process import add_loop_option, start_fake, stop_fake  # noqa: E402
from fake_process import run as run_on_loop  # noqa: E402

from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

TOPIC = "bench/t"
TIMEOUTS = Timeouts(
    probe=30, configure=30, attach=60, activate=60, open_socket=60, connack=30, close=10
)
#: Functions whose call counts say how often the event loop woke and what it scheduled.
LOOP_COUNTERS = ("_run_once", "call_soon", "create_task", "select")


def payload(index: int, size: int = 32) -> bytes:
    return (b"%06d:" % index + b"x" * size)[:size]


async def publishes(bridge: Bridge, qos: int, count: int, window: int) -> None:
    if qos == 0:
        for i in range(count):
            await bridge.publish(TOPIC, payload(i), qos=0)
        return
    batch = window * 10
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        batch_of = (bridge.publish(TOPIC, payload(i), qos=1) for i in range(start, stop))
        await asyncio.gather(*batch_of)


async def run(args: argparse.Namespace) -> pstats.Stats:
    profiler = cProfile.Profile()
    with Mosquitto() as broker:
        fake, port = await start_fake(args.dialect, None, hot_line=False)
        bridge: Bridge | None = None
        try:
            creds = MqttCredentials.plain(
                client_id=f"profile-{args.dialect}", host="127.0.0.1", port=broker.port
            )
            config = BridgeConfig(
                port=port,
                credentials=creds,
                dialect=args.dialect,
                timeouts=TIMEOUTS,
                max_inflight=args.window,
                queue_size=max(1000, args.count),
                give_up_after=60.0,
            )
            bridge = Bridge(config=config, online_timeout=120)
            await bridge.start()
            await bridge.wait_online(120)
            await bridge.publish(TOPIC, payload(999_999), qos=1)  # warm-up
            profiler.enable()
            await publishes(bridge, args.qos, args.count, args.window)
            profiler.disable()
        finally:
            try:
                if bridge is not None:
                    await bridge.close()
            finally:
                await stop_fake(fake)
    return pstats.Stats(profiler)


def counters(stats: pstats.Stats) -> dict[str, int]:
    """Call counts of :data:`LOOP_COUNTERS` (summed over every function of that name)."""
    found = dict.fromkeys(LOOP_COUNTERS, 0)
    total = 0
    for (_file, _line, name), (_cc, calls, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += calls
        if name in found:
            found[name] += calls
    found["all calls"] = total
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", default="sim7080", choices=sorted(DIALECTS))
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1))
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", help="write the raw profile here (pstats format)")
    add_loop_option(parser)
    args = parser.parse_args()
    stats = run_on_loop(run(args))
    if args.save:
        stats.dump_stats(args.save)
    print(f"{args.dialect}: {args.count} QoS {args.qos} publishes, window {args.window}")
    for name, calls in counters(stats).items():
        print(f"  {name:12} {calls:>9}  ({calls / args.count:.1f} per publish)")
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats(order).print_stats(args.top)
        lines = text.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"\n-- top {args.top} by {order}")
        print("\n".join(line for line in lines[start:] if line.strip()))


if __name__ == "__main__":
    main()
