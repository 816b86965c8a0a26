"""AT command round trips per second: atbridge's AT channel against bare pyserial-asyncio-fast.

Both talk to the same fake modem (``python -m tests.fakes``, a separate process on a
real pty) in the same run, in alternating rounds, so machine noise hits both alike.
The bare client is the least a correct client can do: write the command, wait for
``\\r\\nOK\\r\\n`` at the end of the buffer. atbridge does everything it always does
(parser, claim rules, URC routing, transcript hook, lock, timeout). A third client, for
reference, uses no serial library at all (the pty's descriptor read with one ``os.read``
when the loop sees it readable): the floor that the rig itself (two pty hops, two
processes waking up) sets for any asyncio client.

Modes:
- ``--mode fast`` (default): the fake answers as fast as it can. Target: atbridge
  >= 0.8x bare.
- ``--mode paced``: the fake paces its line at ``--baud`` (8N1: 10 bits a byte, both
  directions). The bound is the line rate: (baud / 10) bytes per second over the
  bytes on the wire per round trip (command + terminator + response). Target:
  atbridge >= 0.95x the bound. The paced fake is an ideal modem (its answer starts
  on the wire the moment the command's last byte is in) and polls its pty instead of
  sleeping (``--hot-line``; ``--cold-line`` turns that off), so what is left over the
  bound is the pty hops and the client.

The last line printed is a JSON object with the figures. Run from the repository
root: ``.venv/bin/python bench/at_roundtrip.py [--mode paced]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import serial_asyncio_fast
from fake_process import add_line_option, add_loop_option, start_fake, stop_fake
from fake_process import run as run_on_loop

from atbridge.modem import Modem

COMMAND = "AT+CGSN"
LINE_ENDING = b"\r\n"


async def atbridge_round(port: str, count: int) -> float:
    modem = await Modem.open(port)
    try:
        start = time.perf_counter()
        for _ in range(count):
            await modem.command(COMMAND)
        return count / (time.perf_counter() - start)
    finally:
        await modem.close()


class _Bare(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.done: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(b"\r\nOK\r\n") and self.done is not None and not self.done.done():
            self.done.set_result(None)


async def bare_round(port: str, count: int) -> float:
    loop = asyncio.get_running_loop()
    transport, protocol = await serial_asyncio_fast.create_serial_connection(
        loop, _Bare, port, baudrate=115200
    )
    assert isinstance(protocol, _Bare)
    try:
        # Wake it and start from a clean buffer (the Serial LTE Modem has echo off).
        for line in (b"AT",):
            protocol.done = loop.create_future()
            transport.write(line + LINE_ENDING)
            await asyncio.wait_for(protocol.done, 5)
            protocol.buffer.clear()
        request = COMMAND.encode() + LINE_ENDING
        start = time.perf_counter()
        for _ in range(count):
            protocol.done = loop.create_future()
            protocol.buffer.clear()
            transport.write(request)
            await asyncio.wait_for(protocol.done, 5)
        return count / (time.perf_counter() - start)
    finally:
        transport.close()
        await asyncio.sleep(0)


async def raw_fd_round(port: str, count: int) -> float:
    """The rig's floor: no serial library at all, the pty's descriptor watched by the loop
    and read with one ``os.read`` (what any asyncio client must at least pay)."""
    import os
    import tty

    loop = asyncio.get_running_loop()
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    buffer = bytearray()
    done: asyncio.Future[None] | None = None

    def readable() -> None:
        try:
            buffer.extend(os.read(fd, 4096))
        except BlockingIOError:
            return
        if buffer.endswith(b"\r\nOK\r\n") and done is not None and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        request = COMMAND.encode() + LINE_ENDING
        start = time.perf_counter()
        for _ in range(count):
            done = loop.create_future()
            buffer.clear()
            os.write(fd, request)
            await asyncio.wait_for(done, 5)
        return count / (time.perf_counter() - start)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def response_size(port: str) -> int:
    """Bytes the fake sends back for one COMMAND (measured, not assumed)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await serial_asyncio_fast.create_serial_connection(
        loop, _Bare, port, baudrate=115200
    )
    assert isinstance(protocol, _Bare)
    try:
        for line in (b"AT", COMMAND.encode()):
            protocol.done = loop.create_future()
            protocol.buffer.clear()
            transport.write(line + LINE_ENDING)
            await asyncio.wait_for(protocol.done, 5)
        return len(protocol.buffer)
    finally:
        transport.close()
        await asyncio.sleep(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fast", "paced"), default="fast")
    parser.add_argument("--baud", type=int, default=115200)
    add_line_option(parser)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=None, help="round trips per round")
    add_loop_option(parser)
    args = parser.parse_args()
    paced = args.mode == "paced"
    count = args.count or (100 if paced else 1000)
    fake, port = await start_fake(
        "nrf91-slm", args.baud if paced else None, hot_line=not args.cold_line
    )
    try:
        ours: list[float] = []
        bare: list[float] = []
        raw: list[float] = []
        for _ in range(args.rounds):
            ours.append(await atbridge_round(port, count))
            bare.append(await bare_round(port, count))
            raw.append(await raw_fd_round(port, count))
        wire = len(COMMAND) + len(LINE_ENDING) + await response_size(port)
    finally:
        await stop_fake(fake)
    ours_rate = statistics.median(ours)
    bare_rate = statistics.median(bare)
    raw_rate = statistics.median(raw)
    # Each round's atbridge and bare figures were taken back to back: their ratio is what
    # machine noise disturbs least, and the median of those ratios is the headline.
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    result: dict[str, object] = {
        "mode": args.mode,
        "command": COMMAND,
        "round_trips_per_round": count,
        "rounds": args.rounds,
        "unit": "round trips/s (median over rounds); ratios: median of per-round ratios",
        "atbridge_per_s": round(ours_rate, 1),
        "bare_pyserial_asyncio_fast_per_s": round(bare_rate, 1),
        "ratio_vs_bare": round(ratio, 3),
        "raw_fd_per_s": round(raw_rate, 1),
    }
    print(f"atbridge AT channel:        {ours_rate:9.1f} round trips/s (median of {args.rounds})")
    print(f"bare pyserial-asyncio-fast: {bare_rate:9.1f} round trips/s")
    print(f"raw os.read client (floor): {raw_rate:9.1f} round trips/s")
    print(f"ratio atbridge / bare:      {ratio:9.3f}   (target >= 0.8; median of the rounds)")
    if paced:
        bound = args.baud / 10 / wire
        result.update(
            baud=args.baud,
            bytes_on_wire_per_round_trip=wire,
            line_rate_bound_per_s=round(bound, 1),
            ratio_vs_line_rate=round(ours_rate / bound, 3),
            bare_ratio_vs_line_rate=round(bare_rate / bound, 3),
            raw_fd_ratio_vs_line_rate=round(raw_rate / bound, 3),
        )
        print(
            f"line-rate bound:            {bound:9.1f} round trips/s "
            f"({wire} B on the wire at {args.baud} baud)"
        )
        print(f"ratio atbridge / bound:     {ours_rate / bound:9.3f}   (target >= 0.95)")
        print(
            f"the same for bare / raw:    {bare_rate / bound:9.3f} / {raw_rate / bound:.3f}"
            "   (what the rig lets a client reach)"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    run_on_loop(main())
