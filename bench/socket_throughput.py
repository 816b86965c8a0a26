"""Socket throughput per dialect through the fake modem paced at 115200 baud.

For each dialect the fake modem runs as its own process (``python -m tests.fakes
--dialect D --baud 115200``) on a pty; atbridge opens a socket through it to a TCP
server on 127.0.0.1 and moves ``--size`` bytes up (host -> modem -> server) and
down (server -> modem -> host). The bytes that crossed the serial line in both
directions (payload plus the dialect's command framing, notifications and reads)
are counted by the AT channel; the line-rate bound is the time those bytes need on
an 8N1 line (10 bits a byte): ``bound = wire_bytes / (baud / 10)``. The figure is
``bound / measured``; the target is >= 0.9.

Last line: a JSON object with every figure. Run from the repository root:
``.venv/bin/python bench/socket_throughput.py [--size 16384] [--dialect nrf91-sm]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from fake_process import add_line_option, add_loop_option, start_fake, stop_fake
from fake_process import run as run_on_loop

from atbridge.dialects import DIALECTS, open_dialect
from atbridge.modem import Modem


class Server:
    """A TCP server that counts what it receives and sends what it is told to."""

    def __init__(self) -> None:
        self.received = 0
        self.got_all = asyncio.Event()
        self.expect = 0
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        while data := await reader.read(65536):
            self.received += len(data)
            if self.expect and self.received >= self.expect:
                self.got_all.set()

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def measure(name: str, size: int, baud: int, *, hot_line: bool) -> dict[str, object]:
    fake, port = await start_fake(name, baud, hot_line=hot_line)
    server = Server()
    try:
        server_port = await server.start()
        modem = await Modem.open(port, default_timeout=30)
        try:
            dialect, _ = await open_dialect(modem, name)
            await dialect.attach(timeout=60)
            await dialect.activate_data()
            sock = await dialect.open_socket("127.0.0.1", server_port, timeout=60)
            await asyncio.wait_for(server.connected.wait(), 30)
            payload = bytes((i * 31 + 7) % 256 for i in range(size))
            rate = baud / 10

            # Up: host -> modem -> server.
            server.expect = size
            w0, r0, t0 = modem.bytes_written, modem.bytes_read, time.perf_counter()
            await sock.send(payload)
            await asyncio.wait_for(server.got_all.wait(), 600)
            up_time = time.perf_counter() - t0
            up_wire = modem.bytes_written - w0 + modem.bytes_read - r0

            # Down: server -> modem -> host.
            assert server.writer is not None
            w0, r0, t0 = modem.bytes_written, modem.bytes_read, time.perf_counter()
            server.writer.write(payload)
            got = 0
            async with asyncio.timeout(600):
                while got < size:
                    got += len(await sock.receive())
            down_time = time.perf_counter() - t0
            down_wire = modem.bytes_written - w0 + modem.bytes_read - r0
            await sock.close()
        finally:
            await modem.close()
    finally:
        await server.stop()
        await stop_fake(fake)
    return {
        "dialect": name,
        "payload_bytes": size,
        "up_bytes_per_s": round(size / up_time),
        "up_wire_bytes": up_wire,
        "up_ratio_vs_line_rate": round(up_wire / rate / up_time, 3),
        "down_bytes_per_s": round(size / down_time),
        "down_wire_bytes": down_wire,
        "down_ratio_vs_line_rate": round(down_wire / rate / down_time, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--baud", type=int, default=115200)
    add_line_option(parser)
    parser.add_argument("--dialect", action="append", choices=sorted(DIALECTS))
    add_loop_option(parser)
    args = parser.parse_args()
    results = []
    for name in args.dialect or sorted(DIALECTS):
        result = await measure(name, args.size, args.baud, hot_line=not args.cold_line)
        results.append(result)
        print(
            f"{name:10} up {result['up_bytes_per_s']:>6} B/s "
            f"({result['up_ratio_vs_line_rate']:.3f} of line rate, "
            f"{result['up_wire_bytes']} B on the wire)   "
            f"down {result['down_bytes_per_s']:>6} B/s "
            f"({result['down_ratio_vs_line_rate']:.3f} of line rate, "
            f"{result['down_wire_bytes']} B on the wire)",
            flush=True,
        )
    print(json.dumps({"baud": args.baud, "target_ratio": 0.9, "results": results}))


if __name__ == "__main__":
    run_on_loop(main())
