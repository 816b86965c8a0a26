"""The fake modem engine: a pty, an AT command interpreter, the modem's state.

Theory of operation
-------------------
``FakeModem.start()`` opens its end of the line, a pty pair (``wire.Pty``); the client
(pyserial, or plain ``os.open`` in tests) opens ``fake.port``, the slave path. The fake reads
and writes from the running asyncio loop; it never blocks. The boot banner sent by ``start()``
waits in the pty until a client reads it, but pyserial's ``open()`` flushes pending input, so a
pyserial client that opens after ``start()`` misses it (as with a board that booted before the
port was opened): use ``reboot()`` to see one.

Bytes cross the line through the two pacers of ``wire`` (one per direction). On a paced line
the fake is an ideal modem that needs no time to think: what it writes in direct answer to
input (echo, result codes, the prompt, the result after a payload) starts on the wire when that
input's last byte had arrived, so the fake's own Python time is not charged to the line
(``_answer_from``); output after a real wait (network I/O, an injected delay) starts when it is
written.

Received bytes collect in one buffer, which is the modem's UART FIFO. When the interpreter is
idle it cuts the next command line out of it (``wire.LineReader``, with the dialect's line
rules), echoes the line's bytes exactly as received if echo is on, and runs it (one
``_Exchange`` per command):

    line -> text before the first "AT" dropped -> override? -> dialect syntax check
         -> Command -> handler -> Response -> bytes

A line of several commands after one ``AT`` (V.250 concatenation, ``AT+CIFSR;E0``) runs them
in order where the dialect allows it (``Dialect.concatenation``, ``grammar.split_commands``):
each one's information text goes out as it runs, the line's final result code is its last
command's, and the first error ends the line with that error. A line is only split when it
does not parse as one command or has a ``;`` in it, so a one-command line costs nothing more.

A line with no ``AT`` at all is ignored (generic, V.250: characters before the prefix are
discarded) or answered ``ERROR`` (the nRF91 SLM), as the dialect says. Unknown commands and
malformed lines answer a plain ``ERROR`` whatever AT+CMEE says; bad parameter values answer
CME 50 (Incorrect parameters); AT+CMEE shapes CME errors. Input is decoded as Latin-1, so no
byte value can raise.

A handler is looked up by command name (``"+CGSN"``, ``"#XSLMVER"``, ``"E"`` for ATE, ``""``
for a bare AT): first the test's ``on_command`` overrides, then the dialect's table, then the
generic 3GPP TS 27.007 table (``generic``). A handler returns a ``Response``, ``None`` (no
response), or an awaitable of either (for commands that wait on I/O; such a handler may also
read raw bytes with ``read_raw``/``read_until`` and answer early with ``respond_now``). While a
command runs, later command lines wait in the buffer, as on a real modem.

State changes a command causes on the air (registration after AT+CFUN=1, for instance) are
queued with ``after_response`` so their URCs follow the command's final result code.

Faults (``faults.FaultControls``, inherited) are consumed per command from ``PendingFaults``:
dropped responses (the command still runs and its URCs still follow), delayed responses (the
command is echoed at once, runs and answers later), a URC inside the next response; a reboot
loses pending input, unsent output, timers, held URCs and the command in progress, like a
brown-out.

A reboot (``reboot()``, the dialect's reset command, a reboot fault) is not instant: the
power-on state is set at once, then for ``boot_time`` seconds the UART is dead and every byte
received is lost, and only then the boot banner goes out and the modem listens (and a modem
that powers on in CFUN=1 starts its search). Real modules: the SIM800's serial port is
undefined for more than 1.4 s after power-on and ``RDY`` says it is ready (SIM800 Hardware
Design V1.09 §4.2.1, "Timing of power on module"); Zephyr's SIM7080 driver waits 5 s after
the PWRKEY pulse (at-dialects.md §5.1); the nRF91 SLM/SM answer ``AT#XRESET`` with ``OK``,
reset the SiP and print ``Ready`` once the application's AT host runs again (ncs-serial-modem
``doc/app/at_generic.rst`` #XRESET; ``Ready`` is ``SM_SYNC_STR``, ``app/src/sm_at_host.c``),
hundreds of milliseconds later. The default window (``BOOT_TIME``) is shorter, to keep the
tests fast, and a modem that prints no banner at power-on (an auto-bauding SIMCom module)
gets none by default: its host, with no banner to wait for, syncs by sending ``AT`` (which a
real module booting would lose; give it ``boot_time`` to model that). ``start()`` is a modem
that booted before the port was opened: no window. A USB
modem (``by_id``) boots while it is off the bus (``reenumerate_delay``): nothing can be
written to it meanwhile, so it has no window of its own.

With ``by_id`` (a directory) the fake is a USB modem seen through ``/dev/serial/by-id/``: the
client opens the symlink ``fake.device`` there, and every reset (the dialect's reset command,
``reboot()``) re-enumerates it: the symlink goes, the old pty hangs up (the client reads end of
file), and after ``reenumerate_delay`` the symlink comes back naming a new pty, on which the
modem boots.

Everything runs on the loop that called ``start()``; the public methods are meant to be called
from that loop (the test's task), not from other threads.

This module is above 800 lines because the engine is one job: the exchange of a command
(echo, pacing of the answer, dispatch, delayed and raw-reading handlers, response, the actions
after it) is one state machine over the same buffers; splitting it would spread that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from .faults import FaultControls, PendingFaults
from .grammar import (
    AT_PREFIX_RE,
    CME_ERROR_TEXT,
    CRLF,
    Command,
    CommandError,
    Handler,
    HandlerResult,
    Response,
    frame_line,
    parse_command,
    split_commands,
)
from .radio import RadioSettings
from .registry import DIALECTS, GENERIC_COMMANDS, Dialect, Identity, Network
from .scenarios import RadioControls, Scenario, check_scenario, scenario_network
from .wire import HotLine, LineReader, Pacer, Pty

__all__ = [
    "BOOT_TIME",
    "COMMAND_HISTORY",
    "DIALECTS",
    "CommandHistory",
    "CommandMatch",
    "FakeModem",
    "ModemState",
    "PdpContext",
    "Response",
]

log = logging.getLogger("tests.fakes")

#: Seconds from a USB modem's reset until its old line hangs up (``by_id``).
_USB_DETACH_SECONDS = 0.05
#: Timer handles :meth:`FakeModem.call_later` keeps before it first drops cancelled ones.
_TIMERS_PRUNE_FLOOR = 64
#: Seconds a rebooting fake's UART is dead by default (``FakeModem(boot_time=...)``): the real
#: modules take hundreds of milliseconds to seconds (module docstring); a test suite that
#: reboots fakes hundreds of times cannot, and a few tens of milliseconds are enough for a
#: host's bytes written right after a reset to meet a modem that is not listening.
BOOT_TIME = 0.05
#: Command lines a fake keeps by default (``FakeModem(command_history=...)``): far more than
#: any test sends, a bounded few hundred kilobytes for a soak of millions.
COMMAND_HISTORY = 10_000


@dataclass
class PdpContext:
    """One AT+CGDCONT entry."""

    pdp_type: str
    apn: str


@dataclass
class ModemState:
    """Everything a power cycle resets."""

    echo: bool
    cfun: int
    cmee: int = 0
    cereg_n: int = 0
    cgreg_n: int = 0
    creg_n: int = 0
    stat: int = 0
    tac: str | None = None
    ci: str | None = None
    act: int = 7
    cause_type: int | None = None
    reject_cause: int | None = None
    active_time: str | None = None
    periodic_tau: str | None = None
    cops_mode: int = 0
    cops_format: int = 2
    contexts: dict[int, PdpContext] = field(default_factory=dict)
    radio: RadioSettings = field(default_factory=RadioSettings)

    @property
    def registered(self) -> bool:
        """Registered on the home network or roaming (stat 1 or 5, on the RAT's commands)."""
        return self.stat in (1, 5)

    def level(self, source: str) -> int:
        """The notification level ``AT<source>=<n>`` set (``"+CEREG"``, ``"+CGREG"``...)."""
        return {"+CEREG": self.cereg_n, "+CGREG": self.cgreg_n, "+CREG": self.creg_n}[source]


#: The radio access technologies a fake can camp on: the registration commands that
#: report it (TS 27.007: +CEREG for EPS, +CGREG packet service, +CREG circuit-switched)
#: and the ``<AcT>`` they give (None: the network's, 7 LTE-M or 9 NB-IoT).
RATS: dict[str, tuple[frozenset[str], int | None]] = {
    "lte": (frozenset({"+CEREG"}), None),
    "nbiot": (frozenset({"+CEREG"}), None),
    "gprs": (frozenset({"+CGREG", "+CREG"}), 0),
    "gsm": (frozenset({"+CREG"}), 0),
    "wcdma": (frozenset({"+CGREG", "+CREG"}), 2),
}


class CommandHistory(list[str]):
    """The command lines a fake received, oldest first: a ``list`` that forgets old lines.

    It keeps at least the most recent ``keep`` lines and never more than twice that: when it
    reaches twice ``keep`` it forgets the older half in one go (amortised O(1) a line; a list
    that dropped one line at a time would move all the others for every command, and a
    ``deque`` is no list to the tests that index, slice and compare it). Being a list, every
    use of a list works; positions count from the oldest line kept, so a position taken as a
    mark (``start = len(fake.commands)``) names the same line until the history first
    forgets. A longer run marks with :attr:`total` and reads with :meth:`since`, which says
    so when lines it asks for are gone. :attr:`total` counts every line the engine noted
    since the fake was made; ``clear()`` (a test's) leaves it.
    """

    def __init__(self, keep: int = COMMAND_HISTORY) -> None:
        if keep < 1:
            raise ValueError(f"command history must keep at least 1 line, not {keep}")
        super().__init__()
        #: The most recent lines always kept.
        self.keep = keep
        #: Lines received since the fake was made, kept or not.
        self.total = 0
        #: Lines forgotten because the history was full (not those ``clear()`` removed).
        self.forgotten = 0

    def append(self, line: str) -> None:
        """Note a received line (the engine's); forget the older half when full."""
        super().append(line)
        self.total += 1
        if len(self) >= 2 * self.keep:
            drop = len(self) - self.keep
            del self[:drop]
            self.forgotten += drop

    def since(self, mark: int) -> list[str]:
        """The lines received after the first ``mark`` (a :attr:`total` read earlier);
        LookupError if some of them are no longer kept."""
        if not 0 <= mark <= self.total:
            raise ValueError(f"mark {mark} is not a count of lines so far (0..{self.total})")
        wanted = self.total - mark
        if wanted > len(self):
            raise LookupError(
                f"{wanted - len(self)} of the {wanted} lines since {mark} are no longer kept "
                f"(the history keeps {self.keep}; raise FakeModem(command_history=...))"
            )
        return self[len(self) - wanted :]


@dataclass
class _Exchange:
    """One command between its receipt and its response."""

    line: str
    drop: bool
    delay: float
    after: list[Callable[[], None]] = field(default_factory=list)
    responded: bool = False


_T = TypeVar("_T")
CommandMatch: TypeAlias = str | re.Pattern[str] | Callable[[str], bool]


def _command_predicate(match: CommandMatch) -> Callable[[str], bool]:
    if isinstance(match, str):
        text = match

        def equal(line: str) -> bool:
            return line == text

        return equal
    if isinstance(match, re.Pattern):
        pattern = match

        def matches(line: str) -> bool:
            return pattern.fullmatch(line) is not None

        return matches
    return match


def _default_boot_time(dialect: Dialect) -> float:
    """:data:`BOOT_TIME` when the dialect prints a banner at power-on, else 0."""
    return BOOT_TIME if any(delay <= 0 for delay, _ in dialect.boot_banner) else 0.0


def _information_text(lines: tuple[str | bytes, ...]) -> bytearray:
    """Information text as V.250 frames it: each run of text lines one block
    ``\\r\\n<line>\\r\\n<line>\\r\\n``; a ``bytes`` item verbatim at its place."""
    out = bytearray()
    in_block = False
    for part in lines:
        if isinstance(part, bytes):
            out += part
            in_block = False
        else:
            if not in_block:
                out += CRLF
                in_block = True
            out += part.encode("latin-1", errors="replace") + CRLF
    return out


async def _ready(result: HandlerResult) -> HandlerResult:
    return result


def _command_key(name: str) -> str:
    """Normalise ``"AT+CGDCONT"``, ``"+cgdcont"``, ``"ATE"`` to a handler key."""
    key = name.strip().upper()
    for stop in "=?":
        key = key.split(stop, 1)[0]
    if key.startswith("AT"):
        key = key[2:]
    return key


class FakeModem(FaultControls, RadioControls):
    """A fake cellular modem on a real pty. See the module docstring for how it works.

    ``dialect`` is a registered dialect name or a ``Dialect``. ``registration_delay`` is the
    time from AT+CFUN=1 (+CEREG stat 2, searching) to stat 1 (registered). ``baud`` paces
    both directions at 10 bits per byte (None: no pacing). ``echo`` and ``cfun`` override the
    dialect's power-on defaults (and stay the power-on defaults across reboots). ``sim``
    says whether a SIM card is inserted. ``identity`` and ``network`` override the dialect's
    identity strings and the network the fake registers on. ``hot_line`` (with ``baud``, for
    benchmarks) keeps polling the pty for a few milliseconds after each byte instead of
    sleeping, so the fake's own wake-up latency is not charged to the paced line.

    ``rat`` is the radio the fake camps on (:data:`RATS`): ``lte`` (the default, LTE-M, AcT 7)
    and ``nbiot`` (an NB-IoT cell, AcT 9) register on +CEREG only; ``gprs`` and ``wcdma`` on
    +CGREG and +CREG (AcT 0 and 2), ``gsm`` on +CREG alone; the other commands say "not
    registered" (stat 0) once it is registered, as a SIM7000 on GPRS answers +CEREG. The
    field-scenario keywords (``deny``, ``no_service``, ``roaming``, ``rsrp_series``, ...) are
    a ``scenarios.Scenario``. Any other keyword is an option of the dialect
    (``model="SIM800"``): it must be one the dialect declares (``Dialect.options``) and is
    kept in :attr:`options` for the dialect's handlers.

    ``by_id`` (a directory) serves the modem through a symlink there (:attr:`device`) that
    vanishes on every reset and comes back ``reenumerate_delay`` seconds later naming a new
    pty, as a USB modem re-enumerates under the same ``/dev/serial/by-id/`` name.

    ``boot_time`` is how long a reboot keeps the UART dead (input lost) before the boot
    banner (0: the banner at once). The default is :data:`BOOT_TIME` for a modem that prints
    a banner at power-on, and 0 for one that prints none (auto-bauding): its host has no
    banner to wait for and syncs with ``AT``.

    :attr:`commands` (a :class:`CommandHistory`, a list) keeps the most recent
    ``command_history`` command lines received at least and twice that at most (default
    :data:`COMMAND_HISTORY`), so a soak of millions of commands does not keep them all.
    """

    def __init__(
        self,
        dialect: str | Dialect = "nrf91-slm",
        *,
        registration_delay: float = 0.0,
        baud: int | None = None,
        echo: bool | None = None,
        cfun: int | None = None,
        sim: bool = True,
        identity: Identity | None = None,
        network: Network | None = None,
        hot_line: bool = False,
        rat: str = "lte",
        by_id: str | os.PathLike[str] | None = None,
        reenumerate_delay: float = 0.05,
        command_history: int = COMMAND_HISTORY,
        boot_time: float | None = None,
        **options: object,
    ) -> None:
        if isinstance(dialect, str):
            try:
                dialect = DIALECTS[dialect]
            except KeyError:
                known = ", ".join(sorted(DIALECTS))
                raise ValueError(f"unknown dialect {dialect!r}; known: {known}") from None
        if cfun is not None and cfun not in dialect.cfun_modes:
            raise ValueError(f"cfun {cfun} is not one of {dialect.cfun_modes}")
        if rat not in RATS:
            raise ValueError(f"unknown rat {rat!r}; known: {', '.join(RATS)}")
        if boot_time is not None and not boot_time >= 0:
            raise ValueError(f"boot_time must be 0 or more seconds, not {boot_time!r}")
        if dialect.rats is not None and rat not in dialect.rats:
            rats = ", ".join(sorted(dialect.rats))
            raise ValueError(f"{dialect.name} has no {rat} radio; it has: {rats}")
        #: The field scenario it plays (``scenarios.Scenario``: deny, no_service, roaming...).
        self.scenario = Scenario.take(options)
        check_scenario(self.scenario, dialect)
        unknown = sorted(set(options) - set(dialect.options))
        if unknown:
            known = ", ".join(sorted(dialect.options)) or "none"
            raise ValueError(f"{dialect.name} has no option {', '.join(unknown)}; known: {known}")
        self.dialect = dialect
        #: The radio access technology it camps on (a key of :data:`RATS`).
        self.rat = rat
        #: The dialect's own options (``model="SIM800"``), as given.
        self.options: dict[str, object] = dict(options)
        self._by_id = (
            None
            if by_id is None
            else os.path.join(os.fspath(by_id), f"usb-atbridge_Fake_{dialect.name}_0001-if00")
        )
        self.reenumerate_delay = reenumerate_delay
        #: Seconds from a reboot until the UART listens again and the banner goes out.
        self.boot_time = _default_boot_time(dialect) if boot_time is None else boot_time
        self._booting = False
        #: How many times the device node went away and came back (``by_id``).
        self.enumerations = 0
        self._resetting = False
        self._present = asyncio.Event()
        self.identity = identity or dialect.identity
        self.network = scenario_network(network, rat, self.scenario, self.identity)
        self.registration_delay = registration_delay
        self.sim_inserted = sim
        self.boot_echo = dialect.default_echo if echo is None else echo
        self.boot_cfun = dialect.boot_cfun if cfun is None else cfun
        self.rsrp_index = 62
        self.rsrq_index = 31
        #: The command lines received, at least the most recent ``command_history``.
        self.commands = CommandHistory(command_history)
        self.state = ModemState(echo=self.boot_echo, cfun=self.boot_cfun)
        self.dialect_state: object = None

        self._baud = baud
        self.hot_line = hot_line
        self._hot: HotLine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pty: Pty | None = None
        self._rx = bytearray()
        self._reader = LineReader(
            dialect.terminator,
            quote_aware=dialect.quote_aware,
            backspace=dialect.backspace,
            max_line=dialect.max_line,
        )
        self._tx: Pacer | None = None
        self._rx_pacer: Pacer | None = None
        # Unpaced, the bytes of one response and of the actions after it, held to go to the
        # pty in one write (see _send_response); None when not holding.
        self._held_output: bytearray | None = None
        # What is written in direct answer to input starts on the wire when that input had
        # arrived: (the task answering or None, the wire time). See _answer_from.
        self._answer: tuple[asyncio.Task[Any] | None, float] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        #: Size of ``_timers`` above which :meth:`call_later` drops cancelled handles.
        self._timers_prune_at = _TIMERS_PRUNE_FLOOR
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registration_timer: asyncio.TimerHandle | None = None
        self._exchange: _Exchange | None = None
        self._busy = False
        self._draining = False
        self._raw_waiter: tuple[Callable[[bytearray], bytes | None], asyncio.Future[bytes]] | None
        self._raw_waiter = None
        self._pending = PendingFaults()
        self._overrides: dict[str, tuple[Handler | Response, int | None]] = {}
        self._command_waiters: list[tuple[Callable[[str], bool], asyncio.Future[str]]] = []
        self._stopped = False

    # ---- lifecycle

    async def start(self) -> None:
        """Create the pty, then power on: boot banner, power-on state."""
        if self._pty is not None:
            raise RuntimeError("fake modem already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._hot = HotLine(loop, lambda: self._live)
        self._open_line()
        self._power_on(None)
        log.debug("fake %s modem on %s", self.dialect.name, self.device)

    def _open_line(self) -> None:
        """A new pty with its two pacers (and the by-id symlink naming it)."""
        loop = self._require_loop()
        # A hot line polls the loop anyway: its pacers spin on the loop's own timers.
        fine = not self.hot_line
        self._rx_pacer = Pacer(loop, self._on_rx_bytes, fine_timer=fine)
        self._pty = Pty(loop, self._rx_pacer.push, on_activity=self._keep_hot)
        self._tx = Pacer(loop, self._pty.write, fine_timer=fine)
        self.set_baud(self._baud)
        if self._by_id is not None:
            self._unlink_by_id()
            os.symlink(self._pty.path, self._by_id)
        self._present.set()

    def _unlink_by_id(self) -> None:
        self._present.clear()
        if self._by_id is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._by_id)

    async def stop(self) -> None:
        """Cancel every timer and task and close the pty. Safe to call twice."""
        if self._loop is None or self._stopped:
            return
        self._stopped = True
        self._close_pty()  # from here on nothing reaches the pty
        self._unlink_by_id()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for _, future in self._command_waiters:
            future.cancel()
        if self.dialect.on_stop is not None:
            await self.dialect.on_stop(self)
        await self.scenario_stop()

    async def __aenter__(self) -> FakeModem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> str:
        """The pty slave path (``/dev/pts/N``) a client opens."""
        if self._pty is None:
            raise RuntimeError("fake modem not started")
        return self._pty.path

    async def wait_for_device(self, timeout: float = 5.0) -> str:
        """Wait (at most ``timeout`` s) until the device node is there; return :attr:`device`."""
        async with asyncio.timeout(timeout):
            await self._present.wait()
        return self.device

    @property
    def device(self) -> str:
        """The path a client opens: the by-id symlink with ``by_id``, else :attr:`port`."""
        return self.port if self._by_id is None else self._by_id

    @property
    def bytes_in(self) -> int:
        """Bytes received from the host so far."""
        return 0 if self._pty is None else self._pty.bytes_in

    @property
    def bytes_out(self) -> int:
        """Bytes written to the host so far."""
        return 0 if self._pty is None else self._pty.bytes_out

    @property
    def _live(self) -> bool:
        """Started, and the pty not closed (by ``stop()`` or ``drop_link()``)."""
        return self._pty is not None and self._pty.is_open

    @property
    def booting(self) -> bool:
        """Rebooting: the UART is dead (input lost) until the boot banner."""
        return self._booting

    @property
    def baud(self) -> int | None:
        """The pacing baud rate, None when unpaced."""
        return self._baud

    # ---- test controls

    def set_echo(self, on: bool) -> None:
        """Turn command echo on or off now, whatever the dialect supports."""
        self.state.echo = on

    def set_baud(self, baud: int | None) -> None:
        """Pace both directions at ``baud`` (8N1: 10 bits a byte), or stop pacing (None)."""
        if baud is not None and baud <= 0:
            raise ValueError("baud must be positive")
        self._release_output()  # what was written before goes out at the rate it was written
        self._baud = baud
        rate = None if baud is None else baud / 10.0
        if self._tx is not None and self._rx_pacer is not None:
            self._tx.set_rate(rate)
            self._rx_pacer.set_rate(rate)

    def set_registration(
        self,
        stat: int,
        reject_cause: int | None = None,
        *,
        tac: str | None = None,
        ci: str | None = None,
        act: int | None = None,
    ) -> None:
        """Force the +CEREG stat (and EMM reject cause) now, stopping any registration in
        progress; sends the +CEREG URC if AT+CEREG enabled one. Stat 1 and 5 carry the
        network's cell (or ``tac``/``ci``/``act``)."""
        self._cancel_registration_timer()
        s = self.state
        located = stat in (1, 5) or tac is not None
        s.tac = (tac or self.network.tac) if located else None
        s.ci = (ci or self.network.ci) if located else None
        s.act = self.network.act if act is None else act
        s.stat = stat
        s.cause_type = None if reject_cause is None else 0
        s.reject_cause = reject_cause
        self._send_cereg_urc()
        self.radio_event("registration")

    def set_signal(self, rsrp_index: int, rsrq_index: int) -> None:
        """Signal reported by +CESQ while registered: RSRP index 0..97 (dBm = index - 140) and
        RSRQ index 0..34 (dB = index / 2 - 20); 255 = unknown."""
        if not (0 <= rsrp_index <= 97 or rsrp_index == 255):
            raise ValueError("rsrp_index must be 0..97 or 255")
        if not (0 <= rsrq_index <= 34 or rsrq_index == 255):
            raise ValueError("rsrq_index must be 0..34 or 255")
        self.rsrp_index, self.rsrq_index = rsrp_index, rsrq_index
        self.radio_event("signal")

    def set_sim(self, inserted: bool) -> None:
        """Insert or remove the SIM card (takes effect for the next SIM access)."""
        self.sim_inserted = inserted

    def set_psm(self, active_time: str | None, periodic_tau: str | None) -> None:
        """PSM timers granted by the network (8-character bit strings), shown by +CEREG at
        levels 4 and 5 while registered; None, None for no PSM."""
        self.state.active_time, self.state.periodic_tau = active_time, periodic_tau

    def on_command(
        self, name: str, handler: Handler | Response, *, times: int | None = None
    ) -> None:
        """Override one command (``"AT+CGDCONT"``, ``"+CGDCONT"``, ``"ATE"``...) with a handler
        or a fixed Response, for ``times`` uses (None: until cleared). A handler can fall back
        to the normal behaviour with ``fake.run_default(cmd)``."""
        self._overrides[_command_key(name)] = (handler, times)

    def clear_on_command(self, name: str) -> None:
        """Remove an ``on_command`` override."""
        self._overrides.pop(_command_key(name), None)

    async def wait_for_command(
        self, match: CommandMatch, *, timeout: float = 5.0, start: int = 0
    ) -> str:
        """Return the first received command line (``commands[start:]``, then new ones) equal
        to ``match`` (a str), matching it (a compiled regex, ``fullmatch``) or accepted by it
        (a callable); TimeoutError after ``timeout`` seconds."""
        predicate = _command_predicate(match)
        for line in self.commands[start:]:
            if predicate(line):
                return line
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._command_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._command_waiters.remove(waiter)

    # ---- for dialect scripts

    def write_raw(self, data: bytes) -> None:
        """Queue bytes for the wire (paced if a baud rate is set)."""
        if self._tx is None or not self._live:
            raise RuntimeError("fake modem not started")
        if self._held_output is not None:
            self._held_output += data
            return
        answer = self._answer
        since = None
        if answer is not None and answer[0] is asyncio.current_task(self._require_loop()):
            since = answer[1]
        self._tx.push(data, since)

    def after_response(self, action: Callable[[], None]) -> None:
        """Run ``action`` right after the current command's response is sent (or dropped);
        at once when no command is in progress."""
        if self._exchange is not None and not self._exchange.responded:
            self._exchange.after.append(action)
        else:
            action()

    def after_output(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every byte queued so far is on the wire (at once when unpaced):
        an orderly reset sends its ``OK`` before it reboots.

        "At once" is in this call, not a loop turn later: a modem that reboots right after
        its prompt is deaf from the moment the prompt is out (its banner follows after
        ``boot_time``), as a real module that resets as it asks for the payload."""
        assert self._tx is not None
        self._release_output()
        delay = self._tx.drained_at() - self._require_loop().time()
        if delay <= 0:
            action()
        else:
            self.call_later(delay, action)

    def respond_now(self, response: Response) -> None:
        """Send the current command's response before its handler returns (an async handler
        that goes on to read raw bytes after ``OK``); the handler then returns None."""
        if self._exchange is None:
            raise RuntimeError("no command in progress")
        self._send_response(self._exchange, response)

    def discard_stray_line_feed(self) -> None:
        """Drop an LF that followed the current command's CR and has already arrived.

        A V.250 modem ignores it as part of the line ending; a payload the host writes
        after seeing the prompt starts after it. Call it just before sending a prompt."""
        if self._rx[:1] == b"\n":
            del self._rx[:1]

    async def read_raw(self, count: int) -> bytes:
        """Take exactly ``count`` received bytes, bypassing the line reader (binary payloads
        after a ``> `` prompt). Only while a command is in progress."""

        def take(rx: bytearray) -> bytes | None:
            if len(rx) < count:
                return None
            data = bytes(rx[:count])
            del rx[:count]
            return data

        return await self._wait_raw(take)

    async def read_some(self) -> bytes:
        """Take every received byte, waiting for at least one, bypassing the line reader (a
        reader that looks at each byte, such as data mode's terminator match, without a read
        per byte). Only while a command is in progress; :meth:`unread` gives back what it
        did not use."""

        def take(rx: bytearray) -> bytes | None:
            if not rx:
                return None
            data = bytes(rx)
            rx.clear()
            return data

        return await self._wait_raw(take)

    def unread(self, data: bytes) -> None:
        """Put ``data`` back before the received bytes not taken yet (the rest of a
        :meth:`read_some` chunk after what the reader consumed: the next command line)."""
        self._rx[:0] = data

    async def read_until(self, terminator: bytes) -> bytes:
        """Take received bytes up to ``terminator`` (consumed, not returned), bypassing the
        line reader (data mode ended by ``+++``). Only while a command is in progress."""

        def take(rx: bytearray) -> bytes | None:
            index = rx.find(terminator)
            if index < 0:
                return None
            data = bytes(rx[:index])
            del rx[: index + len(terminator)]
            return data

        return await self._wait_raw(take)

    def call_later(
        self, delay: float, action: Callable[..., None], *args: Any
    ) -> asyncio.TimerHandle:
        """``loop.call_later`` whose timer a reboot or ``stop()`` cancels."""
        loop = self._require_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            action(*args)

        handle = loop.call_later(delay, fire)
        timers = self._timers
        timers.add(handle)
        if len(timers) > self._timers_prune_at:
            # A handle its caller cancelled never fires, so ``fire`` never discards it: an
            # idle timer re-armed for every read would pile them up. Drop the cancelled ones
            # whenever the set doubles (amortised O(1) a call).
            self._timers = {kept for kept in timers if not kept.cancelled()}
            self._timers_prune_at = max(_TIMERS_PRUNE_FLOOR, 2 * len(self._timers))
        return handle

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T | None]:
        """Run ``coro`` as a task that a reboot or ``stop()`` cancels; errors are logged (the
        task then ends with None)."""
        task = self._require_loop().create_task(self._tracked(coro))
        self._tasks.add(task)
        return task

    async def _tracked(self, coro: Coroutine[Any, Any, _T]) -> _T | None:
        # Forgotten and its error logged as it ends, in its own last step: a done callback
        # would cost the loop one more turn for every command that waits.
        task = asyncio.current_task()
        try:
            return await coro
        except Exception:
            log.exception("fake modem task failed")
            return None
        finally:
            self._tasks.discard(task)

    def run_default(self, cmd: Command) -> HandlerResult | Awaitable[HandlerResult]:
        """Run the dialect's or the generic handler for ``cmd``, skipping overrides."""
        handler = self._default_handler(cmd.name)
        if handler is None:
            return Response.error()
        return handler(self, cmd)

    def dialect_state_as(self, kind: type[_T]) -> _T:
        """``dialect_state``, checked to be a ``kind``."""
        if not isinstance(self.dialect_state, kind):
            raise TypeError(f"dialect state is {type(self.dialect_state).__name__}")
        return self.dialect_state

    def check_sim(self) -> None:
        """CME 10 if no SIM is inserted; the dialect's error if the SIM is not powered."""
        if not self.sim_inserted:
            raise CommandError(10)
        if self.state.cfun not in self.dialect.sim_powered_cfun:
            raise CommandError(self.dialect.sim_off_error)

    def format_error(self, code: int | None) -> str:
        """The final result code for an error under the current AT+CMEE setting."""
        if code is None or self.state.cmee == 0:
            return "ERROR"
        if self.state.cmee == 2 and code in CME_ERROR_TEXT:
            return f"+CME ERROR: {CME_ERROR_TEXT[code]}"
        return f"+CME ERROR: {code}"

    # ---- registration (used by the generic commands)

    def begin_registration(self) -> None:
        """Start searching (+CEREG stat 2) and register after ``registration_delay``; with no
        SIM, report the dialect's no-SIM stat instead."""
        self._cancel_registration_timer()
        if not self.sim_inserted:
            self._update_registration(self.dialect.no_sim_stat, located=False)
            return
        self._update_registration(2, located=False)
        self._registration_timer = self.call_later(
            self.registration_delay, self._complete_registration
        )

    def stop_registration(self) -> None:
        """Leave the network: +CEREG stat 0."""
        self._cancel_registration_timer()
        self._update_registration(0, located=False)

    def reports_on(self, source: str) -> bool:
        """Whether ``source`` (``"+CEREG"``...) carries the registration on this fake's RAT."""
        return source in RATS[self.rat][0]

    @property
    def act(self) -> int:
        """The ``<AcT>`` of the cell it is on (+COPS, the registration commands)."""
        act = RATS[self.rat][1]
        return self.state.act if act is None else act

    def registration_fields(self, source: str, n: int) -> str:
        """``+CGREG``/``+CREG`` fields after ``<n>`` (read) or the colon (URC), at level ``n``.

        ``+CEREG`` is :meth:`cereg_fields`. A command that does not carry the RAT says
        stat 0 once registered elsewhere (searching and denied show on every one).
        """
        if source == "+CEREG":
            return self.cereg_fields(n)
        s = self.state
        if not self.reports_on(source):
            return "0" if s.registered else str(s.stat)
        fields = [str(s.stat)]
        if n >= 2 and s.tac is not None:
            fields += [f'"{s.tac}"', f'"{s.ci}"', str(self.act)]
            if source == "+CGREG":
                fields.append('"01"')  # <rac>
        if n == 3 and s.reject_cause is not None:
            if len(fields) == 1:
                fields += ["", "", ""] + ([""] if source == "+CGREG" else [])
            fields += [str(s.cause_type), str(s.reject_cause)]
        return ",".join(fields)

    def cereg_fields(self, n: int) -> str:
        """+CEREG fields after ``<n>`` (read) or after the colon (URC), shaped by level ``n``."""
        s = self.state
        if not self.reports_on("+CEREG"):
            return "0" if s.registered else str(s.stat)
        fields = [str(s.stat)]
        if n < 2:
            return fields[0]
        location = [f'"{s.tac}"', f'"{s.ci}"', str(s.act)] if s.tac is not None else ["", "", ""]
        show_cause = n in (3, 5) and s.reject_cause is not None
        show_psm = n >= 4 and s.registered and s.active_time is not None
        tail = list(location)
        if show_cause or show_psm:
            tail += [str(s.cause_type), str(s.reject_cause)] if show_cause else ["", ""]
        if show_psm:
            tail += [f'"{s.active_time}"', f'"{s.periodic_tau}"']
        if any(tail):
            fields += tail
        return ",".join(fields)

    # ---- internals: power

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("fake modem not started")
        return self._loop

    def _power_cycle(self, banner: str | bytes | None) -> None:
        """``reboot()``: what a brown-out loses, then power-on (re-enumerated with ``by_id``)."""
        self._lose_power("reboot")
        if self._by_id is None:
            self._boot(banner)
            return
        # USB: the device node goes with the reset and a new one comes back later. The old
        # line hangs up a moment after the reset (as the USB device drops off the bus): what
        # was written before it (the OK of the reset command) reaches the host first, since a
        # hang-up flushes what the host has not read yet. Meanwhile input goes nowhere.
        self._unlink_by_id()
        self._resetting = True
        self.call_later(_USB_DETACH_SECONDS, self._detached, banner)

    def _detached(self, banner: str | bytes | None) -> None:
        self._close_pty()
        self._resetting = False
        self.call_later(self.reenumerate_delay, self._reenumerated, banner)

    def _reenumerated(self, banner: str | bytes | None) -> None:
        if self._stopped:
            return
        self.enumerations += 1
        self._open_line()
        log.debug("fake %s modem re-enumerated on %s", self.dialect.name, self._pty_path())
        self._power_on(banner)

    def _pty_path(self) -> str:
        return "" if self._pty is None else self._pty.path

    def _hang_up(self) -> None:
        """``drop_link()``: what a brown-out loses, then the pty closes for good."""
        self._lose_power("link dropped")
        self._close_pty()

    def _lose_power(self, why: str) -> None:
        """Sockets, timers, tasks, pending bytes and the command in progress go."""
        if not self._live:
            raise RuntimeError("fake modem not started")
        log.debug(why)
        if self.dialect.on_reboot is not None:
            self.dialect.on_reboot(self)
        self._cancel_activity()
        self._cancel_tasks()

    def _cancel_tasks(self) -> None:
        current = asyncio.current_task() if self._loop is not None else None
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def _close_pty(self) -> None:
        if not self._live:
            return
        self._cancel_activity()
        assert self._pty is not None
        self._pty.close()
        for pacer in (self._tx, self._rx_pacer):
            if pacer is not None:
                pacer.close()

    def _boot(self, banner: str | bytes | None) -> None:
        """A reboot on a UART: the power-on state now, then ``boot_time`` seconds in which
        received bytes are lost (``_on_rx_bytes``), then the banner (``_booted``)."""
        if self.boot_time <= 0:
            self._power_on(banner)
            return
        self._reset_state()
        self._booting = True
        self.call_later(self.boot_time, self._booted, banner)

    def _booted(self, banner: str | bytes | None) -> None:
        self._booting = False
        self._announce(banner)

    def _power_on(self, banner: str | bytes | None) -> None:
        self._reset_state()
        self._announce(banner)

    def _reset_state(self) -> None:
        self.state = ModemState(echo=self.boot_echo, cfun=self.boot_cfun, act=self.network.act)
        self.state.contexts = {
            cid: PdpContext(pdp_type, apn)
            for cid, (pdp_type, apn) in self.dialect.default_contexts.items()
        }
        self.dialect_state = self.dialect.new_state()
        self.scenario_power_on()

    def _announce(self, banner: str | bytes | None) -> None:
        """The end of a boot: the banner, and the search if it powers on in CFUN=1."""
        if banner is None:
            for delay, text in self.dialect.boot_banner:
                if delay <= 0:
                    self.write_raw(self.dialect.frame_banner(text))
                else:
                    self.call_later(delay, self.write_raw, self.dialect.frame_banner(text))
        elif isinstance(banner, bytes):
            self.write_raw(banner)
        else:
            self.write_raw(self.dialect.frame_banner(banner))
        if self.state.cfun == 1:
            self.begin_registration()

    def _cancel_activity(self) -> None:
        self._release_output()  # written before the power went: already on its way
        if self._hot is not None:
            self._hot.cancel()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._registration_timer = None
        if self._tx is not None:
            self._tx.clear()
        if self._rx_pacer is not None:
            self._rx_pacer.clear()
        if self._pty is not None:
            self._pty.discard_output()
        self._rx.clear()
        self._reader.reset()
        if self._raw_waiter is not None:
            self._raw_waiter[1].cancel()
            self._raw_waiter = None
        self._exchange = None
        self._busy = False
        self._booting = False
        self._pending.held_urcs = None

    # ---- internals: registration

    def _cancel_registration_timer(self) -> None:
        if self._registration_timer is not None:
            self._registration_timer.cancel()
            self._timers.discard(self._registration_timer)
            self._registration_timer = None

    def _complete_registration(self) -> None:
        self._registration_timer = None
        self.complete_registration()

    def _update_registration(self, stat: int, *, located: bool) -> None:
        s = self.state
        tac = self.network.tac if located else None
        ci = self.network.ci if located else None
        stat_changed = s.stat != stat
        changed = stat_changed or (s.tac, s.ci) != (tac, ci) or s.reject_cause is not None
        s.stat, s.tac, s.ci = stat, tac, ci
        s.act = self.network.act
        s.cause_type = s.reject_cause = None
        if stat_changed or changed:
            self._send_cereg_urc(location_changed=not stat_changed)
            self.radio_event("registration")

    def _send_cereg_urc(self, *, location_changed: bool = False) -> None:
        """The registration URC of each command with notifications on (+CEREG, +CGREG,
        +CREG); a change of cell alone only at level 2 and above."""
        for source in ("+CEREG", "+CGREG", "+CREG"):
            n = self.state.level(source)
            if n > 0 and not (location_changed and n < 2):
                self.send_urc(f"{source}: " + self.registration_fields(source, n))

    def _keep_hot(self) -> None:
        if self.hot_line and self._baud is not None and self._hot is not None:
            self._hot.poke()

    # ---- internals: input and command execution

    def _on_rx_bytes(self, data: bytes) -> None:
        if self._resetting or self._booting:
            # A USB modem resetting (by_id): nobody reads the old line any more. A modem
            # booting: its UART is not running yet, the bytes are lost.
            return
        self._rx += data
        if self._raw_waiter is not None:
            self._feed_raw_waiter()
        else:
            self._drain()

    async def _wait_raw(self, take: Callable[[bytearray], bytes | None]) -> bytes:
        if self._exchange is None:
            raise RuntimeError("raw reads are only possible while a command is in progress")
        if self._raw_waiter is not None:
            raise RuntimeError("another raw read is in progress")
        self._reader.reset()
        data = take(self._rx)
        if data is None:
            # Not all here yet: wait for the bytes (a byte-at-a-time reader whose bytes
            # have all arrived takes them above, without a future or a loop turn).
            future: asyncio.Future[bytes] = self._require_loop().create_future()
            self._raw_waiter = (take, future)
            data = await future
        assert self._rx_pacer is not None
        self._answer_from(self._rx_pacer.wire_time())
        return data

    def _feed_raw_waiter(self) -> None:
        assert self._raw_waiter is not None
        take, future = self._raw_waiter
        if future.done():
            self._raw_waiter = None
            return
        data = take(self._rx)
        if data is not None:
            self._raw_waiter = None
            future.set_result(data)

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while not self._busy and self._raw_waiter is None and self._live:
                found = self._reader.next_line(self._rx)
                if found is None:
                    break
                self._execute(*found)
        finally:
            self._draining = False

    def _answer_from(self, since: float) -> None:
        """Model an ideal modem, one that needs no time to think: what the current task
        writes before it next yields (the echo and response of a command, the result code
        after a payload) starts on the wire at ``since``, when the input it answers had
        arrived, so the fake's own Python time is not charged to the paced line. Output
        after a wait (a delayed response, a handler that waited on the network) starts when
        it is written, as usual; and never before the line's previous byte is through."""
        if self._baud is None:
            return  # an unpaced line has no wire time to keep
        answer = (asyncio.current_task(self._require_loop()), since)
        self._answer = answer
        self._require_loop().call_soon(self._end_answer, answer)

    def _end_answer(self, answer: tuple[asyncio.Task[Any] | None, float]) -> None:
        if self._answer is answer:
            self._answer = None

    def _execute(self, echo: bytes, raw: bytes, overflow: bool) -> None:
        assert self._rx_pacer is not None
        self._answer_from(self._rx_pacer.wire_time())
        try:
            self._start_exchange(echo, raw, overflow)
        finally:
            self._answer = None

    def _start_exchange(self, echo: bytes, raw: bytes, overflow: bool) -> None:
        line = raw.decode("latin-1")
        self.commands.append(line)
        for predicate, future in self._command_waiters:
            if not future.done() and predicate(line):
                future.set_result(line)
        if self.state.echo:
            self.write_raw(echo)
        drop = self._pending.take_drop()
        delay = self._pending.take_delay()
        exchange = _Exchange(line=line, drop=drop, delay=delay)
        self._exchange = exchange
        self._busy = True
        if delay > 0:
            self.call_later(delay, self._run, exchange, line, overflow)
        else:
            self._run(exchange, line, overflow)

    def _run(self, exchange: _Exchange, line: str, overflow: bool) -> None:
        if exchange is not self._exchange:
            return
        try:
            result = Response.error() if overflow else self._dispatch(line)
        except CommandError as exc:
            result = Response.error(exc.code)
        except Exception:
            log.exception("fake modem handler failed on %r", line)
            result = Response.error()
        if inspect.isawaitable(result):
            assert self._rx_pacer is not None
            # A delayed command is answered from the end of its delay, not from its input.
            if exchange.delay > 0:
                since = self._require_loop().time()
            else:
                since = self._rx_pacer.wire_time()
            self.spawn(self._run_async(exchange, result, since))
        else:
            self._finish(exchange, result)

    async def _run_async(
        self, exchange: _Exchange, pending: Awaitable[HandlerResult], since: float
    ) -> None:
        self._answer_from(since)  # what the handler answers before its first wait
        try:
            result = await pending
        except CommandError as exc:
            result = Response.error(exc.code)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fake modem handler failed on %r", exchange.line)
            result = Response.error()
        self._finish(exchange, result)

    def _finish(self, exchange: _Exchange, result: HandlerResult) -> None:
        if exchange is not self._exchange:
            return
        if result is not None and not exchange.responded:
            self._send_response(exchange, result)
        elif not exchange.responded:
            self._run_after(exchange)
        if exchange is self._exchange:
            self._exchange = None
            self._busy = False
        self._drain()

    def _send_response(self, exchange: _Exchange, response: Response) -> None:
        if exchange.responded:
            raise RuntimeError(f"{exchange.line!r} already answered")
        # Unpaced, the response and what the actions after it write (a send's trailer, URCs)
        # go to the pty in one write, as the UART would stream them: one system call, and one
        # wake-up of the host, instead of one each. (Paced, the pacer batches them.)
        hold = self._baud is None and self._held_output is None
        if hold:
            self._held_output = bytearray()
        try:
            if not exchange.drop:
                self.write_raw(self._encode(response))
            self._run_after(exchange)
        finally:
            if hold:
                self._release_output()

    def _release_output(self) -> None:
        """Write what ``_send_response`` held (at once; dropped if the line is gone)."""
        held, self._held_output = self._held_output, None
        if held and self._live and self._tx is not None:
            self._tx.push(bytes(held))

    def _run_after(self, exchange: _Exchange) -> None:
        exchange.responded = True
        actions, exchange.after = exchange.after, []
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("fake modem after-response action failed on %r", exchange.line)

    def _encode(self, response: Response) -> bytes:
        out = _information_text(response.lines)
        for urc in self._pending.take_mid_response_urcs():
            out += frame_line(urc)
        final = self.format_error(response.error_code) if response.is_error else response.final
        if final is not None:
            out += frame_line(final)
        return bytes(out)

    def _dispatch(self, raw_line: str) -> HandlerResult | Awaitable[HandlerResult]:
        prefix = AT_PREFIX_RE.search(raw_line)
        if prefix is None:
            return Response.error() if self.dialect.non_at_line == "error" else None
        line = raw_line[prefix.start() :]
        cmd = parse_command(line)
        # One command a line is the common case: a line is split only when it does not
        # parse as one command (``ATE0V1``, ``AT+CIFSR;E0``) or has a ``;`` in it
        # (``AT+CFUN=1;+CEREG=5`` parses as one set command with a strange parameter).
        if (cmd is None or ";" in line) and self.dialect.concatenation:
            pieces = split_commands(line)
            if len(pieces) > 1:
                return self._dispatch_all(pieces)
        return self._dispatch_parsed(line, cmd)

    def _dispatch_parsed(
        self, line: str, cmd: Command | None
    ) -> HandlerResult | Awaitable[HandlerResult]:
        """One command (``line`` from its AT prefix on, parsed as ``cmd``): the test's
        override, else the dialect's syntax check and handler."""
        override = None if cmd is None else self._overrides.get(cmd.name)
        if cmd is not None and override is not None:
            handler, times = override
            if times is not None:
                if times <= 1:
                    del self._overrides[cmd.name]
                else:
                    self._overrides[cmd.name] = (handler, times - 1)
            if isinstance(handler, Response):
                return handler
            return handler(self, cmd)
        check = self.dialect.syntax_check
        if cmd is None or (check is not None and not check(line)):
            return Response.error()
        return self.run_default(cmd)

    # ---- internals: concatenated command lines (V.250 §5.2.1, ``Dialect.concatenation``)

    def _dispatch_piece(self, piece: str) -> HandlerResult | Awaitable[HandlerResult]:
        try:
            return self._dispatch_parsed(piece, parse_command(piece))
        except CommandError as exc:
            return Response.error(exc.code)

    def _dispatch_all(self, pieces: list[str]) -> HandlerResult | Awaitable[HandlerResult]:
        """Run the commands of one line in order; from the first that waits on, the rest
        run in a coroutine (``_dispatch_rest``). The line's result is its last command's
        response, or the first error."""
        exchange = self._exchange
        assert exchange is not None
        for index, piece in enumerate(pieces):
            result = self._dispatch_piece(piece)
            if inspect.isawaitable(result):
                return self._dispatch_rest(exchange, result, pieces, index)
            done, final = self._concatenated_step(exchange, result, index == len(pieces) - 1)
            if done:
                return final
        return None  # not reached: the last piece is always done

    async def _dispatch_rest(
        self,
        exchange: _Exchange,
        pending: Awaitable[HandlerResult],
        pieces: list[str],
        index: int,
    ) -> HandlerResult:
        while True:
            try:
                result = await pending
            except CommandError as exc:
                result = Response.error(exc.code)
            done, final = self._concatenated_step(exchange, result, index == len(pieces) - 1)
            if done:
                return final
            index += 1
            following = self._dispatch_piece(pieces[index])
            pending = following if inspect.isawaitable(following) else _ready(following)

    def _concatenated_step(
        self, exchange: _Exchange, result: HandlerResult, last: bool
    ) -> tuple[bool, HandlerResult]:
        """What one command of a concatenated line leaves: (the line is done, its result).

        An error ends the line with it (V.250: the rest of the line is not run). A command
        that answered by itself (``respond_now``: a prompt, data mode) took the line over:
        it ends there. Otherwise its information text goes out now, in order, and its final
        result code is left out: the line has one, the last command's."""
        if exchange.responded:
            return True, None
        if result is None:
            return last, None
        if result.is_error or last:
            return True, result
        if result.lines and not exchange.drop:
            self.write_raw(bytes(_information_text(result.lines)))
        return False, None

    def _default_handler(self, name: str) -> Handler | None:
        if name in self.dialect.handlers:
            return self.dialect.handlers[name]
        return GENERIC_COMMANDS.get(name)
