"""The AT channel against the fake modem on a real pty."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from atbridge.at_parser import Event
from atbridge.at_syntax import format_command
from atbridge.errors import (
    AtTimeout,
    ConfigurationError,
    LinkLost,
    MissingInformation,
    ModemError,
    ModemRebooted,
    PortNotFound,
    ResyncFailed,
)
from atbridge.modem import RESYNC_PROBES, Modem, Urc
from tests.fakes import Command, FakeModem
from tests.fakes import Response as FakeResponse
from tests.fakes.grammar import HandlerResult

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm") as fake:
        yield fake


@pytest.fixture
async def modem(fake: FakeModem, tmp_path: Path) -> AsyncIterator[Modem]:
    # The SLM's line ending, given: these tests are about what follows the sync.
    modem = await Modem.open(fake.port, line_ending="\r\n", transcript=tmp_path / "transcript.log")
    try:
        yield modem
    finally:
        await modem.close()


def collect(modem: Modem, prefix: str | None = None) -> list[Urc]:
    urcs: list[Urc] = []
    modem.subscribe(prefix, urcs.append)
    return urcs


async def test_open_synchronises_turns_echo_off_and_numeric_errors_on(
    fake: FakeModem, modem: Modem
) -> None:
    assert fake.commands[:3] == ["AT", "ATE0", "AT+CMEE=1"]


async def test_open_without_a_line_ending_finds_it_then_sets_up(fake: FakeModem) -> None:
    """``AT`` CR gets no answer from the CR LF SLM, the lone LF completes it, ``AT`` CR LF
    confirms: then echo off and numeric errors, as with a given line ending."""
    async with await Modem.open(fake.port) as modem:
        assert (modem.line_ending, modem.line_ending_origin) == (b"\r\n", "detected")
        await modem.command("AT+CGMM")
    assert fake.commands[:4] == ["AT", "AT", "ATE0", "AT+CMEE=1"]
    # The confirmation came after the lone LF took the first AT's answer: no resync probe.
    assert fake.commands[4] == "AT+CGMM"


async def test_a_cr_modem_that_answers_the_first_at_ok_needs_no_confirmation() -> None:
    """The Serial Modem ends lines with CR: its ``OK`` to the first ``AT`` CR is the clean
    ``AT`` that confirms the line ending, so one ``AT`` goes before the session setup."""
    async with FakeModem(dialect="nrf91-sm") as fake:
        async with await Modem.open(fake.port) as modem:
            assert (modem.line_ending, modem.line_ending_origin) == (b"\r", "detected")
            await modem.command("AT+CGMM")
        assert fake.commands[:4] == ["AT", "ATE0", "AT+CMEE=1", "AT+CGMM"]


async def test_a_cr_modem_whose_first_answer_is_an_error_is_confirmed_with_a_clean_at() -> None:
    """An ``ERROR`` to the first ``AT`` CR (bytes an earlier host left in the modem's line)
    says CR ends lines but not that the channel is clean: a second ``AT`` confirms."""
    async with FakeModem(dialect="nrf91-sm") as fake:
        fake.on_command("AT", FakeResponse(final="ERROR"), times=1)
        async with await Modem.open(fake.port) as modem:
            assert (modem.line_ending, modem.line_ending_origin) == (b"\r", "detected")
        assert fake.commands[:3] == ["AT", "AT", "ATE0"]


async def test_identity(modem: Modem) -> None:
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
    assert (await modem.command("AT+CGMM")).lines[0].startswith("nRF91")
    imei = (await modem.command("AT+CGSN")).lines
    assert len(imei) == 1 and imei[0].isdigit() and len(imei[0]) == 15
    quoted = await modem.command("AT+CGSN=1")
    assert quoted.value("+CGSN:") == f'"{imei[0]}"'
    version = await modem.command("AT#XSLMVER")
    assert version.value("#XSLMVER:").startswith('"')
    assert version.final == "OK"


async def test_registration_urc_in_the_middle_of_a_response_goes_to_subscribers(
    fake: FakeModem, modem: Modem
) -> None:
    urcs = collect(modem, "+CEREG:")
    fake.urc_during_next_response('+CEREG: 1,"0A1B","01234567",7')
    response = await modem.command("AT+CGMI")
    assert response.lines == ("Nordic Semiconductor ASA",)
    assert [urc.text for urc in urcs] == ['+CEREG: 1,"0A1B","01234567",7']


async def test_cereg_read_response_and_notification_are_told_apart(
    fake: FakeModem, modem: Modem
) -> None:
    urcs = collect(modem, "+CEREG:")
    await modem.command("AT+CEREG=2")
    fake.urc_during_next_response('+CEREG: 5,"0A1B","01234567",7')
    response = await modem.command("AT+CEREG?")
    assert response.values("+CEREG:") == ["2,0"]
    assert [urc.text for urc in urcs] == ['+CEREG: 5,"0A1B","01234567",7']


async def test_foreign_prefix_during_a_command_is_unsolicited(
    fake: FakeModem, modem: Modem
) -> None:
    urcs = collect(modem)
    fake.urc_during_next_response("+CSCON: 1")
    response = await modem.command("AT+CFUN?")
    assert response.values("+CFUN:") == ["0"]
    assert [urc.text for urc in urcs] == ["+CSCON: 1"]


async def test_unsolicited_line_between_commands(fake: FakeModem, modem: Modem) -> None:
    got: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()

    def first(urc: Urc) -> None:
        if not got.done():
            got.set_result(urc)

    modem.subscribe("+CEREG:", first)
    fake.send_urc("+CEREG: 2")
    urc = await asyncio.wait_for(got, 5)
    assert urc.text == "+CEREG: 2"


async def test_cme_error_carries_code_and_standard_text(tmp_path: Path) -> None:
    async with (
        FakeModem(dialect="nrf91-slm", sim=False) as fake,
        await Modem.open(fake.port) as modem,
    ):
        await modem.command("AT+CFUN=1")
        with pytest.raises(ModemError) as caught:
            await modem.command("AT+CIMI")
    error = caught.value
    assert (error.kind, error.code, error.text) == ("CME", 10, "SIM not inserted")
    assert "+CME ERROR: 10 (SIM not inserted)" in str(error)
    assert error.command == "AT+CIMI"


async def test_unknown_command_is_a_plain_error(modem: Modem) -> None:
    with pytest.raises(ModemError) as caught:
        await modem.command("AT+NOSUCHTHING")
    assert caught.value.kind is None and caught.value.final == "ERROR"
    response = await modem.command("AT+NOSUCHTHING", check=False)
    assert response.final == "ERROR"


async def test_timeout_carries_the_partial_bytes(fake: FakeModem, modem: Modem) -> None:
    # The modem starts answering and never sends a final result code.
    fake.on_command("AT+CGMR", FakeResponse(lines=("mfw_nrf9160_1.3.5",), final=None), times=1)
    with pytest.raises(AtTimeout) as caught:
        await modem.command("AT+CGMR", timeout=0.3)
    assert caught.value.command == "AT+CGMR"
    assert caught.value.received == b"\r\nmfw_nrf9160_1.3.5\r\n"
    assert 'received "\\r\\nmfw_nrf9160_1.3.5\\r\\n"' in str(caught.value)
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)


async def test_a_late_answer_is_never_taken_for_the_next_command(
    fake: FakeModem, modem: Modem
) -> None:
    fake.delay_next_response(0.5)
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGMI", timeout=0.1)
    # CGMI's answer arrives while the next command is already on its way.
    assert (await modem.command("AT+CGMM")).lines[0].startswith("nRF91")
    assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]


async def test_reboot_banner_mid_command(fake: FakeModem, modem: Modem) -> None:
    reboots: list[str] = []
    modem.on_reboot(reboots.append)
    fake.drop_next_response()
    task = asyncio.create_task(modem.command("AT+CGMI", timeout=5))
    await fake.wait_for_command("AT+CGMI", timeout=5)
    fake.reboot()
    with pytest.raises(ModemRebooted) as caught:
        await task
    assert "rebooted" in str(caught.value) and "Ready" in str(caught.value)
    assert caught.value.command == "AT+CGMI"
    assert reboots == ["Ready"]
    before = len(fake.commands)
    assert (await modem.command("AT+CGMM")).lines[0].startswith("nRF91")
    # The session setup was redone before the next command.
    assert fake.commands[before:][:3] == ["AT", "ATE0", "AT+CMEE=1"]


async def test_echo_on_is_handled(fake: FakeModem, modem: Modem) -> None:
    fake.set_echo(True)
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
    assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]


class Inbox:
    """URCs a test collects, with a bounded wait for the one it expects."""

    def __init__(self, modem: Modem, prefix: str | None = None) -> None:
        self.urcs: list[Urc] = []
        self._changed = asyncio.Event()
        modem.subscribe(prefix, self._add)

    def _add(self, urc: Urc) -> None:
        self.urcs.append(urc)
        self._changed.set()

    async def until(self, predicate: Callable[[list[Urc]], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.urcs):
                self._changed.clear()
                await self._changed.wait()


async def test_garbage_lines_go_to_subscribers_not_to_commands(
    fake: FakeModem, modem: Modem
) -> None:
    inbox = Inbox(modem)
    fake.send_garbage(b"\xff\xfe\x00\x80garbage\r\n")
    await inbox.until(lambda urcs: len(urcs) == 1)
    urcs = inbox.urcs
    assert urcs[0].text == "\\xff\\xfe\x00\\x80garbage"
    assert urcs[0].raw == b"\xff\xfe\x00\x80garbage"
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)


async def test_garbage_before_a_urc_does_not_break_it(fake: FakeModem, modem: Modem) -> None:
    inbox = Inbox(modem)
    fake.send_garbage(b"\xff\xff")
    fake.send_urc("+CEREG: 2")
    await inbox.until(lambda urcs: any(u.text == "+CEREG: 2" for u in urcs))
    assert (await modem.command("AT+CGMM")).lines[0].startswith("nRF91")


async def test_a_line_arriving_when_a_command_is_sent_is_not_its_answer(
    fake: FakeModem, modem: Modem
) -> None:
    urcs = collect(modem)
    release = asyncio.Event()

    async def answer_when_released(fake: FakeModem, command: Command) -> object:
        await release.wait()
        result = fake.run_default(command)
        return await result if inspect.isawaitable(result) else result

    fake.on_command("AT+CEREG", answer_when_released, times=1)  # type: ignore[arg-type]
    partial_arrived = asyncio.Event()
    feed = modem.parser.feed

    def feed_and_watch(data: bytes) -> list[Event]:
        events = feed(data)
        if modem.parser.in_line:
            partial_arrived.set()
        return events

    modem.parser.feed = feed_and_watch  # type: ignore[method-assign]
    fake.write_raw(b'\r\n+CEREG: 2,"0A1B"')  # a notification, cut short for now
    await asyncio.wait_for(partial_arrived.wait(), 5)
    task = asyncio.create_task(modem.command("AT+CEREG?"))
    await fake.wait_for_command("AT+CEREG?")
    fake.write_raw(b',"01234567",7\r\n')  # the rest of it, then the answer
    release.set()
    response = await task
    assert response.values("+CEREG:") == ["0,0"]
    assert [u.text for u in urcs] == ['+CEREG: 2,"0A1B","01234567",7']


async def test_injection_attempt_is_refused_before_anything_is_written(
    fake: FakeModem, modem: Modem
) -> None:
    before = list(fake.commands)
    with pytest.raises(ConfigurationError, match="exactly one command line"):
        await modem.command('AT+CGDCONT=0,"IP","x"\rAT+CFUN=0')
    with pytest.raises(ConfigurationError, match="could end the AT command early"):
        await modem.command(format_command("AT+CGDCONT", 0, "IP", 'x"\r\nAT+CFUN=0'))
    await modem.command(format_command("AT+CGDCONT", 0, "IP", "iot.example"))
    assert fake.commands[len(before) :] == ['AT+CGDCONT=0,"IP","iot.example"']


async def test_concurrent_commands_come_back_to_their_callers(modem: Modem) -> None:
    commands = ["AT+CGMI", "AT+CGMM", "AT+CGSN", "AT+CFUN?", "AT#XSLMVER", "AT+CGMR"] * 5
    responses = await asyncio.gather(*(modem.command(c) for c in commands))
    for command, response in zip(commands, responses, strict=True):
        assert response.command == command
    by_command = {r.command: r.lines for r in responses}
    for command, response in zip(commands, responses, strict=True):
        assert response.lines == by_command[command]
    assert by_command["AT+CGMI"] == ("Nordic Semiconductor ASA",)
    assert by_command["AT+CFUN?"] == ("+CFUN: 0",)


async def test_registration_follows_cfun(modem: Modem) -> None:
    await modem.command("AT+CEREG=1")
    # Listen before the command: the notifications may come in the same read as its OK.
    with modem.expect_urc(
        "+CEREG:", predicate=lambda u: u.text in ("+CEREG: 1", "+CEREG: 5")
    ) as registered:
        await modem.command("AT+CFUN=1")
        urc = await registered.wait(timeout=10)
    assert urc.text == "+CEREG: 1"
    assert (await modem.command("AT+CEREG?")).values("+CEREG:") == ["1,1"]


async def test_transcript_records_both_directions_and_masks_secrets(
    fake: FakeModem, tmp_path: Path
) -> None:
    path = tmp_path / "t.log"
    async with await Modem.open(fake.port, transcript=path) as modem:
        modem.add_secret("hunter2")
        await modem.command(format_command("AT+CGDCONT", 0, "IP", "hunter2"))
    text = path.read_text()
    assert 'TX "AT\\r\\n"' in text
    assert 'RX "\\r\\nOK\\r\\n"' in text or 'RX "OK\\r\\n"' in text
    assert "hunter2" not in text and "***" in text


@pytest.mark.usefixtures("short_escape_guard")  # the escape is not the point
async def test_sync_gives_up_after_bounded_tries(fake: FakeModem) -> None:
    fake.drop_next_response(count=100)
    with pytest.raises(AtTimeout) as caught:
        await Modem.open(fake.port, sync_attempts=3, sync_timeout=0.1)
    assert "3 tries" in str(caught.value)


@pytest.mark.usefixtures("short_escape_guard")  # the escape is not the point
async def test_sync_survives_a_lost_first_answer(fake: FakeModem) -> None:
    fake.drop_next_response()
    async with await Modem.open(fake.port, sync_timeout=0.2) as modem:
        assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)


async def test_link_lost_fails_the_waiting_command(fake: FakeModem, modem: Modem) -> None:
    lost: list[str] = []
    modem.on_link_lost(lost.append)
    fake.drop_next_response()
    task = asyncio.create_task(modem.command("AT+CGMI", timeout=10))
    await fake.wait_for_command("AT+CGMI", timeout=5)
    await fake.stop()
    with pytest.raises(LinkLost):
        await asyncio.wait_for(task, 10)
    assert lost
    with pytest.raises(LinkLost):
        await modem.command("AT")


def test_device_port_reads_with_one_system_call_and_the_same_outcomes_as_pyserial() -> None:
    import os

    import serial

    from atbridge.transport import _direct_read_serial_class

    master, slave = os.openpty()
    port = _direct_read_serial_class()(os.ttyname(slave), baudrate=115200, timeout=0)
    try:
        assert port.read(1024) == b""  # nothing waiting: nothing, no error
        os.write(master, b"\r\nOK\r\n")
        assert port.read(1024) == b"\r\nOK\r\n"
        port.timeout = 0.5  # any other timeout: pyserial's own read
        os.write(master, b"AB")
        assert port.read(2) == b"AB"
        port.timeout = 0
        os.close(master)  # the other end is gone
        with pytest.raises(serial.SerialException, match=r"no data|read failed"):
            port.read(1024)
    finally:
        port.close()
        os.close(slave)


async def test_open_missing_port_says_what_to_check() -> None:
    # PortNotFound (a ConfigurationError): the lifecycle can tell it from a bad setting.
    with pytest.raises(PortNotFound) as caught:
        await Modem.open("/dev/does-not-exist")
    assert "cannot open /dev/does-not-exist" in str(caught.value)
    assert "check the device path" in str(caught.value)


@pytest.mark.parametrize("scheme", ["rfc2217", "socket"])
async def test_rfc2217_port_that_does_not_answer_says_what_to_check(scheme: str) -> None:
    port = free_port()  # nothing listens there: refused, like a ser2net that is not up
    with pytest.raises(PortNotFound) as caught:
        await Modem.open(f"{scheme}://127.0.0.1:{port}?timeout=1")
    assert f"cannot open {scheme}://127.0.0.1:{port}" in str(caught.value)


# -- socket:// through a real ser2net ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def ser2net(device: str, workdir: Path, *, rfc2217: bool = False) -> Iterator[int]:
    port = free_port()
    accepter = "telnet(rfc2217),tcp" if rfc2217 else "tcp"
    config = (
        "connection: &atbridge\n"
        f"  accepter: {accepter},127.0.0.1,{port}\n"
        f"  connector: serialdev,{device},115200n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
    )
    proc = subprocess.Popen(
        # ser2net replaces its pid file: keep it in the test's own folder.
        ["ser2net", "-n", "-u", "-Y", config.replace("\n", "#"), "-P", str(workdir / "pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.usefixtures("short_escape_guard")  # a first AT lost while ser2net opens
async def test_rfc2217_url_through_ser2net(fake: FakeModem, tmp_path: Path) -> None:
    with ser2net(fake.port, tmp_path, rfc2217=True) as port:
        modem = await connect_when_listening(f"rfc2217://127.0.0.1:{port}?ign_set_control")
        try:
            assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
            urcs = collect(modem, "+CEREG:")
            fake.urc_during_next_response("+CEREG: 2")
            assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]
            assert [u.text for u in urcs] == ["+CEREG: 2"]
        finally:
            await modem.close()


async def test_rfc2217_link_loss_fails_the_waiting_command(fake: FakeModem, tmp_path: Path) -> None:
    with ser2net(fake.port, tmp_path, rfc2217=True) as port:
        modem = await connect_when_listening(f"rfc2217://127.0.0.1:{port}?ign_set_control")
    # ser2net is gone: the reader thread sees the TCP connection end.
    try:
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def first(reason: str) -> None:
            if not lost.done():
                lost.set_result(reason)

        modem.on_link_lost(first)
        await asyncio.wait_for(lost, 10)
        with pytest.raises(LinkLost):
            await modem.command("AT")
    finally:
        await modem.close()


async def connect_when_listening(url: str, attempts: int = 100) -> Modem:
    """ser2net starts listening shortly after it starts: retry a refused connect, bounded."""
    for _ in range(attempts):
        try:
            return await Modem.open(url)
        except ConfigurationError as exc:
            refused = isinstance(exc.__cause__, ConnectionRefusedError) or (
                "Connection refused" in str(exc)  # pyserial's rfc2217 wraps the OSError
            )
            if not refused:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"ser2net never accepted on {url}")


@pytest.mark.usefixtures("short_escape_guard")  # a first AT lost while ser2net opens
async def test_socket_url_through_ser2net(fake: FakeModem, tmp_path: Path) -> None:
    with ser2net(fake.port, tmp_path) as port:
        modem = await connect_when_listening(f"socket://127.0.0.1:{port}")
        try:
            assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
            fake.urc_during_next_response("+CEREG: 2")
            urcs = collect(modem, "+CEREG:")
            assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]
            assert [u.text for u in urcs] == ["+CEREG: 2"]
        finally:
            await modem.close()


# -- the command line against the fake -------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "atbridge",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_info(fake: FakeModem) -> None:
    code, out, err = await run_cli("info", "--port", fake.port)
    assert code == 0, err
    assert "Nordic Semiconductor ASA" in out
    assert "not registered" in out
    assert "imei" in out


async def test_cli_at_prints_responses_and_errors(fake: FakeModem) -> None:
    code, out, _ = await run_cli("at", "--port", fake.port, "AT+CGMI", "AT+NOPE", "AT+CFUN?")
    assert code == 3
    assert out.splitlines() == ["Nordic Semiconductor ASA", "OK", "ERROR", "+CFUN: 0", "OK"]


async def test_cli_bad_port_is_a_usage_error() -> None:
    code, _out, err = await run_cli("info", "--port", "/dev/does-not-exist")
    assert code == 2
    assert "cannot open /dev/does-not-exist" in err and "what to try" in err


async def test_banners_while_the_modem_finishes_booting_do_not_fail_the_open(
    fake: FakeModem,
) -> None:
    # The modem restarts again while the setup runs: its RDY lands in the setup.
    def late_banner(fake: FakeModem, command: Command) -> None:
        fake.reboot("RDY")

    fake.on_command("ATE", late_banner, times=1)
    async with await Modem.open(fake.port, line_ending="\r\n") as modem:
        assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
    # The setup started over after the banner and finished.
    assert fake.commands == ["AT", "ATE0", "AT", "ATE0", "AT+CMEE=1", "AT+CGMI"]


async def test_a_late_sms_ready_during_the_setup_is_not_a_reboot(fake: FakeModem) -> None:
    # SIMCom prints RDY, then SMS Ready seconds later (a URC in the SIM800 manual): the
    # setup goes on, and nobody is told of a reboot.
    def late_line(fake: FakeModem, command: Command) -> HandlerResult | Awaitable[HandlerResult]:
        fake.send_urc("SMS Ready")
        return fake.run_default(command)

    fake.on_command("ATE", late_line, times=1)
    async with await Modem.open(fake.port, line_ending="\r\n") as modem:
        rebooted: list[str] = []
        modem.on_reboot(rebooted.append)
        assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)
        assert rebooted == []
    assert fake.commands == ["AT", "ATE0", "AT+CMEE=1", "AT+CGMI"]


async def test_exclusive_keeps_other_tasks_out_until_the_block_ends(
    fake: FakeModem, modem: Modem
) -> None:
    start = len(fake.commands)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with modem.exclusive():
            await modem.command("AT+CGMI")
            entered.set()
            await release.wait()
            await modem.command("AT+CGMM")

    holding = asyncio.create_task(holder())
    await entered.wait()
    other = asyncio.create_task(modem.command("AT+CGMR"))
    await asyncio.sleep(0)  # give the other task its chance to (wrongly) jump in
    release.set()
    await holding
    await other
    assert fake.commands[start:] == ["AT+CGMI", "AT+CGMM", "AT+CGMR"]


async def test_expect_urc_catches_a_result_that_arrives_with_the_ok(modem: Modem) -> None:
    await modem.command("AT+CEREG=1")
    with modem.expect_urc("+CEREG:") as searching:
        await modem.command("AT+CFUN=1")  # its +CEREG: 2 follows the OK at once
        urc = await searching.wait(timeout=5)
    assert urc.text == "+CEREG: 2"


async def test_waiting_for_a_urc_that_never_comes_is_bounded(modem: Modem) -> None:
    with pytest.raises(AtTimeout, match=r"waiting for \+XNOPE"):
        await modem.wait_for_urc("+XNOPE:", timeout=0.05)


def test_checked_command_lines_are_remembered_bounded_and_bad_ones_never() -> None:
    from atbridge import modem as modem_module

    modem_module._LINES.clear()
    for bad in ("AT+CGSN\r\nAT+CFUN=0", "ATE0\x1a", "CGSN", 'AT+COPS="é"'):
        with pytest.raises(ConfigurationError):
            modem_module._command_line(bad)
    assert not modem_module._LINES
    assert modem_module._command_line("AT+CEREG?") == (b"AT+CEREG?", "+CEREG:")
    assert modem_module._command_line("AT+CEREG?") == (b"AT+CEREG?", "+CEREG:")  # remembered
    for index in range(3 * modem_module._LINES_MAX):
        assert modem_module._command_line(f"AT+CGDCONT={index}")[0] == b"AT+CGDCONT=%d" % index
        assert len(modem_module._LINES) <= modem_module._LINES_MAX


# -- answers that break the promise, resynchronisation, settings that cannot work -----------


async def test_ok_without_the_information_line_is_its_own_error(
    fake: FakeModem, modem: Modem
) -> None:
    fake.on_command("AT+CFUN?", FakeResponse.ok(), times=1)
    response = await modem.command("AT+CFUN?")
    with pytest.raises(MissingInformation) as caught:
        response.value("+CFUN:")
    message = str(caught.value)
    assert "answered OK to 'AT+CFUN?' but without the '+CFUN:' line" in message
    assert "ERROR" not in message and "retry" in caught.value.hint
    assert not isinstance(caught.value, ModemError)  # the modem did not refuse anything


async def test_resync_with_a_modem_that_reads_cmee_back_without_its_line(
    fake: FakeModem, modem: Modem
) -> None:
    fake.on_command("AT+CMEE?", FakeResponse.ok())  # the read form answers only OK
    fake.delay_next_response(0.5)
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGMI", timeout=0.1)
    # CGMI's late answer and the probe's bare OK are both ignored; the next probe syncs.
    before = len(fake.commands)
    assert (await modem.command("AT+CGMM", timeout=1)).lines[0].startswith("nRF91")
    assert fake.commands[before:] == ["AT+CMEE?", "AT+CFUN?", "AT+CGMM"]
    assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]
    assert (await modem.command("AT+CGMI")).lines == ("Nordic Semiconductor ASA",)


async def test_a_failed_resync_names_itself_not_the_callers_command(
    fake: FakeModem, modem: Modem
) -> None:
    fake.drop_next_response(count=1 + len(RESYNC_PROBES))  # silent for a while
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGMI", timeout=0.1)
    with pytest.raises(ResyncFailed) as caught:
        await modem.command("AT+CGMM", timeout=0.1)
    message = str(caught.value)
    assert "did not come back in sync" in message and "'AT+CGMM' was not sent" in message
    assert "AT+CMEE?, AT+CFUN?, AT+CESQ got no answer of their own" in message
    assert caught.value.before == "AT+CGMM" and isinstance(caught.value, AtTimeout)
    assert "AT+CGMM" not in fake.commands
    # The modem answers again: the next command resynchronises and goes through.
    assert (await modem.command("AT+CGMM", timeout=1)).lines[0].startswith("nRF91")


@pytest.mark.parametrize("where", ["missing/transcript.log", "."])
async def test_a_transcript_that_cannot_be_written_is_a_configuration_error(
    fake: FakeModem, tmp_path: Path, where: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await Modem.open(fake.port, transcript=tmp_path / where)
    assert not isinstance(caught.value, PortNotFound)
    assert "cannot write the transcript" in str(caught.value)
    assert "directory that exists and is writable" in caught.value.hint


@pytest.mark.parametrize("baud", [99999999999, 0, -1, 115200.5, True])
async def test_an_impossible_baud_rate_is_a_configuration_error(
    fake: FakeModem, baud: object
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await Modem.open(fake.port, baudrate=baud)  # type: ignore[arg-type]
    assert not isinstance(caught.value, PortNotFound)
    assert f"baud rate {baud!r} is not a whole number" in str(caught.value)


async def test_a_late_probe_answer_is_not_taken_for_the_next_probes(
    fake: FakeModem, modem: Modem
) -> None:
    def late_then_own(fake: FakeModem, command: Command) -> FakeResponse | None:
        fake.write_raw(b"\r\n+CMEE: 1\r\n\r\nOK\r\n")  # the first probe's answer, late
        own = fake.run_default(command)
        assert own is None or isinstance(own, FakeResponse)
        return own

    fake.on_command("AT+CFUN?", late_then_own, times=1)
    fake.drop_next_response(count=2)  # the command and the first probe go unanswered
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGMI", timeout=0.1)
    urcs = collect(modem)
    assert (await modem.command("AT+CGMM", timeout=0.3)).lines[0].startswith("nRF91")
    assert (await modem.command("AT+CFUN?")).values("+CFUN:") == ["0"]
    assert "+CMEE: 1" in [urc.text for urc in urcs]  # the late probe answer went nowhere


async def test_rfc2217_without_ign_set_control_suggests_it(fake: FakeModem, tmp_path: Path) -> None:
    """ser2net's telnet(rfc2217) on a pty does not answer the modem-control negotiation."""
    with ser2net(fake.port, tmp_path, rfc2217=True) as port:
        url = f"rfc2217://127.0.0.1:{port}"
        with pytest.raises(ConfigurationError) as caught:
            await connect_when_listening(url)
    assert f"add ?ign_set_control to the URL ({url}?ign_set_control)" in caught.value.hint


async def test_a_locked_port_names_its_holder(fake: FakeModem) -> None:
    from atbridge.transport import port_holders

    async with await Modem.open(fake.port):
        holders = port_holders(fake.port)
        with pytest.raises(ConfigurationError) as caught:
            await Modem.open(fake.port)
    assert [holder.pid for holder in holders] == [os.getpid()]
    assert f"port {fake.port} is in use by PID {os.getpid()} (" in caught.value.message
    assert port_holders(fake.port) == ()  # released on close


async def test_a_urc_wait_ends_once_its_read_is_routed() -> None:
    """The URC resolves the wait after the read that brought it is routed (one loop turn,
    no relay turn in between), with the URC the predicate accepted."""
    modem = Modem()
    with modem.expect_urc("#XDATAMODE:", predicate=lambda u: u.text.endswith("0")) as done:
        waiting = asyncio.ensure_future(done.wait(5.0))
        await asyncio.sleep(0)  # the wait reaches its future
        modem._on_data(b"\r\n#XDATAMODE: 5\r\n\r\n#XDATAMODE: 0\r\n")
        urc = await waiting
    assert urc.text == "#XDATAMODE: 0"


async def test_a_banner_in_the_same_read_as_the_awaited_urc_wins() -> None:
    """A reboot seen in the read that also brought the URC ends the wait with its error:
    the URC is handed over only once the whole read is routed."""
    modem = Modem()

    def abort_on(fail: Callable[[BaseException], None]) -> Callable[[], None]:
        return modem.on_reboot(lambda banner: fail(ModemRebooted(banner)))

    with modem.expect_urc("#XDATAMODE:") as done:
        waiting = asyncio.ensure_future(done.wait(5.0, abort_on=abort_on))
        await asyncio.sleep(0)
        modem._on_data(b"\r\n#XDATAMODE: 0\r\n\r\nReady\r\n")
        with pytest.raises(ModemRebooted):
            await waiting
        assert done.urc is not None  # it did arrive, and can still be read


async def test_urcs_reach_their_subscribers_in_subscription_order_across_groups() -> None:
    """The subscriptions grouped by line head (issue 16) keep the one order of
    subscription: a catch-all, a bare prefix and a prefix of the URC's head are called
    in the order they subscribed; others are not; one that unsubscribed is not."""
    modem = Modem()
    calls: list[str] = []
    unsubscribe: dict[str, Callable[[], None]] = {}

    def noting(name: str) -> Callable[[Urc], None]:
        return lambda _urc: calls.append(name)

    for name, prefix in (
        ("all-1", None),
        ("cereg", "+CEREG:"),
        ("bare", "+CE"),
        ("cgev-detach", "+CGEV: NW DETACH"),
        ("cereg-5", "+CEREG: 5"),
        ("all-2", None),
        ("late-cereg", "+CEREG:"),
    ):
        unsubscribe[name] = modem.subscribe(prefix, noting(name))
    modem._publish(Urc("+CEREG: 5,1", b"+CEREG: 5,1"))
    assert calls == ["all-1", "cereg", "bare", "cereg-5", "all-2", "late-cereg"]
    calls.clear()
    modem._publish(Urc("+CGEV: NW DETACH", b"+CGEV: NW DETACH"))
    assert calls == ["all-1", "cgev-detach", "all-2"]
    calls.clear()
    unsubscribe["cereg"]()
    unsubscribe["cereg"]()  # a second call does nothing
    unsubscribe["all-1"]()
    modem._publish(Urc("+CEREG: 1", b"+CEREG: 1"))
    assert calls == ["bare", "all-2", "late-cereg"]
    calls.clear()
    for name in ("bare", "all-2"):
        unsubscribe[name]()
    modem._publish(Urc("+CEREG: 1", b"+CEREG: 1"))
    assert calls == ["late-cereg"]


async def test_a_subscriber_added_by_a_callback_meets_only_the_next_urc() -> None:
    modem = Modem()
    calls: list[str] = []

    def first(urc: Urc) -> None:
        calls.append(f"first {urc.text}")
        modem.subscribe("#XDATAMODE:", lambda u: calls.append(f"added {u.text}"))

    modem.subscribe("#XDATAMODE:", first)
    modem._publish(Urc("#XDATAMODE: 0", b"#XDATAMODE: 0"))
    assert calls == ["first #XDATAMODE: 0"]
    calls.clear()
    modem._publish(Urc("#XDATAMODE: 1", b"#XDATAMODE: 1"))
    assert calls == ["first #XDATAMODE: 1", "added #XDATAMODE: 1"]
