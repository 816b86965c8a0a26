"""Decoding registration, signal and operator answers into words."""

from __future__ import annotations

from atbridge.decode import describe_cfun, parse_cesq, parse_cops, parse_registration


def test_read_form_skips_n_whatever_its_value() -> None:
    for n in range(6):
        parsed = parse_registration(f'{n},1,"0A1B","01234567",7', is_read=True)
        assert parsed is not None and parsed.stat == 1 and parsed.registered
        assert parsed.tac == "0A1B" and parsed.cell_id == "01234567" and parsed.act == 7


def test_notification_form_starts_with_stat() -> None:
    parsed = parse_registration('5,"0A1B","01234567",9', is_read=False)
    assert parsed is not None
    assert parsed.registered and parsed.act == 9
    assert "roaming" in parsed.describe() and "NB-IoT" in parsed.describe()


def test_denied_with_reject_cause() -> None:
    parsed = parse_registration('3,"0A1B","01234567",7,0,15', is_read=False)
    assert parsed is not None and not parsed.registered
    assert parsed.reject_cause == 15
    assert "registration denied" in parsed.describe()
    assert "reject cause 15" in parsed.describe()


def test_searching_with_nothing_else() -> None:
    parsed = parse_registration("2", is_read=False)
    assert parsed is not None and parsed.describe() == "not registered, searching (stat 2)"


def test_garbage_is_not_a_registration() -> None:
    assert parse_registration("", is_read=False) is None
    assert parse_registration("x,y", is_read=False) is None


def test_cesq_conversion_and_rating() -> None:
    signal = parse_cesq("99,99,255,255,31,62")
    assert signal is not None
    assert signal.rsrp_dbm == -78 and signal.rsrq_db == -4.0
    assert signal.describe() == "RSRP -78 dBm (excellent), RSRQ -4 dB"


def test_cesq_unknown() -> None:
    signal = parse_cesq("99,99,255,255,255,255")
    assert signal is not None and signal.rsrp_dbm is None
    assert "unknown" in signal.describe()


def test_cops() -> None:
    operator = parse_cops('0,2,"26201",7')
    assert operator is not None
    assert operator.describe() == "automatic selection, operator 26201 (E-UTRAN (LTE / LTE-M))"
    assert parse_cops("0") is not None and parse_cops("0").describe() == "automatic selection"  # type: ignore[union-attr]


def test_cfun() -> None:
    assert describe_cfun("4") == "flight mode (radio off, SIM on) (CFUN=4)"


def test_gprs_timer_codings_of_ts_24_008() -> None:
    from atbridge.decode import parse_gprs_timer

    # GPRS Timer 2 (T3324, Table 10.5.172): 001 = 1 min, 111 = deactivated
    active = parse_gprs_timer('"00100101"', "timer2")
    assert active is not None
    assert (active.raw, active.seconds, active.deactivated) == ("00100101", 300, False)
    # GPRS Timer 3 (T3412 ext, Table 10.5.163a): 010 = 10 h, 110 = 320 h
    assert parse_gprs_timer("01000001", "timer3").seconds == 36000  # type: ignore[union-attr]
    assert parse_gprs_timer("11100000", "timer3").deactivated is True  # type: ignore[union-attr]
    assert parse_gprs_timer("12345678", "timer3") is None


def test_registration_extras_n_and_psm_timers() -> None:
    from atbridge.decode import parse_registration_extras

    read = parse_registration_extras(
        '5,1,"0A0B","01020304",7,,,"00100001","00000110"', is_read=True
    )
    assert read.n == 5
    assert read.active_time is not None and read.active_time.seconds == 60
    assert read.periodic_tau is not None and read.periodic_tau.seconds == 3600
    assert parse_registration_extras("1", is_read=False).n is None
    assert parse_registration_extras("2,1", is_read=True, source="+CGREG").active_time is None
