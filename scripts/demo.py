"""The README's first command: atbridge driving a fake nRF9160 on a real pty.

Starts the fake modem (``python -m tests.fakes``, Serial LTE Modem dialect) as its own
process, then, over the real serial stack:

1. ``atbridge info`` — identity, SIM, functional mode, registration, signal;
2. the Python API — radio on (``AT+CFUN=1``), registration followed through the
   ``+CEREG`` notifications as they arrive;
3. ``atbridge info`` again, now registered;

and stops the fake. Everything it starts is stopped, whatever happens.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRATION_DELAY = 2.0


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def atbridge(*args: str) -> None:
    print(f"$ atbridge {' '.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "atbridge", *args], cwd=ROOT, timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"atbridge {args[0]} failed with exit code {result.returncode}")


async def attach(port: str) -> None:
    from atbridge.decode import parse_registration
    from atbridge.modem import Modem, Urc

    async with await Modem.open(port) as modem:

        def show(urc: Urc) -> None:
            parsed = parse_registration(urc.text.partition(":")[2], is_read=False)
            print(f"  {urc.text:<40} {parsed.describe() if parsed else ''}", flush=True)

        modem.subscribe("+CEREG:", show)
        print("  AT+CEREG=5  (registration notifications with cell and reject cause)")
        await modem.command("AT+CEREG=5")
        print("  AT+CFUN=1   (radio on; waiting for registration)", flush=True)
        await modem.command("AT+CFUN=1")
        await modem.wait_for_urc(
            "+CEREG:",
            timeout=REGISTRATION_DELAY + 30,
            predicate=lambda urc: (
                (p := parse_registration(urc.text[7:], is_read=False)) is not None and p.registered
            ),
        )


def main() -> int:
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
        banner(f"fake nRF9160 (Serial LTE Modem) on {port}")
        atbridge("info", "--port", port)
        banner("attach: radio on, follow registration")
        asyncio.run(attach(port))
        banner("registered")
        atbridge("info", "--port", port)
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
