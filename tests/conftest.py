"""Fixtures shared by the test modules: a real mosquitto and a paho-mqtt peer on it, the same
with TLS (a CA and a server certificate made by the test), and a short escape guard for
tests whose fakes need none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import atbridge.modem as modem_module
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener

#: Seconds of silence around an escape from data mode on a fake (which needs none).
SHORT_GUARD = 0.05


@pytest.fixture
def short_escape_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Channels opened in the test keep a short silence around the escape from data mode
    (``Modem.escape_guard``, 1.1 s by default): the fakes match the terminator with no guard
    time, so a test that is not about the guard checks the same thing, faster."""
    monkeypatch.setattr(modem_module, "ESCAPE_GUARD", SHORT_GUARD)


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


@pytest.fixture(scope="module")
def certs() -> Iterator[Certificates]:
    """A CA made for this test module (trustme), removed at its end."""
    made = Certificates()
    yield made
    made.remove()


@pytest.fixture(scope="module")
def server_pair(certs: Certificates) -> tuple[Path, Path]:
    """The broker's certificate and key, for ``localhost`` and 127.0.0.1."""
    return certs.issue("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def tls_broker(certs: Certificates, server_pair: tuple[Path, Path]) -> Iterator[Mosquitto]:
    """A mosquitto with a TLS listener on a free loopback port, one per test module."""
    cert, key = server_pair
    with Mosquitto(tls=TlsListener(certs.cafile, cert, key)) as broker:
        yield broker


@pytest.fixture
def tls_paho(tls_broker: Mosquitto, certs: Certificates) -> Iterator[PahoPeer]:
    """A paho-mqtt client on ``tls_broker``, trusting the module's CA."""
    peer = PahoPeer(tls_broker.port, "paho-tls", tls=(certs.cafile, None, None))
    try:
        yield peer
    finally:
        peer.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop the async tests run on (uvloop: atbridge[fast]); CI runs the "
        "channel and lifecycle tests on both",
    )


class _OnUvloop:
    """Makes every async test's loop a uvloop (pytest-asyncio's loop-factory hook)."""

    @staticmethod
    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        import uvloop

        return {"uvloop": uvloop.new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--event-loop") == "uvloop":
        config.pluginmanager.register(_OnUvloop(), "atbridge-on-uvloop")
