"""Every answer the dialects' ``diagnostic_queries``/``sample_queries`` get, decoded field by field.

Each answer is quoted from a public source named next to it (the Nordic nRF91
AT Commands Reference examples, SIMCom manual examples, public logs and test
data); a few are built from the documented syntax to reach another form, and
say so. ``decode_answer`` is what ``diag`` and ``watch`` call for every query.
"""

from __future__ import annotations

from typing import Any

import pytest

from atbridge.diagnostics import decode_answer, explain_text, flatten

NORDIC_REF = "nRF91 AT Commands Reference (docs.nordicsemi.com)"

CASES: list[tuple[str, str, list[str], dict[str, Any]]] = [
    # --- device layer -------------------------------------------------------------
    (
        # Thingy:91 session log, AT+CGSN=1 (pastebin.com/wUPTNrp6)
        "Thingy:91 log",
        "AT+CGSN=1",
        ['+CGSN: "352656100885188"'],
        {"imei": "352656100885188"},
    ),
    (
        # a public SIM7080G bring-up log on GitHub ("IMEI: >>> 867698045123456"); the
        # bare-digits line is AT+CGSN's TS 27.007 §5.4 form
        "public SIM7080G log",
        "AT+CGSN",
        ["867698045123456"],
        {"imei": "867698045123456"},
    ),
    (
        # a public SIMCom simulator in a Go test on GitHub: AT+CIMI -> "001010123456789"
        "public test double",
        "AT+CIMI",
        ["001010123456789"],
        {"imsi": "001010123456789"},
    ),
    (
        # %XICCID with the F pad of an odd-length ICCID (nRF91 AT reference syntax; the
        # digits are the reference's placeholder style, built)
        NORDIC_REF,
        "AT%XICCID",
        ["%XICCID: 8901234567012345678F"],
        {"iccid": "8901234567012345678F"},
    ),
    (
        # a public Rust modem driver comment: SIM7080G firmware answers AT+CCID bare
        # ("just 8988...\r\nOK"); digits from an Air780E test on GitHub (F pad kept)
        "public driver comments",
        "AT+CCID",
        ["8939880841024179213F"],
        {"iccid": "8939880841024179213F"},
    ),
    (
        # public SIMCom simulator (github: AT+CCID -> "+CCID: 8901000000000000000")
        "public test double",
        "AT+CCID",
        ["+CCID: 8901000000000000000"],
        {"iccid": "8901000000000000000"},
    ),
    (
        # SIM7500/SIM7600 Series AT Command Manual, AT+CICCID example (hex letter kept)
        "SIM7600 manual",
        "AT+CICCID",
        ["+ICCID: 898600700907A6019125"],
        {"iccid": "898600700907A6019125"},
    ),
    (
        # a public Go modem library comment: Quectel answers '+CCID: "8914...","".'
        "public Go library comment",
        "AT+CCID",
        ['+CCID: "89148000000637720260",""'],
        {"iccid": "89148000000637720260"},
    ),
    (
        # nRF91 AT reference §5.2.2, "+CPIN: \"SIM PIN\"" example
        NORDIC_REF,
        "AT+CPIN?",
        ['+CPIN: "SIM PIN"'],
        {"pin_state": "SIM PIN"},
    ),
    (
        # the same SIM7080G bring-up log: ">>> AT+CPIN? >>> +CPIN: READY"
        "public SIM7080G log",
        "AT+CPIN?",
        ["+CPIN: READY"],
        {"pin_state": "READY"},
    ),
    (
        # a public nRF91 simulator's reply table on GitHub: "%XTEMP: 25"
        "public nRF91 simulator",
        "AT%XTEMP?",
        ["%XTEMP: 25"],
        {"temperature_c": 25},
    ),
    (
        # nRF91 AT reference §5.23, "AT%XVBAT %XVBAT: 3600 OK"
        NORDIC_REF,
        "AT%XVBAT",
        ["%XVBAT: 3600"],
        {"voltage_mv": 3600},
    ),
    (
        # SIM800/SIM7000 +CBC: <bcs>,<bcl>,<voltage> (public test: "+CBC: 0,70,3961")
        "public test",
        "AT+CBC",
        ["+CBC: 0,70,3961"],
        {"charge_state": 0, "battery_percent": 70, "voltage_mv": 3961},
    ),
    (
        # SIM7600 session log on github: "+CBC: 3.978V"
        "SIM7600 log",
        "AT+CBC",
        ["+CBC: 3.978V"],
        {"voltage_mv": 3978},
    ),
    (
        # the same SIM7600 log: "+CPMUTEMP: 23"
        "SIM7600 log",
        "AT+CPMUTEMP",
        ["+CPMUTEMP: 23"],
        {"temperature_c": 23},
    ),
    (
        # nRF91 identity answers (nRF91 AT reference +CGMI/+CGMM/+CGMR examples)
        NORDIC_REF,
        "AT+CGMI",
        ["Nordic Semiconductor ASA"],
        {"manufacturer": "Nordic Semiconductor ASA"},
    ),
    (NORDIC_REF, "AT+CGMM", ["nRF9160-SICA"], {"model": "nRF9160-SICA"}),
    (NORDIC_REF, "AT+CGMR", ["mfw_nrf9160_1.3.5"], {"revision": "mfw_nrf9160_1.3.5"}),
    (
        # the SIM7080G bring-up log: "Firmware: >>> Revision:1351B05SIM7080G" (label dropped)
        "public SIM7080G log",
        "AT+CGMR",
        ["Revision:1351B05SIM7080G"],
        {"revision": "1351B05SIM7080G"},
    ),
    (
        # SIM7600 AT+CGMR answers with its prefix (SIM7600 manual syntax; revision built)
        "SIM7600 manual",
        "AT+CGMR",
        ["+CGMR: LE20B04SIM7600G22"],
        {"revision": "LE20B04SIM7600G22"},
    ),
    # --- radio layer --------------------------------------------------------------
    (
        # nRF91 AT reference +CFUN? example
        NORDIC_REF,
        "AT+CFUN?",
        ["+CFUN: 1"],
        {"functional_mode": 1},
    ),
    (
        # Cellular Monitor test data: "%XSYSTEMMODE: 1,0,1,0" (LTE-M and GNSS)
        "pc-nrfconnect-cellularmonitor tests",
        "AT%XSYSTEMMODE?",
        ["%XSYSTEMMODE: 1,0,1,0"],
        {"lte_m_enabled": True, "nbiot_enabled": False, "gnss_enabled": True, "lte_preference": 0},
    ),
    (
        # nRF91 AT reference §5.14, "AT%XCBAND %XCBAND: 13 OK"
        NORDIC_REF,
        "AT%XCBAND",
        ["%XCBAND: 13"],
        {"band": 13},
    ),
    (
        # nRF91 AT reference §5.14: 0 = no band information
        NORDIC_REF,
        "AT%XCBAND",
        ["%XCBAND: 0"],
        {"band": None},
    ),
    (
        # nRF91 AT reference §5.5, "+CESQ: 99,99,255,255,31,62"
        NORDIC_REF,
        "AT+CESQ",
        ["+CESQ: 99,99,255,255,31,62"],
        {
            "rxlev": 99,
            "ber": 99,
            "rscp": 255,
            "ecno": 255,
            "rsrq_index": 31,
            "rsrq_db": -4.0,
            "rsrp_index": 62,
            "rsrp_dbm": -78,
        },
    ),
    (
        # nRF91 AT reference §5.7, "+CSQ: 99,99" (2G/3G not supported)
        NORDIC_REF,
        "AT+CSQ",
        ["+CSQ: 99,99"],
        {"rssi_index": 99, "rssi_dbm": None, "ber": None},
    ),
    (
        # nRF91 AT reference, %XMONITOR example (v1.2.x: with the legacy T3412)
        NORDIC_REF,
        "AT%XMONITOR",
        [
            '%XMONITOR: 1,"EDAV","EDAV","26295","00B7",7,4,"00011B07",7,2300,63,39,"",'
            '"11100000","11100000","00000000"'
        ],
        {
            "stat": 1,
            "registered": True,
            "roaming": False,
            "operator_full": "EDAV",
            "operator_short": "EDAV",
            "plmn": "26295",
            "tac": "00B7",
            "tac_int": 0xB7,
            "act": 7,
            "band": 4,
            "cell_id": "00011B07",
            "cell_id_int": 0x11B07,
            "cell_id_valid": True,
            "pci": 7,
            "earfcn": 2300,
            "rsrp_index": 63,
            "rsrp_dbm": -77,
            "snr_index": 39,
            "snr_db": 15,
            "edrx": None,
            "edrx_s": None,
            "active_time_raw": "11100000",
            "active_time_s": None,
            "active_time_deactivated": True,
            "periodic_tau_raw": "11100000",
            "periodic_tau_s": None,
            "periodic_tau_deactivated": True,
            "periodic_tau_legacy_raw": "00000000",
            "periodic_tau_legacy_s": 0,
            "periodic_tau_legacy_deactivated": False,
        },
    ),
    (
        # an nRF9160 NB-IoT application's log comment (github):
        # %XMONITOR: 1,"","","46000","1D29",9,8,"0D1E2D42",11,3684,45,38,"","00000100",...
        "public nRF9160 log",
        "AT%XMONITOR",
        [
            '%XMONITOR: 1,"","","46000","1D29",9,8,"0D1E2D42",11,3684,45,38,"",'
            '"00000100","11100000","00111110"'
        ],
        {
            "stat": 1,
            "registered": True,
            "roaming": False,
            "operator_full": None,
            "operator_short": None,
            "plmn": "46000",
            "tac": "1D29",
            "tac_int": 0x1D29,
            "act": 9,
            "band": 8,
            "cell_id": "0D1E2D42",
            "cell_id_int": 0x0D1E2D42,
            "cell_id_valid": True,
            "pci": 11,
            "earfcn": 3684,
            "rsrp_index": 45,
            "rsrp_dbm": -95,
            "snr_index": 38,
            "snr_db": 14,
            "edrx": None,
            "edrx_s": None,
            "active_time_raw": "00000100",
            "active_time_s": 8,
            "active_time_deactivated": False,
            "periodic_tau_raw": "11100000",
            "periodic_tau_s": None,
            "periodic_tau_deactivated": True,
            "periodic_tau_legacy_raw": "00111110",
            "periodic_tau_legacy_s": 30 * 60,
            "periodic_tau_legacy_deactivated": False,
        },
    ),
    (
        # nRF91 AT reference %CONEVAL example, as Cellular Monitor's tests quote it (with the
        # typographic quote the copied PDF text carries)
        "pc-nrfconnect-cellularmonitor tests",
        "AT%CONEVAL",
        ['%CONEVAL: 0,1,5,8,2,14,"011B0780\u201d,"26295",7,1575,3,1,1,23,16,32,130'],
        {
            "result": 0,
            "rrc_state": 1,
            "energy_estimate": 5,
            "rsrp_index": 8,
            "rsrp_dbm": -132,
            "rsrq_index": 2,
            "rsrq_db": -18.5,
            "snr_index": 14,
            "snr_db": -10,
            "cell_id": "011B0780",
            "cell_id_int": 0x011B0780,
            "plmn": "26295",
            "pci": 7,
            "earfcn": 1575,
            "band": 3,
            "tau_triggered": 1,
            "ce_level": 1,
            "tx_power_dbm": 23,
            "tx_repetitions": 16,
            "rx_repetitions": 32,
            "dl_pathloss_db": 130,
        },
    ),
    (
        # HARDWARIO CHESTER lte_v2 test mock (github): a healthy cell, TX power -8 dBm
        "hardwario chester tests",
        "AT%CONEVAL",
        ['%CONEVAL: 0,1,7,95,30,49,"000AE520","23003",135,6447,20,0,0,-8,2,1,73'],
        {
            "result": 0,
            "rrc_state": 1,
            "energy_estimate": 7,
            "rsrp_index": 95,
            "rsrp_dbm": -45,
            "rsrq_index": 30,
            "rsrq_db": -4.5,
            "snr_index": 49,
            "snr_db": 25,
            "cell_id": "000AE520",
            "cell_id_int": 0xAE520,
            "plmn": "23003",
            "pci": 135,
            "earfcn": 6447,
            "band": 20,
            "tau_triggered": 0,
            "ce_level": 0,
            "tx_power_dbm": -8,
            "tx_repetitions": 2,
            "rx_repetitions": 1,
            "dl_pathloss_db": 73,
        },
    ),
    (
        # nRF91 AT reference %CONEVAL: result 1 = no cell available, nothing else follows
        NORDIC_REF,
        "AT%CONEVAL",
        ["%CONEVAL: 1"],
        {"result": 1},
    ),
    (
        # a public nRF9160 application's comment: "%NBRGRSRP: 179,6447,57,11,6447,54"
        "public nRF9160 source",
        "AT%NBRGRSRP",
        ["%NBRGRSRP: 179,6447,57,11,6447,54"],
        {
            "neighbours": [
                {"pci": 179, "earfcn": 6447, "rsrp_index": 57, "rsrp_dbm": -83},
                {"pci": 11, "earfcn": 6447, "rsrp_index": 54, "rsrp_dbm": -86},
            ]
        },
    ),
    (
        # AT+CNMP=38 / AT+CMNB=1 are the settings a public SIM7000 script sends (GitHub);
        # the read answers are built from the SIM7000 manual's syntax
        "SIM7000 manual",
        "AT+CNMP?",
        ["+CNMP: 38"],
        {"rat_preference": 38, "rat_preference_name": "LTE only"},
    ),
    (
        "SIM7000 manual",
        "AT+CMNB?",
        ["+CMNB: 1"],
        {"lte_mode_preference": 1, "lte_mode_preference_name": "CAT-M"},
    ),
    (
        # SIM7080G notes on github ("AT+CBANDCFG? original output")
        "public SIM7080G notes",
        "AT+CBANDCFG?",
        [
            '+CBANDCFG: "CAT-M",1,2,3,4,5,8,12,13,18,19,20,26,28,39',
            '+CBANDCFG: "NB-IOT",1,2,3,5,8,12,13,17,18,19,20,26,28',
        ],
        {
            "bands": {
                "CAT-M": [1, 2, 3, 4, 5, 8, 12, 13, 18, 19, 20, 26, 28, 39],
                "NB-IOT": [1, 2, 3, 5, 8, 12, 13, 17, 18, 19, 20, 26, 28],
            }
        },
    ),
    # --- network layer ------------------------------------------------------------
    (
        # nRF91 AT reference §8.5, "AT+CEDRXRDP +CEDRXRDP: 4,"0011","0010","1001" OK"
        NORDIC_REF,
        "AT+CEDRXRDP",
        ['+CEDRXRDP: 4,"0011","0010","1001"'],
        {
            "act_type": 4,
            "requested_edrx_raw": "0011",
            "requested_edrx_s": 40.96,
            "edrx_raw": "0010",
            "edrx_s": 20.48,
            "ptw_raw": "1001",
            "ptw_s": 12.8,
        },
    ),
    (
        # TS 27.007 §7.41: AcT-type 0 = eDRX not used (built from the syntax)
        "TS 27.007",
        "AT+CEDRXRDP",
        ["+CEDRXRDP: 0"],
        {
            "act_type": 0,
            "requested_edrx_raw": None,
            "requested_edrx_s": None,
            "edrx_raw": None,
            "edrx_s": None,
            "ptw_raw": None,
            "ptw_s": None,
        },
    ),
    (
        # nRF91 AT reference, "AT%XPTW? %XPTW: 4,"0110" %XPTW: 5,"1110" OK"
        NORDIC_REF,
        "AT%XPTW?",
        ['%XPTW: 4,"0110"', '%XPTW: 5,"1110"'],
        {
            "ptw": [
                {"act_type": 4, "requested_ptw_raw": "0110", "requested_ptw_s": 8.96},
                {"act_type": 5, "requested_ptw_raw": "1110", "requested_ptw_s": 38.4},
            ]
        },
    ),
    (
        # several AcT-types on one line (lenient: the reference prints one line each); built
        "built",
        "AT%XPTW?",
        ['%XPTW: 4,"0001",5,"0011"'],
        {
            "ptw": [
                {"act_type": 4, "requested_ptw_raw": "0001", "requested_ptw_s": 2.56},
                {"act_type": 5, "requested_ptw_raw": "0011", "requested_ptw_s": 10.24},
            ]
        },
    ),
    (
        # 1NCE blueprint: AT+COPS? -> '+COPS: 1,2,"26201",9'
        "1NCE blueprint",
        "AT+COPS?",
        ['+COPS: 1,2,"26201",9'],
        {"mode": 1, "format": 2, "plmn": "26201", "act": 9},
    ),
    (
        # nRF91 AT reference §7.9 +CGCONTRDP example (one IPv4 line, MTU 1028)
        NORDIC_REF,
        "AT+CGCONTRDP=0",
        ['+CGCONTRDP: 0,,"internet","","","10.0.0.1","10.0.0.2",,,,,1028'],
        {
            "cid": 0,
            "apn": "internet",
            "dns_servers": ["10.0.0.1", "10.0.0.2"],
            "mtu": 1028,
            "contexts": [
                {
                    "cid": 0,
                    "bearer_id": None,
                    "apn": "internet",
                    "local_address": None,
                    "gateway": None,
                    "dns_primary": "10.0.0.1",
                    "dns_secondary": "10.0.0.2",
                    "mtu": 1028,
                }
            ],
        },
    ),
    (
        # sdk-nrf lib/pdn (or modem_info) comment: an IPv4v6 PDN gives one line per family
        "sdk-nrf source comment",
        "AT+CGCONTRDP=0",
        [
            '+CGCONTRDP: 0,,"example.com","","","198.176.154.230","12.34.56.78",,,,,1464',
            '+CGCONTRDP: 0,,"example.com","","","1111:2222:3:FFF::55",'
            '"1111:2222:3:FFF::55",,,,,1464',
        ],
        {
            "cid": 0,
            "apn": "example.com",
            "dns_servers": ["198.176.154.230", "12.34.56.78", "1111:2222:3:FFF::55"],
            "mtu": 1464,
            "contexts": [
                {
                    "cid": 0,
                    "bearer_id": None,
                    "apn": "example.com",
                    "local_address": None,
                    "gateway": None,
                    "dns_primary": "198.176.154.230",
                    "dns_secondary": "12.34.56.78",
                    "mtu": 1464,
                },
                {
                    "cid": 0,
                    "bearer_id": None,
                    "apn": "example.com",
                    "local_address": None,
                    "gateway": None,
                    "dns_primary": "1111:2222:3:FFF::55",
                    "dns_secondary": "1111:2222:3:FFF::55",
                    "mtu": 1464,
                },
            ],
        },
    ),
    (
        # +CSCON read form <n>,<mode> (TS 27.007 §10.1.30; built)
        "TS 27.007",
        "AT+CSCON?",
        ["+CSCON: 0,0"],
        {"n": 0, "rrc_state": 0},
    ),
    (
        # public SIM7080G debug log on github: AT+CNACT? lists the four contexts
        "public SIM7080G log",
        "AT+CNACT?",
        [
            '+CNACT: 0,1,"10.32.116.31"',
            '+CNACT: 1,0,"0.0.0.0"',
            '+CNACT: 2,0,"0.0.0.0"',
            '+CNACT: 3,0,"0.0.0.0"',
        ],
        {
            "contexts": [
                {"pdpidx": 0, "status": 1, "address": "10.32.116.31"},
                {"pdpidx": 1, "status": 0, "address": None},
                {"pdpidx": 2, "status": 0, "address": None},
                {"pdpidx": 3, "status": 0, "address": None},
            ]
        },
    ),
    (
        # SIM7600 manual AT+NETOPEN? example: "+NETOPEN: 1"
        "SIM7600 manual",
        "AT+NETOPEN?",
        ["+NETOPEN: 1"],
        {"network_open": True},
    ),
    (
        # SIM7000 TCP/IP application note (multi-IP): AT+CIPSTATUS with OK before the
        # STATE line, and the manual's spaces inside the quotes (" CLOSED ")
        "SIM7000 TCP/IP application note",
        "AT+CIPSTATUS",
        [
            "STATE: IP PROCESSING",
            'C: 0,0,"TCP","116.228.221.51","8500"," CLOSED "',
            'C: 1,0,"UDP","116.228.221.51","9600"," CONNECTED "',
            'C: 2,,"","","","INITIAL"',
        ],
        {
            "state": "IP PROCESSING",
            "connections": [
                {
                    "link": 0,
                    "bearer": 0,
                    "protocol": "TCP",
                    "address": "116.228.221.51",
                    "port": 8500,
                    "state": "CLOSED",
                },
                {
                    "link": 1,
                    "bearer": 0,
                    "protocol": "UDP",
                    "address": "116.228.221.51",
                    "port": 9600,
                    "state": "CONNECTED",
                },
                {
                    "link": 2,
                    "bearer": None,
                    "protocol": None,
                    "address": None,
                    "port": None,
                    "state": "INITIAL",
                },
            ],
        },
    ),
    (
        # AT+CDNSCFG? (SIM800/SIM7000 manuals' PrimaryDns/SecondaryDns syntax; built)
        "SIM7000 manual",
        "AT+CDNSCFG?",
        ["PrimaryDns: 211.136.20.203", "SecondaryDns: 0.0.0.0"],
        {"dns_primary": "211.136.20.203", "dns_secondary": None, "dns_servers": ["211.136.20.203"]},
    ),
]


@pytest.mark.parametrize(
    ("source", "command", "lines", "expected"),
    CASES,
    ids=[f"{command}-{index}" for index, (_, command, _, _) in enumerate(CASES)],
)
def test_decode_answer(
    source: str, command: str, lines: list[str], expected: dict[str, Any]
) -> None:
    assert source
    assert decode_answer(command, lines) == expected
    # the same answer pasted with its echo and final OK decodes the same
    pasted = "\r\n".join([command, *lines, "", "OK"])
    assert flatten(explain_text(pasted, command=command)) == expected


def test_every_dialect_query_decodes() -> None:
    """Each query a dialect asks has at least one case above (the contract of decode_answer)."""
    from atbridge.dialects import base, nrf91, sim7000, sim7080, sim7600, simcom

    asked: set[str] = set()
    for module in (base, nrf91, simcom, sim7000, sim7080, sim7600):
        for value in vars(module).values():
            queries = getattr(value, "diagnostic_queries", None)
            if isinstance(value, type) and queries is not None:
                asked.update(q for layer in queries.values() for q in layer)
                asked.update(getattr(value, "sample_queries", ()))
    covered = {command for _, command, _, _ in CASES}
    covered |= {"AT+CEREG?", "AT+CPSI?", "AT+CGDCONT?", "AT+CGPADDR", "AT+CPSMS?"}  # below
    assert asked - covered == set()
