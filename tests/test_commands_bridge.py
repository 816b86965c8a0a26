"""``atbridge publish``, ``subscribe``, ``run`` and ``fsm``, run as real processes.

Each test runs ``python -m atbridge ...`` as an asyncio subprocess against the fake
modem on a pty (served by this test's event loop, so nothing here blocks the loop:
paho calls go to a thread) and a real mosquitto. Every wait is bounded and every
process is killed at the end of its test if it is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from atbridge.fsm import STATES, TRANSITIONS
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Wr0ng-s3cret"
WAIT = 30.0  # the bound on any one wait; the fake and the local broker take well under 1 s
LIFECYCLE = ["probing", "configuring", "attaching", "opening_socket", "mqtt_connecting", "online"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no ATBRIDGE_* settings of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATBRIDGE_")}
    env.update(extra)
    return env


class Cli:
    """One ``python -m atbridge`` process; its stdout and stderr read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = asyncio.Condition()
        self._readers = [
            asyncio.ensure_future(self._read(proc.stdout, self.out)),
            asyncio.ensure_future(self._read(proc.stderr, self.err)),
        ]

    async def _read(self, stream: asyncio.StreamReader | None, lines: list[str]) -> None:
        if stream is None:
            return
        async for raw in stream:
            async with self._changed:
                lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    async def wait_for(self, text: str, *, stream: str = "stderr") -> None:
        """Until a line of ``stream`` contains ``text`` (bounded)."""
        lines = self.out if stream == "stdout" else self.err

        def seen() -> bool:
            return any(text in line for line in lines)

        try:
            async with asyncio.timeout(WAIT), self._changed:
                await self._changed.wait_for(seen)
        except TimeoutError:
            raise AssertionError(
                f"{text!r} never appeared on {stream}:\n{self.stdout}\n--\n{self.stderr}"
            ) from None

    async def send(self, data: bytes, *, close: bool = False) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()
        if close:
            self.proc.stdin.close()

    async def finish(self, *, close_stdin: bool = True) -> int:
        """Close stdin (unless told not to), wait for the exit and all output (bounded)."""
        if close_stdin and self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(WAIT):
                code = await self.proc.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            raise AssertionError(
                f"atbridge did not exit:\n{self.stdout}\n--\n{self.stderr}"
            ) from None
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT):
                    await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


StartCli = Callable[..., Awaitable[Cli]]


@pytest.fixture
async def atbridge() -> AsyncIterator[StartCli]:
    """``cli = await atbridge("publish", ..., env=..., stdout=...)``; killed at the end."""
    started: list[Cli] = []

    async def start(
        *args: str, env: dict[str, str] | None = None, stdout: int | None = None
    ) -> Cli:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "atbridge",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=child_env() if env is None else env,
        )
        cli = Cli(proc)
        started.append(cli)
        return cli

    yield start
    for cli in started:
        await cli.kill()


async def run_cli(atbridge: StartCli, *args: str, stdin: bytes = b"", **kw: object) -> Cli:
    cli = await atbridge(*args, **kw)
    if stdin:
        await cli.send(stdin)
    await cli.finish()
    return cli


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        yield fake


def bridge_args(fake: FakeModem, broker: Mosquitto | int) -> list[str]:
    port = broker if isinstance(broker, int) else broker.port
    return ["--port", fake.port, "--broker", f"127.0.0.1:{port}", "--give-up-after", "30"]


async def received_until_marker(paho: PahoPeer, topic: str) -> list[bytes]:
    """Every payload paho got on ``topic`` before a marker it published itself.

    The CLI's messages were handed to the broker before it exited (QoS 1: acknowledged),
    so they are ahead of the marker: what is missing then never comes.
    """
    marker = b"--marker--"
    await asyncio.to_thread(paho.publish, topic, marker, 1)
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        got = [p for t, p, _q in paho.messages if t == topic]
        if marker in got:
            return got[: got.index(marker)]
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"paho never got its marker: {got}"
        await asyncio.to_thread(paho.wait_for, len(paho.messages) + 1, min(left, WAIT))


# -- publish -------------------------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1])
async def test_publish_message_count_times_at_qos(
    qos: int, fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = f"cmd/publish/q{qos}"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge,
        "publish", *bridge_args(fake, broker),
        "--topic", topic, "--message", "21.5 °C", "--qos", str(qos), "--count", "3",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, topic) == ["21.5 °C".encode()] * 3
    how = "acknowledged" if qos else "accepted by the modem"
    assert cli.out == [f"sent {n}: 8 bytes to {topic} (QoS {qos}, {how})" for n in (1, 2, 3)]
    # Progress on stderr: every transition, in order.
    for state in [*LIFECYCLE, "closing", "disconnected"]:
        assert f"] {state}: " in cli.stderr


async def test_publish_lines_from_stdin_with_count_and_json(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = "cmd/publish/lines"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge,
        "publish", *bridge_args(fake, broker), "--topic", topic, "--qos", "1", "--count", "3",
        "--retain", "--json",
        stdin=b"one\r\n\ntwo\nthree\nfour\n",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, topic) == [b"one", b"two", b"three"]
    results = [json.loads(line) for line in cli.out]
    assert results == [
        {"index": n, "topic": topic, "bytes": len(text), "qos": 1, "retain": True, "ok": True,
         "acknowledged": True}
        for n, text in enumerate(["one", "two", "three"], 1)
    ]  # fmt: skip
    await asyncio.to_thread(paho.publish, topic, b"", 1)  # clear the retained message


async def test_publish_binary_message_file(
    fake: FakeModem,
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    topic = "cmd/publish/file"
    payload = bytes(range(256)) * 3
    (tmp_path / "payload.bin").write_bytes(payload)
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge,
        "publish", *bridge_args(fake, broker), "--topic", topic, "--qos", "1",
        "--message-file", str(tmp_path / "payload.bin"),
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, topic) == [payload]


async def test_publish_from_a_config_file(
    fake: FakeModem,
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,
    tmp_path: Path,
) -> None:
    config = tmp_path / "atbridge.toml"
    config.write_text(
        f'[bridge]\nport = "{fake.port}"\ndialect = "nrf91-slm"\ngive_up_after = 30\n'
        "[bridge.timeouts]\nattach = 20\n"
        f'[mqtt]\nclient_id = "from-config"\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    await asyncio.to_thread(paho.subscribe, "cmd/config", 1)
    cli = await run_cli(
        atbridge, "publish", "--config", str(config), "--topic", "cmd/config", "-m", "x", "--quiet"
    )
    assert cli.proc.returncode == 0, cli.stderr
    assert cli.stderr == ""  # --quiet
    assert await received_until_marker(paho, "cmd/config") == [b"x"]


async def test_progress_shows_what_the_modem_reports_while_searching(
    broker: Mosquitto, atbridge: StartCli
) -> None:
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.5) as fake:
        cli = await run_cli(
            atbridge, "publish", *bridge_args(fake, broker), "--topic", "cmd/progress", "-m", "x"
        )
    assert cli.proc.returncode == 0, cli.stderr
    assert "attaching: not registered, searching (stat 2)" in cli.stderr
    assert "attaching: registered, home network (stat 1)" in cli.stderr
    assert "online: CONNACK accepted" in cli.stderr


async def test_registration_that_never_completes_exits_5_with_the_last_status(
    broker: Mosquitto, atbridge: StartCli, tmp_path: Path
) -> None:
    # Closing waits for the attach step for timeouts.close + 5 s (Lifecycle.close):
    # a short close timeout keeps the test short.
    (tmp_path / "fast-close.toml").write_text("[bridge.timeouts]\nclose = 0.5\n")
    async with FakeModem(dialect="nrf91-slm", registration_delay=3600) as fake:
        cli = await run_cli(
            atbridge,
            "publish", "--port", fake.port, "--broker", f"127.0.0.1:{broker.port}",
            "--give-up-after", "1", "--topic", "t", "-m", "x",
            "--config", str(tmp_path / "fast-close.toml"),
        )  # fmt: skip
    assert cli.proc.returncode == 5, cli.stderr
    assert (
        "atbridge: not online after 1 s (still attaching; "
        "the modem reports not registered, searching (stat 2))"
    ) in cli.stderr
    assert "what to try:" in cli.stderr


@pytest.mark.parametrize("how", ["env", "file", "option"])
async def test_wrong_password_exits_4_with_the_reason_and_never_shows_the_secret(
    how: str, fake: FakeModem, atbridge: StartCli, tmp_path: Path
) -> None:
    transcript = tmp_path / "transcript.log"
    secret_args: list[str] = []
    env = child_env()
    if how == "env":
        env["ATBRIDGE_MQTT_PASSWORD"] = SECRET
    elif how == "file":
        (tmp_path / "pw").write_text(SECRET + "\n")
        secret_args = ["--password-file", str(tmp_path / "pw")]
    else:
        secret_args = ["--password", SECRET]
    with Mosquitto(users={"device": "right"}) as broker:
        cli = await run_cli(
            atbridge,
            "publish", *bridge_args(fake, broker), "--username", "device", *secret_args,
            "--topic", "t", "-m", "x", "--qos", "1", "--transcript", str(transcript), "--json",
            env=env,
        )  # fmt: skip
    assert cli.proc.returncode == 4, cli.stderr
    assert "atbridge: the broker refused the connection: " in cli.stderr
    assert "not authori" in cli.stderr or "user name or password" in cli.stderr
    assert cli.stderr.count("] mqtt_connecting:") == 1  # no reconnect storm
    (error,) = [json.loads(line) for line in cli.out]  # nothing published: only the error
    assert error["exit_code"] == 4 and error["kind"] == "ConnectRefused"
    for text in (cli.stdout, cli.stderr, transcript.read_text(errors="replace")):
        assert SECRET not in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["publish", "--port", "/dev/null", "--broker", "h:1"], "--topic"),
        (["publish", "--port", "/dev/null", "--broker", "h:1", "--topic", "t", "--qos", "2"],
         "--qos"),
        (["publish", "--port", "/dev/null", "--broker", "h:99999", "--topic", "t", "-m", "x"],
         "1..65535"),
        (["publish", "--port", "/dev/null", "--broker", "h", "--topic", "a/#", "-m", "x"],
         "wildcards"),
        (["publish", "--port", "/dev/null", "--topic", "t", "-m", "x"], "no broker given"),
        (["publish", "--port", "/dev/null", "--credentials", "/nonexistent.toml", "--topic",
          "t", "-m", "x"], "/nonexistent.toml"),
        (["publish", "--port", "/dev/null", "--broker", "h", "--credentials", "c.toml",
          "--topic", "t"], "not allowed with"),
        (["subscribe", "--port", "/dev/null", "--broker", "h", "--topic", "a/#/b"], "'#'"),
        (["subscribe", "--port", "/dev/null", "--broker", "h", "--topic", "t", "--timeout",
          "0"], "--timeout"),
        (["run", "--port", "/dev/null", "--broker", "h", "--give-up-after", "-1"],
         "--give-up-after"),
        (["run", "--broker", "h"], "no modem port"),
        (["publish", "--port", "/dev/null", "--broker", "h", "--topic", "t", "-m", "x",
          "--transcript", "/nonexistent/dir/x.log"],
         "cannot write the transcript /nonexistent/dir/x.log (from --transcript): "
         "the directory /nonexistent/dir does not exist"),
        (["run", "--port", "/dev/null", "--broker", "h", "--baud", "99999999999"],
         "baudrate=99999999999 is not a baud rate"),
        (["at", "--port", "/dev/null", "--baud", "99999999999", "AT"], "(baudrate from --baud)"),
        (["info", "--port", "/dev/null", "--transcript", "/nonexistent/dir/x.log"],
         "the directory /nonexistent/dir does not exist"),
        (["run", "--port", "/dev/null", "--broker", "h", "--will-message", "bye"],
         "without a Will topic"),
        (["run", "--port", "/dev/null", "--broker", "h", "--session-expiry", "60"],
         "session_expiry needs MQTT 5.0"),
        (["run", "--port", "/dev/null", "--broker", "h", "--mqtt-version", "4"],
         "--mqtt-version"),
        (["run", "--port", "/dev/null", "--broker", "h", "--will-topic", "a/+"], "wildcards"),
    ],
)  # fmt: skip
async def test_bad_usage_exits_2(args: list[str], expected: str, atbridge: StartCli) -> None:
    cli = await run_cli(atbridge, *args)
    assert cli.proc.returncode == 2, cli.stderr
    assert expected in cli.stderr
    assert "Traceback" not in cli.stderr
    assert "probing" not in cli.stderr  # refused at once, before any attempt


@pytest.mark.parametrize(
    ("env", "text", "expected"),
    [
        ({"ATBRIDGE_BAUDRATE": "fast"}, "",
         "[bridge] baudrate='fast' in $ATBRIDGE_BAUDRATE is not a whole number"),
        ({}, "[bridge]\nbaudrate = 99999999999\n", "(baudrate from CONFIG)"),
        ({}, "[bridge]\nbaud = 9600\n", "known keys of [bridge]: port, dialect, apn, baudrate"),
        ({"ATBRIDGE_TRANSCRIPT": "/nonexistent/dir/x.log"}, "",
         "cannot write the transcript /nonexistent/dir/x.log (from $ATBRIDGE_TRANSCRIPT)"),
        ({"ATBRIDGE_MQTT_VERSION": "5.0"}, "",
         "mqtt_version='5.0' in $ATBRIDGE_MQTT_VERSION is not one of '3.1.1', '5'"),
    ],
)  # fmt: skip
async def test_a_bad_setting_from_the_environment_or_the_file_names_its_source(
    env: dict[str, str], text: str, expected: str, atbridge: StartCli, tmp_path: Path
) -> None:
    config = tmp_path / "atbridge.toml"
    config.write_text(text)
    cli = await run_cli(
        atbridge, "run", "--port", "/dev/null", "--broker", "h", "--config", str(config),
        env=child_env(**env),
    )  # fmt: skip
    assert cli.proc.returncode == 2, cli.stderr
    assert expected.replace("CONFIG", str(config)) in cli.stderr
    assert "Traceback" not in cli.stderr


# -- subscribe -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
async def test_subscribe_prints_text_and_hex_messages(
    as_json: bool,
    fake: FakeModem,
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,
) -> None:
    cli = await atbridge(
        "subscribe", *bridge_args(fake, broker), "--topic", "cmd/sub/#", "--count", "3",
        *(["--json"] if as_json else ["-v"]),
    )  # fmt: skip
    await cli.wait_for("subscribed to cmd/sub/# (QoS 1)")
    for topic, payload in [
        ("cmd/sub/text", "héllo wörld".encode()),
        ("cmd/sub/bin", bytes([0, 1, 0xFE, 0xFF])),
        ("cmd/sub/lines", b"a\tb\nc"),
    ]:
        await asyncio.to_thread(paho.publish, topic, payload, 1)
    assert await cli.finish() == 0, cli.stderr
    if not as_json:
        assert cli.out == [  # -v: "<topic> <payload>", as mosquitto_sub -v prints them
            "cmd/sub/text héllo wörld",
            "cmd/sub/bin hex:0001feff",
            "cmd/sub/lines a\\tb\\nc",
        ]
        return
    assert [json.loads(line) for line in cli.out] == [
        {"topic": "cmd/sub/text", "payload": "héllo wörld", "encoding": "utf-8", "bytes": 13,
         "qos": 1, "retain": False},
        {"topic": "cmd/sub/bin", "payload": "0001feff", "encoding": "hex", "bytes": 4,
         "qos": 1, "retain": False},
        {"topic": "cmd/sub/lines", "payload": "a\tb\nc", "encoding": "utf-8", "bytes": 5,
         "qos": 1, "retain": False},
    ]  # fmt: skip


async def test_subscribe_timeout_exits_5_when_count_is_not_reached(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    cli = await run_cli(
        atbridge,
        "subscribe", *bridge_args(fake, broker), "--topic", "cmd/silent", "--count", "2",
        "--timeout", "0.3",
    )  # fmt: skip
    assert cli.proc.returncode == 5, cli.stderr
    assert "received 0 of 2 messages on cmd/silent within 0.3 s" in cli.stderr
    assert "] disconnected: closed" in cli.stderr


async def test_subscribe_timeout_with_nothing_received_exits_5(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    """Like mosquitto_sub -W: a timeout with nothing received is a failure (exit 5 here)."""
    cli = await run_cli(
        atbridge, "subscribe", *bridge_args(fake, broker), "-t", "cmd/silent", "-W", "0.3",
    )  # fmt: skip
    assert cli.proc.returncode == 5, cli.stderr
    assert "received 0 messages on cmd/silent within 0.3 s" in cli.stderr
    assert cli.out == []


# -- run -----------------------------------------------------------------------------------


async def test_run_piped_shows_state_lines_prints_messages_publishes_stdin_and_ends_on_eof(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    await asyncio.to_thread(paho.subscribe, "cmd/run/up", 1)
    cli = await atbridge(
        "run", *bridge_args(fake, broker), "--topic", "cmd/run/up", "--qos", "1",
        "--subscribe", "cmd/run/down", "--subscribe", "cmd/run/other",
    )  # fmt: skip
    await cli.wait_for("subscribed cmd/run/down (QoS 1)", stream="stdout")
    await asyncio.to_thread(paho.publish, "cmd/run/down", b"to the device", 1)
    await cli.wait_for("message    cmd/run/down  to the device", stream="stdout")
    await cli.send(b"first\nsecond\n", close=True)
    assert await cli.finish() == 0, cli.stderr
    assert await received_until_marker(paho, "cmd/run/up") == [b"first", b"second"]
    lines = [line.split(" ", 1)[1] for line in cli.out]  # after the timestamp
    states = [line.split()[1].rstrip(":") for line in lines if line.startswith("state ")]
    assert [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]] == [
        *LIFECYCLE,
        "closing",
        "disconnected",
    ]
    assert "sent       2: 6 bytes to cmd/run/up (QoS 1, acknowledged)" in lines
    assert "\r" not in cli.stdout


async def test_run_json_events(fake: FakeModem, broker: Mosquitto, atbridge: StartCli) -> None:
    cli = await run_cli(
        atbridge, "run", *bridge_args(fake, broker), "--topic", "cmd/run/json", "--json",
        stdin=b"x\n",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    events = [json.loads(line) for line in cli.out]
    kinds = {event["event"] for event in events}
    assert kinds <= {"state", "registration", "waiting", "sent"}
    states = [e for e in events if e["event"] == "state"]
    assert [e["new"] for e in states] == [*LIFECYCLE, "closing", "disconnected"]
    assert set(states[0]) == {"event", "old", "new", "cause", "time"}
    sent = [e for e in events if e["event"] == "sent"]
    assert sent == [
        {"event": "sent", "index": 1, "topic": "cmd/run/json", "bytes": 1, "qos": 0,
         "retain": False, "ok": True}
    ]  # fmt: skip


async def test_run_on_a_terminal_rewrites_one_status_line_and_stops_on_ctrl_c(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    output = bytearray()
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            data = b""
        if not data:
            loop.remove_reader(master)
        output.extend(data)
        changed.set()

    loop.add_reader(master, readable)
    try:
        cli = await atbridge(
            "run", *bridge_args(fake, broker), env=child_env(COLUMNS="300"), stdout=slave
        )
        os.close(slave)
        slave = -1
        async with asyncio.timeout(WAIT):
            while b"online: CONNACK accepted" not in output:
                changed.clear()
                await changed.wait()
        cli.proc.send_signal(signal.SIGINT)
        assert await cli.finish() == 130, cli.stderr  # interrupted: run has no goal to reach
        async with asyncio.timeout(WAIT):  # the rest of the output, up to the pty's EOF
            while b"disconnected: closed" not in output:
                changed.clear()
                await changed.wait()
    finally:
        loop.remove_reader(master)
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = output.decode(errors="replace")
    assert "\r\x1b[K" in text
    assert "state " not in text  # no plain state lines on a terminal
    assert text.count("\n") <= 2  # one live line, ended once
    assert "online: CONNACK accepted" in text


async def test_run_stops_for_good_on_a_refusal_retrying_cannot_fix(
    fake: FakeModem, atbridge: StartCli
) -> None:
    with Mosquitto(users={"device": "right"}) as broker:
        cli = await run_cli(
            atbridge, "run", *bridge_args(fake, broker), "--username", "device",
            env=child_env(ATBRIDGE_MQTT_PASSWORD=SECRET),
        )  # fmt: skip
    assert cli.proc.returncode == 4, cli.stderr
    assert "state      failed: " in cli.stdout
    assert SECRET not in cli.stdout + cli.stderr


# -- fsm -----------------------------------------------------------------------------------


async def test_fsm_mermaid_has_every_transition(atbridge: StartCli) -> None:
    cli = await run_cli(atbridge, "fsm", "--mermaid")
    assert cli.proc.returncode == 0, cli.stderr
    assert "stateDiagram-v2" in cli.stdout
    for transition in TRANSITIONS:
        assert f"--> {transition['dest']}: {transition['trigger']}" in cli.stdout


async def test_fsm_lists_states_and_transitions(atbridge: StartCli) -> None:
    cli = await run_cli(atbridge, "fsm")
    assert cli.proc.returncode == 0, cli.stderr
    listed = cli.stdout.split("transitions")[0]
    for state in STATES:
        assert f"\n  {state}\n" in listed + "\n"
    for transition in TRANSITIONS:
        condition = transition.get("conditions")
        when = f"  [{str(condition).replace('_', ' ')}]" if condition else ""
        assert any(
            line.strip().startswith(f"{transition['trigger']}:")
            and line.endswith(f"-> {transition['dest']}{when}")
            for line in cli.out
        )
    # The retry edges are told apart by the recovery each one resumes with.
    retries = [line for line in cli.out if line.strip().startswith("retry:")]
    assert len(set(retries)) == len(retries) > 1


# -- stopping: signals, bad settings, bugs --------------------------------------------------


@pytest.mark.parametrize("lines", [0, 1])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("command", ["run", "publish"])
async def test_a_signal_while_reading_stdin_ends_cleanly(
    command: str,
    signum: signal.Signals,
    lines: int,
    fake: FakeModem,
    broker: Mosquitto,
    paho: PahoPeer,
    atbridge: StartCli,
) -> None:
    topic = f"cmd/signal/{command}"
    client_id = f"cli-signal-{command}-{signum.name}-{lines}"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await atbridge(
        command, *bridge_args(fake, broker), "--client-id", client_id, "--topic", topic,
        "--qos", "1",
    )  # fmt: skip
    stream = "stdout" if command == "run" else "stderr"
    if command == "publish" and not lines:
        # publish reads its first line before going online: nothing to send spends nothing
        await cli.wait_for("one message per line of stdin")
        cli.proc.send_signal(signum)
        assert await cli.finish(close_stdin=False) == 130, cli.stderr
        assert "atbridge: interrupted after 0 messages" in cli.stderr
        assert "online" not in cli.stderr
        return
    if command == "run":
        await cli.wait_for("online: CONNACK accepted", stream=stream)
    if lines:  # stdin stays open either way: the reader is blocked in it
        await cli.send(b"before the signal\n")
        await cli.wait_for("1: 17 bytes to", stream="stdout")
    cli.proc.send_signal(signum)
    code = await cli.finish(close_stdin=False)
    assert "Fatal Python error" not in cli.stderr
    assert code == 130, cli.stderr  # interrupted before the end of stdin, the goal
    if command == "publish":
        assert f"atbridge: interrupted after {lines} messages" in cli.stderr
    # the clean shutdown: DISCONNECT (mosquitto logs "closed its connection" without one),
    # then the socket and the port closed
    await asyncio.to_thread(broker.wait_for_log, f"Client {client_id} disconnected.", WAIT)
    shown = cli.stdout if command == "run" else cli.stderr
    assert "closing: " in shown and "disconnected: closed" in shown
    assert await received_until_marker(paho, topic) == [b"before the signal"] * lines


async def test_publish_message_file_dash_sends_stdin_byte_for_byte(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = "cmd/publish/stdin-file"
    payload = b"line one\r\n\x00\xff\nno newline at the end"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge, "publish", *bridge_args(fake, broker), "--topic", topic, "--qos", "1",
        "--message-file", "-", stdin=payload,
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, topic) == [payload]


async def test_ctrl_c_in_the_at_console_ends_it_cleanly(
    fake: FakeModem, atbridge: StartCli
) -> None:
    cli = await atbridge("at", "--port", fake.port)
    await cli.send(b"AT+CGMI\n")  # stdin stays open: the console waits for the next line
    await cli.wait_for("Nordic Semiconductor ASA", stream="stdout")
    await cli.wait_for("OK", stream="stdout")
    cli.proc.send_signal(signal.SIGINT)
    assert await cli.finish(close_stdin=False) == 130, cli.stderr
    assert "Fatal Python error" not in cli.stderr
    assert "atbridge: interrupted" in cli.stderr


# -- MQTT 5.0 and the Will -----------------------------------------------------------------


async def test_publish_over_mqtt_5_reaches_a_paho_subscriber(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = "cmd/mqtt5"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge,
        "publish", *bridge_args(fake, broker), "--mqtt-version", "5", "--session-expiry", "0",
        "--client-id", "cli-mqtt5", "--topic", topic, "-m", "over five", "--qos", "1",
        "--count", "2",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, topic) == [b"over five"] * 2
    # mosquitto logs the protocol of every CONNECT: p5 is MQTT 5.0 (p2 is 3.1.1)
    assert any(" as cli-mqtt5 (p5," in line for line in broker.log), broker.log[-5:]


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("how", ["killed", "ctrl-c"])
async def test_the_will_is_published_when_the_bridge_dies_and_not_after_a_clean_exit(
    how: str, version: str, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    will = f"cmd/will/{how}/{version}"
    client_id = f"cli-will-{how}-{version}"
    await asyncio.to_thread(paho.subscribe, will, 1)
    async with FakeModem(dialect="nrf91-slm", registration_delay=0.05) as fake:
        cli = await atbridge(
            "run", *bridge_args(fake, broker), "--mqtt-version", version, "--client-id", client_id,
            "--will-topic", will, "--will-message", "the bridge is gone", "--will-qos", "1",
        )  # fmt: skip
        await cli.wait_for("online: CONNACK accepted", stream="stdout")
        if how == "killed":
            cli.proc.kill()  # SIGKILL: no DISCONNECT, nothing cleaned up
            assert await cli.finish() == -signal.SIGKILL
        else:
            cli.proc.send_signal(signal.SIGINT)
            assert await cli.finish() == 130, cli.stderr  # interrupted, but cleanly
        # The modem's TCP connection ends without a DISCONNECT from the host (the fake lives
        # in this process, so the broker sees the close only now): a broker publishes the
        # Will of a connection closed without DISCONNECT, and drops it after a DISCONNECT.
    if how == "killed":
        await asyncio.to_thread(broker.wait_for_log, f"Client {client_id} closed its", WAIT)
        await asyncio.to_thread(paho.wait_for, 1, WAIT)
        assert [(t, p, q) for t, p, q in paho.messages if t == will] == [
            (will, b"the bridge is gone", 1)
        ]
    else:
        await asyncio.to_thread(broker.wait_for_log, f"Client {client_id} disconnected.", WAIT)
        assert await received_until_marker(paho, will) == []
