"""The dialect registry: families are found from the package, and each identifies itself
from its own data (manufacturer, model, version command)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import cast

import pytest

import atbridge.dialects
from atbridge.dialects import DIALECTS, SHARED_MODULES, dialect_class, identify, registry
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
            assert info.name in SHARED_MODULES
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
