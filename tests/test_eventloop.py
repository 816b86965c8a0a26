"""The event loop the command line runs on (``--event-loop``, ``ATBRIDGE_EVENT_LOOP``,
:mod:`atbridge.eventloop`), and the bridge's whole lifecycle on uvloop.

The choice is tested as a pure function first, then through the real CLI as a process
against the fake modem on a pty and a real mosquitto, including a machine without uvloop
(a ``uvloop`` package on the child's path that fails to import, as on Windows). The lifecycle
of every dialect runs on a uvloop loop of its own, with the fake in its own process.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import pytest

from atbridge import eventloop
from atbridge.bridge import Bridge
from atbridge.config import BridgeConfig
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.errors import ConfigurationError
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem
from tests.test_commands_bridge import (  # noqa: F401 - fixtures
    StartCli,
    atbridge,
    bridge_args,
    child_env,
    fake,
    received_until_marker,
    run_cli,
)

# ruff: noqa: F811 - the fixtures of test_commands_bridge are imported by name


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import uvloop`` fails, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENVIRONMENT, raising=False)
    monkeypatch.setattr(eventloop, "_selected", None)


# -- the choice (pure) -----------------------------------------------------------------------


def test_auto_takes_uvloop_when_installed_and_words_are_case_blind() -> None:
    assert eventloop.resolve(None) == "uvloop"
    assert eventloop.resolve("auto") == "uvloop"
    assert eventloop.resolve(" UVLOOP ") == "uvloop"
    assert eventloop.resolve("asyncio") == "asyncio"


def test_environment_is_read_when_no_option_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENVIRONMENT, "asyncio")
    assert eventloop.resolve(None) == "asyncio"
    assert eventloop.resolve("uvloop") == "uvloop"  # the option wins
    monkeypatch.setenv(eventloop.ENVIRONMENT, "")
    assert eventloop.resolve(None) == "uvloop"  # empty: auto


def test_unknown_words_say_where_they_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        eventloop.select("trio")
    assert "--event-loop 'trio' is not an event loop" in caught.value.message
    assert caught.value.hint == "use one of auto, asyncio, uvloop"
    monkeypatch.setenv(eventloop.ENVIRONMENT, "tokio")
    with pytest.raises(ConfigurationError) as caught:
        eventloop.resolve(None)
    assert "ATBRIDGE_EVENT_LOOP= 'tokio' is not an event loop" in caught.value.message


@pytest.mark.usefixtures("no_uvloop")
def test_without_uvloop_auto_is_asyncio_and_asking_for_it_says_how_to_install() -> None:
    assert eventloop.resolve("auto") == "asyncio"
    with pytest.raises(ConfigurationError) as caught:
        eventloop.resolve("uvloop")
    assert caught.value.message == "the uvloop event loop is not installed"
    assert "pip install 'atbridge[fast]'" in (caught.value.hint or "")
    assert "--event-loop asyncio" in (caught.value.hint or "")


def loop_module() -> str:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    return eventloop.run(which())


def test_run_uses_the_selected_loop() -> None:
    eventloop.select("uvloop")
    assert loop_module().startswith("uvloop")
    eventloop.select("asyncio")
    assert loop_module().startswith("asyncio")
    eventloop.select(None)
    assert loop_module().startswith("uvloop")  # auto


@pytest.mark.usefixtures("no_uvloop")
def test_a_loop_that_cannot_be_made_closes_the_coroutine() -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    work = never()
    with pytest.raises(ConfigurationError):
        eventloop.run(work, "uvloop")
    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED  # no "never awaited"


# -- the real CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
async def test_publish_runs_on_the_loop_asked_for(
    choice: str, fake: FakeModem, broker: Mosquitto, paho: PahoPeer, atbridge: StartCli
) -> None:
    topic = f"loop/{choice}"
    await asyncio.to_thread(paho.subscribe, topic, 1)
    cli = await run_cli(
        atbridge, "--event-loop", choice, "publish", *bridge_args(fake, broker), "-v",
        "--topic", topic, "--message", "m", "--qos", "1", "--count", "3",
    )  # fmt: skip
    assert cli.proc.returncode == 0, cli.stderr
    assert f"event loop: {choice}" in cli.stderr
    assert await received_until_marker(paho, topic) == [b"m"] * 3


async def test_environment_chooses_and_a_bad_word_is_a_usage_error(
    fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    args = ["publish", *bridge_args(fake, broker), "-v", "--topic", "loop/env", "-m", "x"]
    cli = await run_cli(atbridge, *args, env=child_env(ATBRIDGE_EVENT_LOOP="asyncio"))
    assert cli.proc.returncode == 0, cli.stderr
    assert "event loop: asyncio" in cli.stderr
    cli = await run_cli(atbridge, *args, env=child_env(ATBRIDGE_EVENT_LOOP="fastest"))
    assert cli.proc.returncode == 2, cli.stderr
    assert "ATBRIDGE_EVENT_LOOP= 'fastest' is not an event loop" in cli.stderr
    assert "what to try: use one of auto, asyncio, uvloop" in cli.stderr
    cli = await run_cli(atbridge, "--event-loop", "fastest", *args)
    assert cli.proc.returncode == 2
    assert "invalid choice: 'fastest'" in cli.stderr


async def test_a_machine_without_uvloop(
    tmp_path: Path, fake: FakeModem, broker: Mosquitto, atbridge: StartCli
) -> None:
    """uvloop asked for: exit 2 with how to install it, before the port is touched; auto:
    the standard loop, and the job is done."""
    shadow = tmp_path / "uvloop"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('uvloop does not support Windows')\n")
    env = child_env(PYTHONPATH=str(tmp_path))
    args = ["publish", *bridge_args(fake, broker), "-v", "--topic", "loop/none", "-m", "x"]
    cli = await run_cli(atbridge, "--event-loop", "uvloop", *args, env=env)
    assert cli.proc.returncode == 2, cli.stderr
    assert "atbridge: the uvloop event loop is not installed" in cli.stderr
    assert "pip install 'atbridge[fast]'" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert len(fake.commands) == 0  # refused before the port was opened
    cli = await run_cli(atbridge, *args, env=env)
    assert cli.proc.returncode == 0, cli.stderr
    assert "event loop: asyncio" in cli.stderr


# -- the lifecycle of every dialect on uvloop ------------------------------------------------


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_comes_online_publishes_and_closes_on_uvloop(
    dialect: str, broker: Mosquitto, paho: PahoPeer
) -> None:
    """The bridge and the fake modem on one uvloop loop: a subscription receives, QoS 1 and
    QoS 0 publishes arrive, and close leaves no task running."""
    topic = f"uv/{dialect}"
    paho.subscribe(f"{topic}/up", 1)

    async def scenario() -> list[str]:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        async with FakeModem(dialect=dialect, registration_delay=0.05) as modem:
            creds = MqttCredentials.plain(
                client_id=f"uv-{dialect}", host="127.0.0.1", port=broker.port
            )
            bridge = Bridge(
                config=BridgeConfig(
                    port=modem.port, credentials=creds, dialect=dialect, give_up_after=30.0
                ),
                online_timeout=30,
            )
            try:
                await bridge.start()
                await bridge.wait_online(30)
                await bridge.subscribe(f"{topic}/down", qos=1)
                await asyncio.to_thread(paho.publish, f"{topic}/down", b"down", 1)
                async with asyncio.timeout(30):
                    message = await anext(bridge.messages())
                assert (message.topic, message.payload) == (f"{topic}/down", b"down")
                await asyncio.gather(
                    *(bridge.publish(f"{topic}/up", b"q1-%d" % i, qos=1) for i in range(20))
                )
                for i in range(5):
                    await bridge.publish(f"{topic}/up", b"q0-%d" % i, qos=0)
                await bridge.publish(f"{topic}/up", b"last", qos=1)
            finally:
                await bridge.close()
            left = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return left

    assert eventloop.run(scenario(), "uvloop") == []
    paho.wait_for(26, 30.0)
    payloads = [p for t, p, _ in paho.messages if t == f"{topic}/up"]
    expected = [b"q1-%d" % i for i in range(20)] + [b"q0-%d" % i for i in range(5)] + [b"last"]
    assert sorted(payloads) == sorted(expected)
