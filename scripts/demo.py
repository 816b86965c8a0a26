"""The README's first command: atbridge takes a fake nRF9160 online and speaks MQTT through it.

Starts a local mosquitto (free loopback port) and the fake modem (``python -m
tests.fakes``, Serial LTE Modem dialect) as its own process on a real pty. Then:

1. ``atbridge info`` — identity, SIM, functional mode, registration, signal;
2. the lifecycle through every state to online, each transition printed as it
   happens: probing, configuring, attaching (the modem searching, then registered),
   opening the socket through the modem's TCP stack, MQTT CONNECT, CONNACK;
3. a message published by the device (QoS 1, acknowledged) and seen by a second
   MQTT client, and a message from that client delivered to the device;
4. a clean disconnect.

Everything it starts is stopped, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGISTRATION_DELAY = 2.0


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


async def run_lifecycle(port: str, broker_port: int) -> None:
    from atbridge.bridge import Bridge
    from atbridge.credentials import MqttCredentials
    from tests.brokers import PahoPeer

    observer = PahoPeer(broker_port, "demo-observer")
    try:
        observer.subscribe("demo/device/up", qos=1)
        credentials = MqttCredentials.plain(
            client_id="demo-device", host="127.0.0.1", port=broker_port, keepalive=60
        )
        bridge = Bridge(port, credentials=credentials, dialect="auto", apn="iot.example")
        transitions = bridge.transitions()

        async def show_transitions() -> None:
            async for step in transitions:
                print(f"  {step.old:>15} -> {step.new:<15} {step.cause}", flush=True)

        bridge.on_progress(lambda state, text: print(f"  {'':>15}    {state:<15} {text}"))
        printer = asyncio.create_task(show_transitions())
        try:
            async with bridge:
                banner("the bring-up steps, as timed by the lifecycle")
                for result in bridge.steps.values():
                    print(f"  {result.step:<15} {result.seconds * 1000:8.1f} ms", flush=True)
                banner("online: publish and receive")
                await bridge.subscribe("demo/device/down", qos=1)
                print("  subscribed to demo/device/down")
                await bridge.publish("demo/device/up", b'{"temperature": 21.5}', qos=1)
                print('  published {"temperature": 21.5} to demo/device/up (QoS 1, acknowledged)')
                _topic, payload, _qos = observer.wait_for(1, timeout=30)[0]
                print(f"  the observer received: {payload.decode()}")
                observer.publish("demo/device/down", b"set interval=60", qos=1)
                message = await asyncio.wait_for(anext(bridge.messages()), 30)
                print(f"  the device received on {message.topic}: {message.payload.decode()}")
                banner("disconnect")
                printer.cancel()
            for step in bridge.history[-2:]:
                print(f"  {step.old:>15} -> {step.new:<15} {step.cause}", flush=True)
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
    finally:
        observer.close()


def main() -> int:
    from tests.brokers import Mosquitto

    with Mosquitto() as broker:
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes",
                "--dialect",
                "nrf91-slm",
                "--registration-delay",
                str(REGISTRATION_DELAY),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert fake.stdout is not None
            port = fake.stdout.readline().strip()
            if not port.startswith("/dev/"):
                raise SystemExit(f"the fake modem did not start (it printed {port!r})")
            banner(f"fake nRF9160 (Serial LTE Modem) on {port}, mosquitto on :{broker.port}")
            print(f"$ atbridge info --port {port}", flush=True)
            info = subprocess.run(
                [sys.executable, "-m", "atbridge", "info", "--port", port], cwd=ROOT, timeout=60
            )
            if info.returncode != 0:
                raise SystemExit(f"atbridge info failed with exit code {info.returncode}")
            banner("lifecycle: power-on to online")
            asyncio.run(run_lifecycle(port, broker.port))
            banner("done")
            return 0
        finally:
            fake.terminate()
            try:
                fake.wait(5)
            except subprocess.TimeoutExpired:
                fake.kill()
                fake.wait()


if __name__ == "__main__":
    sys.exit(main())
