"""Parameters reach the wire only through the quoting helper, which refuses injection."""

from __future__ import annotations

import pytest

from atbridge.at_syntax import (
    check_command_line,
    format_command,
    int_param,
    parse_int,
    quote,
    response_prefix,
    split_params,
    str_param,
    unquote,
)
from atbridge.errors import ConfigurationError


def test_quote_wraps_plain_ascii() -> None:
    assert quote("iot.example") == '"iot.example"'


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('internet"\rAT+CFUN=0', "a double quote"),
        ("internet\rAT+CFUN=0", "a carriage return (CR)"),
        ("internet\nAT+CFUN=0", "a line feed (LF)"),
        ("a\x1ab", "Ctrl-Z (0x1A)"),
        ("a\x1bb", "ESC (0x1B)"),
        ("a\x00b", "a NUL byte"),
        ("a\\22b", "a backslash"),
        ("caf\u00e9", "non-ASCII"),
        ("a\x7fb", "0x7F"),
    ],
)
def test_quote_refuses_what_could_smuggle_a_command(value: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        quote(value, name="APN")
    message = str(caught.value)
    assert named in message
    assert "APN" in message


def test_format_command_quotes_strings_and_leaves_numbers_bare() -> None:
    assert format_command("AT+CGDCONT", 1, "IP", "iot.example") == 'AT+CGDCONT=1,"IP","iot.example"'
    assert format_command("AT+CEREG", 5) == "AT+CEREG=5"
    assert format_command("AT+COPS", 1, 2, "26201", None) == 'AT+COPS=1,2,"26201",'
    assert format_command("AT+CGMI") == "AT+CGMI"


def test_format_command_refuses_injection_through_a_parameter() -> None:
    with pytest.raises(ConfigurationError, match="parameter 3 of AT\\+CGDCONT"):
        format_command("AT+CGDCONT", 1, "IP", 'apn"\r\nAT+CFUN=0\r\n')


def test_format_command_refuses_other_types() -> None:
    with pytest.raises(ConfigurationError, match="str, int or None"):
        format_command("AT+CFUN", True)
    with pytest.raises(ConfigurationError):
        format_command("AT+CFUN", 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["AT+CGMI\rAT+CFUN=0", "AT\n", "AT+X\x1a", "AT+CGMI;\x00"])
def test_command_line_with_control_bytes_is_refused(line: str) -> None:
    with pytest.raises(ConfigurationError, match="one call sends exactly one command line"):
        check_command_line(line)


def test_command_line_must_start_with_at() -> None:
    with pytest.raises(ConfigurationError, match="does not start with AT"):
        check_command_line("+CGMI")
    assert check_command_line("at+cgmi") == "at+cgmi"


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        ("AT+CEREG?", "+CEREG:"),
        ("AT+CGSN=1", "+CGSN:"),
        ("AT#XSLMVER", "#XSLMVER:"),
        ("AT%XICCID", "%XICCID:"),
        ("at+cfun?", "+CFUN:"),
        ("AT", None),
        ("ATE0", None),
    ],
)
def test_response_prefix(command: str, prefix: str | None) -> None:
    assert response_prefix(command) == prefix


# -- reading parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ('1,"0A1B","01234567",7', ["1", '"0A1B"', '"01234567"', "7"]),
        (' 0 , "a,b" ,3', ["0", '"a,b"', "3"]),
        ("1,,3", ["1", "", "3"]),
        ("1,", ["1", ""]),
        ('"x"', ['"x"']),
        ('""', ['""']),
        ("", []),
        ("   ", []),
        ('1,"unterminated, still one', ["1", '"unterminated, still one']),
    ],
)
def test_split_params_honours_quotes_and_keeps_them(text: str, params: list[str]) -> None:
    assert split_params(text) == params


def test_typed_accessors() -> None:
    params = split_params(' 5 ,"7", -1, +5, x, ,"name, with comma"')
    assert [int_param(params, i) for i in range(7)] == [5, 7, -1, None, None, None, None]
    assert str_param(params, 6) == "name, with comma"
    assert str_param(params, 5) is None  # empty
    assert str_param(params, 9) is None and int_param(params, 9) is None  # missing
    assert int_param(params, -1) is None
    assert int_param("3,4", 1) == 4 and str_param('"a",b', 0) == "a"
    assert unquote('"a"') == "a" and unquote('"a') == '"a' and unquote("a") == "a"
    assert parse_int("\u00b2") is None and parse_int("5.0") is None and parse_int("0x5") is None
