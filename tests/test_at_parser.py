"""The AT parser, driven from byte strings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from atbridge.at_parser import (
    MAX_LINE,
    AtParser,
    Block,
    BlockRule,
    Echo,
    Event,
    Final,
    FinalKind,
    Line,
    Prompt,
    field_int,
)


def xrecv_sm(header: bytes) -> int | None:
    """Serial Modem: ``#XRECV: <handle>,<mode>,<size>``."""
    return field_int(header, b"#XRECV: ", 2)


def ciprxget(header: bytes) -> int | None:
    """SIMCom manual read: ``+CIPRXGET: 2,<link>,<read_len>,<rest>``; mode 1 is a URC."""
    if not header.startswith(b"+CIPRXGET: 2,"):
        return None
    return field_int(header, b"+CIPRXGET: ", 2)


def carecv(header: bytes) -> int | None:
    """SIM7080: ``+CARECV: <len>,<data>`` — data on the header line after the comma."""
    return field_int(header, b"+CARECV: ", 0) if header.count(b",") == 1 else None


def socket_parser() -> AtParser:
    parser = AtParser()
    parser.add_block(BlockRule(b"#XRECV: ", xrecv_sm))
    parser.add_block(BlockRule(b"+CIPRXGET: ", ciprxget))
    parser.add_block(BlockRule(b"+CARECV: ", carecv, inline=True))
    return parser


def feed_all(parser: AtParser, data: bytes) -> list[Event]:
    return parser.feed(data)


def feed_split(parser: AtParser, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(data[start:cut])
        start = cut
    events += parser.feed(data[start:])
    return events


OK = Final(b"OK", FinalKind.OK, True)
ERROR = Final(b"ERROR", FinalKind.ERROR, False)


# -- lines and line endings -------------------------------------------------------------


def test_crlf_framed_response_gives_line_then_final() -> None:
    assert AtParser().feed(b"\r\n352656100367872\r\n\r\nOK\r\n") == [
        Line(b"352656100367872"),
        OK,
    ]


def test_bare_cr_and_bare_lf_line_endings_work_like_crlf() -> None:
    expected = [Line(b"+CFUN: 1"), OK]
    assert AtParser().feed(b"\r+CFUN: 1\r\rOK\r") == expected
    assert AtParser().feed(b"\n+CFUN: 1\n\nOK\n") == expected
    assert AtParser().feed(b"+CFUN: 1\r\nOK\r\n") == expected


def test_empty_lines_are_skipped() -> None:
    assert AtParser().feed(b"\r\n\r\n\r\n\n\r\rOK\r\n") == [OK]


def test_partial_line_waits_for_its_end() -> None:
    parser = AtParser()
    assert parser.feed(b'\r\n+CEREG: 1,"0A') == []
    assert parser.pending == b'+CEREG: 1,"0A'
    assert parser.feed(b'1B"\r\n') == [Line(b'+CEREG: 1,"0A1B"')]


def test_invalid_utf8_never_raises_and_is_kept_raw() -> None:
    events = AtParser().feed(b"\xff\xfe garbage \x00\x80\r\nOK\r\n")
    assert events[0] == Line(b"\xff\xfe garbage \x00\x80")
    assert events[0].text == "\\xff\\xfe garbage \x00\\x80"
    assert events[1] == OK


def test_overlong_line_is_discarded_not_grown_forever() -> None:
    """A line over MAX_LINE is a protocol error of the modem: dropped to its end, counted."""
    errors: list[str] = []
    parser = AtParser(on_protocol_error=errors.append)
    assert parser.feed(b"x" * 10_000) == []
    assert parser.pending == b"" and parser.in_line
    assert parser.feed(b"y" * 10_000 + b"\r\nOK\r\n") == [OK]
    assert parser.protocol_errors == 1 and "20000 bytes" in errors[0]
    # A line of exactly MAX_LINE bytes is still a line.
    assert parser.feed(b"z" * MAX_LINE + b"\r\n") == [Line(b"z" * MAX_LINE)]


def test_a_failing_block_rule_is_a_protocol_error_not_an_exception() -> None:
    def broken(header: bytes) -> int | None:
        raise ValueError("boom")

    parser = AtParser()
    parser.add_block(BlockRule(b"#XRECV: ", broken))
    assert parser.feed(b"#XRECV: 1\r\nOK\r\n") == [Line(b"#XRECV: 1"), OK]
    assert parser.protocol_errors == 1


def test_huge_numbers_never_raise() -> None:
    huge = b"7" * 5000
    events = socket_parser().feed(b"+CME ERROR: " + huge + b"\r\n#XRECV: 0,0," + huge + b"\r\n")
    assert events[0] == Final(b"+CME ERROR: " + huge, FinalKind.CME, False, detail=huge.decode())
    assert events[1] == Line(b"#XRECV: 0,0," + huge)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(MAX_LINE - 2, MAX_LINE + 2),
    cut_fractions=st.lists(st.floats(0, 1), max_size=8),
)
def test_lines_around_the_bound_give_the_same_events_however_chunked(
    size: int, cut_fractions: list[float]
) -> None:
    data = b"\r\n+CARECV: 3,abc" + b"," * size + b"\r\nOK\r\n" + b"q" * size + b"\rOK\r"
    cuts = [int(f * len(data)) for f in cut_fractions]
    whole, split = socket_parser(), socket_parser()
    assert feed_split(split, data, cuts) == feed_all(whole, data)
    assert split.protocol_errors == whole.protocol_errors


# -- final result codes -----------------------------------------------------------------


def test_ok_and_error_are_finals() -> None:
    assert AtParser().feed(b"\r\nERROR\r\n") == [ERROR]


def test_cme_error_with_numeric_code() -> None:
    [final] = AtParser().feed(b"\r\n+CME ERROR: 10\r\n")
    assert final == Final(b"+CME ERROR: 10", FinalKind.CME, False, code=10)


def test_cme_error_with_verbose_text() -> None:
    [final] = AtParser().feed(b"\r\n+CME ERROR: SIM not inserted\r\n")
    assert isinstance(final, Final)
    assert final.kind is FinalKind.CME and final.code is None
    assert final.detail == "SIM not inserted"


def test_cms_error() -> None:
    [final] = AtParser().feed(b"\r\n+CMS ERROR: 500\r\n")
    assert final == Final(b"+CMS ERROR: 500", FinalKind.CMS, False, code=500)


def test_dialect_registered_finals() -> None:
    parser = AtParser()
    parser.add_final(rb"(\d+, )?SEND OK", success=True)
    parser.add_final(rb"(\d+, )?SEND FAIL", success=False)
    parser.add_final(rb"SHUT OK", success=True)
    events = parser.feed(b"\r\n0, SEND OK\r\n\r\nSEND FAIL\r\n\r\nSHUT OK\r\n")
    assert [(e.text, e.success) for e in events if isinstance(e, Final)] == [
        ("0, SEND OK", True),
        ("SEND FAIL", False),
        ("SHUT OK", True),
    ]
    # Unregistered look-alikes stay lines.
    assert AtParser().feed(b"\r\nSEND OK\r\n") == [Line(b"SEND OK")]


def test_ok_inside_a_line_is_not_a_final() -> None:
    assert AtParser().feed(b'\r\n+COPS: 0,0,"OK"\r\n') == [Line(b'+COPS: 0,0,"OK"')]


# -- prompt -----------------------------------------------------------------------------


def test_prompt_with_space_needs_no_line_ending() -> None:
    assert AtParser().feed(b"\r\n> ") == [Prompt()]


def test_prompt_split_between_gt_and_space() -> None:
    parser = AtParser()
    assert parser.feed(b"\r\n>") == []
    assert parser.feed(b" ") == [Prompt()]


def test_bare_gt_is_a_prompt_only_when_expected() -> None:
    parser = AtParser(expect_prompt=True)
    assert parser.feed(b"\r\n>") == [Prompt()]
    # The space after it, arriving late, is part of the prompt, not a line.
    assert parser.feed(b" \r\nOK\r\n") == [OK]


def test_gt_starting_a_text_line_is_a_line() -> None:
    assert AtParser().feed(b">abc\r\n") == [Line(b">abc")]


# -- echo -------------------------------------------------------------------------------


def test_echo_of_the_sent_command_is_recognised() -> None:
    parser = AtParser()
    parser.command_sent(b"AT+CGSN\r\n")
    assert parser.feed(b"AT+CGSN\r\r\n352656100367872\r\n\r\nOK\r\n") == [
        Echo(b"AT+CGSN"),
        Line(b"352656100367872"),
        OK,
    ]


def test_echo_is_dropped_only_once_and_not_after_the_final() -> None:
    parser = AtParser()
    parser.command_sent(b"ATI")
    assert parser.feed(b"\r\nOK\r\nATI\r\n") == [OK, Line(b"ATI")]


# -- binary blocks ----------------------------------------------------------------------

NASTY = b"\r\nOK\r\n\x00\x1a+++\r\nERROR\r\n> \xff"


def test_block_after_header_line_is_taken_by_count() -> None:
    data = b"\r\n#XRECV: 0,0," + str(len(NASTY)).encode() + b"\r\n" + NASTY + b"\r\nOK\r\n"
    events = socket_parser().feed(data)
    assert events == [Block(b"#XRECV: 0,0,%d" % len(NASTY), NASTY), OK]


def test_block_split_byte_by_byte_is_identical() -> None:
    data = b"\r\n+CIPRXGET: 2,0,%d,0\r\n" % len(NASTY) + NASTY + b"\r\nOK\r\n"
    parser = socket_parser()
    events: list[Event] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events == [Block(b"+CIPRXGET: 2,0,%d,0" % len(NASTY), NASTY), OK]


def test_block_header_look_alike_notification_stays_a_line() -> None:
    assert socket_parser().feed(b"\r\n+CIPRXGET: 1,0\r\n") == [Line(b"+CIPRXGET: 1,0")]


def test_zero_length_block() -> None:
    assert socket_parser().feed(b"\r\n#XRECV: 0,0,0\r\n\r\nOK\r\n") == [
        Block(b"#XRECV: 0,0,0", b""),
        OK,
    ]


def test_inline_block_starts_after_the_comma() -> None:
    payload = b"he,\r\nOK\r\n"
    data = b"\r\n+CARECV: %d," % len(payload) + payload + b"\r\n\r\nOK\r\n"
    assert socket_parser().feed(data) == [Block(b"+CARECV: %d," % len(payload), payload), OK]


def test_block_header_ending_in_bare_lf_starts_data_at_once() -> None:
    assert socket_parser().feed(b"#XRECV: 0,0,2\n\nX\r\nOK\r\n") == [
        Block(b"#XRECV: 0,0,2", b"\nX"),
        OK,
    ]


def test_absurd_block_length_is_not_believed() -> None:
    events = socket_parser().feed(b"\r\n#XRECV: 0,0,999999999999\r\nOK\r\n")
    assert events == [Line(b"#XRECV: 0,0,999999999999"), OK]


# -- chunking invariance ----------------------------------------------------------------

REALISTIC = [
    b"\r\nReady\r\n",
    b"AT+CGSN\r\r\n352656100367872\r\n\r\nOK\r\n",
    b"\r\n+CEREG: 2\r\n",
    b'\r\n+CEREG: 5,1,"0A1B","01234567",7\r\n\r\nOK\r\n',
    b"\r\n+CME ERROR: 10\r\n",
    b"\r\n> ",
    b"\r\n#XRECV: 0,0,%d\r\n" % len(NASTY) + NASTY + b"\r\nOK\r\n",
    b"\r\n+CIPRXGET: 1,0\r\n",
    b"\r\n+CIPRXGET: 2,0,4,0\r\nOK\r\n\r\nOK\r\n",
    b"\r\n+CARECV: 3,a\r\n\r\nOK\r\n",
    b"\xff\xfe\x00garbage\r",
    b"\r\n0, SEND OK\r\n",
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(REALISTIC) | st.binary(max_size=40), max_size=12),
    cut_fractions=st.lists(st.floats(0, 1), max_size=20),
    expect_prompt=st.booleans(),
)
def test_events_do_not_depend_on_chunking(
    pieces: list[bytes], cut_fractions: list[float], expect_prompt: bool
) -> None:
    data = b"".join(pieces)
    cuts = [int(f * len(data)) for f in cut_fractions]
    whole = socket_parser()
    whole.expect_prompt = expect_prompt
    whole.add_final(rb"\d+, SEND OK", success=True)
    whole.command_sent(b"AT+CGSN")
    split = socket_parser()
    split.expect_prompt = expect_prompt
    split.add_final(rb"\d+, SEND OK", success=True)
    split.command_sent(b"AT+CGSN")
    assert feed_split(split, data, cuts) == feed_all(whole, data)
    assert split.pending == whole.pending


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=30))
def test_random_bytes_never_raise_and_nothing_is_lost(data: bytes, cuts: list[int]) -> None:
    parser = socket_parser()
    events = feed_split(parser, data, cuts)
    # Every non-line-ending byte is accounted for in an event or still pending.
    kept = 0
    for event in events:
        if isinstance(event, Line | Echo | Final):
            kept += len(event.raw)
        elif isinstance(event, Block):
            kept += len(event.header) + len(event.data)
        else:
            kept += 1  # the prompt's ">"
    assert kept + len(parser.pending) >= len(data.replace(b"\r", b"").replace(b"\n", b"")) - (
        data.count(b"> ")
    )


def test_in_line_tells_a_partial_text_line() -> None:
    parser = socket_parser()
    assert not parser.in_line
    parser.feed(b"\r\n+CER")
    assert parser.in_line
    parser.feed(b"EG: 1\r\n#XRECV: 0,0,4\r\nab")
    assert not parser.in_line
