"""The fault matrix (issue 12): every dialect x every fault, a QoS 1 stream counted at a real
subscriber.

Each cell starts a mosquitto with persistence, a paho subscriber with a persistent session
(``clean_session=False``: what the broker holds for it survives a broker restart, so a loss
on the broker's side would show) and a fake modem, gets a :class:`~atbridge.bridge.Bridge`
online, publishes :data:`BEFORE` numbered QoS 1 messages, makes one fault happen, publishes
:data:`AFTER` more while the bridge recovers, and then checks:

- **0 lost**: every number arrives at the subscriber;
- **duplicates only as MQTT permits**: a number that arrives twice was either still
  unacknowledged when the fault hit (the bridge resends it, with DUP, after the reconnect:
  QoS 1 is at least once) or was redelivered by the broker with DUP set;
- **online at the end**, and a message published after the recovery gets through.

The faults: the broker killed and restarted on the same port, a modem reboot, the network
dropping the data context, a TCP reset (a loopback proxy between the fake and the broker
aborts the connection), the peer closing the connection, garbage on the serial line, an AT
response that never comes, and the serial device going away and coming back under the same
``/dev/serial/by-id/``-like name (the symlink re-pointed to a new pty).

Each cell measures the recovery time (fault to the first PUBACK after it); with
``ATBRIDGE_MATRIX_REPORT=<file>`` in the environment it appends one JSON line per cell there
(dialect, fault, recovery_s, the states it went through): the README's reliability figures.
The command timeouts and backoffs are short (the fakes answer in milliseconds), so a cell
costs about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from atbridge.bridge import Bridge
from atbridge.dialects import DIALECTS
from atbridge.dialects.nrf91 import NordicDialect
from atbridge.dialects.nrf91_sm import Nrf91Sm
from atbridge.dialects.simcom import SimcomDialect
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config, creds

#: Messages published (and acknowledged) before the fault, and published during recovery.
BEFORE = 3
AFTER = 3
#: Seconds a cell may take to recover and deliver (a bound, never a measured expectation).
WAIT = 60.0
#: Line noise: bytes no modem sends, a half line, a stray result-looking line.
GARBAGE = b"\xff\x00\xfe\x13noise\r\n\r\n~~~\x1b[0m\r\n+UNKNOWN: 1,2\r\n\x80\x81"

FAULTS = (
    "broker_restart",
    "modem_reboot",
    "pdp_drop",
    "tcp_reset",
    "peer_close",
    "garbage",
    "dropped_response",
    "device_gone",
)


class Subscriber(PahoPeer):
    """The paho peer, recording each delivery's DUP flag with its payload."""

    def __init__(self, port: int, client_id: str) -> None:
        self.deliveries: list[tuple[bytes, bool]] = []
        super().__init__(port, client_id, clean_session=False)

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        self.deliveries.append((bytes(message.payload), bool(message.dup)))  # type: ignore[attr-defined]
        super()._on_message(client, userdata, message)

    def wait_for_payloads(self, wanted: set[bytes], timeout: float) -> None:
        """Block (at most ``timeout`` s) until every payload of ``wanted`` has arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not wanted <= {payload for _t, payload, _q in self.messages}:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = sorted({p for _t, p, _q in self.messages})
                    raise TimeoutError(f"the subscriber got {got}, not all of {sorted(wanted)}")
                self._changed.wait(left)


class ResettingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``; :meth:`reset` aborts every connection with a
    RST towards the fake (SO_LINGER 0), as a NAT or firewall dropping its state does."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ResettingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.reset()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self._pairs.append((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def reset(self) -> None:
        """RST every connection towards the fake; close the broker side."""
        pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            sock = client.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
            client.transport.abort()
            upstream.transport.abort()


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch, short_escape_guard: None) -> None:
    """A lost answer to a send costs seconds on a fake, not the minute a real network may need."""
    monkeypatch.setattr(NordicDialect, "send_timeout", 2.0)
    monkeypatch.setattr(NordicDialect, "data_mode_entry_timeout", 2.0)
    monkeypatch.setattr(Nrf91Sm, "hex_send_timeout", 2.0)
    monkeypatch.setattr(SimcomDialect, "send_timeout", 2.0)


@contextlib.contextmanager
def persistent_broker() -> Iterator[Mosquitto]:
    with Mosquitto(persistence=True) as broker:
        yield broker


@contextlib.asynccontextmanager
async def route(fault: str, broker: Mosquitto) -> AsyncIterator[tuple[int, Callable[[], None]]]:
    """The port the bridge connects to, and how to reset its TCP connection (a proxy only for
    ``tcp_reset``; elsewhere the broker's own port)."""
    if fault != "tcp_reset":
        yield broker.port, lambda: None
        return
    async with ResettingProxy(broker.port) as proxy:
        yield proxy.port, proxy.reset


async def inject(fault: str, fake: FakeModem, broker: Mosquitto, reset: Callable[[], None]) -> None:
    """Make ``fault`` happen (the broker restart waits until it listens again)."""
    if fault == "broker_restart":
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
    elif fault == "modem_reboot" or fault == "device_gone":
        fake.reboot()  # with by_id: the node goes, and comes back naming a new pty
    elif fault == "pdp_drop":
        fake.drop_pdp()
    elif fault == "tcp_reset":
        reset()
    elif fault == "peer_close":
        fake.peer_close()
    elif fault == "garbage":
        fake.send_garbage(GARBAGE)
    elif fault == "dropped_response":
        fake.drop_next_response()  # the next command (the next send) is never answered
    else:  # pragma: no cover - the parameter list is FAULTS
        raise AssertionError(fault)


def report(dialect: str, fault: str, recovery: float, bridge: Bridge) -> None:
    """One JSON line for the README's figures, when ``ATBRIDGE_MATRIX_REPORT`` names a file."""
    path = os.environ.get("ATBRIDGE_MATRIX_REPORT")
    if path:
        states = [t.new for t in bridge.history][6:]
        line = {"dialect": dialect, "fault": fault, "recovery_s": round(recovery, 3)}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({**line, "states": states}) + "\n")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_a_qos1_stream_survives_the_fault(
    dialect: str,
    fault: str,
    tmp_path: Path,
) -> None:
    topic = f"matrix/{dialect}/{fault}"
    numbers = [f"{n}".encode() for n in range(BEFORE + AFTER + 1)]
    with persistent_broker() as broker:
        subscriber = await asyncio.to_thread(Subscriber, broker.port, f"sub-{dialect}-{fault}")
        try:
            await asyncio.to_thread(subscriber.subscribe, topic, 1)
            by_id = tmp_path if fault == "device_gone" else None
            async with (
                FakeModem(dialect=dialect, registration_delay=0.05, by_id=by_id) as fake,
                route(fault, broker) as (port, reset),
            ):
                cfg = config(
                    fake,
                    port,
                    port=await fake.wait_for_device(),
                    credentials=creds(port, f"matrix-{dialect}-{fault}"),
                    healthy_after=0.5,
                )
                async with Bridge(config=cfg) as bridge:
                    for number in numbers[:BEFORE]:
                        await bridge.publish(topic, number, qos=1)
                    faulted_at = time.monotonic()
                    await inject(fault, fake, broker, reset)
                    during = [
                        asyncio.create_task(bridge.publish(topic, number, qos=1))
                        for number in numbers[BEFORE:-1]
                    ]
                    async with asyncio.timeout(WAIT):
                        await during[0]
                        recovered_at = time.monotonic()
                        await asyncio.gather(*during)
                        await bridge.wait_online()
                        await bridge.publish(topic, numbers[-1], qos=1)  # after the recovery
                    assert bridge.state == "online"
                    report(dialect, fault, recovered_at - faulted_at, bridge)
                    if fault in ("modem_reboot", "device_gone", "pdp_drop"):
                        assert "backing_off" in [t.new for t in bridge.history]
            await asyncio.to_thread(subscriber.wait_for_payloads, set(numbers), WAIT)
        finally:
            await asyncio.to_thread(subscriber.close)
    counts = {number: 0 for number in numbers}
    for payload, dup in subscriber.deliveries:
        counts[payload] += 1
        if counts[payload] > 1:  # a repeat: in flight at the fault, or the broker's redelivery
            assert dup or payload in numbers[BEFORE:-1], (payload, subscriber.deliveries)
    assert all(count >= 1 for count in counts.values()), counts
