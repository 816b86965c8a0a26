"""The verdict rules of ``atbridge diag`` and its report, from data (atbridge/diag.py).

Every rule is a pure function of decoded fields or :class:`~atbridge.survey.Answer`s, so
each case is written out here: the SIM (absent, PIN-locked, powered off in CFUN=0), the
functional mode, the signal, registration on every source with the reject cause (TS 24.301
Annex A), and the verdict over the layers (the first failing layer, warnings, online).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from atbridge.commands.diag import key_values, parse_layers, render_text
from atbridge.diag import (
    FAIL,
    LAYERS,
    OK,
    SKIPPED,
    WARN,
    Layer,
    Report,
    Step,
    describe_cause,
    exit_code,
    group,
    judge_answers,
    judge_functional_mode,
    judge_registration,
    judge_signal,
    judge_sim,
    make_layer,
    merged_fields,
    pin_state,
    psm_summary,
    refusal_hint,
    verdict,
)
from atbridge.diagnostics import EMM_CAUSES
from atbridge.errors import ConfigurationError
from atbridge.survey import Answer


def answer(
    command: str,
    lines: tuple[str, ...] = (),
    *,
    final: str = "OK",
    fields: dict[str, Any] | None = None,
    error: str | None = None,
) -> Answer:
    return Answer(command, 0.0, 0.01, lines, final, fields, error)


def refused(command: str, code: int, text: str) -> Answer:
    final = f"+CME ERROR: {code}"
    return answer(command, final=final, error=f"{final} ({text})")


def step(name: str, status: str, **fields: Any) -> Step:
    return Step(name, status, 0.0, 0.1, fields=fields, verdict=f"{name} {status}", hint="h")


def layer(name: str, *steps: Step) -> Layer:
    return make_layer(name, list(steps))


# -- the SIM --------------------------------------------------------------------------------


def test_a_ready_sim_is_ok() -> None:
    cpin = answer("AT+CPIN?", ("+CPIN: READY",))
    assert pin_state([cpin]) == "READY"
    assert judge_sim([answer("AT+CIMI", ("284011234567890",)), cpin], 1) == (OK, "", "")


@pytest.mark.parametrize("code", ["SIM PIN", "SIM PUK"])
def test_a_locked_sim_fails_and_says_to_enter_the_pin(code: str) -> None:
    status, text, hint = judge_sim([answer("AT+CPIN?", (f"+CPIN: {code}",))], 1)
    assert status == FAIL
    assert text == f"the SIM is locked ({code})"
    assert "PIN" in hint


def test_no_sim_fails() -> None:
    status, text, hint = judge_sim([refused("AT+CPIN?", 10, "SIM not inserted")], 1)
    assert (status, text) == (FAIL, "no SIM (SIM not inserted)")
    assert "insert the SIM" in hint


def test_a_sim_powered_off_in_cfun_0_is_a_warning_not_a_failure() -> None:
    """The nRF91 powers the UICC off in CFUN=0: +CME ERROR 13 then says nothing about the SIM."""
    status, text, hint = judge_sim([refused("AT+CPIN?", 13, "SIM failure")], 0)
    assert status == WARN
    assert "CFUN=0" in text
    assert "AT+CFUN=1" in hint


def test_a_sim_that_fails_with_the_radio_on_fails() -> None:
    status, text, _ = judge_sim([refused("AT+CPIN?", 13, "SIM failure")], 1)
    assert status == FAIL
    assert "+CME ERROR: 13" in text


def test_an_absent_sim_is_a_failure_even_in_cfun_0() -> None:
    assert judge_sim([refused("AT+CPIN?", 10, "SIM not inserted")], 0)[0] == FAIL


# -- functional mode and signal ---------------------------------------------------------------


def test_radio_on_is_ok() -> None:
    assert judge_functional_mode(1, read_only=True, turned_on=False) == (OK, "", "")


def test_radio_off_with_no_attach_fails_and_says_how_to_turn_it_on() -> None:
    status, text, hint = judge_functional_mode(0, read_only=True, turned_on=False)
    assert status == FAIL
    assert text == "the radio is off (CFUN=0, minimum functionality)"
    assert hint == "run without --no-attach, or send AT+CFUN=1"


def test_radio_that_would_not_turn_on_fails() -> None:
    assert judge_functional_mode(4, read_only=False, turned_on=True)[0] == FAIL


def test_radio_left_off_because_the_attach_was_skipped_is_a_warning() -> None:
    assert judge_functional_mode(0, read_only=False, turned_on=False)[0] == WARN


def test_an_unknown_functional_mode_is_a_warning() -> None:
    assert judge_functional_mode(None, read_only=False, turned_on=False)[0] == WARN


def test_no_measurement_with_the_radio_on_is_no_signal() -> None:
    fields = {"rsrp_index": 255, "rsrp_dbm": None, "rsrq_db": None}
    status, text, hint = judge_signal(fields, radio_on=True)
    assert (status, text) == (FAIL, "no signal: the modem measures no cell")
    assert "antenna" in hint


def test_no_measurement_with_the_radio_off_is_not_measured() -> None:
    assert judge_signal({"rsrp_dbm": None}, radio_on=False)[0] == SKIPPED


def test_simcom_no_service_fails() -> None:
    status, text, _ = judge_signal({"service": False, "rssi_dbm": -71}, radio_on=True)
    assert (status, text) == (FAIL, "no service: the modem finds no cell")


def test_a_poor_signal_is_a_warning() -> None:
    status, text, _ = judge_signal({"rsrp_dbm": -120}, radio_on=True)
    assert status == WARN
    assert text == "weak signal: RSRP -120 dBm (poor)"


@pytest.mark.parametrize("fields", [{"rsrp_dbm": -78}, {"rssi_dbm": -61}])
def test_a_good_signal_is_ok(fields: dict[str, Any]) -> None:
    assert judge_signal(fields, radio_on=True) == (OK, "", "")


# -- registration ----------------------------------------------------------------------------


def test_registered_at_home_is_ok() -> None:
    assert judge_registration({"+CEREG": {"stat": 1, "registered": True}}) == (OK, "", "")


def test_registered_on_any_source_counts() -> None:
    reads = {
        "+CEREG": {"stat": 0, "registered": False},
        "+CGREG": {"stat": 1, "registered": True},
    }
    assert judge_registration(reads)[0] == OK


def test_roaming_is_a_warning_naming_the_network() -> None:
    reads = {"+CEREG": {"stat": 5, "registered": True, "roaming": True, "plmn": "23410"}}
    status, text, hint = judge_registration(reads)
    assert status == WARN
    assert text == "registered, roaming on 23410 (+CEREG)"
    assert "roaming" in hint


def test_a_denial_names_the_emm_cause_and_what_to_try() -> None:
    reads = {"+CEREG": {"stat": 3, "registered": False, "cause_type": 0, "reject_cause": 15}}
    status, text, hint = judge_registration(reads)
    assert status == FAIL
    assert text == "registration denied (EMM cause 15: No suitable cells in tracking area)"
    assert hint == EMM_CAUSES[15][1]
    assert "band lock" in hint


def test_a_denial_without_a_cause_says_how_to_see_it() -> None:
    status, text, hint = judge_registration({"+CEREG": {"stat": 3, "registered": False}})
    assert (status, text) == (FAIL, "registration denied")
    assert "+CEREG level 5" in hint


def test_a_manufacturer_specific_cause_is_named_as_such() -> None:
    assert describe_cause(1, 7)[0] == "manufacturer-specific cause 7"


def test_an_unlisted_emm_cause_points_to_the_annex() -> None:
    text, hint = describe_cause(0, 99)
    assert text == "EMM cause 99"
    assert "24.301" in hint


@pytest.mark.parametrize(
    ("stat", "words"),
    [(90, "SIM failure"), (2, "still searching"), (0, "not searching"), (4, "not searching")],
)
def test_not_registered_says_why(stat: int, words: str) -> None:
    status, text, hint = judge_registration({"+CEREG": {"stat": stat, "registered": False}})
    assert status == FAIL
    assert words in text
    assert hint


def test_no_source_read_fails() -> None:
    assert judge_registration({})[0] == FAIL


def test_psm_requested_and_granted_side_by_side() -> None:
    requested = {"requested_periodic_tau_s": 3600, "requested_active_time_s": 60}
    granted = {"periodic_tau_s": 7200, "active_time_s": 20}
    assert psm_summary(requested, granted) == {
        "requested_periodic_tau_s": 3600,
        "granted_periodic_tau_s": 7200,
        "requested_active_time_s": 60,
        "granted_active_time_s": 20,
    }


# -- answers and steps -------------------------------------------------------------------------


def test_answered_queries_are_ok_even_when_kept_raw() -> None:
    raw = answer("AT%XFOO", ("%XFOO: 1",), error="not decoded: %XFOO")
    assert judge_answers([raw]) == (OK, "", "")


def test_a_refused_query_is_a_warning_naming_it() -> None:
    status, text, _ = judge_answers(
        [
            answer("AT+CESQ", ("+CESQ: 99,99,255,255,31,62",)),
            refused("AT%XTEMP?", 4, "operation not supported"),
        ]
    )
    assert (status, text) == (WARN, "not answered: AT%XTEMP?")


def test_merged_fields_keep_the_first_known_value() -> None:
    first = answer("AT+CESQ", fields={"rsrp_dbm": None, "rsrq_db": -4.0})
    second = answer("AT+CPSI?", fields={"rsrp_dbm": -80, "rsrq_db": -9})
    assert merged_fields([first, second]) == {"rsrp_dbm": -80, "rsrq_db": -4.0}


def test_queries_are_grouped_into_steps_in_order() -> None:
    commands = ["AT+CFUN?", "AT+CESQ", "AT%XMONITOR", "AT+CSQ", "AT+CPSI?", "AT+FOO?"]
    assert group(commands) == [
        ("functional_mode", ["AT+CFUN?"]),
        ("signal", ["AT+CESQ", "AT+CSQ"]),
        ("serving_cell", ["AT%XMONITOR", "AT+CPSI?"]),
        ("AT+FOO?", ["AT+FOO?"]),
    ]


def test_a_layer_takes_its_worst_step() -> None:
    built = layer("network", step("attach", OK), step("registration", FAIL), step("psm", WARN))
    assert (built.status, built.verdict, built.hint) == (FAIL, "registration fail", "h")
    assert layer("radio", step("signal", WARN), step("rat", OK)).status == WARN
    assert layer("mqtt", step("ping", OK)).verdict == "ok"
    empty = make_layer("internet", [], skipped="no broker given")
    assert (empty.status, empty.verdict) == (SKIPPED, "no broker given")


def test_a_layer_spans_its_steps() -> None:
    steps = [Step("a", OK, 1.0, 0.5), Step("b", OK, 2.0, 1.0)]
    built = make_layer("device", steps)
    assert (built.started_s, built.duration_s) == (1.0, 2.0)


# -- the verdict -------------------------------------------------------------------------------


def online_layers(**mqtt_fields: Any) -> list[Layer]:
    layers = [layer(name, step("s", OK)) for name in LAYERS[:-1]]
    layers.append(layer("mqtt", step("mqtt_connect", OK), step("ping", OK, **mqtt_fields)))
    return layers


def test_all_good_is_online_with_the_round_trip() -> None:
    found = verdict(online_layers(round_trip_ms=42.5))
    assert (found.status, found.text, found.exit_code, found.layer) == (
        "online",
        "online: MQTT round trip 42.5 ms",
        0,
        None,
    )


def test_online_with_an_echo_says_its_round_trip() -> None:
    layers = online_layers(round_trip_ms=40)
    layers[-1] = layer(
        "mqtt", step("ping", OK, round_trip_ms=40), step("echo", OK, round_trip_ms=55)
    )
    assert verdict(layers).text == "online: MQTT round trip 40 ms, echo 55 ms"


def test_roaming_is_online_with_a_warning() -> None:
    layers = online_layers(round_trip_ms=40)
    roaming = Step("registration", WARN, 0, 0, verdict="registered, roaming", hint="r")
    layers[2] = layer("network", roaming)
    found = verdict(layers)
    assert found.status == "online"
    assert found.text == "online: MQTT round trip 40 ms (warnings: network: registered, roaming)"
    assert (found.hint, found.exit_code) == ("r", 0)


def test_the_first_failing_layer_is_the_verdict() -> None:
    denied = Step(
        "attach",
        FAIL,
        0,
        0,
        verdict="registration denied (EMM cause 15: No suitable cells in tracking area)",
        hint=EMM_CAUSES[15][1],
    )
    layers = [
        layer("device", step("probe", OK)),
        layer("radio", step("signal", WARN)),
        layer("network", denied),
        layer("internet", step("resolve", FAIL)),
        make_layer("mqtt", []),
    ]
    found = verdict(layers)
    assert found.status == FAIL and found.layer == "network"
    assert found.text == (
        "network: registration denied (EMM cause 15: No suitable cells in tracking area)"
    )
    assert found.hint == EMM_CAUSES[15][1]
    assert found.exit_code == 3


def test_a_refused_connection_exits_4_and_a_timeout_5() -> None:
    refused_step = Step("mqtt_connect", FAIL, 0, 0, verdict="refused", error="ConnectRefused")
    assert exit_code([layer("mqtt", refused_step)]) == 4
    timed_out = Step("attach", FAIL, 0, 0, verdict="not registered", error="StepTimeout")
    assert exit_code([layer("network", timed_out)]) == 5
    dns = Step("resolve", FAIL, 0, 0, verdict="DNS", error="SocketError")
    assert exit_code([layer("internet", dns)]) == 3
    assert exit_code(online_layers(round_trip_ms=1)) == 0


def test_stopped_early_says_how_far_it_got() -> None:
    layers = [
        layer("device", step("probe", OK)),
        layer("radio", step("signal", OK)),
        make_layer("network", [], skipped="not asked (--steps)"),
        make_layer("internet", [], skipped="not asked (--steps)"),
        make_layer("mqtt", [], skipped="not asked (--steps)"),
    ]
    found = verdict(layers)
    assert (found.status, found.exit_code) == (OK, 0)
    assert found.text == "no problem found up to radio; network not run: not asked (--steps)"


# -- the report and its rendering ----------------------------------------------------------


def sample_report() -> Report:
    cesq = answer(
        "AT+CESQ",
        ("+CESQ: 99,99,255,255,31,62",),
        fields={"rsrp_index": 62, "rsrp_dbm": -78, "rsrq_db": -4.0},
    )
    signal = Step("signal", OK, 0.2, 0.05, (cesq.to_json(),), merged_fields([cesq]))
    layers = (*online_layers(round_trip_ms=12)[:1], layer("radio", signal))
    layers = (
        *layers,
        *(make_layer(n, [], skipped="not asked (--steps)") for n in LAYERS[2:]),
    )
    return Report(verdict(layers), layers, "2026-01-01T00:00:00+00:00", "/dev/x", "sim7080", ())


def test_the_report_is_one_json_object_with_every_layer_step_and_answer() -> None:
    data = json.loads(json.dumps(sample_report().to_json()))
    assert list(data) == ["verdict", "started_at", "port", "dialect", "changes", "layers"]
    assert [entry["name"] for entry in data["layers"]] == list(LAYERS)
    radio = data["layers"][1]
    assert set(radio) == {"name", "status", "started_s", "duration_s", "verdict", "hint", "steps"}
    (signal,) = radio["steps"]
    assert signal["answers"][0]["raw"] == ["+CESQ: 99,99,255,255,31,62"]
    assert signal["answers"][0]["command"] == "AT+CESQ"
    assert signal["fields"]["rsrp_dbm"] == -78
    assert data["verdict"]["exit_code"] == 0


def test_the_text_report_starts_with_the_verdict_and_rates_values() -> None:
    text = render_text(sample_report())
    assert (
        text.splitlines()[0]
        == "verdict: no problem found up to radio; network not run: not asked (--steps)"
    )
    assert "      rsrp_dbm -78 dBm  excellent" in text.splitlines()


def test_key_values_skip_unknowns_and_count_lists() -> None:
    shown = key_values({"rsrp_dbm": None, "tac": "0A1B", "tac_int": 2587, "contexts": [{}, {}]})
    assert shown == ["tac 0A1B", "contexts: 2"]


def test_steps_names_layers_and_refuses_others() -> None:
    assert parse_layers("radio, network") == ("radio", "network")
    with pytest.raises(ConfigurationError, match="bogus is not a layer"):
        parse_layers("radio,bogus")


def test_no_measurement_after_a_denial_is_the_network_layers_finding() -> None:
    """A denial came from a network: a cell was found, the network layer says why."""
    for fields in ({"rsrp_dbm": None}, {"service": False}):
        assert judge_signal(fields, radio_on=True, denied=True)[0] == WARN


@pytest.mark.parametrize("code", [4, 5, 0x86, 0x87])
def test_a_credentials_refusal_says_to_check_the_username_and_password(code: int) -> None:
    assert refusal_hint(code, "the broker's hint").startswith("check the username/password")


def test_other_refusals_keep_the_brokers_hint() -> None:
    assert refusal_hint(3, "retry with backoff") == "retry with backoff"
    assert "broker's log" in refusal_hint(0x99, "")
