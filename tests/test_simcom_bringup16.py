"""Bring-up of the SIMCom families asks each thing once (issue 16), and every recovery still
asks again what it may have reset.

- SIM7000: the settings (``AT+CIPMUX=1``, ``AT+CIPQSEND=1``, ``AT+CIPRXGET=1``) once, no
  ``AT+CIPSHUT`` and no ``AT+CIFSR`` probe on a module the probe's listing found in IP
  INITIAL, one plain ``AT+CIFSR`` for the address; after a reboot the three again, after a
  lost network the probe, the shut and the three again (TinyGSM's order).
- SIM7080: the probe's ``AT+CASTATE?`` is not repeated before the first open; the listing
  is asked again once a connection has been opened.
- SIM7600: ``AT+CIPRXGET=1`` once (before ``AT+NETOPEN``, or before the first open on a
  network found open); again after a reboot and after a lost network.
- All three: no read right after an open unless the modem announced data while it was
  being opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable

import pytest

from atbridge.bridge import Bridge
from atbridge.dialects import open_dialect
from atbridge.dialects.sim7000 import accepted_bytes
from atbridge.dialects.sim7600 import cipsend_taken
from atbridge.dialects.simcom import SimcomDialect, ciprxget_link, is_ciprxget_notification
from atbridge.modem import Modem
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.fakes import Response as FakeResponse
from tests.fakes import simcom_common as fault
from tests.fakes.grammar import Command, HandlerResult
from tests.test_fakes_simcom import Peer
from tests.test_fsm import config, creds
from tests.test_simcom_lifecycle import publish_and_check

SETTINGS = ("AT+CIPMUX=1", "AT+CIPQSEND=1", "AT+CIPRXGET=1")
WAIT = 20.0


def between(commands: list[str], first: str, last: str) -> list[str]:
    """The commands from the first ``first`` to the first ``last`` after it (included)."""
    start = commands.index(first)
    return commands[start : commands.index(last, start) + 1]


@contextlib.asynccontextmanager
async def rig(name: str) -> AsyncIterator[tuple[FakeModem, Modem, Peer]]:
    """A fake ``name`` modem, the AT channel open on it, and a TCP peer to connect to;
    all three closed afterwards."""
    peer = Peer()
    await peer.start()
    try:
        async with FakeModem(dialect=name) as fake:
            modem = await Modem.open(fake.port)
            try:
                yield fake, modem, peer
            finally:
                await modem.close()
    finally:
        await peer.close()


# -- SIM7000 ---------------------------------------------------------------------------------


async def test_sim7000_bring_up_sets_each_setting_once_and_shuts_nothing(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """A fresh module (IP INITIAL): the three settings once, no AT+CIPSHUT, no AT+CIFSR before
    AT+CSTT, one AT+CIFSR after AT+CIICR; and the bridge publishes."""
    paho.subscribe("once/sim7000", qos=1)
    async with (
        FakeModem(dialect="sim7000", registration_delay=0.05) as fake,
        Bridge(
            config=config(fake, broker.port, credentials=creds(broker.port, "once7000"))
        ) as bridge,
    ):
        commands = list(fake.commands)
        for setting in SETTINGS:
            assert commands.count(setting) == 1, commands
        assert "AT+CIPSHUT" not in commands
        assert [c for c in commands if c.startswith("AT+CIFSR")] == ["AT+CIFSR"]
        assert commands.index("AT+CIICR") < commands.index("AT+CIFSR")
        assert commands.count("AT+CIPSTATUS") == 1  # the probe's listing, once
        await publish_and_check(bridge, paho, "once/sim7000", b"once")


async def test_sim7000_sets_multi_ip_quick_send_and_manual_receive_again_after_a_reboot(
    broker: Mosquitto, paho: PahoPeer
) -> None:
    """A reboot resets the three settings: the bridge probes again, sets them, and a message
    from the broker still arrives by manual receive."""
    paho.subscribe("reboot/sim7000", qos=1)
    async with (
        FakeModem(dialect="sim7000", registration_delay=0.05) as fake,
        Bridge(
            config=config(fake, broker.port, credentials=creds(broker.port, "reboot7000"))
        ) as bridge,
    ):
        await publish_and_check(bridge, paho, "reboot/sim7000", b"before")
        fake.commands.clear()
        fake.reboot()
        await bridge.lifecycle.wait_for_state("probing", timeout=WAIT)
        await bridge.wait_online(timeout=WAIT)
        opened = await fake.wait_for_command(re.compile(r"AT\+CIPSTART=.*"), timeout=WAIT)
        after = fake.commands[: fake.commands.index(opened)]
        for setting in SETTINGS:
            assert after.count(setting) == 1, after
        assert after.index("AT+CIPRXGET=1") < after.index('AT+CSTT="internet"')
        assert await bridge.subscribe("down/sim7000", qos=1) == 1
        paho.publish("down/sim7000", b"manual receive", qos=1)
        message = await asyncio.wait_for(anext(bridge.messages()), WAIT)
        assert message.payload == b"manual receive"
        await publish_and_check(bridge, paho, "reboot/sim7000", b"after")


async def test_sim7000_after_a_lost_network_probes_shuts_and_sets_up_again() -> None:
    """+PDP: DEACT: the IP state is no longer known, so activation asks AT+CIFSR (ERROR in
    PDP DEACT), shuts, and sets the three again before AT+CSTT (TinyGSM's order)."""
    async with FakeModem(dialect="sim7000") as fake:
        modem = await Modem.open(fake.port)
        try:
            dialect, _ = await open_dialect(modem, "sim7000")
            await dialect.attach(timeout=WAIT)
            await dialect.activate_data(timeout=WAIT)
            lost = asyncio.Event()
            dialect.on_network_lost(lambda _detail: lost.set())
            fault.drop_pdp(fake)
            await asyncio.wait_for(lost.wait(), WAIT)
            fake.commands.clear()
            bearer = await dialect.activate_data(timeout=WAIT)
            assert not bearer.already_active and bearer.address
            assert fake.commands[:2] == ["AT+CIFSR", "AT+CIPSHUT"]
            assert between(fake.commands, "AT+CIPSHUT", "AT+CIICR") == [
                "AT+CIPSHUT",
                *SETTINGS,
                "AT+CGDCONT?",
                'AT+CSTT="internet"',
                "AT+CIICR",
            ]
            dialect.detach_from_modem()
        finally:
            await modem.close()


# -- SIM7080 ---------------------------------------------------------------------------------


async def test_sim7080_lists_its_connections_once_before_the_first_open_and_again_after() -> None:
    """The probe's AT+CASTATE? (nothing open) is not repeated by the open's left-over check;
    once a connection has been opened the check asks again and closes ours."""
    async with rig("sim7080") as (fake, modem, peer):
        dialect, _ = await open_dialect(modem, "sim7080")
        fake.commands.clear()
        assert await dialect.close_leftover_sockets() == 0
        assert fake.commands == ["AT+CASTATE?"]
        await dialect.attach(timeout=WAIT)
        await dialect.activate_data(timeout=WAIT)
        fake.commands.clear()
        assert await dialect.close_leftover_sockets() == 0
        assert fake.commands == []
        sock = await dialect.open_socket("127.0.0.1", peer.port)
        await peer.accept()
        fake.commands.clear()
        assert await dialect.close_leftover_sockets() == 1
        assert fake.commands[0] == "AT+CASTATE?"
        assert sock.closed is not None


# -- SIM7600 ---------------------------------------------------------------------------------


async def test_sim7600_sets_manual_receive_once_per_bring_up_and_again_after_a_lost_network() -> (
    None
):
    """AT+CIPRXGET=1 right before AT+NETOPEN and not again before the open, nor before a
    second open; after +CIPEVENT: NETWORK CLOSED UNEXPECTEDLY again before AT+NETOPEN."""
    async with rig("sim7600") as (fake, modem, peer):
        dialect, _ = await open_dialect(modem, "sim7600")
        await dialect.attach(timeout=WAIT)
        fake.commands.clear()
        await dialect.activate_data(timeout=WAIT)
        first = await dialect.open_socket("127.0.0.1", peer.port)
        await peer.accept()
        second = await dialect.open_socket("127.0.0.1", peer.port)
        await peer.accept()
        assert fake.commands.count("AT+CIPRXGET=1") == 1
        netopen = fake.commands.index("AT+NETOPEN")
        assert fake.commands[netopen - 1] == "AT+CIPRXGET=1"
        lost = asyncio.Event()
        dialect.on_network_lost(lambda _detail: lost.set())
        fault.drop_pdp(fake)
        await asyncio.wait_for(lost.wait(), WAIT)
        assert first.closed is not None and second.closed is not None
        fake.commands.clear()
        await dialect.activate_data(timeout=WAIT)
        netopen = fake.commands.index("AT+NETOPEN")
        assert fake.commands[netopen - 1] == "AT+CIPRXGET=1"
        assert fake.commands.count("AT+CIPRXGET=1") == 1
        dialect.detach_from_modem()


async def test_sim7600_on_a_network_found_open_sets_manual_receive_before_the_open() -> None:
    """An earlier process opened the network (and left push mode on): activation finds it
    open and sends nothing more; the open sets manual receive first, and data arrives."""
    peer = Peer()
    await peer.start()
    try:
        async with FakeModem(dialect="sim7600") as fake:
            earlier = await Modem.open(fake.port)
            await earlier.command("AT+CIPRXGET=0")
            await earlier.command("AT+NETOPEN")
            await fake.wait_for_command("AT+NETOPEN")
            await earlier.close()
            modem = await Modem.open(fake.port)
            try:
                dialect, _ = await open_dialect(modem, "sim7600")
                await dialect.attach(timeout=WAIT)
                fake.commands.clear()
                bearer = await dialect.activate_data(timeout=WAIT)
                assert bearer.already_active
                assert "AT+CIPRXGET=1" not in fake.commands
                sock = await dialect.open_socket("127.0.0.1", peer.port)
                conn = await peer.accept()
                opened = next(i for i, c in enumerate(fake.commands) if c.startswith("AT+CIPOPEN"))
                assert fake.commands[opened - 1] == "AT+CIPRXGET=1"
                await conn.send(b"pulled, not pushed")
                data = b""
                async with asyncio.timeout(WAIT):
                    while len(data) < 18:
                        data += await sock.receive()
                assert data == b"pulled, not pushed"
                await sock.close()
                dialect.detach_from_modem()
            finally:
                await modem.close()
    finally:
        await peer.close()


# -- all three: no read right after an open unless data was announced -----------------------

#: The open command, the data notification the modem sends for connection 0, and the
#: commands that read or ask what is waiting.
FAMILIES = {
    "sim7000": ("AT+CIPSTART", "+CIPRXGET: 1,0", re.compile(r"AT\+CIPRXGET=[24],.*")),
    "sim7080": ("AT+CAOPEN", "+CADATAIND: 0", re.compile(r"AT\+CARECV=.*")),
    "sim7600": ("AT+CIPOPEN", "+CIPRXGET: 1,0", re.compile(r"AT\+CIPRXGET=[24],.*")),
}
#: The first command a woken receiver sends: a read (no "how much is waiting" first).
READ = {
    "sim7000": "AT+CIPRXGET=2,0,1460",
    "sim7080": "AT+CARECV=0,1460",
    "sim7600": "AT+CIPRXGET=2,0,1460",
}


async def online_dialect(fake: FakeModem, modem: Modem, name: str) -> SimcomDialect:
    dialect, _ = await open_dialect(modem, name)
    assert isinstance(dialect, SimcomDialect)
    await dialect.attach(timeout=WAIT)
    await dialect.activate_data(timeout=WAIT)
    return dialect


@pytest.mark.parametrize("name", sorted(FAMILIES))
async def test_an_open_with_nothing_announced_reads_nothing(name: str) -> None:
    """No notification while opening: nothing is read or asked at the open (the modem
    announces the first bytes on an empty buffer); data the peer sends later is received."""
    open_command, _notice, reads = FAMILIES[name]
    async with rig(name) as (fake, modem, peer):
        dialect = await online_dialect(fake, modem, name)
        sock = await dialect.open_socket("127.0.0.1", peer.port)
        conn = await peer.accept()
        await sock.send(b"ping")
        assert await conn.read_exactly(4) == b"ping"
        start = next(i for i, c in enumerate(fake.commands) if c.startswith(open_command))
        assert not [c for c in fake.commands[start:] if reads.match(c)]
        await conn.send(b"pong")
        async with asyncio.timeout(WAIT):
            assert await sock.receive() == b"pong"
        await sock.close()
        dialect.detach_from_modem()


@pytest.mark.parametrize("name", sorted(FAMILIES))
async def test_data_announced_while_the_socket_opens_is_read_at_once(name: str) -> None:
    """A notification that arrives before the open has finished (here in the open command's
    own answer, before its OK) is kept for the socket: its receiver reads right away, and a
    greeting the peer sent first is received."""
    open_command, notice, reads = FAMILIES[name]

    async def announcing(fake: FakeModem, cmd: Command) -> HandlerResult:
        answer = fake.run_default(cmd)
        response = await answer if isinstance(answer, Awaitable) else answer
        assert response is not None
        return FakeResponse(lines=(*response.lines, notice), final=response.final)

    async with rig(name) as (fake, modem, peer):
        dialect = await online_dialect(fake, modem, name)
        fake.on_command(open_command, announcing, times=1)
        sock = await dialect.open_socket("127.0.0.1", peer.port)
        conn = await peer.accept()
        start = next(i for i, c in enumerate(fake.commands) if c.startswith(open_command))
        first_read = await fake.wait_for_command(reads, start=start, timeout=WAIT)
        assert first_read == READ[name]
        await conn.send(b"hello first")
        data = b""
        async with asyncio.timeout(WAIT):
            while len(data) < 11:
                data += await sock.receive()
        assert data == b"hello first"
        await sock.close()
        dialect.detach_from_modem()


# -- the send and receive hot path (issue 16): the same answers, parsed with less work ------


@pytest.mark.parametrize(
    ("final", "taken"),
    [("DATA ACCEPT:0,5", 5), ("DATA ACCEPT: 1,7", 7), ("0, SEND OK", 9), ("3,SEND OK", 9)],
)
def test_sim7000_reads_what_a_send_took_from_its_final(final: str, taken: int) -> None:
    assert accepted_bytes(final, 9) == taken


@pytest.mark.parametrize(
    ("params", "taken"), [("0,10,10", 10), (" 3,10,4", 4), ("0,10,-1", -1), ("0,10", 0)]
)
def test_sim7600_reads_what_a_send_took_from_its_result(params: str, taken: int) -> None:
    """``+CIPSEND: <link>,<requested>,<sent>``; -1 (failed) and a result without
    ``<sent>`` are no bytes taken, which ends the socket."""
    assert cipsend_taken(params, 10) == taken


@pytest.mark.parametrize(
    ("line", "notification", "link"),
    [
        ("+CIPRXGET: 1,3", True, 3),
        ("+CIPRXGET: 1, 0", True, 0),
        ("+CIPRXGET: 2,0,5,0", False, 0),
        ("+CIPRXGET: 4,7,120", False, 7),
        ("+CIPRXGET: 01,2", True, 2),
        ("+CIPRXGET: x,2", False, 2),
    ],
)
def test_ciprxget_lines_are_told_apart_and_name_their_link(
    line: str, notification: bool, link: int
) -> None:
    assert is_ciprxget_notification(line) is notification
    assert ciprxget_link(line) == link


async def test_sim7600_takes_a_send_result_that_comes_before_the_ok() -> None:
    """Some firmware puts ``+CIPSEND: <link>,<req>,<sent>`` before the ``OK``: the send
    takes it there (and a second copy after the OK, with no send waiting, is ignored)."""
    peer = Peer()
    await peer.start()

    async def result_first(fake: FakeModem, cmd: Command) -> HandlerResult:
        answer = fake.run_default(cmd)
        response = await answer if isinstance(answer, Awaitable) else answer
        assert response is not None
        link, length = cmd.int_arg(0), cmd.int_arg(1)
        return FakeResponse(lines=(f"+CIPSEND: {link},{length},{length}",), final="OK")

    try:
        async with FakeModem(dialect="sim7600") as fake:
            modem = await Modem.open(fake.port)
            try:
                dialect = await online_dialect(fake, modem, "sim7600")
                sock = await dialect.open_socket("127.0.0.1", peer.port)
                conn = await peer.accept()
                fake.on_command("AT+CIPSEND", result_first, times=2)
                await sock.send(b"first")
                await sock.send(b"second")
                assert await conn.read_exactly(11) == b"firstsecond"
                assert sock.closed is None
                await sock.close()
                dialect.detach_from_modem()
            finally:
                await modem.close()
    finally:
        await peer.close()
