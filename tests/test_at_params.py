"""What every reader of AT parameters makes of the edge cases: quoted commas, empty
fields, spaces, signs, missing fields and garbage.

These pin the behaviour of each caller of the one parameter splitter
(:func:`atbridge.at_syntax.split_params`), so that merging their former private
helpers into it changed nothing a user sees for valid input.
"""

from __future__ import annotations

import pytest

from atbridge.at_parser import field_int
from atbridge.decode import Operator, Registration, describe_cfun, parse_cesq, parse_cops
from atbridge.decode import parse_registration as reg
from atbridge.dialects.nrf91 import data_mode_ended, pdp_lost_cid
from atbridge.dialects.nrf91_slm import Nrf91Slm
from atbridge.dialects.nrf91_sm import Nrf91Sm
from atbridge.dialects.simcom import ciprxget_length, is_ciprxget_notification
from atbridge.modem import Urc, registration_is_response

# -- decode ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "is_read", "expected"),
    [
        ('1,"0A1B","01234567",7', False, Registration(1, "0A1B", "01234567", 7)),
        (' 1 , "0A1B" ,"01234567", 7 ', False, Registration(1, "0A1B", "01234567", 7)),
        ("0,1,,,7", True, Registration(1, None, None, 7)),
        ('"1"', False, Registration(1)),
        ("-1", False, Registration(-1)),
        ('3,"0A1B","01234567",7,0,15', False, Registration(3, "0A1B", "01234567", 7, 0, 15)),
        ('1,"0A1B","01234567",x', False, Registration(1, "0A1B", "01234567", None)),
        ('1,"",""', False, Registration(1)),
        ("+5", False, None),
        ("", False, None),
        ("", True, None),
        ("2", True, None),
        ("abc", False, None),
    ],
)
def test_registration_edge_cases(value: str, is_read: bool, expected: Registration | None) -> None:
    assert reg(value, is_read=is_read) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('0,2,"26201",7', Operator(0, "26201", 7)),
        ("0", Operator(0)),
        (' 1 , 0 , "Op" , 9 ', Operator(1, "Op", 9)),
        ('0,0,""', Operator(0)),
        ("0,0", Operator(0)),
        ("", None),
        ("x", None),
        # A quoted comma is part of the name (TS 27.007 §4.1: strings are quoted).
        ('0,0,"Op, Name",7', Operator(0, "Op, Name", 7)),
    ],
)
def test_operator_edge_cases(value: str, expected: Operator | None) -> None:
    assert parse_cops(value) == expected


def test_signal_edge_cases() -> None:
    assert parse_cesq("99,99,255,255,31,62") is not None
    assert parse_cesq(" 99 , 99 , 255 , 255 , 31 , 62 ") == parse_cesq("99,99,255,255,31,62")
    assert parse_cesq("99,99,255,255,,62") is None
    assert parse_cesq("99,99,255,255,31") is None
    assert parse_cesq("") is None


def test_cfun_edge_cases() -> None:
    assert describe_cfun(" 1 ") == "full functionality (CFUN=1)"
    assert describe_cfun("1,0") == "full functionality (CFUN=1)"
    assert describe_cfun("x") == "x"
    assert describe_cfun("") == ""


# -- the AT channel --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "is_response"),
    [
        ("+CEREG: 2,1", True),
        ("+CEREG: 2, 1", True),
        ('+CEREG: 0,1,"0A1B","01234567",7', True),
        ("+CEREG: 1", False),
        ('+CEREG: 1,"0A1B","01234567",7', False),
        ('+CEREG: 1,"0102","01234567",7', False),  # a TAC of digits is still quoted
        ('+CEREG: 2,,"x"', False),
        ("+CEREG:", False),
    ],
)
def test_registration_read_response_or_notification(line: str, is_response: bool) -> None:
    assert registration_is_response(line) is is_response


@pytest.mark.parametrize(
    ("header", "prefix", "index", "expected"),
    [
        (b"#XRECV: 0,0,12", b"#XRECV: ", 2, 12),
        (b"#XRECV: 0, 0, 12", b"#XRECV: ", 2, 12),
        (b"+CARECV: 5,", b"+CARECV: ", 0, 5),
        (b"+CIPRXGET: 2,0,5,0", b"+CIPRXGET: ", 2, 5),
        (b"#XRECV: 0,0", b"#XRECV: ", 2, None),
        (b"#XRECV: 0,0,-1", b"#XRECV: ", 2, None),  # never a negative length
        (b"#XRECV: 0,0,+1", b"#XRECV: ", 2, None),
        (b"#XRECV: 0,0,x", b"#XRECV: ", 2, None),
        (b"#XRECV: 0,,3", b"#XRECV: ", 1, None),
    ],
)
def test_block_length_field(header: bytes, prefix: bytes, index: int, expected: int | None) -> None:
    assert field_int(header, prefix, index) == expected


# -- the dialects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ended"),
    [
        ("#XDATAMODE: 0", True),
        ("#XDATAMODE: -1", True),
        ("#XDATAMODE: 5", False),
        ("#XDATAMODE:  5 ", False),
        ("#XDATAMODE: 5,3", False),
        ("#XDATAMODE:", True),
        ("#XDATAMODE: x", True),
    ],
)
def test_data_mode_status(text: str, ended: bool) -> None:
    assert data_mode_ended(Urc(text, text.encode())) is ended


@pytest.mark.parametrize(
    ("line", "cid"),
    [
        ("+CGEV: NW PDN DEACT 0", 0),
        ("+CGEV: ME PDN DEACT 1, 2", 1),
        ('+CGEV: NW DEACT "IP","10.0.0.1",0', 0),
        ('+CGEV: NW DEACT "IP","10.0.0.1", 3', 3),
        ('+CGEV: NW DEACT "IP","10.0.0.1"', None),
        ("+CGEV: NW PDN DEACT x", None),
        ("+CGEV: NW DETACH", None),
    ],
)
def test_pdp_lost_cid_edge_cases(line: str, cid: int | None) -> None:
    assert pdp_lost_cid(line) == cid


def test_nordic_block_headers() -> None:
    assert Nrf91Slm.recv_header_length(b"#XRECV: 12") == 12
    assert Nrf91Slm.recv_header_length(b"#XRECV: x") is None
    assert Nrf91Sm.recv_header_length(b"#XRECV: 0,0,12") == 12
    assert Nrf91Sm.recv_header_length(b"#XRECV: 0,1,12") == 24
    assert Nrf91Sm.recv_header_length(b"#XRECV: 0,0") is None
    assert Nrf91Sm.recv_header_length(b"#XRECV: 0,0,x") is None


def test_ciprxget_lines() -> None:
    assert is_ciprxget_notification("+CIPRXGET: 1,0")
    assert is_ciprxget_notification("+CIPRXGET:  1 , 0")
    assert not is_ciprxget_notification("+CIPRXGET: 2,0,5,0")
    assert not is_ciprxget_notification("+CIPRXGET: 4,0,5")
    assert not is_ciprxget_notification("+CIPRXGET:")
    assert ciprxget_length(b"+CIPRXGET: 2,0,5,0") == 5
    assert ciprxget_length(b"+CIPRXGET: 2,0") is None


def test_sim7080_inline_header_waits_for_the_right_comma() -> None:
    from atbridge.dialects.sim7080 import Sim7080

    class Probe(Sim7080):
        def __init__(self) -> None:  # no modem: only the header rule is used
            pass

    probe = Probe()
    assert probe._carecv_length(b"+CARECV: 5,") == 5
    assert probe._carecv_length(b"+CARECV: ,") is None
    assert probe._carecv_length(b"+CARECV: 0,5,") is None  # one field without the cid
    Probe.carecv_has_cid = True
    try:
        assert probe._carecv_length(b"+CARECV: 0,") is None  # the length is still to come
        assert probe._carecv_length(b"+CARECV: 0,5,") == 5
    finally:
        Probe.carecv_has_cid = False
