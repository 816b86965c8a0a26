"""Writes larger than the tty takes at once (pyserial-asyncio-fast 0.16's transport left
its writer registered after them: the loop then raised ``AssertionError: Write buffer
should not be empty`` on every turn, without end)."""

from __future__ import annotations

import asyncio
import os
import pty
import tty
from typing import Any

from atbridge.transport import open_device


class Received(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:  # nothing comes back in this test
        raise AssertionError(data)


async def test_a_write_the_pty_takes_in_part_goes_out_whole_and_leaves_the_loop_quiet() -> None:
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
        data = bytes(range(256)) * 800  # 200 KiB: far more than a pty buffers
        transport.write(data)
        assert transport.get_write_buffer_size() > 0  # taken only in part
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        got = bytearray()
        try:
            async with asyncio.timeout(30):
                while len(got) < len(data):
                    await readable.wait()
                    readable.clear()
                    try:
                        got += os.read(master, 1 << 16)
                    except BlockingIOError:
                        continue
        finally:
            loop.remove_reader(master)
        assert bytes(got) == data
        for _ in range(200):  # the old writer fired on every one of these turns
            await asyncio.sleep(0)
        assert errors == []
        assert transport.get_write_buffer_size() == 0
    finally:
        transport.close()
        await asyncio.sleep(0)
        loop.set_exception_handler(previous)
        os.close(master)
        os.close(slave)


async def test_a_write_to_a_full_pty_is_kept_and_goes_out_when_it_drains() -> None:
    """The one-call write (``DirectReadSerial.write``) meets EAGAIN: the transport keeps
    the bytes and sends them, in order, once the tty takes them again."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    filler = os.open(os.ttyname(slave), os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    transport = await open_device(os.ttyname(slave), Received(), baudrate=115200, rtscts=False)
    try:
        filled = bytearray()
        while True:  # until the pty takes nothing more
            try:
                taken = os.write(filler, b"f" * 4096)
            except BlockingIOError:
                break
            filled += b"f" * taken
        data = b"after the fill"
        transport.write(data)  # os.write answers EAGAIN: kept, not lost, not raised
        assert transport.get_write_buffer_size() == len(data)
        assert not transport.is_closing()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        got = bytearray()
        try:
            async with asyncio.timeout(30):
                while len(got) < len(filled) + len(data):
                    await readable.wait()
                    readable.clear()
                    try:
                        got += os.read(master, 1 << 16)
                    except BlockingIOError:
                        continue
        finally:
            loop.remove_reader(master)
        assert bytes(got) == bytes(filled) + data
        assert errors == []
        assert transport.get_write_buffer_size() == 0
    finally:
        transport.close()
        await asyncio.sleep(0)
        loop.set_exception_handler(previous)
        os.close(filler)
        os.close(master)
        os.close(slave)
