"""The hil/ suite's options, boards and reports live in the pytest plugin
:mod:`atbridge.farm.plugin` (entry point ``pytest11``: loaded by every pytest where atbridge is
installed), so a user's own checkout of board tests gets the same fixtures.

Theory of operation
-------------------
What is here is what only ``hil/test_tls.py`` needs: the TLS broker it talks to.

- ``--atbridge-tls-broker HOST:PORT`` with ``--atbridge-cafile`` (and, for mutual TLS,
  ``--atbridge-client-cert``/``--atbridge-client-key``): that broker, as given.
- Neither, on the fake modem: a mosquitto with a TLS listener on a free loopback port
  (``tests.brokers.Mosquitto`` with a ``TlsListener``), its certificate for ``localhost``
  and 127.0.0.1 signed by a CA made at run time (``tests.brokers.Certificates``, trustme),
  one per session, stopped and removed at its end.
- Neither, on a real board: the TLS tests are skipped saying which option to give (a
  loopback broker is out of the board's reach).

:class:`TlsTarget` carries the broker, its CA and the client pair to the tests, and makes
the paho-mqtt peer on it (over TLS, trusting the same CA).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atbridge.farm.plugin import Endpoint, paho_peer
from tests.brokers import Certificates, Mosquitto, PahoPeer, TlsListener


@dataclass(frozen=True)
class TlsTarget:
    """A TLS broker the board reaches: where, the CA that signed it, the client pair."""

    endpoint: Endpoint
    cafile: Path
    certfile: Path | None = None
    keyfile: Path | None = None
    #: The suite's own mosquitto (its settings are known: it resumes TLS sessions).
    local: bool = False

    def paho(self, client_id: str) -> PahoPeer:
        """A paho-mqtt client on this broker over TLS (trusting ``cafile``)."""
        return paho_peer(self.endpoint, client_id, tls=(self.cafile, self.certfile, self.keyfile))


@dataclass(frozen=True)
class LocalTls:
    certs: Certificates
    broker: Mosquitto


@pytest.fixture(scope="session")
def local_tls_broker() -> Iterator[LocalTls]:
    """A TLS mosquitto on a free loopback port with a CA made for this session."""
    certs = Certificates()
    try:
        cert, key = certs.issue("localhost", "127.0.0.1")
        with Mosquitto(tls=TlsListener(certs.cafile, cert, key)) as mosquitto:
            yield LocalTls(certs, mosquitto)
    finally:
        certs.remove()


def given_tls_target(
    port: str | None,
    tls_broker: Endpoint | None,
    cafile: Path | None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> TlsTarget | None:
    """The TLS broker the options name; None when the suite's own is to be used (the fake
    modem); a skip naming the options on a real board without one (a loopback broker is
    out of its reach)."""
    if tls_broker is not None:
        if cafile is None:  # the plugin refuses this at start-up; a parametrized test may not
            raise pytest.UsageError("--atbridge-tls-broker needs --atbridge-cafile")
        return TlsTarget(tls_broker, cafile, client_cert, client_key)
    if port is not None:
        pytest.skip(
            f"{port} needs a TLS broker it can reach: give --atbridge-tls-broker HOST:PORT "
            "and --atbridge-cafile FILE (the CA that signed its certificate)"
        )
    return None


@pytest.fixture
def tls_target(
    request: pytest.FixtureRequest,
    port: str | None,
    tls_broker: Endpoint | None,
    cafile: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> TlsTarget:
    """The TLS broker of the options, or (fake modem) the suite's own."""
    given = given_tls_target(port, tls_broker, cafile, client_cert, client_key)
    if given is not None:
        return given
    local: LocalTls = request.getfixturevalue("local_tls_broker")
    return TlsTarget(Endpoint("localhost", local.broker.port), local.certs.cafile, local=True)


@pytest.fixture
def other_ca() -> Iterator[Path]:
    """The certificate of a CA made now, which signed nothing any broker sends."""
    certs = Certificates()
    try:
        yield certs.cafile
    finally:
        certs.remove()
