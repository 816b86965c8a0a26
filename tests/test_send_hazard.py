"""What a send meets on the line (issue 12): numbers beyond any modem's range in a SIMCom
SIM7000's send and close lines, and a modem that reboots in the middle of a send.

- A ``DATA ACCEPT: <n>,<taken>`` or ``<n>, CLOSED`` with thousands of digits is a line the
  dialect does not understand, never an ``int()`` of thousands of digits (``ValueError`` in
  the read callback or the send task).
- A reboot during a send must never make the modem run the rest of the payload as AT
  commands (see the tests further down and the dialects' docstrings for what shrinks the
  window on each family).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.dialects.nrf91_sm import Nrf91Sm
from atbridge.dialects.sim7000 import Sim7000
from atbridge.modem import Modem, Urc
from atbridge.text import escape_bytes
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_fsm import config, creds

HUGE = b"9" * 5000  # beyond Python's 4300-digit int-from-string limit
WAIT = 10.0
#: Every dialect holds the payload back until the modem is surely still in the send: the
#: nRF91 dialects themselves (hex sends, data mode after the OK's read), the SIMCom ones
#: through the channel, which writes a prompt's payload only once the read that brought the
#: prompt is routed and drops it when a boot banner came with it (modem.py, "Prompts").
ALL_DIALECTS = tuple(sorted(DIALECTS))
#: The Serial Modem's hex string send: the payload only as hex digits inside the quotes.
SM_HEX_SEND = re.compile(r'AT#XSEND=\d+,1,0,"(?:[0-9a-f]{2})+"')


@pytest.fixture
async def sim7000() -> AsyncIterator[tuple[FakeModem, Modem, Sim7000]]:
    async with FakeModem(dialect="sim7000") as fake:
        modem = await Modem.open(fake.port, line_ending=Sim7000.line_ending)
        dialect = Sim7000(modem)
        try:
            yield fake, modem, dialect
        finally:
            dialect.detach_from_modem()
            await modem.close()


def urc_future(modem: Modem, prefix: str) -> asyncio.Future[Urc]:
    found: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()

    def check(urc: Urc) -> None:
        if not found.done():
            found.set_result(urc)

    modem.subscribe(prefix, check)
    return found


def test_a_huge_data_accept_is_no_final_result_code() -> None:
    """Before the bound, this line ended the send and ``int()`` raised in the send task."""
    modem = Modem(line_ending=Sim7000.line_ending)
    Sim7000(modem)
    events = modem.parser.feed(b"\r\nDATA ACCEPT: 0," + HUGE + b"\r\n")
    assert [type(event).__name__ for event in events] == ["Line"]
    events = modem.parser.feed(b"\r\nDATA ACCEPT: 0,12\r\n")
    assert [type(event).__name__ for event in events] == ["Final"]


async def test_a_huge_connection_number_in_closed_is_survived(
    sim7000: tuple[FakeModem, Modem, Sim7000],
) -> None:
    """Before the bound, the dialect's bare-line handler raised ``ValueError`` (the channel
    kept reading only because it guards its subscribers)."""
    fake, modem, dialect = sim7000
    line = HUGE + b", CLOSED"
    dialect._on_bare_line(Urc(line.decode(), line))  # no ValueError: not a connection of ours
    marker = urc_future(modem, "+MARK:")
    fake.write_raw(b"\r\n" + line + b"\r\n\r\n+MARK: 1\r\n")
    async with asyncio.timeout(WAIT):
        assert (await marker).text == "+MARK: 1"


# -- the password in a SIMCom send, masked by its position --------------------------------


@pytest.mark.parametrize("dialect", ["sim7000", "sim7080", "sim7600"])
async def test_the_connect_password_in_a_simcom_send_is_masked_by_position(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CONNECT goes out as the payload of ``AT+CASEND``/``AT+CIPSEND``: the send names
    where its password sits (``payload_secret_spans``), so the transcript masks it by
    position, not only by searching for its text (the second net)."""
    password = "Pw7x\r\n+++q\"'Zr9"
    named: list[bytes] = []
    command = Modem.command

    async def spying(self: Modem, line: str, **kw: Any) -> Any:
        payload, spans = kw.get("payload"), kw.get("payload_secret_spans", ())
        if payload is not None and payload[:1] == b"\x10":  # a CONNECT
            named.extend(payload[start:end] for start, end in spans)
        return await command(self, line, **kw)

    monkeypatch.setattr(Modem, "command", spying)
    transcript = tmp_path / "transcript.log"
    with Mosquitto() as broker:
        credentials = MqttCredentials.plain(
            client_id=f"masked-{dialect}",
            host="127.0.0.1",
            port=broker.port,
            username="device",
            password=password,
        )
        async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
            config = BridgeConfig(
                port=fake.port,
                credentials=credentials,
                timeouts=Timeouts(probe=10, configure=10, attach=10, open_socket=10, connack=10),
                give_up_after=30.0,
                transcript=str(transcript),
            )
            async with Bridge(config=config) as bridge:
                await bridge.publish("hardening/masked", b"accepted", qos=1)
    assert b"".join(named) == password.encode()
    text = transcript.read_text()
    assert "***" in text
    for form in ("Pw7x", "Zr9", escape_bytes(password.encode())):
        assert form not in text, form


# -- a reboot as a send begins (defect 9) ----------------------------------------------------

#: A payload that would switch the radio off if it ever ran as AT commands.
INJECTION = b"head\r\nAT+CFUN=0\r\n" + b"x" * 64 + b"\rAT+CFUN=0\r" + b"tail"


@pytest.mark.usefixtures("short_escape_guard")
@pytest.mark.parametrize("dialect", ALL_DIALECTS)
async def test_a_reboot_as_the_send_begins_never_runs_the_payload(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    """The fake reboots once it has asked for the payload (the ``OK`` of data mode, the
    ``> `` prompt); the payload must not reach its AT parser. The Serial Modem sends hex
    strings: no payload byte is ever outside a quoted hex parameter."""
    topic = f"hazard/{dialect}"
    paho.subscribe(topic, qos=1)
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        cfg = config(fake, broker.port, credentials=creds(broker.port, f"hazard-{dialect}"))
        async with Bridge(config=cfg) as bridge:
            await bridge.publish(topic, b"before", qos=1)
            start = len(fake.commands)
            if dialect != "nrf91-sm":
                fake.reboot_during_next_send()
            async with asyncio.timeout(WAIT * 3):
                await bridge.publish(topic, INJECTION, qos=1)
                await bridge.wait_online()
            sent = fake.commands[start:]
            assert not [line for line in sent if "CFUN=0" in line], sent
            if dialect == "nrf91-sm":
                sends = [line for line in sent if line.startswith("AT#XSEND=")]
                assert sends and all(SM_HEX_SEND.fullmatch(line) for line in sends), sends
    assert INJECTION in [payload for _t, payload, _q in paho.wait_for(2, WAIT)]


# -- a lost answer to a Serial Modem send (defect 10) ----------------------------------------


class CapturingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that keeps what the fake sent the broker."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.sent = bytearray()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CapturingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for source, sink, keep in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.get_running_loop().create_task(self._pump(source, sink, keep))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, keep: bool
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                if keep:
                    self.sent += data
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.mark.usefixtures("short_escape_guard")
async def test_a_lost_answer_to_a_serial_modem_send_costs_one_timeout_and_no_socket_data(
    broker: Mosquitto, paho: PahoPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the SM sat in data mode counting bytes: the escape and the resync commands
    went to the broker as socket data and the bridge took some 40 s to come back. Now a
    lost answer costs the send's timeout (short here), the socket is reopened, and nothing
    but MQTT reaches the broker."""
    monkeypatch.setattr(Nrf91Sm, "hex_send_timeout", 1.0)
    topic = "hazard/lost-ok"
    paho.subscribe(topic, qos=1)
    async with (
        FakeModem(dialect="nrf91-sm", registration_delay=0.05) as fake,
        CapturingProxy(broker.port) as proxy,
    ):
        cfg = config(fake, proxy.port, credentials=creds(proxy.port, "lost-ok-sm"))
        async with Bridge(config=cfg) as bridge:
            await bridge.publish(topic, b"before", qos=1)
            fake.drop_next_response()  # the next command, this send, is never answered
            async with asyncio.timeout(WAIT * 2):  # a bound, far below the 40 s of before
                await bridge.publish(topic, b"after", qos=1)
                await bridge.wait_online()
            assert "backing_off" in [t.new for t in bridge.history]
    for resync in (b"AT\r", b"AT+", b"+++", b"AT#"):
        assert resync not in proxy.sent, resync
    assert {b"before", b"after"} <= {payload for _t, payload, _q in paho.wait_for(2, WAIT)}
