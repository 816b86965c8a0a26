"""A real mosquitto broker on a free loopback port, for tests and benchmarks.

Started with its own config in a temporary folder, ready when it says so on its
log ("... running"), stopped (and killed if it will not stop) on exit. It can
be stopped and started again on the same port, for broker-outage tests.

``Mosquitto(tls=TlsListener(...))`` makes its listener a TLS one (mosquitto's
``cafile``/``certfile``/``keyfile``/``require_certificate``/``tls_version`` listener
options); :class:`Certificates` is a test CA (``trustme``) that issues the broker's and
the clients' certificates as PEM files, expired ones included.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Certificates:
    """A throwaway CA (``trustme``) in a folder of its own; :meth:`issue` writes PEM files.

    ``rsa`` issues RSA-2048 keys (a chain the size real brokers send) instead of
    trustme's small ECDSA ones; ``intermediate`` signs leaves with an intermediate CA, so
    the broker sends a chain of two, as public CAs do.
    """

    def __init__(self, *, rsa: bool = False, intermediate: bool = False) -> None:
        import trustme

        self._key_type = trustme.KeyType.RSA if rsa else trustme.KeyType.ECDSA
        self.dir = Path(tempfile.mkdtemp(prefix="atbridge-certs-"))
        self.dir.chmod(0o755)  # mosquitto drops to its own user and must read them
        self.root = trustme.CA(key_type=self._key_type)
        self.ca = self.root.create_child_ca(key_type=self._key_type) if intermediate else self.root
        self.cafile = self.dir / "ca.pem"
        self.root.cert_pem.write_to_path(str(self.cafile))
        self._issued = 0

    def issue(
        self, *names: str, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> tuple[Path, Path]:
        """A certificate for ``names`` (host names, IP addresses) and its key: (cert, key).

        The certificate file holds the leaf and any intermediate (never the root).
        """
        leaf = self.ca.issue_cert(
            *names, not_before=not_before, not_after=not_after, key_type=self._key_type
        )
        self._issued += 1
        cert = self.dir / f"cert{self._issued}.pem"
        key = self.dir / f"key{self._issued}.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        for path in (cert, key):
            path.chmod(0o644)
        return cert, key

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass(frozen=True)
class TlsListener:
    """The TLS settings of a mosquitto listener (mosquitto.conf(5) listener options)."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False
    #: mosquitto's ``tls_version`` (the lowest it accepts): "tlsv1.2", "tlsv1.3".
    tls_version: str | None = None

    def config_lines(self) -> list[str]:
        lines = [f"cafile {self.cafile}", f"certfile {self.certfile}", f"keyfile {self.keyfile}"]
        lines.append(f"require_certificate {'true' if self.require_certificate else 'false'}")
        if self.tls_version is not None:
            lines.append(f"tls_version {self.tls_version}")
        return lines


class Mosquitto:
    """``with Mosquitto() as broker:`` — ``broker.port`` on 127.0.0.1 (TLS with ``tls``)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        ready_timeout: float = 10.0,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        acl: str | None = None,
        tls: TlsListener | None = None,
    ) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError(
                "mosquitto is not installed: run scripts/setup (apt-get install mosquitto)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="atbridge-mosquitto-"))
        # Started as root, mosquitto drops to its own user: let it read and write here.
        self._dir.chmod(0o777)
        self.config = self._dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr"]
        self.tls = tls
        if tls is not None:
            lines += tls.config_lines()
        lines += [f"log_type {kind}" for kind in ("error", "warning", "notice", "information")]
        if users:
            passwords = self._dir / "passwords"
            passwords.write_text("".join(f"{user}:{pw}\n" for user, pw in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:  # mosquitto acl_file text, e.g. "topic readwrite allowed/#"
            acl_file = self._dir / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        if persistence:
            lines += ["persistence true", f"persistence_location {self._dir}/"]
        else:
            lines.append("persistence false")
        self.config.write_text("\n".join(lines) + "\n")
        self.log: list[str] = []
        self._log_changed = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the broker and return once it listens."""
        proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        ready = threading.Event()

        def read_log() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                with self._log_changed:
                    self.log.append(line.rstrip())
                    self._log_changed.notify_all()
                if " running" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read_log, name="mosquitto-log", daemon=True).start()
        if not ready.wait(self.ready_timeout) or proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log[-5:]}")

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Block (at most ``timeout`` s) until a log line contains ``text``; return that line."""
        deadline = time.monotonic() + timeout
        with self._log_changed:
            while True:
                for line in self.log:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"mosquitto logged no {text!r}: {self.log[-5:]}")
                self._log_changed.wait(left)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class PahoPeer:
    """A paho-mqtt client on the broker, the reference peer of every MQTT test.

    Collects what it receives in ``messages`` (topic, payload, qos); ``wait_for``
    blocks (bounded) until a condition on them holds.
    """

    def __init__(
        self,
        port: int,
        client_id: str = "paho-peer",
        *,
        clean_session: bool = True,
        username: str | None = None,
        password: str | None = None,
        tls: tuple[Path, Path | None, Path | None] | None = None,
    ) -> None:
        """``tls``: (CA file, client certificate, its key) for a TLS listener."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, int]] = []
        self._changed = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls is not None:
            cafile, certfile, keyfile = tls
            client.tls_set(
                ca_certs=str(cafile),
                certfile=None if certfile is None else str(certfile),
                keyfile=None if keyfile is None else str(keyfile),
            )
        client.on_connect = lambda *_args: self._connected.set()
        # paho annotates whole seconds but takes fractions: reconnect fast after a restart.
        client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        client.on_subscribe = lambda *_args: self._subscribed.set()
        client.on_message = self._on_message
        self.client = client
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise RuntimeError("paho could not connect to the test broker")

    def _on_message(self, _client: object, _userdata: object, message: object) -> None:
        with self._changed:
            self.messages.append((message.topic, bytes(message.payload), message.qos))  # type: ignore[attr-defined]
            self._changed.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        if not self._subscribed.wait(10):
            raise RuntimeError(f"paho got no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(10)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes, int]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"paho received {len(self.messages)} of {count} messages")
                self._changed.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
