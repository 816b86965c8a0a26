"""The one error tree of atbridge.

Every failure atbridge raises is an :class:`AtBridgeError`. The branches tell the
caller what to do next, and every message says what happened and what to try,
because a field engineer reads these at the end of a failed run:

- :class:`ConfigurationError` — our own input is wrong (bad URL, bad parameter,
  an AT parameter that would smuggle a second command). Fix the input; retrying
  will not help.
- :class:`ModemError` — the modem answered ``ERROR`` / ``+CME ERROR`` /
  ``+CMS ERROR``. Carries the code and its 3GPP TS 27.007 text.
- :class:`ProtocolError` — somebody broke a protocol:
  :class:`LocalProtocolError` (we were about to send something illegal) or
  :class:`RemoteProtocolError` (the modem or the broker sent something illegal).
- :class:`StepTimeout` — a step took longer than allowed; :class:`AtTimeout` is
  the AT-command case and carries every byte received while waiting.
- :class:`LinkLost` — the serial link (or the TCP link to a ser2net port) went away.
- :class:`ModemRebooted` — the modem sent a boot banner: all its state is gone.
- :class:`BrokerRefused` — the MQTT broker said no: :class:`ConnectRefused` (a
  CONNACK code; :data:`CONNACK_REFUSALS` says, per code, what to try and whether
  retrying can help), :class:`PublishRefused` (a PUBACK reason code) and
  :class:`SubscribeRefused` (a SUBACK failure).
- :class:`SocketClosed` / :class:`SocketError` — a modem socket ended
  (:class:`CloseReason` says why) or could not be opened or used.
- The lifecycle's own: :class:`RegistrationLost` (the modem left the network),
  :class:`PingTimeout` (no PINGRESP: the MQTT connection is silently dead),
  :class:`QueueFull`, :class:`Offline` and :class:`Failed` (the bridge stopped
  for good; ``cause`` is why).
- The MQTT codec's: :class:`MalformedPacket` / :class:`PacketTooLarge` (the
  broker sent bytes that break MQTT) and :class:`NotConnected`.

Every class lives here and is exported from :mod:`atbridge`, so a caller catches
one name whatever layer raised it.

Secrets never reach these messages: callers pass already-masked text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from atbridge.text import describe_bytes


class AtBridgeError(Exception):
    """Root of every error atbridge raises.

    ``hint`` is the "what to try" half of the message, kept separately so a CLI
    can print it on its own line.
    """

    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message


class ConfigurationError(AtBridgeError, ValueError):
    """Our own input is wrong: fix the configuration or the arguments."""

    default_hint = "check the arguments or the configuration file"


class PlotError(ConfigurationError):
    """A watch file that cannot be plotted (what was wrong and what to do); exit 2."""


class UnsupportedFirmware(ConfigurationError):
    """The modem runs firmware atbridge cannot drive correctly (too old, or a build it refuses).

    ``version`` is what the modem reported and ``minimum`` the oldest version that works.
    Retrying cannot help: flash newer firmware or choose another dialect.
    """

    default_hint = "flash newer firmware (the message names the minimum)"

    def __init__(
        self, message: str, *, version: str, minimum: str, hint: str | None = None
    ) -> None:
        self.version = version
        self.minimum = minimum
        super().__init__(message, hint=hint)


class PortNotFound(ConfigurationError):
    """The serial port (device node, ser2net host) is not there.

    At start this is a usage error (a wrong ``--port``). For a port that was open
    before, it is what a USB modem looks like while it re-enumerates after its own
    reset: the lifecycle treats it as a lost link and reopens after a backoff.
    """

    default_hint = "check --port: `atbridge ports` lists the serial ports; is the modem powered?"


class ModemError(AtBridgeError):
    """The modem refused a command (``ERROR``, ``+CME ERROR: n``, ``+CMS ERROR: n``).

    ``kind`` is ``"CME"``, ``"CMS"`` or ``None`` (plain ``ERROR``); ``code`` is the
    numeric code when the modem gave one; ``text`` is the TS 27.007 / 27.005 text
    for the code, or the modem's own text when it reported a verbose error.
    """

    def __init__(
        self,
        command: str,
        final: str,
        *,
        kind: str | None = None,
        code: int | None = None,
        text: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.command = command
        self.final = final
        self.kind = kind
        self.code = code
        self.text = text
        if kind is None:
            what = f"the modem answered ERROR to {command!r}"
            default = (
                "the command or one of its parameters is not accepted in this state (the "
                "modem gave no reason: a plain ERROR, although numeric errors were asked for "
                "with AT+CMEE=1 when the port was opened)"
            )
        else:
            described = f"{code}" if code is not None else ""
            if text:
                described = f"{described} ({text})" if described else text
            what = f"the modem answered +{kind} ERROR: {described} to {command!r}"
            default = "see the error text; check the modem's state (SIM, registration, CFUN)"
        super().__init__(what, hint=default if hint is None else hint)


class SimNotReady(ModemError):
    """The SIM keeps the modem off the network: absent, PIN/PUK required, locked or failing.

    Found while configuring (``AT+CPIN?``), before any attach is waited out; retrying
    cannot fix it, so the lifecycle stops with it (exit 3).
    """

    default_hint = "check the SIM"


class TlsError(AtBridgeError):
    """TLS with the broker failed (host-side TLS, :mod:`atbridge.tls`)."""

    default_hint = "check the broker's TLS port, its certificate and --cafile"


class TlsRefused(TlsError, ConfigurationError):
    """The handshake was refused for a reason retrying cannot fix: the broker's certificate
    (unknown CA, host name, expired or not yet valid), our client certificate, the TLS
    version, or a port that does not speak TLS. What fixes it is a setting on this side
    (``--cafile``, the host name, the clock, ``--cert``/``--key``, the port), so it stops
    the bridge like any configuration error (exit 2)."""


class PlaceUnavailable(AtBridgeError):
    """A labgrid place cannot be used now: someone else holds it, its exporter is gone,
    or the coordinator does not answer. Exit status 3 (the farm, not the input, failed).
    """

    default_hint = "wait for the place to be released (labgrid-client who) or use another place"


class ProtocolError(AtBridgeError):
    """A protocol rule was broken (AT framing, MQTT framing)."""


class LocalProtocolError(ProtocolError, ValueError):
    """We were about to send something the protocol forbids; nothing was sent."""

    default_hint = "fix the value passed in; nothing was sent"


class RemoteProtocolError(ProtocolError):
    """The modem or the broker sent bytes that break the protocol."""

    default_hint = (
        "the peer is misbehaving or the link corrupts data; check the baud rate, "
        "flow control and the transcript"
    )


class TlsProtocolError(TlsError, RemoteProtocolError):
    """A TLS record or alert broke an established connection: reconnect."""

    default_hint = "reconnecting; if it repeats, check that the port speaks TLS and the transcript"


class StepTimeout(AtBridgeError, TimeoutError):
    """A step did not finish in time."""

    default_hint = "the modem or the network is slow or silent; raise the timeout or check the link"


class AtTimeout(StepTimeout):
    """An AT command got no final result code in time.

    ``received`` holds every byte that arrived while the command was waiting, so
    the caller can see how far the modem got.
    """

    def __init__(
        self, command: str, timeout: float, received: bytes, *, hint: str | None = None
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.received = received
        partial = describe_bytes(received)
        super().__init__(
            f"no final result to {command!r} within {timeout:g} s; received {partial}",
            hint=hint
            if hint is not None
            else (
                "check that the port, baud rate and line ending are right and the modem "
                "is powered; slow network commands may need a longer timeout"
            ),
        )


class LinkLost(AtBridgeError, ConnectionError):
    """The serial port or the TCP link to a remote port went away."""

    default_hint = "check the cable, the USB port, or the ser2net host, then reconnect"


class ModemRebooted(AtBridgeError):
    """The modem sent a boot banner: it restarted and lost all its state."""

    def __init__(self, banner: str, *, command: str | None = None) -> None:
        self.banner = banner
        self.command = command
        during = f" while {command!r} was waiting" if command else ""
        super().__init__(
            f"the modem rebooted (it sent {banner!r}){during}",
            hint=(
                "sockets and settings are lost; re-run initialisation. Repeated reboots "
                "usually mean a weak power supply during transmit bursts"
            ),
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a CONNACK refusal code tells a user: what to try, and whether retrying can help."""

    hint: str
    retryable: bool


_BAD_VERSION = Refusal("the broker does not speak this MQTT version; try MQTT 3.1.1", False)
_BAD_CLIENT_ID = Refusal(
    "the broker rejected the client id: check its length and characters", False
)
_UNAVAILABLE = Refusal("the broker is up but not serving MQTT right now; retry with backoff", True)
_BAD_PASSWORD = Refusal(
    "the user name or password is wrong: for Aliyun check ProductKey, DeviceName, "
    "DeviceSecret and the sign method; run `atbridge creds` to see what is sent",
    False,
)
#: 3.1.1 return code 5 (§3.2.2.3 "not authorized"): mosquitto and most brokers send it for a
#: wrong or missing user name/password as well as for a client the broker's ACL refuses.
_NOT_AUTHORISED = Refusal(
    "the broker does not let this client connect: check the user name and password (a "
    "wrong or missing password is answered with this code too), the client id, and that "
    "the device is enabled; for Aliyun, the region and instance",
    False,
)
#: 5.0 reason code 0x87 (§3.2.2.2 "Not authorized"): the client is not authorised to connect.
_NOT_AUTHORISED_5 = Refusal(
    "the broker does not authorise this client: check the user name and password, and the "
    "broker's access rules for this client id",
    False,
)

#: Every CONNACK refusal code with its hint and whether retrying can help, keyed by the
#: 3.1.1 return code (1-5) or the 5.0 reason code (0x80 and up): the two never overlap.
#: A code missing here is retried with backoff and has no hint.
CONNACK_REFUSALS: dict[int, Refusal] = {
    1: _BAD_VERSION,
    0x84: _BAD_VERSION,
    2: _BAD_CLIENT_ID,
    0x85: _BAD_CLIENT_ID,
    3: _UNAVAILABLE,
    0x88: _UNAVAILABLE,
    0x89: Refusal("the broker is busy; retry with backoff", True),
    4: _BAD_PASSWORD,
    0x86: _BAD_PASSWORD,
    5: _NOT_AUTHORISED,
    0x87: _NOT_AUTHORISED_5,
    0x8A: Refusal("this client is banned by the broker; contact its operator", False),
    0x8C: Refusal(
        "the broker does not accept this authentication method; check the credentials", False
    ),
    0x9C: Refusal("the broker asks us to use another server (see its Server Reference)", True),
    0x9D: Refusal("the broker moved (see its Server Reference)", True),
    0x9F: Refusal("too many connection attempts; wait before reconnecting", True),
}


class BrokerRefused(AtBridgeError):
    """The MQTT broker said no; ``code`` is its return or reason code.

    The subclasses say to what: :class:`ConnectRefused` (CONNACK),
    :class:`PublishRefused` (PUBACK/PUBREC), :class:`SubscribeRefused` (SUBACK).
    A bare ``BrokerRefused`` is a refused connection.
    """

    refused: ClassVar[str] = "the connection"

    def __init__(self, code: int, reason: str, *, hint: str | None = None) -> None:
        self.code = code
        self.reason = reason
        if hint is None:
            known = CONNACK_REFUSALS.get(code) if self.refused == "the connection" else None
            hint = known.hint if known is not None else ""
        super().__init__(f"the broker refused {self.refused}: {reason} (code {code})", hint=hint)

    @property
    def retryable(self) -> bool:
        """Whether trying again (after a backoff) can succeed; from :data:`CONNACK_REFUSALS`."""
        known = CONNACK_REFUSALS.get(self.code)
        return True if known is None else known.retryable


class ConnectRefused(BrokerRefused):
    """The broker refused the CONNECT (a CONNACK return code or 5.0 reason code)."""


class PublishRefused(BrokerRefused):
    """The broker refused a QoS 1/2 message (an MQTT 5.0 PUBACK/PUBREC reason code)."""

    refused = "the message"

    @property
    def retryable(self) -> bool:
        return False  # the same message would be refused again


class SubscribeRefused(BrokerRefused):
    """The broker refused a subscription (SUBACK 0x80 or a 5.0 failure reason code)."""

    refused = "the subscription"

    @property
    def retryable(self) -> bool:
        return False


# -- sockets through the modem ---------------------------------------------------------


class CloseReason(Enum):
    """Why a socket ended."""

    LOCAL = "we closed it"
    PEER = "the peer closed the connection"
    NETWORK = "the network dropped the data connection (PDP context)"
    REBOOT = "the modem rebooted"
    LINK = "the serial link to the modem was lost"
    ERROR = "the modem reported a socket error"


class SocketClosed(AtBridgeError, ConnectionError):
    """The socket is closed; ``reason`` says why and the message what to try."""

    _HINTS: ClassVar[dict[CloseReason, str]] = {
        CloseReason.LOCAL: "open a new socket",
        CloseReason.PEER: "reconnect; if the broker closes at once, check the credentials "
        "and the CONNECT it received",
        CloseReason.NETWORK: "the data connection is gone: re-attach (or activate the PDP "
        "context again) before reconnecting",
        CloseReason.REBOOT: "re-run initialisation and attach before reconnecting; repeated "
        "reboots usually mean a weak power supply",
        CloseReason.LINK: "check the cable or the remote serial port, then reopen the modem",
        CloseReason.ERROR: "reconnect; if it repeats, check the modem's state and the transcript",
    }

    def __init__(self, reason: CloseReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        text = f"the socket is closed: {reason.value}"
        if detail:
            text += f" ({detail})"
        super().__init__(text, hint=self._HINTS[reason])


class SocketError(AtBridgeError):
    """Opening, sending on or resolving through a socket failed; the message says how."""

    default_hint = "check the host, the port and that the data connection is up"


# -- MQTT framing ----------------------------------------------------------------------


class MalformedPacket(RemoteProtocolError):
    """The broker sent bytes that are not a valid MQTT packet; the link must be closed."""

    default_hint = (
        "the broker (or the modem's socket layer) corrupted the stream; close the connection "
        "and reconnect, and check the transcript for stray bytes"
    )


class PacketTooLarge(MalformedPacket):
    """An incoming packet is larger than the decoder's ``max_packet_size``."""

    default_hint = (
        "raise max_packet_size if the broker legitimately sends large messages, or check the "
        "subscription (MQTT 5.0 lets the client announce Maximum Packet Size in CONNECT)"
    )


class NotConnected(LocalProtocolError):
    """The operation needs an accepted MQTT session and there is none."""

    default_hint = "wait for the Connected event (QoS 1 and 2 messages are queued while offline)"


# -- the lifecycle ---------------------------------------------------------------------


class RegistrationLost(AtBridgeError):
    """The modem left the network while online."""

    default_hint = "waiting for the modem to register again"


class PingTimeout(StepTimeout):
    """No PINGRESP (or nothing received) within the keep-alive allowance."""

    default_hint = "the connection is silently dead (NAT timeout, lost coverage); reconnecting"


class QueueFull(AtBridgeError):
    """Too many QoS 1 messages are waiting for the connection."""

    default_hint = "wait for the bridge to come online, raise queue_size, or use queue_full='wait'"


class Offline(AtBridgeError):
    """A QoS 0 message cannot be sent while offline (qos0_offline='raise')."""

    default_hint = "publish at QoS 1 to have it queued, or set qos0_offline='drop'"


def describe_error(error: BaseException) -> str:
    """An error's message without its hint (or its type and text if it is not ours)."""
    if isinstance(error, AtBridgeError):
        return error.message
    return f"{type(error).__name__}: {error}"


class Failed(AtBridgeError):
    """The lifecycle stopped for good; ``cause`` is the error that stopped it."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        hint = cause.hint if isinstance(cause, AtBridgeError) else ""
        super().__init__(f"the bridge stopped: {describe_error(cause)}", hint=hint)


class MissingInformation(RemoteProtocolError):
    """The modem answered ``OK`` but without the information line the command promises.

    ``AT+CFUN?`` should answer ``+CFUN: <fun>`` before its ``OK``; ``lines`` holds what
    came instead. Not a refusal: the modem accepted the command.
    """

    default_hint = (
        "the firmware may not support this query in its current state (radio off, no SIM) "
        "or printed it differently; retry, and check the transcript and the firmware version"
    )

    def __init__(
        self, command: str, prefix: str, lines: tuple[str, ...], *, hint: str | None = None
    ) -> None:
        self.command = command
        self.prefix = prefix
        self.lines = lines
        said = f"it said {list(lines)!r}" if lines else "it sent no information line at all"
        super().__init__(
            f"the modem answered OK to {command!r} but without the {prefix!r} line; {said}",
            hint=hint,
        )


class ResyncFailed(AtTimeout):
    """After an earlier command timed out, the AT channel could not be brought back in sync.

    The command the caller asked for (``before``) was not sent. ``probes`` are the
    commands sent to resynchronise, none answered with its own line; ``command`` is the
    first of them.
    """

    default_hint = (
        "the modem stopped answering: check its power, the cable or USB port and the baud "
        "rate; reopen the port, or restart the modem"
    )

    def __init__(
        self, probes: tuple[str, ...], timeout: float, received: bytes, *, before: str
    ) -> None:
        self.probes = probes
        self.before = before
        super().__init__(probes[0], timeout, received, hint=self.default_hint)
        self.message = (
            f"the AT channel did not come back in sync after an earlier timeout: "
            f"{', '.join(probes)} got no answer of their own within {timeout:g} s each "
            f"(received {describe_bytes(received)}); {before!r} was not sent"
        )
        self.args = (self.message,)
