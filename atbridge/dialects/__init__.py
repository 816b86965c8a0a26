"""Modem families: one module each, chosen by name or identified from the modem's answers.

``auto`` asks ``AT+CGMI`` and ``AT+CGMM``; a Nordic modem is then asked
``AT#XSMVER`` (Serial Modem) and ``AT#XSLMVER`` (Serial LTE Modem), a SIMCom
modem is told apart by its model name. :func:`detect` says what it found, and
fails with the answers it got when nothing matches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from atbridge.errors import ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect, Identity
    from atbridge.modem import Modem

#: Dialect name -> module holding its class (imported on first use).
DIALECTS: dict[str, str] = {
    "nrf91-slm": "atbridge.dialects.nrf91_slm",
    "nrf91-sm": "atbridge.dialects.nrf91_sm",
    "sim7080": "atbridge.dialects.sim7080",
    "sim7600": "atbridge.dialects.sim7600",
    "sim7000": "atbridge.dialects.sim7000",
}

#: Substrings of ``AT+CGMM`` that identify a SIMCom family (checked in order).
SIMCOM_MODELS: tuple[tuple[str, str], ...] = (
    ("SIM7080", "sim7080"),
    ("SIM7070", "sim7080"),
    ("SIM7090", "sim7080"),
    ("SIM7600", "sim7600"),
    ("SIM7500", "sim7600"),
    ("A76", "sim7600"),
    ("SIM7000", "sim7000"),
    ("SIM800", "sim7000"),
)


def dialect_class(name: str) -> type[Dialect]:
    """The dialect class called ``name``, or a :class:`ConfigurationError` listing the names."""
    module_name = DIALECTS.get(name)
    if module_name is None:
        raise ConfigurationError(
            f"unknown dialect {name!r}",
            hint=f"use one of: auto, {', '.join(DIALECTS)}",
        )
    module = importlib.import_module(module_name)
    cls: type[Dialect] = module.DIALECT
    return cls


async def _ask(modem: Modem, command: str) -> str | None:
    try:
        response = await modem.command(command)
    except ModemError:
        return None
    return " ".join(response.lines).strip()


async def identify(modem: Modem) -> Identity:
    """Ask the modem who it is and pick its dialect."""
    from atbridge.dialects.base import Identity

    manufacturer = await _ask(modem, "AT+CGMI") or ""
    model = await _ask(modem, "AT+CGMM") or ""
    revision = await _ask(modem, "AT+CGMR") or ""
    if "nordic" in manufacturer.lower() or model.lower().startswith("nrf91"):
        for command, name in (("AT#XSMVER", "nrf91-sm"), ("AT#XSLMVER", "nrf91-slm")):
            version = await _ask(modem, command)
            if version is not None:
                prefix = command[2:] + ":"
                return Identity(
                    manufacturer, model, revision, name, version.removeprefix(prefix).strip()
                )
        raise ConfigurationError(
            f"{manufacturer} {model} ({revision}) answers neither AT#XSMVER nor AT#XSLMVER",
            hint="flash the Serial Modem or Serial LTE Modem application (the plain AT host "
            "has no socket commands), or pass --dialect",
        )
    if "simcom" in manufacturer.lower() or "sim" in model.lower():
        for needle, name in SIMCOM_MODELS:
            if needle in model.upper():
                return Identity(manufacturer, model, revision, name)
    raise ConfigurationError(
        f"no dialect for manufacturer {manufacturer!r}, model {model!r}, revision {revision!r}",
        hint=f"pass --dialect with one of: {', '.join(DIALECTS)}",
    )


async def open_dialect(modem: Modem, name: str = "auto") -> tuple[Dialect, Identity | None]:
    """Bind ``modem`` to its dialect (``auto``: identify it first) and initialise it."""
    identity = None
    if name == "auto":
        identity = await identify(modem)
        name = identity.dialect
    dialect = dialect_class(name)(modem)
    await dialect.initialise()
    return dialect, identity
