"""Field diagnostics: why can't this device get online? A report in layers, each step timed.

Theory of operation
-------------------
``atbridge diag`` asks a modem, layer by layer, what a field engineer would check
first, and ends with one verdict: the first layer that failed and what to try.

==========  =================================================================
layer       steps (each one timed: start offset from the run's start, duration)
==========  =================================================================
device      ``probe`` (the bring-up step: identity, dialect), ``power`` (the
            functional mode as found), ``identity``, ``sim``, ``supply``
radio       ``functional_mode``, ``rat``, ``band``, ``signal``, ``serving_cell``,
            ``connection_evaluation``, ``neighbours`` (what the family answers)
network     ``attach`` (radio on, time to register), ``registration`` (every
            registration source, the reject cause decoded), ``operator``, ``psm``
            (requested vs granted), ``edrx``, ``pdp`` (contexts, APN, address),
            ``dns``, ``rrc``
internet    ``activate_data``, ``resolve`` (DNS of the broker through the modem),
            ``open_socket`` (TCP/TLS through the modem)
mqtt        ``mqtt_connect`` (CONNECT -> CONNACK), ``ping`` (PINGREQ round trip),
            ``echo`` (``--echo-topic``: subscribe, publish, receive it back)
==========  =================================================================

The queries of each layer are the dialect's data
(:attr:`~atbridge.dialects.base.Dialect.diagnostic_queries`), asked one at a time
through :func:`atbridge.survey.ask` (a refusal is a finding, not an end) and
grouped into steps by :data:`STEP_OF`. Every answer is kept raw next to its
decoded fields (:func:`atbridge.diagnostics.decode_answer`); an answer that does
not decode is kept raw and the run goes on. The bring-up itself is
:mod:`atbridge.steps` (probe, configure, attach, activate_data, resolve,
open_socket, mqtt_connect, ping): no third copy of the sequence.

Order of the work. The radio is turned on (the ``attach`` step) right after the
probe and the ``power`` read, before the device queries: an nRF91 powers its SIM
off in ``CFUN=0``, and nothing can be measured with the radio off. So the
``attach`` step of the network layer starts before the device and radio
queries; within a layer the steps run in order. An attach stops early when the
network denies the registration (stat 3) or the SIM fails (stat 90): waiting
longer cannot help.

Read only and what it changes. ``--no-attach`` (``read_only``) sends queries
only: no ``AT+CFUN=1``, no notification levels, no APN, no data bearer, no
socket, and no bring-up probe (it would set the family's socket options and
close leftover sockets): the modem is identified with the read-only
:func:`atbridge.dialects.identify`. Otherwise every change is listed in
:attr:`Report.changes`, and by default (``restore``) what can be put back is put
back at the end: the notification levels of the registration sources as they
were, and the functional mode as found (``AT+CFUN=0`` after diag turned the
radio on). The socket is always closed (MQTT DISCONNECT first). An APN given
with ``--apn`` and a data bearer brought up are left as they are (radio off
takes the bearer down on the families that need the radio for it).

Verdict rules (:func:`judge_sim`, :func:`judge_functional_mode`,
:func:`judge_signal`, :func:`judge_registration`, :func:`verdict` ...) are pure
functions of the answers' fields, tested from data. A step is ``ok``, ``warn``
(roaming, a weak signal, a query the modem refused), ``fail`` or ``skipped``;
a layer takes its worst step's status and that step's verdict and hint. Active
steps (internet, mqtt) are skipped once an earlier layer failed.

Exit codes (:func:`exit_code`, consistent with :mod:`atbridge.cli`): 0 no layer
failed (warnings allowed); 3 a device, radio, network or internet layer failed
(the modem or the network); 4 the broker refused the connection; 5 the failing
step timed out (no CONNACK, registration not done in time). Bad options or a
port that cannot be opened are the usual 2 (raised before the report).

Sources: 3GPP TS 27.007 (+CEREG/+CGREG/+CREG stat values, +CFUN, +CPIN results),
TS 24.301 Annex A (EMM causes, :data:`atbridge.diagnostics.EMM_CAUSES`); the
nRF91 AT Commands Reference (CFUN=0 powers the UICC off; stat 90 "UICC
failure"); SIMCom SIM7080/SIM7600 AT manuals (+CPSI ``NO SERVICE``); Particle's
device vitals and curl's ``-w`` timers for the per-step timeline.

Size: the report model, the pure verdict rules and the runner of the five layers belong
together: the rules read the steps the runner records, and the tests drive both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from atbridge.diagnostics import EMM_CAUSES, cause_text, rate

if TYPE_CHECKING:
    from atbridge.at_mqtt import MqttSession
    from atbridge.config import BridgeConfig
    from atbridge.dialects.base import Dialect
    from atbridge.errors import AtBridgeError
    from atbridge.modem import Modem
    from atbridge.steps import SocketLink
    from atbridge.survey import Answer

_T = TypeVar("_T")

LAYERS = ("device", "radio", "network", "internet", "mqtt")
OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
_SEVERITY = {SKIPPED: 0, OK: 1, WARN: 2, FAIL: 3}

EXIT_OK, EXIT_MODEM, EXIT_BROKER, EXIT_TIMEOUT = 0, 3, 4, 5

#: Which step a query belongs to (the command without ``AT`` and its ``?``/``=`` tail).
STEP_OF: Mapping[str, str] = {
    **dict.fromkeys(("+CGMI", "+CGMM", "+CGMR", "+CGSN", "#XSLMVER", "#XSMVER"), "identity"),
    **dict.fromkeys(("+CIMI", "%XICCID", "+CCID", "+CICCID", "+CPIN"), "sim"),
    **dict.fromkeys(("%XTEMP", "%XVBAT", "+CBC", "+CPMUTEMP"), "supply"),
    "+CFUN": "functional_mode",
    **dict.fromkeys(("%XSYSTEMMODE", "+CNMP", "+CMNB"), "rat"),
    **dict.fromkeys(("%XCBAND", "+CBANDCFG", "%XBANDLOCK"), "band"),
    **dict.fromkeys(("+CESQ", "+CSQ", "%CESQ"), "signal"),
    **dict.fromkeys(("%XMONITOR", "+CPSI", "+CENG"), "serving_cell"),
    "%CONEVAL": "connection_evaluation",
    **dict.fromkeys(("%NBRGRSRP", "%NCELLMEAS"), "neighbours"),
    "+COPS": "operator",
    "+CPSMS": "psm",
    **dict.fromkeys(("+CEDRXRDP", "%XPTW", "+CEDRXS"), "edrx"),
    **dict.fromkeys(("+CGDCONT", "+CGPADDR", "+CNACT", "+NETOPEN", "+CIPSTATUS"), "pdp"),
    **dict.fromkeys(("+CGCONTRDP", "+CDNSCFG", "%XDNS"), "dns"),
    "+CSCON": "rrc",
}

#: Registration stat values that end an attach at once (waiting cannot help).
TERMINAL_STATS = frozenset({3, 90})

Judgement = tuple[str, str, str]  # (status, verdict, hint)


# -- the report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One timed step: its answers (raw, :meth:`Answer.to_json`), fields, verdict and hint.

    ``error`` names the exception that ended the step (``"ConnectRefused"``), if any.
    """

    name: str
    status: str
    started_s: float
    duration_s: float
    answers: tuple[dict[str, Any], ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    verdict: str = ""
    hint: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started_s": round(self.started_s, 3),
            "duration_s": round(self.duration_s, 3),
            "answers": list(self.answers),
            "fields": dict(self.fields),
            "verdict": self.verdict,
            "hint": self.hint,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer: the worst status of its steps, and that step's verdict and hint."""

    name: str
    status: str
    started_s: float
    duration_s: float
    steps: tuple[Step, ...]
    verdict: str
    hint: str

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started_s": round(self.started_s, 3),
            "duration_s": round(self.duration_s, 3),
            "verdict": self.verdict,
            "hint": self.hint,
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The line at the top: ``online`` / ``ok`` (stopped early, nothing failed) / ``fail``."""

    status: str
    layer: str | None
    text: str
    hint: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "layer": self.layer,
            "text": self.text,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """What ``diag`` found: the verdict, every layer, what it changed on the modem."""

    verdict: Verdict
    layers: tuple[Layer, ...]
    started_at: str
    port: str
    dialect: str | None
    changes: tuple[str, ...]

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_json(),
            "started_at": self.started_at,
            "port": self.port,
            "dialect": self.dialect,
            "changes": list(self.changes),
            "layers": [layer.to_json() for layer in self.layers],
        }


def make_layer(name: str, steps: Sequence[Step], *, skipped: str = "") -> Layer:
    """A layer from its steps: worst status, the first worst step's verdict and hint."""
    if not steps:
        return Layer(name, SKIPPED, 0.0, 0.0, (), skipped or "not run", "")
    worst = max(steps, key=lambda step: _SEVERITY[step.status])
    status = worst.status
    if status == SKIPPED:
        verdict, hint = worst.verdict or skipped or "not run", worst.hint
    elif status == OK:
        verdict, hint = "ok", ""
    else:
        first = next(step for step in steps if step.status == status)
        verdict, hint = first.verdict, first.hint
    started = min(step.started_s for step in steps)
    ended = max(step.started_s + step.duration_s for step in steps)
    return Layer(name, status, started, ended - started, tuple(steps), verdict, hint)


def exit_code(layers: Iterable[Layer]) -> int:
    """0 nothing failed; 4 broker refused; 5 the failing step timed out; else 3."""
    failed = next((layer for layer in layers if layer.status == FAIL), None)
    if failed is None:
        return EXIT_OK
    step = next(step for step in failed.steps if step.status == FAIL)
    if step.error in ("ConnectRefused", "BrokerRefused"):
        return EXIT_BROKER
    if step.error in ("StepTimeout", "AtTimeout", "PingTimeout", "TimeoutError"):
        return EXIT_TIMEOUT
    return EXIT_MODEM


def verdict(layers: Sequence[Layer]) -> Verdict:
    """The first layer that failed and what to try; else online with the MQTT round trip."""
    code = exit_code(layers)
    for layer in layers:
        if layer.status == FAIL:
            return Verdict(FAIL, layer.name, f"{layer.name}: {layer.verdict}", layer.hint, code)
    warnings = [f"{layer.name}: {layer.verdict}" for layer in layers if layer.status == WARN]
    hint = next((layer.hint for layer in layers if layer.status == WARN and layer.hint), "")
    warned = f" (warnings: {'; '.join(warnings)})" if warnings else ""
    mqtt = next((layer for layer in layers if layer.name == "mqtt"), None)
    ping = mqtt.step("ping") if mqtt is not None else None
    if ping is not None and ping.status in (OK, WARN) and "round_trip_ms" in ping.fields:
        text = f"online: MQTT round trip {ping.fields['round_trip_ms']:g} ms"
        echo = mqtt.step("echo") if mqtt is not None else None
        if echo is not None and "round_trip_ms" in echo.fields:
            text += f", echo {echo.fields['round_trip_ms']:g} ms"
        return Verdict("online", None, text + warned, hint, code)
    ran = [layer for layer in layers if layer.status != SKIPPED]
    last = ran[-1].name if ran else "nothing"
    stopped = next((layer for layer in layers if layer.status == SKIPPED), None)
    why = f"; {stopped.name} not run: {stopped.verdict}" if stopped is not None else ""
    return Verdict(OK, None, f"no problem found up to {last}{why}{warned}", hint, code)


# -- verdict rules (pure) ---------------------------------------------------------------


def merged_fields(answers: Iterable[Answer]) -> dict[str, Any]:
    """The decoded fields of ``answers`` in one dict (the first known value of a name wins)."""
    merged: dict[str, Any] = {}
    for answer in answers:
        for key, value in (answer.fields or {}).items():
            if merged.get(key) is None:
                merged[key] = value
    return merged


def _answered(answer: Answer) -> bool:
    """The modem said OK (the answer may still be kept raw, not decoded)."""
    return answer.final == "OK"


def judge_answers(answers: Sequence[Answer]) -> Judgement:
    """Plain queries: ok when answered (decoded or kept raw), warn for what was refused."""
    refused = [a for a in answers if not _answered(a)]
    if not refused:
        return OK, "", ""
    if len(refused) == len(answers):
        return WARN, f"not answered: {refused[0].command}: {refused[0].error}", ""
    names = ", ".join(a.command for a in refused)
    return WARN, f"not answered: {names}", ""


def pin_state(answers: Iterable[Answer]) -> str | None:
    """The ``+CPIN:`` code (``READY``, ``SIM PIN``...) of an answered ``AT+CPIN?``."""
    for answer in answers:
        for key in ("pin_state", "code", "sim_state"):
            value = (answer.fields or {}).get(key)
            if isinstance(value, str):
                return value.upper()
        for line in answer.lines:
            head, _, value = line.partition(":")
            if head.strip().upper() == "+CPIN":
                return value.strip().strip('"').upper()
    return None


def judge_sim(answers: Sequence[Answer], functional_mode: int | None) -> Judgement:
    """The SIM: absent, PIN/PUK locked, powered off (CFUN=0), or ready."""
    cpin = [a for a in answers if a.command.upper().startswith("AT+CPIN")]
    state = pin_state(cpin)
    if state == "READY":
        return judge_answers(answers)
    if state is not None:
        return (
            FAIL,
            f"the SIM is locked ({state})",
            'enter the PIN (AT+CPIN="<pin>") or remove the SIM\'s PIN lock in a phone',
        )
    errors = " ".join(a.error or "" for a in (cpin or answers))
    if functional_mode == 0 and "CME ERROR: 10" not in errors and "not inserted" not in errors:
        return (
            WARN,
            "the SIM is not readable while the modem is off (CFUN=0 powers it down)",
            "turn the radio on (AT+CFUN=1) or run diag without --no-attach",
        )
    if "CME ERROR: 10" in errors or "not inserted" in errors.lower():
        return FAIL, "no SIM (SIM not inserted)", "insert the SIM; check its seating and holder"
    if cpin:
        return FAIL, f"the SIM does not answer ({errors.strip()})", "check the SIM and its holder"
    return judge_answers(answers)


def judge_functional_mode(mode: int | None, *, read_only: bool, turned_on: bool) -> Judgement:
    """``+CFUN`` after the attach: 1 is on; off fails when read only or when it would not
    turn on, and is a warning when diag did not try (the attach was skipped)."""
    if mode == 1:
        return OK, "", ""
    if mode is None:
        return WARN, "the functional mode is unknown (AT+CFUN? not answered)", ""
    name = {0: "minimum functionality", 4: "flight mode"}.get(mode, f"mode {mode}")
    if read_only:
        return (
            FAIL,
            f"the radio is off (CFUN={mode}, {name})",
            "run without --no-attach, or send AT+CFUN=1",
        )
    if turned_on:
        return FAIL, f"the radio did not turn on (CFUN={mode})", "check the modem's power supply"
    return WARN, f"the radio is off (CFUN={mode}): diag did not turn it on (no attach)", ""


def judge_signal(fields: Mapping[str, Any], *, radio_on: bool, denied: bool = False) -> Judgement:
    """No measurement with the radio on is no signal; a poor RSRP/RSSI is a warning.

    ``denied``: the network denied the registration, so a cell was found (a modem that is
    not camped may measure nothing): the network layer says why, not the radio.
    """
    values = {name: fields.get(name) for name in ("rsrp_dbm", "rssi_dbm", "rsrq_db", "snr_db")}
    no_service = fields.get("service") is False
    if no_service or (values["rsrp_dbm"] is None and values["rssi_dbm"] is None):
        if not radio_on:
            return SKIPPED, "not measured: the radio is off", ""
        if denied:
            return WARN, "not measured: not camped on a cell (the registration was denied)", ""
        if no_service:
            return (
                FAIL,
                "no service: the modem finds no cell",
                "check the antenna, the coverage here and the band lock",
            )
        return (
            FAIL,
            "no signal: the modem measures no cell",
            "check the antenna and its cable, the coverage here and the band lock",
        )
    for name in ("rsrp_dbm", "rssi_dbm"):
        if rate(name, values[name]) == "poor":
            unit = "dBm"
            return (
                WARN,
                f"weak signal: {name.split('_')[0].upper()} {values[name]:g} {unit} (poor)",
                "move the device or its antenna; check the antenna connection",
            )
    return OK, "", ""


def describe_cause(cause_type: int | None, cause: int | None) -> tuple[str, str]:
    """``("EMM cause 15: No suitable cells in tracking area", what to try)``."""
    if cause is None:
        return "", "turn on +CEREG level 5 to see the network's reject cause"
    if cause_type == 1:
        return f"manufacturer-specific cause {cause}", "see the modem's manual for this cause"
    known = EMM_CAUSES.get(cause)
    if known is not None:
        return f"EMM cause {cause}: {known[0]}", known[1]
    text = cause_text(cause_type, cause) or f"{cause}"
    return f"EMM cause {cause}", text.split(" — ", 1)[-1]


def judge_registration(reads: Mapping[str, Mapping[str, Any]]) -> Judgement:
    """Registration on every source (``{"+CEREG": fields}``): registered on any counts."""
    if not reads:
        return FAIL, "registration not readable (no source answered)", "check the AT channel"
    registered = [(source, f) for source, f in reads.items() if f.get("registered")]
    if registered:
        source, found = registered[0]
        if found.get("roaming"):
            where = f" on {found['plmn']}" if found.get("plmn") else ""
            return (
                WARN,
                f"registered, roaming{where} ({source})",
                "roaming works but may cost more or be limited; check the SIM's home network "
                "if you did not expect it",
            )
        return OK, "", ""
    stats = {source: f.get("stat") for source, f in reads.items()}
    for found in reads.values():
        if found.get("stat") == 3:
            cause, hint = describe_cause(found.get("cause_type"), found.get("reject_cause"))
            detail = f" ({cause})" if cause else ""
            return FAIL, f"registration denied{detail}", hint
    if 90 in stats.values():
        return (
            FAIL,
            "not registered: SIM failure (stat 90)",
            "check the SIM is inserted, not PIN-locked and activated",
        )
    if 2 in stats.values():
        return (
            FAIL,
            "not registered: still searching for a network",
            "wait longer (--attach-timeout), check the antenna, the bands and the RAT "
            "(LTE-M / NB-IoT) the network here uses",
        )
    return (
        FAIL,
        "not registered, not searching (stat 0)",
        "the modem is not trying: turn the radio on (AT+CFUN=1), check AT+COPS (automatic)",
    )


#: CONNACK codes that are about the credentials (3.1.1: 4 bad user name or password, 5 not
#: authorised; 5.0: 0x86, 0x87). Brokers differ in which they send for a wrong password
#: (mosquitto 3.1.1 sends 5), so both say to check the user name and password.
CREDENTIAL_REFUSALS = frozenset({4, 5, 0x86, 0x87})


def refusal_hint(code: int, hint: str) -> str:
    """What to try after a refused CONNACK: the credentials first when the code is about them."""
    if code in CREDENTIAL_REFUSALS and "password" not in hint:
        return f"check the username/password ({hint})" if hint else "check the username/password"
    return hint or "check the broker's log for why it refused the connection"


def psm_summary(requested: Mapping[str, Any], granted: Mapping[str, Any]) -> dict[str, Any]:
    """Requested (``+CPSMS?``) and granted (``+CEREG`` level 4/5) PSM timers, side by side."""
    summary: dict[str, Any] = {}
    for timer in ("periodic_tau", "active_time"):
        summary[f"requested_{timer}_s"] = requested.get(f"requested_{timer}_s")
        summary[f"granted_{timer}_s"] = granted.get(f"{timer}_s")
    return summary


# -- the runner --------------------------------------------------------------------------


def _step_key(command: str) -> str:
    key = command.strip().upper()
    key = key[2:] if key.startswith("AT") else key
    for stop in "?=":
        key = key.split(stop, 1)[0]
    return key


def group(commands: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The commands of a layer grouped into steps (:data:`STEP_OF`), in first-seen order."""
    groups: dict[str, list[str]] = {}
    for command in commands:
        name = STEP_OF.get(_step_key(command), command)
        groups.setdefault(name, []).append(command)
    return list(groups.items())


@dataclass
class Options:
    """What a diag run does (the command line's options, see :mod:`atbridge.commands.diag`)."""

    port: str
    dialect: str = "auto"
    read_only: bool = False
    restore: bool = True
    layers: tuple[str, ...] = LAYERS
    timeout: float = 30.0
    attach_timeout: float = 600.0
    apn: str | None = None
    broker: tuple[str, int, bool] | None = None
    no_broker_reason: str = "no broker given"
    no_broker_hint: str = "pass --broker HOST:PORT (or --credentials FILE)"
    echo_topic: str | None = None


Progress = Callable[[str], None]


class Runner:
    """Runs the layers on an open modem (see the module docstring); :meth:`run` -> Report."""

    def __init__(
        self,
        modem: Modem,
        options: Options,
        *,
        config: BridgeConfig | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.modem = modem
        self.options = options
        self.config = config
        self.progress = progress or (lambda _text: None)
        self.origin = time.monotonic()
        self.dialect: Dialect | None = None
        self.identity_text: str | None = None
        self.changes: list[str] = []
        self.steps: dict[str, list[Step]] = {name: [] for name in LAYERS}
        self.found_cfun: int | None = None
        self.levels_before: dict[str, int | None] = {}
        self.radio_turned_on = False
        self.socket: SocketLink | None = None
        self.session: MqttSession | None = None
        self.lost = False
        self._registration_answers: list[Answer] = []

    # -- small helpers ---------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.origin

    def add(self, layer: str, step: Step) -> Step:
        self.steps[layer].append(step)
        mark = {OK: "ok", WARN: "warn", FAIL: "FAIL", SKIPPED: "skipped"}[step.status]
        self.progress(f"{layer}: {step.name} {mark} ({step.duration_s:.2f} s)")
        return step

    def record(
        self,
        layer: str,
        name: str,
        status: str,
        started: float,
        *,
        answers: Sequence[Answer] = (),
        fields: Mapping[str, Any] | None = None,
        verdict: str = "",
        hint: str = "",
        error: str | None = None,
        seconds: float | None = None,
    ) -> Step:
        """Add the step that began at ``started``: it lasted until now (or ``seconds``, when
        the step timed itself), with the raw form of its ``answers``."""
        duration = self.now() - started if seconds is None else seconds
        raw = tuple(answer.to_json() for answer in answers)
        step = Step(name, status, started, duration, raw, dict(fields or {}), verdict, hint, error)
        return self.add(layer, step)

    def failed_before(self, layer: str) -> str | None:
        """The first layer before ``layer`` with a failed step."""
        for name in LAYERS[: LAYERS.index(layer)]:
            if any(step.status == FAIL for step in self.steps[name]):
                return name
        return None

    def wanted(self, layer: str) -> bool:
        """Run ``layer``: up to the last layer named by ``--steps``."""
        last = max(LAYERS.index(name) for name in self.options.layers)
        return LAYERS.index(layer) <= last

    def skip(self, layer: str, name: str, why: str, hint: str = "") -> Step:
        return self.add(layer, Step(name, SKIPPED, self.now(), 0.0, verdict=why, hint=hint))

    async def ask(self, command: str) -> Answer:
        from atbridge.survey import ask

        self.progress(f"asking {command}")
        return await ask(self.modem, command, timeout=self.options.timeout, origin=self.origin)

    async def ask_step(self, layer: str, name: str, commands: Sequence[str]) -> list[Answer]:
        started = self.now()
        answers = [await self.ask(command) for command in commands]
        status, text, hint = self.judge(name, answers)
        self.record(
            layer,
            name,
            status,
            started,
            answers=answers,
            fields=self.step_fields(name, answers),
            verdict=text,
            hint=hint,
        )
        return answers

    def step_fields(self, name: str, answers: Sequence[Answer]) -> dict[str, Any]:
        fields = merged_fields(answers)
        if name == "sim":
            state = pin_state(answers)
            if state is not None:
                fields.setdefault("pin_state", state)
        if name == "psm":
            granted = merged_fields(self._registration_answers)
            fields.update(psm_summary(fields, granted))
        return fields

    def judge(self, name: str, answers: Sequence[Answer]) -> Judgement:
        fields = merged_fields(answers)
        if name == "sim":
            return judge_sim(answers, self.found_cfun)
        if name == "functional_mode":
            mode = fields.get("functional_mode")
            return judge_functional_mode(
                mode, read_only=self.options.read_only, turned_on=self.radio_turned_on
            )
        if name == "signal" or name == "serving_cell":
            if name == "serving_cell" and fields.get("service") is not False:
                return judge_answers(answers)
            return judge_signal(fields, radio_on=self.radio_on(), denied=self.denied())
        return judge_answers(answers)

    def denied(self) -> bool:
        """The last registration report (attach, notifications) is a denial (stat 3)."""
        registrations = self.dialect.registrations.values() if self.dialect else ()
        return any(registration.stat == 3 for registration in registrations)

    def radio_on(self) -> bool:
        return self.found_cfun == 1 or self.radio_turned_on

    def failure(
        self, layer: str, name: str, started: float, error: BaseException, text: str, hint: str
    ) -> Step:
        from atbridge.errors import LinkLost

        if isinstance(error, LinkLost):
            self.lost = True
        return self.record(
            layer, name, FAIL, started, verdict=text, hint=hint, error=type(error).__name__
        )

    async def attempt(
        self,
        layer: str,
        name: str,
        started: float,
        work: Awaitable[_T],
        explain: Callable[[AtBridgeError], tuple[str, str]],
    ) -> _T | None:
        """The result of ``work``, step ``name`` of ``layer``; None once its failure is
        recorded, in the words and with the hint ``explain`` gives for the error."""
        from atbridge.errors import AtBridgeError

        try:
            return await work
        except AtBridgeError as error:
            text, hint = explain(error)
            self.failure(layer, name, started, error, text, hint)
            return None

    # -- the layers ------------------------------------------------------------------

    async def run(self) -> Report:
        """Every wanted layer; the report. Only cancellation propagates."""
        from atbridge.errors import AtBridgeError

        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            await self.run_layers()
        except AtBridgeError as error:  # a lost link: the modem is gone, report what we have
            self.lost = True
            layer = next((n for n in reversed(LAYERS) if self.steps[n]), "device")
            self.failure(layer, "link", self.now(), error, error.message, error.hint)
        finally:
            await self.finish()
        layers = tuple(self.build_layer(name) for name in LAYERS)
        return Report(
            verdict(layers),
            layers,
            started_at,
            self.options.port,
            self.dialect.name if self.dialect is not None else None,
            tuple(self.changes),
        )

    def build_layer(self, name: str) -> Layer:
        if not self.wanted(name):
            return make_layer(name, [], skipped="not asked (--steps)")
        if self.options.read_only and name in ("internet", "mqtt"):
            return make_layer(name, self.steps[name], skipped="--no-attach is read only")
        return make_layer(name, self.steps[name])

    async def run_layers(self) -> None:
        await self.device_probe()
        if self.dialect is None or self.lost:
            return
        queries = self.dialect.diagnostic_queries
        power = await self.ask_step("device", "power", ["AT+CFUN?"])  # as found
        self.found_cfun = merged_fields(power).get("functional_mode")
        if self.wanted("network") and not self.options.read_only:
            await self.network_attach()
        if self.lost:
            return
        for name, commands in group(queries.get("device", ())):
            await self.ask_step("device", name, commands)
        if self.wanted("radio"):
            for name, commands in group(queries.get("radio", ())):
                await self.ask_step("radio", name, commands)
        if self.wanted("network"):
            await self.network_reads(queries.get("network", ()))
        if self.wanted("internet") and not self.options.read_only:
            await self.internet()
        if self.wanted("mqtt") and not self.options.read_only:
            await self.mqtt()

    async def device_probe(self) -> None:
        from atbridge import steps
        from atbridge.dialects import dialect_class, identify
        from atbridge.dialects.base import Dialect
        from atbridge.errors import AtBridgeError

        started = self.now()
        self.progress("device: probe")
        try:
            if self.options.read_only:  # identify only: no initialise, no leftover sockets closed
                identity = await identify(self.modem) if self.options.dialect == "auto" else None
                name = identity.dialect if identity is not None else self.options.dialect
                self.dialect = dialect_class(name)(self.modem)
                leftovers = None
            else:
                probed = await steps.probe(
                    self.modem, self.options.dialect, timeout=self.options.timeout
                )
                identity, leftovers = probed.identity, probed.leftover_sockets
                assert isinstance(probed.dialect, Dialect)
                self.dialect = probed.dialect
                if leftovers:
                    self.changes.append(f"closed {leftovers} socket(s) left open on the modem")
        except AtBridgeError as error:
            self.failure("device", "probe", started, error, error.message, error.hint)
            return
        fields: dict[str, Any] = {"dialect": self.dialect.name}
        if identity is not None:
            fields.update(
                manufacturer=identity.manufacturer,
                model=identity.model,
                revision=identity.revision,
                version=identity.version or None,
            )
            self.identity_text = identity.describe()
        if leftovers is not None:
            fields["leftover_sockets"] = leftovers
        self.add("device", Step("probe", OK, started, self.now() - started, fields=fields))

    async def read_levels(self) -> tuple[list[Answer], dict[str, dict[str, Any]]]:
        """Read every registration source: the answers, and the fields of those that decoded."""
        assert self.dialect is not None
        answers: list[Answer] = []
        reads: dict[str, dict[str, Any]] = {}
        for source in self.dialect.registration_sources:
            answer = await self.ask(f"AT{source}?")
            answers.append(answer)
            if answer.fields is not None and "stat" in answer.fields:
                reads[source] = dict(answer.fields)
        return answers, reads

    async def network_attach(self) -> None:
        """Radio on and wait for registration (steps.attach); time to register from radio-on."""
        from atbridge import steps
        from atbridge.errors import AtBridgeError, StepTimeout

        assert self.dialect is not None
        started = self.now()
        self.progress("network: attach")
        sim = await self.ask("AT+CPIN?")
        before, reads = await self.read_levels()
        answers = [sim, *before]
        self.levels_before = {source: f.get("n") for source, f in reads.items()}
        sim_judged = judge_sim([sim], self.found_cfun)
        fields: dict[str, Any] = {"radio_was_on": self.found_cfun == 1}
        if sim_judged[0] == FAIL:
            self.record(
                "network",
                "attach",
                SKIPPED,
                started,
                answers=answers,
                fields=fields,
                verdict=f"not attached: {sim_judged[1]}",
                hint=sim_judged[2],
            )
            return
        if any(f.get("registered") for f in reads.values()):
            fields["already_registered"] = True
            self.record(
                "network",
                "attach",
                OK,
                started,
                answers=answers,
                fields=fields,
                verdict="already registered",
            )
            return
        if self.options.apn is not None:
            try:
                await steps.configure(self.dialect, self.options.apn, timeout=self.options.timeout)
            except AtBridgeError as exc:
                self.failure("network", "configure", started, exc, exc.message, exc.hint)
                return
            self.changes.append(f"APN of the default PDP context set to {self.options.apn!r}")
        terminal = asyncio.Event()

        def on_report(registration: Any) -> None:
            self.progress(f"network: attach: {registration.describe()}")
            if registration.stat in TERMINAL_STATS:
                terminal.set()

        if self.found_cfun != 1:
            self.changes.append(f"AT+CFUN=1 (radio on; it was CFUN={self.found_cfun})")
            self.radio_turned_on = True
        attach = asyncio.ensure_future(
            steps.attach(self.dialect, timeout=self.options.attach_timeout, progress=on_report)
        )
        stop = asyncio.ensure_future(terminal.wait())
        try:
            await asyncio.wait((attach, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            attach.cancel()  # a denial or a SIM failure: waiting longer cannot help
            await asyncio.wait((attach,))
        error = None if attach.cancelled() else attach.exception()
        if error is not None and not isinstance(error, AtBridgeError):
            raise error
        _, reads = await self.read_levels()
        self.levels_changed(reads)
        if error is None and not attach.cancelled():
            fields["registered_after_s"] = round(attach.result().seconds, 3)
        judged = judge_registration(reads)
        status = OK if judged[0] in (OK, WARN) else FAIL
        text, kind = (judged[1], None) if status == FAIL else ("", None)
        if status == FAIL and error is not None:
            kind = type(error).__name__
            if isinstance(error, StepTimeout):
                text = f"{judged[1]} (not registered within {self.options.attach_timeout:g} s)"
        self.record(
            "network",
            "attach",
            status,
            started,
            answers=answers,
            fields=fields,
            verdict=text,
            hint=judged[2] if status == FAIL else "",
            error=kind,
        )

    def levels_changed(self, reads: Mapping[str, Mapping[str, Any]]) -> None:
        for source, found in reads.items():
            before = self.levels_before.get(source)
            after = found.get("n")
            if after is not None and before is not None and after != before:
                self.changes.append(
                    f"AT{source}={after} (registration notifications; it was {before})"
                )

    async def network_reads(self, queries: Sequence[str]) -> None:
        assert self.dialect is not None
        started = self.now()
        answers, reads = await self.read_levels()
        self._registration_answers = answers
        status, text, hint = judge_registration(reads)
        fields: dict[str, Any] = {"sources": {s: dict(f) for s, f in reads.items()}}
        counting = next((f for f in reads.values() if f.get("registered")), None)
        counting = counting or next(iter(reads.values()), {})
        for key in ("stat", "registered", "roaming", "act", "tac", "cell_id", "reject_cause"):
            if key in counting:
                fields[key] = counting[key]
        if "cause_type" in counting:
            fields["cause_type"] = counting["cause_type"]
        attach = next((s for s in self.steps["network"] if s.name == "attach"), None)
        if attach is not None and "registered_after_s" in attach.fields:
            fields["registered_after_s"] = attach.fields["registered_after_s"]
        self.record(
            "network",
            "registration",
            status,
            started,
            answers=answers,
            fields=fields,
            verdict=text,
            hint=hint,
        )
        for name, commands in group(queries):
            await self.ask_step("network", name, commands)
        operator = next((s for s in self.steps["network"] if s.name == "operator"), None)
        plmn = operator.fields.get("plmn") if operator is not None else None
        if plmn is not None and "plmn" not in fields:  # the network's name for the verdict
            fields["plmn"] = plmn
            reads = {s: {**f, "plmn": f.get("plmn") or plmn} for s, f in reads.items()}
            status, text, hint = judge_registration(reads)
            index = next(i for i, s in enumerate(self.steps["network"]) if s.name == "registration")
            self.steps["network"][index] = replace(
                self.steps["network"][index], fields=fields, verdict=text, hint=hint
            )

    async def internet(self) -> None:
        from atbridge import steps
        from atbridge.errors import ConfigurationError, describe_error

        assert self.dialect is not None
        failed = self.failed_before("internet")
        if failed is not None:
            self.skip("internet", "activate_data", f"skipped: the {failed} layer failed")
            return
        if self.options.broker is None:
            self.skip(
                "internet", "resolve", self.options.no_broker_reason, self.options.no_broker_hint
            )
            return
        host, port, tls = self.options.broker
        started = self.now()
        active = await self.attempt(
            "internet",
            "activate_data",
            started,
            steps.activate_data(self.dialect, timeout=self.options.timeout),
            lambda error: (
                f"the data bearer did not come up: {describe_error(error)}",
                "check the APN (--apn) and the SIM's data plan",
            ),
        )
        if active is None:
            return
        from atbridge.dialects.base import Dialect

        if (
            not active.already_active
            and type(self.dialect).activate_data is not Dialect.activate_data
        ):
            self.changes.append("data bearer activated (left up; radio off takes it down)")
        self.record(
            "internet",
            "activate_data",
            OK,
            started,
            seconds=active.seconds,
            fields={"address": active.address, "already_active": active.already_active},
        )
        started = self.now()
        self.progress(f"internet: resolve {host}")
        resolved = await self.attempt(
            "internet",
            "resolve",
            started,
            steps.resolve(self.dialect, host, timeout=self.options.timeout),
            lambda error: (
                f"DNS lookup of {host} failed ({describe_error(error)})",
                "check the APN's DNS servers or use the broker's IP address",
            ),
        )
        if resolved is None:
            return
        self.record(
            "internet",
            "resolve",
            OK,
            started,
            seconds=resolved.seconds,
            fields={"host": host, "addresses": list(resolved.addresses)},
        )
        started = self.now()
        self.progress(f"internet: open_socket {host}:{port}")
        dialect, config = self.dialect, self.config

        async def open_it() -> steps.SocketOpened:
            # TLS: the setting of the run's credentials (a CA file that cannot be read
            # fails this step, with the error's own hint).
            setting = steps.tls_setting(config.credentials) if tls and config else tls
            return await steps.open_socket(
                dialect, host, port, tls=setting, timeout=self.options.timeout
            )

        def not_opened(error: AtBridgeError) -> tuple[str, str]:
            if isinstance(error, ConfigurationError):  # a TLS setting or refusal: fix it here
                return (
                    f"connecting to {host}:{port} failed: {error.message}",
                    error.hint or "check the TLS settings (--tls, --cafile, --cert, --key)",
                )
            return (
                f"TCP connect to {host}:{port} failed ({describe_error(error)})",
                "check the broker's address and port, that it is running, and that the "
                "operator's network can reach it (firewall, private APN)",
            )

        opened = await self.attempt("internet", "open_socket", started, open_it(), not_opened)
        if opened is None:
            return
        self.socket = opened.socket
        self.changes.append(f"socket opened to {host}:{port} (closed at the end)")
        self.record(
            "internet",
            "open_socket",
            OK,
            started,
            seconds=opened.seconds,
            fields={"host": host, "port": port, "tls": tls},
        )

    async def mqtt(self) -> None:
        from atbridge import steps
        from atbridge.at_mqtt import MqttSession
        from atbridge.errors import BrokerRefused, describe_error
        from atbridge.online import connect_packet

        failed = self.failed_before("mqtt")
        if failed is not None or self.socket is None or self.config is None:
            why = f"the {failed} layer failed" if failed else self.options.no_broker_reason
            self.skip("mqtt", "mqtt_connect", f"skipped: {why}")
            return
        session = MqttSession(connect_packet(self.config))
        self.session = session
        started = self.now()
        self.progress("mqtt: CONNECT")

        def no_connack(error: AtBridgeError) -> tuple[str, str]:
            if isinstance(error, BrokerRefused):
                return describe_error(error), refusal_hint(error.code, error.hint)
            return (
                f"no CONNACK: {describe_error(error)}",
                "check that the port speaks MQTT (not TLS-only) and the broker's log",
            )

        connected = await self.attempt(
            "mqtt",
            "mqtt_connect",
            started,
            steps.mqtt_connect(self.socket, session, timeout=self.options.timeout),
            no_connack,
        )
        if connected is None:
            self.session = None
            return
        self.add(
            "mqtt",
            Step(
                "mqtt_connect",
                OK,
                started,
                connected.seconds,
                fields={
                    "return_code": 0,
                    "session_present": connected.session_present,
                    "keepalive_s": connected.connack.keepalive,
                },
            ),
        )
        started = self.now()
        pinged = await self.attempt(
            "mqtt",
            "ping",
            started,
            steps.ping(self.socket, session, timeout=self.options.timeout),
            lambda error: (
                f"no PINGRESP: {describe_error(error)}",
                "the connection is silently dead: check the operator's NAT timeouts",
            ),
        )
        if pinged is None:
            return
        rtt = round(pinged.round_trip * 1000, 1)
        self.add("mqtt", Step("ping", OK, started, pinged.seconds, fields={"round_trip_ms": rtt}))
        if self.options.echo_topic is not None:
            await self.echo(self.options.echo_topic)

    async def echo(self, topic: str) -> None:
        """Subscribe to ``topic``, publish a unique message to it, wait for it to come back."""
        import secrets

        from atbridge.at_mqtt import MessageReceived, Subscribed
        from atbridge.errors import AtBridgeError, describe_error

        assert self.socket is not None and self.session is not None
        sock, session = self.socket, self.session
        payload = f"atbridge diag echo {secrets.token_hex(4)}".encode()
        started = self.now()

        async def pump(until: Callable[[object], bool]) -> None:
            await sock.send(session.data_to_send(time.monotonic()))
            while True:
                session.receive_data(await sock.receive(), time.monotonic())
                while (event := session.next_event()) is not None:
                    if until(event):
                        return

        try:
            async with asyncio.timeout(self.options.timeout):
                session.subscribe(topic, qos=0)
                await pump(lambda event: isinstance(event, Subscribed))
                sent = time.monotonic()
                session.publish(topic, payload, qos=0)
                await pump(
                    lambda event: isinstance(event, MessageReceived) and event.payload == payload
                )
                rtt = round((time.monotonic() - sent) * 1000, 1)
        except (AtBridgeError, TimeoutError) as error:
            text = describe_error(error) if isinstance(error, AtBridgeError) else "timed out"
            self.failure(
                "mqtt",
                "echo",
                started,
                error,
                f"the echo on {topic} did not come back ({text})",
                "check the broker's ACL for this topic (subscribe and publish)",
            )
            return
        self.record(
            "mqtt",
            "echo",
            OK,
            started,
            fields={"topic": topic, "bytes": len(payload), "round_trip_ms": rtt},
        )

    # -- the end: disconnect, close, restore ------------------------------------------

    async def finish(self) -> None:
        from atbridge.errors import AtBridgeError
        from atbridge.tls import TlsSocket

        if self.socket is not None:
            with contextlib.suppress(AtBridgeError, TimeoutError):
                async with asyncio.timeout(self.options.timeout):
                    data = b""
                    if self.session is not None:
                        self.session.disconnect()
                        data = self.session.data_to_send(time.monotonic())
                    if isinstance(self.socket, TlsSocket):  # DISCONNECT and close_notify
                        await self.socket.close(final=data)  # in one send
                    else:
                        await self.socket.send(data)
                        await self.socket.close()
            self.socket = None
        if self.lost or self.options.read_only or not self.options.restore:
            return
        restores: list[str] = []
        for source, level in self.levels_before.items():
            if level is not None and any(f"AT{source}=" in c for c in self.changes):
                restores.append(f"AT{source}={level}")
        if self.radio_turned_on and self.found_cfun is not None:
            restores.append(f"AT+CFUN={self.found_cfun}")
        for command in restores:
            try:
                await self.modem.command(command, timeout=max(self.options.timeout, 30.0))
            except AtBridgeError as error:
                self.changes.append(f"could not restore {command}: {error.message}")
            else:
                self.changes.append(f"restored: {command}")


async def diagnose(
    modem: Modem,
    options: Options,
    *,
    config: BridgeConfig | None = None,
    progress: Progress | None = None,
) -> Report:
    """Run ``diag`` on an open ``modem`` (see the module docstring); the :class:`Report`."""
    return await Runner(modem, options, config=config, progress=progress).run()


__all__ = [
    "LAYERS",
    "STEP_OF",
    "Layer",
    "Options",
    "Report",
    "Runner",
    "Step",
    "Verdict",
    "describe_cause",
    "diagnose",
    "exit_code",
    "group",
    "judge_answers",
    "judge_functional_mode",
    "judge_registration",
    "judge_signal",
    "judge_sim",
    "make_layer",
    "merged_fields",
    "pin_state",
    "psm_summary",
    "refusal_hint",
    "verdict",
]
