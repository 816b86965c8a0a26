"""``atbridge info``: the modem's identity, SIM, functional mode, registration and signal.

Theory of operation
-------------------
:func:`gather_info` first picks the dialect (``--dialect auto``: the one
:func:`atbridge.dialects.identify` finds from ``AT+CGMI``/``AT+CGMM``, with its
application version), then asks that family's read-only queries for the things a
person needs to know first — its ``device`` queries of identity and SIM
(:attr:`~atbridge.dialects.base.Dialect.diagnostic_queries`: ``AT%XICCID`` on an
nRF91, ``AT+CICCID`` on a SIM7600...), ``AT+CFUN?``, the three registration
commands, ``AT+COPS?``, its signal queries and its serving-cell query
(``%XMONITOR``, ``+CPSI?``) — each through
:func:`atbridge.survey.ask`, which decodes the answer with
:func:`atbridge.diagnostics.decode_answer`. So the data has the names, numbers
and units of the diagnostics vocabulary (``shared/reference/diagnostics.md``):
``functional_mode: 0``, a registration's ``stat``, ``tac``, ``cell_id``,
``act``, the signal's ``rsrp_dbm``; the firmware without its ``+CGMR:`` prefix.
A query the modem refused or did not answer leaves its field ``null`` and puts
the reason in ``errors`` (``{"imsi": "+CME ERROR: 13 (SIM failure)"}``).

Registration is asked on all three commands (``+CEREG`` LTE, ``+CGREG`` packet
service, ``+CREG`` circuit-switched): a SIM7000 on GPRS is registered on
``+CGREG`` alone, a SIM800 has no ``+CEREG``. ``registration`` is the one that
counts (the first registered, else the LTE one) with its ``source``,
``registered_on`` says which command and RAT (``+CGREG (GPRS)``), and
``packet_service`` (``+CGREG``) and ``circuit_service`` (``+CREG``) are shown as
they read. The read form carries ``<AcT>`` only at notification level 2 and up:
``+COPS`` gives it otherwise.

The table is for a person: each value with its meaning
(:func:`atbridge.diagnostics.human.describe_field`; a registration and an
operator in :mod:`atbridge.decode`'s words), an error in its field's row.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atbridge.commands.options import command_timeout_option, port_options

if TYPE_CHECKING:
    from atbridge.decode import Registration
    from atbridge.modem import Modem
    from atbridge.survey import Answer

HELP = "print the modem's identity, SIM, registration and signal"

#: Identity and SIM queries -> (the field info prints, the decoded field it comes from).
#: ``AT+CGSN=1`` (nRF91) and ``AT+CGSN`` both answer the IMEI; an ICCID has one
#: command per family.
IDENTITY: dict[str, tuple[str, str]] = {
    "AT+CGMI": ("manufacturer", "manufacturer"),
    "AT+CGMM": ("model", "model"),
    "AT+CGMR": ("firmware", "revision"),
    "AT+CGSN=1": ("imei", "imei"),
    "AT+CGSN": ("imei", "imei"),
    "AT+CIMI": ("imsi", "imsi"),
    "AT%XICCID": ("iccid", "iccid"),
    "AT+CICCID": ("iccid", "iccid"),
    "AT+CCID": ("iccid", "iccid"),
    "AT+CPIN?": ("pin_state", "pin_state"),
}
#: Queries whose fields make up ``signal`` (merged, the first answer's value kept).
SIGNAL = ("AT+CESQ", "AT+CSQ")
#: The serving-cell query of each family that has one, first found asked: nRF91
#: ``%XMONITOR``, SIMCom ``+CPSI?`` (PLMN, band, cell, RSRP...).
SERVING_CELL = ("AT%XMONITOR", "AT+CPSI?")
#: Registration command -> the field info prints it under (the counting one aside).
SERVICES = {"+CGREG": "packet_service", "+CREG": "circuit_service"}
#: Signal fields the table shows (the converted values; the raw indices stay in JSON).
_SIGNAL_SHOWN = ("rsrp_dbm", "rsrq_db", "snr_db", "sinr_db", "rssi_dbm")
_CELL_SHOWN = (
    "system_mode", "operator_short", "plmn", "band", "earfcn", "pci", "cell_id", "rsrp_dbm",
)  # fmt: skip


@dataclass
class ModemInfo:
    """What ``info`` found: the dialect, the data by field, and why fields are missing.

    ``data`` holds the fields in the order shown (``None``: asked, no value: see
    ``errors``); ``registrations`` the decoded registration of each command that
    answered, for the table's words.
    """

    dialect: str | None
    chosen_by: str
    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    registrations: dict[str, Registration] = field(default_factory=dict)
    operator_line: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object: ``dialect``, ``dialect_chosen_by``, the data, ``errors``."""
        return {
            "dialect": self.dialect,
            "dialect_chosen_by": self.chosen_by,
            **self.data,
            "errors": dict(self.errors),
        }

    def rendered(self) -> dict[str, str]:
        """Field name -> one line of text for a person."""
        from atbridge import decode
        from atbridge.diagnostics.human import describe_field

        shown: dict[str, str] = {}
        if self.dialect is not None:
            shown["dialect"] = f"{self.dialect} (chosen by {self.chosen_by})"
        elif "dialect" in self.errors:
            shown["dialect"] = f"unknown ({self.errors['dialect']})"
        for name, value in self.data.items():
            if value is None:
                if name in self.errors:
                    shown[name] = f"unavailable ({self.errors[name]})"
                continue
            if name in ("registration", *SERVICES.values()):
                source = value.get("source") if name == "registration" else None
                registration = self.registrations.get(source or _source_of(name))
                shown[name] = registration.describe() if registration else str(value)
            elif name == "operator":
                parsed = decode.parse_cops(self.operator_line or "")
                shown[name] = parsed.describe() if parsed else json.dumps(value)
            elif name in ("signal", "serving_cell"):
                keys = _SIGNAL_SHOWN if name == "signal" else _CELL_SHOWN
                parts = [
                    f"{_label(key)} {describe_field(key, value[key], value)}"
                    for key in keys
                    if value.get(key) is not None
                ]
                shown[name] = ", ".join(parts) or "unknown"
            elif name in ("functional_mode", "pin_state"):
                shown[name] = describe_field(name, value, self.data)
            else:
                shown[name] = str(value)
        return shown


def _label(key: str) -> str:
    """``rsrp_dbm`` -> ``rsrp``: the unit is in the value."""
    return key.removesuffix("_dbm").removesuffix("_db").replace("_", " ")


def _source_of(name: str) -> str:
    return next(source for source, shown in SERVICES.items() if shown == name)


def parents() -> list[argparse.ArgumentParser]:
    """The shared options: the modem's port (and --config), --timeout."""
    return [port_options(), command_timeout_option()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--dialect",
        metavar="NAME",
        type=str.lower,
        default="auto",
        help="the modem family whose queries to ask (default auto: identify it)",
    )


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    return eventloop.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from atbridge.commands.settings import open_modem

    dialect = getattr(args, "dialect", "auto")
    _check_dialect(dialect)
    modem = await open_modem(args)
    try:
        info = await gather_info(modem, dialect=dialect)
    finally:
        await modem.close()
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
    else:
        report = info.rendered()
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def _check_dialect(name: str) -> None:
    from atbridge.dialects import DIALECTS
    from atbridge.errors import ConfigurationError

    if name != "auto" and name not in DIALECTS:
        raise ConfigurationError(
            f"--dialect {name!r} is not a modem family",
            hint=f"use auto or one of: {', '.join(DIALECTS)}",
        )


async def gather_info(modem: Modem, *, dialect: str = "auto") -> ModemInfo:
    """Ask the modem what a person needs to know first (see the module doc)."""
    from atbridge import decode
    from atbridge.dialects import dialect_class, identify
    from atbridge.dialects.base import Dialect
    from atbridge.errors import ConfigurationError
    from atbridge.survey import ask

    info = ModemInfo(dialect=None if dialect == "auto" else dialect, chosen_by="--dialect")
    version = ""
    if dialect == "auto":
        info.chosen_by = "auto"
        try:
            identity = await identify(modem)
        except ConfigurationError as exc:
            info.errors["dialect"] = exc.message
        else:
            info.dialect, version = identity.dialect, identity.version
    family = dialect_class(info.dialect) if info.dialect is not None else Dialect
    queries = [query for layer in family.diagnostic_queries.values() for query in layer]

    def keep(name: str, answer: Answer, value: Any) -> None:
        if name in info.data and info.data[name] is not None:
            return  # the first answer of two commands for one field (AT+CESQ, AT+CSQ)
        info.data[name] = value if answer.error is None else None
        if answer.error is not None:
            info.errors.setdefault(name, answer.error)
        else:
            info.errors.pop(name, None)

    for query in (q for q in queries if q in IDENTITY):
        answer = await ask(modem, query)
        name, key = IDENTITY[query]
        keep(name, answer, (answer.fields or {}).get(key))
    if version and info.dialect in ("nrf91-slm", "nrf91-sm"):
        name = "slm_version" if info.dialect == "nrf91-slm" else "sm_version"
        info.data[name] = version.replace('"', "")  # "2.5.0","2.5.0-lte-..." as printed
    answer = await ask(modem, "AT+CFUN?")
    keep("functional_mode", answer, (answer.fields or {}).get("functional_mode"))
    if info.data.get("functional_mode") == 0:
        for name in ("imsi", "iccid", "pin_state"):
            if name in info.errors:  # 27.007 CFUN=0 may power the SIM down as well
                info.errors[name] += "; at CFUN=0 (radio off) the SIM may not be powered"

    registrations: dict[str, tuple[Answer, dict[str, Any] | None]] = {}
    for source in decode.REGISTRATION_SOURCES:
        answer = await ask(modem, f"AT{source}?")
        registrations[source] = (answer, answer.fields)
        line = next((text for text in answer.lines if text.startswith(f"{source}:")), None)
        if line is not None:
            parsed = decode.parse_registration(
                line.removeprefix(f"{source}:"), is_read=True, source=source
            )
            if parsed is not None:
                info.registrations[source] = parsed
    operator = await ask(modem, "AT+COPS?")
    info.operator_line = next(
        (text.removeprefix("+COPS:") for text in operator.lines if text.startswith("+COPS:")),
        None,
    )
    counting = next(
        (source for source, reg in info.registrations.items() if reg.registered), "+CEREG"
    )
    answer, fields = registrations[counting]
    registration = None if fields is None else {"source": counting, **fields}
    act = (operator.fields or {}).get("act")
    if registration is not None and registration.get("act") is None and act is not None:
        registration["act"] = act  # the read form shows <AcT> only at level 2 and up
        if counting in info.registrations:
            from dataclasses import replace

            info.registrations[counting] = replace(info.registrations[counting], act=act)
    keep("registration", answer, registration)
    reg = info.registrations.get(counting)
    info.data["registered_on"] = reg.where() if reg is not None and reg.registered else None
    for source, name in SERVICES.items():
        answer, fields = registrations[source]
        keep(name, answer, fields)
    keep("operator", operator, operator.fields)

    for query in (q for q in SIGNAL if q in queries or family is Dialect):
        answer = await ask(modem, query)
        if answer.fields is not None and info.data.get("signal") is not None:
            merged = dict(answer.fields)
            merged.update(info.data["signal"])
            info.data["signal"] = merged
        else:
            keep("signal", answer, answer.fields)
    cell = next((query for query in SERVING_CELL if query in queries), None)
    if cell is not None:
        answer = await ask(modem, cell)
        keep("serving_cell", answer, answer.fields)
    return info
