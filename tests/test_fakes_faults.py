"""The fault interface of the fake modems (``tests.fakes.faults``), on every dialect.

Each test calls one ``FakeModem`` fault method the same way on all five dialects and checks the
exact bytes the real modem family reports it with (``tests/fakes/__init__`` lists them), through a
raw pty client, with a real TCP server on 127.0.0.1 as the far end of the socket. The per-family
shapes live in the small ``Family`` classes below; the tests never branch on the family name.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from tests.fakes import FakeModem, Network, UnsupportedFault
from tests.fakes.nrf91_sockets import wait_buffered
from tests.fakes.simcom_common import PROMPT
from tests.pty_client import Client
from tests.test_fakes_simcom import (
    ERROR,
    OK,
    READ_TIMEOUT,
    Conn,
    Host,
    Peer,
    Sim7000Host,
    Sim7080Host,
    Sim7600Host,
    info,
    line,
)


def nrf(*texts: str) -> bytes:
    """Information lines as the nRF91 applications frame them, then OK."""
    return b"".join(line(text) for text in texts) + OK


class Family:
    """One dialect as the host sees it, in the shapes the fault tests need."""

    dialect: ClassVar[str]
    banner: ClassVar[bytes]
    eol: ClassVar[bytes] = b"\r"
    echo: ClassVar[bool] = True

    def __init__(self, fake: FakeModem, client: Client) -> None:
        self.fake, self.client = fake, client

    async def at(self, cmd: str, expected: bytes = OK) -> None:
        raw = cmd.encode() + self.eol
        self.client.write(raw)
        await self.client.expect((raw if self.echo else b"") + expected)

    async def expect(self, expected: bytes) -> None:
        await self.client.expect(expected)

    async def online(self) -> None:
        """Registered with +CEREG URCs on, the data bearer up."""
        raise NotImplementedError

    async def open(self, peer: Peer) -> Conn:
        """Socket 0 connected to ``peer``."""
        raise NotImplementedError

    async def open_refused(self, peer: Peer) -> None:
        """Try to open socket 0 to ``peer`` and see it fail; no socket is left behind."""
        raise NotImplementedError

    async def after_pdp_drop(self, peer: Peer) -> None:
        """Check what a new open to ``peer`` does after ``drop_pdp`` (socket 0 dropped)."""
        raise NotImplementedError

    async def send(self, data: bytes, expected: bytes | None = None) -> None:
        """Send ``data`` on socket 0; ``expected`` overrides the success answer."""
        raise NotImplementedError

    def send_refused(self, data: bytes) -> bytes:
        """What the modem answers a send that ``fail_next_send`` refuses."""
        raise NotImplementedError

    async def read_unannounced(self, count: int) -> bytes:
        """Wait (bounded) until ``count`` bytes are buffered in socket 0, read them."""
        raise NotImplementedError

    def notice(self) -> bytes:
        """The data notification for socket 0."""
        raise NotImplementedError

    pdp_dropped: ClassVar[bytes]  # what drop_pdp() sends (socket 0 open)
    detached: ClassVar[bytes]  # what network_detach(reattach_after=0) sends (socket 0 open)
    peer_closed: ClassVar[bytes]  # what peer_close() sends for socket 0


class SimcomFamily(Family):
    """The SIMCom dialects, through the host shapes of ``test_fakes_simcom``."""

    host_class: ClassVar[type[Host]]

    def __init__(self, fake: FakeModem, client: Client) -> None:
        super().__init__(fake, client)
        self.host = self.host_class(fake, client)

    async def online(self) -> None:
        await self.at("AT+CEREG=1")
        await self.host.online()

    async def open(self, peer: Peer) -> Conn:
        return await self.host.open(peer)

    async def send(self, data: bytes, expected: bytes | None = None) -> None:
        await self.host.send_chunk(0, data, expected)

    def send_refused(self, data: bytes) -> bytes:
        return self.host.send_failed(0, len(data))

    async def read_unannounced(self, count: int) -> bytes:
        await self.host.wait_available(0, count)
        return await self.host.read_chunk(0)

    def notice(self) -> bytes:
        return line(self.host.notice(0))


class Sim7080(SimcomFamily):
    dialect = "sim7080"
    host_class = Sim7080Host
    banner = Sim7080Host.banner
    pdp_dropped = line("+APP PDP: 0,DEACTIVE")
    detached = line("+CEREG: 2") + line("+APP PDP: 0,DEACTIVE") + line("+CEREG: 1")
    peer_closed = line("+CASTATE: 0,0")

    async def open_refused(self, peer: Peer) -> None:
        await self.at(self.host.open_cmd(0, "127.0.0.1", peer.port), info("+CAOPEN: 0,23"))

    async def after_pdp_drop(self, peer: Peer) -> None:  # PDP not active
        await self.at(self.host.open_cmd(1, "127.0.0.1", peer.port), info("+CAOPEN: 1,1"))


class Sim7600(SimcomFamily):
    dialect = "sim7600"
    host_class = Sim7600Host
    banner = Sim7600Host.banner
    pdp_dropped = line("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")
    detached = line("+CEREG: 2") + pdp_dropped + line("+CEREG: 1")
    peer_closed = line("+IPCLOSE: 0,1")

    async def open_refused(self, peer: Peer) -> None:
        await self.at(self.host.open_cmd(0, "127.0.0.1", peer.port), OK + line("+CIPOPEN: 0,1"))

    async def after_pdp_drop(self, peer: Peer) -> None:
        await self.at(self.host.open_cmd(1, "127.0.0.1", peer.port), OK + line("+CIPOPEN: 1,1"))


class Sim7000(SimcomFamily):
    dialect = "sim7000"
    host_class = Sim7000Host
    banner = Sim7000Host.banner
    pdp_dropped = line("+PDP: DEACT")
    detached = line("+CEREG: 2") + pdp_dropped + line("+CEREG: 1")
    peer_closed = line("0, CLOSED")

    async def open_refused(self, peer: Peer) -> None:
        await self.at(self.host.open_cmd(0, "127.0.0.1", peer.port), OK + line("0, CONNECT FAIL"))

    async def after_pdp_drop(self, peer: Peer) -> None:  # PDP DEACT: AT+CIPSHUT first
        await self.at(self.host.open_cmd(1, "127.0.0.1", peer.port), ERROR)


class NrfFamily(Family):
    """The nRF91 dialects: +CGEV on, asynchronous poll for POLLIN on socket 0."""

    banner = b"Ready\r\n"
    apoll: ClassVar[str]
    detached = (
        line("+CGEV: NW DETACH")
        + line("+CEREG: 2")
        + line("#XAPOLL: 0,8")
        + line("+CEREG: 1")
        + line("+CGEV: ME PDN ACT 0")
    )
    peer_closed = line("#XAPOLL: 0,17")
    pdp_dropped = detached  # LTE-M: the network detaches to take the last PDN connection
    recv: ClassVar[str]

    def notice(self) -> bytes:
        return line("#XAPOLL: 0,1")

    async def read_unannounced(self, count: int) -> bytes:
        await wait_buffered(self.fake, 0, count)
        self.client.write(self.recv.encode() + self.eol)
        header = await self.client.read_until(b"\r\n", timeout=READ_TIMEOUT)
        header += await self.client.read_until(b"\r\n")
        data = await self.client.read_exactly(count)
        await self.expect(OK)
        return data

    async def open_refused(self, peer: Peer, handle: int = 0) -> None:
        raise NotImplementedError

    async def open(self, peer: Peer, handle: int = 0) -> Conn:
        raise NotImplementedError

    async def after_pdp_drop(self, peer: Peer) -> None:
        await self.open(peer, 1)  # re-attached: a new socket (0 has failed) connects

    async def online(self) -> None:
        await self.at("AT+CEREG=1")
        await self.at("AT+CGEREP=1")
        await self.at(self.apoll)
        await self.at("AT+CFUN=1", OK + line("+CEREG: 2") + line("+CEREG: 1"))


class Slm(NrfFamily):
    dialect = "nrf91-slm"
    eol = b"\r\n"
    echo = False
    apoll = "AT#XAPOLL=1,1"
    recv = "AT#XRECV=1"

    async def open(self, peer: Peer, handle: int = 0) -> Conn:
        await self.at("AT#XSOCKET=1,1,0", nrf(f"#XSOCKET: {handle},1,6"))
        await self.at(f'AT#XCONNECT="127.0.0.1",{peer.port}', nrf("#XCONNECT: 1"))
        return await peer.accept()

    async def open_refused(self, peer: Peer, handle: int = 0) -> None:
        await self.at("AT#XSOCKET=1,1,0", nrf(f"#XSOCKET: {handle},1,6"))
        await self.at(f'AT#XCONNECT="127.0.0.1",{peer.port}', ERROR)
        await self.at("AT#XSOCKET=0", nrf('#XSOCKET: 0,"closed"'))

    async def send(self, data: bytes, expected: bytes | None = None) -> None:
        text = data.decode()
        await self.at(
            f'AT#XSEND="{text}"', nrf(f"#XSEND: {len(data)}") if expected is None else expected
        )

    def send_refused(self, data: bytes) -> bytes:
        return line("#XSEND: 0") + ERROR


class Sm(NrfFamily):
    dialect = "nrf91-sm"
    echo = False
    apoll = "AT#XAPOLL=,1,1"
    recv = "AT#XRECV=0,0,0,1"

    async def open(self, peer: Peer, handle: int = 0) -> Conn:
        await self.at("AT#XSOCKET=1,1,0", nrf(f"#XSOCKET: {handle},1,6"))
        await self.at(
            f'AT#XCONNECT={handle},"127.0.0.1",{peer.port}', nrf(f"#XCONNECT: {handle},1")
        )
        return await peer.accept()

    async def open_refused(self, peer: Peer, handle: int = 0) -> None:
        await self.at("AT#XSOCKET=1,1,0", nrf(f"#XSOCKET: {handle},1,6"))
        await self.at(f'AT#XCONNECT={handle},"127.0.0.1",{peer.port}', ERROR)
        await self.at(f"AT#XCLOSE={handle}", nrf(f"#XCLOSE: {handle},0"))

    async def send(self, data: bytes, expected: bytes | None = None) -> None:
        cmd = f'AT#XSEND=0,0,0,"{data.decode()}"'
        await self.at(cmd, nrf(f"#XSEND: 0,0,{len(data)}") if expected is None else expected)

    def send_refused(self, data: bytes) -> bytes:
        return line("#XSEND: 0,0,0") + ERROR


FAMILIES: dict[str, type[Family]] = {f.dialect: f for f in (Slm, Sm, Sim7080, Sim7600, Sim7000)}


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    """A TCP server on a free loopback port."""
    server = Peer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture(params=sorted(FAMILIES))
async def modem(request: pytest.FixtureRequest) -> AsyncIterator[Family]:
    """Each dialect, booted (banner read), registered, its bearer up; stopped afterwards."""
    family = FAMILIES[request.param]
    fake = FakeModem(family.dialect)
    await fake.start()
    client = Client(fake.port, read_timeout=READ_TIMEOUT)
    try:
        host = family(fake, client)
        await host.expect(family.banner)
        await host.online()
        yield host
    finally:
        client.close()
        await fake.stop()


async def test_drop_pdp_is_reported_the_family_way(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.drop_pdp()
    await modem.expect(modem.pdp_dropped)
    await conn.expect_closed()
    await modem.at("AT+CEREG?", info("+CEREG: 1,1"))
    await modem.after_pdp_drop(peer)
    assert modem.client.pending() == b""


@pytest.mark.parametrize("family", [Slm, Sm])
async def test_nrf91_drop_pdp_on_nb_iot_keeps_registration(
    family: type[NrfFamily], peer: Peer
) -> None:
    async with FakeModem(family.dialect, network=Network(act=9)) as fake:
        client = Client(fake.port, read_timeout=READ_TIMEOUT)
        try:
            modem = family(fake, client)
            await modem.expect(family.banner)
            await modem.online()
            conn = await modem.open(peer)
            fake.drop_pdp()  # NB-IoT: attached without a PDN connection is allowed
            await modem.expect(line("+CGEV: NW PDN DEACT 0") + line("#XAPOLL: 0,8"))
            await conn.expect_closed()
            await modem.at("AT+CEREG?", info("+CEREG: 1,1"))
            await modem.open_refused(peer, 1)  # no PDN: connect() fails
            await modem.at("AT+CFUN=4", OK + line("+CEREG: 0") + line("+CGEV: ME DETACH"))
            await modem.at("AT+CFUN=1", OK + line("+CEREG: 2") + line("+CEREG: 1"))
            await modem.open(peer, 1)  # the next attach brought the PDN back
        finally:
            client.close()


async def test_network_detach_then_reattach(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.network_detach(reattach_after=0)
    await modem.expect(modem.detached)
    await conn.expect_closed()
    assert modem.client.pending() == b""


async def test_peer_close_announces_the_close(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.peer_close()
    await modem.expect(modem.peer_closed)
    await conn.expect_closed()
    with pytest.raises(LookupError):
        modem.fake.peer_close()  # nothing open any more
    with pytest.raises(LookupError):
        modem.fake.peer_close(7)


async def test_fail_next_send_refuses_one_send(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.fail_next_send()
    await modem.send(b"lost", modem.send_refused(b"lost"))
    await modem.send(b"kept")
    assert await conn.read_exactly(4) == b"kept"


async def test_fail_next_open_refuses_one_open(modem: Family, peer: Peer) -> None:
    modem.fake.fail_next_open()
    await modem.open_refused(peer)
    conn = await modem.open(peer)
    await modem.send(b"up")
    assert await conn.read_exactly(2) == b"up"


async def test_lose_next_notification_keeps_the_data(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.lose_next_notification()
    await conn.send(b"quiet")
    assert await modem.read_unannounced(5) == b"quiet"  # no notification came before
    await conn.send(b"loud")
    await modem.expect(modem.notice())  # the next data is announced again
    assert modem.client.pending() == b""


async def test_reboot_sends_the_banner_and_drops_the_socket(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.reboot()
    await modem.expect(modem.banner)
    await conn.expect_closed()


async def test_reboot_during_next_send(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    modem.fake.reboot_during_next_send()
    if isinstance(modem, SimcomFamily):
        cmd = f"AT+{modem.host.send_name}=0,5\r".encode()
        modem.client.write(cmd)
        await modem.expect(cmd + PROMPT + modem.banner)
    else:
        data_mode = "AT#XSEND" if modem.dialect == "nrf91-slm" else "AT#XSEND=0,2,0,5"
        await modem.at(data_mode, OK + modem.banner)
    await conn.expect_closed()


async def test_drop_link_hangs_up_the_pty(modem: Family, peer: Peer) -> None:
    conn = await modem.open(peer)
    port = modem.fake.port
    modem.fake.drop_link()
    assert os.read(modem.client.fd, 64) == b""  # end of file: the modem's side hung up
    with pytest.raises(OSError) as raised:
        os.write(modem.client.fd, b"AT\r")
    assert raised.value.errno == errno.EIO
    modem.client.close()
    with pytest.raises(FileNotFoundError):
        os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)  # the port is gone
    await conn.expect_closed()


async def test_the_generic_modem_has_no_socket_faults() -> None:
    async with FakeModem("generic", cfun=0) as fake:
        client = Client(fake.port, read_timeout=READ_TIMEOUT)
        try:
            for fault in (
                fake.drop_pdp,
                fake.peer_close,
                fake.fail_next_send,
                fake.fail_next_open,
                fake.lose_next_notification,
                fake.reboot_during_next_send,
            ):
                with pytest.raises(UnsupportedFault):
                    fault()
            for cmd, answer in ((b"AT+CEREG=1\r", OK), (b"AT+CFUN=1\r", OK + line("+CEREG: 2"))):
                client.write(cmd)
                await client.expect(cmd + answer)
            await client.expect(line("+CEREG: 1"))
            fake.network_detach(reattach_after=0, initiator="ME")
            await client.expect(line("+CEREG: 0") + line("+CEREG: 1"))
        finally:
            client.close()


async def test_fault_counts_must_not_be_negative() -> None:
    async with FakeModem("sim7080") as fake:
        for fault in (fake.fail_next_send, fake.fail_next_open, fake.lose_next_notification):
            with pytest.raises(ValueError):
                fault(-1)
        with pytest.raises(ValueError):
            fake.network_detach(reattach_after=-1)
