"""``atbridge publish --tls``: host-side TLS from the command line, as a real process.

``python -m atbridge publish -h localhost -p <port> --tls --cafile <ca>`` runs through a
fake modem on a pty to a mosquitto TLS listener (tests/brokers.py ``TlsListener``); a
paho subscriber with TLS checks that the message arrived. A CA that did not sign the
broker's certificate is a setting to fix on this side: exit 2, said on stderr, after one
socket (the lifecycle stops on :class:`~atbridge.errors.TlsRefused`, it does not retry).
The fakes resolve ``localhost`` to 127.0.0.1 (tests/fakes/loopback.py), so the name the
certificate carries is the name the bridge checks.
"""

# ruff: noqa: F811  (the fixtures, imported, are then named as parameters)
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.brokers import Certificates, Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401  (fixtures)
    StartCli,
    atbridge,
    run_cli,
)

WAIT = 30.0
DIALECTS = ["nrf91-slm", "sim7080"]
#: The command that opens a TCP connection on each fake (one per attempt).
CONNECTS = {"nrf91-slm": "AT#XCONNECT=", "sim7080": "AT+CAOPEN="}


def publish(fake: FakeModem, broker: Mosquitto, cafile: str, topic: str) -> list[str]:
    return [
        "publish", "--port", fake.port, "-h", "localhost", "-p", str(broker.port),
        "--tls", "--cafile", cafile, "-t", topic, "-m", "over TLS", "-q", "1",
        "--give-up-after", "30",
    ]  # fmt: skip


def connects(fake: FakeModem, dialect: str) -> int:
    return sum(command.startswith(CONNECTS[dialect]) for command in fake.commands)


@pytest.fixture(scope="module")
def other_ca() -> Iterator[Certificates]:
    """A CA that signed nothing the broker shows."""
    made = Certificates()
    yield made
    made.remove()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_publish_with_tls_reaches_a_tls_subscriber(
    dialect: str,
    tls_broker: Mosquitto,
    tls_paho: PahoPeer,
    certs: Certificates,
    atbridge: StartCli,
) -> None:
    topic = f"cli/tls/{dialect}"
    await asyncio.to_thread(tls_paho.subscribe, topic, 1)
    before = len(tls_paho.messages)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cli = await run_cli(atbridge, *publish(fake, tls_broker, str(certs.cafile), topic))
        assert cli.proc.returncode == 0, cli.stderr
        assert connects(fake, dialect) == 1
    received = await asyncio.to_thread(tls_paho.wait_for, before + 1, WAIT)
    assert [(t, p, q) for t, p, q in received[before:]] == [(topic, b"over TLS", 1)]
    assert cli.out == [f"sent 1: 8 bytes to {topic} (QoS 1, acknowledged)"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_ca_that_did_not_sign_the_broker_exits_2_after_one_attempt(
    dialect: str, tls_broker: Mosquitto, other_ca: Certificates, atbridge: StartCli
) -> None:
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cli = await run_cli(atbridge, *publish(fake, tls_broker, str(other_ca.cafile), "t"))
        assert cli.proc.returncode == 2, cli.stderr
        assert "not signed by a CA you trust" in cli.stderr
        assert connects(fake, dialect) == 1  # no reconnect storm
    assert "Traceback" not in cli.stderr


@pytest.mark.parametrize("dialect", ["nrf91-slm", "nrf91-sm"])
async def test_publish_with_tls_on_the_modem_uses_the_security_tag(
    dialect: str,
    tls_broker: Mosquitto,
    tls_paho: PahoPeer,
    certs: Certificates,
    atbridge: StartCli,
) -> None:
    """``--tls modem --sec-tag 42``: the nRF91 does the handshake with the CA stored under
    tag 42 (the fake's AT%CMNG store); without it the connect is refused naming the tag."""
    from tests.fakes import nrf91_tls

    topic = f"cli/offload/{dialect}"
    await asyncio.to_thread(tls_paho.subscribe, topic, 1)
    before = len(tls_paho.messages)
    args = [
        "publish", "-h", "localhost", "-p", str(tls_broker.port), "--tls", "modem",
        "--sec-tag", "42", "-t", topic, "-m", "offloaded", "-q", "1", "--give-up-after", "5",
    ]  # fmt: skip
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        refused = await run_cli(atbridge, *args, "--port", fake.port)
        assert refused.proc.returncode != 0
        assert "security tag 42" in refused.stderr
        nrf91_tls.store(fake, 42, nrf91_tls.CA, certs.cafile.read_text())
        cli = await run_cli(atbridge, *args, "--port", fake.port)
        assert cli.proc.returncode == 0, cli.stderr
        assert any(c.startswith("AT#XSSOCKET=") for c in fake.commands)
    received = await asyncio.to_thread(tls_paho.wait_for, before + 1, WAIT)
    assert [(t, p) for t, p, _q in received[before:]] == [(topic, b"offloaded")]
