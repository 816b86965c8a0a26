"""Field scenarios and the radio controls of ``FakeModem``: what the air does to the modem.

Theory of operation
-------------------
``RadioControls`` is inherited by ``FakeModem`` (as ``faults.FaultControls`` is): the engine
calls :meth:`RadioControls.radio_event` whenever registration or the signal changes, and the
mixin keeps what follows from it consistent on every dialect:

- the RRC state (+CSCON, TS 27.007 §10.1.30): connected when the modem attaches, idle after
  ``rrc_inactivity`` seconds without traffic (the network's inactivity timer; the fake's
  default 10 s), idle when it leaves the network; ``+CSCON: <mode>`` on a change with
  AT+CSCON=1;
- the PSM timers the network grants (TS 24.301 §5.3.11, carried by +CEREG levels 4/5 and
  %XMONITOR): while registered with AT+CPSMS=1 the requested timers, or the scenario's
  ``psm_grant``; none with PSM off; a +CEREG URC at level 4/5 when they change;
- the dialect's own notifications (``Dialect.on_radio``: nRF91 ``%CESQ``, ``%MDMEV``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from .core import ModemState
    from .registry import Dialect, Network

__all__ = ["RadioControls"]


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

    #: Seconds without traffic until the network releases the RRC connection.
    rrc_inactivity: float = 10.0
    _rrc_timer: asyncio.TimerHandle | None = None

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

    def granted_psm(self) -> tuple[str, str] | None:
        """The (T3324, T3412-ext) the network grants now: the requested timers while
        registered with PSM requested, None otherwise."""
        radio = self.state.radio
        if not self.state.registered or radio.psm_mode != 1:
            return None
        return (radio.requested_active_time or "00000000", radio.requested_tau or "00000110")

    def psm_changed(self) -> None:
        """AT+CPSMS or registration changed: apply the grant, +CEREG (level 4/5) on a change."""
        grant = self.granted_psm()
        s, radio = self.state, self.state.radio
        if grant is None and not radio.psm_applied:
            return  # nothing granted by this logic (``set_psm`` may have set the timers)
        radio.psm_applied = grant is not None
        timers = grant if grant is not None else (None, None)
        if (s.active_time, s.periodic_tau) == timers:
            return
        s.active_time, s.periodic_tau = timers
        if s.registered and s.cereg_n >= 4:
            self.send_urc("+CEREG: " + self.cereg_fields(s.cereg_n))
