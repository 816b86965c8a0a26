"""The one stdin reader: lines of standard input, fed to an asyncio queue.

A daemon thread reads file descriptor 0 with ``os.read`` and splits the bytes
into lines itself. It never touches ``sys.stdin`` or its buffer: a thread
blocked inside a buffered read holds that buffer's lock, and an interpreter
that exits then (after Ctrl-C or SIGTERM, while stdin stays open) aborts with
"Fatal Python error: _enter_buffered_busy". A thread blocked in ``os.read``
holds nothing, so the command ends cleanly whenever it wants to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

#: The file descriptor read (standard input).
STDIN = 0


def chunks(fd: int = STDIN) -> Iterator[bytes]:
    """The bytes of ``fd`` as they come, up to the end (a closed descriptor has none)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # closed, or not open at all
            return
        if not chunk:
            return
        yield chunk


def read_all(fd: int = STDIN) -> bytes:
    """Every byte of ``fd`` up to the end, unchanged (``--message-file -``)."""
    return b"".join(chunks(fd))


def raw_lines(fd: int = STDIN) -> Iterator[bytes]:
    """The lines of ``fd`` without their line endings (CR LF or LF), up to the end."""
    pending = b""
    for chunk in chunks(fd):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r\n")
    if pending:
        yield pending.rstrip(b"\r\n")


def stdin_lines(
    queue: asyncio.Queue[bytes | None],
    *,
    limit: int | None = None,
    skip_empty: bool = True,
    fd: int = STDIN,
) -> None:
    """Feed stdin's lines (without the line ending) to ``queue``, then ``None``.

    Blank lines are skipped when ``skip_empty``; at most ``limit`` lines are
    taken (and no more is read after them).
    """
    import asyncio
    import threading

    loop = asyncio.get_running_loop()

    def put(item: bytes | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the command is over
            return False
        return True

    def reader() -> None:
        taken = 0
        for line in raw_lines(fd):
            if skip_empty and not line.strip():
                continue
            taken += 1
            if not put(line):
                return
            if limit is not None and taken >= limit:
                break  # do not wait for a line nobody asked for
        put(None)

    threading.Thread(target=reader, name="atbridge-stdin", daemon=True).start()
