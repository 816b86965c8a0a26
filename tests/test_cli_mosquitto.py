"""The habits of mosquitto_pub / mosquitto_sub, through the real CLI (issue 14).

Each test runs ``python -m atbridge`` as a real process (the fixtures of
``test_commands_bridge``) against the fake modem on a pty and a real mosquitto.
"""

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name

from __future__ import annotations

import asyncio
import json

import pytest

from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401 - fixtures
    StartCli,
    atbridge,
    fake,
    received_until_marker,
    run_cli,
)


def modem_args(fake: FakeModem) -> list[str]:
    return ["--port", fake.port, "--give-up-after", "30"]


async def test_publish_with_mosquitto_pub_options(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    """``-h HOST -p PORT -t T -m M -q 1 -r -i ID -k S -V mqttv5``: the message arrives."""
    await asyncio.to_thread(paho.subscribe, "mosq/pub", 1)
    cli = await run_cli(
        atbridge, "publish", *modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port),
        "-t", "mosq/pub", "-m", "21.5", "-q", "1", "-i", "mosq-pub-1", "-k", "30",
        "-V", "mqttv5",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert "(QoS 1, acknowledged)" in cli.stdout
    assert await received_until_marker(paho, "mosq/pub") == [b"21.5"]
    await asyncio.to_thread(broker.wait_for_log, "mosq-pub-1", 10.0)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["-t", "a", "-t", "b", "-m", "x"], "-t/--topic given twice"),
        (["-t", "a", "-m", "x", "-m", "y"], "-m/--message given twice"),
        (["-t", "a", "-m", "x", "-q", "2"], "QoS 2 is not supported"),
        (["-t", "a", "-m", "x", "-V", "mqttv31"], "MQTT 3.1 is not supported"),
        (["-t", "a", "-m", "x", "-h"], "argument -h/--host: expected one argument"),
        (["-t", "a", "-m", "x", "-n"], "not allowed with argument -m/--message"),
    ],
)
async def test_publish_usage_errors_exit_2_and_say_why(
    words: list[str], expected: str, fake: FakeModem, atbridge: StartCli
) -> None:
    cli = await run_cli(atbridge, "publish", *modem_args(fake), *words)
    assert cli.proc.returncode == 2, cli.stderr
    assert expected in cli.stderr
    assert "usage:" in cli.stderr  # -h is the host: it never prints help and exits 0


async def test_help_alone_is_help(atbridge: StartCli) -> None:
    for command in ("publish", "subscribe"):
        cli = await run_cli(atbridge, command, "--help")
        assert cli.proc.returncode == 0
        assert f"usage: atbridge {command}" in cli.stdout
        assert "-h HOST, --host HOST" in cli.stdout


async def test_host_and_broker_together_is_an_error(fake: FakeModem, atbridge: StartCli) -> None:
    cli = await run_cli(
        atbridge, "publish", *modem_args(fake), "--broker", "127.0.0.1:1", "-h", "127.0.0.1",
        "-t", "a", "-m", "x",
    )  # fmt: skip
    assert cli.proc.returncode == 2, cli.stderr
    assert "--broker and -h/--host" in cli.stderr


async def test_publish_of_empty_stdin_fails_before_going_online(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    cli = await run_cli(
        atbridge, "publish", *modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port),
        "-t", "mosq/empty", "-l",
    )  # fmt: skip
    assert cli.proc.returncode == 2, cli.stderr
    assert "nothing to publish: standard input ended without a line" in cli.stderr
    assert "probing" not in cli.stderr  # the modem was never touched
    assert fake.bytes_in == 0


async def test_publish_null_message_and_stdin_file(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    await asyncio.to_thread(paho.subscribe, "mosq/null", 1)
    common = [*modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1"]
    cli = await run_cli(atbridge, "publish", *common, "-t", "mosq/null", "-n")
    assert cli.proc.returncode == 0, cli.stderr
    cli = await run_cli(
        atbridge, "publish", *common, "-t", "mosq/null", "-s", stdin=b"all\nof it\n"
    )
    assert cli.proc.returncode == 0, cli.stderr
    assert await received_until_marker(paho, "mosq/null") == [b"", b"all\nof it\n"]


async def test_subscribe_with_mosquitto_sub_options(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    """Repeated ``-t``, ``-C``, ``-v`` (topic and payload) as mosquitto_sub prints them."""
    cli = await atbridge(
        "subscribe", *modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port),
        "-t", "mosq/a", "-t", "mosq/b/#", "-q", "1", "-C", "2", "-v",
    )  # fmt: skip
    await cli.wait_for("subscribed to mosq/b/# (QoS 1)")
    await asyncio.to_thread(paho.publish, "mosq/a", b"one", 1)
    await asyncio.to_thread(paho.publish, "mosq/b/c", b"two", 1)
    assert await cli.finish() == 0, cli.stderr
    assert cli.out == ["mosq/a one", "mosq/b/c two"]


async def test_subscribe_prints_payloads_only_without_v_and_no_newline_with_n(
    fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    cli = await atbridge(
        "subscribe", *modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port),
        "-t", "mosq/n", "-C", "2", "-N",
    )  # fmt: skip
    await cli.wait_for("subscribed to mosq/n (QoS 1)")
    await asyncio.to_thread(paho.publish, "mosq/n", b"ab", 1)
    await asyncio.to_thread(paho.publish, "mosq/n", b"cd", 1)
    assert await cli.finish() == 0, cli.stderr
    assert cli.stdout == "abcd"


async def test_a_failure_with_json_is_a_json_object_on_stdout(
    fake: FakeModem, atbridge: StartCli
) -> None:
    """``--format json``: the error as ``error``, ``kind``, ``hint``, ``exit_code``."""
    cli = await run_cli(
        atbridge, "publish", "--port", "/nonexistent/tty", "-h", "127.0.0.1", "-t", "a",
        "-m", "x", "--format", "json",
    )  # fmt: skip
    assert cli.proc.returncode == 2, cli.stderr  # a port that cannot be opened: a bad setting
    (line,) = cli.out
    error = json.loads(line)
    assert set(error) == {"error", "kind", "hint", "exit_code"}
    assert error["exit_code"] == 2 and error["kind"] == "PortNotFound"
    assert "check the device path" in error["hint"]
    assert "/nonexistent/tty" in error["error"]


async def test_verbose_logs_the_lifecycle_and_debug_adds_the_masked_transcript(
    fake: FakeModem, atbridge: StartCli
) -> None:
    users = {"dev": "s3cret-pw"}
    with Mosquitto(users=users) as broker:
        common = [
            *modem_args(fake), "-h", "127.0.0.1", "-p", str(broker.port), "-t", "mosq/log",
            "-m", "x", "-u", "dev", "-P", "s3cret-pw",
        ]  # fmt: skip
        cli = await run_cli(atbridge, "publish", *common, "-v")
        assert cli.proc.returncode == 0, cli.stderr
        assert "atbridge.fsm:" in cli.stderr  # the lifecycle's decisions
        assert "AT+CGMI" not in cli.stderr
        cli = await run_cli(atbridge, "publish", *common, "-d")
        assert cli.proc.returncode == 0, cli.stderr
        assert "atbridge.fsm:" in cli.stderr
        assert "AT+CGMI" in cli.stderr  # the transcript of the AT traffic
        assert "s3cret-pw" not in cli.stderr
