"""The fake's command history (``FakeModem.commands``): bounded, and still a list to its users.

A soak or a benchmark sends millions of commands; the fake keeps at least the most recent
``command_history`` lines and at most twice that (``CommandHistory``, a ``list`` that forgets
its older half when full) and counts them all (``total``). The tests here
drive a real fake through its pty for what the engine records, and the history on its own for
the list behaviours the test suite relies on (indexing, slicing, ``==`` with a list, ``count``,
``index``, ``in``, ``clear``).
"""

from __future__ import annotations

import pytest

from tests.fakes import FakeModem
from tests.fakes.core import COMMAND_HISTORY, CommandHistory
from tests.pty_client import Client

OK = b"\r\nOK\r\n"


async def test_a_fake_keeps_the_most_recent_lines_and_counts_them_all() -> None:
    async with FakeModem("generic", echo=False, command_history=2) as fake:
        client = Client(fake.port)
        try:
            for number in range(5):
                await client.ask(f'AT+CGDCONT=1,"IP","apn{number}"\r'.encode(), OK)
        finally:
            client.close()
        # Full at 4 (twice 2), it forgot the older half; the fifth line came after.
        assert fake.commands == [f'AT+CGDCONT=1,"IP","apn{n}"' for n in (2, 3, 4)]
        assert fake.commands.total == 5
        assert fake.commands.forgotten == 2
        assert fake.commands.since(3) == ['AT+CGDCONT=1,"IP","apn3"', 'AT+CGDCONT=1,"IP","apn4"']
        with pytest.raises(LookupError, match="1 of the 4 lines since 1 are no longer kept"):
            fake.commands.since(1)
        assert await fake.wait_for_command('AT+CGDCONT=1,"IP","apn4"', timeout=1) == (
            'AT+CGDCONT=1,"IP","apn4"'
        )


async def test_the_default_keeps_far_more_than_a_test_sends() -> None:
    fake = FakeModem("generic")
    assert fake.commands.keep == COMMAND_HISTORY >= 1000
    assert isinstance(fake.commands, list)
    assert fake.commands == [] and fake.commands.total == 0


def test_a_history_of_no_lines_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 line"):
        FakeModem("generic", command_history=0)


def test_the_history_is_a_list_that_forgets_its_older_half() -> None:
    history = CommandHistory(2)
    for line in ("AT", "ATE0", "AT+CMEE=1"):
        history.append(line)
    assert history == ["AT", "ATE0", "AT+CMEE=1"]  # under twice ``keep``: all kept
    history.append("AT+CGMM")  # twice ``keep``: the older half goes
    assert history == ["AT+CMEE=1", "AT+CGMM"] and history.forgotten == 2
    assert history[-1] == "AT+CGMM" and history[1:] == ["AT+CGMM"]
    history.clear()
    assert history == [] and history.total == 4 and history.forgotten == 2
    history.append("AT")
    assert history.since(4) == ["AT"] and history[0] == "AT"
    with pytest.raises(LookupError, match="no longer kept"):
        history.since(3)  # AT+CGMM was cleared
    with pytest.raises(ValueError, match="not a count of lines"):
        history.since(7)


def test_a_long_run_holds_only_the_window() -> None:
    history = CommandHistory(100)
    for number in range(100_000):
        history.append(f"AT+CSQ{number}")
    assert 100 <= len(history) < 200 and history.total == 100_000
    assert history[-100:] == [f"AT+CSQ{number}" for number in range(99_900, 100_000)]
    assert history.forgotten + len(history) == 100_000
