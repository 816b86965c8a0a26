"""Bring-up asks each thing once (issue 16): what identification learnt is not asked again.

The Serial LTE Modem's version (``AT#XSLMVER``) is the family's version command, asked by
identification; the dialect bound with that :class:`~atbridge.dialects.base.Identity`
checks the minimum version from it instead of asking the modem a second time. Without an
identity (a dialect bound by hand) it still asks, and the refusal of a build before NCS
2.1.0 is the same either way.
"""

from __future__ import annotations

import pytest

from atbridge.dialects.base import Identity
from atbridge.dialects.nrf91_slm import Nrf91Slm
from atbridge.errors import UnsupportedFirmware
from atbridge.modem import Modem
from tests.fakes import FakeModem
from tests.fakes.nrf91_slm import LEGACY_NCS_VERSION, slm_build

SLM_VERSION = '"2.5.0","2.5.0-lte-5ccd2d4dd54c"'


def slm_identity(version: str) -> Identity:
    return Identity(
        "Nordic Semiconductor ASA", "nRF9160-SICA", "mfw_nrf9160_1.3.5", "nrf91-slm", version
    )


async def test_an_slm_bound_with_its_identity_does_not_ask_its_version_again() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake:
        modem = await Modem.open(fake.port, line_ending="\r\n")
        try:
            dialect = Nrf91Slm(modem)
            dialect.identity = slm_identity(SLM_VERSION)
            await dialect.initialise()
            assert "AT#XSLMVER" not in fake.commands
            assert "AT#XAPOLL=1,1" in fake.commands  # the rest of the initialisation ran
            dialect.detach_from_modem()
        finally:
            await modem.close()


async def test_an_slm_bound_without_an_identity_asks_its_version_once() -> None:
    async with FakeModem(dialect="nrf91-slm") as fake:
        modem = await Modem.open(fake.port, line_ending="\r\n")
        try:
            dialect = Nrf91Slm(modem)
            await dialect.initialise()
            assert fake.commands.count("AT#XSLMVER") == 1
            dialect.detach_from_modem()
        finally:
            await modem.close()


@pytest.mark.parametrize("from_identity", [True, False])
async def test_an_slm_before_ncs_2_1_is_refused_from_either_answer(from_identity: bool) -> None:
    build = slm_build(ncs_version=LEGACY_NCS_VERSION, legacy_datamode=True)
    async with FakeModem(dialect=build) as fake:
        modem = await Modem.open(fake.port, line_ending="\r\n")
        try:
            dialect = Nrf91Slm(modem)
            if from_identity:
                answer = (await modem.command("AT#XSLMVER")).value("#XSLMVER:")
                dialect.identity = slm_identity(answer)
            with pytest.raises(UnsupportedFirmware) as caught:
                await dialect.initialise()
            assert (caught.value.version, caught.value.minimum) == (LEGACY_NCS_VERSION, "2.1.0")
            assert fake.commands.count("AT#XSLMVER") == 1
            dialect.detach_from_modem()
        finally:
            await modem.close()


async def test_an_identity_of_another_family_is_not_taken_for_the_slm_version() -> None:
    """An identity bound to another dialect (a forced --dialect) says nothing of the SLM's
    version: it is asked."""
    async with FakeModem(dialect="nrf91-slm") as fake:
        modem = await Modem.open(fake.port, line_ending="\r\n")
        try:
            dialect = Nrf91Slm(modem)
            dialect.identity = Identity(
                "Nordic Semiconductor ASA", "nRF9160", "mfw", "nrf91-sm", "1.0"
            )
            await dialect.initialise()
            assert fake.commands.count("AT#XSLMVER") == 1
            dialect.detach_from_modem()
        finally:
            await modem.close()
