"""The fake modem as a process of its own, for the benchmarks.

``python -m tests.fakes`` runs in a separate process (its own interpreter, so its
work never shares the benchmark's event loop or lock) and prints the pty path on
its first line. Paced, it polls its pty (``--hot-line``) unless the benchmark was
given ``--cold-line``. :func:`process_cpu_seconds` is the CPU time a process (the fake's, or
mosquitto's) has used, so a benchmark can print where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
T = TypeVar("T")


def add_line_option(parser: argparse.ArgumentParser) -> None:
    """The benchmarks' ``--cold-line`` option."""
    parser.add_argument(
        "--cold-line",
        action="store_true",
        help="let the paced fake modem sleep between bytes (by default it polls its pty, "
        "--hot-line, so its own wake-up latency is not charged to the line)",
    )


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """The benchmarks' ``--event-loop`` option (read before the loop starts: :func:`run`)."""
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default=None,
        help="the event loop to run the bridge on (default auto, or $ATBRIDGE_EVENT_LOOP: "
        "uvloop when installed; see atbridge.eventloop)",
    )


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark's ``main()`` on the loop its ``--event-loop`` (or the environment)
    chooses, said on stderr first."""
    from atbridge import eventloop

    early = argparse.ArgumentParser(add_help=False)
    add_loop_option(early)
    known, _ = early.parse_known_args()
    try:
        eventloop.select(known.event_loop)
        kind = eventloop.chosen()
    except BaseException:
        main.close()
        raise
    print(f"event loop: {kind}", file=sys.stderr, flush=True)
    return eventloop.run(main, kind)


def in_the_background(pid: int | None) -> str:
    """Run process ``pid`` (the broker) only when a core is otherwise idle: ``SCHED_IDLE``
    (Linux), else the lowest ``nice``; returns what was done, for the benchmark's header.

    On this 2-core machine the paced fake polls its pty on one core, and the bridge (or the
    floor client) shares the other with mosquitto: a broker woken by a publish holds that core
    for a scheduler slice (milliseconds) while the bridge's answer from the modem waits, and
    a round of a few hundred messages then moves by a factor of two. A real broker is on
    another host; in the background it still gets every idle moment (the bridge waits on the
    modem most of the time), so nothing is delivered late for long, and the floor client,
    run in the same rounds, is treated the same. Only for a paced line: unpaced, the bridge
    and the fake keep both cores busy, and a broker in the background would starve (its
    PUBACKs late, its socket buffers full)."""
    if pid is None:
        return "broker: normal priority"
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return "broker: SCHED_IDLE"
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, 19)
            return "broker: nice 19"
        except OSError as exc:
            return f"broker: normal priority ({exc})"


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far, all its threads: the scheduler's run
    time (``/proc/<pid>/task/*/schedstat``, nanoseconds), or ``utime + stime`` from
    ``/proc/<pid>/stat`` (clock ticks) where schedstat is missing. 0.0 once it is gone."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        return total / 1e9
    except FileNotFoundError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_fake(
    dialect: str, baud: int | None, *, hot_line: bool
) -> tuple[asyncio.subprocess.Process, str]:
    """Start the fake (``baud`` None: unpaced); returns the process and its pty path."""
    command = [sys.executable, "-m", "tests.fakes", "--dialect", dialect]
    if baud:
        command += ["--baud", str(baud), *(["--hot-line"] if hot_line else [])]
    fake = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert fake.stdout is not None
    try:
        port = (await asyncio.wait_for(fake.stdout.readline(), 30)).decode().strip()
    except BaseException:
        await stop_fake(fake)
        raise
    if not port.startswith("/dev/"):
        await stop_fake(fake)
        raise RuntimeError(f"the fake modem did not print a pty path (got {port!r})")
    return fake, port


async def stop_fake(fake: asyncio.subprocess.Process) -> None:
    """Stop the fake: SIGTERM, then SIGKILL after 5 s."""
    if fake.returncode is not None:
        return
    fake.terminate()
    try:
        await asyncio.wait_for(fake.wait(), 5)
    except TimeoutError:
        fake.kill()
        await fake.wait()
