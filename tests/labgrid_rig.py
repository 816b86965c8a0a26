"""A real labgrid on 127.0.0.1 for tests: coordinator, exporters serving fake modems, places.

``with LabgridRig(tmp_path) as rig:`` starts ``labgrid-coordinator`` on a free loopback
port (in its own folder: it saves ``places.yaml`` there); ``rig.board("rack-a", "sim7080")``
starts a fake modem (``python -m tests.fakes``, which prints its pty), a ``labgrid-exporter``
that exports that pty as a ``RawSerialPort`` (served through ser2net as a
``NetworkSerialPort`` while the place is acquired), and creates the place with
``labgrid-client create`` / ``add-match``. ``rig.client(...)`` runs ``labgrid-client`` against
this coordinator. Every wait is on a log line or a coordinator update, bounded; every process
is stopped on exit (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.brokers import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _program(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


class Process:
    """A child whose output is kept line by line; :meth:`wait_for` blocks on a line."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, name=f"{name}-log", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-15:])
                    raise RuntimeError(f"{self.name} printed no {text!r}:\n{tail}")
                self._changed.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class RigBoard:
    place: str
    dialect: str
    pty: str
    exporter: str


class LabgridRig:
    """A coordinator and its exporters (module doc)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LG_COORDINATOR": self.address,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[Process] = []
        self.boards: dict[str, RigBoard] = {}

    def _start(self, name: str, argv: list[str], cwd: Path) -> Process:
        cwd.mkdir(parents=True, exist_ok=True)
        process = Process(name, argv, cwd, self.env)
        self.processes.append(process)
        return process

    def __enter__(self) -> LabgridRig:
        try:
            coordinator = self._start(
                "labgrid-coordinator",
                [_program("labgrid-coordinator"), "-l", self.address],
                self.workdir / "coordinator",
            )
            coordinator.wait_for("Coordinator ready")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def client(
        self, *args: str, user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``labgrid-client -x <this coordinator> ARGS`` (as ``user`` if given)."""
        env = dict(self.env)
        if user is not None:
            env["LG_USERNAME"] = user
        result = subprocess.run(
            [_program("labgrid-client"), "-x", self.address, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def board(self, place: str, dialect: str, *, tags: dict[str, str] | None = None) -> RigBoard:
        """A fake modem exported by its own labgrid-exporter, and a place matching it."""
        folder = self.workdir / place
        fake = self._start(
            f"fake {dialect}",
            [sys.executable, "-m", "tests.fakes", "--dialect", dialect],
            folder,
        )
        pty = fake.wait_for("/dev/")
        exporter = f"exporter-{place}"
        config = folder / "exporter.yaml"
        config.write_text(f"board:\n  RawSerialPort:\n    port: {pty}\n    speed: 115200\n")
        process = self._start(
            exporter,
            [
                _program("labgrid-exporter"),
                "-c",
                self.address,
                "-n",
                exporter,
                "--hostname",
                "127.0.0.1",
                str(config),
            ],
            folder,
        )
        process.wait_for("connected to coordinator")
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"{exporter}/board/NetworkSerialPort")
        if tags:
            self.client("-p", place, "set-tags", *(f"{k}={v}" for k, v in tags.items()))
        asyncio.run(self._resource_known(exporter))
        board = RigBoard(place, dialect, pty, exporter)
        self.boards[place] = board
        return board

    async def _resource_known(self, exporter: str, timeout: float = 15.0) -> None:
        """Until the coordinator lists the exporter's serial port (a coordinator update)."""
        from atbridge.farm.places import _session

        async with asyncio.timeout(timeout), _session(self.address) as session:
            while exporter not in session.resources:
                session.updated.clear()
                await session.sync_with_coordinator()
                if exporter in session.resources:
                    break
                await session.updated.wait()

    def acquired_by(self, place: str) -> str | None:
        """Who holds ``place`` (labgrid's ``host/user``), from ``labgrid-client show``."""
        shown = self.client("-p", place, "show").stdout
        for line in shown.splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value in ("", "None") else value
        return None
