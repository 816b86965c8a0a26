"""Writes larger than the tty takes at once (pyserial-asyncio-fast 0.16's transport left
its writer registered after them: the loop then raised ``AssertionError: Write buffer
should not be empty`` on every turn, without end)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pty
import tty
from collections.abc import AsyncIterator
from typing import Any

import pytest

from atbridge.transport import open_device


class Received(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:  # nothing comes back in this test
        raise AssertionError(data)


async def read_from(master: int, size: int) -> bytes:
    """``size`` bytes from the pty's ``master``, as they come (within 30 s)."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(master, readable.set)
    got = bytearray()
    try:
        async with asyncio.timeout(30):
            while len(got) < size:
                await readable.wait()
                readable.clear()
                try:
                    got += os.read(master, 1 << 16)
                except BlockingIOError:
                    continue
    finally:
        loop.remove_reader(master)
    return bytes(got)


#: The pty's master, the slave's name, the transport on it, the loop's errors.
Rig = tuple[int, str, asyncio.Transport, list[dict[str, Any]]]


@contextlib.asynccontextmanager
async def pty_transport() -> AsyncIterator[
    tuple[int, str, asyncio.Transport, list[dict[str, Any]]]
]:
    """A raw pty (its master, non-blocking, and its slave's name), atbridge's transport on
    the slave, and the errors the event loop's exception handler saw meanwhile."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    transport = await open_device(os.ttyname(slave), Received(), baudrate=115200, rtscts=False)
    try:
        yield master, os.ttyname(slave), transport, errors
    finally:
        transport.close()
        await asyncio.sleep(0)
        loop.set_exception_handler(previous)
        os.close(master)
        os.close(slave)


async def test_a_write_the_pty_takes_in_part_goes_out_whole_and_leaves_the_loop_quiet() -> None:
    async with pty_transport() as (master, _name, transport, errors):
        data = bytes(range(256)) * 800  # 200 KiB: far more than a pty buffers
        transport.write(data)
        assert transport.get_write_buffer_size() > 0  # taken only in part
        assert await read_from(master, len(data)) == data
        for _ in range(200):  # the old writer fired on every one of these turns
            await asyncio.sleep(0)
        assert errors == []
        assert transport.get_write_buffer_size() == 0


async def test_a_write_to_a_full_pty_is_kept_and_goes_out_when_it_drains() -> None:
    """The one-call write (``DirectReadSerial.write``) meets EAGAIN: the transport keeps
    the bytes and sends them, in order, once the tty takes them again."""
    async with pty_transport() as (master, name, transport, errors):
        filler = os.open(name, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            filled = bytearray()
            while True:  # until the pty takes nothing more
                try:
                    taken = os.write(filler, b"f" * 4096)
                except BlockingIOError:
                    break
                filled += b"f" * taken
            data = b"after the fill"
            # os.write answers EAGAIN (unless the tty moved some bytes on meanwhile): the
            # bytes are kept, not lost, not raised.
            transport.write(data)
            assert not transport.is_closing()
            assert await read_from(master, len(filled) + len(data)) == bytes(filled) + data
            assert errors == []
            assert transport.get_write_buffer_size() == 0
        finally:
            os.close(filler)


async def test_eagain_from_the_device_is_a_blocking_error_the_transport_keeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-call write maps EAGAIN to BlockingIOError, so the transport keeps the bytes
    (and writes them once the device takes them); other errors are SerialException."""
    async with pty_transport() as (master, _name, transport, errors):
        real_write = os.write
        refused: list[bytes] = []

        def refusing(fd: int, data: bytes) -> int:
            if not refused:
                refused.append(bytes(data))
                raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
            return real_write(fd, data)

        monkeypatch.setattr("atbridge.transport.os.write", refusing)
        transport.write(b"kept")
        assert refused == [b"kept"]
        assert transport.get_write_buffer_size() == 4
        assert not transport.is_closing()
        assert await read_from(master, 4) == b"kept"
        assert errors == []
