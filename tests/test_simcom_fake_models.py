"""Raw-byte tests of the SIMCom fakes' real-board behaviours (issue 10), without the driver:
the SIM800 and A7672 models, auto-bauding, late boot lines, the SIM7000/SIM800 send size, and
sockets that outlive the host that opened them, with the family's limits and refusals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.fakes import Dialect, FakeModem
from tests.fakes import sim7000 as fake_sim7000
from tests.fakes import sim7080 as fake_sim7080
from tests.fakes import sim7600 as fake_sim7600
from tests.pty_client import Client
from tests.test_fakes_simcom import (
    ERROR,
    HOSTS,
    OK,
    READ_TIMEOUT,
    Host,
    Peer,
    Sim7000Host,
    Sim7080Host,
    Sim7600Host,
    info,
    line,
)

#: Seconds from power-on to the late boot lines in these tests: far longer than one command's
#: round trip on a pty, so the order "banner, an answered AT, the late lines" is certain.
LATE = 1.0

Boot = Callable[[Dialect | str], Awaitable[tuple[FakeModem, Client]]]


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def boot() -> AsyncIterator[Boot]:
    """Start fakes with a client each (nothing read yet); all stopped afterwards."""
    started: list[tuple[FakeModem, Client]] = []

    async def boot(dialect: Dialect | str) -> tuple[FakeModem, Client]:
        fake = FakeModem(dialect)
        await fake.start()
        client = Client(fake.port, read_timeout=READ_TIMEOUT)
        started.append((fake, client))
        return fake, client

    yield boot
    for fake, client in started:
        client.close()
        await fake.stop()


async def at(client: Client, cmd: str, expected: bytes = OK) -> None:
    echo = cmd.encode() + b"\r"
    client.write(echo)
    await client.expect(echo + expected)


# ---- models and boot


async def test_sim800_has_no_cereg_and_boots_auto_bauding(boot: Boot) -> None:
    _fake, client = await boot("sim800")
    # Auto-bauding: nothing at power-on; the first AT is the first thing answered.
    await at(client, "AT")
    assert client.pending() == b""
    await at(client, "AT+CGMM", info("SIMCOM_SIM800L"))
    await at(client, "AT+CGMR", info("Revision:1418B05SIM800L24"))
    await at(client, "AT+CEREG?", ERROR)
    await at(client, "AT+CEREG=2", ERROR)
    await at(client, "AT+CPSI?", ERROR)


async def test_sim800_send_size_is_what_cipsend_read_reports(boot: Boot, peer: Peer) -> None:
    fake, client = await boot(fake_sim7000.model("SIM800", autobaud=False))
    await client.expect(line("RDY") + line("+CFUN: 1") + line("+CPIN: READY"))
    await client.expect(line("Call Ready") + line("SMS Ready"))
    host = Sim7000Host(fake, client)
    await host.online()
    size = fake_sim7000.SIM800_SEND_SIZE
    await host.at("AT+CIPSEND?", info(*(f"+CIPSEND: {n},{size}" for n in range(8))))
    await host.open(peer, link=0)
    await host.at(f"AT+CIPSEND=0,{size + 1}", ERROR)
    await host.send_chunk(0, b"x" * size)


async def test_sim7000_send_size_is_1460(boot: Boot) -> None:
    _fake, client = await boot("sim7000")
    await client.expect(Sim7000Host.banner)
    await at(client, "AT+CIPMUX=1")
    await at(client, "AT+CIPSEND?", info(*(f"+CIPSEND: {n},1460" for n in range(8))))


@pytest.mark.parametrize(
    "dialect",
    [
        fake_sim7000.model(autobaud=True),
        fake_sim7080.model(autobaud=True),
        fake_sim7600.model(autobaud=True),
    ],
    ids=["sim7000", "sim7080", "sim7600"],
)
async def test_an_auto_bauding_module_prints_no_banner_before_or_after_a_reset(
    boot: Boot, dialect: Dialect
) -> None:
    _fake, client = await boot(dialect)
    await at(client, "AT")
    assert client.pending() == b""
    await at(client, "AT+CFUN=1,1")  # the reset: no RDY follows
    echo_on = b"AT\r"
    client.write(echo_on)
    await client.expect(echo_on + OK)
    assert client.pending() == b""


@pytest.mark.parametrize(
    ("dialect", "banner", "late"),
    [
        (
            fake_sim7000.model("SIM800", autobaud=False, late_boot=LATE),
            ("RDY", "+CFUN: 1", "+CPIN: READY"),
            ("Call Ready", "SMS Ready"),
        ),
        (
            fake_sim7000.model(late_boot=LATE),
            ("RDY", "+CFUN: 1", "+CPIN: READY"),
            ("SMS Ready",),
        ),
        (fake_sim7080.model(late_boot=LATE), ("RDY", "+CFUN: 1", "+CPIN: READY"), ("SMS Ready",)),
        (fake_sim7600.model(late_boot=LATE), ("RDY", "+CPIN: READY"), ("SMS DONE", "PB DONE")),
        (
            fake_sim7600.model("A7672", late_boot=LATE),
            ("*ATREADY: 1", "+CPIN: READY"),
            ("SMS DONE", "PB DONE"),
        ),
    ],
    ids=["sim800", "sim7000", "sim7080", "sim7600", "a7672"],
)
async def test_late_boot_lines_come_after_the_banner_between_answers(
    boot: Boot, dialect: Dialect, banner: tuple[str, ...], late: tuple[str, ...]
) -> None:
    _fake, client = await boot(dialect)
    await client.expect(b"".join(line(text) for text in banner))
    await at(client, "AT")  # answered before the module has finished booting
    await client.expect(b"".join(line(text) for text in late), timeout=LATE + READ_TIMEOUT)
    await at(client, "AT")


async def test_a7672_boots_with_atready_and_forgets_echo_off_and_receive_mode(boot: Boot) -> None:
    _fake, client = await boot("a7672")
    banner = line("*ATREADY: 1") + line("+CPIN: READY") + line("SMS DONE") + line("PB DONE")
    await client.expect(banner)
    await at(client, "AT+CGMM", info("A7672E-LASE"))
    await at(client, "AT+CIPRXGET=1")
    await at(client, "ATE0")
    client.write(b"AT+CFUN=1,1\r")
    await client.expect(OK + banner)
    await at(client, "AT+CIPRXGET?", info("+CIPRXGET: 0"))  # echo is on again, push mode


# ---- sockets that outlive the host


async def reconnect(host: Host) -> Host:
    """The host goes away (its process killed: the port closes) and a new one opens the port."""
    host.client.close()
    return type(host)(host.fake, Client(host.fake.port, read_timeout=READ_TIMEOUT))


@pytest.fixture
async def hosts() -> AsyncIterator[Callable[[str], Awaitable[Host]]]:
    started: list[Host] = []

    async def start(dialect: str) -> Host:
        fake = FakeModem(dialect)
        await fake.start()
        host = HOSTS[dialect](fake, Client(fake.port, read_timeout=READ_TIMEOUT))
        started.append(host)
        await host.client.expect(host.banner)
        await host.online()
        return host

    yield start
    for host in started:
        host.client.close()
        await host.fake.stop()


async def test_sim7000_connections_outlive_the_host_and_are_refused_until_closed(
    hosts: Callable[[str], Awaitable[Host]], peer: Peer
) -> None:
    first = await hosts("sim7000")
    conn = await first.open(peer, link=0)
    host = await reconnect(first)
    host.client.write(b"AT+CIPSTATUS\r")
    status = await host.client.read_until(b'C: 7,,"","","","INITIAL"\r\n')
    assert b'C: 0,0,"TCP","127.0.0.1","%d","CONNECTED"' % peer.port in status
    start = f'AT+CIPSTART=0,"TCP","127.0.0.1",{peer.port}'
    await host.at(start, OK + line("0, ALREADY CONNECT"))
    await host.at('AT+CIPSTART=8,"TCP","127.0.0.1",1', ERROR)  # connections 0-7
    await host.close(0)
    await conn.expect_closed()
    await host.at(start, OK + line("0, CONNECT OK"))
    assert await peer.accept()
    host.client.close()


async def test_sim7080_cids_outlive_the_host_and_are_refused_until_closed(
    hosts: Callable[[str], Awaitable[Host]], peer: Peer
) -> None:
    first = await hosts("sim7080")
    assert isinstance(first, Sim7080Host)
    conn = await first.open(peer, link=3)
    host = await reconnect(first)
    await host.at("AT+CASTATE?", info("+CASTATE: 3,1"))
    open_3 = host.open_cmd(3, "127.0.0.1", peer.port)
    await host.at(open_3, info(f"+CAOPEN: 3,{fake_sim7080.CAOPEN_IN_USE}"))
    await host.at(host.open_cmd(12, "127.0.0.1", peer.port), ERROR)  # cids 0-11
    await host.close(3)
    await conn.expect_closed()
    await host.at("AT+CASTATE?", OK)
    await host.open(peer, link=3)
    host.client.close()


async def test_sim7600_links_outlive_the_host_and_are_refused_until_closed(
    hosts: Callable[[str], Awaitable[Host]], peer: Peer
) -> None:
    first = await hosts("sim7600")
    assert isinstance(first, Sim7600Host)
    conn = await first.open(peer, link=9)
    host = await reconnect(first)
    await host.at("AT+CIPCLOSE?", info("+CIPCLOSE: 0,0,0,0,0,0,0,0,0,1"))
    open_9 = host.open_cmd(9, "127.0.0.1", peer.port)
    await host.at(open_9, line("+CIPOPEN: 9,4") + ERROR)
    await host.at(host.open_cmd(10, "127.0.0.1", peer.port), ERROR)  # links 0-9
    await host.close(9)
    await conn.expect_closed()
    await host.at("AT+CIPCLOSE?", info("+CIPCLOSE: 0,0,0,0,0,0,0,0,0,0"))
    await host.open(peer, link=9)
    host.client.close()
