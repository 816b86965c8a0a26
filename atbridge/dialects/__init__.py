"""Modem families: one module each, chosen by name or identified from the modem's answers.

Theory of operation
-------------------
Every module of this package that defines ``DIALECT`` (its dialect class) is a modem
family, named after the module (``nrf91_slm.py`` -> ``nrf91-slm``): :data:`DIALECTS`
is found by listing the package, without importing it (the command line builds its
``--dialect`` choices from it and stays light). The modules that hold what several
families share (:data:`SHARED_MODULES`) are not families.

``auto`` asks ``AT+CGMI``, ``AT+CGMM`` and ``AT+CGMR``, then walks the families in
:data:`DIALECTS` order. Each class says which manufacturer and model strings name it
(:attr:`~atbridge.dialects.base.Dialect.manufacturers`,
:attr:`~atbridge.dialects.base.Dialect.models`); a family that also has a
:attr:`~atbridge.dialects.base.Dialect.version_command` (the same hardware with other
firmware: the Nordic SLM and SM) is chosen only when the modem answers that command.
:func:`identify` says what it found, and fails with the answers it got when nothing
matches. Adding a family is adding its module here (and its fake in ``tests/fakes/``).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from atbridge.errors import ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect, Identity
    from atbridge.modem import Modem

#: Modules of this package that hold shared machinery, not a modem family.
SHARED_MODULES = frozenset({"base", "receiver", "nrf91", "simcom"})


def _families() -> dict[str, str]:
    found = {
        info.name.replace("_", "-"): f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.ispkg and not info.name.startswith("_") and info.name not in SHARED_MODULES
    }
    return dict(sorted(found.items()))


#: Dialect name -> module holding its class (imported on first use).
DIALECTS: dict[str, str] = _families()


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
    if cls.name != name:  # pragma: no cover - a family module named unlike its class
        raise ConfigurationError(
            f"{module_name} defines the dialect {cls.name!r}, not {name!r}",
            hint="name the module after its dialect ('-' becomes '_')",
        )
    return cls


def registry() -> list[type[Dialect]]:
    """Every family's class, in :data:`DIALECTS` order (imports them all)."""
    return [dialect_class(name) for name in DIALECTS]


async def _ask(modem: Modem, command: str) -> str | None:
    try:
        response = await modem.command(command)
    except ModemError:
        return None
    return " ".join(response.lines).strip()


async def identify(modem: Modem) -> Identity:
    """Ask the modem who it is and pick its dialect (see the module docstring)."""
    from atbridge.at_syntax import response_prefix
    from atbridge.dialects.base import Identity

    manufacturer = await _ask(modem, "AT+CGMI") or ""
    model = await _ask(modem, "AT+CGMM") or ""
    revision = await _ask(modem, "AT+CGMR") or ""
    unanswered: list[type[Dialect]] = []
    for cls in registry():
        if not cls.identifies(manufacturer, model):
            continue
        if cls.version_command is None:
            return Identity(manufacturer, model, revision, cls.name)
        version = await _ask(modem, cls.version_command)
        if version is None:
            unanswered.append(cls)
            continue
        prefix = response_prefix(cls.version_command) or ""
        return Identity(
            manufacturer, model, revision, cls.name, version.removeprefix(prefix).strip()
        )
    if unanswered:
        asked = [cls.version_command or "" for cls in unanswered]
        if len(asked) > 1:
            answers = f"answers neither {' nor '.join(asked)}"
        else:
            answers = f"does not answer {asked[0]}"
        raise ConfigurationError(
            f"{manufacturer} {model} ({revision}) {answers}",
            hint=unanswered[0].version_hint or f"pass --dialect with one of: {', '.join(DIALECTS)}",
        )
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
