"""``atbridge watch`` against the fakes' field scenarios (tests/fakes/scenarios.py), on all five
dialects: a scripted RSRP series, a handover, roaming and a denied registration, each seen in the
JSON records the watch writes — decoded from each family's own answers (``%XMONITOR``/``+CESQ``
on the nRF91, ``+CPSI?``/``+CSQ`` on SIMCom)."""

from __future__ import annotations

from typing import Any

import pytest

from atbridge.dialects import dialect_class
from atbridge.modem import Modem
from atbridge.watch import (
    Plan,
    enable_notifications,
    notification_prefixes,
    restore_notifications,
    watch,
)
from tests.fakes import FakeModem

DIALECTS = ("nrf91-slm", "nrf91-sm", "sim7000", "sim7080", "sim7600")


def plan_for(dialect: str, count: int) -> tuple[Plan, tuple[str, ...]]:
    cls = dialect_class(dialect)
    sources = tuple(cls.registration_sources)
    plan = Plan(
        sample_queries=tuple(cls.sample_queries),
        registration_sources=sources,
        prefixes=notification_prefixes((), sources),
        interval=0.01,
        count=count,
    )
    return plan, sources


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_scripted_signal_is_sampled_in_order(dialect: str) -> None:
    series = [-85, -97, -112, -104]
    async with (
        FakeModem(dialect=dialect, cfun=1, rsrp_series=series, series_period=0) as fake,
        await Modem.open(fake.port) as modem,
    ):
        plan, _ = plan_for(dialect, len(series))
        records: list[dict[str, Any]] = []

        def emit(record: dict[str, Any]) -> None:
            records.append(record)
            if record["kind"] == "sample":
                fake.step_signal()

        assert await watch(modem, plan, emit) == len(series)
    samples = [r for r in records if r["kind"] == "sample"]
    assert [s["rsrp_dbm"] for s in samples] == series
    assert all(s["registered"] is True and s["stat"] == 1 for s in samples)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_handover_is_marked_with_the_previous_cell(dialect: str) -> None:
    async with FakeModem(dialect=dialect, cfun=1) as fake, await Modem.open(fake.port) as modem:
        plan, sources = plan_for(dialect, 4)
        changes = await enable_notifications(modem, sources=sources, commands=())
        first_cell = int(fake.network.ci, 16)
        records: list[dict[str, Any]] = []
        samples = 0

        def emit(record: dict[str, Any]) -> None:
            nonlocal samples
            records.append(record)
            if record["kind"] == "sample":
                samples += 1
                if samples == 2:
                    fake.handover()

        await watch(modem, plan, emit)
        new_cell = int(fake.network.ci, 16)
        assert await restore_notifications(modem, changes) == []
    assert new_cell != first_cell
    marked = [r for r in records if r["handover"]]
    assert len(marked) == 1, records
    assert marked[0]["cell_id_int"] == new_cell
    assert int(marked[0]["previous_cell_id"], 16) == first_cell
    last = [r for r in records if r["kind"] == "sample"][-1]
    assert last["cell_id_int"] == new_cell and last["handover"] is False


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_roaming_is_sampled_as_roaming(dialect: str) -> None:
    async with (
        FakeModem(dialect=dialect, cfun=1, roaming=True) as fake,
        await Modem.open(fake.port) as modem,
    ):
        plan, _ = plan_for(dialect, 2)
        records: list[dict[str, Any]] = []
        await watch(modem, plan, records.append)
    samples = [r for r in records if r["kind"] == "sample"]
    assert samples and all(s["stat"] == 5 and s["roaming"] is True for s in samples)
    assert all(s["registered"] is True for s in samples)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_denied_registration_is_sampled_with_its_cause(dialect: str) -> None:
    async with (
        FakeModem(dialect=dialect, cfun=1, deny=15) as fake,
        await Modem.open(fake.port) as modem,
    ):
        plan, sources = plan_for(dialect, 2)
        changes = await enable_notifications(modem, sources=sources, commands=())
        records: list[dict[str, Any]] = []
        await watch(modem, plan, records.append)
        await restore_notifications(modem, changes)
    samples = [r for r in records if r["kind"] == "sample"]
    assert samples and all(s["stat"] == 3 and s["registered"] is False for s in samples)
    assert all(s.get("reject_cause") == 15 for s in samples)  # shown at level 3/5 (+CEREG=5)
