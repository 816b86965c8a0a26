"""Fuzz the AT parser for minutes: the checks of ``tests/test_fuzz_at.py``, at length.

Each round picks a dialect, builds an input (random bytes, or real output of that
dialect mutated: bytes flipped, cut and inserted, numbers of thousands of digits,
lines past the 8 KiB bound), splits it into random chunks and checks that the parser
raises nothing and gives the same events, pending bytes and protocol-error count as
for the whole input. An unexpected exception or a chunking difference is printed with
its seed (``--seed`` replays a run).

Run from the repository root: ``.venv/bin/python bench/fuzz_at.py --seconds 120``.
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_fuzz_at import DIALECTS, check, random_cuts, sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=None, help="the first round's seed")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    deadline = time.monotonic() + args.seconds
    tried = 0
    total_bytes = 0
    failures: Counter[str] = Counter()
    first: dict[str, int] = {}
    while time.monotonic() < deadline:
        round_seed = seed + tried
        rng = random.Random(round_seed)
        dialect = rng.choice(DIALECTS)
        if rng.random() < 0.25:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(600)))
        else:
            data = sample(rng, dialect)
        cuts = random_cuts(rng, data)
        tried += 1
        total_bytes += len(data)
        try:
            check(dialect, data, cuts, expect_prompt=rng.random() < 0.5)
        except AssertionError as exc:
            kind = f"chunking: {exc}"
            failures[kind] += 1
            first.setdefault(kind, round_seed)
        except Exception:
            kind = "exception: " + traceback.format_exc().strip().splitlines()[-1]
            failures[kind] += 1
            first.setdefault(kind, round_seed)
    for kind, count in failures.most_common():
        print(f"{count:8d}  {kind}  (first at seed {first[kind]})")
    figures = {
        "seconds": args.seconds,
        "seed": seed,
        "inputs": tried,
        "bytes": total_bytes,
        "unexpected_exceptions": sum(c for k, c in failures.items() if k.startswith("exc")),
        "chunking_differences": sum(c for k, c in failures.items() if k.startswith("chunk")),
    }
    print(
        f"{tried} inputs ({total_bytes} bytes) in {args.seconds:g} s over {len(DIALECTS)} dialects"
    )
    print(json.dumps(figures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
