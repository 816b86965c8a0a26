"""The host end of a fake modem's pty for tests that speak raw bytes: bounded reads, arrival times.

Used by the fake modems' own tests, which check the documented bytes exactly and so must not go
through atbridge's AT channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable


class Client:
    """The host end of the pty: raw bytes in and out, bounded reads, arrival times."""

    def __init__(self, port: str, *, read_timeout: float = 2.0) -> None:
        self.read_timeout = read_timeout
        self._loop = asyncio.get_running_loop()
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._out = bytearray()
        self._buf = bytearray()
        self._event = asyncio.Event()
        self.arrivals: list[tuple[float, int]] = []
        self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self.arrivals.append((self._loop.time(), len(data)))
        self._buf += data
        self._event.set()

    def write(self, data: bytes) -> None:
        if not self._out:
            with contextlib.suppress(BlockingIOError):
                data = data[os.write(self.fd, data) :]
            if data:
                self._loop.add_writer(self.fd, self._on_writable)
        self._out += data

    def _on_writable(self) -> None:
        del self._out[: os.write(self.fd, self._out)]
        if not self._out:
            self._loop.remove_writer(self.fd)

    async def _wait_for(self, ready: Callable[[], bool], timeout: float | None) -> None:
        async def wait() -> None:
            while not ready():
                self._event.clear()
                await self._event.wait()

        await asyncio.wait_for(wait(), self.read_timeout if timeout is None else timeout)

    async def read_exactly(self, count: int, timeout: float | None = None) -> bytes:
        try:
            await self._wait_for(lambda: len(self._buf) >= count, timeout)
        except TimeoutError:
            raise AssertionError(f"wanted {count} bytes, got {bytes(self._buf)!r}") from None
        data = bytes(self._buf[:count])
        del self._buf[:count]
        return data

    async def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        try:
            await self._wait_for(lambda: marker in self._buf, timeout)
        except TimeoutError:
            raise AssertionError(f"no {marker!r} in {bytes(self._buf)!r}") from None
        end = self._buf.index(marker) + len(marker)
        data = bytes(self._buf[:end])
        del self._buf[:end]
        return data

    async def expect(self, expected: bytes, timeout: float | None = None) -> None:
        assert await self.read_exactly(len(expected), timeout) == expected

    async def ask(self, command: bytes, expected: bytes) -> None:
        self.write(command)
        await self.expect(expected)

    def pending(self) -> bytes:
        """Bytes received and not read yet."""
        return bytes(self._buf)

    def close(self) -> None:
        """Close the pty; safe to call twice."""
        if self.fd < 0:
            return
        self._loop.remove_reader(self.fd)
        self._loop.remove_writer(self.fd)
        os.close(self.fd)
        self.fd = -1
