"""Bring-up per dialect: AT commands, bytes and seconds from port open to CONNACK.

For each dialect the fake modem runs as its own process, unpaced and with no network
delay (its registration, DNS and TCP answers come at once), and a
:class:`~atbridge.bridge.Bridge` is started against a mosquitto on a free loopback
port. Every write of the AT channel until the bridge is online (CONNACK accepted) is
noted (``Modem._write`` wrapped in this process): the command lines (writes that start
with ``AT``, ``+++`` escapes included as "other"), the payload writes (MQTT CONNECT
through the socket), the bytes each way (``modem.bytes_written`` /
``modem.bytes_read``) and the seconds from ``start()`` to online. ``--list`` prints
the commands in order. On a real modem each command is a round trip (tens to hundreds
of milliseconds): the count is what to keep low.

Last line: a JSON object. Run from the repository root:
``.venv/bin/python bench/bringup.py [--dialect sim7080] [--list]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_process import add_loop_option, start_fake, stop_fake  # noqa: E402
from fake_process import run as run_on_loop  # noqa: E402

from atbridge import modem as modem_module  # noqa: E402
from atbridge.bridge import Bridge  # noqa: E402
from atbridge.config import BridgeConfig, Timeouts  # noqa: E402
from atbridge.credentials import MqttCredentials  # noqa: E402
from atbridge.dialects import DIALECTS  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

TIMEOUTS = Timeouts(
    probe=30, configure=30, attach=60, activate=60, open_socket=60, connack=30, close=10
)

#: Every write of every Modem in this process while a bring-up runs: (modem id, bytes).
WRITES: list[tuple[int, bytes]] = []
_original_write = modem_module.Modem._write


def _noting_write(self: modem_module.Modem, data: bytes, secret_spans: Any = ()) -> None:
    WRITES.append((id(self), bytes(data)))
    _original_write(self, data, secret_spans)


async def bring_up(name: str, broker: Mosquitto) -> dict[str, Any]:
    fake, port = await start_fake(name, None, hot_line=False)
    bridge: Bridge | None = None
    try:
        creds = MqttCredentials.plain(
            client_id=f"bringup-{name}", host="127.0.0.1", port=broker.port
        )
        config = BridgeConfig(
            port=port, credentials=creds, dialect=name, timeouts=TIMEOUTS, give_up_after=60.0
        )
        WRITES.clear()
        bridge = Bridge(config=config, online_timeout=120)
        t0 = time.perf_counter()
        await bridge.start()
        await bridge.wait_online(120)
        seconds = time.perf_counter() - t0
        modem = bridge.modem
        assert modem is not None
        written, read = modem.bytes_written, modem.bytes_read
        writes = list(WRITES)
    finally:
        try:
            if bridge is not None:
                await bridge.close()
        finally:
            await stop_fake(fake)
    commands = [
        data.decode("ascii", "replace").strip() for _, data in writes if data.startswith(b"AT")
    ]
    others = [data for _, data in writes if not data.startswith(b"AT") and data.strip()]
    return {
        "dialect": name,
        "commands": len(commands),
        "command_lines": commands,
        "other_writes": len(others),
        "bytes_written": written,
        "bytes_read": read,
        "seconds": round(seconds, 4),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", action="append", choices=sorted(DIALECTS))
    parser.add_argument("--rounds", type=int, default=3, help="bring-ups per dialect (median s)")
    parser.add_argument("--list", action="store_true", help="print every command line")
    add_loop_option(parser)
    args = parser.parse_args()
    modem_module.Modem._write = _noting_write  # type: ignore[method-assign]
    results = []
    with Mosquitto() as broker:
        for name in args.dialect or list(DIALECTS):
            runs = [await bring_up(name, broker) for _ in range(args.rounds)]
            result = dict(runs[0])
            result["seconds"] = round(statistics.median(r["seconds"] for r in runs), 4)
            result["round_seconds"] = [r["seconds"] for r in runs]
            results.append(result)
            print(
                f"{name:10} {result['commands']:>3} AT commands, {result['other_writes']} "
                f"payload writes, {result['bytes_written']} B out / {result['bytes_read']} B in, "
                f"{result['seconds'] * 1000:.0f} ms to CONNACK (rounds "
                + "/".join(f"{s * 1000:.0f}" for s in result["round_seconds"])
                + ")",
                flush=True,
            )
            if args.list:
                for line in result["command_lines"]:
                    print(f"    {line}")
    print(json.dumps({"fake_network_delay_s": 0, "results": results}))


if __name__ == "__main__":
    run_on_loop(main())
