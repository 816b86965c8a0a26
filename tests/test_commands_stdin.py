"""The one stdin reader (atbridge/commands/stdin.py), on real pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import pytest

from atbridge.commands.stdin import raw_lines, read_all, stdin_lines


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # closed by the test
            os.close(fd)


def test_lines_lose_their_line_endings_and_the_last_needs_none(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, b"one\r\ntwo\n\nthree \xff\nlast")
    os.close(write_end)
    assert list(raw_lines(read_end)) == [b"one", b"two", b"", b"three \xff", b"last"]


def test_read_all_keeps_every_byte(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    payload = bytes(range(256)) * 300  # more than one read
    os.write(write_end, payload[:4096])

    async def rest() -> None:
        await asyncio.to_thread(os.write, write_end, payload[4096:])
        os.close(write_end)

    async def both() -> bytes:
        writer = asyncio.ensure_future(rest())
        data = await asyncio.to_thread(read_all, read_end)
        await writer
        return data

    assert asyncio.run(both()) == payload


async def test_stdin_lines_skips_blank_lines_and_stops_at_the_limit(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    os.write(write_end, b"a\n\n  \nb\nc\n")  # the write end stays open: no end of file
    stdin_lines(queue, limit=2, fd=read_end)
    got = [await asyncio.wait_for(queue.get(), 30) for _ in range(3)]
    assert got == [b"a", b"b", None]


async def test_stdin_lines_ends_with_none_at_end_of_file(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    os.write(write_end, b"x\n\n")
    os.close(write_end)
    stdin_lines(queue, skip_empty=False, fd=read_end)
    got = [await asyncio.wait_for(queue.get(), 30) for _ in range(3)]
    assert got == [b"x", b"", None]
