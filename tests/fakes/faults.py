"""Faults on demand: the one interface every fake dialect implements, and the engine's own faults.

Theory of operation
-------------------
A fault is something a test makes happen to the modem that the host did not ask for. There are
two kinds, and they live in two places:

- **Line and power faults** happen to any modem the same way: a reboot, garbage on the line, a
  response that never comes or comes late, a URC in the middle of a response, URCs held back
  (data mode), the serial link hanging up. ``FaultControls`` implements them once, on the
  engine's buffers (``PendingFaults`` is what the engine consumes per command), and
  ``FakeModem`` inherits them.
- **Network faults** happen in the network and each modem family *reports* them in its own
  words: the data context deactivated by the network, a detach, the peer closing a TCP
  connection, a refused send or open. A dialect declares how with a ``NetworkFaults`` object
  (``Dialect.faults``); ``FaultControls`` forwards the public methods (``fake.drop_pdp()``,
  ``fake.peer_close()``, ...) to it, so a test that runs on every dialect never names a family.
  The base class is the generic 3GPP modem: it can detach (``+CEREG``) but has no sockets and no
  data context, so those faults raise ``UnsupportedFault``.

Every fault is armed or applied on the fake's own loop (the test's task), like the rest of the
fake's controls. The methods and what each family sends are listed in ``tests/fakes/__init__``.
"""

from __future__ import annotations

import abc
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .core import FakeModem
    from .registry import Dialect

__all__ = [
    "ArmedFaults",
    "FaultControls",
    "Initiator",
    "NetworkFaults",
    "PendingFaults",
    "SocketFaults",
    "UnsupportedFault",
]

Initiator = Literal["NW", "ME"]


class UnsupportedFault(RuntimeError):
    """The dialect cannot suffer this fault (the generic modem has no sockets, for instance)."""


def check_count(count: int) -> None:
    """ValueError for a negative fault count."""
    if count < 0:
        raise ValueError("count must not be negative")


class NetworkFaults:
    """How one modem family suffers the network's faults; one instance per dialect.

    The base class is the generic 3GPP modem: ``network_detach`` moves ``+CEREG`` and the socket
    and data-context faults raise ``UnsupportedFault``. A family with sockets overrides them all.
    """

    def drop_pdp(self, fake: FakeModem) -> None:
        """The network deactivates the data context; registration stays."""
        raise UnsupportedFault(f"{fake.dialect.name} has no data context to drop")

    def network_detach(
        self, fake: FakeModem, *, initiator: Initiator, reattach_after: float | None
    ) -> None:
        """The modem leaves the network (+CEREG stat 2 when the network detached it, 0 when it
        detached itself) and registers again after ``reattach_after`` seconds (None: never)."""
        fake.set_registration(2 if initiator == "NW" else 0)
        if reattach_after is not None:
            fake.call_later(reattach_after, fake.set_registration, 1)

    def peer_close(self, fake: FakeModem, link: int | None) -> None:
        """The remote end closes the TCP connection of socket ``link`` (None: every open one)."""
        raise UnsupportedFault(f"{fake.dialect.name} has no sockets")

    def fail_next_send(self, fake: FakeModem, count: int) -> None:
        """The next ``count`` socket sends are refused, as the family refuses them."""
        raise UnsupportedFault(f"{fake.dialect.name} has no sockets")

    def fail_next_open(self, fake: FakeModem, count: int) -> None:
        """The next ``count`` socket opens (TCP connects) fail, as the family reports it."""
        raise UnsupportedFault(f"{fake.dialect.name} has no sockets")

    def lose_next_notification(self, fake: FakeModem, count: int) -> None:
        """The next ``count`` data notifications never reach the host; the data stays."""
        raise UnsupportedFault(f"{fake.dialect.name} has no sockets")

    def reboot_during_next_send(self, fake: FakeModem) -> None:
        """The next send command reboots the modem after it has asked for the payload."""
        raise UnsupportedFault(f"{fake.dialect.name} has no sockets")


@dataclass
class ArmedFaults:
    """Socket faults armed for the next sends, opens and notifications. They live in the
    dialect's power-on state, so a reboot disarms them; each ``take_*`` consumes one."""

    fail_sends: int = 0
    fail_opens: int = 0
    lose_notifications: int = 0
    #: Payload bytes the next send takes before the modem reboots; None: not armed.
    reboot_in_send: int | None = None

    def take_failed_send(self) -> bool:
        """True (one use consumed) if this send is to be refused."""
        if self.fail_sends > 0:
            self.fail_sends -= 1
            return True
        return False

    def take_failed_open(self) -> bool:
        """True (one use consumed) if this open is to fail."""
        if self.fail_opens > 0:
            self.fail_opens -= 1
            return True
        return False

    def take_lost_notification(self) -> bool:
        """True (one use consumed) if this data notification is to be lost."""
        if self.lose_notifications > 0:
            self.lose_notifications -= 1
            return True
        return False

    def take_reboot_in_send(self) -> int | None:
        """The payload offset at which this send reboots the modem, None if it does not."""
        offset, self.reboot_in_send = self.reboot_in_send, None
        return offset


class SocketFaults(NetworkFaults, abc.ABC):
    """The base of a family with sockets: the armed faults live in ``armed(fake)`` (the
    dialect's power-on state) and its send, open and notification paths consume them; the
    family says how it reports a dropped context, a detach and a peer's close."""

    @abc.abstractmethod
    def armed(self, fake: FakeModem) -> ArmedFaults:
        """The faults armed on ``fake`` (its dialect state's)."""

    def fail_next_send(self, fake: FakeModem, count: int) -> None:
        self.armed(fake).fail_sends += count

    def fail_next_open(self, fake: FakeModem, count: int) -> None:
        self.armed(fake).fail_opens += count

    def lose_next_notification(self, fake: FakeModem, count: int) -> None:
        self.armed(fake).lose_notifications += count

    def reboot_during_next_send(self, fake: FakeModem) -> None:
        self.armed(fake).reboot_in_send = 0


@dataclass
class PendingFaults:
    """Line faults armed for the next commands; the engine consumes them one command at a time.

    ``held_urcs`` is None while URCs flow, else the URCs held back (in order). A reboot loses
    what is held and what is armed for responses.
    """

    drops: int = 0
    delays: deque[float] = field(default_factory=deque)
    mid_response_urcs: list[str] = field(default_factory=list)
    held_urcs: list[str] | None = None

    def take_drop(self) -> bool:
        """True (and one use consumed) if the next response is to be dropped."""
        if self.drops > 0:
            self.drops -= 1
            return True
        return False

    def take_delay(self) -> float:
        """Seconds the next command waits before it runs (0: none armed)."""
        return self.delays.popleft() if self.delays else 0.0

    def take_mid_response_urcs(self) -> list[str]:
        """The URCs to put inside the response being encoded."""
        urcs, self.mid_response_urcs = self.mid_response_urcs, []
        return urcs


class FaultControls:
    """The public fault methods of ``FakeModem`` (see the module docstring).

    The engine provides the buffers (``_pending``) and the few primitives used here; everything
    a test can make go wrong with the modem is a method of this class.
    """

    dialect: Dialect
    _pending: PendingFaults

    if TYPE_CHECKING:

        def write_raw(self, data: bytes) -> None: ...
        def _power_cycle(self, banner: str | bytes | None) -> None: ...
        def _hang_up(self) -> None: ...

    # ---- line and power faults (the same on every modem)

    def send_urc(self, line: str) -> None:
        """Send one unsolicited line now, framed ``\\r\\n<line>\\r\\n`` (or queue it while
        URCs are held, see ``hold_urcs``)."""
        from .grammar import frame_line

        if self._pending.held_urcs is not None:
            self._pending.held_urcs.append(line)
        else:
            self.write_raw(frame_line(line))

    def hold_urcs(self, hold: bool) -> None:
        """Hold URCs (a modem in data mode buffers them) or send the held ones now, in order.
        A reboot loses held URCs."""
        if hold:
            if self._pending.held_urcs is None:
                self._pending.held_urcs = []
            return
        held, self._pending.held_urcs = self._pending.held_urcs or [], None
        for line in held:
            self.send_urc(line)

    def urc_during_next_response(self, line: str) -> None:
        """Put a URC inside the next response: after its information lines, before its final
        result code (right after the echo when it has no information lines)."""
        self._pending.mid_response_urcs.append(line)

    def send_garbage(self, data: bytes) -> None:
        """Send raw bytes now (line noise, a stray 0xFF, a half line)."""
        self.write_raw(data)

    def drop_next_response(self, count: int = 1) -> None:
        """The next ``count`` commands run but send no response (echo still happens)."""
        check_count(count)
        self._pending.drops += count

    def delay_next_response(self, seconds: float) -> None:
        """The next command is echoed at once but runs, and answers, ``seconds`` later; later
        commands wait behind it. Calls queue up: one delay per command."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._pending.delays.append(seconds)

    def reboot(self, banner: str | bytes | None = None) -> None:
        """Power-cycle: lose pending input, output, timers, sockets and the command in progress,
        reset the state to power-on defaults and send the boot banner (the dialect's, ``banner``
        framed as the dialect frames banners, or ``banner`` bytes verbatim)."""
        self._power_cycle(banner)

    def drop_link(self) -> None:
        """The serial link hangs up, as when a USB modem is unplugged: the pty closes, so the
        host's reads see end of file, its writes fail with EIO and the port path is gone. Every
        socket is lost. The fake serves nothing afterwards; ``stop()`` still cleans up."""
        self._hang_up()

    # ---- network faults (each family reports them its own way: Dialect.faults)

    def drop_pdp(self) -> None:
        """The network deactivates the data context (PDP context / PDN connection): every
        socket fails. SIMCom: the modem stays registered and new opens fail until the host
        activates the bearer again (SIM7080 ``+APP PDP: 0,DEACTIVE``, SIM7600 ``+CIPEVENT:
        NETWORK CLOSED UNEXPECTEDLY``, SIM7000 ``+PDP: DEACT``). nRF91 on LTE-M: the last PDN
        connection goes only with a detach, so the network detaches the modem and it
        re-attaches after ``registration_delay`` (``network_detach``); on NB-IoT (AcT 9)
        ``+CGEV: NW PDN DEACT 0``, registration stays, connects fail until the next attach."""
        self.dialect.faults.drop_pdp(self._fake())

    def network_detach(
        self, *, reattach_after: float | None = None, initiator: Initiator = "NW"
    ) -> None:
        """The modem loses the network: +CEREG stat 2 (``initiator="NW"``: it searches again) or
        0 (``"ME"``), the data context and every socket go (the family's notifications).
        With ``reattach_after`` it registers again after that many seconds (+CEREG stat 1)."""
        if reattach_after is not None and reattach_after < 0:
            raise ValueError("reattach_after must not be negative")
        self.dialect.faults.network_detach(
            self._fake(), initiator=initiator, reattach_after=reattach_after
        )

    def peer_close(self, link: int | None = None) -> None:
        """The remote end closes the TCP connection of socket ``link`` (the family's socket
        number: handle, cid, link; None: every open socket). LookupError if there is none."""
        self.dialect.faults.peer_close(self._fake(), link)

    def fail_next_send(self, count: int = 1) -> None:
        """The next ``count`` socket sends are refused the way the family refuses them."""
        check_count(count)
        self.dialect.faults.fail_next_send(self._fake(), count)

    def fail_next_open(self, count: int = 1) -> None:
        """The next ``count`` socket opens fail as a refused TCP connection does."""
        check_count(count)
        self.dialect.faults.fail_next_open(self._fake(), count)

    def lose_next_notification(self, count: int = 1) -> None:
        """The next ``count`` data notifications never reach the host; the data stays
        readable with the family's read command."""
        check_count(count)
        self.dialect.faults.lose_next_notification(self._fake(), count)

    def reboot_during_next_send(self) -> None:
        """The next send reboots the modem once it has asked for the payload (after ``OK`` in
        nRF91 data mode, after the ``> `` prompt on SIMCom): every socket is lost."""
        self.dialect.faults.reboot_during_next_send(self._fake())

    def _fake(self) -> FakeModem:
        from .core import FakeModem

        assert isinstance(self, FakeModem)
        return self
