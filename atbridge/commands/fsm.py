"""``atbridge fsm``: the connection lifecycle's states and transitions.

Both outputs are drawn from the one declaration in :mod:`atbridge.fsm`
(``STATES`` and ``TRANSITIONS``): ``--mermaid`` prints the Mermaid
``stateDiagram-v2`` the README shows, without it a plain list.
"""

from __future__ import annotations

import argparse

HELP = "print the connection lifecycle's states and transitions (--mermaid: a diagram)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mermaid", action="store_true", help="print a Mermaid stateDiagram-v2 instead"
    )


def run(args: argparse.Namespace) -> int:
    from atbridge.fsm import STATES, TRANSITIONS, mermaid

    if args.mermaid:
        print(mermaid())
        return 0
    print("states:")
    for state in STATES:
        print(f"  {state}")
    print("transitions (trigger: from -> to [when]):")
    width = max(len(t["trigger"]) for t in TRANSITIONS)
    for transition in TRANSITIONS:
        sources = transition["source"]
        source = ", ".join(sources) if isinstance(sources, list) else str(sources)
        condition = transition.get("conditions")
        when = f"  [{str(condition).replace('_', ' ')}]" if condition else ""
        line = f"{transition['trigger'] + ':':<{width + 1}} {source} -> {transition['dest']}"
        print(f"  {line}{when}")
    return 0
