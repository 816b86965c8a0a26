"""The nRF91 dialects (Serial LTE Modem ``nrf91-slm``, Serial Modem ``nrf91-sm``).

Pure parts first (the SLM send plan against a model of the SLM's data mode matcher, the
``+CGEV`` and ``#XRECV`` parsers), then each dialect against its fake modem on a real
pty, with its sockets bridged to a real TCP server this test starts on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atbridge.dialects import open_dialect
from atbridge.dialects.base import DataBearer, ModemSocket
from atbridge.dialects.nrf91 import NordicDialect, data_mode_ended, pdp_lost_cid
from atbridge.dialects.nrf91_slm import Nrf91Slm, plan_slm_send
from atbridge.dialects.nrf91_sm import Nrf91Sm
from atbridge.errors import (
    CloseReason,
    ConfigurationError,
    SocketClosed,
    SocketError,
    TlsRefused,
)
from atbridge.modem import Modem, Urc
from tests.fakes import FakeModem
from tests.fakes.core import Response as FakeResponse
from tests.fakes.grammar import Command, HandlerResult
from tests.fakes.nrf91_sockets import (
    add_host,
    fail_next_send,
    lose_next_notification,
    network_detach,
    peer_close,
    reboot_during_next_send,
)

ALL_BYTES = bytes(range(256))
NASTY = b"OK\r\n+++\r\nERROR\r\n" * 64
BIG = bytes((i * 7 + 3) % 256 for i in range(64 * 1024))
#: ``+++`` across the edge of two 2048-byte send chunks.
EDGE = b"a" * 2046 + b"++++" + b"b" * 10


# -- the SLM send plan ---------------------------------------------------------------------


def slm_data_mode(stream: bytes, terminator: bytes = b"+++") -> tuple[bytes, bytes]:
    """Model of ``raw_rx_handler`` (sdk-nrf ``slm_at_host.c``): what one data mode session
    sends, and the bytes after the terminator that go back to AT command mode.

    The matcher counts terminator bytes seen in a row and starts over at 0 on a mismatch
    (without looking at the mismatching byte again); the first full match ends data mode.
    """
    matched = 0
    for index, byte in enumerate(stream):
        if byte == terminator[matched]:
            matched += 1
            if matched == len(terminator):
                end = index + 1
                return stream[: end - len(terminator)], stream[end:]
        else:
            matched = 0
    raise AssertionError(f"data mode never ended: {stream!r}")


def replay(plan: list[tuple[bool, bytes]], terminator: bytes = b"+++") -> bytes:
    """What the peer receives when the plan is sent the way the SLM dialect sends it."""
    received = b""
    for in_data_mode, piece in plan:
        if in_data_mode:
            sent, leftover = slm_data_mode(piece + terminator, terminator)
            assert leftover == b"", f"{leftover!r} would reach AT command mode"
            received += sent
        else:
            assert set(piece) <= set(terminator), piece
            received += piece
    return received


@pytest.mark.parametrize(
    ("data", "plan"),
    [
        (b"abc", [(True, b"abc")]),
        (b"a+++b", [(True, b"a"), (False, b"+++"), (True, b"b")]),
        (b"a+b++c", [(True, b"a+b++c")]),
        (b"ab+", [(True, b"ab"), (False, b"+")]),
        (b"x++++y", [(True, b"x"), (False, b"+++"), (True, b"+y")]),
        (b"+++", [(False, b"+++")]),
        (b"", []),
    ],
)
def test_slm_plan_keeps_the_terminator_out_of_data_mode(
    data: bytes, plan: list[tuple[bool, bytes]]
) -> None:
    assert plan_slm_send(data) == plan
    assert replay(plan) == data


def test_slm_plan_for_the_nasty_payload_sends_almost_everything_in_data_mode() -> None:
    plan = plan_slm_send(NASTY)
    assert replay(plan) == NASTY
    in_strings = sum(len(piece) for in_data_mode, piece in plan if not in_data_mode)
    assert in_strings == NASTY.count(b"+")


def test_slm_plan_splits_long_plus_runs_at_the_string_limit() -> None:
    plan = plan_slm_send(b"a" + b"+" * 2500 + b"b", max_string=1024)
    assert [len(piece) for in_data_mode, piece in plan if not in_data_mode] == [1024, 1024, 451]
    assert replay(plan) == b"a" + b"+" * 2500 + b"b"


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=64) | st.lists(st.sampled_from([b"+", b"a", b"\r\n", b"++"])).map(b"".join)
)
def test_slm_plan_is_binary_safe_for_any_payload(data: bytes) -> None:
    assert replay(plan_slm_send(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"+", b"-", b"x", b"+-"])).map(b"".join))
def test_slm_plan_works_for_another_terminator(data: bytes) -> None:
    terminator = b"+-+"
    assert replay(plan_slm_send(data, terminator), terminator) == data


# -- small parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cid"),
    [
        ("+CGEV: NW DETACH", None),
        ("+CGEV: ME DETACH", None),
        ("+CGEV: NW PDN DEACT 0", 0),
        ("+CGEV: ME PDN DEACT 1", 1),
        ("+CGEV: NW PDN DEACT 0,1", 0),
        ('+CGEV: NW DEACT "IP","10.0.0.2",0', 0),
    ],
)
def test_pdp_lost_cid(line: str, cid: int | None) -> None:
    assert pdp_lost_cid(line) == cid


@pytest.mark.parametrize(
    ("text", "ended"),
    [("#XDATAMODE: 0", True), ("#XDATAMODE: -1", True), ("#XDATAMODE: 512", False)],
)
def test_data_mode_ends_on_zero_or_an_error_not_on_a_chunk_report(text: str, ended: bool) -> None:
    assert data_mode_ended(Urc(text, text.encode())) is ended


def test_sm_block_header_is_handle_mode_size() -> None:
    assert Nrf91Sm.recv_header_length(b"#XRECV: 0,0,12") == 12
    assert Nrf91Sm.recv_header_length(b"#XRECV: 3,1,5") == 10  # hex: two characters a byte
    assert Nrf91Sm.recv_header_length(b"#XRECV: 12") is None


def test_slm_block_header_is_size_only() -> None:
    assert Nrf91Slm.recv_header_length(b"#XRECV: 12") == 12
    assert Nrf91Slm.recv_header_length(b"#XRECV: 0,0,12") is None


# -- against the fake modems, with a real TCP peer ----------------------------------------------

NAMES = ("nrf91-slm", "nrf91-sm")
CLASSES: dict[str, type[NordicDialect]] = {"nrf91-slm": Nrf91Slm, "nrf91-sm": Nrf91Sm}
WAIT = 20.0  # bound on every wait for the modem or the peer


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read_exactly(self, size: int) -> bytes:
        async with asyncio.timeout(WAIT):
            return await self.reader.readexactly(size)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(WAIT):
            await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(WAIT):
                await self.writer.wait_closed()


@dataclass
class Peer:
    """A TCP server on 127.0.0.1 (free port) standing for the broker: the far end."""

    server: asyncio.Server | None = None
    accepted: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)
    connections: list[Connection] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = Connection(reader, writer)
            self.connections.append(connection)
            await self.accepted.put(connection)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)

    async def next(self) -> Connection:
        async with asyncio.timeout(WAIT):
            return await self.accepted.get()

    async def stop(self) -> None:
        for connection in self.connections:
            await connection.close()
        if self.server is not None:
            self.server.close()
            async with asyncio.timeout(WAIT):
                await self.server.wait_closed()


@dataclass
class Rig:
    name: str
    fake: FakeModem
    modem: Modem
    dialect: NordicDialect
    peer: Peer

    async def connect(self) -> tuple[ModemSocket, Connection]:
        sock = await self.dialect.open_socket("127.0.0.1", self.peer.port, timeout=WAIT)
        return sock, await self.peer.next()


async def receive_exactly(sock: ModemSocket, size: int) -> bytes:
    data = bytearray()
    async with asyncio.timeout(WAIT):
        while len(data) < size:
            data += await sock.receive()
    return bytes(data)


async def closed_reason(sock: ModemSocket) -> CloseReason:
    """Read until the socket ends; its :class:`CloseReason`."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                await sock.receive()
            except SocketClosed as closed:
                return closed.reason


@pytest.fixture(params=NAMES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async with build_rig(request.param, tmp_path) as built:
        yield built


@contextlib.asynccontextmanager
async def build_rig(name: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A fake of dialect ``name``, its channel (transcript in ``tmp_path``) and an attached
    dialect, with a TCP peer to connect to; all stopped on exit."""
    cls = CLASSES[name]
    peer = Peer()
    await peer.start()
    try:
        async with FakeModem(dialect=name) as fake:
            modem = await Modem.open(
                fake.port, line_ending=cls.line_ending, transcript=tmp_path / "transcript.log"
            )
            try:
                dialect = cls(modem)
                await dialect.initialise()
                await dialect.attach(timeout=WAIT)
                try:
                    yield Rig(name, fake, modem, dialect, peer)
                finally:
                    await dialect.aclose()
            finally:
                await modem.close()
    finally:
        await peer.stop()


async def test_open_send_receive_close(rig: Rig) -> None:
    sock, far = await rig.connect()
    await sock.send(b"hello")
    assert await far.read_exactly(5) == b"hello"
    await far.write(b"world")
    assert await receive_exactly(sock, 5) == b"world"
    await sock.close()
    assert sock.closed is not None and sock.closed.reason is CloseReason.LOCAL
    async with asyncio.timeout(WAIT):
        assert await far.reader.read() == b""  # the peer sees the connection end
    with pytest.raises(SocketClosed):
        await sock.receive()


@pytest.mark.parametrize(
    "payload", [ALL_BYTES, NASTY, BIG, EDGE], ids=["all-bytes", "nasty", "64k", "plus-at-edge"]
)
async def test_payloads_go_through_unchanged_both_ways(rig: Rig, payload: bytes) -> None:
    sock, far = await rig.connect()
    await sock.send(payload)
    assert await far.read_exactly(len(payload)) == payload
    await far.write(payload)
    assert await receive_exactly(sock, len(payload)) == payload
    assert sock.bytes_sent == sock.bytes_received == len(payload)


async def test_peer_close_is_noticed_after_the_last_data(rig: Rig) -> None:
    sock, far = await rig.connect()
    await far.write(b"last words")
    await far.close()
    assert await receive_exactly(sock, 10) == b"last words"
    assert await closed_reason(sock) is CloseReason.PEER


async def test_connecting_to_a_closed_port_fails_with_a_socket_error(rig: Rig) -> None:
    port = rig.peer.port
    await rig.peer.stop()
    with pytest.raises(SocketError) as raised:
        await rig.dialect.open_socket("127.0.0.1", port, timeout=WAIT)
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert rig.dialect.sockets == {}


async def test_network_dropping_the_pdp_context_closes_the_socket(rig: Rig) -> None:
    sock, _far = await rig.connect()
    lost: list[str] = []
    rig.dialect.on_network_lost(lost.append)
    network_detach(rig.fake)
    assert await closed_reason(sock) is CloseReason.NETWORK
    assert lost == ["+CGEV: NW DETACH"]
    assert rig.dialect.sockets == {}


async def test_the_peer_closing_seen_by_the_modem_closes_the_socket(rig: Rig) -> None:
    sock, far = await rig.connect()
    await far.write(b"bye")
    assert await receive_exactly(sock, 3) == b"bye"
    peer_close(rig.fake, sock.handle)
    assert await closed_reason(sock) is CloseReason.PEER


async def test_the_default_bearer_going_down_closes_the_socket(rig: Rig) -> None:
    sock, _far = await rig.connect()
    rig.fake.send_urc("+CGEV: NW PDN DEACT 0")
    assert await closed_reason(sock) is CloseReason.NETWORK


async def test_without_xapoll_the_socket_is_read_on_a_timer(rig: Rig) -> None:
    # A firmware without AT#XAPOLL: stop the notifications, then refuse the command.
    await rig.modem.command({"nrf91-slm": "AT#XAPOLL=0", "nrf91-sm": "AT#XAPOLL=,0"}[rig.name])
    rig.fake.on_command("#XAPOLL", FakeResponse.error())
    await rig.dialect.initialise()
    rig.dialect.fallback_poll_interval = 0.2
    notified: list[Urc] = []
    rig.modem.subscribe("#XAPOLL:", notified.append)
    sock, far = await rig.connect()
    await far.write(b"polled")
    assert await receive_exactly(sock, 6) == b"polled"
    await far.close()
    assert await closed_reason(sock) is CloseReason.PEER
    assert notified == []


async def test_a_pdn_event_for_another_cid_is_not_ours(rig: Rig) -> None:
    sock, far = await rig.connect()
    rig.fake.send_urc("+CGEV: ME PDN DEACT 1")
    await sock.send(b"still here")
    assert await far.read_exactly(10) == b"still here"
    assert sock.closed is None


async def test_a_reboot_mid_send_ends_the_send_and_the_socket(rig: Rig) -> None:
    """Data mode on both (the Serial Modem's hex send has its own test below)."""
    if isinstance(rig.dialect, Nrf91Sm):
        rig.dialect.send_mode = "data"
    sock, _far = await rig.connect()
    reboot_during_next_send(rig.fake, after_bytes=100)
    with pytest.raises(SocketClosed) as raised:
        async with asyncio.timeout(WAIT):
            await sock.send(BIG)
    assert raised.value.reason is CloseReason.REBOOT
    assert rig.dialect.sockets == {}
    # The modem works again: a new socket after the reboot.
    await rig.dialect.attach(timeout=WAIT)
    again, far = await rig.connect()
    await again.send(b"back")
    assert await far.read_exactly(4) == b"back"


async def test_a_reboot_mid_hex_send_ends_the_send_and_the_socket(tmp_path: Path) -> None:
    """The Serial Modem's hex send (``AT#XSEND=<h>,1,0,"<hex>"``, 1400 bytes a command):
    the modem reboots on the third command of a 64 KiB send; the send ends with the
    socket (REBOOT), no further send command goes out, and a new socket works."""
    async with build_rig("nrf91-sm", tmp_path) as rig:
        assert isinstance(rig.dialect, Nrf91Sm) and rig.dialect.send_mode == "hex"
        sock, _far = await rig.connect()
        sends: list[str] = []

        def reboot_on_the_third(
            fake: FakeModem, cmd: Command
        ) -> HandlerResult | Awaitable[HandlerResult]:
            sends.append(cmd.line)
            if len(sends) == 3:
                fake.reboot()
                return None
            return fake.run_default(cmd)

        rig.fake.on_command("AT#XSEND", reboot_on_the_third)
        with pytest.raises(SocketClosed) as raised:
            async with asyncio.timeout(WAIT):
                await sock.send(BIG)
        assert raised.value.reason is CloseReason.REBOOT
        assert rig.dialect.sockets == {}
        assert len(sends) == 3, sends
        assert all(line.startswith(f"AT#XSEND={sock.handle},1,0,") for line in sends), sends
        rig.fake.clear_on_command("AT#XSEND")
        await rig.dialect.attach(timeout=WAIT)
        again, far = await rig.connect()
        await again.send(b"back")
        assert await far.read_exactly(4) == b"back"


async def test_restart_resets_the_modem_and_ends_the_sockets(rig: Rig) -> None:
    sock, _far = await rig.connect()
    await rig.dialect.restart(timeout=WAIT)
    assert "AT#XRESET" in rig.fake.commands
    assert await closed_reason(sock) is CloseReason.REBOOT


async def test_a_failed_send_is_a_socket_error(rig: Rig) -> None:
    sock, _far = await rig.connect()
    fail_next_send(rig.fake)
    with pytest.raises(SocketError) as raised:
        await sock.send(b"lost")
    assert f"socket {sock.handle}" in str(raised.value)


async def test_a_lost_notification_does_not_lose_data(rig: Rig) -> None:
    rig.dialect.receive_poll_interval = 0.5  # the safety net, short for the test
    sock, far = await rig.connect()
    lose_next_notification(rig.fake)
    start = len(rig.fake.commands)
    await far.write(b"nobody told you")
    assert await receive_exactly(sock, 15) == b"nobody told you"
    assert any(line.startswith("AT#XRECV") for line in rig.fake.commands[start:])
    # Notifications work again for the next data.
    await far.write(b"again")
    assert await receive_exactly(sock, 5) == b"again"


async def test_two_sockets_keep_their_streams_apart(rig: Rig) -> None:
    first, far_first = await rig.connect()
    second, far_second = await rig.connect()
    await first.send(b"one")
    await second.send(b"two")
    assert await far_first.read_exactly(3) == b"one"
    assert await far_second.read_exactly(3) == b"two"
    await far_second.write(b"2")
    await far_first.write(b"1")
    assert await receive_exactly(first, 1) == b"1"
    assert await receive_exactly(second, 1) == b"2"
    await first.close()
    await second.send(b"after")
    assert await far_second.read_exactly(5) == b"after"


async def test_resolve_and_connect_by_name(rig: Rig) -> None:
    assert await rig.dialect.resolve("localhost") == "127.0.0.1"
    add_host(rig.fake, "broker.example")
    sock = await rig.dialect.open_socket("broker.example", rig.peer.port, timeout=WAIT)
    far = await rig.peer.next()
    await sock.send(b"by name")
    assert await far.read_exactly(7) == b"by name"


async def test_an_unknown_name_is_a_socket_error_with_the_reason(rig: Rig) -> None:
    with pytest.raises(SocketError, match="EAI_NONAME") as raised:
        await rig.dialect.resolve("no-such-host.invalid")
    assert "no-such-host.invalid" in str(raised.value)


async def test_tls_needs_a_security_tag_then_opens_a_secure_socket(rig: Rig) -> None:
    with pytest.raises(ConfigurationError, match="security tag"):
        await rig.dialect.open_socket("localhost", rig.peer.port, tls=True)
    rig.dialect.tls_sec_tag = 42
    start = len(rig.fake.commands)
    # Nothing is stored under tag 42 on the modem: the TLS connect is refused as the
    # firmware refuses it, AT%CMNG then shows no CA under the tag, and the error names the
    # tag to provision (the round trip with a provisioned CA is
    # tests/test_tls_offload_nrf91.py).
    with pytest.raises(TlsRefused, match="no CA certificate is stored under security tag 42"):
        await rig.dialect.open_socket("localhost", rig.peer.port, tls=True, timeout=WAIT)
    sent = rig.fake.commands[start:]
    assert sent[0] == "AT#XSSOCKET=1,1,0,42,2"
    assert any(line.startswith("AT#XSSOCKETOPT=") and '"localhost"' in line for line in sent)


async def test_auto_identifies_each_nordic_fake() -> None:
    for dialect_name in NAMES:
        async with FakeModem(dialect=dialect_name) as fake:
            modem = await Modem.open(fake.port)
            try:
                dialect, identity = await open_dialect(modem, "auto")
                assert identity is not None and identity.dialect == dialect_name
                assert isinstance(dialect, CLASSES[dialect_name])
                assert dialect_name in identity.describe()
                assert isinstance(dialect, NordicDialect)
                await dialect.aclose()
            finally:
                await modem.close()


async def test_a_bug_in_the_receiver_ends_the_socket_with_the_error(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, far = await rig.connect()

    async def broken_read(handle: int) -> object:
        raise RuntimeError("a bug while reading")

    monkeypatch.setattr(rig.dialect, "_read_once", broken_read)
    await far.write(b"data")  # the notification wakes the receiver, which fails
    assert await closed_reason(sock) is CloseReason.ERROR
    assert "a bug while reading" in str(sock.closed)


async def test_closing_the_port_ends_the_sockets_and_their_receivers(rig: Rig) -> None:
    rig.dialect.receive_poll_interval = 0.1
    sock, _ = await rig.connect()
    await rig.modem.close()
    assert await closed_reason(sock) is CloseReason.LINK
    assert rig.dialect.sockets == {}


async def test_resolve_gives_every_address_the_modem_answered(rig: Rig) -> None:
    rig.fake.on_command("AT#XGETADDRINFO", FakeResponse.ok('#XGETADDRINFO: "10.0.0.7 10.0.0.8"'))
    assert await rig.dialect.resolve_addresses("multi.example") == ("10.0.0.7", "10.0.0.8")
    assert await rig.dialect.resolve("multi.example") == "10.0.0.7"


async def test_activating_data_needs_no_command_and_learns_nothing(rig: Rig) -> None:
    before = len(rig.fake.commands)
    assert await rig.dialect.activate_data() == DataBearer()
    assert len(rig.fake.commands) == before
