"""Tests of the SIMCom fake dialects (sim7080, sim7600, sim7000) through the pty, with a real
TCP server on 127.0.0.1 as the far end of every modem socket.

Expectations are the exact bytes the documented modem sends (echo on, the SIMCom default).
Reads are bounded waits for known bytes; received data is read with the dialect's read command
until the expected count, skipping only the dialect's data notification between commands.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar

import pytest

import tests.fakes.sim7000
import tests.fakes.sim7080
import tests.fakes.sim7600
from tests.fakes import simcom_common as sc
from tests.fakes.core import FakeModem
from tests.pty_client import Client

READ_TIMEOUT = 3.0
OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
ALL_BYTES = bytes(range(256))
TRICKY = b"OK\r\n+++\r\nERROR\r\n" * 120
BIG = bytes((i * 7 + i // 256) % 256 for i in range(64 * 1024))


def line(text: str) -> bytes:
    return b"\r\n" + text.encode() + b"\r\n"


def info(*lines: str) -> bytes:
    return b"\r\n" + b"".join(text.encode() + b"\r\n" for text in lines) + OK


# ---- the two ends: the host on the pty, the peer on TCP


class Conn:
    """One connection accepted by the peer server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read_exactly(self, count: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(count), READ_TIMEOUT)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), READ_TIMEOUT)

    async def expect_closed(self) -> None:
        """The modem side closed (FIN or reset) and sent nothing more."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)
        except ConnectionResetError:
            rest = b""
        assert rest == b""

    def close(self) -> None:
        self.writer.close()


class Peer:
    """A real TCP server on 127.0.0.1 at a free port; the test drives each connection."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Conn] = asyncio.Queue()
        self.conns: list[Conn] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer)
        self.conns.append(conn)
        self._queue.put_nowait(conn)

    async def accept(self) -> Conn:
        return await asyncio.wait_for(self._queue.get(), READ_TIMEOUT)

    async def close(self) -> None:
        for conn in self.conns:
            conn.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- the host, per dialect


class Host:
    """The host side of one fake: commands with exact expectations, in the dialect's shapes."""

    dialect: ClassVar[str]
    banner: ClassVar[bytes]
    max_send: ClassVar[int]
    read_cmd: ClassVar[str]
    pdp_drop: ClassVar[str]

    def __init__(self, fake: FakeModem, client: Client) -> None:
        self.fake, self.client = fake, client

    async def at(self, cmd: str, expected: bytes = OK) -> None:
        echo = cmd.encode() + b"\r"
        self.client.write(echo)
        await self.client.expect(echo + expected)

    async def urc(self, text: str) -> None:
        await self.client.expect(line(text))

    # dialect shapes
    async def online(self) -> None:
        raise NotImplementedError

    def open_cmd(self, link: int, host: str, port: int) -> str:
        raise NotImplementedError

    def opened(self, link: int) -> bytes:
        raise NotImplementedError

    def sent(self, link: int, length: int) -> bytes:
        raise NotImplementedError

    def send_failed(self, link: int, length: int) -> bytes:
        raise NotImplementedError

    def notice(self, link: int) -> str:
        raise NotImplementedError

    def peer_closed(self, link: int) -> str:
        raise NotImplementedError

    async def close(self, link: int) -> None:
        raise NotImplementedError

    async def read_header(self) -> int:
        """After the read command's echo: the header; returns the byte count that follows."""
        raise NotImplementedError

    async def available(self, link: int) -> int:
        raise NotImplementedError

    # common flows
    async def open(self, peer: Peer, link: int = 0, host: str = "127.0.0.1") -> Conn:
        await self.at(self.open_cmd(link, host, peer.port), self.opened(link))
        return await peer.accept()

    async def send_chunk(self, link: int, chunk: bytes, expected: bytes | None = None) -> None:
        cmd = f"AT+{self.send_name}={link},{len(chunk)}".encode() + b"\r"
        self.client.write(cmd)
        await self.client.expect(cmd + sc.PROMPT)
        self.client.write(chunk)
        await self.client.expect(self.sent(link, len(chunk)) if expected is None else expected)

    send_name: ClassVar[str]

    async def send(self, link: int, data: bytes) -> None:
        for start in range(0, len(data), self.max_send):
            await self.send_chunk(link, data[start : start + self.max_send])

    async def read_chunk(self, link: int) -> bytes:
        cmd = self.read_cmd.format(link=link).encode() + b"\r"
        self.client.write(cmd)
        before = await self.client.read_until(cmd)
        assert before.replace(line(self.notice(link)), b"") == cmd
        count = await self.read_header()
        data = await self.client.read_exactly(count)
        await self.client.expect(OK)
        return data

    async def recv(self, link: int, total: int) -> bytes:
        got = bytearray()
        while len(got) < total:
            chunk = await self.read_chunk(link)
            if not chunk:  # all read: the next data is announced again
                await self.client.read_until(line(self.notice(link)))
            got += chunk
        return bytes(got)

    async def wait_available(self, link: int, count: int) -> None:
        """Poll the dialect's availability query (a driver's fallback when a notification
        went missing) until ``count`` bytes are buffered; bounded."""
        for _ in range(2000):
            if await self.available(link) >= count:
                return
        raise AssertionError(f"{count} bytes never became available")


class Sim7080Host(Host):
    dialect = "sim7080"
    banner = line("RDY") + line("+CFUN: 1") + line("+CPIN: READY") + line("SMS Ready")
    max_send = 1460
    send_name = "CASEND"
    read_cmd = "AT+CARECV={link},1460"
    pdp_drop = "+APP PDP: 0,DEACTIVE"

    async def online(self) -> None:
        await self.at('AT+CNCFG=0,1,"internet"')
        await self.at("AT+CNACT=0,1", OK + line("+APP PDP: 0,ACTIVE"))

    def open_cmd(self, link: int, host: str, port: int) -> str:
        return f'AT+CAOPEN={link},0,"TCP","{host}",{port}'

    def opened(self, link: int) -> bytes:
        return info(f"+CAOPEN: {link},0")

    def sent(self, link: int, length: int) -> bytes:
        return OK

    def send_failed(self, link: int, length: int) -> bytes:
        return ERROR

    def notice(self, link: int) -> str:
        return f"+CADATAIND: {link}"

    def peer_closed(self, link: int) -> str:
        return f"+CASTATE: {link},0"

    async def close(self, link: int) -> None:
        await self.at(f"AT+CACLOSE={link}")

    async def read_header(self) -> int:
        await self.client.expect(b"\r\n+CARECV: ")
        digits = b""
        while (byte := await self.client.read_exactly(1)) not in (b",", b"\r"):
            digits += byte
        if byte == b"\r":
            assert digits == b"0"
            await self.client.expect(b"\n")
        return int(digits)

    async def available(self, link: int) -> int:
        self.client.write(b"AT+CARECV?\r")
        text = await self.client.read_until(OK)
        found = re.search(rb"\+CARECV: %d,(\d+)\r\n" % link, text)
        return int(found.group(1)) if found else 0


class Sim7600Host(Host):
    dialect = "sim7600"
    banner = line("RDY") + line("+CPIN: READY") + line("SMS DONE") + line("PB DONE")
    max_send = 1500
    send_name = "CIPSEND"
    read_cmd = "AT+CIPRXGET=2,{link},1500"
    pdp_drop = "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY"

    async def online(self) -> None:
        await self.at("AT+CIPRXGET=1")
        await self.at("AT+NETOPEN", OK + line("+NETOPEN: 0"))

    def open_cmd(self, link: int, host: str, port: int) -> str:
        return f'AT+CIPOPEN={link},"TCP","{host}",{port}'

    def opened(self, link: int) -> bytes:
        return OK + line(f"+CIPOPEN: {link},0")

    def sent(self, link: int, length: int) -> bytes:
        return OK + line(f"+CIPSEND: {link},{length},{length}")

    def send_failed(self, link: int, length: int) -> bytes:
        return OK + line(f"+CIPSEND: {link},{length},-1")

    def notice(self, link: int) -> str:
        return f"+CIPRXGET: 1,{link}"

    def peer_closed(self, link: int) -> str:
        return f"+IPCLOSE: {link},1"

    async def close(self, link: int) -> None:
        await self.at(f"AT+CIPCLOSE={link}", OK + line(f"+CIPCLOSE: {link},0"))

    async def read_header(self) -> int:
        await self.client.expect(b"\r\n")
        header = await self.client.read_until(b"\r\n")
        found = re.fullmatch(rb"\+CIPRXGET: 2,\d,(\d+),(\d+)\r\n", header)
        assert found, header
        return int(found.group(1))

    async def available(self, link: int) -> int:
        self.client.write(f"AT+CIPRXGET=4,{link}\r".encode())
        text = await self.client.read_until(OK)
        found = re.search(rb"\+CIPRXGET: 4,%d,(\d+)\r\n" % link, text)
        assert found, text
        return int(found.group(1))


class Sim7000Host(Sim7600Host):
    dialect = "sim7000"
    banner = line("RDY") + line("+CFUN: 1") + line("+CPIN: READY") + line("SMS Ready")
    max_send = 1460
    read_cmd = "AT+CIPRXGET=2,{link},1460"
    pdp_drop = "+PDP: DEACT"

    async def online(self) -> None:
        await self.at("AT+CIPMUX=1")
        await self.at("AT+CIPQSEND=1")
        await self.at("AT+CIPRXGET=1")
        await self.at('AT+CSTT="internet"')
        await self.at("AT+CIICR")
        await self.at("AT+CIFSR", line("10.0.1.1"))

    def open_cmd(self, link: int, host: str, port: int) -> str:
        return f'AT+CIPSTART={link},"TCP","{host}",{port}'

    def opened(self, link: int) -> bytes:
        return OK + line(f"{link}, CONNECT OK")

    def sent(self, link: int, length: int) -> bytes:
        return line(f"DATA ACCEPT:{link},{length}")

    def send_failed(self, link: int, length: int) -> bytes:
        return line(f"{link}, SEND FAIL")

    def peer_closed(self, link: int) -> str:
        return f"{link}, CLOSED"

    async def close(self, link: int) -> None:
        await self.at(f"AT+CIPCLOSE={link}", line(f"{link}, CLOSE OK"))


HOSTS: dict[str, type[Host]] = {h.dialect: h for h in (Sim7080Host, Sim7600Host, Sim7000Host)}
Start = Callable[..., Awaitable[Host]]


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start fakes (banner read) with a client each; all stopped and closed afterwards."""
    fakes: list[FakeModem] = []
    clients: list[Client] = []

    async def start(dialect: str, **kwargs: object) -> Host:
        fake = FakeModem(dialect, **kwargs)  # type: ignore[arg-type]
        await fake.start()
        fakes.append(fake)
        client = Client(fake.port, read_timeout=READ_TIMEOUT)
        clients.append(client)
        host = HOSTS[dialect](fake, client)
        await client.expect(host.banner)
        return host

    yield start
    for client in clients:
        client.close()
    for fake in fakes:
        await fake.stop()


@pytest.fixture(params=sorted(HOSTS))
async def online(request: pytest.FixtureRequest, start: Start) -> Host:
    """Each dialect, booted, with its bearer up."""
    host = await start(request.param)
    await host.online()
    return host


# ---- every dialect


async def test_modules_register_their_dialects() -> None:
    for module in (tests.fakes.sim7080, tests.fakes.sim7600, tests.fakes.sim7000):
        assert module.__name__.rsplit(".", 1)[1] in tests.fakes.core.DIALECTS


async def test_open_send_receive_close(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    await host.send(0, b"hello")
    assert await conn.read_exactly(5) == b"hello"
    await conn.send(b"world")
    await host.urc(host.notice(0))
    assert await host.recv(0, 5) == b"world"
    await host.close(0)
    await conn.expect_closed()
    assert host.client.pending() == b""


@pytest.mark.parametrize(
    "payload", [ALL_BYTES, TRICKY, BIG], ids=["all-256-bytes", "ok-plus-error", "64KiB"]
)
async def test_payloads_pass_unchanged_both_ways(online: Host, peer: Peer, payload: bytes) -> None:
    host = online
    conn = await host.open(peer)
    await host.send(0, payload)
    assert await conn.read_exactly(len(payload)) == payload
    await conn.send(payload)
    assert await host.recv(0, len(payload)) == payload


async def test_send_limit(online: Host, peer: Peer) -> None:
    host = online
    await host.open(peer)
    cmd = f"AT+{host.send_name}=0,{host.max_send + 1}"
    await host.at(cmd, ERROR)
    await host.at(f"AT+{host.send_name}=0,0", ERROR)


async def test_peer_close_is_announced_and_data_stays_readable(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    await conn.send(b"last words")
    conn.close()
    await host.urc(host.notice(0))
    await host.urc(host.peer_closed(0))
    assert await host.recv(0, 10) == b"last words"
    await host.at(f"AT+{host.send_name}=0,1", ERROR)


async def test_fault_peer_closes(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    sc.close_from_peer(host.fake, 0)
    await host.urc(host.peer_closed(0))
    await conn.expect_closed()


async def test_fault_send_fails(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    sc.fail_next_send(host.fake)
    await host.send_chunk(0, b"lost", host.send_failed(0, 4))
    await host.send(0, b"kept")
    assert await conn.read_exactly(4) == b"kept"


async def test_fault_lost_notification_data_still_readable(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    sc.lose_next_notification(host.fake)
    await conn.send(b"quiet")
    await host.wait_available(0, 5)
    assert await host.read_chunk(0) == b"quiet"  # no notification anywhere before
    await conn.send(b"loud")  # the next data is announced again
    await host.urc(host.notice(0))
    assert await host.recv(0, 4) == b"loud"


async def test_fault_pdp_drop(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    sc.drop_pdp(host.fake)
    await host.urc(host.pdp_drop)
    await conn.expect_closed()
    await host.at(f"AT+{host.send_name}=0,1", ERROR)


async def test_fault_reboot_between_prompt_and_payload(online: Host, peer: Peer) -> None:
    host = online
    conn = await host.open(peer)
    sc.reboot_during_next_send(host.fake)
    cmd = f"AT+{host.send_name}=0,5\r".encode()
    host.client.write(cmd)
    await host.client.expect(cmd + sc.PROMPT + host.banner)
    await conn.expect_closed()  # a reboot drops every socket
    # The payload reaches a freshly booted modem as line noise before the next command.
    host.client.write(b"hello")
    host.client.write(b"AT\r")
    await host.client.expect(b"helloAT\r" + OK)
    assert sc.simcom_state(host.fake).sockets == {}


async def test_dns_failure_and_refused_connection(online: Host, peer: Peer) -> None:
    host = online
    expected = {
        "sim7080": (info("+CAOPEN: 1,20"), info("+CAOPEN: 2,23")),
        "sim7600": (OK + line("+CIPOPEN: 1,11"), OK + line("+CIPOPEN: 2,1")),
        "sim7000": (OK + line("1, CONNECT FAIL"), OK + line("2, CONNECT FAIL")),
    }[host.dialect]
    await host.at(host.open_cmd(1, "no.such.host", peer.port), expected[0])
    await host.at(host.open_cmd(2, "127.0.0.1", closed_port()), expected[1])
    sc.add_host(host.fake, "broker.example")
    await host.open(peer, link=3, host="broker.example")


async def test_a_reboot_and_stop_drop_every_socket(online: Host, peer: Peer) -> None:
    host = online
    first = await host.open(peer, link=0)
    second = await host.open(peer, link=1)
    host.fake.reboot()
    await host.client.expect(host.banner)
    await first.expect_closed()
    await second.expect_closed()
    await host.online()
    third = await host.open(peer, link=0)
    await host.fake.stop()
    await third.expect_closed()


# ---- SIM7080


async def test_sim7080_identity_echo_and_info(start: Start) -> None:
    host = await start("sim7080")
    await host.at("AT+CGMI", info("SIMCOM INCORPORATED"))
    await host.at("AT+CGMM", info("SIMCOM_SIM7080G"))
    await host.at("AT+CGMR", info("Revision:1951B08SIM7080"))
    await host.at("AT+CPIN?", info("+CPIN: READY"))
    await host.at(
        "AT+CPSI?",
        info(
            "+CPSI: LTE CAT-M1,Online,262-01,0x0A1B,19088743,94,EUTRAN-BAND20,"
            "6300,3,3,-4,-78,-58,15"
        ),
    )
    host.client.write(b"ATE0\r\n")  # CR ends the line, the LF is ignored
    await host.client.expect(b"ATE0\r" + OK)
    host.client.write(b"AT\r")
    await host.client.expect(OK)


async def test_sim7080_bearer_state_and_dns(start: Start, peer: Peer) -> None:
    host = await start("sim7080")
    await host.at('AT+CAOPEN=0,0,"TCP","127.0.0.1",1', info("+CAOPEN: 0,1"))  # PDP not active
    await host.at('AT+CDNSGIP="localhost"', ERROR)
    await host.online()
    await host.at("AT+CNACT=0,1", ERROR)  # already active
    await host.at(
        "AT+CNACT?",
        info(
            '+CNACT: 0,1,"10.0.1.1"',
            '+CNACT: 1,0,"0.0.0.0"',
            '+CNACT: 2,0,"0.0.0.0"',
            '+CNACT: 3,0,"0.0.0.0"',
        ),
    )
    await host.at(
        'AT+CDNSGIP="localhost",10,20000', OK + line('+CDNSGIP: 1,"localhost","127.0.0.1"')
    )
    await host.at('AT+CDNSGIP="nowhere.invalid"', OK + line("+CDNSGIP: 0,8"))
    conn = await host.open(peer, link=4)
    await host.at("AT+CASTATE?", info("+CASTATE: 4,1"))
    in_use = tests.fakes.sim7080.CAOPEN_IN_USE
    await host.at('AT+CAOPEN=4,0,"TCP","127.0.0.1",1', info(f"+CAOPEN: 4,{in_use}"))
    await host.at("AT+CARECV=4,1461", ERROR)
    await host.at("AT+CARECV=4,100", info("+CARECV: 0"))
    await conn.send(b"abc")
    await host.urc("+CADATAIND: 4")
    await host.at("AT+CARECV?", info("+CARECV: 4,3"))
    await host.at("AT+CARECV=4,2", b"\r\n+CARECV: 2,ab" + OK)
    await host.at("AT+CARECV=4,2", b"\r\n+CARECV: 1,c" + OK)
    await host.at("AT+CNACT=0,0", OK + line("+APP PDP: 0,DEACTIVE"))
    await conn.expect_closed()
    await host.at("AT+CASTATE?", info("+CASTATE: 4,0"))
    await host.at("AT+CACLOSE=4")
    await host.at("AT+CASTATE?", OK)


async def test_sim7080_carecv_cid_switch(
    start: Start, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tests.fakes.sim7080, "CARECV_SHOWS_CID", True)
    host = await start("sim7080")
    await host.online()
    conn = await host.open(peer, link=2)
    await conn.send(b"xy")
    await host.urc("+CADATAIND: 2")
    await host.at("AT+CARECV=2,10", b"\r\n+CARECV: 2,2,xy" + OK)


# ---- SIM7600


async def test_sim7600_identity_network_and_cpsi(start: Start) -> None:
    host = await start("sim7600")
    await host.at("AT+CGMM", info("SIMCOM_SIM7600G-H"))
    await host.at("AT+CGMR", info("+CGMR: LE20B04SIM7600G22"))
    await host.at(
        "AT+CPSI?",
        info("+CPSI: LTE,Online,262-01,0x0A1B,19088743,94,EUTRAN-BAND20,6300,3,3,-40,-780,-580,15"),
    )
    await host.at('AT+CIPOPEN=0,"TCP","127.0.0.1",1', line("+IP ERROR: Network not opened") + ERROR)
    await host.at("AT+NETOPEN?", info("+NETOPEN: 0"))
    await host.online()
    await host.at("AT+NETOPEN", line("+IP ERROR: Network is already opened") + ERROR)
    await host.at("AT+NETOPEN?", info("+NETOPEN: 1"))
    await host.at("AT+IPADDR", info("+IPADDR: 10.0.1.1"))
    await host.at('AT+CDNSGIP="localhost"', info('+CDNSGIP: 1,"localhost","127.0.0.1"'))
    await host.at('AT+CDNSGIP="nowhere.invalid"', line("+CDNSGIP: 0,10") + ERROR)
    await host.at("AT+NETCLOSE", OK + line("+NETCLOSE: 0"))
    await host.at("AT+NETCLOSE", line("+IP ERROR: Network is already closed") + ERROR)


async def test_sim7600_links_reads_and_recovery_after_network_loss(
    start: Start, peer: Peer
) -> None:
    host = await start("sim7600")
    await host.online()
    conn = await host.open(peer, link=3)
    await host.at('AT+CIPOPEN=3,"TCP","127.0.0.1",1', line("+CIPOPEN: 3,4") + ERROR)
    await host.at("AT+CIPCLOSE?", info("+CIPCLOSE: 0,0,0,1,0,0,0,0,0,0"))
    await conn.send(b"0123456789")
    await host.urc("+CIPRXGET: 1,3")
    await host.wait_available(3, 10)
    await host.at("AT+CIPRXGET=2,3,4", b"\r\n+CIPRXGET: 2,3,4,6\r\n0123" + OK)
    await host.at("AT+CIPRXGET=3,3,2", b"\r\n+CIPRXGET: 3,3,2,4\r\n3435" + OK)
    await host.at("AT+CIPRXGET=4,3", info("+CIPRXGET: 4,3,4"))
    await host.at("AT+CIPRXGET=2,3,1501", ERROR)
    await host.at("AT+CIPRXGET=2,3", b"\r\n+CIPRXGET: 2,3,4,0\r\n6789" + OK)
    await host.at("AT+CIPRXGET=2,3", info("+CIPRXGET: 2,3,0,0"))
    sc.drop_pdp(host.fake)
    await host.urc("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")
    await conn.expect_closed()
    await host.at("AT+NETOPEN?", info("+NETOPEN: 1"))
    await host.at(host.open_cmd(4, "127.0.0.1", peer.port), OK + line("+CIPOPEN: 4,1"))
    await host.at("AT+CIPCLOSE=3", OK + line("+CIPCLOSE: 3,0"))
    await host.at("AT+CIPCLOSE=3", line("+CIPCLOSE: 3,4") + ERROR)
    await host.at("AT+NETCLOSE", OK + line("+NETCLOSE: 0"))
    await host.at("AT+NETOPEN", OK + line("+NETOPEN: 0"))
    await host.open(peer, link=3)


async def test_sim7600_push_mode_headers(start: Start, peer: Peer) -> None:
    host = await start("sim7600")
    await host.at("AT+NETOPEN", OK + line("+NETOPEN: 0"))
    conn = await host.open(peer)
    await conn.send(b"pushed")
    await host.client.expect(b"\r\n+IPD6\r\npushed")
    await host.at("AT+CIPCCFG=10,0,0,1,1,0,500")
    await conn.send(b"again")
    await host.client.expect(b"\r\n+RECEIVE,0,5\r\nagain")


# ---- SIM7000


def unused(connections: range) -> bytes:
    """AT+CIPSTATUS lines of connections never used since IP INITIAL."""
    return b"".join(f'C: {n},,"","","","INITIAL"\r\n'.encode() for n in connections)


async def test_sim7000_identity_and_ip_state_machine(start: Start, peer: Peer) -> None:
    host = await start("sim7000")
    await host.at("AT+CGMM", info("SIMCOM_SIM7000G"))
    await host.at("AT+CGMR", info("Revision:1529B08SIM7000G"))
    await host.at('AT+CIPSTART=0,"TCP","127.0.0.1",1', ERROR)  # single-IP mode
    await host.at("AT+CIPMUX=1")
    await host.at("AT+CIPRXGET=1")
    await host.at("AT+CIICR", ERROR)  # IP INITIAL: CSTT first
    await host.at("AT+CIFSR", ERROR)
    await host.at('AT+CSTT="internet","user","pass"')
    await host.at("AT+CSTT?", info('+CSTT: "internet","user","pass"'))
    await host.at('AT+CSTT="again"', ERROR)
    await host.at(host.open_cmd(0, "127.0.0.1", peer.port), ERROR)  # IP START
    await host.at("AT+CIICR")
    await host.at("AT+CIPMUX=0", ERROR)  # only in IP INITIAL
    await host.at('AT+CDNSGIP="localhost"', OK + line('+CDNSGIP: 1,"localhost","127.0.0.1"'))
    await host.at('AT+CDNSGIP="nowhere.invalid"', OK + line("+CDNSGIP: 0,8"))
    await host.at("AT+CIFSR", line("10.0.1.1"))
    conn = await host.open(peer, link=0)
    await host.at(host.open_cmd(0, "127.0.0.1", peer.port), OK + line("0, ALREADY CONNECT"))
    await host.at(
        "AT+CIPSTATUS",
        OK
        + line("STATE: IP PROCESSING")
        + b"\r\n"
        + f'C: 0,0,"TCP","127.0.0.1","{peer.port}","CONNECTED"\r\n'.encode()
        + unused(range(1, 8)),
    )
    await host.at("AT+CIPQSEND=0")
    await host.send_chunk(0, b"ping", line("0, SEND OK"))
    assert await conn.read_exactly(4) == b"ping"
    await host.close(0)
    await conn.expect_closed()
    await host.at("AT+CIPCLOSE=0", ERROR)  # only while connecting or connected
    await host.at(
        "AT+CIPSTATUS=0", info(f'+CIPSTATUS: 0,0,"TCP","127.0.0.1","{peer.port}","CLOSED"')
    )
    sc.drop_pdp(host.fake)
    await host.urc("+PDP: DEACT")
    await host.at(host.open_cmd(1, "127.0.0.1", peer.port), ERROR)  # PDP DEACT: CIPSHUT first
    await host.at("AT+CIPSHUT", line("SHUT OK"))
    await host.at(
        "AT+CIPSTATUS",
        OK + line("STATE: IP INITIAL") + b"\r\n" + unused(range(8)),
    )
    # In IP INITIAL, CIPSTART brings the bearer up itself.
    await host.open(peer, link=1)


async def test_sim7000_push_mode(start: Start, peer: Peer) -> None:
    host = await start("sim7000")
    await host.at("AT+CIPMUX=1")
    conn = await host.open(peer, link=2)
    await conn.send(b"data")
    await host.client.expect(b"\r\n+RECEIVE,2,4:\r\ndata")


async def test_the_lf_of_a_crlf_ended_send_command_is_not_payload(online: Host, peer: Peer) -> None:
    """V.250: a LF right after the command's CR belongs to the line ending, not the data."""
    host = online
    conn = await host.open(peer)
    cmd = f"AT+{host.send_name}=0,5".encode()
    host.client.write(cmd + b"\r\n")
    await host.client.expect(cmd + b"\r" + sc.PROMPT)
    host.client.write(b"\nabcd")  # a payload that really starts with LF, after the prompt
    await host.client.expect(host.sent(0, 5))
    assert await conn.read_exactly(5) == b"\nabcd"


async def test_cfun_with_reset_reboots_the_module(online: Host) -> None:
    host = online
    await host.at("AT+CFUN=1,1")
    await host.client.expect(host.banner)
