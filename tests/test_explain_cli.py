"""``atbridge explain --json`` on real answers: one JSON object, field by field, exit 0.

The answers are the public ones quoted (with their sources) in
tests/test_explain_queries.py, test_explain_simcom.py and test_explain_urcs.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from atbridge.cli import main


def explain_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["explain", "--json", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def test_xmonitor_json(capsys: pytest.CaptureFixture[str]) -> None:
    # nRF91 AT reference %XMONITOR example
    got = explain_json(
        capsys,
        "--",
        '%XMONITOR: 1,"EDAV","EDAV","26295","00B7",7,4,"00011B07",7,2300,63,39,"",'
        '"11100000","11100000","00000000"',
    )
    assert got["plmn"] == "26295"
    assert (got["tac"], got["tac_int"]) == ("00B7", 0xB7)
    assert (got["cell_id"], got["cell_id_int"], got["cell_id_valid"]) == ("00011B07", 72455, True)
    assert (got["band"], got["pci"], got["earfcn"]) == (4, 7, 2300)
    assert (got["rsrp_index"], got["rsrp_dbm"], got["snr_index"], got["snr_db"]) == (
        63,
        -77,
        39,
        15,
    )
    assert got["edrx"] is None
    assert got["periodic_tau_deactivated"] is True
    assert got["periodic_tau_legacy_raw"] == "00000000"
    assert "rating" not in json.dumps(got) and "excellent" not in json.dumps(got)


def test_coneval_json_carries_only_the_result_when_it_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert explain_json(capsys, "--command", "AT%CONEVAL", "--", "%CONEVAL: 3") == {"result": 3}


def test_cpsi_json_sim7600_tenths(capsys: pytest.CaptureFixture[str]) -> None:
    # ArduPilot's SIM7600 script comment
    got = explain_json(
        capsys,
        "--",
        "+CPSI: LTE,Online,505-02,0xCBE8,36519691,101,EUTRAN-BAND3,1800,5,5,-147,-1143,-764,11",
    )
    assert (got["rsrp_dbm"], got["rsrq_db"], got["rssi_dbm"]) == (-114.3, -14.7, -76.4)
    assert got["sinr_db"] is None
    assert (got["plmn"], got["cell_id"], got["band"], got["act"]) == ("50502", "022D3F0B", 3, 7)


def test_bare_lines_need_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain_json(capsys, "--command", "AT+CIMI", "--", "001010123456789") == {
        "imsi": "001010123456789"
    }
    assert explain_json(capsys, "--command", "AT+CGMM", "--", "nRF9160-SICA") == {
        "model": "nRF9160-SICA"
    }
    # without a command a 15-digit line is an IMEI (the existing rule) ...
    assert explain_json(capsys, "--", "001010123456789") == {"imei": "001010123456789"}
    # ... and free text is not explained
    assert main(["explain", "--", "nRF9160-SICA"]) == 2
    assert "not a modem answer line: 'nRF9160-SICA'" in capsys.readouterr().err


def test_error_line_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain_json(capsys, "--", "+CME ERROR: 10") == {
        "error_kind": "CME",
        "error_code": 10,
        "error_text": "SIM not inserted",
    }


def test_several_answers_in_one_paste(capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        '+CGCONTRDP: 0,,"internet","","","10.0.0.1","10.0.0.2",,,,,1028\r\nOK\r\n'
        '%XPTW: 4,"0110"\r\n%XPTW: 5,"1110"\r\nOK\r\n'
    )
    got = explain_json(capsys, "--", text)
    assert got["+CGCONTRDP"]["dns_servers"] == ["10.0.0.1", "10.0.0.2"]
    assert [p["requested_ptw_s"] for p in got["%XPTW"]["ptw"]] == [8.96, 38.4]


def test_human_table_for_new_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "explain",
                "--",
                '%CONEVAL: 0,1,7,95,30,49,"000AE520","23003",135,6447,20,0,0,-8,2,1,73',
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "energy_estimate  7  normal" in out
    assert "rsrp_dbm         -45 dBm  excellent" in out
    assert "tx_power_dbm     -8 dBm" in out
    assert main(["explain", "--", '+CBANDCFG: "CAT-M",1,3,20\r\n+CPIN: "SIM PIN"']) == 0
    out = capsys.readouterr().out
    assert "CAT-M  1, 3, 20" in out
    assert "pin_state  SIM PIN  the SIM waits for its PIN" in out
    assert main(["explain", "--", "%NBRGRSRP: 179,6447,57"]) == 0
    out = capsys.readouterr().out
    assert "neighbours[0]" in out
    assert "rsrp_dbm     -83 dBm  excellent" in out
