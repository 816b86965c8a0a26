"""The board answers, is identified, registers on the network and resolves names."""

from __future__ import annotations

import time

from atbridge.dialects import identify
from hil.conftest import Board, Endpoint


async def test_modem_answers_and_is_identified(board: Board) -> None:
    """AT gets OK, and auto-detection names the dialect the board is known to speak."""
    async with board.open() as dialect:
        identity = await identify(dialect.modem)
        assert identity.manufacturer and identity.model
        if board.expected_dialect is not None:
            assert identity.dialect == board.expected_dialect, identity.describe()


async def test_registers_within_the_attach_timeout(board: Board, apn: str | None) -> None:
    """Radio on, then registered (home or roaming) before ``--attach-timeout`` runs out."""
    async with board.open() as dialect:
        await dialect.configure_pdp(apn)
        started = time.monotonic()
        registration = await dialect.attach(timeout=board.attach_timeout)
        assert registration.registered, registration.describe()
        assert time.monotonic() - started <= board.attach_timeout


async def test_dns_resolves_through_the_modem(
    board: Board, apn: str | None, broker: Endpoint
) -> None:
    """The modem's DNS answers with an address (``localhost`` on the fake, else the broker)."""
    name = "localhost" if board.fake is not None else broker.host
    async with board.open() as dialect:
        await dialect.configure_pdp(apn)
        await dialect.attach(timeout=board.attach_timeout)
        await dialect.activate_data(timeout=board.timeouts.activate)
        address = await dialect.resolve(name, timeout=board.timeouts.open_socket)
    assert address.count(".") == 3 or ":" in address, address
    if board.fake is not None:
        assert address == "127.0.0.1"
