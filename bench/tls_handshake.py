"""Host-side TLS handshake cost per dialect at 115200 baud: full vs resumed, TLS 1.2 and 1.3.

For each dialect the fake modem runs as its own process paced at ``--baud`` (8N1);
atbridge opens a TCP socket through it to a TLS mosquitto on 127.0.0.1 whose
certificate is RSA-2048 with an intermediate CA (the size of chain public brokers
send; ``--ecdsa`` for trustme's small ECDSA one), and runs the TLS handshake on the
host (:mod:`atbridge.tls`). Counted are the bytes that crossed the serial line in both
directions (TLS records plus the dialect's send/receive commands and notifications,
as the AT channel counts them) and the seconds:

- *handshake*: from the ClientHello to our Finished sent;
- *connect*: handshake plus MQTT CONNECT/CONNACK (where TLS 1.3's session tickets
  arrive: part of every connection's cost, resumed or not).

Each (dialect, version) runs one full handshake and ``--resumed`` resumed ones (the
session kept by the :class:`~atbridge.tls.TlsClient`, offered on each reconnect after a
clean close); the ratio is resumed / full (median of the resumed runs). A resumed
TLS 1.3 handshake should cost well under half the bytes of a full one.

Last line: a JSON object with every figure. Run from the repository root:
``.venv/bin/python bench/tls_handshake.py [--dialect sim7080] [--baud 115200]``.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import time
from pathlib import Path

from fake_process import ROOT, add_line_option, add_loop_option, start_fake, stop_fake
from fake_process import run as run_on_loop

sys.path.insert(0, str(ROOT))

from atbridge.at_mqtt import ConnAck, Connect, PacketDecoder, encode
from atbridge.credentials import TlsOptions
from atbridge.dialects import DIALECTS, open_dialect
from atbridge.dialects.base import Dialect
from atbridge.modem import Modem
from atbridge.tls import TlsClient
from tests.brokers import Certificates, Mosquitto, TlsListener

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


async def one_connection(
    modem: Modem, dialect: Dialect, client: TlsClient, port: int, client_id: str
) -> dict[str, object]:
    sock = await dialect.open_socket("localhost", port, timeout=60)
    line0, t0 = modem.bytes_written + modem.bytes_read, time.perf_counter()
    tls = await client.connect(sock, timeout=120)
    line1, t1 = modem.bytes_written + modem.bytes_read, time.perf_counter()
    await tls.send(encode(Connect(client_id=client_id, keepalive=60)))
    decoder = PacketDecoder()
    while (packet := decoder.next_packet()) is None:
        decoder.receive_data(await tls.receive())
    assert isinstance(packet, ConnAck) and packet.reason_code == 0, packet
    line2, t2 = modem.bytes_written + modem.bytes_read, time.perf_counter()
    await tls.close()
    info = tls.handshake_info
    assert info is not None
    return {
        "resumed": info.resumed,
        "version": info.version,
        "handshake_bytes": line1 - line0,
        "handshake_s": round(t1 - t0, 3),
        "tls_bytes": info.bytes_sent + info.bytes_received,
        "connect_bytes": line2 - line0,
        "connect_s": round(t2 - t0, 3),
    }


async def measure(
    name: str, version: str, broker: Mosquitto, cafile: Path, args: argparse.Namespace
) -> dict[str, object]:
    fake, port = await start_fake(name, args.baud, hot_line=not args.cold_line)
    try:
        modem = await Modem.open(port, default_timeout=30)
        try:
            dialect, _ = await open_dialect(modem, name)
            await dialect.attach(timeout=60)
            await dialect.activate_data()
            client = TlsClient(TlsOptions(cafile=str(cafile)), "localhost")
            client.context.minimum_version = VERSIONS[version]
            client.context.maximum_version = VERSIONS[version]
            runs = [
                await one_connection(modem, dialect, client, broker.port, f"b-{name}-{i}")
                for i in range(1 + args.resumed)
            ]
        finally:
            await modem.close()
    finally:
        await stop_fake(fake)
    full, resumed = runs[0], runs[1:]
    assert not full["resumed"] and all(run["resumed"] for run in resumed), runs

    def median(key: str) -> float:
        return float(statistics.median(float(str(run[key])) for run in resumed))

    result: dict[str, object] = {"dialect": name, "tls": version, "full": full}
    result["resumed"] = {key: median(key) for key in ("handshake_bytes", "handshake_s",
                                                      "tls_bytes", "connect_bytes",
                                                      "connect_s")}  # fmt: skip
    for key in ("handshake_bytes", "handshake_s", "connect_bytes", "connect_s"):
        result[f"ratio_{key}"] = round(median(key) / float(str(full[key])), 3)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", action="append", choices=sorted(DIALECTS))
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--resumed", type=int, default=3, help="resumed handshakes per run")
    parser.add_argument("--ecdsa", action="store_true", help="a small ECDSA chain, no RSA")
    add_line_option(parser)
    add_loop_option(parser)
    args = parser.parse_args()
    names = args.dialect or sorted(name for name in DIALECTS if name != "generic")
    certs = Certificates(rsa=not args.ecdsa, intermediate=not args.ecdsa)
    results = []
    try:
        cert, key = certs.issue("localhost")
        with Mosquitto(tls=TlsListener(certs.cafile, cert, key)) as broker:
            print(
                f"{'dialect':<10} {'TLS':<4} {'full B':>7} {'full s':>7} {'resumed B':>10} "
                f"{'resumed s':>10} {'B ratio':>8} {'s ratio':>8} {'connect B full/res':>19}"
            )
            for name in names:
                for version in VERSIONS:
                    row = await measure(name, version, broker, certs.cafile, args)
                    results.append(row)
                    full = row["full"]
                    res = row["resumed"]
                    assert isinstance(full, dict) and isinstance(res, dict)
                    print(
                        f"{name:<10} {version:<4} {full['handshake_bytes']:>7} "
                        f"{full['handshake_s']:>7.3f} {res['handshake_bytes']:>10.0f} "
                        f"{res['handshake_s']:>10.3f} {row['ratio_handshake_bytes']:>8.3f} "
                        f"{row['ratio_handshake_s']:>8.3f} "
                        f"{full['connect_bytes']:>9}/{res['connect_bytes']:<9.0f}",
                        flush=True,
                    )
    finally:
        certs.remove()
    chain = "ECDSA P-256, no intermediate" if args.ecdsa else "RSA-2048 with an intermediate"
    print(json.dumps({"baud": args.baud, "chain": chain, "results": results}))


if __name__ == "__main__":
    run_on_loop(main())
