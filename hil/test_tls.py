"""TLS through the board: host-side TLS, TLS on the modem with its CA provisioned, a wrong CA.

The broker is ``--atbridge-tls-broker`` (with ``--atbridge-cafile``, and a client pair for
mutual TLS), or on the fake modem a TLS mosquitto the suite starts with a CA made at run
time (``hil/conftest.py``). The paho-mqtt peer on this host talks to it over TLS too.

- Host-side: ``atbridge.Bridge`` with ``tls = "host"`` is online through the board; a QoS 1
  publish reaches paho, paho's message reaches the device. The broker then takes the
  session over (a second CONNECT with the device's client id, over TLS), the lifecycle
  reconnects and publishes again; both handshakes (version, cipher, resumed, bytes each
  way) are recorded as JUnit properties and printed in the test's output.
- Offload: the CA (and client pair) written under ``--atbridge-sec-tag`` through
  :func:`atbridge.certs.store_for`, then a Bridge with ``tls = "modem"`` makes the same
  round trip; what the test wrote is deleted at the end, what was there is kept. On a
  modem without TLS offload (SIM7000) the clear refusal is checked instead. On a real
  board writing to its store needs ``--atbridge-allow-provision``.
- A CA that did not sign the broker: :class:`~atbridge.errors.TlsRefused` saying so, and
  one socket opened (no reconnect storm).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atbridge import steps
from atbridge.at_mqtt import ConnAck, Connect, Disconnect, PacketDecoder, encode
from atbridge.bridge import Bridge
from atbridge.certs import CredentialKind, batch, read_pem, same_digest, store_for
from atbridge.credentials import MqttCredentials
from atbridge.dialects.base import Dialect
from atbridge.errors import ConfigurationError, Failed, TlsRefused
from atbridge.farm.plugin import Board, OpenBoard, check_tls_options
from atbridge.fsm import State
from hil.conftest import LocalTls, TlsTarget, given_tls_target
from tests.brokers import Mosquitto, TlsListener
from tests.fakes import FakeModem, nrf91_tls


def client_id() -> str:
    return f"atbridge-hil-tls-{uuid.uuid4().hex[:8]}"


def host_credentials(target: TlsTarget, cafile: Path | None = None) -> MqttCredentials:
    """Host-side TLS to ``target``, trusting ``cafile`` (default: the target's CA)."""
    return MqttCredentials.plain(
        client_id=client_id(),
        host=target.endpoint.host,
        port=target.endpoint.port,
        tls="host",
        cafile=str(cafile or target.cafile),
        certfile=None if target.certfile is None else str(target.certfile),
        keyfile=None if target.keyfile is None else str(target.keyfile),
    )


def opened(bridge: Bridge) -> steps.SocketOpened:
    result = bridge.steps["open_socket"]
    assert isinstance(result, steps.SocketOpened) and result.tls, result
    return result


def record_handshake(board: Board, label: str, handshake: steps.TlsHandshaken) -> None:
    """The handshake in the JUnit properties and in the test's captured output."""
    for name, value in (
        ("version", handshake.version),
        ("cipher", handshake.cipher),
        ("resumed", handshake.resumed),
        ("bytes_sent", handshake.bytes_sent),
        ("bytes_received", handshake.bytes_received),
        ("seconds", round(handshake.seconds, 3)),
    ):
        board.record(f"tls_{label}_{name}", value)
    print(
        f"tls {label} handshake on {board.name}: {handshake.version} {handshake.cipher}, "
        f"resumed={handshake.resumed}, {handshake.bytes_sent} bytes sent, "
        f"{handshake.bytes_received} received, {handshake.seconds:.3f} s"
    )


def take_over(target: TlsTarget, client_id: str, timeout: float) -> None:
    """Connect to the broker over TLS with ``client_id``, so it closes the device's
    connection (MQTT: a new connection with the same client id takes the session over),
    then leave with a DISCONNECT."""
    host = target.endpoint.host
    context = ssl.create_default_context(cafile=str(target.cafile))
    if target.certfile is not None:
        context.load_cert_chain(target.certfile, target.keyfile)
    address = "127.0.0.1" if target.endpoint.loopback else host
    with (
        socket.create_connection((address, target.endpoint.port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(encode(Connect(client_id=client_id, keepalive=30)))
        decoder = PacketDecoder(max_packet_size=1 << 16)
        while (packet := decoder.next_packet()) is None:
            data = tls.recv(4096)
            if not data:
                raise ConnectionError("the broker closed the take-over connection")
            decoder.receive_data(data)
        assert packet == ConnAck(session_present=False, reason_code=0), packet
        with contextlib.suppress(OSError):  # the device may already have taken it back
            tls.sendall(encode(Disconnect()))


async def round_trip(bridge: Bridge, board: Board, target: TlsTarget, topic: str) -> None:
    """A QoS 1 publish seen by paho (over TLS), and paho's QoS 1 message back."""
    paho = target.paho(f"atbridge-hil-paho-{uuid.uuid4().hex[:8]}")
    try:
        paho.subscribe(f"{topic}/up", qos=1)
        assert await bridge.subscribe(f"{topic}/down", qos=1) == 1
        await bridge.publish(f"{topic}/up", b"over tls \x00\xff", qos=1)
        received = await asyncio.to_thread(paho.wait_for, 1, board.timeouts.connack)
        assert received == [(f"{topic}/up", b"over tls \x00\xff", 1)]
        paho.publish(f"{topic}/down", b"hello device", qos=1)
        async with asyncio.timeout(board.timeouts.connack):
            message = await anext(bridge.messages())
        assert (message.topic, message.payload, message.qos) == (
            f"{topic}/down",
            b"hello device",
            1,
        )
    finally:
        paho.close()


async def test_mqtt_round_trip_over_host_side_tls(
    board: Board, apn: str | None, tls_target: TlsTarget, topic: str
) -> None:
    """Online over host-side TLS, a round trip, then a reconnect forced by the broker (a
    session take-over) and a publish after it; both handshakes recorded. The suite's own
    mosquitto resumes TLS sessions, so there the second handshake must be a resumed one."""
    credentials = host_credentials(tls_target)
    config = board.bridge_config(credentials, apn)
    async with Bridge(config=config, online_timeout=board.online_timeout) as bridge:
        board.strategy.ready()
        first = opened(bridge)
        assert first.tls_handshake is not None
        assert first.tls_handshake.version in ("TLSv1.2", "TLSv1.3"), first.tls_handshake
        assert not first.tls_handshake.resumed
        record_handshake(board, "first", first.tls_handshake)
        await round_trip(bridge, board, tls_target, topic)

        transitions = bridge.transitions()
        await asyncio.to_thread(
            take_over, tls_target, credentials.client_id, board.timeouts.connack
        )
        async with asyncio.timeout(board.online_timeout):
            async for transition in transitions:
                if transition.new == State.online and opened(bridge) is not first:
                    break
        await transitions.aclose()  # type: ignore[attr-defined]
        again = opened(bridge)
        assert again.tls_handshake is not None
        record_handshake(board, "reconnect", again.tls_handshake)
        if tls_target.local:
            assert again.tls_handshake.resumed, again.tls_handshake
            assert again.tls_handshake.bytes_received < first.tls_handshake.bytes_received
        paho = tls_target.paho(f"atbridge-hil-paho-{uuid.uuid4().hex[:8]}")
        try:
            paho.subscribe(f"{topic}/after", qos=1)
            await bridge.publish(f"{topic}/after", b"after the reconnect", qos=1)
            received = await asyncio.to_thread(paho.wait_for, 1, board.timeouts.connack)
        finally:
            paho.close()
        assert received == [(f"{topic}/after", b"after the reconnect", 1)]
    assert bridge.state == "disconnected"


def modem_credentials(target: TlsTarget, sec_tag: int) -> MqttCredentials:
    return MqttCredentials.plain(
        client_id=client_id(),
        host=target.endpoint.host,
        port=target.endpoint.port,
        tls="modem",
        sec_tag=sec_tag,
    )


def bound(link: OpenBoard) -> Dialect:
    """The dialect bound to the open board (what :func:`store_for` takes)."""
    dialect = link.dialect
    assert isinstance(dialect, Dialect), dialect
    return dialect


def offloads(dialect: steps.DialectLink) -> bool:
    return isinstance(dialect, steps.TlsOffloader) and dialect.offloads_tls


def credentials_to_write(target: TlsTarget) -> list[tuple[CredentialKind, str]]:
    """The CA and, for mutual TLS, the client pair, as the store takes them."""
    items = [(CredentialKind.CA, read_pem(str(target.cafile), CredentialKind.CA).content)]
    if target.certfile is not None and target.keyfile is not None:
        items.append(
            (
                CredentialKind.CLIENT_CERT,
                read_pem(str(target.certfile), CredentialKind.CLIENT_CERT).content,
            )
        )
        items.append(
            (
                CredentialKind.CLIENT_KEY,
                read_pem(str(target.keyfile), CredentialKind.CLIENT_KEY).content,
            )
        )
    return items


async def provision(
    board: Board,
    sec_tag: int,
    items: list[tuple[CredentialKind, str]],
    written: list[CredentialKind],
) -> None:
    """Write ``items`` under ``sec_tag``; ``written`` gets each kind this test wrote. An
    item the modem already holds with the same digest is used as it is; a different one
    under the tag (or one whose digest the family does not list) is never overwritten."""
    async with board.open() as link:
        store = store_for(bound(link))
        there = {item.kind: item for item in await store.list(sec_tag)}
        for kind, content in items:
            held = there.get(kind)
            if held is not None and not same_digest(held.sha256, content):
                pytest.skip(
                    f"security tag {sec_tag} already holds a {kind.words} on {board.name} that "
                    "this test did not write (or cannot compare): give --atbridge-sec-tag a "
                    f"free tag (atbridge certs list shows them; atbridge certs delete --sec-tag "
                    f"{sec_tag} if it is left from an interrupted run)"
                )
        async with batch(store, "write"):
            for kind, content in items:
                if kind in there:
                    continue  # the same content is there already: kept, not ours to delete
                if await store.write(sec_tag, kind, content):
                    written.append(kind)
        if store.changes:
            print(f"provisioning on {board.name}: {'; '.join(store.changes)}")


async def restore(board: Board, sec_tag: int, written: list[CredentialKind]) -> None:
    """Delete what :func:`provision` wrote (and only that); check it is gone."""
    async with board.open() as link:
        store = store_for(bound(link))
        async with batch(store, "delete"):
            for kind in written:
                await store.delete(sec_tag, kind)
        if store.changes:
            print(f"restoring on {board.name}: {'; '.join(store.changes)}")
        left = {item.kind for item in await store.list(sec_tag)}
    assert not left & set(written), f"still under tag {sec_tag}: {sorted(left & set(written))}"


def require_permission(allowed: bool, board: str, sec_tag: int) -> None:
    """A skip naming the option unless writing to the board's store is allowed."""
    if not allowed:
        pytest.skip(
            f"writing the CA to {board}'s credential store (tag {sec_tag}) changes the "
            "modem: give --atbridge-allow-provision (and --atbridge-sec-tag N for a free tag)"
        )


async def test_mqtt_round_trip_with_tls_on_the_modem(
    board: Board,
    apn: str | None,
    tls_target: TlsTarget,
    sec_tag: int,
    allow_provision: bool,
    topic: str,
) -> None:
    """The CA provisioned under the tag, then a round trip with TLS on the modem; on a modem
    without offload (SIM7000), both the store and ``tls = "modem"`` refuse clearly."""
    async with board.open() as link:
        name = link.probed.dialect_name
        can_offload = offloads(link.dialect)
        if not can_offload:
            with pytest.raises(ConfigurationError) as no_store:
                store_for(bound(link))
    credentials = modem_credentials(tls_target, sec_tag)
    config = board.bridge_config(credentials, apn)
    if not can_offload:
        assert "offload is not supported" in no_store.value.message
        assert "host-side TLS" in (no_store.value.hint or "")
        bridge = Bridge(config=config, online_timeout=board.online_timeout)
        with pytest.raises(Failed):
            async with bridge:
                pass
        failure = bridge.failure
        assert isinstance(failure, ConfigurationError), failure
        assert f"is not supported on the {name}" in failure.message
        assert "--tls host" in (failure.hint or "")
        assert [t.new for t in bridge.history].count(State.opening_socket) == 1
        return
    require_permission(allow_provision, board.name, sec_tag)
    written: list[CredentialKind] = []
    try:
        await provision(board, sec_tag, credentials_to_write(tls_target), written)
        async with Bridge(config=config, online_timeout=board.online_timeout) as bridge:
            board.strategy.ready()
            socket_opened = opened(bridge)
            assert socket_opened.tls_handshake is None  # the modem did the handshake
            board.record("tls_offload_sec_tag", sec_tag)
            await round_trip(bridge, board, tls_target, topic)
        assert bridge.state == "disconnected"
    finally:
        await restore(board, sec_tag, written)
    if board.fake is not None:  # its store starts empty: everything was written, then deleted
        assert written == [kind for kind, _content in credentials_to_write(tls_target)]


async def test_a_wrong_ca_stops_the_bridge_at_once(
    board: Board, apn: str | None, tls_target: TlsTarget, other_ca: Path
) -> None:
    """Host-side TLS trusting a CA that did not sign the broker: TlsRefused saying so, the
    bridge stops after one socket (no reconnect storm)."""
    config = board.bridge_config(host_credentials(tls_target, other_ca), apn)
    bridge = Bridge(config=config, online_timeout=board.online_timeout)
    with pytest.raises(Failed):
        async with bridge:
            pass
    failure = bridge.failure
    assert isinstance(failure, TlsRefused), failure
    assert "not signed by a CA you trust" in failure.message
    assert "--cafile" in (failure.hint or "")
    assert [t.new for t in bridge.history].count(State.opening_socket) == 1


# -- the options, the permission and the tag, as a user with a board meets them ---------------


@pytest.mark.parametrize("dialect", ["nrf91-slm"], indirect=True)
async def test_provisioning_keeps_what_the_tag_held(
    board: Board, tls_target: TlsTarget, sec_tag: int
) -> None:
    """The same CA already under the tag is used and kept (not written, not deleted); a
    different one is never overwritten: the test is skipped, naming --atbridge-sec-tag."""
    assert board.fake is not None
    items = credentials_to_write(tls_target)
    ca = items[0][1]
    nrf91_tls.store(board.fake, sec_tag, nrf91_tls.CA, ca)
    written: list[CredentialKind] = []
    await provision(board, sec_tag, items, written)
    await restore(board, sec_tag, written)
    assert written == []
    assert nrf91_tls.credentials(board.fake) == {(sec_tag, nrf91_tls.CA): ca}

    nrf91_tls.store(board.fake, sec_tag, nrf91_tls.CA, ca.replace("\n", "\n\n", 1))
    with pytest.raises(pytest.skip.Exception, match=f"tag {sec_tag} already holds a CA cert"):
        await provision(board, sec_tag, items, written)
    assert written == []
    assert not any(line.startswith("AT%CMNG=0") for line in board.fake.commands)


def test_a_real_board_needs_a_tls_broker_and_the_permission_to_write() -> None:
    with pytest.raises(pytest.skip.Exception, match="give --atbridge-tls-broker HOST:PORT"):
        given_tls_target("/dev/ttyACM0", None, None)
    assert given_tls_target(None, None, None) is None  # the fake: the suite's own broker
    with pytest.raises(pytest.skip.Exception, match="give --atbridge-allow-provision"):
        require_permission(False, "/dev/ttyACM0", 42)
    require_permission(True, "/dev/ttyACM0", 42)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cafile": "ca.pem"}, "--atbridge-cafile names the CA"),
        ({"tls_broker": "b.example:8883"}, "--atbridge-cafile names the CA"),
        ({"tls_broker": "broker.example", "cafile": "x"}, "--atbridge-tls-broker 'broker.example'"),
        (
            {"tls_broker": "b.example:8883", "cafile": "/no/such/ca.pem"},
            "--atbridge-cafile /no/such/ca.pem: no such file",
        ),
        ({"client_key": "key.pem"}, "go together: give both or neither"),
        ({"client_cert": "c.pem", "client_key": "k.pem"}, "is for --atbridge-tls-broker"),
        ({"sec_tag": -1}, "--atbridge-sec-tag -1 is outside 0..2147483647"),
        ({"sec_tag": 2**31}, "--atbridge-sec-tag 2147483648 is outside"),
    ],
)
def test_tls_options_that_cannot_work_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(pytest.UsageError) as refused:
        check_tls_options(options)
    assert message in str(refused.value)


def test_tls_options_that_work_pass(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem"))
    for path in (ca, cert, key):
        path.write_text("PEM")
    check_tls_options({})
    check_tls_options(
        {
            "tls_broker": "broker.example:8883",
            "cafile": str(ca),
            "client_cert": str(cert),
            "client_key": str(key),
            "sec_tag": 0,
        }
    )


# A fake modem served by this test, given to a pytest of its own by its port: the plugin
# sees a real board (no fake attached), so the options and the skips are those of a board.

ROOT = Path(__file__).resolve().parent.parent
BOARD_TESTS = "host_side_tls or tls_on_the_modem or wrong_ca"


async def run_hil(*args: str) -> tuple[int, str]:
    """``pytest hil/test_tls.py -rs ARGS`` in a process of its own (awaited, so a fake
    modem in this loop keeps answering); its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        "--rootdir",
        str(ROOT),
        str(ROOT / "hil" / "test_tls.py"),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(120):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.fixture
def mtls_broker(local_tls_broker: LocalTls) -> Iterator[tuple[Mosquitto, Path, Path]]:
    """A TLS mosquitto that requires a client certificate, and a client pair it accepts."""
    certs = local_tls_broker.certs
    cert, key = certs.issue("localhost", "127.0.0.1")
    client_cert, client_key = certs.issue("device-hil")
    with Mosquitto(tls=TlsListener(certs.cafile, cert, key, require_certificate=True)) as broker:
        yield broker, client_cert, client_key


async def test_a_board_by_its_port_with_mutual_tls_and_the_permission_to_provision(
    local_tls_broker: LocalTls, mtls_broker: tuple[Mosquitto, Path, Path], tmp_path: Path
) -> None:
    """Given by its port, a board runs the TLS tests against ``--atbridge-tls-broker`` with a
    client pair (mutual TLS); the offload test is skipped, naming the option, until
    ``--atbridge-allow-provision``, then writes the CA and the pair under
    ``--atbridge-sec-tag`` and deletes them again."""
    broker, client_cert, client_key = mtls_broker
    async with FakeModem(dialect="nrf91-sm", registration_delay=0.05) as fake:
        options = [
            f"--atbridge-port={fake.port}",
            "--atbridge-dialect=nrf91-sm",
            "--atbridge-attach-timeout=10",
            f"--hil-log-dir={tmp_path / 'logs'}",
            f"--atbridge-tls-broker=localhost:{broker.port}",
            f"--atbridge-cafile={local_tls_broker.certs.cafile}",
            f"--atbridge-client-cert={client_cert}",
            f"--atbridge-client-key={client_key}",
        ]
        code, output = await run_hil("-k", "tls_on_the_modem", *options)
        assert code == 0, output[-3000:]
        assert "1 skipped" in output and "give --atbridge-allow-provision" in output, output
        assert not any(line.startswith("AT%CMNG=0") for line in fake.commands)

        allowed = [*options, "--atbridge-allow-provision", "--atbridge-sec-tag=4242"]
        code, output = await run_hil("-k", BOARD_TESTS, *allowed)
        assert code == 0, output[-3000:]
        assert "3 passed" in output, output[-3000:]
        for kind in (nrf91_tls.CA, nrf91_tls.CLIENT_CERT, nrf91_tls.CLIENT_KEY):
            assert any(line.startswith(f"AT%CMNG=0,4242,{kind},") for line in fake.commands)
            assert f"AT%CMNG=3,4242,{kind}" in fake.commands
        assert nrf91_tls.credentials(fake) == {}  # what the test wrote is gone


async def test_tls_options_that_cannot_work_stop_pytest_at_start_up() -> None:
    code, output = await run_hil("--collect-only", "--atbridge-cafile=ca.pem")
    assert code == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    assert "ERROR: --atbridge-cafile names the CA" in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
