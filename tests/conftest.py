"""Fixtures shared by the test modules: a real mosquitto and a paho-mqtt peer on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.brokers import Mosquitto, PahoPeer


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    """A mosquitto on a free loopback port, one per test module."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def paho(broker: Mosquitto, request: pytest.FixtureRequest) -> Iterator[PahoPeer]:
    """A paho-mqtt client on ``broker``, named after the test module."""
    peer = PahoPeer(broker.port, f"paho-{request.module.__name__.rsplit('.', 1)[-1]}")
    try:
        yield peer
    finally:
        peer.close()
