"""Fuzz the MQTT decoder, the MQTT session and the loaders for minutes (issue 12).

    python bench/fuzz_mqtt.py --seconds 180 [--seed N] [--only decoder,session]

Runs the targets of ``tests/test_fuzz_mqtt.py`` (the CI runs them under hypothesis
with a few hundred examples each) on inputs drawn with :mod:`random` from the same
corpus of real broker frames, mutated (bit flips, inserted, deleted and repeated
bytes, truncation) or plain random, fed in random chunks; and random TOML files and
environments for the loaders. The time is shared evenly among the targets, round
robin. It prints, per target, the inputs tried and the unexpected exceptions (any
exception but the documented ones, or a broken promise: an AssertionError); the bar
is 0. The first few unexpected ones are printed with their seed, to replay them.
The exit status is 1 when any was found.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_fuzz_mqtt import TARGETS, random_input


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total time (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets, comma-separated")
    args = parser.parse_args(argv)
    targets = [t for t in args.only.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}: use {', '.join(TARGETS)}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    tried = dict.fromkeys(targets, 0)
    failed = dict.fromkeys(targets, 0)
    shown = 0
    deadline = time.monotonic() + args.seconds
    print(f"fuzzing {', '.join(targets)} for {args.seconds:g} s from seed {seed}")
    while time.monotonic() < deadline:
        for target in targets:
            ends = min(deadline, time.monotonic() + 0.5)  # a time slice each, in turn
            while time.monotonic() < ends:
                case_seed = seed + sum(tried.values())
                call = random_input(random.Random(case_seed), target)
                tried[target] += 1
                try:
                    call()
                except Exception:  # anything that escaped the targets' own except clauses
                    failed[target] += 1
                    if shown >= 5:
                        continue
                    shown += 1
                    print(
                        f"\n{target}: unexpected, replay with --seed {case_seed} --only "
                        f"{target} (first input)\n{traceback.format_exc()}"
                    )
    width = max(map(len, targets))
    print(f"\n{'target':<{width}}  {'inputs':>10}  unexpected")
    for target in targets:
        print(f"{target:<{width}}  {tried[target]:>10,}  {failed[target]}")
    print(f"{'total':<{width}}  {sum(tried.values()):>10,}  {sum(failed.values())}")
    return 1 if any(failed.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
