"""``atbridge info``: the modem's identity, SIM, functional mode, registration and signal."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from atbridge.commands.common import add_port_options, open_modem

if TYPE_CHECKING:
    from atbridge.modem import Modem, Response

HELP = "print the modem's identity, SIM, registration and signal"


def configure(parser: argparse.ArgumentParser) -> None:
    add_port_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    modem = await open_modem(args)
    try:
        report = await gather_info(modem)
    finally:
        await modem.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


async def gather_info(modem: Modem) -> dict[str, str]:
    """Ask the modem what a person needs to know first. A refused query says why."""
    from atbridge import decode

    report: dict[str, str] = {}

    async def ask(
        key: str, command: str, render: Callable[[Response], str], *, optional: bool = False
    ) -> None:
        from atbridge.errors import AtTimeout, ModemError

        try:
            response = await modem.command(command)
        except ModemError as exc:
            if not optional:
                report[key] = f"unavailable ({exc.final}{f': {exc.text}' if exc.text else ''})"
            return
        except AtTimeout:
            report[key] = f"unavailable (no answer to {command})"
            return
        report[key] = render(response)

    def bare(response: Response) -> str:
        return " ".join(response.lines) or "(empty)"

    await ask("manufacturer", "AT+CGMI", bare)
    await ask("model", "AT+CGMM", bare)
    await ask("firmware", "AT+CGMR", bare)
    manufacturer = report.get("manufacturer", "")
    if "Nordic" in manufacturer:
        await ask("slm_version", "AT#XSLMVER", lambda r: r.value("#XSLMVER:"), optional=True)
        await ask("sm_version", "AT#XSMVER", lambda r: r.value("#XSMVER:"), optional=True)
    await ask("imei", "AT+CGSN", bare)
    await ask("imsi", "AT+CIMI", bare)
    await ask("functional_mode", "AT+CFUN?", lambda r: decode.describe_cfun(r.value("+CFUN:")))

    def registration(response: Response) -> str:
        parsed = decode.parse_registration(response.value("+CEREG:"), is_read=True)
        return parsed.describe() if parsed else response.value("+CEREG:")

    await ask("registration", "AT+CEREG?", registration)

    def operator(response: Response) -> str:
        parsed = decode.parse_cops(response.value("+COPS:"))
        return parsed.describe() if parsed else response.value("+COPS:")

    await ask("operator", "AT+COPS?", operator)

    def signal(response: Response) -> str:
        parsed = decode.parse_cesq(response.value("+CESQ:"))
        return parsed.describe() if parsed else response.value("+CESQ:")

    await ask("signal", "AT+CESQ", signal)
    return report
