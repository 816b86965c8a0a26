"""``atbridge explain`` and its vocabulary layer: real answers decoded to the documented fields.

Quoted responses name their public source next to them; the others are built
from the syntax of TS 27.007 / the nRF91 AT reference to reach the other forms.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atbridge.cli import main
from atbridge.decode import parse_gprs_timer, parse_registration_extras
from atbridge.diagnostics import PREFIXES, ExplainError, explain_text, flatten, rate


def fields(text: str, command: str | None = None) -> dict[str, object]:
    return flatten(explain_text(text, command=command))


def test_cereg_urc_level_1_and_2_from_the_nordic_reference() -> None:
    # nRF91x1 AT Commands, +CEREG set command examples
    # (docs.nordicsemi.com/r/bundle/ref_at_commands_nrf91x1/page/ref/at_commands/
    # nw_service/cereg_set.html)
    assert fields("+CEREG: 2") == {"stat": 2, "registered": False, "roaming": False}
    assert fields('+CEREG: 1,"002F","0012BEEF",7') == {
        "stat": 1,
        "registered": True,
        "roaming": False,
        "tac": "002F",
        "tac_int": 0x2F,
        "cell_id": "0012BEEF",
        "cell_id_int": 0x0012BEEF,
        "cell_id_valid": True,
        "act": 7,
    }


def test_cereg_read_form_has_n_and_command_tells_it_from_a_urc() -> None:
    # Particle Tachyon rild log, AT+CEREG? answered "+CEREG: 2,0" (pastebin.com/aSQtaCZy)
    assert fields("+CEREG: 2,0\r\n\r\nOK") == {
        "n": 2,
        "stat": 0,
        "registered": False,
        "roaming": False,
    }
    assert fields("+CEREG: 1,5", command="AT+CEREG?")["n"] == 1
    urc = fields("+CEREG: 1,5", command="+CEREG")
    assert "n" not in urc
    assert urc["stat"] == 1
    assert urc["tac"] == "5"


def test_cereg_level_5_reject_cause_and_psm_timers() -> None:
    # TS 27.007 §10.1.22 level 5 layout; the timers per TS 24.008 Tables 10.5.172 / 10.5.163a
    got = fields('+CEREG: 3,"0a0b","01A2B3C",7,0,15,"00100001","00000110"')
    assert got["stat"] == 3
    assert got["registered"] is False
    assert got["tac"] == "0a0b"
    assert got["tac_int"] == 0x0A0B
    assert got["cell_id_int"] == 0x01A2B3C  # a 7-digit cell id
    assert (got["cause_type"], got["reject_cause"]) == (0, 15)
    assert got["active_time_raw"] == "00100001"
    assert got["active_time_s"] == 60
    assert got["active_time_deactivated"] is False
    assert got["periodic_tau_s"] == 6 * 600
    read = fields('+CEREG: 4,1,"0A0B","FFFFFFFF",9,,,"11100000","11100000"')
    assert read["n"] == 4
    assert read["cell_id_valid"] is False
    assert read["active_time_deactivated"] is True
    assert read["active_time_s"] is None
    assert read["periodic_tau_deactivated"] is True


def test_gprs_timer_codings() -> None:
    assert parse_gprs_timer("01000011", "timer2").seconds == 3 * 360  # type: ignore[union-attr]
    assert parse_gprs_timer("01100001", "timer3").seconds == 2  # type: ignore[union-attr]
    assert parse_gprs_timer("10000010", "timer3").seconds == 60  # type: ignore[union-attr]
    assert parse_gprs_timer("11000001", "timer3").seconds == 320 * 3600  # type: ignore[union-attr]
    assert parse_gprs_timer("0101", "timer2") is None
    assert parse_registration_extras("5,1", is_read=True).n == 5


def test_cgreg_and_creg_use_the_same_names() -> None:
    cgreg = fields('+CGREG: 2,5,"1A2B","00C0FFEE",0,"01"')
    assert (cgreg["n"], cgreg["stat"], cgreg["roaming"], cgreg["act"]) == (2, 5, True, 0)
    assert fields("+CREG:0,1")["registered"] is True


def test_cesq_and_csq() -> None:
    got = fields("+CESQ: 99,99,255,255,31,62\r\nOK")
    assert got == {
        "rxlev": 99,
        "ber": 99,
        "rscp": 255,
        "ecno": 255,
        "rsrq_index": 31,
        "rsrq_db": -4.0,
        "rsrp_index": 62,
        "rsrp_dbm": -78,
    }
    assert fields("+CESQ: 99,99,255,255,255,255")["rsrp_dbm"] is None
    assert fields("+CSQ:4,0") == {"rssi_index": 4, "rssi_dbm": -105, "ber": 0}
    assert fields("+CSQ: 99,99") == {"rssi_index": 99, "rssi_dbm": None, "ber": None}


def test_cops_read_and_test_forms() -> None:
    # 1NCE blueprint "SIM7000G network registration" (help.1nce.com/docs/blueprints-examples/
    # sim7000g-network-registration): AT+COPS? and AT+COPS=? answers
    assert fields('+COPS: 1,2,"26201",9') == {"mode": 1, "format": 2, "plmn": "26201", "act": 9}
    assert fields('+COPS: 1,0,"D1"') == {"mode": 1, "format": 0, "operator": "D1", "act": None}
    available = fields(
        '+COPS: (1,"Telekom.de","TDG","26201",0),(1,"Vodafone.de","Vodafone","26202",0),'
        '(1,"o2 - de","o2 - de","26203",0),(2,"o2 - de","o2 - de","26203",7),'
        '(1,"o2 - de","o2 - de","26203",9),(1,"Vodafone.de","Vodafone","26202",9),'
        '(1,"Telekom.de","TDG","26201",9),,(0,1,2,3,4),(0,)\r\nOK'
    )["available"]
    assert isinstance(available, list)
    assert len(available) == 7
    assert available[3] == {
        "stat": 2,
        "operator_long": "o2 - de",
        "operator_short": "o2 - de",
        "plmn": "26203",
        "act": 7,
    }


def test_cpsms_cfun_cgsn_cgdcont_cgpaddr_cscon() -> None:
    psm = fields('+CPSMS: 1,,,"00000110","00100001"')
    assert psm["requested_periodic_tau_s"] == 3600
    assert psm["requested_active_time_s"] == 60
    assert psm["requested_active_time_raw"] == "00100001"
    # Thingy:91 session log (pastebin.com/wUPTNrp6): AT+CFUN?, AT+CGSN=1, AT+CGDCONT?
    assert fields("+CFUN: 1\r\nOK") == {"functional_mode": 1}
    assert fields('+CGSN: "352656100885188"') == {"imei": "352656100885188"}
    assert fields("352656100885188\r\nOK", command="AT+CGSN") == {"imei": "352656100885188"}
    assert fields('+CGDCONT: 0,"IP","","",0,0\r\nOK') == {
        "contexts": [{"cid": 0, "pdp_type": "IP", "apn": None, "address": None}]
    }
    two = fields(
        '\r\n+CGDCONT: 0,"IP","iot.1nce.net","10.1.2.3",0,0\r\n+CGDCONT: 1,"IPV4V6","x",""'
    )
    assert [c["apn"] for c in two["contexts"]] == ["iot.1nce.net", "x"]  # type: ignore[attr-defined]
    addr = fields('+CGPADDR: 0,"10.1.2.3","2001:db8::1"')
    assert addr == {"addresses": [{"cid": 0, "address": "10.1.2.3", "address_ipv6": "2001:db8::1"}]}
    assert fields("+CSCON: 1") == {"rrc_state": 1}
    assert fields("+CSCON: 1,0") == {"n": 1, "rrc_state": 0}


def test_several_commands_are_keyed_by_prefix() -> None:
    got = fields("+CFUN: 1\r\nOK\r\n+CSQ: 20,0\r\nOK")
    assert got == {
        "+CFUN": {"functional_mode": 1},
        "+CSQ": {"rssi_index": 20, "rssi_dbm": -73, "ber": 0},
    }


def test_ratings() -> None:
    assert rate("rsrp_dbm", -87) == "good"
    assert rate("rsrp_dbm", -115) == "poor"
    assert rate("rsrq_db", -4.0) == "excellent"
    assert rate("snr_db", None) is None


def test_explain_prints_meaning_and_rating(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--", '+CEREG: 3,"0A0B","01020304",7,0,15']) == 0
    out = capsys.readouterr().out
    assert "registration denied" in out
    assert "No suitable cells in tracking area" in out
    assert "check the band lock" in out
    assert main(["explain", "--", "+CESQ: 99,99,255,255,31,53"]) == 0
    assert "-87 dBm  good" in capsys.readouterr().out


def test_explain_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--json", "--command", "AT+CEREG?", "--", "+CEREG: 1,5"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "n": 1,
        "stat": 5,
        "registered": True,
        "roaming": True,
    }


def test_explain_reads_stdin() -> None:
    answer = b'+CGDCONT: 0,"IP","a","",0,0\r\n+CGDCONT: 1,"IP","b","",0,0\r\nOK\r\n'
    done = subprocess.run(
        [sys.executable, "-m", "atbridge", "explain", "--json", "-"],
        input=answer,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert [c["apn"] for c in json.loads(done.stdout)["contexts"]] == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "",
        "+CEREG: x",
        "+CXYZ: 1",
        "+CSQ: 1",
        "+CGSN: 12",
        "%XMONITOR: x",
        "%CONEVAL: 0,1,5",
        "%NBRGRSRP: 1,2",
        "+CPSI: ",
        "+CBC: abc",
        "%XSYSTEMMODE: 1,0",
        "%MDMEV: ?!",
        '+CENG: 0,"1,2"',
        "C: x",
    ],
)
def test_garbled_input_is_a_clear_error_exit_2(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "--", text]) == 2
    err = capsys.readouterr().err
    assert "cannot explain this text" in err
    assert "Traceback" not in err


#: Every prefix explain decodes, and the bare-line shapes it takes, for the fuzz test.
_FUZZ_PREFIXES = sorted(
    {f"{prefix}: " for prefix in PREFIXES}
    | {"+CME ERROR: ", "+CMS ERROR: ", "STATE: ", "C: ", "PrimaryDns: ", "%CONEVAL: 0,"}
)


@settings(max_examples=600, deadline=None)
@given(
    st.text()
    | st.builds(
        lambda p, rest: p + rest,
        st.sampled_from(_FUZZ_PREFIXES),
        st.text(alphabet='0123456789,"ABCDEF() x-.V\u201d', max_size=60),
    ),
    st.sampled_from(
        [None, "AT+CEREG?", "AT+CIMI", "AT+CCID", "AT+CGMR", "AT+NETOPEN", "AT+CSCON?", "+CENG"]
    ),
)
def test_random_text_raises_only_the_clear_error(text: str, command: str | None) -> None:
    with contextlib.suppress(ExplainError):
        explain_text(text, command=command)


def test_explain_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from atbridge.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["explain", "--help"])
    assert exited.value.code == 0
    assert "usage: atbridge explain" in capsys.readouterr().out


def test_urc_with_a_bare_hex_area_code_and_an_echoed_command() -> None:
    got = fields("AT+CEREG?\r\n+CEREG: 1,2F,0012BEEF,7\r\nOK")
    assert "n" not in got
    assert (got["stat"], got["tac_int"], got["cell_id"]) == (1, 0x2F, "0012BEEF")
    assert fields("+CGREG: 1,12,0012BEEF,0")["tac"] == "12"


def test_table_says_unknown_for_the_not_measured_indices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "--", "+CESQ: 99,99,255,255,255,255"]) == 0
    out = capsys.readouterr().out
    assert "rxlev       99  unknown / not measured" in out
    assert "rsrp_dbm    unknown" in out
