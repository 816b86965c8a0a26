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
- :class:`BrokerRefused` — the MQTT broker refused the session (CONNACK code).

Secrets never reach these messages: callers pass already-masked text.
"""

from __future__ import annotations

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
                "the command or one of its parameters is not accepted in this state; "
                "enable numeric errors with AT+CMEE=1 to learn why"
            )
        else:
            described = f"{code}" if code is not None else ""
            if text:
                described = f"{described} ({text})" if described else text
            what = f"the modem answered +{kind} ERROR: {described} to {command!r}"
            default = "see the error text; check the modem's state (SIM, registration, CFUN)"
        super().__init__(what, hint=default if hint is None else hint)


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


class BrokerRefused(AtBridgeError):
    """The MQTT broker refused the connection; ``code`` is the CONNACK code."""

    def __init__(self, code: int, reason: str, *, hint: str | None = None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the broker refused the connection: {reason} (code {code})", hint=hint)
