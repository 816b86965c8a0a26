"""Host-side TLS under the real lifecycle: online, reconnects that resume, refusals that stop.

The Bridge runs on every dialect's fake to a TLS mosquitto. The lifecycle passes
``steps.open_socket`` the :class:`~atbridge.tls.TlsClient` it keeps for its life (made
once by ``steps.tls_setting``), so the reconnects below resume its session; the
``host_side_tls`` fixture only records what the lifecycle passed and what it got back.
"""

# ruff: noqa: F811  (the TLS tests' fixtures, imported, are then named as parameters)
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.fakes  # noqa: F401  (registers the fake dialects)
from atbridge import steps
from atbridge.bridge import Bridge
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.errors import ConfigurationError, Failed
from atbridge.fsm import State
from atbridge.tls import TlsClient, TlsSocket
from tests.brokers import Certificates, Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config
from tests.test_tls import expired_broker  # noqa: F401  (a fixture; the others: conftest)

FIVE = sorted(name for name in DIALECTS if name != "generic")
WAIT = 30.0


def tls_creds(certs: Certificates, port: int, client_id: str) -> MqttCredentials:
    return MqttCredentials.plain(
        client_id=client_id, host="localhost", port=port, tls="host", cafile=str(certs.cafile)
    )


class Opened:
    """Every socket the lifecycle opened, and the one TLS client it used."""

    def __init__(self) -> None:
        self.client: TlsClient | None = None
        self.results: list[steps.SocketOpened] = []
        self.attempts = 0


@pytest.fixture
def host_side_tls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Opened]:
    seen = Opened()
    real = steps.open_socket

    async def open_socket(
        dialect: steps.DialectLink, host: str, port: int, *, tls: Any = False, **kw: Any
    ) -> steps.SocketOpened:
        seen.attempts += 1
        assert isinstance(tls, TlsClient), tls  # host-side TLS: the lifecycle's own client
        assert seen.client is None or tls is seen.client  # one client for the bridge's life
        seen.client = tls
        result = await real(dialect, host, port, tls=tls, **kw)
        seen.results.append(result)
        return result

    monkeypatch.setattr(steps, "open_socket", open_socket)
    yield seen


async def reconnected(bridge: Bridge, opened: Opened, fault: Any) -> None:
    """Cause ``fault()``, then wait (bounded) for the bridge to be online on a new socket."""
    before = len(opened.results)
    transitions = bridge.transitions()
    fault()
    async with asyncio.timeout(WAIT):
        async for transition in transitions:
            if transition.new == State.online and len(opened.results) > before:
                return


async def publish_and_check(bridge: Bridge, paho: PahoPeer, topic: str, payload: bytes) -> None:
    before = len(paho.messages)
    await bridge.publish(topic, payload, qos=1)
    received = await asyncio.to_thread(paho.wait_for, before + 1, WAIT)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, payload)]


@pytest.mark.parametrize("dialect", FIVE)
async def test_online_over_tls_and_every_reconnect_resumes_the_session(
    dialect: str,
    tls_broker: Mosquitto,
    tls_paho: PahoPeer,
    certs: Certificates,
    host_side_tls: Opened,
) -> None:
    credentials = tls_creds(certs, tls_broker.port, f"life-{dialect}")
    tls_paho.subscribe(f"life/{dialect}", qos=1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, tls_broker.port, credentials=credentials))
        async with bridge:
            assert bridge.state == "online"
            first = bridge.steps["open_socket"]
            assert isinstance(first, steps.SocketOpened) and first.tls
            assert first.tls_handshake is not None and not first.tls_handshake.resumed
            await publish_and_check(bridge, tls_paho, f"life/{dialect}", b"first")

            for drop in range(2):  # the broker's side goes away without close_notify
                await reconnected(bridge, host_side_tls, fake.peer_close)
                again = bridge.steps["open_socket"]
                assert isinstance(again, steps.SocketOpened)
                assert again.tls_handshake is not None and again.tls_handshake.resumed, drop
                assert again.tls_handshake.bytes_received < first.tls_handshake.bytes_received
                await publish_and_check(bridge, tls_paho, f"life/{dialect}", b"again %d" % drop)
            last = host_side_tls.results[-1].socket
            assert isinstance(last, TlsSocket)
        # A graceful close sends the DISCONNECT and close_notify in one send (the broker
        # closes as soon as it reads the DISCONNECT), then ends the socket.
        assert last.closed is not None and last.close_notify_sent
    client = host_side_tls.client
    assert client is not None and client.session is not None


@pytest.mark.parametrize("dialect", FIVE)
async def test_an_expired_broker_certificate_stops_the_bridge_at_once(
    dialect: str, expired_broker: Mosquitto, certs: Certificates, host_side_tls: Opened
) -> None:
    credentials = tls_creds(certs, expired_broker.port, f"expired-{dialect}")
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, expired_broker.port, credentials=credentials))
        with pytest.raises(Failed):
            async with bridge:
                pass
    failure = bridge.failure
    assert isinstance(failure, ConfigurationError)
    assert "certificate has expired" in failure.message and "clock" in failure.hint
    assert host_side_tls.attempts == 1  # no reconnect storm
    assert [t.new for t in bridge.history].count(State.opening_socket) == 1


@pytest.mark.parametrize("case", ["unreadable CA file", "offload without a tag"])
async def test_a_tls_setting_that_cannot_work_stops_the_bridge_before_the_port_opens(
    case: str, tmp_path: Path, host_side_tls: Opened
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    if case == "unreadable CA file":
        credentials = MqttCredentials.plain(
            client_id="no-ca", host="localhost", port=8883, tls="host", cafile=str(missing)
        )
        said = str(missing)
    else:
        credentials = MqttCredentials.plain(
            client_id="no-tag", host="localhost", port=8883, tls="modem"
        )
        said = "needs the security tag"
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, 8883, credentials=credentials))
        with pytest.raises(Failed):
            async with bridge:
                pass
        assert fake.commands == []  # the port was never opened: nothing was sent
    failure = bridge.failure
    assert isinstance(failure, ConfigurationError) and said in failure.message
    assert host_side_tls.attempts == 0
    assert State.opening_socket not in [t.new for t in bridge.history]
