"""The fakes' fast paths (issue 16) give what the byte-by-byte code they replaced gave.

The fake modems' hot path was made cheaper per AT exchange: ``wire.LineReader`` cuts a
whole line out of the receive buffer with ``find`` instead of a Python step per byte,
``grammar._split_params`` splits at the quotes first, and the nRF91 data-mode
``TerminatorMatcher`` takes the bytes up to a possible terminator at once. Each is checked
here against the byte-at-a-time rule it must keep, on generated input: the reader against
its own byte-by-byte scan (``_scan``) fed the same chunks, the parameter splitter against a
reference copy of the character loop it replaced, the matcher against feeding one byte at a
time. The pacer's ``FineTimer`` (a timerfd, so a cold paced line need not spin for the
last millisecond of every wait) calls back, is never early on the loop's clock, and gives
its descriptor back.
"""

from __future__ import annotations

import asyncio
import os
import sys
from itertools import pairwise
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.grammar import Param, _make_param, _split_params
from tests.fakes.nrf91_sockets import TERMINATOR, TerminatorMatcher
from tests.fakes.wire import FineTimer, LineReader, Pacer

#: Bytes that make line reading interesting: terminators, quotes, backspaces, commas.
_ALPHABET = b'\r\n"\x08\x7f,=AT+x0'
_MODES: tuple[Literal["CR", "LF", "CRLF"], ...] = ("CR", "LF", "CRLF")


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def _read_all(reader: LineReader, chunks: list[bytes], *, fast: bool) -> tuple[list[object], bytes]:
    """Every line the reader cuts out of ``chunks`` arriving one after the other, and what
    is left in the buffer; ``fast`` False reads with the byte-by-byte scan only."""
    rx = bytearray()
    lines: list[object] = []
    read = reader.next_line if fast else reader._scan
    for chunk in chunks:
        rx += chunk
        while (found := read(rx)) is not None:
            lines.append(found)
    return lines, bytes(rx)


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=60).map(lambda b: bytes(_ALPHABET[x % len(_ALPHABET)] for x in b)),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    mode=st.sampled_from(_MODES),
    quote_aware=st.booleans(),
    backspace=st.sampled_from([b"\x08", b"\x08\x7f", b""]),
    max_line=st.sampled_from([4, 8, 556]),
)
def test_line_reader_fast_path_cuts_the_lines_the_byte_scan_cuts(
    data: bytes,
    cuts: list[int],
    mode: Literal["CR", "LF", "CRLF"],
    quote_aware: bool,
    backspace: bytes,
    max_line: int,
) -> None:
    def reader() -> LineReader:
        return LineReader(mode, quote_aware=quote_aware, backspace=backspace, max_line=max_line)

    chunks = _chunks(data, cuts)
    assert _read_all(reader(), chunks, fast=True) == _read_all(reader(), chunks, fast=False)


def test_line_reader_fast_path_on_typical_lines() -> None:
    reader = LineReader("CRLF", quote_aware=True, backspace=b"\x08", max_line=12)
    rx = bytearray(b'\r\nAT+X="a\r\nb"\r\nAT#XSEND\r\nATTOOLONGLINE\r\nAT')
    assert reader.next_line(rx) == (b'AT+X="a\r\nb"\r\n', b'AT+X="a\r\nb"', False)
    assert reader.next_line(rx) == (b"AT#XSEND\r\n", b"AT#XSEND", False)
    assert reader.next_line(rx) == (b"ATTOOLONGLINE\r\n", b"ATTOOLONGLIN", True)
    assert reader.next_line(rx) is None
    assert bytes(rx) == b"AT"


def _split_params_reference(text: str) -> tuple[Param, ...] | None:
    """The character loop ``_split_params`` had before issue 16."""
    params: list[Param] = []
    current: list[str] = []
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
            current.append(char)
        elif char == "," and not in_quotes:
            params.append(_make_param("".join(current)))
            current = []
        else:
            current.append(char)
    if in_quotes:
        return None
    params.append(_make_param("".join(current)))
    return tuple(params)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='",ab 1\\', max_size=30))
def test_split_params_matches_the_character_loop(text: str) -> None:
    assert _split_params(text) == _split_params_reference(text)


def test_split_params_on_a_typical_line() -> None:
    assert _split_params('0,1,0,"3023,0001"') == (
        Param("0", False),
        Param("1", False),
        Param("0", False),
        Param("3023,0001", True),
    )
    assert _split_params('1,"open') is None


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=40).map(lambda b: bytes(b"+x+\x00"[x % 4] for x in b)),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    terminator=st.sampled_from([TERMINATOR, b"+x+", b"++x"]),
)
def test_terminator_matcher_chunk_feed_is_byte_feed(
    data: bytes, cuts: list[int], terminator: bytes
) -> None:
    by_chunk, by_byte = TerminatorMatcher(terminator), TerminatorMatcher(terminator)
    for chunk in _chunks(data, cuts):
        end = by_chunk.feed_chunk(chunk)
        expected = -1
        for index, byte in enumerate(chunk):
            if by_byte.feed(byte):
                expected = index + 1
                break
        assert end == expected
        assert (bytes(by_chunk.data), by_chunk.partial) == (bytes(by_byte.data), by_byte.partial)
        if end >= 0:  # the session ends with the terminator: nothing is fed after it
            assert by_chunk.take() == by_byte.take()
            return


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
async def test_fine_timer_calls_back_once_armed_and_releases_its_descriptor() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    done = asyncio.Event()

    def expired() -> None:
        fired.append(loop.time())
        done.set()

    timer = FineTimer.create(loop, expired)
    assert timer is not None
    when = loop.time() + 0.0005
    timer.arm(when)
    await asyncio.wait_for(done.wait(), 5)
    assert len(fired) == 1
    assert fired[0] >= when  # never early: the kernel timer is on the loop's clock
    fd = timer._fd
    timer.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_fine_timer_is_none_for_a_loop_with_a_clock_of_its_own() -> None:
    class OwnClock(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 0.0

    loop = OwnClock()
    try:
        assert FineTimer.create(loop, lambda: None) is None
    finally:
        loop.close()


@pytest.mark.parametrize("fine", [True, False])
async def test_a_paced_pacer_releases_every_byte_in_order(fine: bool) -> None:
    loop = asyncio.get_running_loop()
    released = bytearray()
    done = asyncio.Event()

    def sink(data: bytes) -> None:
        released.extend(data)
        if len(released) == 300:
            done.set()

    pacer = Pacer(loop, sink, fine_timer=fine)
    pacer.set_rate(92160.0)  # 921600 baud
    for start in range(0, 300, 30):
        pacer.push(bytes(i % 256 for i in range(start, start + 30)))
    await asyncio.wait_for(done.wait(), 5)
    assert bytes(released) == bytes(i % 256 for i in range(300))
    pacer.close()
