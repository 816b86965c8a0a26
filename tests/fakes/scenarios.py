"""Field scenarios and the radio controls of ``FakeModem``: what the air does to the modem.

Theory of operation
-------------------
A ``Scenario`` is what the network around the fake does; its fields are ``FakeModem``
keywords of the same names and ``python -m tests.fakes`` flags (``--deny``, ``--no-service``,
...). The engine asks the mixin how a search ends (:meth:`RadioControls.complete_registration`,
after ``registration_delay``), so every dialect plays a scenario the same way and reports it in
its own words (the dialect modules' answers, ``nrf91_diag``, ``simcom_diag``):

==========================  ======================================================================
keyword                     what happens, and what the families answer
==========================  ======================================================================
``deny=N``                  the search ends in stat 3 on the cell it tried, ``<cause_type>`` 0 and
                            ``<reject_cause>`` N (TS 27.007 §10.1.22 levels 3/5, EMM causes of
                            TS 24.301 Annex A): ``+CEREG: 3,"0A1B","01234567",7,0,N``; nRF91
                            ``%XMONITOR: 3`` (the optional part only for 1/5), ``%CONEVAL: 6``;
                            SIMCom ``+CPSI: NO SERVICE,Online`` (the documented no-service form)
``no_service=True``         searches for ever (stat 2), no cell: +CESQ ``255`` values, +CSQ
                            ``99,99``, ``%XMONITOR: 2``, ``%CONEVAL: 1``, ``%XCBAND: 0``,
                            ``+CPSI: NO SERVICE,Online``; ``%MDMEV: SEARCH STATUS 1`` (light
                            search) then ``SEARCH STATUS 2`` (every frequency scanned),
                            ``registration_delay`` apart (Cellular Monitor's event texts)
``roaming=True``            registers with stat 5 on a visited PLMN (``VISITED_PLMNS``, never the
                            IMSI's home): +COPS names it
``rat="nbiot"``             (a ``FakeModem`` argument) an NB-IoT cell: AcT 9, band 8, EARFCN 3740,
                            ``%XSYSTEMMODE: 0,1,1,0``, ``+CPSI: LTE NB-IOT,...``, ``+CMNB: 2``,
                            +CEDRXRDP AcT-type 5; refused by the SIM7600/A7672 and the SIM800
``rsrp_series=[dBm, ...]``  the RSRP takes the next value every ``series_period`` s (default 1; 0:
                            only on :meth:`~RadioControls.step_signal`), the first again after the
                            last; every signal answer follows (``radio``), ``%CESQ`` on a change
``handover_after=S``        S s after registering the serving cell changes to the other cell of
                            the RAT (new cell id, PCI, EARFCN; :meth:`~RadioControls.handover`
                            does it now): +CEREG at level 2+ reports it, every cell answer shows it
``psm_grant=(T3324,T3412)`` with AT+CPSMS=1 the network grants these (8-bit GPRS Timer 2 / 3
                            strings) instead of the requested timers: +CEREG levels 4/5 and
                            %XMONITOR show them, +CPSMS? the requested ones
``dns_fail=True``           no name resolves (address literals still work): nRF91
                            ``#XGETADDRINFO: "EAI_AGAIN"`` + ERROR, SIM7080 / SIM7000 ``+CDNSGIP:
                            0,8`` after OK, SIM7600 ``+CDNSGIP: 0,10`` + ERROR; opening by name
                            fails as unresolvable
``broker_unreachable=True`` every TCP connect is refused, as ``fail_next_open`` reports it: nRF91
                            ERROR, ``+CAOPEN: <cid>,23``, ``+CIPOPEN: <link>,1``,
                            ``<n>, CONNECT FAIL``
``connack_refused=RC``      every connection reaches the fake's stand-in broker
                            (``refusing_broker``), which answers the first CONNECT with a CONNACK
                            refusing with RC (1..5; MQTT 5 reason codes for an MQTT 5 client)
==========================  ======================================================================

A scenario a dialect cannot play is a ValueError (``check_scenario``: the generic modem has no
sockets or DNS; ``Dialect.rats``).

``RadioControls`` is inherited by ``FakeModem`` (as ``faults.FaultControls`` is): the engine
calls :meth:`RadioControls.radio_event` whenever registration or the signal changes, and the
mixin keeps what follows from it consistent on every dialect:

- the RRC state (+CSCON, TS 27.007 §10.1.30): connected when the modem attaches, idle after
  ``rrc_inactivity`` seconds without traffic (the network's inactivity timer; the fake's
  default 10 s), idle when it leaves the network; ``+CSCON: <mode>`` on a change with
  AT+CSCON=1;
- the PSM timers the network grants (TS 24.301 §5.3.11, carried by +CEREG levels 4/5 and
  %XMONITOR): while registered with AT+CPSMS=1 the requested timers, or the scenario's
  ``psm_grant``; none with PSM off; a +CEREG URC at level 4/5 when they change after the
  attach (the attach's own +CEREG carries them);
- the dialect's own notifications (``Dialect.on_radio``: nRF91 ``%CESQ``, ``%MDMEV``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import radio as rf
from .refusing_broker import MQTT5_REASONS, RefusingBroker
from .registry import Identity, Network

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from .core import ModemState
    from .registry import Dialect

__all__ = ["SCENARIO_OPTIONS", "RadioControls", "Scenario", "check_scenario", "scenario_network"]

_BITS8: Final = re.compile(r"[01]{8}")
#: The visited network of ``roaming=True`` (and another one if the SIM's home is that one).
VISITED_PLMNS: Final = ("23410", "20801")


@dataclass(frozen=True)
class Scenario:
    """The field scenario a fake plays (``FakeModem`` keywords of the same names; see the
    module docstring). The defaults are a healthy home network."""

    deny: int | None = None
    no_service: bool = False
    roaming: bool = False
    rsrp_series: tuple[int, ...] = ()
    series_period: float = 1.0
    handover_after: float | None = None
    psm_grant: tuple[str, str] | None = None
    dns_fail: bool = False
    broker_unreachable: bool = False
    connack_refused: int | None = None

    def __post_init__(self) -> None:
        if self.deny is not None and not 0 <= self.deny <= 255:
            raise ValueError(f"deny={self.deny}: an EMM cause is 0..255 (TS 24.301 Annex A)")
        if self.deny is not None and self.no_service:
            raise ValueError("deny and no_service exclude each other: pick one")
        for dbm in self.rsrp_series:
            if not -140 <= dbm <= -44:
                raise ValueError(f"rsrp_series value {dbm} dBm is outside -140..-44")
        if self.series_period < 0:
            raise ValueError("series_period must not be negative")
        if self.handover_after is not None and self.handover_after < 0:
            raise ValueError("handover_after must not be negative")
        if self.psm_grant is not None and (
            len(self.psm_grant) != 2 or not all(_BITS8.fullmatch(t) for t in self.psm_grant)
        ):
            raise ValueError(
                f"psm_grant={self.psm_grant!r}: give (T3324, T3412-ext) as two 8-bit strings, "
                'e.g. ("00100001", "00000110")'
            )
        if self.connack_refused is not None and self.connack_refused not in MQTT5_REASONS:
            raise ValueError(
                f"connack_refused={self.connack_refused}: an MQTT 3.1.1 return code 1..5"
            )

    @classmethod
    def take(cls, options: dict[str, object]) -> Scenario:
        """The scenario keywords of ``options`` (removed from it) as a ``Scenario``."""
        given = {name: options.pop(name) for name in SCENARIO_OPTIONS if name in options}
        series = given.get("rsrp_series")
        if series is not None:
            if not isinstance(series, Sequence) or not all(isinstance(v, int) for v in series):
                raise ValueError("rsrp_series must be a list of integers (dBm)")
            given["rsrp_series"] = tuple(series)
        grant = given.get("psm_grant")
        if grant is not None:
            if not isinstance(grant, Sequence) or isinstance(grant, str):
                raise ValueError("psm_grant must be a (T3324, T3412-ext) pair")
            given["psm_grant"] = tuple(grant)
        return cls(**given)  # type: ignore[arg-type]


def check_scenario(scenario: Scenario, dialect: Dialect) -> None:
    """ValueError if ``dialect`` cannot play ``scenario`` (the socket scenarios need a
    family with sockets)."""
    from .faults import SocketFaults

    needs_sockets = [
        name
        for name, on in (
            ("dns_fail", scenario.dns_fail),
            ("broker_unreachable", scenario.broker_unreachable),
            ("connack_refused", scenario.connack_refused is not None),
        )
        if on
    ]
    if needs_sockets and not isinstance(dialect.faults, SocketFaults):
        raise ValueError(f"{dialect.name} has no sockets or DNS: no {', '.join(needs_sockets)}")


#: The ``FakeModem`` keywords a ``Scenario`` takes.
SCENARIO_OPTIONS: Final = tuple(f.name for f in dataclasses.fields(Scenario))


def scenario_network(
    network: Network | None, rat: str, scenario: Scenario, identity: Identity
) -> Network:
    """The network the fake camps on: the given one, else the default (an NB-IoT cell with
    ``rat="nbiot"``); a visited PLMN (not the IMSI's home) with ``roaming``."""
    if network is None:
        network = Network()
        if rat == "nbiot":
            network = rf.on_cell(dataclasses.replace(network, act=9), rf.NB_IOT_CELLS[0])
    if scenario.roaming:
        home = identity.imsi[:5]
        plmn = next(p for p in VISITED_PLMNS if p != home and p != network.plmn[:5])
        network = dataclasses.replace(
            network, plmn=plmn, long_name="Fake Roaming Partner", short_name="FakeRoam"
        )
    return network


class RadioControls:
    """The radio side of ``FakeModem`` (see the module docstring)."""

    if TYPE_CHECKING:
        dialect: Dialect
        state: ModemState
        network: Network
        rsrp_index: int
        rsrq_index: int

        def send_urc(self, line: str) -> None: ...
        def call_later(
            self, delay: float, action: Callable[..., None], *args: Any
        ) -> asyncio.TimerHandle: ...
        def cereg_fields(self, n: int) -> str: ...

    if TYPE_CHECKING:
        scenario: Scenario
        registration_delay: float

        def set_registration(
            self,
            stat: int,
            reject_cause: int | None = None,
            *,
            tac: str | None = None,
            ci: str | None = None,
            act: int | None = None,
        ) -> None: ...
        def _update_registration(self, stat: int, *, located: bool) -> None: ...

    #: Seconds without traffic until the network releases the RRC connection.
    rrc_inactivity: float = 10.0
    _rrc_timer: asyncio.TimerHandle | None = None
    _series_position: int = 0
    _refuser: RefusingBroker | None = None

    # ---- the scenario's course

    def scenario_power_on(self) -> None:
        """At power-on: the scripted signal restarts its steps (``rsrp_series``)."""
        series = self.scenario.rsrp_series
        if series:
            self.rsrp_index = rf.rsrp_index_of(series[self._series_position % len(series)])
            if self.scenario.series_period > 0:
                self.call_later(self.scenario.series_period, self._series_tick)

    def _series_tick(self) -> None:
        self.step_signal()
        self.call_later(self.scenario.series_period, self._series_tick)

    def complete_registration(self) -> None:
        """The search after ``registration_delay`` ends as the scenario says: registered
        (stat 1, or 5 ``roaming``), denied (stat 3 with the cause on the cell it tried),
        or no cell at all (``no_service``: a light search, later a full one, stat 2 stays)."""
        scenario = self.scenario
        if scenario.no_service:
            self.radio_event("light_search")
            self.call_later(self.registration_delay, self.radio_event, "search_done")
            return
        if scenario.deny is not None:
            self._notify("search_done")
            self.set_registration(3, scenario.deny, tac=self.network.tac, ci=self.network.ci)
            return
        self._apply_psm(registered=True)  # the attach accept carries the timers
        self._update_registration(5 if scenario.roaming else 1, located=True)
        if scenario.handover_after is not None:
            self.call_later(scenario.handover_after, self.handover)

    def step_signal(self) -> None:
        """The scripted signal (``rsrp_series``) takes its next value (after the last, the
        first again); every signal answer follows, with ``%CESQ`` if enabled."""
        series = self.scenario.rsrp_series
        if not series:
            raise ValueError("no rsrp_series to step through")
        self._series_position = (self._series_position + 1) % len(series)
        self.rsrp_index = rf.rsrp_index_of(series[self._series_position])
        self.radio_event("signal")

    @property
    def rsrp_dbm(self) -> int:
        """The current RSRP in dBm."""
        return rf.rsrp_dbm(self.rsrp_index)

    def handover(self) -> None:
        """The modem moves to the network's other cell (new cell id, PCI, EARFCN): +CEREG at
        level 2 and above reports it, every cell answer shows it."""
        self.network = rf.on_cell(self.network, rf.neighbour_cell(self.network))
        if self.state.registered:
            self._update_registration(self.state.stat, located=True)
            self.rrc_activity()

    async def route(self, address: str, port: int) -> tuple[str, int]:
        """Where a socket's TCP connection really goes: the stand-in refusing broker with
        ``connack_refused``, else where it was asked to."""
        code = self.scenario.connack_refused
        if code is None:
            return address, port
        if self._refuser is None:
            self._refuser = RefusingBroker(code)
        await self._refuser.start()
        return "127.0.0.1", self._refuser.port

    async def scenario_stop(self) -> None:
        """``stop()``: the stand-in broker closes."""
        if self._refuser is not None:
            await self._refuser.close()

    def radio_event(self, kind: str) -> None:
        """Registration (``"registration"``) or the signal (``"signal"``) changed, or a
        search ended (``"light_search"``, ``"search_done"``): follow it up (see the module
        docstring) and tell the dialect."""
        radio = self.state.radio
        if kind == "registration":
            registered = self.state.registered
            if registered and not radio.was_registered:
                radio.was_registered = True
                self._notify("search_done")
                self.set_rrc(1)
                self.rrc_activity()
                self.psm_changed()
            elif not registered and radio.was_registered:
                radio.was_registered = False
                self.set_rrc(0)
        self._notify(kind)

    def _notify(self, kind: str) -> None:
        if self.dialect.on_radio is not None:
            self.dialect.on_radio(self, kind)  # type: ignore[arg-type]

    # ---- RRC

    def set_rrc(self, mode: int) -> None:
        """Set the RRC state (0 idle, 1 connected); ``+CSCON: <mode>`` on a change if enabled."""
        radio = self.state.radio
        if radio.rrc == mode:
            return
        radio.rrc = mode
        if mode == 0 and self._rrc_timer is not None:
            self._rrc_timer.cancel()
            self._rrc_timer = None
        if radio.cscon_n == 1:
            self.send_urc(f"+CSCON: {mode}")

    def rrc_activity(self) -> None:
        """Traffic: RRC connected (if registered), released ``rrc_inactivity`` s later."""
        if not self.state.registered:
            return
        self.set_rrc(1)
        if self._rrc_timer is not None:
            self._rrc_timer.cancel()
        self._rrc_timer = self.call_later(self.rrc_inactivity, self._rrc_release)

    def _rrc_release(self) -> None:
        self._rrc_timer = None
        self.set_rrc(0)

    # ---- PSM

    def granted_psm(self, registered: bool | None = None) -> tuple[str, str] | None:
        """The (T3324, T3412-ext) the network grants now (or once ``registered``): while
        registered with PSM requested, the scenario's ``psm_grant`` or else the requested
        timers; None otherwise."""
        radio = self.state.radio
        registered = self.state.registered if registered is None else registered
        if not registered or radio.psm_mode != 1:
            return None
        if self.scenario.psm_grant is not None:
            return self.scenario.psm_grant
        return (radio.requested_active_time or "00000000", radio.requested_tau or "00000110")

    def _apply_psm(self, registered: bool | None = None) -> bool:
        """Set the granted timers; whether they changed."""
        grant = self.granted_psm(registered)
        s, radio = self.state, self.state.radio
        if grant is None and not radio.psm_applied:
            return False  # nothing granted by this logic (``set_psm`` may have set the timers)
        radio.psm_applied = grant is not None
        timers = grant if grant is not None else (None, None)
        if (s.active_time, s.periodic_tau) == timers:
            return False
        s.active_time, s.periodic_tau = timers
        return True

    def psm_changed(self) -> None:
        """AT+CPSMS or registration changed: apply the grant, +CEREG (level 4/5) on a change."""
        s = self.state
        if self._apply_psm() and s.registered and s.cereg_n >= 4:
            self.send_urc("+CEREG: " + self.cereg_fields(s.cereg_n))
