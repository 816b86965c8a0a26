"""The dialect registry: families are found from the package, and each identifies itself
from its own data (manufacturer, model, version command)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import cast

import pytest

import atbridge.dialects
from atbridge.dialects import (
    DIALECTS,
    SHARED_MODULES,
    STORE_SUFFIX,
    dialect_class,
    identify,
    registry,
)
from atbridge.dialects.base import Identity
from atbridge.errors import ConfigurationError, ModemError
from atbridge.modem import Modem, Response


def test_every_module_with_a_dialect_is_a_family_named_after_it() -> None:
    found = {}
    for info in pkgutil.iter_modules(atbridge.dialects.__path__):
        module = importlib.import_module(f"atbridge.dialects.{info.name}")
        if hasattr(module, "DIALECT"):
            found[info.name.replace("_", "-")] = module.DIALECT
        else:
            assert info.name in SHARED_MODULES or info.name.endswith(STORE_SUFFIX)
    assert set(found) == set(DIALECTS)
    for name, cls in found.items():
        assert dialect_class(name) is cls and cls.name == name
    assert [cls.name for cls in registry()] == list(DIALECTS)


def test_unknown_dialect_lists_the_names() -> None:
    with pytest.raises(ConfigurationError) as caught:
        dialect_class("quectel")
    assert "use one of: auto, " + ", ".join(DIALECTS) in str(caught.value)


@pytest.mark.parametrize(
    ("manufacturer", "model", "names"),
    [
        ("Nordic Semiconductor ASA", "nRF9160-SICA", {"nrf91-slm", "nrf91-sm"}),
        ("", "nRF9151-LACA", {"nrf91-slm", "nrf91-sm"}),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7080G", {"sim7080"}),
        ("SIMCOM INCORPORATED", "SIM7070G", {"sim7080"}),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", {"sim7600"}),
        ("SIMCOM INCORPORATED", "A7670E-LASE", {"sim7600"}),
        ("SIMCOM_Ltd", "SIMCOM_SIM7000E", {"sim7000"}),
        ("SIMCOM_Ltd", "SIM800L", {"sim7000"}),
        ("Quectel", "BG96", set()),
    ],
)
def test_each_family_knows_its_manufacturer_and_model_strings(
    manufacturer: str, model: str, names: set[str]
) -> None:
    assert {cls.name for cls in registry() if cls.identifies(manufacturer, model)} == names


@dataclass
class Answers:
    """A modem stand-in that answers from a table (a missing command is ERROR)."""

    table: dict[str, str]
    asked: list[str] = field(default_factory=list)

    async def command(self, line: str) -> Response:
        self.asked.append(line)
        if line not in self.table:
            raise ModemError(line, "ERROR")
        return Response(line, (self.table[line],), "OK")


def modem(**answers: str) -> Answers:
    names = {"cgmi": "AT+CGMI", "cgmm": "AT+CGMM", "cgmr": "AT+CGMR"}
    return Answers({names.get(key, key): value for key, value in answers.items()})


async def test_a_serial_modem_is_told_apart_by_its_version_command() -> None:
    answers = modem(cgmi="Nordic Semiconductor ASA", cgmm="nRF9151-LACA", cgmr="mfw_2.0.2")
    answers.table["AT#XSMVER"] = '#XSMVER: "v1.0.0","3.1.99"'
    identity = await identify(cast(Modem, answers))
    assert identity == Identity(
        "Nordic Semiconductor ASA", "nRF9151-LACA", "mfw_2.0.2", "nrf91-sm", '"v1.0.0","3.1.99"'
    )


async def test_a_nordic_modem_without_either_application_says_what_to_flash() -> None:
    answers = modem(cgmi="Nordic Semiconductor ASA", cgmm="nRF9160-SICA", cgmr="mfw_1.3.6")
    with pytest.raises(ConfigurationError) as caught:
        await identify(cast(Modem, answers))
    assert "answers neither AT#XSLMVER nor AT#XSMVER" in str(caught.value)
    assert "flash the Serial Modem or Serial LTE Modem application" in caught.value.hint


async def test_a_simcom_modem_is_identified_by_its_model() -> None:
    answers = modem(cgmi="SIMCOM INCORPORATED", cgmm="SIMCOM_SIM7080G", cgmr="1951B05SIM7080")
    identity = await identify(cast(Modem, answers))
    assert identity.dialect == "sim7080" and identity.version == ""
    assert answers.asked == ["AT+CGMI", "AT+CGMM", "AT+CGMR"]


async def test_an_unknown_modem_lists_the_dialects() -> None:
    with pytest.raises(ConfigurationError) as caught:
        await identify(cast(Modem, modem(cgmi="Quectel", cgmm="BG96", cgmr="BG96MAR02")))
    assert "no dialect for manufacturer 'Quectel', model 'BG96'" in str(caught.value)
    assert ", ".join(DIALECTS) in caught.value.hint


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("NRF91-SLM", "nrf91-slm"),
        ("nrf91_sm", "nrf91-sm"),
        (" Sim7080 ", "sim7080"),
        ("AUTO", "auto"),
    ],
)
def test_dialect_names_are_taken_in_any_case(spelling: str, name: str) -> None:
    from atbridge.dialects import canonical_name

    assert canonical_name(spelling) == name
    if name != "auto":
        assert dialect_class(spelling).name == name


def test_a_name_that_is_no_family_is_none() -> None:
    from atbridge.dialects import canonical_name

    assert canonical_name("quectel") is None


SLM_MODEM = {"cgmi": "Nordic Semiconductor ASA", "cgmm": "nRF9160-SICA", "cgmr": "mfw_1.3.5"}


async def test_a_forced_family_that_is_not_the_modem_says_which_it_is() -> None:
    from atbridge.dialects import identify_as

    answers = modem(**SLM_MODEM)
    answers.table["AT#XSLMVER"] = '#XSLMVER: "2.5.0","mfw_1.3.5"'
    with pytest.raises(ConfigurationError) as caught:
        await identify_as(cast(Modem, answers), "sim7080")
    assert "the dialect sim7080" in caught.value.message
    assert "this is a Nordic nRF9160/nRF91x1 with the Serial LTE Modem" in caught.value.message
    assert "nRF9160-SICA" in caught.value.message
    assert caught.value.hint.startswith("use --dialect nrf91-slm (or auto)")


async def test_the_same_hardware_with_the_other_firmware_is_named() -> None:
    """nRF91 hardware matches both Nordic families: the version command tells them apart."""
    from atbridge.dialects import identify_as

    answers = modem(**SLM_MODEM)
    answers.table["AT#XSLMVER"] = '#XSLMVER: "2.5.0","mfw_1.3.5"'
    with pytest.raises(ConfigurationError) as caught:
        await identify_as(cast(Modem, answers), "NRF91-SM")
    assert "Serial LTE Modem" in caught.value.message
    assert "use --dialect nrf91-slm" in caught.value.hint


async def test_a_forced_family_that_is_the_modem_is_identified() -> None:
    from atbridge.dialects import identify_as

    answers = modem(**SLM_MODEM)
    answers.table["AT#XSLMVER"] = '#XSLMVER: "2.5.0","mfw_1.3.5"'
    identity = await identify_as(cast(Modem, answers), "Nrf91-Slm")
    assert identity == Identity(
        "Nordic Semiconductor ASA", "nRF9160-SICA", "mfw_1.3.5", "nrf91-slm", '"2.5.0","mfw_1.3.5"'
    )


@pytest.mark.parametrize(
    "answers",
    [
        {"cgmi": "Quectel", "cgmm": "BG96", "cgmr": "BG96MAR02"},  # names no family
        {},  # says nothing at all
        {**SLM_MODEM},  # nRF91 without either application: as told, SLM version unknown
    ],
)
async def test_a_modem_that_names_no_family_is_used_as_told(answers: dict[str, str]) -> None:
    from atbridge.dialects import identify_as

    identity = await identify_as(cast(Modem, modem(**answers)), "nrf91-slm")
    assert identity.dialect == "nrf91-slm" and identity.version == ""
