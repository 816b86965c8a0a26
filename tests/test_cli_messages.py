"""Messages that must not mislead, and how commands stop, through the real CLI (issue 14).

Each test runs ``python -m atbridge`` as a real process (the fixtures of
``test_commands_bridge``) against the fake modem on a pty (or a pty nobody answers on)
and a real mosquitto. A giving-up command names the last error and the hint that fits
it; Ctrl-C exits 130 wherever the command had not reached its goal; a second Ctrl-C
quits at once; ``run``'s live line ticks, and its piped lines carry timestamps.
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from atbridge.commands.session import give_up_advice
from atbridge.fsm import Transition
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401 - fixtures
    ROOT,
    WAIT,
    StartCli,
    atbridge,
    bridge_args,
    child_env,
    fake,
    received_until_marker,
    run_cli,
)

#: The close step waits for a long step for timeouts.close + 5 s: keep it short here.
FAST_CLOSE = "[bridge.timeouts]\nclose = 0.5\n"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture
def fast_close(tmp_path: Path) -> str:
    path = tmp_path / "fast-close.toml"
    path.write_text(FAST_CLOSE)
    return str(path)


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A pty whose other end is held open and never answers (a modem that is not there)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    try:
        yield path
    finally:
        os.close(master)


class Pty:
    """A terminal for a child: its output collected as it comes, input written to it."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.output = bytearray()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its end
            data = b""
        if not data:
            self._loop.remove_reader(self.master)
        self.output.extend(data)
        self._changed.set()

    def release_slave(self) -> None:
        """Once the child holds the slave end: the pty ends when the child exits."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    async def wait_for(self, pattern: bytes | re.Pattern[bytes]) -> None:
        def seen() -> bool:
            if isinstance(pattern, bytes):
                return pattern in self.output
            return pattern.search(self.output) is not None

        try:
            async with asyncio.timeout(WAIT):
                while not seen():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{pattern!r} never came: {bytes(self.output)!r}") from None

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        os.close(self.master)
        self.release_slave()


@pytest.fixture
async def pty() -> AsyncIterator[Pty]:
    terminal = Pty()
    try:
        yield terminal
    finally:
        terminal.close()


# -- giving up: the real last error and the hint that fits it -------------------------------


async def test_a_modem_that_never_answers_is_said_so(
    silent_port: str, atbridge: StartCli, fast_close: str
) -> None:
    cli = await run_cli(
        atbridge, "publish", "--port", silent_port, "--broker", "127.0.0.1:1",
        "--give-up-after", "2", "-t", "t", "-m", "x", "--config", fast_close,
    )  # fmt: skip
    assert cli.proc.returncode == 5, cli.stderr
    assert f"not online after 2 s: the modem never answered AT on {silent_port}" in cli.stderr
    assert "what to try: check --port" in cli.stderr
    assert "antenna" not in cli.stderr
    assert "closed by the user" not in cli.stderr
    assert "closing: giving up: not online after 2 s" in cli.stderr


async def test_a_broker_the_modem_cannot_reach_is_named_with_the_last_error(
    atbridge: StartCli, fast_close: str
) -> None:
    async with FakeModem(
        dialect="nrf91-slm", registration_delay=0.05, broker_unreachable=True
    ) as modem:
        # told to keep retrying an unreachable broker (publish stops at once by default:
        # test_a_broker_that_refuses_stops_a_one_shot_command_at_once), it gives up in time
        cli = await run_cli(
            atbridge, "publish", "--port", modem.port, "--broker", "127.0.0.1:1883",
            "--give-up-after", "3", "-t", "t", "-m", "x", "--config", fast_close,
            env=child_env(ATBRIDGE_RETRY_UNREACHABLE_BROKER="true"),
        )  # fmt: skip
    assert cli.proc.returncode == 5, cli.stderr
    last = [line for line in cli.err if line.startswith("atbridge: ")][-1]
    assert last.startswith("atbridge: not online after 3 s; the last try failed while opening")
    assert "could not connect to 127.0.0.1:1883" in last
    hint = cli.err[-1]
    assert hint.startswith("  what to try: the modem is on the network but could not open")
    assert "127.0.0.1:1883" in hint and "--broker" in hint
    assert "antenna" not in cli.stderr and "closed by the user" not in cli.stderr


def test_the_hint_fits_where_the_last_try_failed() -> None:
    def advice(history: list[Transition], **kw: object) -> tuple[str, str]:
        args: dict[str, object] = {
            "limit": 9.0, "state": "backing_off", "history": history, "registration": None,
            "answered": True, "port": "/dev/ttyACM0", "dialect": "auto", "broker": "b:1883",
        }  # fmt: skip
        args.update(kw)
        return give_up_advice(**args)  # type: ignore[arg-type]

    def lost(old: str, cause: str) -> Transition:
        return Transition(old, "backing_off", cause, 0.0)  # type: ignore[arg-type]

    message, hint = advice([lost("mqtt_connecting", "no CONNACK within 10 s")])
    assert message == (
        "not online after 9 s; the last try failed while mqtt connecting: no CONNACK within 10 s"
    )
    assert "MQTT session did not open" in hint and "b:1883" in hint
    _, hint = advice([lost("configuring", "the modem answered ERROR to 'AT+CASTATE?'")],
                     dialect="sim7080")  # fmt: skip
    assert "--dialect sim7080" in hint and "auto" in hint
    _, hint = advice([], state="attaching")
    assert "antenna" in hint  # only where it fits: the network does not register
    _, hint = advice([lost("configuring", "+CME ERROR: 10 (SIM not inserted)")])
    assert "SIM" in hint and "antenna" not in hint


# -- exit codes and signals ------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_run_interrupted_exits_130_and_says_what_stopped_it(
    signum: signal.Signals, fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    cli = await atbridge("run", *bridge_args(fake, broker))
    await cli.wait_for("online: CONNACK accepted", stream="stdout")
    cli.proc.send_signal(signum)
    assert await cli.finish(close_stdin=False) == 130, cli.stderr
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"atbridge: {name}: stopping; nothing was waiting ({name} again quits" in cli.stderr
    assert f"closing: stopped by {name}" in cli.stdout
    assert "closed by the user" not in cli.stdout


async def test_ctrl_c_during_a_send_says_what_it_abandons_and_a_second_quits_at_once(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = "msg/abandon"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await atbridge("publish", *bridge_args(fake, broker), "-t", topic, "-q", "1", "-l")
    await cli.send(b"first\n")
    await cli.wait_for("sent 1: 5 bytes", stream="stdout")
    hung: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fake.on_command("AT#XSEND", lambda _fake, _cmd: hung)  # the next send never ends
    before = len(fake.commands)
    await cli.send(b"second\n")
    await fake.wait_for_command("AT#XSEND", timeout=WAIT, start=before)
    cli.proc.send_signal(signal.SIGINT)
    await cli.wait_for("atbridge: Ctrl-C: stopping; abandoning 1 QoS 1 message not acknowledged")
    await cli.wait_for("atbridge: interrupted after 1 messages")
    cli.proc.send_signal(signal.SIGINT)  # the clean shutdown waits for the hung send
    assert await cli.finish(close_stdin=False) == 130, cli.stderr
    assert "atbridge: second Ctrl-C: quitting at once, without the clean shutdown" in cli.stderr
    assert "Traceback" not in cli.stderr
    hung.cancel()
    assert await received_until_marker(paho, topic) == [b"first"]


@pytest.mark.parametrize("command", [["at", "AT+CGMI"], ["info"]])
async def test_ctrl_c_while_a_modem_command_waits_exits_130(
    command: list[str], atbridge: StartCli
) -> None:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    seen = bytearray()
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            seen.extend(os.read(master, 4096))
        arrived.set()

    loop.add_reader(master, readable)
    try:
        cli = await atbridge(command[0], "--port", os.ttyname(slave), "--timeout", "60",
                             *command[1:])  # fmt: skip
        async with asyncio.timeout(WAIT):  # the first AT reached the (silent) modem
            while b"AT" not in seen:
                arrived.clear()
                await arrived.wait()
        cli.proc.send_signal(signal.SIGINT)
        assert await cli.finish() == 130, cli.stderr
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    assert "atbridge: interrupted" in cli.stderr
    assert "Traceback" not in cli.stderr


# -- run: the live line ticks, piped lines carry timestamps ----------------------------------


async def test_runs_live_line_ticks_while_waiting(
    broker: Mosquitto, atbridge: StartCli, pty: Pty
) -> None:
    async with FakeModem(dialect="nrf91-slm", registration_delay=3600) as modem:
        cli = await atbridge(
            "run", *bridge_args(modem, broker), env=child_env(COLUMNS="300"), stdout=pty.slave
        )
        pty.release_slave()
        # the state's own time counts up on the one line, redrawn in place
        await pty.wait_for(re.compile(rb"\r\x1b\[K\[ *[0-9.]+s\] attaching \(1 s\): "))
        await pty.wait_for(re.compile(rb"\r\x1b\[K\[ *[0-9.]+s\] attaching \(2 s\): "))
        cli.proc.send_signal(signal.SIGINT)
        assert await cli.finish() == 130, cli.stderr
    assert pty.output.count(b"\n") <= 2


async def test_run_reading_typed_lines_prints_whole_lines_not_a_live_line(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli, pty: Pty
) -> None:
    topic = "msg/typed"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "atbridge", "run", *bridge_args(fake, broker), "--topic", topic,
        "--qos", "1",
        stdin=pty.slave, stdout=pty.slave, stderr=asyncio.subprocess.PIPE,
        env=child_env(COLUMNS="300"), cwd=ROOT,
    )  # fmt: skip
    try:
        pty.release_slave()
        await pty.wait_for(b"online: CONNACK accepted")
        os.write(pty.master, b"typed by hand\n")
        await pty.wait_for(b"sent       1: 13 bytes to msg/typed")
        os.write(pty.master, b"\x04")  # Ctrl-D: the end of the lines, the goal reached
        async with asyncio.timeout(WAIT):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert b"\x1b[K" not in pty.output  # nothing rewrites the line being typed
    assert await received_until_marker(paho, topic) == [b"typed by hand"]


async def test_run_piped_lines_carry_timestamps(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    cli = await run_cli(
        atbridge, "run", *bridge_args(fake, broker), "--topic", "msg/stamped", stdin=b"x\n"
    )
    assert cli.proc.returncode == 0, cli.stderr
    assert cli.out and all(STAMP.match(line) for line in cli.out), cli.stdout
    bare = [STAMP.sub("", line) for line in cli.out]
    assert "closing: done" in "\n".join(bare)
    assert any(line.startswith("sent       1: 1 bytes to msg/stamped") for line in bare)


async def test_a_broker_that_refuses_stops_a_one_shot_command_at_once(
    atbridge: StartCli,
) -> None:
    """publish: a refused TCP connection before ever being online is exit 3 at once, saying
    so (not a retry until --give-up-after); run keeps retrying it (issue 14)."""
    from tests.brokers import free_port

    closed = free_port()
    async with FakeModem(dialect="sim7080", registration_delay=0.05) as fake:
        cli = await run_cli(
            atbridge, "publish", "--port", fake.port, "-h", "127.0.0.1", "-p", str(closed),
            "-t", "t", "-m", "x", "--give-up-after", "60",
        )  # fmt: skip
        assert cli.proc.returncode == 3, cli.stderr
        assert "refused" in cli.stderr
        assert cli.stderr.count("opening_socket:") == 1  # one attempt
        opens = sum(c.startswith("AT+CAOPEN=") for c in fake.commands)
        assert opens == 1
        cli = await run_cli(
            atbridge, "run", "--port", fake.port, "--broker", f"127.0.0.1:{closed}",
            "--give-up-after", "2",
        )  # fmt: skip
        assert cli.proc.returncode == 3, cli.stdout + cli.stderr  # gave up with that failure
        assert sum(c.startswith("AT+CAOPEN=") for c in fake.commands) > opens + 1  # retried


async def test_a_host_the_modem_cannot_resolve_stops_a_one_shot_command_at_once(
    atbridge: StartCli,
) -> None:
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05, dns_fail=True) as fake:
        cli = await run_cli(
            atbridge, "publish", "--port", fake.port, "-h", "broker.example", "-t", "t",
            "-m", "x", "--give-up-after", "60",
        )  # fmt: skip
        assert cli.proc.returncode == 3, cli.stderr
        assert "broker.example" in cli.stderr
