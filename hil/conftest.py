"""Options, boards and logs of the hil/ suite, pytest-embedded style.

Every option (``--port``, ``--baud``, ``--dialect``, ``--apn``, ``--broker``, ``--hil-log-dir``,
``--attach-timeout``) is also a fixture of the same name, so a test can override it with
``@pytest.mark.parametrize("port", [...], indirect=True)``. Without ``--port`` each test gets the
fake modem (``tests.fakes.FakeModem``) on a pty, parametrized over every dialect when
``--dialect`` is ``auto``, and the broker is a mosquitto the suite starts on a free loopback
port. Each test writes its modem transcript to ``<log dir>/<test name>.log`` and a failure prints
that path. A failure of a test that used a board latches the board broken (:mod:`hil.strategy`):
later tests that need it are skipped with the first failure's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from atbridge import steps
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.dialects.base import Dialect
from atbridge.modem import Modem
from atbridge.steps import Attached, Configured, DataActivated, DialectLink, Probed
from hil.strategy import BoardStrategy
from tests.brokers import Mosquitto, PahoPeer
from tests.fakes import FakeModem

#: Timeouts for the fake modem: everything happens in well under a second, bound it at 10 s.
FAKE_TIMEOUTS = Timeouts(
    probe=10, configure=10, attach=10, activate=10, open_socket=10, connack=10, close=5
)
FAKE_ATTACH_TIMEOUT = 10.0
REAL_ATTACH_TIMEOUT = 600.0

TRANSCRIPT = pytest.StashKey[Path]()
STRATEGY = pytest.StashKey[BoardStrategy]()
STRATEGIES = pytest.StashKey[dict[str, BoardStrategy]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "atbridge hardware-in-the-loop (hil/)")
    group.addoption("--port", default=None, help="the board: /dev/ttyACM0 or socket://host:port")
    group.addoption("--baud", type=int, default=115200, help="baud rate (default 115200)")
    group.addoption(
        "--dialect",
        default="auto",
        choices=["auto", *DIALECTS],
        help="the modem's dialect; auto identifies it (and runs the fake as every dialect)",
    )
    group.addoption("--apn", default=None, help="APN to set (default: keep the modem's)")
    group.addoption(
        "--broker",
        default=None,
        metavar="HOST:PORT",
        help="MQTT broker the board reaches (default: a local mosquitto the suite starts)",
    )
    group.addoption(
        "--hil-log-dir", default=None, help="folder for per-test transcripts (default: tmp)"
    )
    group.addoption(
        "--attach-timeout",
        type=float,
        default=None,
        help=f"seconds to wait for registration (default {REAL_ATTACH_TIMEOUT:g}; "
        f"{FAKE_ATTACH_TIMEOUT:g} with the fake)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[STRATEGIES] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Without a board and with ``--dialect auto``, run each board test on every fake dialect."""
    config = metafunc.config
    if "dialect" not in metafunc.fixturenames or config.getoption("port") is not None:
        return
    if config.getoption("dialect") != "auto":
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "dialect" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    metafunc.parametrize("dialect", list(DIALECTS), indirect=True)


def _option(request: pytest.FixtureRequest, name: str) -> Any:
    """The test's parameter for ``name`` if it has one, else the command-line option."""
    if hasattr(request, "param"):
        return request.param
    return request.config.getoption(name)


# -- the options as fixtures -------------------------------------------------------------------


@pytest.fixture
def port(request: pytest.FixtureRequest) -> str | None:
    """``--port``: the board's URL, or None for the fake modem."""
    value: str | None = _option(request, "port")
    return value


@pytest.fixture
def baud(request: pytest.FixtureRequest) -> int:
    """``--baud``."""
    return int(_option(request, "baud"))


@pytest.fixture
def dialect(request: pytest.FixtureRequest) -> str:
    """``--dialect``: a dialect name, or ``auto``."""
    value = str(_option(request, "dialect"))
    if value != "auto" and value not in DIALECTS:
        raise pytest.UsageError(f"unknown dialect {value!r}; use auto or one of {list(DIALECTS)}")
    return value


@pytest.fixture
def apn(request: pytest.FixtureRequest) -> str | None:
    """``--apn``: None leaves the modem's PDP context as it is."""
    value: str | None = _option(request, "apn")
    return value


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` -> :class:`Endpoint`, or a usage error saying what is wrong."""
    host, _, number = text.rpartition(":")
    if not host or not number.isdigit() or not 0 < int(number) < 65536:
        raise pytest.UsageError(f"--broker {text!r}: give HOST:PORT, e.g. broker.example:1883")
    return Endpoint(host.strip("[]"), int(number))


@pytest.fixture(scope="session")
def local_broker() -> Iterator[Mosquitto]:
    """The mosquitto the suite starts when no ``--broker`` is given (one per session)."""
    with Mosquitto() as mosquitto:
        yield mosquitto


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Endpoint:
    """``--broker HOST:PORT``, or the local mosquitto."""
    value: str | None = _option(request, "broker")
    if value is None:
        mosquitto: Mosquitto = request.getfixturevalue("local_broker")
        return Endpoint("127.0.0.1", mosquitto.port)
    return parse_endpoint(value)


@pytest.fixture(scope="session")
def default_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hil-logs", numbered=False)


@pytest.fixture
def hil_log_dir(request: pytest.FixtureRequest) -> Path:
    """``--hil-log-dir``, created if missing (default: a folder in pytest's tmp)."""
    value: str | None = _option(request, "hil_log_dir")
    if value is None:
        path: Path = request.getfixturevalue("default_log_dir")
        return path
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def attach_timeout(request: pytest.FixtureRequest, port: str | None) -> float:
    """``--attach-timeout``: registration on a real network may take minutes."""
    value = _option(request, "attach_timeout")
    if value is None:
        return REAL_ATTACH_TIMEOUT if port is not None else FAKE_ATTACH_TIMEOUT
    return float(value)


# -- the board ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenBoard:
    """A board whose AT channel is open and probed: run the next bring-up steps on it."""

    modem: Modem
    probed: Probed
    board: Board

    @property
    def dialect(self) -> DialectLink:
        return self.probed.dialect

    async def bring_up_data(self, apn: str | None) -> tuple[Configured, Attached, DataActivated]:
        """The steps from the APN to a data bearer (``atbridge.steps``), each timed."""
        timeouts = self.board.timeouts
        configured = await steps.configure(self.dialect, apn, timeout=timeouts.configure)
        attached = await steps.attach(self.dialect, timeout=self.board.attach_timeout)
        activated = await steps.activate_data(self.dialect, timeout=timeouts.activate)
        return configured, attached, activated


@dataclass
class Board:
    """One board for one test: where it is, what it should be, where its bytes go."""

    url: str
    baud: int
    dialect: str
    expected_dialect: str | None
    transcript: Path
    strategy: BoardStrategy
    attach_timeout: float
    fake: FakeModem | None = None

    @property
    def timeouts(self) -> Timeouts:
        if self.fake is not None:
            return FAKE_TIMEOUTS
        return Timeouts(attach=self.attach_timeout)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[OpenBoard]:
        """The AT channel, probed (``atbridge.steps.probe``); everything closed on the way out."""
        modem = await Modem.open(self.url, baudrate=self.baud, transcript=self.transcript)
        bound: DialectLink | None = None
        try:
            probed = await steps.probe(modem, self.dialect, timeout=self.timeouts.probe)
            bound = probed.dialect
            self.strategy.ready()
            yield OpenBoard(modem, probed, self)
        finally:
            if isinstance(bound, Dialect):
                for sock in list(bound.sockets.values()):
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self.timeouts.close):
                            await sock.close()
            if bound is not None:
                bound.detach_from_modem()
            await modem.close()

    def bridge_config(self, credentials: MqttCredentials, apn: str | None) -> BridgeConfig:
        """A lifecycle config for this board, writing to this test's transcript."""
        fake = self.fake is not None
        return BridgeConfig(
            port=self.url,
            credentials=credentials,
            dialect=self.dialect,
            apn=apn,
            baudrate=self.baud,
            timeouts=self.timeouts,
            backoff_initial=0.05 if fake else 1.0,
            backoff_max=0.2 if fake else 30.0,
            give_up_after=30.0 if fake else 2 * self.attach_timeout + 300,
            transcript=str(self.transcript),
        )

    @property
    def online_timeout(self) -> float:
        """How long power-on to online may take."""
        return 30.0 if self.fake is not None else self.attach_timeout + 300


def _file_name(test_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_") + ".log"


@pytest.fixture
async def board(
    request: pytest.FixtureRequest,
    port: str | None,
    baud: int,
    dialect: str,
    hil_log_dir: Path,
    attach_timeout: float,
) -> AsyncIterator[Board]:
    """The board under test: ``--port``, or a fake modem speaking ``dialect``.

    Skips the test when an earlier failure latched this board broken.
    """
    key = port if port is not None else f"fake {dialect}"
    strategies = request.config.stash[STRATEGIES]
    strategy = strategies.setdefault(key, BoardStrategy(key))
    strategy.require()
    request.node.stash[STRATEGY] = strategy
    transcript = hil_log_dir / _file_name(request.node.name)
    transcript.unlink(missing_ok=True)
    request.node.stash[TRANSCRIPT] = transcript
    expected = None if dialect == "auto" else dialect
    if port is not None:
        yield Board(port, baud, dialect, expected, transcript, strategy, attach_timeout)
        return
    if dialect == "auto":
        raise pytest.UsageError("the fake modem needs a dialect: pass --dialect or --port")
    async with FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        yield Board(fake.port, baud, dialect, expected, transcript, strategy, attach_timeout, fake)


@pytest.fixture
def credentials(broker: Endpoint) -> MqttCredentials:
    """Plain MQTT credentials on ``broker`` with a client id of its own."""
    return MqttCredentials.plain(
        client_id=f"atbridge-hil-{uuid.uuid4().hex[:8]}", host=broker.host, port=broker.port
    )


def paho_peer(broker: Endpoint, client_id: str) -> PahoPeer:
    """A :class:`~tests.brokers.PahoPeer` on ``broker`` (PahoPeer itself dials 127.0.0.1)."""
    if broker.loopback:
        return PahoPeer(broker.port, client_id)
    import paho.mqtt.client as mqtt

    connect = mqtt.Client.connect

    def to_broker(client: mqtt.Client, _host: str, *args: Any, **kwargs: Any) -> Any:
        return connect(client, broker.host, *args, **kwargs)

    with mock.patch.object(mqtt.Client, "connect", to_broker):
        return PahoPeer(broker.port, client_id)


@pytest.fixture
def paho(broker: Endpoint) -> Iterator[PahoPeer]:
    """The reference MQTT client on the broker, on the host side."""
    peer = paho_peer(broker, f"atbridge-hil-paho-{uuid.uuid4().hex[:8]}")
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def topic() -> str:
    """A topic prefix no other test (or run) shares."""
    return f"atbridge/hil/{uuid.uuid4().hex[:12]}"


# -- reports ------------------------------------------------------------------------------------


def _reason(item: pytest.Item, report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", "") or ""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    return f"{item.name} failed in {report.when}: {first}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        strategy = item.stash.get(STRATEGY, None)
        if strategy is not None:
            strategy.broken(_reason(item, report))
        transcript = item.stash.get(TRANSCRIPT, None)
        if transcript is not None:
            report.sections.append(("hil transcript", f"modem transcript: {transcript}"))
    return report
