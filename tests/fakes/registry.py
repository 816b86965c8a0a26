"""The dialect registry: what a modem family is, as data, and the table of known families.

A dialect module builds one ``Dialect`` (line rules, boot banner, power-on defaults, ``Identity``,
command handlers, its own power-on state, its ``NetworkFaults``) and calls ``register_dialect``;
``FakeModem(dialect="<name>")`` looks it up in ``DIALECTS``. ``Network`` is the cell the fake
registers on. ``GENERIC_COMMANDS`` holds the plain 3GPP TS 27.007 handlers (filled by ``generic``)
that every dialect inherits unless its own table replaces or removes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from .faults import NetworkFaults
from .grammar import Handler, frame_line

if TYPE_CHECKING:
    from .core import FakeModem

__all__ = [
    "DIALECTS",
    "GENERIC_COMMANDS",
    "Dialect",
    "Identity",
    "Network",
    "register_dialect",
]


@dataclass(frozen=True)
class Identity:
    """What the identity commands report."""

    manufacturer: str
    model: str
    revision: str
    imei: str
    imsi: str
    iccid: str
    svn: str = "01"


@dataclass(frozen=True)
class Network:
    """The network the fake registers on: its operator, serving cell (``tac``, ``ci``, ``pci``,
    ``earfcn``, ``band``; see ``radio``), access technology, APN, the address it gives the
    default context and its DNS servers."""

    plmn: str = "26201"
    long_name: str = "Fake Network"
    short_name: str = "Fake"
    tac: str = "0A1B"
    ci: str = "01234567"
    act: int = 7
    apn: str = "internet"
    ip: str = "10.0.1.1"
    pci: int = 94
    earfcn: int = 6300
    band: int = 20
    dns: tuple[str, str] = ("10.0.0.53", "10.0.0.54")


def _no_state() -> object:
    return None


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """A modem family as the fake speaks it. Register it with ``register_dialect``.

    A dialect module builds one of these and registers it; the engine reads nothing else.

    - line rules: ``terminator`` ("CR" = S3, a following LF is ignored as a stray byte; "LF";
      "CRLF" = only CR immediately followed by LF ends a line, a lone CR is a character);
      ``quote_aware`` (terminators inside double quotes do not end the line); ``backspace``
      (bytes that delete the previous character); ``max_line`` (longer lines answer ERROR);
      ``non_at_line`` (what a line without an ``AT`` prefix gets: nothing, or ERROR).
    - ``syntax_check``: called with the line from its AT prefix on; False gives plain ERROR.
    - ``boot_banner``: ``(delay_s, text)`` lines sent at power-on, each through
      ``frame_banner``.
    - power-on defaults: ``default_echo``, ``boot_cfun``.
    - ``identity``; ``cfun_modes`` accepted by AT+CFUN; ``sim_powered_cfun`` (CFUN modes in
      which the SIM answers), ``sim_off_error`` (CME code when it does not), ``no_sim_stat``
      (+CEREG stat with CFUN=1 and no SIM); ``cid_range`` and ``default_contexts``
      (cid -> (PDP type, APN)) for AT+CGDCONT.
    - ``handlers``: extra or replacing command handlers keyed by command name (``"#XSLMVER"``);
      a None value removes a generic command.
    - ``new_state``: builds the dialect's own state at every power-on (``fake.dialect_state``);
      ``on_reboot`` runs before a reboot resets the fake (close sockets, ...); ``on_stop`` is
      awaited by ``FakeModem.stop``.
    - ``faults``: how the family reports the network's faults (``NetworkFaults``: data context
      dropped, detach, peer close, refused send/open...); the default has no sockets.
    - ``options``: the names of the family's own ``FakeModem(...)`` keywords (``model``); the
      values are in ``fake.options`` (``python -m tests.fakes --option model=SIM800``).
    - ``on_radio``: called with ``"registration"``, ``"signal"``, ``"search"`` (a network
      search ended without a cell) when they change, for the family's own notifications
      (nRF91 ``%CESQ``, ``%MDMEV``).
    - ``rats``: the ``FakeModem(rat=...)`` values the family's radio has (None: all).
    - ``concatenation``: several commands on one line after one ``AT`` (ITU-T V.250 §5.2.1:
      basic commands back to back, extended ones separated by ``;``; ``grammar.split_commands``)
      run in order, each one's information text in order and one final result code for the
      line; the first error ends the line with that error and the rest does not run. On by
      default, as V.250 has it and the SIMCom manuals document it (SIM800 Series AT Command
      Manual V1.09 §1.4.4); a family whose vendor does not document it turns it off (its
      lines then parse as one command each, and a ``;`` makes them malformed).
    """

    name: str
    description: str = ""
    terminator: Literal["CR", "LF", "CRLF"] = "CR"
    quote_aware: bool = False
    backspace: bytes = b"\x08"
    max_line: int = 4096
    non_at_line: Literal["ignore", "error"] = "ignore"
    syntax_check: Callable[[str], bool] | None = None
    boot_banner: tuple[tuple[float, str], ...] = ()
    frame_banner: Callable[[str], bytes] = frame_line
    default_echo: bool = True
    boot_cfun: int = 1
    identity: Identity
    cfun_modes: tuple[int, ...] = (0, 1, 4)
    sim_powered_cfun: frozenset[int] = frozenset({0, 1, 4})
    sim_off_error: int = 13
    no_sim_stat: int = 0
    cid_range: tuple[int, int] = (1, 15)
    default_contexts: Mapping[int, tuple[str, str]] = field(
        default_factory=lambda: MappingProxyType({1: ("IP", "")})
    )
    handlers: Mapping[str, Handler | None] = field(default_factory=lambda: MappingProxyType({}))
    faults: NetworkFaults = field(default_factory=NetworkFaults)
    new_state: Callable[[], object] = _no_state
    on_reboot: Callable[[FakeModem], None] | None = None
    on_stop: Callable[[FakeModem], Awaitable[None]] | None = None
    options: frozenset[str] = frozenset()
    on_radio: Callable[[FakeModem, str], None] | None = None
    rats: frozenset[str] | None = None
    concatenation: bool = True


#: Every registered dialect by name. Dialect modules add themselves with ``register_dialect``.
DIALECTS: dict[str, Dialect] = {}


def register_dialect(dialect: Dialect) -> Dialect:
    """Make ``dialect`` available as ``FakeModem(dialect=dialect.name)``; returns it."""
    if dialect.name in DIALECTS and DIALECTS[dialect.name] is not dialect:
        raise ValueError(f"dialect {dialect.name!r} is already registered")
    DIALECTS[dialect.name] = dialect
    return dialect


#: The generic 3GPP TS 27.007 / V.250 handlers by command name (filled by ``generic``); a
#: dialect's ``handlers`` replace or remove them.
GENERIC_COMMANDS: dict[str, Handler] = {}
