"""The fakes answer the field-diagnostics queries (``diagnostic_queries`` / ``sample_queries`` of
atbridge's dialects) as the vendors document them, checked byte for byte on the pty.

Sources of each expected answer (the section named in the comment next to it):
- Nordic nRF91 AT Commands Reference ("NRF": %XMONITOR set command, %CONEVAL, %CESQ §5.6, +CSQ
  §5.7, %XCBAND §5.14, %NBRGRSRP §5.15, %XSYSTEMMODE, %XTEMP, %XVBAT, %MDMEV, %XPTW,
  +CGCONTRDP, +CPSMS, +CEDRXRDP); Cellular Monitor's %MDMEV event texts.
- 3GPP TS 27.007 ("27.007": +CPIN §8.3, +CSQ §8.5, +CESQ §8.69, +CPSMS §7.38, +CEDRXS §7.40,
  +CEDRXRDP §7.41, +CGPADDR §10.1.14, +CSCON §10.1.30).
- SIMCom manuals ("SIM70x0": SIM7000 / SIM7080 AT Command Manuals: +CBC, +CNMP, +CMNB,
  +CBANDCFG, +CENG, +CPSI; "SIM7600": SIM7500_SIM7600 AT Command Manual: +CBC ``<vol>V``,
  +CPMUTEMP, +CPSI in 0.1 dB units; "SIM800": SIM800 Series AT Command Manual V1.09 §8.2.13
  +CDNSCFG) and the logs quoted in shared/reference/at-dialects.md §5.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakes import FakeModem
from tests.pty_client import Client

OK = "OK"
ERROR = "ERROR"
ENDINGS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}


class Host:
    """The host end: one command, its exact answer."""

    def __init__(self, fake: FakeModem, client: Client) -> None:
        self.fake, self.client = fake, client
        self.ending = ENDINGS[fake.dialect.terminator]

    async def ask(self, command: str, *lines: str, final: str = OK) -> None:
        """``command`` answers exactly ``lines`` then ``final`` (no echo)."""
        body = b"".join(line.encode() + b"\r\n" for line in lines)
        expected = (b"\r\n" + body if lines else b"") + b"\r\n" + final.encode() + b"\r\n"
        await self.client.ask(command.encode() + self.ending, expected)

    async def urc(self, line: str) -> None:
        await self.client.expect(b"\r\n" + line.encode() + b"\r\n")

    async def sync(self) -> None:
        """Past the boot banner: ``AT`` answered."""
        self.client.write(b"AT" + self.ending)
        await self.client.read_until(b"OK\r\n")


Start = Callable[..., Awaitable[Host]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    fakes: list[FakeModem] = []
    clients: list[Client] = []

    async def run(dialect: str, **options: Any) -> Host:
        fake = FakeModem(dialect, echo=False, **options)
        await fake.start()
        fakes.append(fake)
        client = Client(fake.port)
        clients.append(client)
        host = Host(fake, client)
        await host.sync()
        return host

    yield run
    for client in clients:
        client.close()
    for fake in fakes:
        await fake.stop()


NRF = ("nrf91-slm", "nrf91-sm")


@pytest.mark.parametrize("dialect", NRF)
async def test_nrf91_answers_every_diagnostic_query_when_registered(
    start: Start, dialect: str
) -> None:
    host = await start(dialect, cfun=1)
    assert host.fake.state.stat == 1
    ident = host.fake.identity
    await host.ask("AT+CGSN=1", f'+CGSN: "{ident.imei}"')  # NRF +CGSN
    await host.ask("AT+CIMI", ident.imsi)
    await host.ask("AT%XICCID", f"%XICCID: {ident.iccid}")
    await host.ask("AT+CPIN?", "+CPIN: READY")  # 27.007 §8.3
    await host.ask("AT%XTEMP?", "%XTEMP: 24")  # NRF %XTEMP read
    await host.ask("AT%XVBAT", "%XVBAT: 3600")  # NRF %XVBAT (mV)
    await host.ask("AT%XSYSTEMMODE?", "%XSYSTEMMODE: 1,0,1,0")  # LTE-M + GNSS, no preference
    await host.ask("AT%XCBAND", "%XCBAND: 20")  # NRF §5.14
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,31,62")  # 27.007 §8.69
    await host.ask("AT+CSQ", "+CSQ: 99,99")  # NRF §5.7: not detectable on LTE
    # NRF %XMONITOR (mfw 1.2+ layout): names, PLMN, TAC, AcT, band, cell, PCI, EARFCN,
    # RSRP 62 (-78 dBm), SNR 35 (11 dB), no eDRX, PSM off, legacy T3412 54 min.
    await host.ask(
        "AT%XMONITOR",
        '%XMONITOR: 1,"Fake Network","Fake","26201","0A1B",7,20,"01234567",94,6300,62,35,'
        '"","11100000","11100000","01001001"',
    )
    # NRF %CONEVAL: result 0, RRC connected (just attached), energy 9, RSRP/RSRQ/SNR,
    # cell, PLMN, PCI, EARFCN, band, no TAU needed, CE level 0, TX 6 dBm, 1 and 1 repetitions,
    # path loss 96 dB: 17 values (lte_lc coneval.c).
    await host.ask(
        "AT%CONEVAL", '%CONEVAL: 0,1,9,62,31,35,"01234567","26201",94,6300,20,0,0,6,1,1,96'
    )
    await host.ask("AT%NBRGRSRP", "%NBRGRSRP: 95,6400,56")  # NRF §5.15: <pci>,<EARFCN>,<rsrp>
    await host.ask("AT+COPS?", '+COPS: 0,2,"26201",7')
    await host.ask("AT+CPSMS?", "+CPSMS: 0,,,,")  # 27.007 §7.38: nothing requested
    await host.ask("AT+CEDRXRDP", "+CEDRXRDP: 0")  # 27.007 §7.41: eDRX not used
    await host.ask("AT%XPTW?")  # no paging time window set
    await host.ask("AT+CGDCONT?", '+CGDCONT: 0,"IP","internet","10.0.1.1",0,0')
    await host.ask("AT+CGPADDR", '+CGPADDR: 0,"10.0.1.1"')  # 27.007 §10.1.14
    await host.ask(
        "AT+CGCONTRDP=0", '+CGCONTRDP: 0,,"internet","","","10.0.0.53","10.0.0.54",,,,,1500'
    )
    await host.ask("AT+CSCON?", "+CSCON: 0,1")  # 27.007 §10.1.30: <n>,<mode>


@pytest.mark.parametrize("dialect", NRF)
async def test_nrf91_answers_when_not_registered(start: Start, dialect: str) -> None:
    host = await start(dialect)  # CFUN=0 at power-on
    await host.ask("AT%XMONITOR", "%XMONITOR: 0")  # NRF: the optional part only for 1/5
    await host.ask("AT%XCBAND", "%XCBAND: 0")  # NRF §5.14: 0 when not available
    await host.ask("AT%CONEVAL", final=ERROR)  # evaluated only in CFUN=1
    await host.ask("AT%NBRGRSRP", final=ERROR)  # "valid response only when activated"
    await host.ask("AT+CGCONTRDP=0", final=ERROR)  # the context is not active
    await host.ask("AT+CGPADDR", "+CGPADDR: 0")
    await host.ask("AT%XSYSTEMMODE=0,1,0,0")  # allowed before activating
    await host.ask("AT%XSYSTEMMODE?", "%XSYSTEMMODE: 0,1,0,0")
    host.fake.registration_delay = 3600
    await host.ask("AT+CFUN=1")
    await host.ask("AT%XSYSTEMMODE=1,0,0,0", final=ERROR)  # not while active
    await host.ask("AT%XMONITOR", "%XMONITOR: 2")  # searching
    await host.ask("AT%CONEVAL", "%CONEVAL: 1")  # no cell
    await host.ask("AT%NBRGRSRP")  # not camped: nothing measured
    await host.ask("AT+CESQ", "+CESQ: 99,99,255,255,255,255")


@pytest.mark.parametrize("dialect", NRF)
async def test_nrf91_signal_and_event_notifications(start: Start, dialect: str) -> None:
    host = await start(dialect)
    await host.ask("AT%CESQ=1")
    await host.ask("AT%MDMEV=1")
    await host.ask("AT+CSCON=1")
    await host.ask("AT+CFUN=1")
    # The search ends with a cell (Cellular Monitor: SEARCH STATUS 2 "search performed"), the
    # attach connects RRC (27.007 §10.1.30) and the signal becomes known (NRF §5.6).
    await host.urc("%MDMEV: SEARCH STATUS 2")
    await host.urc("+CSCON: 1")
    await host.urc("%CESQ: 62,3,31,4")  # default thresholds 20/40/60/80 and 7/14/21/28
    host.fake.set_signal(rsrp_index=39, rsrq_index=13)
    await host.urc("%CESQ: 39,1,13,1")
    host.fake.set_signal(rsrp_index=39, rsrq_index=13)  # no change: no notification
    host.fake.rrc_inactivity = 0.0
    host.fake.rrc_activity()  # the network releases the connection after inactivity
    await host.urc("+CSCON: 0")
    await host.ask("AT+CSCON?", "+CSCON: 1,0")
    assert host.client.pending() == b""


@pytest.mark.parametrize("dialect", ["nrf91-slm", "sim7080", "sim7000"])
async def test_psm_and_edrx_requested_and_granted(start: Start, dialect: str) -> None:
    host = await start(dialect, cfun=1)
    await host.ask("AT+CEREG=4")
    await host.ask('AT+CPSMS=1,,,"00000110","00100001"')
    # The network grants the requested timers: +CEREG level 4 carries them (27.007 §10.1.22).
    await host.urc('+CEREG: 1,"0A1B","01234567",7,,,"00100001","00000110"')
    await host.ask("AT+CPSMS?", '+CPSMS: 1,,,"00000110","00100001"')
    await host.ask('AT+CEDRXS=1,4,"0101"')
    await host.ask("AT+CEDRXRDP", '+CEDRXRDP: 4,"0101","0101","0011"')  # 27.007 §7.41
    await host.ask("AT+CPSMS=0")
    await host.urc('+CEREG: 1,"0A1B","01234567",7')
    await host.ask('AT+CPSMS=1,,,"0000011"', final=ERROR)  # not 8 bits


async def test_nrf91_xmonitor_shows_granted_psm_and_edrx(start: Start) -> None:
    host = await start("nrf91-slm", cfun=1)
    await host.ask('AT+CPSMS=1,,,"00000110","00100001"')
    await host.ask('AT+CEDRXS=1,4,"0101"')
    await host.ask('AT%XPTW=4,"0110"')
    await host.ask("AT%XPTW?", '%XPTW: 4,"0110"')
    await host.ask(
        "AT%XMONITOR",
        '%XMONITOR: 1,"Fake Network","Fake","26201","0A1B",7,20,"01234567",94,6300,62,35,'
        '"0101","00100001","00000110","01001001"',
    )
    await host.ask("AT+CEDRXRDP", '+CEDRXRDP: 4,"0101","0101","0110"')


async def test_sim7000_answers_every_diagnostic_query(start: Start) -> None:
    host = await start("sim7000")
    ident = host.fake.identity
    await host.ask("AT+CGSN", ident.imei)
    await host.ask("AT+CIMI", ident.imsi)
    await host.ask("AT+CCID", ident.iccid)  # SIM70x0: the bare ICCID
    await host.ask("AT+CPIN?", "+CPIN: READY")
    await host.ask("AT+CBC", "+CBC: 0,75,3900")  # SIM70x0: <bcs>,<bcl>,<voltage mV>
    await host.ask("AT+CNMP?", "+CNMP: 38")  # SIM70x0: 38 LTE only
    await host.ask("AT+CMNB?", "+CMNB: 1")  # SIM70x0: 1 CAT-M
    await host.ask("AT+CSQ", "+CSQ: 27,99")  # 27.007 §8.5: RSSI -58 dBm
    # SIM70x0 +CPSI: whole dB; RSRQ -4, RSRP -78, RSSI -58, RSSNR 15 (SINR 11 dB).
    await host.ask(
        "AT+CPSI?",
        "+CPSI: LTE CAT-M1,Online,262-01,0x0A1B,19088743,94,EUTRAN-BAND20,6300,3,3,-4,-78,-58,15",
    )
    await host.ask("AT+CPSMS?", "+CPSMS: 0,,,,")
    await host.ask("AT+CEDRXRDP", "+CEDRXRDP: 0")
    await host.ask("AT+CGDCONT?", '+CGDCONT: 1,"IP","internet","10.0.1.1",0,0')
    await host.ask("AT+CGPADDR", '+CGPADDR: 1,"10.0.1.1"')
    await host.client.ask(b"AT+CIPSTATUS\r", b"\r\nOK\r\n\r\nSTATE: IP INITIAL\r\n")
    # SIM800 §8.2.13: the read form's own two lines; the network's servers once the bearer is up.
    await host.ask("AT+CDNSCFG?", "PrimaryDns: 0.0.0.0", "SecondaryDns: 0.0.0.0")
    await host.ask('AT+CSTT="internet"')
    await host.ask("AT+CIICR")
    await host.ask("AT+CDNSCFG?", "PrimaryDns: 10.0.0.53", "SecondaryDns: 10.0.0.54")
    await host.ask('AT+CDNSCFG="1.1.1.1","9.9.9.9"')
    await host.ask("AT+CDNSCFG?", "PrimaryDns: 1.1.1.1", "SecondaryDns: 9.9.9.9")
    await host.ask("AT+CPMUTEMP", final=ERROR)  # a SIM7600 command
    await host.ask("AT+CBANDCFG?", final=ERROR)  # not modelled on the SIM7000


async def test_sim800_lacks_the_lte_queries(start: Start) -> None:
    host = await start("sim800")
    await host.ask("AT+CBC", "+CBC: 0,75,3900")  # SIM800 §3.2.x: +CBC: <bcs>,<bcl>,<voltage>
    for command in ("AT+CNMP?", "AT+CMNB?", "AT+CPSI?", "AT+CPSMS?", "AT+CEDRXRDP", "AT+CEREG?"):
        await host.ask(command, final=ERROR)
    await host.ask("AT+CDNSCFG?", "PrimaryDns: 0.0.0.0", "SecondaryDns: 0.0.0.0")


async def test_sim7080_answers_every_diagnostic_query(start: Start) -> None:
    host = await start("sim7080")
    await host.ask("AT+CBC", "+CBC: 0,75,3900")
    await host.ask("AT+CNMP?", "+CNMP: 38")
    await host.ask("AT+CMNB?", "+CMNB: 1")
    await host.ask(
        "AT+CBANDCFG?",
        '+CBANDCFG: "CAT-M",1,2,3,4,5,8,12,13,14,18,19,20,25,26,27,28,66,85',
        '+CBANDCFG: "NB-IOT",1,2,3,4,5,8,12,13,18,19,20,25,26,28,66,71,85',
    )
    await host.ask(
        "AT+CPSI?",
        "+CPSI: LTE CAT-M1,Online,262-01,0x0A1B,19088743,94,EUTRAN-BAND20,6300,3,3,-4,-78,-58,15",
    )
    # SIM70x0 +CENG: header <mode>,<Ncell>,<num>,<system mode>; cells only in engineering mode.
    await host.ask("AT+CENG?", "+CENG: 0,0,0,LTE CAT-M1")
    await host.ask("AT+CENG=1,1")
    await host.ask(
        "AT+CENG?",
        "+CENG: 1,1,2,LTE CAT-M1",
        '+CENG: 0,"6300,94,-78,-58,-4,11,2587,19088743,262,01,255"',
        '+CENG: 1,"6400,95,-84,-64,-7,8"',
    )
    await host.ask(
        "AT+CNACT?", *(f'+CNACT: {i},0,"0.0.0.0"' for i in range(4))
    )  # SIM7080: nothing active yet
    await host.ask("AT+CNACT=0,1")
    await host.urc("+APP PDP: 0,ACTIVE")
    await host.ask(
        "AT+CNACT?",
        '+CNACT: 0,1,"10.0.1.1"',
        *(f'+CNACT: {i},0,"0.0.0.0"' for i in range(1, 4)),
    )
    await host.ask("AT+CPMUTEMP", final=ERROR)


@pytest.mark.parametrize("dialect", ["sim7600", "a7672"])
async def test_sim7600_answers_every_diagnostic_query(start: Start, dialect: str) -> None:
    host = await start(dialect)
    await host.ask("AT+CICCID", f"+ICCID: {host.fake.identity.iccid}")
    await host.ask("AT+CBC", "+CBC: 3.900V")  # SIM7600: the supply voltage in V
    await host.ask("AT+CPMUTEMP", "+CPMUTEMP: 25")  # SIM7600: degrees C
    await host.ask("AT+CNMP?", "+CNMP: 2")  # SIM7600: 2 automatic
    await host.ask("AT+CMNB?", final=ERROR)  # a SIM70x0 command
    await host.ask("AT+CSQ", "+CSQ: 27,99")
    # SIM7600 +CPSI: RSRQ, RSRP, RSSI in tenths of a dB.
    await host.ask(
        "AT+CPSI?",
        "+CPSI: LTE,Online,262-01,0x0A1B,19088743,94,EUTRAN-BAND20,6300,3,3,-40,-780,-580,15",
    )
    await host.ask("AT+CPSMS?", "+CPSMS: 0,,,,")
    await host.ask("AT+CGPADDR", '+CGPADDR: 1,"10.0.1.1"')
    await host.ask("AT+NETOPEN?", "+NETOPEN: 0")


@pytest.mark.parametrize("dialect", ["sim7000", "sim7080", "sim7600"])
async def test_simcom_not_registered(start: Start, dialect: str) -> None:
    host = await start(dialect)
    await host.ask("AT+CFUN=0")
    await host.ask("AT+CPSI?", "+CPSI: NO SERVICE,Online")  # at-dialects.md §5.4
    await host.ask("AT+CSQ", "+CSQ: 99,99")
    await host.ask("AT+CGPADDR", "+CGPADDR: 1")
