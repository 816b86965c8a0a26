"""Fuzzing the AT parser with every dialect's block rules and finals (issue 12).

Inputs are random bytes and real modem output of every dialect (written from the
vendor references, ``shared/reference/at-dialects.md`` §3-§5), mutated: bytes flipped,
inserted and cut, numbers replaced by thousands of digits or lengths beyond any modem,
lines stretched past :data:`~atbridge.at_parser.MAX_LINE`, all split into random
chunks. Two properties:

1. **No unexpected exception** from :meth:`~atbridge.at_parser.AtParser.feed`, ever.
2. **Chunking invariance**: the same events, the same pending bytes and the same count
   of protocol errors whatever the chunking, for any input (the parser's bounds are
   on the line and the block, not on the chunk).

The same checks run for minutes in ``bench/fuzz_at.py``; here the budget is a few
seconds a test. :func:`check` and :data:`CORPUS` are shared with it.
"""

from __future__ import annotations

import random
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from atbridge.at_parser import MAX_BLOCK, MAX_LINE, AtParser, Event

DIALECTS = ("nrf91-slm", "nrf91-sm", "sim7000", "sim7080", "sim7600")

COMMON = (
    b"\r\nOK\r\n",
    b"\r\nERROR\r\n",
    b"\r\n+CME ERROR: 10\r\n",
    b"\r\n+CME ERROR: SIM not inserted\r\n",
    b"\r\n+CMS ERROR: 500\r\n",
    b"\r\n> ",
    b">",
    b'\r\n+CEREG: 5,1,"0A1B","01234567",7\r\n\r\nOK\r\n',
    b"\r\n+CEREG: 2\r\n",
    b"\r\n+CFUN: 1\r\n",
    b"\r\n+CGEV: ME PDN DEACT 0\r\n",
    b"\r\n352656100367872\r\n",
    b"AT+CGSN\r\r\n",
    b"\xff\xfe\x00garbage\r",
)

#: Real output per dialect: headers with their blocks, notifications, finals.
CORPUS: dict[str, tuple[bytes, ...]] = {
    "nrf91-slm": (
        b"\r\nReady\r\n",
        b"\r\n#XRECV: 12\r\nOK\r\n+++\x00\r\nab\r\nOK\r\n",
        b"\r\n#XRECV: 0\r\n\r\nOK\r\n",
        b"\r\n#XSEND: 3\r\n\r\nOK\r\n",
        b"\r\n#XAPOLL: 0,1\r\n",
        b"\r\n#XDATAMODE: 0\r\n",
        b"\r\n#XSOCKET: 0,1,6\r\n\r\nOK\r\n",
        b"\r\n#XMODEM: FAULT,1,0x1234\r\n",
        b'\r\n#XSLMVER: "2.5.0","2.5.0-lte-5ccd2d4dd54c"\r\n\r\nOK\r\n',
    ),
    "nrf91-sm": (
        b"\r\nReady\r\n",
        b"\r\n#XRECV: 0,0,5\r\nhe\r\no\r\nOK\r\n",
        b"\r\n#XRECV: 0,1,2\r\n6869\r\nOK\r\n",
        b"\r\n#XAPOLL: 0,17\r\n",
        b"\r\n#XSEND: 0,2,5\r\n",
        b'\r\n#XSMVER: "v2.0.0","3.4.0"\r\n\r\nOK\r\n',
    ),
    "sim7000": (
        b"\r\nRDY\r\n",
        b"\r\n+CIPRXGET: 2,0,5,0\r\nOK\r\n\r\n\r\nOK\r\n",
        b"\r\n+CIPRXGET: 1,0\r\n",
        b"\r\nDATA ACCEPT: 0,5\r\n",
        b"\r\n0, SEND OK\r\n",
        b"\r\n0, CLOSE OK\r\n",
        b"\r\n0, CLOSED\r\n",
        b"\r\nSHUT OK\r\n",
        b"\r\n+PDP: DEACT\r\n",
    ),
    "sim7080": (
        b"\r\nRDY\r\n",
        b"\r\n+CARECV: 5,hel\r\n\r\nOK\r\n",
        b"\r\n+CARECV: 0,5,a,b,c\r\nOK\r\n",
        b"\r\n+CADATAIND: 0\r\n",
        b"\r\n+CASTATE: 0,0\r\n",
        b"\r\n+CAOPEN: 0,0\r\n",
        b"\r\n+APP PDP: 0,DEACTIVE\r\n",
    ),
    "sim7600": (
        b"\r\nRDY\r\n",
        b"\r\n+CIPRXGET: 2,0,5,0\r\n\r\nOK\r\r\nOK\r\n",
        b"\r\n+CIPRXGET: 1,0\r\n",
        b"\r\n+CIPSEND: 0,5,5\r\n",
        b"\r\n+IPCLOSE: 0,1\r\n",
        b"\r\n+CIPOPEN: 0,0\r\n",
        b"\r\n+NETOPEN: 0\r\n",
        b"\r\nSMS DONE\r\n",
    ),
}

#: Number replacements a broken modem could send: huge, negative, beyond any block.
NUMBERS = (b"9" * 5000, b"-1", b"%d" % (MAX_BLOCK + 1), b"%d" % (1 << 64), b"007", b"")


@cache
def _rules(dialect: str) -> tuple[object, object, object]:
    """The block rules and finals dialect ``dialect`` registers on its channel."""
    from atbridge.dialects import dialect_class
    from atbridge.modem import Modem

    cls = dialect_class(dialect)
    modem = Modem(line_ending=cls.line_ending)
    cls(modem)
    parser = modem.parser
    return parser._line_rules, parser._inline_rules, parser._finals


def new_parser(dialect: str, *, expect_prompt: bool = False, echo: bytes | None = None) -> AtParser:
    """A fresh parser configured as dialect ``dialect`` configures its channel's."""
    line_rules, inline_rules, finals = _rules(dialect)
    parser = AtParser(
        expect_prompt=expect_prompt,
        _line_rules=line_rules,  # type: ignore[arg-type]
        _inline_rules=inline_rules,  # type: ignore[arg-type]
        _finals=finals,  # type: ignore[arg-type]
    )
    if echo is not None:
        parser.command_sent(echo)
    return parser


def feed_chunks(parser: AtParser, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in sorted({cut for cut in cuts if 0 < cut < len(data)}):
        events += parser.feed(data[start:cut])
        start = cut
    events += parser.feed(data[start:])
    return events


def check(dialect: str, data: bytes, cuts: list[int], *, expect_prompt: bool = False) -> None:
    """Both properties (module doc) for one input; raises AssertionError on a violation."""
    whole = new_parser(dialect, expect_prompt=expect_prompt, echo=b"AT+CGSN")
    split = new_parser(dialect, expect_prompt=expect_prompt, echo=b"AT+CGSN")
    expected = whole.feed(data)
    got = feed_chunks(split, data, cuts)
    assert got == expected, f"{dialect}: events depend on the chunking"
    assert split.pending == whole.pending
    assert split.protocol_errors == whole.protocol_errors
    assert len(whole.pending) <= MAX_LINE + MAX_BLOCK


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random mutation of ``data`` (see the module doc)."""
    choice = rng.randrange(6)
    if not data or choice == 0:
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    at = rng.randrange(len(data))
    if choice == 1:  # flip a byte
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if choice == 2:  # cut
        return data[:at] + data[at + rng.randrange(1, 8) :]
    if choice == 3:  # a number replaced
        digits = [i for i, byte in enumerate(data) if 0x30 <= byte <= 0x39]
        if digits:
            at = rng.choice(digits)
        return data[:at] + rng.choice(NUMBERS) + data[at + 1 :]
    if choice == 4:  # a line stretched around and past MAX_LINE
        size = rng.choice((MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 3 * MAX_LINE))
        return data[:at] + bytes([rng.choice(b"x,9")]) * size + data[at:]
    return data[:at] + rng.choice(b'\r\n>,"').to_bytes(1, "big") + data[at:]


def sample(rng: random.Random, dialect: str) -> bytes:
    """A random input: corpus pieces of ``dialect`` and common lines, mutated, or noise."""
    pool = CORPUS[dialect] + COMMON
    pieces = [rng.choice(pool) for _ in range(rng.randrange(1, 10))]
    if rng.random() < 0.2:
        pieces.append(bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
    data = b"".join(pieces)
    for _ in range(rng.randrange(4)):
        data = mutate(rng, data)
    return data


def random_cuts(rng: random.Random, data: bytes) -> list[int]:
    if rng.random() < 0.1:
        return list(range(1, len(data)))[:4096]  # byte by byte (short inputs whole)
    return [rng.randrange(len(data) + 1) for _ in range(rng.randrange(12))]


# -- the CI budget: a few seconds a test ---------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    dialect=st.sampled_from(DIALECTS),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=20),
    expect_prompt=st.booleans(),
)
def test_random_bytes(dialect: str, data: bytes, cuts: list[int], expect_prompt: bool) -> None:
    check(dialect, data, cuts, expect_prompt=expect_prompt)


@settings(max_examples=200, deadline=None)
@given(
    dialect=st.sampled_from(DIALECTS),
    seed=st.integers(0, 2**32 - 1),
    expect_prompt=st.booleans(),
)
def test_mutated_real_output(dialect: str, seed: int, expect_prompt: bool) -> None:
    rng = random.Random(seed)
    data = sample(rng, dialect)
    check(dialect, data, random_cuts(rng, data), expect_prompt=expect_prompt)


@settings(max_examples=100, deadline=None)
@given(
    dialect=st.sampled_from(DIALECTS),
    pieces=st.lists(
        st.sampled_from(sum(CORPUS.values(), ()) + COMMON) | st.binary(max_size=40), max_size=12
    ),
    number=st.sampled_from(NUMBERS),
    cuts=st.lists(st.integers(0, 20_000), max_size=12),
)
def test_every_dialect_parses_every_dialects_output_with_absurd_numbers(
    dialect: str, pieces: list[bytes], number: bytes, cuts: list[int]
) -> None:
    """Output of another family (a wrong --dialect) with numbers no modem sends."""
    data = b"".join(pieces).replace(b"5", number)
    check(dialect, data, cuts)
