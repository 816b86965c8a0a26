"""SIMCom answers field by field: both +CPSI layouts, NO SERVICE, GSM, transitional lines, +CENG.

Each line is quoted from the public source named next to it.
"""

from __future__ import annotations

from typing import Any

import pytest

from atbridge.diagnostics import ExplainError, decode_answer, explain_text, flatten

_NULL_LTE = dict.fromkeys(
    ("pci", "band", "earfcn", "dl_bw_raw", "ul_bw_raw", "rsrq_db", "rsrp_dbm", "rssi_dbm")
) | {"rssnr_raw": None, "sinr_db": None}


def cpsi(line: str) -> dict[str, Any]:
    return decode_answer("AT+CPSI?", [line])


def test_cpsi_sim70x0_cat_m1_whole_db() -> None:
    # espressif/esp-modem issue log, SIM7070G on LTE-M (github): AT+CPSI?
    assert cpsi(
        "+CPSI: LTE CAT-M1,Online,238-01,0x07D0,12024586,465,EUTRAN-BAND20,6350,5,5,-16,-83,-53,10"
    ) == {
        "system_mode": "LTE CAT-M1",
        "operation_mode": "Online",
        "service": True,
        "mcc": "238",
        "mnc": "01",
        "plmn": "23801",
        "tac": "07D0",
        "tac_int": 0x07D0,
        "cell_id": "00B77B0A",
        "cell_id_int": 12024586,
        "pci": 465,
        "band": 20,
        "earfcn": 6350,
        "dl_bw_raw": 5,
        "ul_bw_raw": 5,
        "rsrq_db": -16,
        "rsrp_dbm": -83,
        "rssi_dbm": -53,
        "rssnr_raw": 10,
        "sinr_db": 0,
        "act": 7,
    }


def test_cpsi_sim70x0_nb_iot() -> None:
    # a public SIM7080G debug log on github (Telia EE, NB-IoT band 20)
    assert cpsi(
        "+CPSI: LTE NB-IOT,Online,248-01,0x2AFA,51716400,177,EUTRAN-BAND20,6254,0,0,-10,-63,-54,15"
    ) == {
        "system_mode": "LTE NB-IOT",
        "operation_mode": "Online",
        "service": True,
        "mcc": "248",
        "mnc": "01",
        "plmn": "24801",
        "tac": "2AFA",
        "tac_int": 0x2AFA,
        "cell_id": "03152130",
        "cell_id_int": 51716400,
        "pci": 177,
        "band": 20,
        "earfcn": 6254,
        "dl_bw_raw": 0,
        "ul_bw_raw": 0,
        "rsrq_db": -10,
        "rsrp_dbm": -63,
        "rssi_dbm": -54,
        "rssnr_raw": 15,
        "sinr_db": 10,
        "act": 9,
    }


def test_cpsi_sim7600_tenths() -> None:
    # ArduPilot's SIM7600 LTE script comment, "example1" (github ArduPilot/ardupilot)
    assert cpsi(
        "+CPSI: LTE,Online,505-02,0xCBE8,36519691,101,EUTRAN-BAND3,1800,5,5,-147,-1143,-764,11"
    ) == {
        "system_mode": "LTE",
        "operation_mode": "Online",
        "service": True,
        "mcc": "505",
        "mnc": "02",
        "plmn": "50502",
        "tac": "CBE8",
        "tac_int": 0xCBE8,
        "cell_id": "022D3F0B",
        "cell_id_int": 36519691,
        "pci": 101,
        "band": 3,
        "earfcn": 1800,
        "dl_bw_raw": 5,
        "ul_bw_raw": 5,
        "rsrq_db": -14.7,
        "rsrp_dbm": -114.3,
        "rssi_dbm": -76.4,
        "rssnr_raw": 11,
        "sinr_db": None,
        "act": 7,
    }


def test_cpsi_no_service() -> None:
    # SIM7000/SIM7600 manuals: "+CPSI: NO SERVICE,Online" when not camped
    got = cpsi("+CPSI: NO SERVICE,Online")
    assert got == {
        "system_mode": "NO SERVICE",
        "operation_mode": "Online",
        "service": False,
        **dict.fromkeys(("mcc", "mnc", "plmn", "tac", "tac_int", "cell_id", "cell_id_int")),
        **_NULL_LTE,
        "act": None,
    }


def test_cpsi_transitional_garbage_is_null() -> None:
    # a public C++ test (github) of a SIM7600 line printed while the cell changes
    got = cpsi("+CPSI: LTE,Online,250-20,0x4D07,200468789,0,EUTRAN-BAND0,4294967295,0,0,0,0,0,0")
    assert got == {
        "system_mode": "LTE",
        "operation_mode": "Online",
        "service": True,
        "mcc": "250",
        "mnc": "20",
        "plmn": "25020",
        "tac": "4D07",
        "tac_int": 0x4D07,
        "cell_id": "0BF2E935",
        "cell_id_int": 200468789,
        **_NULL_LTE,
        "pci": 0,
        "dl_bw_raw": 0,
        "ul_bw_raw": 0,
        "act": 7,
    }


def test_cpsi_gsm_layout() -> None:
    # a public 1NCE SIM7000 log (github): AT+CPSI? on 2G
    got = cpsi("+CPSI: GSM,Online,262-01,0x972d,5559,79 EGSM 900,-83,0,24-24")
    assert got == {
        "system_mode": "GSM",
        "operation_mode": "Online",
        "service": True,
        "mcc": "262",
        "mnc": "01",
        "plmn": "26201",
        "tac": "972d",
        "tac_int": 0x972D,
        "cell_id": "000015B7",
        "cell_id_int": 5559,
        **_NULL_LTE,
        "act": 0,
        "arfcn": 79,
        "rxlev_dbm": -83,
    }


def test_ceng_sim7080_serving_and_neighbour() -> None:
    # a public SIM7080 MicroPython driver's comment quoting a real AT+CENG? answer (github)
    text = (
        "AT+CENG?\r\r\n+CENG: 1,1,2,LTE CAT-M1\r\n\r\n"
        '+CENG: 0,"1550,339,-73,-47,-12,17,102,303617,284,05,255"\r\n'
        '+CENG: 1,"1550,414,-88,-51,-20,17"\r\n\r\nOK\r\n'
    )
    assert flatten(explain_text(text)) == {
        "mode": 1,
        "ncell": 1,
        "cell_count": 2,
        "system_mode": "LTE CAT-M1",
        "serving": {
            "earfcn": 1550,
            "pci": 339,
            "rsrp_dbm": -73,
            "rssi_dbm": -47,
            "rsrq_db": -12,
            "sinr_db": 17,
            "tac_raw": "102",
            "cell_id_raw": "303617",
            "mcc": "284",
            "mnc": "05",
            "tx_power_raw": "255",
            "plmn": "28405",
        },
        "neighbours": [
            {
                "earfcn": 1550,
                "pci": 414,
                "rsrp_dbm": -88,
                "rssi_dbm": -51,
                "rsrq_db": -20,
                "sinr_db": 17,
            }
        ],
    }


def test_ceng_of_another_layout_is_refused() -> None:
    # SIM800's GSM +CENG (a public Arduino sketch comment): not the verified SIM7080 layout
    with pytest.raises(ExplainError, match="SIM7080"):
        explain_text('+CENG: 0,"208,01,1102,d63d,27,31"')


def test_netopen_read_form_and_result_urc() -> None:
    # SIM7600 manual: AT+NETOPEN? -> +NETOPEN: <net_state>; AT+NETOPEN -> OK then +NETOPEN: <err>
    assert decode_answer("AT+NETOPEN?", ["+NETOPEN: 0"]) == {"network_open": False}
    assert flatten(explain_text("+NETOPEN: 0", command="AT+NETOPEN")) == {
        "netopen_error": 0,
        "network_open": True,
    }


def test_cnact_sim7000_form_and_app_pdp_urc() -> None:
    # SIM7000 manual AT+CNACT? -> +CNACT: <status>,<ip_addr>; SIM7080 URC "+APP PDP: 0,ACTIVE"
    # (a public SIM7080G sketch comment on github)
    assert decode_answer("AT+CNACT?", ['+CNACT: 1,"10.94.36.81"']) == {
        "contexts": [{"pdpidx": None, "status": 1, "address": "10.94.36.81"}]
    }
    assert flatten(explain_text("+APP PDP: 0,ACTIVE")) == {"pdpidx": 0, "state": "ACTIVE"}


def test_cipstatus_lines_are_taken_without_a_command() -> None:
    # a public SIM800 parser's comment (github): C: lines before STATE, no command given
    text = (
        'C: 0,0,"TCP","47.107.25.39","9998","CONNECTED"\n'
        'C: 1,,"","","","INITIAL"\n\nSTATE: IP INITIAL'
    )
    got = flatten(explain_text(text))
    assert got["state"] == "IP INITIAL"
    assert got["connections"] == [
        {
            "link": 0,
            "bearer": 0,
            "protocol": "TCP",
            "address": "47.107.25.39",
            "port": 9998,
            "state": "CONNECTED",
        },
        {
            "link": 1,
            "bearer": None,
            "protocol": None,
            "address": None,
            "port": None,
            "state": "INITIAL",
        },
    ]
