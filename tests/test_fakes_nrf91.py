"""The nRF91 fakes' sockets (Serial LTE Modem and Serial Modem), through the pty and real TCP.

The host side is the plain pty client of ``test_fakes``; the network side is a TCP server the
test starts on 127.0.0.1 (free port). Every expectation is the exact byte string the documented
modem sends; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.fakes import FakeModem
from tests.fakes.nrf91_sockets import (
    add_host,
    fail_next_send,
    lose_next_notification,
    network_detach,
    peer_close,
    reboot_during_next_send,
    wait_buffered,
)
from tests.fakes.registry import Dialect
from tests.pty_client import Client
from tests.test_fakes import ERROR, OK, READ_TIMEOUT

ALL_BYTES = bytes(range(256))
HAZARD = b"OK\r\n+++\r\nERROR\r\n"
#: 64 KiB without "+++" (each "+" of range(256) stands alone).
BIG = ALL_BYTES * 256
#: What ends a command line for each terminator a build can have.
LINE_ENDINGS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}


def nrf(*lines: bytes) -> bytes:
    """Information lines as the nRF91 applications frame them (each ``\\r\\n<line>\\r\\n``),
    then OK."""
    return b"".join(b"\r\n" + line + b"\r\n" for line in lines) + OK


def urc(line: bytes) -> bytes:
    return b"\r\n" + line + b"\r\n"


# ---- the network side


class Peer:
    """The server end of one TCP connection the fake opened."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_exactly(self, count: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(count), READ_TIMEOUT)

    async def read_to_eof(self) -> bytes:
        """Everything until the fake closes (a reset counts as the end too)."""
        try:
            return await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)
        except ConnectionResetError:
            return b""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class Server:
    """A TCP server on a free loopback port that hands each accepted connection to the test."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._peers: list[Peer] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        self._peers.append(peer)
        self._accepted.put_nowait(peer)

    async def accept(self) -> Peer:
        return await asyncio.wait_for(self._accepted.get(), READ_TIMEOUT)

    async def close(self) -> None:
        for peer in self._peers:
            await peer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    yield srv
    await srv.close()


# ---- the host side


@dataclass
class Modem:
    """A fake nRF91 and the pty client that talks to it with the dialect's line ending."""

    fake: FakeModem
    client: Client
    eol: bytes

    def send(self, command: str | bytes) -> None:
        raw = command.encode("latin-1") if isinstance(command, str) else command
        self.client.write(raw + self.eol)

    async def ask(self, command: str | bytes, expected: bytes) -> None:
        self.send(command)
        await self.client.expect(expected)

    async def expect(self, expected: bytes) -> None:
        await self.client.expect(expected)


OpenModem = Callable[..., Awaitable[Modem]]


@pytest.fixture
async def open_modem() -> AsyncIterator[OpenModem]:
    """Start a fake (a dialect name or build), read its banner, register (+CEREG URCs on);
    stop everything afterwards."""
    modems: list[Modem] = []

    async def start(dialect: str | Dialect, *, attach: bool = True) -> Modem:
        fake = FakeModem(dialect)
        await fake.start()
        modem = Modem(fake, Client(fake.port), LINE_ENDINGS[fake.dialect.terminator])
        modems.append(modem)
        await modem.expect(b"Ready\r\n")
        if attach:
            await modem.ask("AT+CEREG=1", OK)
            await modem.ask("AT+CFUN=1", OK + urc(b"+CEREG: 2") + urc(b"+CEREG: 1"))
        return modem

    yield start
    for modem in modems:
        modem.client.close()
        await modem.fake.stop()


async def slm(open_modem: OpenModem) -> Modem:
    return await open_modem("nrf91-slm")


async def slm_connect(modem: Modem, server: Server, handle: int = 0) -> Peer:
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: %d,1,6" % handle))
    await modem.ask(f'AT#XCONNECT="localhost",{server.port}', nrf(b"#XCONNECT: 1"))
    return await server.accept()


async def sm_connect(modem: Modem, server: Server, handle: int = 0) -> Peer:
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: %d,1,6" % handle))
    await modem.ask(
        f'AT#XCONNECT={handle},"localhost",{server.port}', nrf(b"#XCONNECT: %d,1" % handle)
    )
    return await server.accept()


async def slm_recv(modem: Modem, timeout: int = 2) -> bytes:
    """One ``AT#XRECV``: header, exactly <size> raw bytes, OK."""
    modem.send(f"AT#XRECV={timeout}")
    header = await modem.client.read_until(b"\r\n", timeout=READ_TIMEOUT)
    assert header == b"\r\n"
    line = await modem.client.read_until(b"\r\n")
    match = re.fullmatch(rb"#XRECV: (\d+)\r\n", line)
    assert match, line
    data = await modem.client.read_exactly(int(match.group(1)))
    await modem.expect(OK)
    return data


async def sm_pushed(modem: Modem, handle: int = 0) -> bytes:
    """One auto-received block: ``#XRECV: <h>,0,<size>`` CRLF, the data, CRLF."""
    line = await modem.client.read_until(b"\r\n", timeout=READ_TIMEOUT)
    if line == b"\r\n":
        line = await modem.client.read_until(b"\r\n")
    match = re.fullmatch(rb"#XRECV: %d,0,(\d+)\r\n" % handle, line)
    assert match, line
    data = await modem.client.read_exactly(int(match.group(1)))
    await modem.expect(b"\r\n")
    return data


# ==== Serial LTE Modem (NCS <= 3.1)


async def test_slm_socket_open_connect_send_recv_close(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT#XSOCKET?", OK)
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XSOCKET?", nrf(b"#XSOCKET: 0,1,0,1,0"))
    await modem.ask('AT#XSEND="hello world"', nrf(b"#XSEND: 11"))
    assert await peer.read_exactly(11) == b"hello world"
    await peer.send(b"\x00OK\r\n\xff")
    await modem.ask("AT#XRECV=5", b"\r\n#XRECV: 6\r\n\x00OK\r\n\xff" + OK)
    await modem.ask("AT#XSOCKET=0", nrf(b'#XSOCKET: 0,"closed"'))
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XSOCKET?", OK)
    await modem.ask("AT#XSOCKET=0", OK)  # nothing selected: nothing to close


async def test_slm_selected_socket_and_limits(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))
    await modem.ask("AT#XSSOCKET=1,1,0,16842753", nrf(b"#XSSOCKET: 1,1,258"))
    await modem.ask("AT#XSSOCKET?", nrf(b"#XSSOCKET: 1,1,0,1,16842753,0"))
    await modem.ask(
        "AT#XSOCKETSELECT?",
        nrf(
            b"#XSOCKETSELECT: 0,1,0,1,-1,1,0",
            b"#XSOCKETSELECT: 1,1,0,1,16842753,2,0",
            b"#XSOCKETSELECT: 1",
        ),
    )
    await modem.ask("AT#XSOCKETSELECT=0", nrf(b"#XSOCKETSELECT: 0"))
    await modem.ask("AT#XSOCKETSELECT=5", ERROR)
    # The TLS socket does real TLS with the CA stored under its tag (tests/fakes/nrf91_tls.py):
    # nothing is stored under 16842753, so its connect is refused as the firmware refuses it.
    await modem.ask("AT#XSOCKETSELECT=1", nrf(b"#XSOCKETSELECT: 1"))
    await modem.ask(f'AT#XCONNECT="127.0.0.1",{server.port}', ERROR)
    await modem.ask("AT#XSOCKETSELECT=0", nrf(b"#XSOCKETSELECT: 0"))
    await modem.ask(f'AT#XCONNECT="127.0.0.1",{server.port}', nrf(b"#XCONNECT: 1"))
    peer = await server.accept()
    await modem.ask('AT#XSEND="tls"', nrf(b"#XSEND: 3"))
    await modem.ask("AT#XSOCKETSELECT=1", nrf(b"#XSOCKETSELECT: 1"))
    # Closing the selected socket selects the highest-ranked one left.
    await modem.ask("AT#XSOCKET=0", nrf(b'#XSOCKET: 0,"closed"'))
    await modem.ask("AT#XSOCKET?", nrf(b"#XSOCKET: 0,1,0,1,0"))
    for handle in range(1, 8):
        await modem.ask("AT#XSOCKET=2,1,0", nrf(b"#XSOCKET: %d,1,6" % handle))
    await modem.ask("AT#XSOCKET=1,1,0", ERROR)  # 8 sockets at most
    await modem.ask("AT#XSOCKETOPT=0,21", nrf(b"#XSOCKETOPT: 30"))
    await modem.ask("AT#XSOCKETOPT=1,20,5", OK)
    await modem.ask("AT#XSOCKETOPT=0,20", nrf(b"#XSOCKETOPT: 5"))
    await modem.ask('AT#XSEND="a,b"', ERROR)  # no "," in string mode (data mode only)
    await modem.ask('AT#XSEND="' + "x" * 1025 + '"', ERROR)  # 1024 bytes at most
    assert await peer.read_exactly(3) == b"tls"  # on socket 0, still open


async def test_slm_data_mode_carries_all_byte_values(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XSEND", OK)
    modem.fake.send_urc("+CSCON: 1")  # held while in data mode
    modem.client.write(ALL_BYTES)
    modem.client.write(b"+++")
    await modem.expect(urc(b"#XDATAMODE: 0") + urc(b"+CSCON: 1"))
    assert await peer.read_exactly(256) == ALL_BYTES
    await modem.ask("AT", OK)


async def test_slm_terminator_inside_the_payload_ends_data_mode(
    open_modem: OpenModem, server: Server
) -> None:
    """The documented hazard: "+++" is matched anywhere, so a payload containing it is cut and
    the rest is read as AT command lines ("ERROR" is not a command: ERROR)."""
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XSEND", OK)
    modem.client.write(HAZARD)
    await modem.expect(urc(b"#XDATAMODE: 0") + ERROR)
    await modem.ask('AT#XSEND="next"', nrf(b"#XSEND: 4"))
    assert await peer.read_exactly(8) == b"OK\r\nnext"


async def test_slm_64k_both_ways_in_chunks(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    chunk = 16384
    for offset in range(0, len(BIG), chunk):
        await modem.ask("AT#XSEND", OK)
        modem.client.write(BIG[offset : offset + chunk] + b"+++")
        await modem.expect(urc(b"#XDATAMODE: 0"))
    assert await peer.read_exactly(len(BIG)) == BIG
    await peer.send(BIG)
    received = bytearray()
    while len(received) < len(BIG):
        data = await slm_recv(modem)
        assert 0 < len(data) <= 2048
        received += data
    assert received == BIG


async def test_slm_xapoll_notifications_and_peer_close(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT#XAPOLL=1,1", OK)
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XAPOLL?", nrf(b"#XAPOLL: 1,1,0"))
    await peer.send(b"abc")
    await modem.expect(urc(b"#XAPOLL: 0,1"))
    await modem.ask("AT#XRECV=1", b"\r\n#XRECV: 3\r\nabc" + OK)
    await peer.send(b"d")  # AT#XRECV re-armed POLLIN
    await modem.expect(urc(b"#XAPOLL: 0,1"))
    assert await slm_recv(modem) == b"d"
    await peer.close()
    await modem.expect(urc(b"#XAPOLL: 0,17"))  # POLLIN|POLLHUP, once
    await modem.ask("AT#XRECV=1", OK)  # recv() returns 0: no #XRECV line
    await modem.ask("AT#XPOLL=0", ERROR)  # not while #XAPOLL runs
    await modem.ask("AT#XAPOLL=0", OK)
    await modem.ask("AT#XPOLL=0", nrf(b'#XPOLL: 0,"0x0011"'))
    await modem.ask('AT#XSEND="x"', b"\r\n#XSEND: 0\r\n" + ERROR)


async def test_slm_xpoll_waits_for_data(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    await modem.ask("AT#XPOLL=0,0", OK)  # nothing to read yet
    modem.send("AT#XPOLL=-1,0")
    await modem.fake.wait_for_command("AT#XPOLL=-1,0")
    await peer.send(b"z")
    await modem.expect(nrf(b'#XPOLL: 0,"0x0001"'))
    await modem.ask("AT#XPOLL=0,3", ERROR)  # not an open socket


async def test_slm_name_resolution(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    await modem.ask('AT#XGETADDRINFO="localhost"', nrf(b'#XGETADDRINFO: "127.0.0.1"'))
    await modem.ask('AT#XGETADDRINFO="127.0.0.1"', nrf(b'#XGETADDRINFO: "127.0.0.1"'))
    unknown = b'\r\n#XGETADDRINFO: "EAI_NONAME"\r\n' + ERROR
    await modem.ask('AT#XGETADDRINFO="broker.example.com"', unknown)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))
    await modem.ask(f'AT#XCONNECT="broker.example.com",{server.port}', ERROR)
    await modem.ask(f'AT#XCONNECT="10.0.0.1",{server.port}', ERROR)  # only loopback
    add_host(modem.fake, "broker.example.com")
    await modem.ask('AT#XGETADDRINFO="broker.example.com"', nrf(b'#XGETADDRINFO: "127.0.0.1"'))
    await modem.ask(f'AT#XCONNECT="broker.example.com",{server.port}', nrf(b"#XCONNECT: 1"))
    await server.accept()
    await modem.ask(f'AT#XCONNECT="localhost",{server.port}', ERROR)  # already connected


async def test_slm_needs_the_network(open_modem: OpenModem, server: Server) -> None:
    modem = await open_modem("nrf91-slm", attach=False)
    await modem.ask('AT#XGETADDRINFO="localhost"', b'\r\n#XGETADDRINFO: "EAI_AGAIN"\r\n' + ERROR)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))
    await modem.ask(f'AT#XCONNECT="127.0.0.1",{server.port}', ERROR)
    await modem.ask("AT#XRECV=1", ERROR)  # not connected


# ---- SLM faults


async def test_slm_send_fails_in_string_and_data_mode(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    fail_next_send(modem.fake)
    await modem.ask('AT#XSEND="lost"', b"\r\n#XSEND: 0\r\n" + ERROR)
    fail_next_send(modem.fake)
    await modem.ask("AT#XSEND", OK)
    modem.client.write(b"abc")
    await modem.expect(b"+++")  # the modem gives up and says so
    modem.client.write(b"dropped until the host's own terminator+++")
    await modem.expect(urc(b"#XDATAMODE: -5"))
    await modem.ask('AT#XSEND="ok"', nrf(b"#XSEND: 2"))
    assert await peer.read_exactly(2) == b"ok"


async def test_slm_network_detach(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT+CGEREP=1", OK)
    await modem.ask("AT+CGEREP?", nrf(b"+CGEREP: 1,0"))
    await modem.ask("AT#XAPOLL=1,1", OK)
    peer = await slm_connect(modem, server)
    await peer.send(b"last")
    await modem.expect(urc(b"#XAPOLL: 0,1"))
    network_detach(modem.fake, reattach_after=0.01)
    await modem.expect(
        urc(b"+CGEV: NW DETACH")
        + urc(b"+CEREG: 2")
        + urc(b"#XAPOLL: 0,8")
        + urc(b"+CEREG: 1")
        + urc(b"+CGEV: ME PDN ACT 0")
    )
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XRECV=1", b"\r\n#XRECV: 4\r\nlast" + OK)  # buffered data first
    await modem.ask("AT#XRECV=1", ERROR)
    await modem.ask('AT#XSEND="x"', b"\r\n#XSEND: 0\r\n" + ERROR)
    # Registered again: a new socket connects.
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 1,1,6"))
    await modem.ask(f'AT#XCONNECT="localhost",{server.port}', nrf(b"#XCONNECT: 1"))
    await server.accept()


async def test_slm_lost_notification_leaves_the_data(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT#XAPOLL=1,1", OK)
    peer = await slm_connect(modem, server)
    lose_next_notification(modem.fake)
    await peer.send(b"x")
    await wait_buffered(modem.fake, 0)
    # No #XAPOLL reaches the host, yet the data is there.
    await modem.ask("AT#XRECV=1", b"\r\n#XRECV: 1\r\nx" + OK)
    await peer.send(b"y")
    await modem.expect(urc(b"#XAPOLL: 0,1"))


async def test_slm_reboot_mid_send(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    peer = await slm_connect(modem, server)
    reboot_during_next_send(modem.fake, after_bytes=3)
    await modem.ask("AT#XSEND", OK)
    modem.client.write(b"abcdef")
    await modem.expect(b"Ready\r\n")
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XSOCKET?", OK)  # every socket is gone
    await modem.ask("AT+CFUN?", nrf(b"+CFUN: 0"))


async def test_slm_peer_close_helper_and_offline(open_modem: OpenModem, server: Server) -> None:
    modem = await slm(open_modem)
    await modem.ask("AT#XAPOLL=1,1", OK)
    peer = await slm_connect(modem, server, 0)
    peer_close(modem.fake, 0)
    await modem.expect(urc(b"#XAPOLL: 0,17"))
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XSOCKET=0", nrf(b'#XSOCKET: 0,"closed"'))
    second = await slm_connect(modem, server, 0)
    await modem.ask("AT+CGEREP=1", OK)
    await modem.ask("AT+CFUN=4", OK + urc(b"+CEREG: 0") + urc(b"+CGEV: ME DETACH"))
    await modem.expect(urc(b"#XAPOLL: 0,8"))
    assert await second.read_to_eof() == b""


# ==== Serial Modem (ncs-serial-modem)


async def sm(open_modem: OpenModem) -> Modem:
    return await open_modem("nrf91-sm")


async def test_sm_boot_identity_echo_and_cr(open_modem: OpenModem) -> None:
    modem = await open_modem("nrf91-sm", attach=False)
    await modem.ask("AT#XSMVER", nrf(b'#XSMVER: "v2.0.0","3.4.0"'))
    await modem.ask("AT#XSLMVER", ERROR)
    await modem.ask("AT+CGMM", b"\r\nnRF9151-LACA\r\n" + OK)
    await modem.ask("ATE1", OK)
    await modem.ask("AT", b"AT\r" + OK)
    await modem.ask("ATE0", b"ATE0\r" + OK)
    await modem.ask("ATE", ERROR)  # only ATE0 and ATE1 pass the grammar check
    modem.client.write(b"AT\r\n")  # CR ends the line; the LF is a stray byte
    await modem.expect(OK)
    modem.send("nothing")  # no AT: ignored, no answer
    await modem.ask("AT", OK)


async def test_sm_socket_open_connect_send_recv_close(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    await modem.ask("AT#XSOCKET?", nrf(b"#XSOCKET: 0,1,0,1,0"))
    await modem.ask('AT#XSEND=0,0,0,"hello"', nrf(b"#XSEND: 0,0,5"))
    await modem.ask('AT#XSEND=0,1,0,"00FF2b2b2b0D0a"', nrf(b"#XSEND: 0,0,7"))
    assert await peer.read_exactly(12) == b"hello\x00\xff+++\r\n"
    await modem.ask('AT#XSEND=0,0,0,""', nrf(b"#XSEND: 0,0,0"))
    await modem.ask('AT#XSEND=0,1,0,"0"', ERROR)  # odd hex
    await modem.ask('AT#XSEND=0,1,0,"' + "00" * 1401 + '"', ERROR)  # 1400 bytes at most
    await peer.send(b"Test OK")
    await modem.ask("AT#XRECV=0,0,0,2,4", b"\r\n#XRECV: 0,0,4\r\nTest" + OK)
    await modem.ask("AT#XRECV=0,1,0,2", b"\r\n#XRECV: 0,1,3\r\n204f4b" + OK)
    await modem.ask("AT#XRECV=0,0,64,0", ERROR)  # MSG_DONTWAIT, nothing there
    await modem.ask("AT#XRECV=0,0,0,0,2049", ERROR)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 1,1,6"))
    await modem.ask("AT#XSSOCKET=1,1,0,42", nrf(b"#XSSOCKET: 2,1,258"))
    await modem.ask("AT#XSSOCKET?", nrf(b"#XSSOCKET: 2,1,0,1,42,0"))
    await modem.ask("AT#XSOCKETOPT=1,0,21", nrf(b"#XSOCKETOPT: 1,30"))
    await modem.ask("AT#XCLOSE=1", nrf(b"#XCLOSE: 1,0"))
    await modem.ask("AT#XCLOSE=1", ERROR)
    await modem.ask("AT#XCLOSE", nrf(b"#XCLOSE: 0,0", b"#XCLOSE: 2,0"))
    assert await peer.read_to_eof() == b""
    await modem.ask("AT#XCLOSE", OK)


async def test_sm_counted_data_mode_is_binary_safe(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    payload = ALL_BYTES + HAZARD * 4
    await modem.ask(f"AT#XSEND=0,2,0,{len(payload)}", OK)
    modem.client.write(payload)
    await modem.expect(urc(b"#XDATAMODE: 0"))
    assert await peer.read_exactly(len(payload)) == payload
    await modem.ask("AT", OK)


async def test_sm_terminator_data_mode_and_its_hazard(
    open_modem: OpenModem, server: Server
) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    await modem.ask("AT#XSEND=0,2,0", OK)
    modem.client.write(b"abc+++")
    await modem.expect(urc(b"#XDATAMODE: 0"))
    await modem.ask("AT#XSEND=0,2,0", OK)
    modem.client.write(HAZARD)  # cut at "+++"; "ERROR" has no AT and is ignored
    await modem.expect(urc(b"#XDATAMODE: 0"))
    await modem.ask("AT", OK)
    assert await peer.read_exactly(7) == b"abcOK\r\n"


async def test_sm_auto_reception_pushes_data(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    await modem.ask("AT#XRECVCFG=,1", OK)
    peer = await sm_connect(modem, server)
    await modem.ask("AT#XRECVCFG?", nrf(b"#XRECVCFG: 0,1,0"))
    await peer.send(ALL_BYTES)
    await modem.expect(b"\r\n#XRECV: 0,0,256\r\n" + ALL_BYTES + b"\r\n")
    await modem.ask("AT#XRECVCFG=0,1,1", OK)
    await peer.send(b"Test hex")
    await modem.expect(b"\r\n#XRECV: 0,1,8\r\n5465737420686578\r\n")
    await modem.ask("AT#XRECVCFG=0,2,1", ERROR)  # hex is AT-mode only
    await peer.close()
    await modem.expect(b"\r\n")  # recv() returns 0: no header, the trailing CRLF still goes


async def test_sm_xapoll_notifications(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    await modem.ask("AT#XAPOLL=,1,5", OK)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 0,1,6"))
    await modem.ask("AT#XAPOLL?", nrf(b"#XAPOLL: 0,5"))
    await modem.ask(
        f'AT#XCONNECT=0,"localhost",{server.port}', nrf(b"#XCONNECT: 0,1") + urc(b"#XAPOLL: 0,4")
    )
    peer = await server.accept()
    await modem.ask('AT#XSEND=0,0,0,"echo"', nrf(b"#XSEND: 0,0,4") + urc(b"#XAPOLL: 0,4"))
    assert await peer.read_exactly(4) == b"echo"
    await peer.send(b"echo")
    await modem.expect(urc(b"#XAPOLL: 0,1"))
    await peer.close()
    await modem.expect(urc(b"#XAPOLL: 0,16"))  # POLLIN already reported: POLLHUP alone
    await modem.ask("AT#XRECV=0,0,0,1", b"\r\n#XRECV: 0,0,4\r\necho" + OK)
    await modem.ask("AT#XRECV=0,0,0,1", OK)
    await modem.ask('AT#XSEND=0,0,8192,"x"', b"\r\n#XSEND: 0,1,0\r\n" + ERROR)
    await modem.ask("AT#XAPOLL=,0", OK)
    await modem.ask("AT#XAPOLL?", OK)


async def test_sm_send_notification(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    await modem.ask('AT#XSEND=0,0,8192,"ack"', nrf(b"#XSEND: 0,1,3") + urc(b"#XSENDNTF: 0,0,3"))
    await modem.ask("AT#XSEND=0,2,8192", OK)
    modem.client.write(b"12345+++")
    await modem.expect(urc(b"#XDATAMODE: 0") + urc(b"#XSENDNTF: 0,0,5"))
    assert await peer.read_exactly(8) == b"ack12345"


async def test_sm_64k_both_ways_in_chunks(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    await modem.ask("AT#XRECVCFG=,1", OK)
    peer = await sm_connect(modem, server)
    chunk = 16384
    for offset in range(0, len(BIG), chunk):
        await modem.ask(f"AT#XSEND=0,2,0,{chunk}", OK)
        modem.client.write(BIG[offset : offset + chunk])
        await modem.expect(urc(b"#XDATAMODE: 0"))
    assert await peer.read_exactly(len(BIG)) == BIG
    await peer.send(BIG)
    received = bytearray()
    while len(received) < len(BIG):
        data = await sm_pushed(modem)
        assert 0 < len(data) <= 2048
        received += data
    assert received == BIG


# ---- SM faults


async def test_sm_send_fails(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    fail_next_send(modem.fake)
    await modem.ask('AT#XSEND=0,0,0,"lost"', b"\r\n#XSEND: 0,0,0\r\n" + ERROR)
    fail_next_send(modem.fake)
    await modem.ask("AT#XSEND=0,2,0,10", OK)
    modem.client.write(b"a")
    await modem.expect(b"+++")
    modem.client.write(b"+++456789")  # counted mode: the rest of <data_len> is dropped
    await modem.expect(urc(b"#XDATAMODE: -1"))
    await modem.ask('AT#XSEND=0,0,0,"ok"', nrf(b"#XSEND: 0,0,2"))
    assert await peer.read_exactly(2) == b"ok"


async def test_sm_peer_close_during_data_mode(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    await modem.ask("AT#XSEND=0,2,0", OK)
    await peer.close()
    await modem.expect(b"+++")  # the data-mode socket failed (POLLHUP)
    modem.client.write(b"late data+++")
    await modem.expect(urc(b"#XDATAMODE: -1"))
    await modem.ask("AT#XRECV=0,0,0,1", OK)


async def test_sm_network_detach(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    await modem.ask("AT+CGEREP=1", OK)
    await modem.ask("AT#XAPOLL=,1,1", OK)
    peer = await sm_connect(modem, server)
    network_detach(modem.fake, initiator="ME")
    await modem.expect(urc(b"+CGEV: ME DETACH") + urc(b"+CEREG: 0") + urc(b"#XAPOLL: 0,8"))
    assert await peer.read_to_eof() == b""
    await modem.ask('AT#XSEND=0,0,0,"x"', b"\r\n#XSEND: 0,0,0\r\n" + ERROR)
    await modem.ask("AT#XRECV=0,0,0,1", ERROR)
    await modem.ask("AT#XSOCKET=1,1,0", nrf(b"#XSOCKET: 1,1,6"))
    await modem.ask(f'AT#XCONNECT=1,"localhost",{server.port}', ERROR)


async def test_sm_lost_notification_leaves_the_data(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    await modem.ask("AT#XRECVCFG=,1", OK)
    peer = await sm_connect(modem, server)
    lose_next_notification(modem.fake)
    await peer.send(b"x")
    await wait_buffered(modem.fake, 0)  # no push reaches the host, the data stays
    await modem.ask("AT#XRECV=0,0,0,1", b"\r\n#XRECV: 0,0,1\r\nx" + OK)
    await peer.send(b"y")
    await modem.expect(b"\r\n#XRECV: 0,0,1\r\ny\r\n")


async def test_sm_reboot_between_ok_and_payload(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    reboot_during_next_send(modem.fake)
    await modem.ask("AT#XSEND=0,2,0,4", OK + b"Ready\r\n")
    assert await peer.read_to_eof() == b""
    modem.client.write(b"1234")  # the payload reaches a freshly booted modem: skipped
    await modem.ask("AT#XSOCKET?", OK)


async def test_stop_closes_every_connection(open_modem: OpenModem, server: Server) -> None:
    modem = await sm(open_modem)
    peer = await sm_connect(modem, server)
    await modem.fake.stop()
    assert await peer.read_to_eof() == b""
