"""The field scenarios on every dialect, at the AT level through a real pty.

Each scenario (``tests/fakes/scenarios.py``) is checked on the five dialect fakes with the
answers each family documents (the sources are those of tests/test_fakes_diagnostics.py):
registration denied (+CEREG level 3, TS 27.007 §10.1.22, with the EMM cause of TS 24.301
Annex A; nRF91 %XMONITOR short form; SIMCom ``+CPSI: NO SERVICE,Online``), no service, roaming
(stat 5 on a visited PLMN), NB-IoT (AcT 9), a scripted RSRP series, a handover, PSM timers
granted other than requested, DNS failure, an unreachable broker and a refused CONNACK (the
stand-in of ``refusing_broker``, MQTT 3.1.1 §3.2 / MQTT 5 §3.2.2.2).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakes import FakeModem
from tests.fakes.refusing_broker import connack
from tests.pty_client import Client

DIALECTS = ("nrf91-slm", "nrf91-sm", "sim7000", "sim7080", "sim7600")
NRF = ("nrf91-slm", "nrf91-sm")
OK = "OK"
ERROR = "ERROR"
ENDINGS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
#: MQTT 3.1.1 CONNECT, client id "a", clean session, keep-alive 60 (MQTT 3.1.1 §3.1).
CONNECT_311 = bytes.fromhex("100d00044d5154540402003c000161")
#: The same as MQTT 5 (protocol level 5, an empty property list, MQTT 5 §3.1.2).
CONNECT_5 = bytes.fromhex("100e00044d5154540502003c00000161")


class Host:
    def __init__(self, fake: FakeModem, client: Client) -> None:
        self.fake, self.client = fake, client
        self.ending = ENDINGS[fake.dialect.terminator]

    def send(self, command: str) -> None:
        self.client.write(command.encode() + self.ending)

    async def ask(self, command: str, *lines: str, final: str = OK) -> None:
        body = b"".join(line.encode() + b"\r\n" for line in lines)
        expected = (b"\r\n" + body if lines else b"") + b"\r\n" + final.encode() + b"\r\n"
        self.send(command)
        await expect(self.client, expected)

    async def urc(self, line: str) -> None:
        await expect(self.client, b"\r\n" + line.encode() + b"\r\n")


async def expect(client: Client, expected: bytes) -> None:
    got = await client.read_exactly(len(expected))
    assert got == expected, (got, client.pending())


Start = Callable[..., Awaitable[Host]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    fakes: list[FakeModem] = []
    clients: list[Client] = []

    async def run(dialect: str, **options: Any) -> Host:
        fake = FakeModem(dialect, **{"echo": False, "cfun": 1, **options})
        await fake.start()
        fakes.append(fake)
        client = Client(fake.port)
        clients.append(client)
        host = Host(fake, client)
        host.send("AT")
        await client.read_until(b"OK\r\n")  # past the boot banner
        return host

    yield run
    for client in clients:
        client.close()
    for fake in fakes:
        await fake.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with a listening server that is never reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def cell_answer(host: Host, *lines: str) -> None:
    """The family's serving-cell answer: nRF91 %XMONITOR, SIMCom +CPSI."""
    command = "AT%XMONITOR" if host.fake.dialect.name in NRF else "AT+CPSI?"
    await host.ask(command, *lines)


def cpsi(host: Host, cell: str, rsrq: int, rsrp: int, rssi: int, rssnr: int) -> str:
    """+CPSI as the family writes it (SIM7600 in tenths of a dB)."""
    name = host.fake.dialect.name
    mode = "LTE" if name == "sim7600" else "LTE CAT-M1"
    scale = 10 if name == "sim7600" else 1
    values = f"{rsrq * scale},{rsrp * scale},{rssi * scale},{rssnr}"
    return f"+CPSI: {mode},Online,262-01,0x0A1B,{cell},3,3,{values}"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_deny_reports_the_emm_cause(start: Start, dialect: str) -> None:
    host = await start(dialect, deny=15)
    await host.ask("AT+CEREG=3")
    # 27.007 §10.1.22 level 3: stat 3 with the cell it tried, cause_type 0 (EMM), cause 15.
    await host.ask("AT+CEREG?", '+CEREG: 3,3,"0A1B","01234567",7,0,15')
    await host.ask("AT+CEREG=1")
    await host.ask("AT+CEREG?", "+CEREG: 1,3")
    if dialect in NRF:
        await cell_answer(host, "%XMONITOR: 3")  # the optional part only for 1 and 5
        await host.ask("AT%CONEVAL", "%CONEVAL: 6")  # not registered
    else:
        await cell_answer(host, "+CPSI: NO SERVICE,Online")
    await host.ask("AT+COPS?", "+COPS: 0")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_no_service_searches_for_ever(start: Start, dialect: str) -> None:
    host = await start(dialect, no_service=True)
    await host.ask("AT+CEREG?", "+CEREG: 0,2")
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,255,255")  # 27.007 §8.69: unknown
    if dialect in NRF:
        await cell_answer(host, "%XMONITOR: 2")
        await host.ask("AT%CONEVAL", "%CONEVAL: 1")  # no cell
        await host.ask("AT%XCBAND", "%XCBAND: 0")
    else:
        await cell_answer(host, "+CPSI: NO SERVICE,Online")
        await host.ask("AT+CSQ", "+CSQ: 99,99")


@pytest.mark.parametrize("dialect", NRF)
async def test_no_service_search_events(start: Start, dialect: str) -> None:
    host = await start(dialect, no_service=True, cfun=0)
    await host.ask("AT%MDMEV=1")
    await host.ask("AT+CFUN=1")
    # Cellular Monitor: SEARCH STATUS 1 a light search found nothing, SEARCH STATUS 2 every
    # frequency scanned (limited service).
    await host.urc("%MDMEV: SEARCH STATUS 1")
    await host.urc("%MDMEV: SEARCH STATUS 2")
    await host.ask("AT+CEREG?", "+CEREG: 0,2")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_roaming_registers_on_a_visited_plmn(start: Start, dialect: str) -> None:
    host = await start(dialect, roaming=True)
    await host.ask("AT+CEREG?", "+CEREG: 0,5")
    plmn = host.fake.network.plmn
    assert plmn != host.fake.identity.imsi[:5]
    await host.ask("AT+COPS?", f'+COPS: 0,2,"{plmn}",7')
    await host.ask("AT+COPS=3,0")
    await host.ask("AT+COPS?", '+COPS: 0,0,"Fake Roaming Partner",7')


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_nbiot_camps_on_an_nbiot_cell(start: Start, dialect: str) -> None:
    if dialect == "sim7600":
        with pytest.raises(ValueError, match="sim7600 has no nbiot radio"):
            FakeModem(dialect, rat="nbiot")
        return
    host = await start(dialect, rat="nbiot")
    await host.ask("AT+CEREG=2")
    await host.ask("AT+CEREG?", '+CEREG: 2,1,"0A1C","0123A001",9')
    await host.ask("AT+COPS?", '+COPS: 0,2,"26201",9')
    if dialect in NRF:
        await cell_answer(
            host,
            '%XMONITOR: 1,"Fake Network","Fake","26201","0A1C",9,8,"0123A001",293,3740,62,35,'
            '"","11100000","11100000","01001001"',
        )
        await host.ask("AT%XSYSTEMMODE?", "%XSYSTEMMODE: 0,1,1,0")
    else:
        # SIM70x0 +CPSI NB-IoT layout (at-dialects.md §5.4 example): bandwidth index 0.
        await cell_answer(
            host,
            "+CPSI: LTE NB-IOT,Online,262-01,0x0A1C,19111937,293,EUTRAN-BAND8,3740,0,0,"
            "-4,-78,-58,15",
        )
        await host.ask("AT+CMNB?", "+CMNB: 2")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_rsrp_series_steps_every_signal_answer(start: Start, dialect: str) -> None:
    host = await start(dialect, rsrp_series=[-85, -97, -112], series_period=3600)
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,31,55")
    host.fake.step_signal()
    assert host.fake.rsrp_dbm == -97
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,31,43")
    if dialect in NRF:
        await cell_answer(
            host,
            '%XMONITOR: 1,"Fake Network","Fake","26201","0A1B",7,20,"01234567",94,6300,43,25,'
            '"","11100000","11100000","01001001"',
        )
        # -97 dBm: energy 7, CE level 0, path loss 115 dB, TX power at its 23 dBm cap.
        await host.ask(
            "AT%CONEVAL", '%CONEVAL: 0,1,7,43,31,25,"01234567","26201",94,6300,20,0,0,23,1,1,115'
        )
    else:
        # RSRP -97, RSSI -77, SINR 1 dB (RSSNR 10); +CSQ (-77 + 113) / 2 = 18.
        cell = "19088743,94,EUTRAN-BAND20,6300"
        await cell_answer(host, cpsi(host, cell, -4, -97, -77, 10))
        await host.ask("AT+CSQ", "+CSQ: 18,99")
    host.fake.step_signal()
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,31,28")
    host.fake.step_signal()  # after the last value, the first again
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,31,55")


@pytest.mark.parametrize("dialect", NRF)
async def test_rsrp_series_steps_on_its_own_with_cesq_notifications(
    start: Start, dialect: str
) -> None:
    host = await start(dialect, rsrp_series=[-85, -97], series_period=0.01)
    await host.ask("AT%CESQ=1")
    # %CESQ (nRF91 §5.6): index 43 is between thresholds 40 and 60, 55 likewise, so the
    # threshold indices stay 2; every change is reported.
    await host.urc("%CESQ: 43,2,31,4")
    await host.urc("%CESQ: 55,2,31,4")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_handover_changes_the_serving_cell(start: Start, dialect: str) -> None:
    host = await start(dialect, handover_after=3600)
    await host.ask("AT+CEREG=2")
    host.fake.handover()
    await host.urc('+CEREG: 1,"0A1B","01234568",7')  # 27.007: a cell change at level >= 2
    await host.ask("AT+CEREG?", '+CEREG: 2,1,"0A1B","01234568",7')
    if dialect in NRF:
        await cell_answer(
            host,
            '%XMONITOR: 1,"Fake Network","Fake","26201","0A1B",7,20,"01234568",95,6400,62,35,'
            '"","11100000","11100000","01001001"',
        )
        await host.ask("AT%NBRGRSRP", "%NBRGRSRP: 94,6300,56")  # the old cell is the neighbour
    else:
        await cell_answer(host, cpsi(host, "19088744,95,EUTRAN-BAND20,6400", -4, -78, -58, 15))
    host.fake.handover()
    await host.urc('+CEREG: 1,"0A1B","01234567",7')


async def test_handover_after_fires_after_registering(start: Start) -> None:
    host = await start("sim7080", handover_after=0.0, cfun=0)
    await host.ask("AT+CEREG=2")
    await host.ask("AT+CFUN=1")
    await host.urc("+CEREG: 2")
    await host.urc('+CEREG: 1,"0A1B","01234567",7')
    await host.urc('+CEREG: 1,"0A1B","01234568",7')


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_psm_granted_differs_from_requested(start: Start, dialect: str) -> None:
    host = await start(dialect, psm_grant=("00100001", "00000110"))
    await host.ask("AT+CEREG=5")
    await host.ask('AT+CPSMS=1,,,"00000111","00000001"')
    # +CEREG level 5 carries what the network granted (T3324 "00100001": GPRS Timer 2 unit
    # 001 = 1 min, value 1; T3412-ext "00000110": 10 min x 6); +CPSMS? keeps the request.
    await host.urc('+CEREG: 1,"0A1B","01234567",7,,,"00100001","00000110"')
    await host.ask("AT+CPSMS?", '+CPSMS: 1,,,"00000111","00000001"')
    await host.ask("AT+CEREG?", '+CEREG: 5,1,"0A1B","01234567",7,,,"00100001","00000110"')
    if dialect in NRF:
        await cell_answer(
            host,
            '%XMONITOR: 1,"Fake Network","Fake","26201","0A1B",7,20,"01234567",94,6300,62,35,'
            '"","00100001","00000110","01001001"',
        )


async def bring_up(host: Host) -> None:
    """The family's data bearer up (the nRF91's default PDN is up once registered)."""
    name = host.fake.dialect.name
    if name == "sim7080":
        await host.ask("AT+CNACT=0,1")
        await host.urc("+APP PDP: 0,ACTIVE")
    elif name == "sim7600":
        await host.ask("AT+NETOPEN")
        await host.urc("+NETOPEN: 0")
    elif name == "sim7000":
        await host.ask("AT+CIPMUX=1")
        await host.ask('AT+CSTT="internet"')
        await host.ask("AT+CIICR")
        host.send("AT+CIFSR")  # SIM800 §8.2.x: the bare address, no OK; IP STATUS
        await expect(host.client, b"\r\n10.0.1.1\r\n")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_dns_fail(start: Start, dialect: str) -> None:
    host = await start(dialect, dns_fail=True)
    await bring_up(host)
    if dialect in NRF:
        # slm_at_socket.c / sm_at_socket.c: the gai_strerror name, then ERROR.
        await host.ask('AT#XGETADDRINFO="localhost"', '#XGETADDRINFO: "EAI_AGAIN"', final=ERROR)
        await host.ask('AT#XGETADDRINFO="127.0.0.1"', '#XGETADDRINFO: "127.0.0.1"')
    elif dialect == "sim7600":
        await host.ask('AT+CDNSGIP="localhost"', "+CDNSGIP: 0,10", final=ERROR)
    else:
        await host.ask('AT+CDNSGIP="localhost"')  # SIM70x0: the result follows OK
        await host.urc("+CDNSGIP: 0,8")


async def open_socket(host: Host, port: int) -> str:
    """Open socket 0 to 127.0.0.1:``port``; returns the family's result line."""
    name = host.fake.dialect.name
    if name == "nrf91-slm":
        await host.ask("AT#XSOCKET=1,1,0", "#XSOCKET: 0,1,6")
        host.send(f'AT#XCONNECT="127.0.0.1",{port}')
    elif name == "nrf91-sm":
        await host.ask("AT#XSOCKET=1,1,0", "#XSOCKET: 0,1,6")
        host.send(f'AT#XCONNECT=0,"127.0.0.1",{port}')
    elif name == "sim7080":
        host.send(f'AT+CAOPEN=0,0,"TCP","127.0.0.1",{port}')
    elif name == "sim7600":
        await host.ask(f'AT+CIPOPEN=0,"TCP","127.0.0.1",{port}')
    else:
        await host.ask(f'AT+CIPSTART=0,"TCP","127.0.0.1",{port}')
    return (await host.client.read_until(b"\r\n", timeout=5.0)).decode() + (
        await host.client.read_until(b"\r\n", timeout=5.0)
    ).decode()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_broker_unreachable_refuses_every_connect(
    start: Start, dialect: str, closed_port: int
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", closed_port)
    try:
        host = await start(dialect, broker_unreachable=True)
        await bring_up(host)
        # Each family's refused connect: nRF91 ERROR, SIM7080 +CAOPEN <cid>,23 then OK,
        # SIM7600 +CIPOPEN: <link>,1 after OK, SIM7000 "<n>, CONNECT FAIL" after OK.
        expected = {
            "nrf91-slm": "\r\nERROR\r\n",
            "nrf91-sm": "\r\nERROR\r\n",
            "sim7080": "\r\n+CAOPEN: 0,23\r\n",
            "sim7600": "\r\n+CIPOPEN: 0,1\r\n",
            "sim7000": "\r\n0, CONNECT FAIL\r\n",
        }[dialect]
        assert await open_socket(host, closed_port) == expected
    finally:
        server.close()
        await server.wait_closed()


async def exchange(host: Host, payload: bytes, reply_length: int) -> bytes:
    """Send ``payload`` on the open socket 0 and read ``reply_length`` bytes back."""
    name, client = host.fake.dialect.name, host.client
    if name == "nrf91-slm":
        await host.ask("AT#XSEND")
        client.write(payload + b"+++")
        await host.urc("#XDATAMODE: 0")
        host.send("AT#XRECV=5")
        await expect(client, f"\r\n#XRECV: {reply_length}\r\n".encode())
        data = await client.read_exactly(reply_length)
        await expect(client, b"\r\nOK\r\n")
        return data
    if name == "nrf91-sm":
        await host.ask(f'AT#XSEND=0,1,0,"{payload.hex()}"', f"#XSEND: 0,0,{len(payload)}")
        host.send("AT#XRECV=0,1,0,5")  # hex mode (ncs-serial-modem at_socket.rst)
        await expect(client, f"\r\n#XRECV: 0,1,{reply_length}\r\n".encode())
        data = bytes.fromhex((await client.read_exactly(2 * reply_length)).decode())
        await expect(client, b"\r\nOK\r\n")
        return data
    command = "AT+CASEND=0," if name == "sim7080" else "AT+CIPSEND=0,"
    host.send(command + str(len(payload)))
    await expect(client, b"\r\n> ")
    client.write(payload)
    if name == "sim7080":
        await expect(client, b"\r\nOK\r\n")
        await host.urc("+CADATAIND: 0")
        host.send("AT+CARECV=0,100")
        # The stand-in closes at once: "+CASTATE: 0,0" (peer closed) may come first.
        answer = (await client.read_until(b"\r\nOK\r\n", timeout=5.0)).replace(
            b"\r\n+CASTATE: 0,0\r\n", b""
        )
        head = f"\r\n+CARECV: {reply_length},".encode()
        assert answer.startswith(head) and answer.endswith(b"\r\nOK\r\n"), answer
        return answer[len(head) : -len(b"\r\nOK\r\n")]
    if name == "sim7600":
        await expect(
            client, f"\r\nOK\r\n\r\n+CIPSEND: 0,{len(payload)},{len(payload)}\r\n".encode()
        )
        await expect(client, f"\r\n+IPD{reply_length}\r\n".encode())
        return await client.read_exactly(reply_length)
    await expect(client, b"\r\n0, SEND OK\r\n")
    await expect(client, f"\r\n+RECEIVE,0,{reply_length}:\r\n".encode())
    return await client.read_exactly(reply_length)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_connack_refused_by_the_stand_in_broker(
    start: Start, dialect: str, closed_port: int
) -> None:
    host = await start(dialect, connack_refused=5)
    await bring_up(host)
    opened = {
        "nrf91-slm": "\r\n#XCONNECT: 1\r\n\r\nOK\r\n",
        "nrf91-sm": "\r\n#XCONNECT: 0,1\r\n\r\nOK\r\n",
        "sim7080": "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n",
        "sim7600": "\r\n+CIPOPEN: 0,0\r\n",
        "sim7000": "\r\n0, CONNECT OK\r\n",
    }[dialect]
    result = await open_socket(host, closed_port)  # nothing listens there: the stand-in answers
    if opened.count("\r\n") > 2:
        result += (await host.client.read_until(b"OK\r\n", timeout=5.0)).decode()
    assert result == opened
    # MQTT 3.1.1 §3.2.2.3: return code 5 "not authorized".
    assert await exchange(host, CONNECT_311, 4) == bytes.fromhex("20020005")


@pytest.mark.parametrize(
    ("connect", "reply"), [(CONNECT_311, "20020004"), (CONNECT_5, "2003008600")]
)
async def test_refusing_broker_answers_each_protocol_level(
    start: Start, connect: bytes, reply: str
) -> None:
    host = await start("sim7080", connack_refused=4)
    await bring_up(host)
    host.send('AT+CAOPEN=0,0,"TCP","127.0.0.1",1')
    await expect(host.client, b"\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n")
    # MQTT 5 §3.2.2.2: 4 "bad user name or password" is reason 0x86, no properties.
    assert await exchange(host, connect, len(reply) // 2) == bytes.fromhex(reply)
    assert connack(4, 5) == bytes.fromhex("2003008600")


async def test_a_scenario_a_dialect_cannot_play_is_refused() -> None:
    with pytest.raises(ValueError, match="generic has no sockets or DNS: no dns_fail"):
        FakeModem("generic", dns_fail=True)
    with pytest.raises(ValueError, match="psm_grant"):
        FakeModem("sim7080", psm_grant=("001", "00000110"))
    with pytest.raises(ValueError, match="connack_refused=9"):
        FakeModem("sim7080", connack_refused=9)
    with pytest.raises(ValueError, match="deny and no_service"):
        FakeModem("sim7080", deny=15, no_service=True)
