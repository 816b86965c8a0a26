"""The hil/ suite's pytest plugin: boards, options as fixtures, labgrid, reports.

Theory of operation
-------------------
Registered as a ``pytest11`` entry point (``atbridge``), so any checkout's tests
can use it once atbridge is installed: ``pytest --atbridge-port
labgrid://rack3-nrf91 hil/``. It stays inert for tests that do not ask for its
``board`` fixture. Every option (``--atbridge-port``, ``--atbridge-baud``,
``--atbridge-dialect``, ``--atbridge-apn``, ``--atbridge-broker``,
``--atbridge-attach-timeout``, ``--atbridge-tls-broker``, ``--atbridge-cafile``,
``--atbridge-client-cert``, ``--atbridge-client-key``, ``--atbridge-sec-tag``,
``--atbridge-allow-provision``, ``--hil-log-dir``, ``--hil-soak``) is also a
fixture (``port``, ``baud``, ``dialect``, ``apn``, ``broker``,
``attach_timeout``, ``tls_broker``, ``cafile``, ``client_cert``, ``client_key``,
``sec_tag``, ``allow_provision``, ``hil_log_dir``, ``hil_soak``), so a test can override one
with ``@pytest.mark.parametrize("port", [...], indirect=True)`` (pytest-embedded's
way).

The TLS options are checked together at start-up (:func:`check_tls_options`: a CA
with its broker, a client certificate with its key, readable files, a tag in range), so
a bad combination is a usage error before any board is opened. The offload test may
write to a board's credential store only with ``--atbridge-allow-provision`` (the
fake's store is always writable: it lives as long as the test).

Boards: each ``--atbridge-port`` (repeatable: a device, ``socket://``,
``rfc2217://`` or ``labgrid://PLACE``) and each target of the labgrid
environment (``--lg-env``, labgrid's own option) that has an ``AtBridgeDriver``
is one board; every board test is parametrized over the boards, and each board
has its own strategy (:mod:`hil.strategy`: one failure latches only that board
broken). Without any, each test gets the fake modem (``tests.fakes``, in
atbridge's checkout) once per dialect. A ``labgrid://`` place is acquired on
first use in the process that uses it and released when the session ends.

pytest-xdist: every board test is marked ``xdist_group(<board>)`` and ``-n N``
distributes with ``loadgroup``, so one board's tests all run in one worker, one
at a time, and two workers never share a port; nothing is cached across
processes.

Reports: each test records, with ``record_property`` (which reaches the JUnit XML
also from xdist workers), its ``board``, the modem's ``dialect``, ``firmware``,
``imei``, ``iccid`` and ``rsrp_dbm`` as read when the board was first opened
(only those the modem gave), and its ``transcript`` path; the round trip adds
``time_to_online_s``, the soak its loss and latency percentiles. At the end a
summary table per board (dialect, firmware, passed/failed/skipped, time to
online, RSRP) is printed and written as JSON to ``--hil-summary`` (default
``hil-summary.json`` in the log folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

from atbridge import steps
from atbridge.config import BridgeConfig, Timeouts
from atbridge.credentials import MqttCredentials
from atbridge.dialects import DIALECTS
from atbridge.dialects.base import Dialect
from atbridge.farm.strategy import BoardStrategy
from atbridge.modem import Modem
from atbridge.steps import Attached, Configured, DataActivated, DialectLink, Probed

if TYPE_CHECKING:
    from tests.brokers import Mosquitto, PahoPeer
    from tests.fakes import FakeModem

#: Round trips the soak test makes on the fake modem when --hil-soak is not given.
FAKE_SOAK = 5
#: Timeouts for the fake modem: everything happens in well under a second, bound it at 10 s.
FAKE_TIMEOUTS = Timeouts(
    probe=10, configure=10, attach=10, activate=10, open_socket=10, connack=10, close=5
)
FAKE_ATTACH_TIMEOUT = 10.0
REAL_ATTACH_TIMEOUT = 600.0
#: The security tag the offload test writes to unless --atbridge-sec-tag says otherwise: one
#: no Nordic sample (nRF Cloud's 16842753, the samples' 42), README example or test uses.
DEFAULT_SEC_TAG = 37707

TRANSCRIPT = pytest.StashKey[Path]()
STRATEGY = pytest.StashKey[BoardStrategy]()
STRATEGIES = pytest.StashKey[dict[str, BoardStrategy]]()
BOARDS = pytest.StashKey[list[str]]()
FACTS = pytest.StashKey[dict[str, dict[str, Any]]]()
LEASES = pytest.StashKey[dict[str, tuple[str, int]]]()
SUMMARY = pytest.StashKey["Summary"]()
#: A board taken from the labgrid environment: ``lg-env:<target name>``.
LG_ENV_PREFIX = "lg-env:"
#: Board facts recorded as JUnit properties, as each is known.
FACT_NAMES = ("dialect", "firmware", "imei", "iccid", "rsrp_dbm")


def _checkout_module(name: str) -> Any:
    """A helper of atbridge's own checkout (the fake modem, mosquitto, the paho peer)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise pytest.UsageError(
            f"{name} is part of atbridge's source checkout, not of the installed package: "
            "give --atbridge-port (a real board) and --atbridge-broker, or run from the checkout"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "atbridge hardware-in-the-loop (hil/)")
    group.addoption(
        "--atbridge-port",
        dest="port",
        action="append",
        default=None,
        help="a board (repeatable): /dev/ttyACM0, socket://host:port, rfc2217://host:port "
        "or labgrid://PLACE",
    )
    group.addoption(
        "--atbridge-baud",
        dest="baud",
        type=int,
        default=115200,
        help="baud rate (default 115200)",
    )
    group.addoption(
        "--atbridge-dialect",
        dest="dialect",
        default="auto",
        choices=["auto", *DIALECTS],
        help="the modem's dialect; auto identifies it (and runs the fake as every dialect)",
    )
    group.addoption(
        "--atbridge-apn", dest="apn", default=None, help="APN to set (default: keep the modem's)"
    )
    group.addoption(
        "--atbridge-broker",
        dest="broker",
        default=None,
        metavar="HOST:PORT",
        help="MQTT broker the board reaches (default: a local mosquitto the suite starts)",
    )
    group.addoption(
        "--atbridge-tls-broker",
        dest="tls_broker",
        default=None,
        metavar="HOST:PORT",
        help="a TLS listener (MQTT over TLS) the board and this host reach, for hil/test_tls.py "
        "(default: a local TLS mosquitto with a CA made at run time)",
    )
    group.addoption(
        "--atbridge-cafile",
        dest="cafile",
        default=None,
        metavar="FILE",
        help="the CA that signed the certificate of --atbridge-tls-broker (needed with it); "
        "also what the offload test writes to the modem",
    )
    group.addoption(
        "--atbridge-client-cert",
        dest="client_cert",
        default=None,
        metavar="FILE",
        help="a client certificate for the TLS broker (mutual TLS; with --atbridge-client-key)",
    )
    group.addoption(
        "--atbridge-client-key",
        dest="client_key",
        default=None,
        metavar="FILE",
        help="the private key of --atbridge-client-cert",
    )
    group.addoption(
        "--atbridge-sec-tag",
        dest="sec_tag",
        type=int,
        default=None,
        metavar="N",
        help=f"the security tag the offload test may write to (default {DEFAULT_SEC_TAG})",
    )
    group.addoption(
        "--atbridge-allow-provision",
        dest="allow_provision",
        action="store_true",
        default=None,
        help="let the offload test write the CA (and client pair) to the modem's credential store "
        "under --atbridge-sec-tag and delete it afterwards (always allowed on the fake modem)",
    )
    group.addoption(
        "--hil-log-dir", default=None, help="folder for per-test transcripts (default: tmp)"
    )
    group.addoption(
        "--atbridge-attach-timeout",
        dest="attach_timeout",
        type=float,
        default=None,
        help=f"seconds to wait for registration (default {REAL_ATTACH_TIMEOUT:g}; "
        f"{FAKE_ATTACH_TIMEOUT:g} with the fake)",
    )
    group.addoption(
        "--hil-soak",
        dest="hil_soak",
        type=int,
        default=None,
        metavar="N",
        help="repeat the online round trip N times; report loss and latency percentiles "
        f"(default: {FAKE_SOAK} on the fake modem, 0 = not run on a real board)",
    )
    group.addoption(
        "--hil-summary",
        dest="hil_summary",
        default=None,
        metavar="FILE",
        help="write the per-board summary as JSON here (default: hil-summary.json in the log dir)",
    )


def _lg_env_boards(config: pytest.Config) -> list[str]:
    """The targets of labgrid's ``--lg-env`` environment that have an ``AtBridgeDriver``."""
    try:
        from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY  # type: ignore[import-untyped]
    except ImportError:
        return []
    env = config.stash.get(LABGRID_ENV_KEY, None)
    if env is None:
        return []
    boards = []
    for name, target in env.config.get_targets().items():
        if "AtBridgeDriver" in (target.get("drivers") or {}):
            boards.append(LG_ENV_PREFIX + name)
    return boards


def pytest_configure(config: pytest.Config) -> None:
    config.stash[STRATEGIES] = {}
    config.stash[FACTS] = {}
    config.stash[LEASES] = {}
    check_tls_options({name: config.getoption(name) for name in TLS_OPTIONS})
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"  # xdist: one board's tests in one worker
    if not hasattr(config, "workerinput"):
        summary = Summary(config)
        config.stash[SUMMARY] = summary
        config.pluginmanager.register(summary, "atbridge-hil-summary")


def _boards(config: pytest.Config) -> list[str]:
    """The ``--atbridge-port`` boards, then the ``--lg-env`` ones (once labgrid loaded it)."""
    if BOARDS not in config.stash:
        config.stash[BOARDS] = [*(config.getoption("port") or []), *_lg_env_boards(config)]
    return config.stash[BOARDS]


def _parametrized(metafunc: pytest.Metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if name in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each board test once per board; without boards, once per fake dialect (``auto``)."""
    config = metafunc.config
    if "board" not in metafunc.fixturenames:
        return
    boards = _boards(config)
    if boards:
        if not _parametrized(metafunc, "port"):
            metafunc.parametrize("port", boards, indirect=True, ids=_board_id)
        return
    if config.getoption("dialect") != "auto" or _parametrized(metafunc, "dialect"):
        return
    metafunc.parametrize("dialect", list(DIALECTS), indirect=True)


def _board_id(port: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", port.split("://", 1)[-1]).strip("_")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``xdist_group(<board>)`` on every board test, so ``loadgroup`` keeps a board on one
    worker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "board" not in getattr(item, "fixturenames", ()):
            continue
        key = callspec.params.get("port") or f"fake {callspec.params.get('dialect')}"
        item.add_marker(pytest.mark.xdist_group(_board_id(str(key))))


def _option(request: pytest.FixtureRequest, name: str) -> Any:
    """The test's parameter for ``name`` if it has one, else the command-line option."""
    if hasattr(request, "param"):
        return request.param
    value = request.config.getoption(name)
    if name == "port" and isinstance(value, list):
        if len(value) > 1:
            raise pytest.UsageError("several --atbridge-port boards: use the board fixture")
        return value[0] if value else None
    return value


# -- the options as fixtures -------------------------------------------------------------------


@pytest.fixture
def port(request: pytest.FixtureRequest) -> str | None:
    """``--atbridge-port``: the board's URL, or None for the fake modem."""
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
        raise pytest.UsageError(
            f"--atbridge-broker {text!r}: give HOST:PORT, e.g. broker.example:1883"
        )
    return Endpoint(host.strip("[]"), int(number))


@pytest.fixture
def hil_soak(request: pytest.FixtureRequest, port: str | None) -> int:
    """``--hil-soak N``: how many online round trips the soak test makes (0: skip it).

    Not given: a few on the fake modem (so the suite's own CI runs the soak), none on a
    real board (a soak costs air time: ask for it)."""
    value = _option(request, "hil_soak")
    if value is None:
        return FAKE_SOAK if port is None else 0
    return int(value)


@pytest.fixture(scope="session")
def local_broker() -> Iterator[Mosquitto]:
    """The mosquitto the suite starts when no ``--atbridge-broker`` is given (per session)."""
    with _checkout_module("tests.brokers").Mosquitto() as mosquitto:
        yield mosquitto


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Endpoint:
    """``--atbridge-broker HOST:PORT``, or the local mosquitto."""
    value: str | None = _option(request, "broker")
    if value is None:
        mosquitto: Mosquitto = request.getfixturevalue("local_broker")
        return Endpoint("127.0.0.1", mosquitto.port)
    return parse_endpoint(value)


def _readable(option: str, value: str | None) -> Path | None:
    """A file option's path, or a usage error when it is not a file."""
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise pytest.UsageError(f"--atbridge-{option} {value}: no such file (give a PEM file)")
    return path


def _tls_endpoint(value: str) -> Endpoint:
    try:
        return parse_endpoint(value)
    except pytest.UsageError:
        raise pytest.UsageError(
            f"--atbridge-tls-broker {value!r}: give HOST:PORT, e.g. broker.example:8883"
        ) from None


def _checked_tag(value: int | None) -> int:
    from atbridge.certs import check_sec_tag
    from atbridge.errors import ConfigurationError

    tag = DEFAULT_SEC_TAG if value is None else int(value)
    try:
        return check_sec_tag(tag)
    except ConfigurationError as error:  # "--sec-tag N is outside ..."
        raise pytest.UsageError(f"--atbridge-{error.message[2:]} ({error.hint})") from None


#: The destinations of the TLS options, checked together at start-up.
TLS_OPTIONS = ("tls_broker", "cafile", "client_cert", "client_key", "sec_tag")


def check_tls_options(options: Mapping[str, Any]) -> None:
    """The TLS options (:data:`TLS_OPTIONS` -> value, None when not given) given together
    and usable, or a usage error saying what to give; run at start-up, before any board
    is opened."""
    broker, cafile = options.get("tls_broker"), options.get("cafile")
    cert, key = options.get("client_cert"), options.get("client_key")
    if broker is not None:
        _tls_endpoint(broker)
    if (cafile is None) != (broker is None):
        raise pytest.UsageError(
            "--atbridge-cafile names the CA that signed the certificate of "
            "--atbridge-tls-broker: give both (without them the suite makes its own CA and broker)"
        )
    if (cert is None) != (key is None):
        raise pytest.UsageError(
            "--atbridge-client-cert and --atbridge-client-key go together: give both or neither"
        )
    if cert is not None and broker is None:
        raise pytest.UsageError(
            "--atbridge-client-cert is for --atbridge-tls-broker: give the broker and its "
            "--atbridge-cafile too"
        )
    _readable("cafile", cafile)
    _readable("client-cert", cert)
    _readable("client-key", key)
    _checked_tag(options.get("sec_tag"))


@pytest.fixture
def tls_broker(request: pytest.FixtureRequest) -> Endpoint | None:
    """``--atbridge-tls-broker HOST:PORT``, or None: hil/conftest.py starts a local one."""
    value: str | None = _option(request, "tls_broker")
    return None if value is None else _tls_endpoint(value)


@pytest.fixture
def cafile(request: pytest.FixtureRequest) -> Path | None:
    """``--atbridge-cafile``: the CA of ``--atbridge-tls-broker`` (None: the local one's)."""
    return _readable("cafile", _option(request, "cafile"))


@pytest.fixture
def client_cert(request: pytest.FixtureRequest) -> Path | None:
    """``--atbridge-client-cert``: mutual TLS (with ``--atbridge-client-key``)."""
    return _readable("client-cert", _option(request, "client_cert"))


@pytest.fixture
def client_key(request: pytest.FixtureRequest) -> Path | None:
    """``--atbridge-client-key``: the private key of ``--atbridge-client-cert``."""
    return _readable("client-key", _option(request, "client_key"))


@pytest.fixture
def sec_tag(request: pytest.FixtureRequest) -> int:
    """``--atbridge-sec-tag N``: where the offload test may write (default
    :data:`DEFAULT_SEC_TAG`)."""
    return _checked_tag(_option(request, "sec_tag"))


@pytest.fixture
def allow_provision(request: pytest.FixtureRequest, port: str | None) -> bool:
    """``--atbridge-allow-provision``: whether the offload test may write to the modem's
    credential store. Always on the fake (its store lives as long as the test); off on a
    real board unless given, since it changes what the modem keeps."""
    value = _option(request, "allow_provision")
    if value is None:
        return port is None
    return bool(value)


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
    """``--atbridge-attach-timeout``: registration on a real network may take minutes."""
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
    name: str = ""
    node: pytest.Item | None = None

    def record(self, name: str, value: object) -> None:
        """A JUnit property of this test (``record_property``'s list: xdist carries it)."""
        if self.node is not None and value is not None:
            self.node.user_properties.append((name, value))

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


def _resolve(request: pytest.FixtureRequest, port: str) -> tuple[str, int | None]:
    """A board name -> the URL to open (and its speed): a labgrid place is acquired once per
    process and released when the session ends; an ``lg-env:`` target asks its driver."""
    leases = request.config.stash[LEASES]
    if port in leases:
        return leases[port]
    if port.startswith("labgrid://"):
        from atbridge.farm.places import acquire_place

        lease = acquire_place(port)
        request.config.add_cleanup(lease.release)
        leases[port] = (lease.url, lease.baudrate)
    elif port.startswith(LG_ENV_PREFIX):
        from atbridge.farm.driver import AtBridgeDriver

        env = request.getfixturevalue("env")  # labgrid's fixture (--lg-env)
        target = env.get_target(port[len(LG_ENV_PREFIX) :])
        driver = target.get_driver(AtBridgeDriver)
        leases[port] = (driver.url, driver.baudrate)
    else:
        return port, None
    return leases[port]


async def _facts(url: str, baud: int, dialect: str) -> dict[str, Any]:
    """What the board says about itself, read once: dialect, firmware, IMEI, ICCID, RSRP."""
    from atbridge.commands.info import gather_info
    from atbridge.errors import AtBridgeError

    facts: dict[str, Any] = {}
    try:
        modem = await Modem.open(url, baudrate=baud, default_timeout=5.0)
    except (AtBridgeError, OSError) as error:
        return {"error": str(error)}
    try:
        async with asyncio.timeout(60):
            info = await gather_info(modem, dialect=dialect)
        facts["dialect"] = info.dialect
        signal = info.data.get("signal") or {}
        for name, value in (
            ("firmware", info.data.get("firmware")),
            ("imei", info.data.get("imei")),
            ("iccid", info.data.get("iccid")),
            ("rsrp_dbm", signal.get("rsrp_dbm") if isinstance(signal, dict) else None),
        ):
            if value is not None:
                facts[name] = value
    except (AtBridgeError, TimeoutError) as error:
        facts["error"] = str(error)
    finally:
        await modem.close()
    return facts


@pytest.fixture
async def board(
    request: pytest.FixtureRequest,
    port: str | None,
    baud: int,
    dialect: str,
    hil_log_dir: Path,
    attach_timeout: float,
) -> AsyncIterator[Board]:
    """The board under test: a ``--atbridge-port`` board, or a fake modem speaking ``dialect``.

    Skips the test when an earlier failure latched this board broken. Records the board's
    facts (read once per board and process) and the transcript path as JUnit properties.
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
    node = request.node if isinstance(request.node, pytest.Item) else None

    async def described(made: Board) -> Board:
        made.name, made.node = key, node
        facts_by_board = request.config.stash[FACTS]
        if key not in facts_by_board or made.fake is not None:
            facts_by_board[key] = await _facts(made.url, made.baud, dialect)
        made.record("board", key)
        for name in FACT_NAMES:
            made.record(name, facts_by_board[key].get(name))
        made.record("transcript", str(transcript))
        return made

    if port is not None:
        url, speed = _resolve(request, port)
        chosen_baud = speed if speed is not None and baud == 115200 else baud
        yield await described(
            Board(url, chosen_baud, dialect, expected, transcript, strategy, attach_timeout)
        )
        return
    if dialect == "auto":
        raise pytest.UsageError(
            "the fake modem needs a dialect: pass --atbridge-dialect or --atbridge-port"
        )
    fakes = _checkout_module("tests.fakes")
    async with fakes.FakeModem(dialect=dialect, registration_delay=0.05) as fake:
        yield await described(
            Board(fake.port, baud, dialect, expected, transcript, strategy, attach_timeout, fake)
        )


@pytest.fixture
def credentials(broker: Endpoint) -> MqttCredentials:
    """Plain MQTT credentials on ``broker`` with a client id of its own."""
    return MqttCredentials.plain(
        client_id=f"atbridge-hil-{uuid.uuid4().hex[:8]}", host=broker.host, port=broker.port
    )


def paho_peer(
    broker: Endpoint,
    client_id: str,
    *,
    tls: tuple[Path, Path | None, Path | None] | None = None,
) -> PahoPeer:
    """A :class:`~tests.brokers.PahoPeer` on ``broker`` (PahoPeer itself dials 127.0.0.1);
    ``tls``: (CA file, client certificate, its key) for a TLS listener."""
    peer_class = _checkout_module("tests.brokers").PahoPeer
    if broker.loopback:
        peer: PahoPeer = peer_class(broker.port, client_id, tls=tls)
        return peer
    import paho.mqtt.client as mqtt

    connect = mqtt.Client.connect

    def to_broker(client: mqtt.Client, _host: str, *args: Any, **kwargs: Any) -> Any:
        return connect(client, broker.host, *args, **kwargs)

    with mock.patch.object(mqtt.Client, "connect", to_broker):
        remote: PahoPeer = peer_class(broker.port, client_id, tls=tls)
        return remote


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


# -- the summary ----------------------------------------------------------------------------


class Summary:
    """Per board: dialect, firmware, passed/failed/skipped, time to online, RSRP (module doc)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.boards: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        board = properties.get("board")
        if board is None:
            return
        row = self.boards.setdefault(
            str(board),
            {"board": board, "passed": 0, "failed": 0, "skipped": 0, "transcripts": []},
        )
        for name in (*FACT_NAMES, "time_to_online_s"):
            if name in properties and row.get(name) is None:
                row[name] = properties[name]
        if report.when == "call" or report.outcome != "passed":
            if report.when == "teardown" and report.outcome == "skipped":
                return
            row[str(report.outcome)] += 1
        if report.when == "call" and "transcript" in properties:
            row["transcripts"].append(properties["transcript"])

    def path(self) -> Path | None:
        chosen = self.config.getoption("hil_summary")
        if chosen:
            return Path(chosen)
        folder = self.config.getoption("hil_log_dir")
        if folder:
            return Path(folder) / "hil-summary.json"
        return None

    def table(self) -> list[str]:
        header = ("BOARD", "DIALECT", "FIRMWARE", "PASS", "FAIL", "SKIP", "ONLINE S", "RSRP")
        rows = [header]
        for row in self.boards.values():
            online = row.get("time_to_online_s")
            rows.append(
                (
                    str(row["board"]),
                    str(row.get("dialect") or "-"),
                    str(row.get("firmware") or "-"),
                    str(row["passed"]),
                    str(row["failed"]),
                    str(row["skipped"]),
                    f"{online:.2f}" if isinstance(online, float | int) else "-",
                    f"{row['rsrp_dbm']} dBm" if row.get("rsrp_dbm") is not None else "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.boards:
            return
        terminalreporter.section("atbridge hil boards")
        for line in self.table():
            terminalreporter.write_line(line)
        path = self.path()
        if path is None:
            base = self.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
            path = Path(base) / "hil-summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"boards": list(self.boards.values())}, indent=2) + "\n")
        terminalreporter.write_line(f"summary written to {path}")
