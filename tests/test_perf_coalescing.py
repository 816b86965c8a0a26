"""MQTT packets queued together go to the modem together (issue 16), within its send limit.

Publishes started in the same turn of the event loop are queued in the session before
its flush takes them: they leave in one socket send, which the dialect cuts into its
largest chunks (:attr:`~atbridge.dialects.base.Dialect.max_send`), one modem send
command per chunk. Counted on the fake's command log, on the Serial LTE Modem (data
mode sends, 2048 bytes) and the SIM7080 (``AT+CASEND``, 1024 bytes); every message
reaches the subscriber whole and in order.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from atbridge.at_mqtt import Publish, encode
from atbridge.bridge import Bridge
from atbridge.dialects import dialect_class
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config

#: The dialect and how its send command starts on the command line.
SENDS = {"nrf91-slm": "AT#XSEND", "sim7080": "AT+CASEND="}
WAIT = 30.0


def send_commands(fake: FakeModem, dialect: str) -> int:
    start = SENDS[dialect]
    return sum(1 for line in fake.commands if line.startswith(start))


async def publish_together(
    dialect: str, broker: Mosquitto, paho: PahoPeer, topic: str, payloads: list[bytes]
) -> int:
    """Publish ``payloads`` (QoS 0) in one turn; the modem sends they took, checked delivered."""
    await asyncio.to_thread(paho.subscribe, topic, 1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        bridge = Bridge(config=config(fake, broker.port, dialect=dialect))
        async with bridge:
            before = send_commands(fake, dialect)
            await asyncio.gather(*(bridge.publish(topic, p, qos=0) for p in payloads))
            sends = send_commands(fake, dialect) - before
            received = await asyncio.to_thread(paho.wait_for, len(payloads), WAIT)
    assert [p for t, p, _q in received if t == topic] == payloads
    return sends


@pytest.mark.parametrize("dialect", sorted(SENDS))
async def test_publishes_queued_together_leave_in_one_modem_send(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    topic = f"coalesce/one/{dialect}"
    payloads = [b"message %d" % i for i in range(5)]
    assert await publish_together(dialect, broker, paho, topic, payloads) == 1


@pytest.mark.parametrize("dialect", sorted(SENDS))
async def test_what_is_queued_beyond_the_send_limit_goes_in_the_fewest_full_sends(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    topic = f"coalesce/many/{dialect}"
    payloads = [bytes([0x41 + i]) * 700 for i in range(6)]
    frames = sum(len(encode(Publish(topic, p))) for p in payloads)
    limit = dialect_class(dialect).max_send
    assert frames > limit  # more than one send is needed
    sends = await publish_together(dialect, broker, paho, topic, payloads)
    assert sends == math.ceil(frames / limit)
