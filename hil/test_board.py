"""The board answers, is identified, registers on the network and resolves names.

Each test runs the bring-up steps of :mod:`atbridge.steps` it needs, one by one.
"""

from __future__ import annotations

from atbridge import steps
from atbridge.dialects import identify
from atbridge.farm.plugin import Board, Endpoint


async def test_modem_answers_and_is_identified(board: Board) -> None:
    """AT gets OK, and auto-detection names the dialect the board is known to speak."""
    async with board.open() as link:
        identity = await identify(link.modem)
        assert identity.manufacturer and identity.model
        if board.expected_dialect is not None:
            assert identity.dialect == board.expected_dialect, identity.describe()
            assert link.probed.dialect_name == board.expected_dialect


async def test_registers_within_the_attach_timeout(board: Board, apn: str | None) -> None:
    """Radio on, then registered (home or roaming) before ``--attach-timeout`` runs out."""
    async with board.open() as link:
        await steps.configure(link.dialect, apn, timeout=board.timeouts.configure)
        attached = await steps.attach(link.dialect, timeout=board.attach_timeout)
        assert attached.registration.registered, attached.registration.describe()
        assert attached.seconds <= board.attach_timeout


async def test_dns_resolves_through_the_modem(
    board: Board, apn: str | None, broker: Endpoint
) -> None:
    """The modem's DNS answers with an address (``localhost`` on the fake, else the broker)."""
    name = "localhost" if board.fake is not None else broker.host
    async with board.open() as link:
        await link.bring_up_data(apn)
        resolved = await steps.resolve(link.dialect, name, timeout=board.timeouts.open_socket)
    address = resolved.addresses[0]
    assert address.count(".") == 3 or ":" in address, address
    if board.fake is not None:
        assert address == "127.0.0.1"
