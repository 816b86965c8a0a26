"""Instructions per publish of the bridge's process, counted by cachegrind: the CPU figure
that does not move with the machine's load.

Timed CPU figures (``bench/unpaced.py``'s CPU seconds per 10,000 QoS 1 publishes) spread by
±25 % on a shared 2-core VM; an instruction count is the same from run to run within a
percent. For each dialect and each *variant* of the bridge, this benchmark runs a child
process under ``valgrind --tool=cachegrind --cache-sim=no``: it brings a
:class:`~atbridge.bridge.Bridge` online through the fake modem (its own process, not traced,
unpaced: a USB modem) and a mosquitto on a free loopback port, then publishes ``--small``
and, in a second child, ``--large`` messages (32-byte payloads). The difference of the two
counts over the difference of the counts of messages is the instructions per publish, with
start-up, bring-up and close cancelled out. Phases:

- ``qos0``: QoS 0 publishes one after the other, each awaited (one AT exchange each);
- ``qos1``: QoS 1 publishes started together in batches of 100, window 10. Under valgrind
  the bridge runs about 50 times slower, so more PUBACK notifications share one read than
  at full speed: the exchanges per message are somewhat fewer than in ``unpaced.py``, the
  same for every variant of the run.

Variants, all measured in the same run:

- ``asyncio``: this checkout on the standard event loop;
- ``uvloop``: this checkout on uvloop (``atbridge[fast]``, :mod:`atbridge.eventloop`);
- ``--baseline REV``: the atbridge package of git revision ``REV`` (a temporary worktree;
  only its ``atbridge/`` is used, the fake and the broker are this checkout's) on the
  standard loop. The default ``a71884f`` is the last commit before issue 16 began.

Each variant's figure is printed with its ratio to the baseline (``baseline / variant``:
how many times fewer instructions). Last line: a JSON object with every figure. Run from the
repository root: ``.venv/bin/python bench/instructions.py [--dialect sim7080 --dialect
nrf91-slm] [--small 200 --large 1200] [--baseline a71884f | --no-baseline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "a71884f"
PHASES = ("qos0", "qos1")
TOPIC = "bench/t"


def payload(index: int) -> bytes:
    return (b"%06d:" % index + b"x" * 32)[:32]


# -- the child: one bridge, one phase, counted by cachegrind ---------------------------------


async def child(dialect: str, phase: str, count: int) -> None:
    sys.path.insert(1, str(ROOT / "bench"))
    from fake_process import start_fake, stop_fake

    from atbridge.bridge import Bridge
    from atbridge.config import BridgeConfig, Timeouts
    from atbridge.credentials import MqttCredentials
    from tests.brokers import Mosquitto

    timeouts = Timeouts(
        probe=300, configure=300, attach=300, activate=300, open_socket=300, connack=300, close=60
    )
    with Mosquitto() as broker:
        fake, port = await start_fake(dialect, None, hot_line=False)
        try:
            creds = MqttCredentials.plain(client_id="ir", host="127.0.0.1", port=broker.port)
            config = BridgeConfig(
                port=port,
                credentials=creds,
                dialect=dialect,
                timeouts=timeouts,
                max_inflight=10,
                queue_size=max(1000, count),
                give_up_after=600.0,
            )
            bridge = Bridge(config=config, online_timeout=600)
            try:
                await bridge.start()
                await bridge.wait_online(600)
                await bridge.publish(TOPIC, payload(0), qos=1)  # warm-up
                if phase == "qos0":
                    for i in range(count):
                        await bridge.publish(TOPIC, payload(i), qos=0)
                else:
                    for start in range(0, count, 100):
                        stop = min(count, start + 100)
                        await asyncio.gather(
                            *(bridge.publish(TOPIC, payload(i), qos=1) for i in range(start, stop))
                        )
            finally:
                await bridge.close()
        finally:
            await stop_fake(fake)


def child_main(argv: list[str]) -> None:
    dialect, phase, count, loop, package = argv[0], argv[1], int(argv[2]), argv[3], argv[4]
    # This checkout's bench/, tests/ (the fake, the broker); atbridge from ``package``.
    sys.path[:0] = [package, str(ROOT)]
    factory = asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(child(dialect, phase, count))


# -- the parent ------------------------------------------------------------------------------


def counted(dialect: str, phase: str, count: int, loop: str, package: Path) -> int:
    """Instructions of one child run (cachegrind's ``I refs``)."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        dialect,
        phase,
        str(count),
        loop,
        str(package),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def per_publish(dialect: str, phase: str, loop: str, package: Path, small: int, large: int) -> int:
    low = counted(dialect, phase, small, loop, package)
    high = counted(dialect, phase, large, loop, package)
    return round((high - low) / (large - small))


def package_dir(where: Path) -> Path:
    """A directory holding only ``atbridge`` (a link to ``where/atbridge``)."""
    holder = Path(tempfile.mkdtemp(prefix="atbridge-pkg-"))
    (holder / "atbridge").symlink_to(where / "atbridge")
    return holder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", action="append", help="repeatable (default sim7080)")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--baseline", default=BASELINE, help="git revision (default %(default)s)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py needs valgrind (apt-get install valgrind)")
    dialects = args.dialect or ["sim7080"]
    cleanup: list[Path] = []
    variants: list[tuple[str, str, Path]] = [
        ("asyncio", "asyncio", package_dir(ROOT)),
        ("uvloop", "uvloop", package_dir(ROOT)),
    ]
    cleanup += [v[2] for v in variants]
    worktree: Path | None = None
    if not args.no_baseline:
        worktree = Path(tempfile.mkdtemp(prefix="atbridge-baseline-"))
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(worktree), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        variants.insert(0, (f"baseline {args.baseline}", "asyncio", package_dir(worktree)))
        cleanup.append(variants[0][2])
    results: dict[str, Any] = {}
    try:
        for dialect in dialects:
            for phase in PHASES:
                row: dict[str, int] = {}
                for name, loop, package in variants:
                    row[name] = per_publish(dialect, phase, loop, package, args.small, args.large)
                base_name = variants[0][0]
                base = row[base_name]
                for name, figure in row.items():
                    ratio = base / figure if figure else float("nan")
                    print(
                        f"{dialect:10} {phase}  {name:18} {figure:>9,} instructions/publish  "
                        f"{ratio:.2f}x fewer than {base_name}",
                        flush=True,
                    )
                results.setdefault(dialect, {})[phase] = row
    finally:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=ROOT,
                capture_output=True,
            )
    print(
        json.dumps(
            {
                "small": args.small,
                "large": args.large,
                "baseline": None if args.no_baseline else args.baseline,
                "instructions_per_publish": results,
            }
        )
    )


if __name__ == "__main__":
    main()
