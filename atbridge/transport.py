"""Transports for the AT channel beyond pyserial-asyncio-fast's defaults.

Device paths (``/dev/ttyACM0``, ptys) go through pyserial-asyncio-fast's transport
over :func:`open_device`'s port, whose non-blocking read is a single ``os.read``
(see :func:`open_device`).

A thread-backed asyncio transport serves serial ports without a file descriptor.

pyserial-asyncio-fast watches the port's file descriptor with the event loop, so
ports that have none — ``rfc2217://host:port`` (a board exported by ser2net's
``telnet(rfc2217)`` accepter or a labgrid exporter) — cannot use it. This adapter
runs the blocking pyserial port in two threads instead: a reader that hands every
chunk to the protocol on the loop (``call_soon_threadsafe``), and a writer that
sends queued bytes in order. The protocol sees an ordinary
:class:`asyncio.Transport`; ``close()`` stops both threads and calls
``connection_lost`` on the loop once the port is closed.

Devices are opened exclusively (pyserial's ``exclusive=True``: a POSIX ``flock`` on the
descriptor), so a second atbridge (or any program that locks the same way: pyserial's
``miniterm --exclusive``, ``flock(1)``) fails at once instead of sharing the modem's
bytes with the first. :func:`port_holders` says who holds it (Linux: the lock's owner
from ``/proc/locks``, else the other processes with the device open in ``/proc/*/fd``)
for the message; elsewhere it finds nobody and the message says "another process".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import queue
import select
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serial_asyncio_fast import SerialTransport

#: ``os.read`` errors that mean "nothing to read now", as pyserial treats them.
_NOTHING_YET = frozenset(
    {errno.EAGAIN, errno.EALREADY, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EINTR}
)

_STOP = b""


class ThreadedSerialTransport(asyncio.Transport):
    """An asyncio transport over a blocking pyserial port (see the module comment)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, port: Any, protocol: asyncio.Protocol
    ) -> None:
        super().__init__()
        self._loop = loop
        self._port = port
        self._protocol = protocol
        self._closing = False
        self._lost = False
        self._outgoing: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, name="atbridge-rx", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="atbridge-tx", daemon=True)

    def start(self) -> None:
        self._loop.call_soon(self._protocol.connection_made, self)
        self._reader.start()
        self._writer.start()

    # -- asyncio.Transport -----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self._outgoing.put(bytes(data))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._outgoing.put(_STOP)
        threading.Thread(target=self._shut_down, name="atbridge-close", daemon=True).start()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._port if name == "serial" else default

    # -- threads -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        port = self._port
        error: Exception | None = None
        try:
            while not self._closing:
                data = port.read(max(1, port.in_waiting))
                if data and not self._closing:
                    self._loop.call_soon_threadsafe(self._protocol.data_received, data)
        except Exception as exc:  # the port or the network went away
            error = exc
        if not self._closing:
            self._closing = True
            self._outgoing.put(_STOP)
            self._lose(error)

    def _write_loop(self) -> None:
        while True:
            data = self._outgoing.get()
            if not data:  # _STOP
                return
            try:
                self._port.write(data)
            except Exception as exc:
                if not self._closing:
                    self._closing = True
                    self._lose(exc)
                return

    def _shut_down(self) -> None:
        self._writer.join(timeout=5)
        try:
            self._port.close()
        finally:
            self._reader.join(timeout=5)
            self._lose(None)

    def _lose(self, error: Exception | None) -> None:
        def deliver() -> None:
            if not self._lost:
                self._lost = True
                self._protocol.connection_lost(error)

        # A closed loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(deliver)


async def open_threaded(
    url: str, protocol: asyncio.Protocol, *, baudrate: int, rtscts: bool
) -> ThreadedSerialTransport:
    """Open ``url`` with pyserial in a worker thread and wrap it in a transport."""
    import serial

    loop = asyncio.get_running_loop()
    port = await loop.run_in_executor(
        None,
        functools.partial(
            serial.serial_for_url, url, baudrate=baudrate, rtscts=rtscts, timeout=0.05
        ),
    )
    transport = ThreadedSerialTransport(loop, port, protocol)
    transport.start()
    return transport


async def open_socket_url(url: str, protocol: asyncio.Protocol) -> asyncio.Transport:
    """Connect to ``socket://host:port`` (a raw TCP export: ser2net, socat) with the loop's own
    TCP transport.

    pyserial checks the URL first (its ``socket://`` handler, without connecting), so a
    malformed one fails as it would for pyserial. pyserial-asyncio-fast does the same and
    then sets attributes on the loop's transport for pyserial's API, which a transport of C
    type refuses (uvloop's ``TCPTransport``: ``AttributeError``); atbridge needs none of them,
    so this works on either loop (:mod:`atbridge.eventloop`)."""
    import urllib.parse

    import serial

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        None, functools.partial(serial.serial_for_url, url, do_not_open=True)
    )
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or parsed.port is None:
        raise ValueError(f"expected socket://<host>:<port>, got {url!r}")
    transport, _ = await loop.create_connection(lambda: protocol, parsed.hostname, parsed.port)
    return transport


@functools.cache
def _direct_read_serial_class() -> Any:
    """The class, made once on first use (pyserial is imported only then)."""
    import serial

    class DirectReadSerial(serial.Serial):  # type: ignore[misc]
        """pyserial's POSIX port with a one-system-call non-blocking read and write.

        pyserial-asyncio-fast sets ``timeout = 0`` and calls ``read`` when the event loop
        has seen the descriptor readable; pyserial's ``read`` then asks ``select`` again
        before ``os.read``, builds a timeout object and a buffer: costs paid on every
        chunk of every response. With ``timeout == 0`` this ``read`` is one ``os.read``
        when bytes are waiting, and pyserial's outcomes otherwise: ``b""`` when none
        are, :class:`serial.SerialException` when the device is gone (readable with
        nothing to read, or an error other than "try again"). Other timeouts use
        pyserial's own ``read``.
        """

        def read(self, size: int = 1) -> bytes:
            if self._timeout != 0 or not self.is_open:
                return super().read(size)  # type: ignore[no-any-return]
            data = self._read_once(size)
            if data:
                return data
            # Nothing (pyserial sets VMIN = 0, so an empty read is not end of file by
            # itself): pyserial's own test tells "nothing yet" from "device gone".
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready:
                return b""
            data = self._read_once(size)
            if not data:
                raise serial.SerialException(
                    "device reports readiness to read but returned no data "
                    "(device disconnected or multiple access on port?)"
                )
            return data

        def _read_once(self, size: int) -> bytes:
            try:
                return os.read(self.fd, size)
            except OSError as exc:
                if exc.errno in _NOTHING_YET:
                    return b""
                raise serial.SerialException(f"read failed: {exc}") from exc

        def write(self, data: bytes | bytearray | memoryview) -> int:
            """With ``write_timeout == 0`` (pyserial-asyncio-fast sets it), one ``os.write``:
            the bytes the device took, :class:`BlockingIOError` when it takes none now (the
            transport keeps them for later), :class:`serial.SerialException` when it is
            gone. pyserial's own ``write`` (other timeouts) builds a timeout object and
            converts the data first, on every write of every command (issue 16)."""
            if self._write_timeout != 0 or not self.is_open:
                return super().write(data)  # type: ignore[no-any-return]
            try:
                return os.write(self.fd, data)
            except OSError as exc:
                if exc.errno in _NOTHING_YET:
                    raise BlockingIOError(exc.errno, exc.strerror) from exc
                raise serial.SerialException(f"write failed: {exc}") from exc

    return DirectReadSerial


async def open_device(
    path: str, protocol: asyncio.Protocol, *, baudrate: int, rtscts: bool, exclusive: bool = True
) -> asyncio.Transport:
    """Open the device at ``path`` (a tty or a pty) in a worker thread, so a slow open
    never stalls the loop, and serve it with pyserial-asyncio-fast's transport.

    ``exclusive`` (the default) locks it; ``False`` leaves it unlocked and shared.

    A device another process holds locked fails with :class:`serial.SerialException`
    whose ``errno`` is ``EWOULDBLOCK`` (see :func:`lock_refused`)."""
    loop = asyncio.get_running_loop()
    port_class = _direct_read_serial_class()
    port = await loop.run_in_executor(
        None,
        functools.partial(
            port_class, path, baudrate=baudrate, rtscts=rtscts, exclusive=exclusive or None
        ),
    )
    return _serial_transport_class()(loop, protocol, port)


@functools.cache
def _serial_transport_class() -> type[SerialTransport]:
    """pyserial-asyncio-fast's ``SerialTransport``, with its writer removed once the write
    buffer is empty.

    Its version 0.16 (the newest) leaves the writer registered after a write the device
    took only in part: once the rest has gone, the loop calls ``_write_ready`` on every
    turn with nothing to write, which raises ``AssertionError: Write buffer should not be
    empty`` into the loop's exception handler, without end — a spinning loop flooding the
    log after any write larger than the tty takes at once (a certificate upload, a large
    socket send on a slow port). Checked by ``tests/test_transport_writes.py``; the
    override goes once the library removes its writer itself.
    """
    import serial_asyncio_fast

    class DrainingSerialTransport(serial_asyncio_fast.SerialTransport):
        def _write_ready(self) -> None:
            if self._write_buffer:
                super()._write_ready()
            if not self._write_buffer:
                self._remove_writer()

    return DrainingSerialTransport


@dataclass(frozen=True, slots=True)
class Holder:
    """A process that holds a device: its PID and command line (``""`` if unreadable)."""

    pid: int
    cmdline: str

    def describe(self) -> str:
        return f"PID {self.pid} ({self.cmdline})" if self.cmdline else f"PID {self.pid}"


#: The longest command line shown for a holder.
_CMDLINE_SHOWN = 80


def lock_refused(exc: BaseException) -> bool:
    """Whether opening failed because another process holds the device's lock."""
    return isinstance(exc, OSError) and exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)


def _cmdline(proc: Path) -> str:
    try:
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= _CMDLINE_SHOWN else text[: _CMDLINE_SHOWN - 3] + "..."


def _lock_owners(device: os.stat_result, proc: Path) -> list[int]:
    """PIDs ``/proc/locks`` names for a lock on ``device`` (``MAJ:MIN:INODE``, hex:hex:dec)."""
    key = f"{os.major(device.st_dev):02x}:{os.minor(device.st_dev):02x}:{device.st_ino}"
    try:
        lines = (proc / "locks").read_text().splitlines()
    except OSError:
        return []
    owners = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 3182 00:1a:3 0 EOF" ("->" marks a waiter: skipped)
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == key and fields[4].isdigit():
            owners.append(int(fields[4]))
    return owners


def _openers(path: str, proc: Path, me: int) -> list[int]:
    """PIDs (not ``me``) with ``path`` open, from the ``/proc/<pid>/fd`` links they let us read."""
    found = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            links = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for link in links:
            with contextlib.suppress(OSError):
                if os.readlink(link) == path:
                    found.append(int(entry.name))
                    break
    return found


def port_holders(path: str, *, proc: Path = Path("/proc")) -> tuple[Holder, ...]:
    """Who holds the device ``path``: its lock's owners, else the other processes that have
    it open; empty where ``/proc`` does not tell (not Linux, or other users' processes)."""
    try:
        real = os.path.realpath(path)
        device = os.stat(real)
    except OSError:
        return ()
    pids = _lock_owners(device, proc) or _openers(real, proc, os.getpid())
    return tuple(Holder(pid, _cmdline(proc / str(pid))) for pid in dict.fromkeys(pids))
