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

A family given by name (``--dialect sim7080``, in any case: :func:`canonical_name`) is
checked against the same answers before it is used (:func:`identify_as`): a modem whose
answers name another family (an nRF9160 answering ``AT#XSLMVER`` told to be a SIM7080)
fails at once with what it is and the ``--dialect`` that fits, instead of timing out
on commands it does not have. A modem whose answers name no family is used as told
(the user knows a clone or a rebranded module), with a warning.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import TYPE_CHECKING

from atbridge.errors import ConfigurationError, ModemError

if TYPE_CHECKING:
    from atbridge.dialects.base import Dialect, Identity
    from atbridge.modem import Modem

log = logging.getLogger(__name__)

#: Modules of this package that hold shared machinery, not a modem family.
SHARED_MODULES = frozenset({"base", "receiver", "nrf91", "simcom"})
#: A module named ``<family>_certs`` is that family's credential store
#: (:func:`atbridge.certs.store_for`), not a family of its own.
STORE_SUFFIX = "_certs"


def _families() -> dict[str, str]:
    found = {
        info.name.replace("_", "-"): f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.ispkg
        and not info.name.startswith("_")
        and info.name not in SHARED_MODULES
        and not info.name.endswith(STORE_SUFFIX)
    }
    return dict(sorted(found.items()))


#: Dialect name -> module holding its class (imported on first use).
DIALECTS: dict[str, str] = _families()


def canonical_name(name: str) -> str | None:
    """The family (or ``auto``) that ``name`` spells in any case, ``_`` for ``-`` too.

    ``canonical_name("NRF91_SLM") == "nrf91-slm"``; ``None`` when it names none. Light:
    the command line and :mod:`atbridge.config` use it without importing a family.
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else ""
    return key if key == "auto" or key in DIALECTS else None


def dialect_class(name: str) -> type[Dialect]:
    """The dialect class ``name`` spells (any case), or a :class:`ConfigurationError`
    listing the names."""
    canonical = canonical_name(name)
    module_name = DIALECTS.get(canonical) if canonical is not None else None
    if canonical is None or module_name is None:
        raise ConfigurationError(
            f"unknown dialect {name!r}",
            hint=f"use one of: auto, {', '.join(DIALECTS)}",
        )
    module = importlib.import_module(module_name)
    cls: type[Dialect] = module.DIALECT
    if cls.name != canonical:  # pragma: no cover - a family module named unlike its class
        raise ConfigurationError(
            f"{module_name} defines the dialect {cls.name!r}, not {canonical!r}",
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


async def _version(modem: Modem, cls: type[Dialect]) -> str | None:
    """``cls``'s version command answered, without its prefix; ``None`` when refused."""
    from atbridge.at_syntax import response_prefix

    command = cls.version_command
    assert command is not None
    answer = await _ask(modem, command)
    if answer is None:
        return None
    return answer.removeprefix(response_prefix(command) or "").strip()


async def _who(modem: Modem) -> tuple[str, str, str]:
    """What ``AT+CGMI``, ``AT+CGMM`` and ``AT+CGMR`` say (``""`` for a refused one)."""
    manufacturer = await _ask(modem, "AT+CGMI") or ""
    model = await _ask(modem, "AT+CGMM") or ""
    revision = await _ask(modem, "AT+CGMR") or ""
    return manufacturer, model, revision


async def _match(
    modem: Modem, manufacturer: str, model: str, revision: str
) -> tuple[Identity | None, list[type[Dialect]]]:
    """The first family the answers name (and whose version command answers, if it has
    one), and the families whose hardware matched but whose version command did not."""
    from atbridge.dialects.base import Identity

    unanswered: list[type[Dialect]] = []
    for cls in registry():
        if not cls.identifies(manufacturer, model):
            continue
        if cls.version_command is None:
            return Identity(manufacturer, model, revision, cls.name), unanswered
        version = await _version(modem, cls)
        if version is None:
            unanswered.append(cls)
            continue
        return Identity(manufacturer, model, revision, cls.name, version), unanswered
    return None, unanswered


async def identify(modem: Modem) -> Identity:
    """Ask the modem who it is and pick its dialect (see the module docstring)."""
    manufacturer, model, revision = await _who(modem)
    identity, unanswered = await _match(modem, manufacturer, model, revision)
    if identity is not None:
        return identity
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


async def identify_as(modem: Modem, name: str) -> Identity:
    """Check that the modem is the family ``name`` forces (see the module docstring).

    Returns who answered, bound to ``name``. Raises :class:`ConfigurationError` naming
    the family the modem is when its answers name another one; a modem that names no
    family (or does not say) is taken as ``name``, as the user said.
    """
    from atbridge.dialects.base import Identity

    cls = dialect_class(name)
    manufacturer, model, revision = await _who(modem)
    if cls.identifies(manufacturer, model):
        version = "" if cls.version_command is None else await _version(modem, cls)
        if version is not None:
            return Identity(manufacturer, model, revision, cls.name, version)
    found, _ = await _match(modem, manufacturer, model, revision)
    if found is not None and found.dialect != cls.name:
        actual = dialect_class(found.dialect)
        version = f", {found.version}" if found.version else ""
        raise ConfigurationError(
            f"the dialect {cls.name} ({cls.description}) does not match the modem: this is a "
            f"{actual.description} ({manufacturer} {model}, {revision}{version})",
            hint=f"use --dialect {found.dialect} (or auto), or set dialect in the "
            "configuration file or ATBRIDGE_DIALECT the same way",
        )
    if manufacturer or model:
        log.warning(
            "%s %s (%s) is not a modem the dialect %s knows; using it as told",
            manufacturer,
            model,
            revision,
            cls.name,
        )
    return Identity(manufacturer, model, revision, cls.name)


async def open_dialect(modem: Modem, name: str = "auto") -> tuple[Dialect, Identity]:
    """Bind ``modem`` to its dialect and initialise it.

    ``auto``: identified from its answers (:func:`identify`); a family given by name
    (any case): checked against them first (:func:`identify_as`).
    """
    canonical = canonical_name(name)
    if canonical is None:
        dialect_class(name)  # raises, listing the names
    if canonical == "auto":
        identity = await identify(modem)
    else:
        identity = await identify_as(modem, name)
    dialect = dialect_class(identity.dialect)(modem)
    dialect.identity = identity  # what the identity step asked is not asked again
    await dialect.initialise()
    return dialect, identity
