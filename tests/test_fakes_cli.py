"""``python -m tests.fakes`` flags for the fake behaviours of real boards (issue 10).

Each test starts the fake as a process of its own, reads the path from its first line and
drives it with raw bytes (no driver): the nRF91 build's terminator, NCS version and legacy data
mode, a SLM left in data mode, the modem fault on SIGUSR1, SIMCom auto-bauding and late boot
lines, the field scenarios of issue 11 (one test per flag group: registration, signal, cell,
PSM, network), and the refusal of a flag the dialect does not have or cannot honour. Every
wait is bounded and the process is always stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import pytest

from tests.fakes.__main__ import spawn
from tests.pty_client import Client
from tests.test_fakes import OK
from tests.test_fakes_nrf91 import Server, nrf, server, urc
from tests.test_fakes_simcom import READ_TIMEOUT, line

__all__ = ["server"]

#: Seconds for the process to start (an import of the fakes) or stop.
PROCESS_WAIT = 20


@contextlib.asynccontextmanager
async def served(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, Client]]:
    """``python -m tests.fakes *args`` and a raw client on the path it prints; the client is
    closed and the process stopped (exit status 0 checked) on the way out."""
    proc = await spawn(*args)
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), PROCESS_WAIT)
        assert first, (await asyncio.wait_for(proc.communicate(), PROCESS_WAIT))[1]
        client = Client(first.decode().strip(), read_timeout=READ_TIMEOUT)
        try:
            yield proc, client
        finally:
            client.close()
        proc.terminate()
        _out, err = await asyncio.wait_for(proc.communicate(), PROCESS_WAIT)
        assert proc.returncode == 0, err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def ask(client: Client, command: bytes, expected: bytes) -> None:
    client.write(command)
    await client.expect(expected)


async def test_terminator_cr_builds_an_slm_that_ends_lines_with_cr() -> None:
    async with served("--dialect", "nrf91-slm", "--terminator", "CR") as (_proc, client):
        await client.expect(b"Ready\r\n")
        await ask(client, b"AT+CFUN?\r", nrf(b"+CFUN: 0"))  # CRLF build: CR alone ends nothing


async def test_terminator_lf_builds_an_sm_that_ends_lines_with_lf() -> None:
    async with served("--dialect", "nrf91-sm", "--terminator", "LF") as (_proc, client):
        await client.expect(b"Ready\r\n")
        await ask(client, b"AT+CFUN?\n", nrf(b"+CFUN: 0"))


async def test_ncs_version_is_what_xslmver_reports() -> None:
    async with served("--dialect", "nrf91-slm", "--ncs-version", "2.4.1") as (_proc, client):
        await client.expect(b"Ready\r\n")
        await ask(client, b"AT#XSLMVER\r\n", nrf(b'#XSLMVER: "2.4.1","2.5.0-lte-5ccd2d4dd54c"'))


async def test_legacy_datamode_sends_no_ok_until_data_mode_ends(server: Server) -> None:
    args = ("--dialect", "nrf91-slm", "--legacy-datamode", "--ncs-version", "2.0.2")
    async with served(*args) as (_proc, client):
        await client.expect(b"Ready\r\n")
        await ask(client, b"AT+CEREG=1\r\n", OK)
        await ask(client, b"AT+CFUN=1\r\n", OK + urc(b"+CEREG: 2") + urc(b"+CEREG: 1"))
        await ask(client, b"AT#XSOCKET=1,1,0\r\n", nrf(b"#XSOCKET: 0,1,6"))
        connect = b'AT#XCONNECT="localhost",%d\r\n' % server.port
        await ask(client, connect, nrf(b"#XCONNECT: 1"))
        peer = await server.accept()
        client.write(b"AT#XSEND\r\npayload+++")
        await client.expect(OK)  # the answer to AT#XSEND comes when data mode ends
        assert await peer.read_exactly(7) == b"payload"
        await ask(client, b"AT\r\n", OK)  # no #XDATAMODE came before this OK


async def test_start_in_data_mode_leaves_the_slm_taking_at_as_payload() -> None:
    args = ("--dialect", "nrf91-slm", "--start-in-data-mode", "")
    async with served(*args) as (_proc, client):
        client.write(b"AT\r\n")  # payload on a socket that is not connected: the send fails
        await client.expect(b"+++")  # the modem's own terminator: it drops input until ours
        client.write(b"AT\r\n")
        client.write(b"+++")
        await client.expect(urc(b"#XDATAMODE: -128"))
        await ask(client, b"AT\r\n", OK)
        await ask(client, b"AT#XSOCKET?\r\n", nrf(b"#XSOCKET: 0,1,0,1,0"))  # the dead host's


async def test_start_in_data_mode_with_a_payload_keeps_it_buffered() -> None:
    args = ("--dialect", "nrf91-slm", "--start-in-data-mode", "+")
    async with served(*args) as (_proc, client):
        client.write(b"+++")  # "++" completes the lone "+": the last "+" is command input
        await client.expect(urc(b"#XDATAMODE: 0"))
        await ask(client, b"AT\r\n", OK)


@pytest.mark.parametrize(("dialect", "eol"), [("nrf91-slm", b"\r\n"), ("nrf91-sm", b"\r")])
async def test_sigusr1_faults_the_modem_core_of_a_running_nordic_fake(
    dialect: str, eol: bytes
) -> None:
    async with served("--dialect", dialect) as (proc, client):
        await client.expect(b"Ready\r\n")
        await ask(client, b"AT+CFUN=1" + eol, OK)
        proc.send_signal(signal.SIGUSR1)
        fault = urc(b"#XMODEM: FAULT,0x2,0x12345")
        await client.expect(fault + urc(b"#XMODEM: SHUTDOWN,0") + urc(b"#XMODEM: INIT,0"))
        await ask(client, b"AT+CFUN?" + eol, nrf(b"+CFUN: 0"))


async def test_sigusr1_on_a_dialect_without_a_modem_fault_is_reported_and_ignored() -> None:
    async with served("--dialect", "generic") as (proc, client):
        proc.send_signal(signal.SIGUSR1)
        assert proc.stderr is not None
        said = await asyncio.wait_for(proc.stderr.readline(), PROCESS_WAIT)
        assert said == b"generic has no modem fault: SIGUSR1 ignored\n"
        await ask(client, b"AT\r", b"AT\r" + OK)  # still serving (echo on)


async def test_autobaud_drops_the_simcom_banner() -> None:
    async with served("--dialect", "sim7000", "--autobaud") as (_proc, client):
        await ask(client, b"AT\r", b"AT\r" + OK)  # the first thing on the line: no RDY
        assert client.pending() == b""


async def test_no_autobaud_gives_the_sim800_its_banner() -> None:
    async with served("--dialect", "sim800", "--no-autobaud") as (_proc, client):
        await client.expect(line("RDY") + line("+CFUN: 1") + line("+CPIN: READY"))


async def test_late_boot_sends_the_simcom_late_lines_after_the_first_answers() -> None:
    async with served("--dialect", "sim7600", "--late-boot", "1") as (_proc, client):
        await client.expect(line("RDY") + line("+CPIN: READY"))
        await ask(client, b"AT\r", b"AT\r" + OK)  # answered before the module finished booting
        await client.expect(line("SMS DONE") + line("PB DONE"), timeout=READ_TIMEOUT + 1)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--dialect", "generic", "--terminator", "CR"), b"generic has no --terminator"),
        (("--dialect", "nrf91-sm", "--legacy-datamode"), b"nrf91-sm has no --legacy-datamode"),
        (("--dialect", "nrf91-slm", "--autobaud"), b"nrf91-slm has no --autobaud"),
        (("--dialect", "sim7080", "--start-in-data-mode", "x"), b"has no --start-in-data-mode"),
        (("--dialect", "sim7600", "--rat", "nbiot"), b"sim7600 has no nbiot radio"),
        (("--dialect", "generic", "--dns-fail"), b"generic has no sockets or DNS: no dns_fail"),
        (("--dialect", "sim7080", "--series-period", "1"), b"--series-period needs --rsrp-series"),
        (("--dialect", "sim7080", "--psm-grant", "1,2"), b"psm_grant=('1', '2')"),
        (("--dialect", "sim7080", "--connack-refused", "7"), b"connack_refused=7"),
        (("--dialect", "sim7080", "--rsrp-series", "-85,x"), b"--rsrp-series '-85,x' is not"),
    ],
)
async def test_a_flag_the_dialect_does_not_have_is_refused(
    args: tuple[str, ...], said: bytes
) -> None:
    proc = await spawn(*args)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), PROCESS_WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    assert said in err


# ---- field scenarios (tests/fakes/scenarios.py); answers as in tests/test_fakes_scenarios.py


def answer(*lines: str) -> bytes:
    return b"\r\n" + b"".join(text.encode() + b"\r\n" for text in lines) + OK


@pytest.mark.parametrize(
    ("flags", "urcs", "read"),
    [
        (("--deny", "15"), ('+CEREG: 3,"0A1B","01234567",7,0,15',), '3,3,"0A1B","01234567",7,0,15'),
        (("--no-service",), (), "3,2"),
        (
            ("--roaming", "--rat", "nbiot"),
            ('+CEREG: 5,"0A1C","0123A001",9',),
            '3,5,"0A1C","0123A001",9',
        ),
    ],
)
async def test_registration_scenario_flags(
    flags: tuple[str, ...], urcs: tuple[str, ...], read: str
) -> None:
    args = ("--dialect", "sim7080", "--no-echo", "--cfun", "0", *flags)
    async with served(*args) as (_proc, client):
        await client.read_until(b"SMS Ready\r\n")
        await ask(client, b"AT+CEREG=3\r", OK)
        await ask(client, b"AT+CFUN=1\r", OK + line("+CEREG: 2") + b"".join(map(line, urcs)))
        await ask(client, b"AT+CEREG?\r", answer(f"+CEREG: {read}"))


async def attach(client: Client, ending: bytes) -> None:
    """An nRF91 fake (CFUN=0 at power-on) registers: the URCs follow the OK of AT+CFUN=1."""
    await ask(client, b"AT+CEREG=1" + ending, OK)
    await ask(client, b"AT+CFUN=1" + ending, OK + line("+CEREG: 2") + line("+CEREG: 1"))


async def test_signal_scenario_flags_take_negative_dbm() -> None:
    args = ("--dialect", "nrf91-sm", "--rsrp-series", "-85,-97", "--series-period", "3600")
    async with served(*args) as (_proc, client):
        await client.read_until(b"Ready\r\n")
        await attach(client, b"\r")
        await ask(client, b"AT+CESQ\r", answer("+CESQ: 99,99,255,255,31,55"))


async def test_cell_and_psm_scenario_flags() -> None:
    args = ("--dialect", "sim7080", "--no-echo", "--cfun", "0", "--handover-after", "0")
    async with served(*args, "--psm-grant", "00100001,00000110") as (_proc, client):
        await client.read_until(b"SMS Ready\r\n")
        await ask(client, b'AT+CPSMS=1,,,"00000111","00000001"\r', OK)
        await ask(client, b"AT+CEREG=4\r", OK)
        psm = ',,,"00100001","00000110"'
        await ask(
            client,
            b"AT+CFUN=1\r",
            OK
            + line("+CEREG: 2")
            + line('+CEREG: 1,"0A1B","01234567",7' + psm)
            + line('+CEREG: 1,"0A1B","01234568",7' + psm),
        )


async def test_network_scenario_flags() -> None:
    args = ("--dialect", "nrf91-slm", "--dns-fail", "--broker-unreachable")
    async with served(*args, "--connack-refused", "5") as (_proc, client):
        await client.read_until(b"Ready\r\n")
        await attach(client, b"\r\n")
        await ask(
            client,
            b'AT#XGETADDRINFO="localhost"\r\n',
            b'\r\n#XGETADDRINFO: "EAI_AGAIN"\r\n\r\nERROR\r\n',
        )
        await ask(client, b"AT#XSOCKET=1,1,0\r\n", answer("#XSOCKET: 0,1,6"))
        await ask(client, b'AT#XCONNECT="127.0.0.1",1\r\n', b"\r\nERROR\r\n")
