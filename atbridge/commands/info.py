"""``atbridge info``: the modem's identity, SIM, functional mode, registration and signal.

:func:`gather_info` asks the modem and returns :class:`ModemInfo`, data with
typed fields (the decoded registration, operator and signal, not text); the
command renders it as a table or, with ``--json``, as one JSON object. A query
the modem refused or did not answer is an :class:`Unavailable` with the reason.

Registration is asked on all three commands (``+CEREG`` LTE, ``+CGREG`` packet
service, ``+CREG`` circuit-switched): a SIM7000 on GPRS is registered on
``+CGREG`` alone, a SIM800 has no ``+CEREG``. ``registration`` is the one that
counts (the first registered, else the LTE one), ``registered_on`` says which
command and RAT (``+CGREG (GPRS)``), and ``packet_service`` (``+CGREG``) and
``circuit_service`` (``+CREG``) are shown as they read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, TypeVar

from atbridge.commands.options import command_timeout_option, port_options

if TYPE_CHECKING:
    from atbridge.decode import Operator, Registration, Signal
    from atbridge.modem import Modem, Response

T = TypeVar("T")

HELP = "print the modem's identity, SIM, registration and signal"


@dataclass(frozen=True)
class Unavailable:
    """A query the modem could not answer: why (``ERROR``, ``+CME ERROR: ...``, no answer)."""

    reason: str

    def __str__(self) -> str:
        return f"unavailable ({self.reason})"


@dataclass(frozen=True)
class ModemInfo:
    """What a person needs to know about a modem first (``None``: not asked of this modem).

    ``registration``, ``operator`` and ``signal`` are decoded; when the answer
    could not be decoded they hold its raw text. ``registration`` is the one that
    counts of the three registration commands; ``registered_on`` names it and its
    RAT when registered (``None``: registered on none).
    """

    manufacturer: str | Unavailable
    model: str | Unavailable
    firmware: str | Unavailable
    slm_version: str | None
    sm_version: str | None
    imei: str | Unavailable
    imsi: str | Unavailable
    functional_mode: str | Unavailable
    registration: Registration | str | Unavailable
    registered_on: str | None
    packet_service: Registration | str | Unavailable
    circuit_service: Registration | str | Unavailable
    operator: Operator | str | Unavailable
    signal: Signal | str | Unavailable

    def rendered(self) -> dict[str, str]:
        """Field name -> one line of text, for the fields that were asked."""
        shown: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            describe = getattr(value, "describe", None)
            shown[item.name] = describe() if callable(describe) else str(value)
        return shown


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: the modem's port (and --config), --timeout."""
    return [port_options(), command_timeout_option()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from atbridge.commands.settings import open_modem

    modem = await open_modem(args)
    try:
        info = await gather_info(modem)
    finally:
        await modem.close()
    report = info.rendered()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


async def gather_info(modem: Modem) -> ModemInfo:
    """Ask the modem what a person needs to know first. A refused query says why."""
    from atbridge import decode
    from atbridge.errors import AtBridgeError, AtTimeout, ModemError

    async def ask(command: str, read: Callable[[Response], T]) -> T | Unavailable:
        try:
            response = await modem.command(command)
        except ModemError as exc:
            return Unavailable(f"{exc.final}{f': {exc.text}' if exc.text else ''}")
        except AtTimeout:
            return Unavailable(f"no answer to {command}")
        try:
            return read(response)
        except AtBridgeError as exc:  # an answer without the expected information line
            return Unavailable(exc.message)

    async def optional(command: str, prefix: str) -> str | None:
        answer = await ask(command, lambda r: r.value(prefix))
        return None if isinstance(answer, Unavailable) else answer

    def bare(response: Response) -> str:
        return " ".join(response.lines) or "(empty)"

    def registration(source: str) -> Callable[[Response], Registration | str]:
        def read(response: Response) -> Registration | str:
            text = response.value(f"{source}:")
            return decode.parse_registration(text, is_read=True, source=source) or text

        return read

    def operator(response: Response) -> Operator | str:
        text = response.value("+COPS:")
        return decode.parse_cops(text) or text

    def signal(response: Response) -> Signal | str:
        text = response.value("+CESQ:")
        return decode.parse_cesq(text) or text

    manufacturer = await ask("AT+CGMI", bare)
    model = await ask("AT+CGMM", bare)
    firmware = await ask("AT+CGMR", bare)
    nordic = isinstance(manufacturer, str) and "Nordic" in manufacturer
    slm_version = await optional("AT#XSLMVER", "#XSLMVER:") if nordic else None
    sm_version = await optional("AT#XSMVER", "#XSMVER:") if nordic else None
    lte, packet, circuit = [
        await ask(f"AT{source}?", registration(source)) for source in decode.REGISTRATION_SOURCES
    ]
    registered = [r for r in (lte, packet, circuit) if isinstance(r, decode.Registration)]
    counting = next((r for r in registered if r.registered), lte)
    cops = await ask("AT+COPS?", operator)
    # The read form shows <AcT> only at notification level 2 and up: +COPS says it too.
    from_cops = cops.act if isinstance(cops, decode.Operator) else None
    if isinstance(counting, decode.Registration) and counting.act is None and from_cops is not None:
        counting = dataclasses.replace(counting, act=from_cops)
    return ModemInfo(
        manufacturer=manufacturer,
        model=model,
        firmware=firmware,
        slm_version=slm_version,
        sm_version=sm_version,
        imei=await ask("AT+CGSN", bare),
        imsi=await ask("AT+CIMI", bare),
        functional_mode=await ask("AT+CFUN?", lambda r: decode.describe_cfun(r.value("+CFUN:"))),
        registration=counting,
        registered_on=(
            counting.where()
            if isinstance(counting, decode.Registration) and counting.registered
            else None
        ),
        packet_service=packet,
        circuit_service=circuit,
        operator=cops,
        signal=await ask("AT+CESQ", signal),
    )
