"""Soak: thousands of QoS 1 messages through a fake modem while random faults hit it (issue 12).

    python bench/soak.py --dialect sim7080 --messages 10000 [--seed N] [--fault-every 200]
                         [--faults modem_reboot,pdp_drop,...] [--window 8] [--by-id]

Runs in one process: a mosquitto with persistence on a free loopback port, a paho
subscriber with a persistent session (``clean_session=False``), a fake modem of the chosen
dialect, a TCP proxy between the fake and the broker (for TCP resets) and a
:class:`~atbridge.bridge.Bridge`. It publishes ``--messages`` numbered QoS 1 messages, at
most ``--window`` waiting for their PUBACK at once, and every ``--fault-every`` messages on
average (seeded) one fault of ``--faults`` hits: the faults of the fault matrix
(``tests/test_fault_matrix.py``). With ``--by-id`` the fake is served through a
``/dev/serial/by-id``-like symlink, so every reboot is also the device going away and
coming back under a new pty.

It prints, and with ``--json`` writes as one JSON object:

- **lost**: messages the broker acknowledged (PUBACK) that the subscriber never received.
  The broker persists its sessions, so a broker restart loses nothing on its side: a lost
  message is the bridge's loss (or a QoS 1 message given up as poison, counted apart);
- **duplicates**: extra deliveries, split by DUP set (a broker redelivery) or not (the
  bridge resent a message in flight at a fault, as QoS 1 permits);
- throughput (messages acknowledged per second, faults and recoveries included), the
  faults and each one's recovery time (fault to the next PUBACK), and the process's RSS
  after the bridge got online, at each quarter of the run and at the end (this process
  holds the bridge, the fake and paho, which keeps a count per message number, and the
  set of numbers acknowledged: some 100 bytes a message of the run's own; mosquitto is
  its own process).

With ``--trace-memory`` it also traces allocations (:mod:`tracemalloc`, which slows the
run down and costs RSS of its own) and reports how much of what was allocated after the
first quarter of the run is still held by code in ``atbridge/`` at the end, apart from
what the fake modem (``tests/fakes/``) holds: the bridge's own growth, whatever the fake
and the harness keep.

The exit status is 1 when a message was lost or the RSS grew by more than ``--rss-bound``
MiB, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atbridge.modem as modem_module
from atbridge import eventloop
from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.dialects.nrf91 import NordicDialect
from atbridge.dialects.nrf91_sm import Nrf91Sm
from atbridge.dialects.simcom import SimcomDialect
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fault_matrix import ResettingProxy, inject

#: The faults a soak draws from (``device_gone`` is a reboot with ``--by-id``).
SOAK_FAULTS = (
    "broker_restart",
    "modem_reboot",
    "pdp_drop",
    "tcp_reset",
    "peer_close",
    "garbage",
    "dropped_response",
)
TIMEOUTS = Timeouts(probe=10, configure=10, attach=10, activate=10, open_socket=10, connack=10)


def rss_mib() -> float:
    """This process's resident set size, MiB (``/proc/self/status`` VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Counter(PahoPeer):
    """The persistent paho subscriber, keeping only a count per message number (and how
    many repeats had DUP set), so its own memory does not grow with the run."""

    def __init__(self, port: int, client_id: str) -> None:
        self.counts: dict[int, int] = {}
        self.repeats_with_dup = 0
        super().__init__(port, client_id, clean_session=False)

    def _on_message(self, _client: object, _userdata: object, message: object) -> None:
        number = int(bytes(message.payload[:8]))  # type: ignore[attr-defined]
        with self._changed:
            self.counts[number] = self.counts.get(number, 0) + 1
            if self.counts[number] > 1 and message.dup:  # type: ignore[attr-defined]
                self.repeats_with_dup += 1
            self._changed.notify_all()

    def wait_for_numbers(self, wanted: set[int], timeout: float) -> None:
        """Block (at most ``timeout`` s) until every number of ``wanted`` has arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not wanted <= self.counts.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)


@dataclass
class Run:
    """What a soak counted."""

    acknowledged: set[int] = field(default_factory=set)
    refused: int = 0
    faults: list[tuple[str, float]] = field(default_factory=list)  # (fault, recovery s)
    pending_fault: tuple[str, float] | None = None

    def acked(self, number: int) -> None:
        self.acknowledged.add(number)
        if self.pending_fault is not None:
            fault, at = self.pending_fault
            self.faults.append((fault, time.monotonic() - at))
            self.pending_fault = None


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    faults = [f for f in args.faults.split(",") if f]
    # A lost answer costs seconds on a fake, not the minute a real network may need.
    NordicDialect.send_timeout = 2.0
    NordicDialect.data_mode_entry_timeout = 2.0
    Nrf91Sm.hex_send_timeout = 2.0
    SimcomDialect.send_timeout = 2.0
    modem_module.ESCAPE_GUARD = 0.05  # the fakes need no guard
    topic = f"soak/{args.dialect}"
    run = Run()
    with Mosquitto(persistence=True) as broker, tempfile.TemporaryDirectory() as by_id:
        subscriber = Counter(broker.port, f"soak-sub-{args.dialect}")
        subscriber.subscribe(topic, 1)
        try:
            async with (
                FakeModem(
                    dialect=args.dialect,
                    registration_delay=0.05,
                    by_id=by_id if args.by_id else None,
                ) as fake,
                ResettingProxy(broker.port) as proxy,
            ):
                config = BridgeConfig(
                    port=await fake.wait_for_device(),
                    credentials=MqttCredentials.plain(
                        client_id=f"soak-{args.dialect}", host="127.0.0.1", port=proxy.port
                    ),
                    timeouts=TIMEOUTS,
                    backoff_initial=0.05,
                    backoff_max=0.5,
                    give_up_after=300.0,
                    healthy_after=0.5,
                    queue_size=max(args.window * 2, 100),
                )
                async with Bridge(config=config) as bridge:
                    rss_start = rss_mib()
                    rss_samples: list[float] = []
                    snapshots: list[tracemalloc.Snapshot] = []
                    started = time.monotonic()
                    window = asyncio.Semaphore(args.window)
                    next_fault = rng.randint(1, 2 * args.fault_every) if faults else None

                    async def publish(number: int) -> None:
                        try:
                            await bridge.publish(topic, b"%08d" % number + b"." * 56, qos=1)
                            run.acked(number)
                        except Exception as error:  # a message given up as poison
                            run.refused += 1
                            print(f"message {number} refused: {error}", file=sys.stderr)
                        finally:
                            window.release()

                    tasks: set[asyncio.Task[None]] = set()  # only those still running
                    quarter = max(args.messages // 4, 1)
                    for number in range(args.messages):
                        if number % quarter == 0:
                            rss_samples.append(round(rss_mib(), 1))
                            if number == quarter and tracemalloc.is_tracing():
                                snapshots.append(tracemalloc.take_snapshot())
                        await window.acquire()
                        task = asyncio.create_task(publish(number))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                        if next_fault is not None and number >= next_fault:
                            fault = rng.choice(faults)
                            await inject(fault, fake, broker, proxy.reset)
                            run.pending_fault = (fault, time.monotonic())
                            next_fault = number + rng.randint(1, 2 * args.fault_every)
                    await asyncio.wait_for(asyncio.gather(*tasks), args.drain_timeout)
                    elapsed = time.monotonic() - started
                    await bridge.wait_online(timeout=args.drain_timeout)
                    counters = bridge.counters
                    rss_end = rss_mib()
                    if snapshots:
                        snapshots.append(tracemalloc.take_snapshot())
            # What is missing after this is counted as lost.
            await asyncio.to_thread(
                subscriber.wait_for_numbers, run.acknowledged, args.drain_timeout
            )
        finally:
            await asyncio.to_thread(subscriber.close)
    received = set(subscriber.counts)
    extra = sum(count - 1 for count in subscriber.counts.values())
    dup_set = subscriber.repeats_with_dup
    recoveries = [seconds for _fault, seconds in run.faults]
    traced = {}
    if len(snapshots) == 2:
        for name, pattern in (("atbridge", "*/atbridge/*"), ("fake", "*/tests/fakes/*")):
            where = [tracemalloc.Filter(True, pattern, all_frames=True)]
            first, last = (snapshot.filter_traces(where) for snapshot in snapshots)
            grown = sum(stat.size_diff for stat in last.compare_to(first, "filename"))
            traced[f"{name}_growth_kib"] = round(grown / 1024, 1)
    return {
        "dialect": args.dialect,
        "seed": args.seed,
        "messages": args.messages,
        "acknowledged": len(run.acknowledged),
        "refused": run.refused,
        "lost": len(run.acknowledged - received),
        "duplicates": extra,
        "duplicates_with_dup": dup_set,
        "throughput_per_s": round(len(run.acknowledged) / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "faults": len(run.faults),
        "faults_by_kind": {f: sum(1 for g, _s in run.faults if g == f) for f in faults},
        "recovery_s": {
            "median": round(statistics.median(recoveries), 3) if recoveries else None,
            "max": round(max(recoveries), 3) if recoveries else None,
        },
        "recovery_max_by_kind": {
            f: round(max(s for g, s in run.faults if g == f), 3)
            for f in faults
            if any(g == f for g, _s in run.faults)
        },
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_each_quarter_mib": [*rss_samples, round(rss_end, 1)],
        **({"traced_after_first_quarter": traced} if traced else {}),
        "counters": {
            "abandoned_qos1": counters.abandoned_qos1,
            "waiting_qos1": counters.waiting_qos1,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", default="sim7080", choices=sorted(DIALECTS))
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--fault-every", type=int, default=200, help="mean messages between faults (default 200)"
    )
    parser.add_argument("--faults", default=",".join(SOAK_FAULTS), help="comma-separated")
    parser.add_argument("--window", type=int, default=8, help="QoS 1 publishes in flight")
    parser.add_argument("--by-id", action="store_true", help="reboots re-enumerate the device")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--rss-bound", type=float, default=20.0, help="MiB of growth allowed")
    parser.add_argument("--json", type=Path, help="also write the figures there")
    parser.add_argument(
        "--trace-memory", action="store_true", help="attribute memory growth (tracemalloc)"
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        help="the event loop (default auto: uvloop when installed; atbridge.eventloop)",
    )
    args = parser.parse_args(argv)
    unknown = {f for f in args.faults.split(",") if f} - set(SOAK_FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}: use {', '.join(SOAK_FAULTS)}")
    if args.messages < 1 or args.window < 1 or args.fault_every < 1:
        parser.error("--messages, --window and --fault-every must be positive")
    if args.trace_memory:
        tracemalloc.start(16)
    figures = eventloop.run(soak(args), eventloop.resolve(args.event_loop))
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    grown = figures["rss_end_mib"] - figures["rss_start_mib"]
    ok = figures["lost"] == 0 and grown <= args.rss_bound
    print(
        f"{'PASS' if ok else 'FAIL'}: {figures['lost']} lost, RSS grew {grown:.1f} MiB "
        f"(bound {args.rss_bound:g})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
