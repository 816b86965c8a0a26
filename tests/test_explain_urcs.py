"""The notifications ``watch`` records and the error results a pasted session holds, field by field.

%CESQ, %MDMEV, +CEDRXP, +CSCON (``--command`` telling the read form from the
URC) and +CME/+CMS ERROR lines, quoted from the sources named next to them.
"""

from __future__ import annotations

import pytest

from atbridge.diagnostics import ExplainError, describe_field, explain_text, flatten


def fields(text: str, command: str | None = None) -> dict[str, object]:
    return flatten(explain_text(text, command=command))


def test_percent_cesq_notification() -> None:
    # nRF91 AT reference §5.6 (%CESQ), example notification "%CESQ: 62,3,12,1"
    assert fields("%CESQ: 62,3,12,1") == {
        "rsrp_index": 62,
        "rsrp_dbm": -78,
        "rsrp_threshold_index": 3,
        "rsrq_index": 12,
        "rsrq_db": -13.5,
        "rsrq_threshold_index": 1,
    }
    # 255 = not known (the reference's value table), for the indices and the thresholds
    assert fields("%CESQ: 255,255,255,255") == {
        "rsrp_index": 255,
        "rsrp_dbm": None,
        "rsrp_threshold_index": None,
        "rsrq_index": 255,
        "rsrq_db": None,
        "rsrq_threshold_index": None,
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Nordic nWP042 "Modem reset loop restriction": "%MDMEV: RESET LOOP"
        ("%MDMEV: RESET LOOP", {"event": "RESET LOOP"}),
        # sdk-nrf lib/lte_link_control/modules/mdmev.c, the fixed events
        ("%MDMEV: ME OVERHEATED", {"event": "ME OVERHEATED"}),
        ("%MDMEV: ME BATTERY LOW", {"event": "ME BATTERY LOW"}),
        ("%MDMEV: SEARCH STATUS 1", {"event": "SEARCH STATUS 1"}),
        ("%MDMEV: SEARCH STATUS 2", {"event": "SEARCH STATUS 2"}),
        ("%MDMEV: NO IMEI", {"event": "NO IMEI"}),
        # ... and the valued events of the same file
        ("%MDMEV: PRACH CE-LEVEL 0", {"event": "PRACH CE-LEVEL 0", "ce_level": 0}),
        ("%MDMEV: DETECTED COUNTRY 242", {"event": "DETECTED COUNTRY 242", "mcc": 242}),
        (
            "%MDMEV: INVALID BAND CONFIGURATION 0 0",
            {
                "event": "INVALID BAND CONFIGURATION 0 0",
                "band_config_ltem": 0,
                "band_config_nbiot": 0,
                "band_config_ntn_nbiot": None,
            },
        ),
    ],
)
def test_mdmev_events(line: str, expected: dict[str, object]) -> None:
    assert fields(line) == expected


def test_cedrxp_notification_has_the_cedrxrdp_fields() -> None:
    # TS 27.007 §7.40 +CEDRXP: <AcT-type>,<requested>,<NW-provided>,<PTW> (values built)
    assert fields('+CEDRXP: 4,"1000","0101","1011"') == {
        "act_type": 4,
        "requested_edrx_raw": "1000",
        "requested_edrx_s": 143.36,
        "edrx_raw": "0101",
        "edrx_s": 81.92,
        "ptw_raw": "1011",
        "ptw_s": 15.36,
    }
    # NB-IoT (AcT-type 5): the NB-S1 table and the 2.56 s PTW unit (TS 24.008 §10.5.5.32)
    nb = fields('+CEDRXP: 5,"0010","0010","0000"')
    assert (nb["edrx_s"], nb["ptw_s"]) == (20.48, 2.56)


def test_cscon_command_tells_read_form_from_urc() -> None:
    # nRF91 AT reference +CSCON: URC "+CSCON: 1", read "+CSCON: <n>,<mode>"
    assert fields("+CSCON: 1") == {"rrc_state": 1}
    assert fields("+CSCON: 1,0", command="AT+CSCON?") == {"n": 1, "rrc_state": 0}
    with pytest.raises(ExplainError, match="no <mode>"):
        fields("+CSCON: 1", command="AT+CSCON?")


def test_cme_and_cms_errors_are_explained() -> None:
    # an echoed AT+CIMI refused with TS 27.007 §9.2 code 10 (SIM not inserted); built
    assert fields("AT+CIMI\r\n+CME ERROR: 10\r\n") == {
        "error_kind": "CME",
        "error_code": 10,
        "error_text": "SIM not inserted",
    }
    # with AT+CMEE=2 the modem prints the words instead (TS 27.007 §9.1); built
    assert fields("+CME ERROR: SIM not inserted") == {
        "error_kind": "CME",
        "error_code": 10,
        "error_text": "SIM not inserted",
    }
    # TS 27.005 §3.2.5: 500 unknown error
    assert fields("+CMS ERROR: 500") == {
        "error_kind": "CMS",
        "error_code": 500,
        "error_text": "unknown error",
    }
    # a manufacturer-specific code (nRF91 AT reference %CMNG: 513 not found) and a bare ERROR
    assert fields("+CME ERROR: 513")["error_text"] == (
        "manufacturer-specific error; see the modem's AT command manual"
    )
    assert fields("+CPIN: READY\r\nOK\r\nAT+CGATT?\r\nERROR") == {
        "+CPIN": {"pin_state": "READY"},
        "ERROR": {"error_kind": None, "error_code": None, "error_text": "ERROR (no reason given)"},
    }


@pytest.mark.parametrize(
    ("name", "value", "context", "text"),
    [
        ("rsrp_dbm", -87, {}, "-87 dBm  good"),
        ("sinr_db", 0, {}, "0 dB  fair"),
        ("result", 1, {"result": 1}, "1  no cell available"),
        ("energy_estimate", 7, {}, "7  normal"),
        (
            "pin_state",
            "SIM PIN",
            {},
            'SIM PIN  the SIM waits for its PIN: enter it (AT+CPIN="<pin>")',
        ),
        ("temperature_c", 32, {}, "32 °C"),
        ("voltage_mv", 3600, {}, "3600 mV"),
        ("act_type", 4, {}, "4  E-UTRAN WB-S1 (LTE-M)"),
        ("edrx_s", 81.92, {}, "81.92 s"),
        ("error_code", 10, {"error_kind": "CME"}, "10  SIM not inserted"),
        ("event", "RESET LOOP", {}, "RESET LOOP  too many resets"),
        ("lte_preference", 2, {}, "2  NB-IoT preferred"),
        ("rat_preference", 38, {}, "38  LTE only"),
        ("status", 1, {}, "1  active"),
        ("snr_index", 127, {}, "127  unknown / not measured"),
        ("network_open", False, {}, "False  the network is not open"),
        ("mode", 1, {"requested_active_time_raw": "00100001"}, "1  PSM requested"),
        ("mode", 0, {"format": 2}, "0  automatic"),
    ],
)
def test_the_table_gives_units_and_meanings(
    name: str, value: object, context: dict[str, object], text: str
) -> None:
    assert describe_field(name, value, context).startswith(text)
