"""The options the commands share, declared once as argparse parent parsers.

- :func:`port_options` — how to reach the modem (``--port``, ``--baud``,
  ``--rtscts``, ``--line-ending``, ``--transcript``, ``--config``): every command
  that talks to a modem (``at``, ``info``, ``publish``, ``subscribe``, ``run``);
- :func:`bridge_options` — what a bridge adds (``--dialect``, ``--apn``, the
  broker and credentials, the MQTT session: ``--mqtt-version``, the Will,
  ``--session-expiry``, and the lifecycle): ``publish``, ``subscribe``, ``run``.

``publish`` and ``subscribe`` also take the short options of ``mosquitto_pub`` /
``mosquitto_sub`` (``bridge_options(mosquitto=True)``, :func:`qos_option`):
``-h``/``-p`` host and port, ``-u``/``-P``, ``-i``, ``-k``, ``-V``, ``-q`` QoS;
their ``--help`` has no ``-h`` (it is the host, as in mosquitto).

No option has an argparse default: "not given" lets the ``--config`` file and
the ``ATBRIDGE_*`` environment show through (:mod:`atbridge.config` layers
them); the defaults are those of :class:`~atbridge.config.BridgeConfig` (baud
115200; the line ending found on the first sync: CR, else CR LF or LF).
:func:`atbridge.commands.settings` turns the parsed options into settings.

Only the standard library is imported here: ``atbridge --help`` stays instant.
"""

from __future__ import annotations

import argparse

#: ``--give-up-after`` of the commands that must end (publish, subscribe).
DEFAULT_GIVE_UP = 300.0

EXIT_CODES_EPILOG = """\
exit codes: 0 ok, 1 internal error (a bug: the traceback is printed), 2 bad usage
  or configuration, 3 modem or network failure, 4 broker refused (the reason is
  printed), 5 timeout, 130 interrupted"""


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a positive number of seconds."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def dialect_name(text: str) -> str:
    """argparse type: a dialect name in any case (``NRF91_SLM`` is ``nrf91-slm``), or ``auto``."""
    from atbridge.dialects import DIALECTS, canonical_name

    name = canonical_name(text)
    if name is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a dialect: use auto or one of {', '.join(DIALECTS)}"
        )
    return name


def whole_number(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


#: ``-V``/``--mqtt-version`` spellings (mosquitto's ``mqttv311``/``mqttv5`` too) -> the setting.
MQTT_VERSIONS = {"3.1.1": "3.1.1", "311": "3.1.1", "mqttv311": "3.1.1", "5": "5", "mqttv5": "5"}


def mqtt_version(text: str) -> str:
    """argparse type: an MQTT version as atbridge or mosquitto spell it."""
    version = MQTT_VERSIONS.get(text.lower())
    if version is None:
        extra = " (MQTT 3.1 is not supported)" if text.lower() in ("31", "mqttv31") else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an MQTT version atbridge speaks{extra}: use 3.1.1 (mqttv311) "
            "or 5 (mqttv5)"
        )
    return version


def qos(text: str) -> int:
    """argparse type: QoS 0 or 1 (QoS 2 is refused with what to use instead)."""
    if text == "2":
        raise argparse.ArgumentTypeError(
            "QoS 2 is not supported by atbridge: use 1 (at least once; duplicates carry DUP)"
        )
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"QoS must be 0 or 1, got {text!r}")
    return int(text)


class Once(argparse.Action):
    """An option that may be given once: a second one is an error, not "the last one wins"."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | object,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            names = "/".join(self.option_strings)
            parser.error(f"{names} given twice: this command takes one (run it again for another)")
        setattr(namespace, self.dest, values)


def flags(mosquitto: bool, short: str, *long: str) -> tuple[str, ...]:
    """The option strings: ``short`` (mosquitto's letter) only when ``mosquitto``."""
    return (short, *long) if mosquitto else long


def help_option(parser: argparse.ArgumentParser) -> None:
    """``--help`` alone, for a command whose ``-h`` is the broker host (as in mosquitto)."""
    parser.add_argument("--help", action="help", help="show this help message and exit")


def port_options() -> argparse.ArgumentParser:
    """Parent parser: the modem's port, and the ``--config`` file."""
    return _modem_options(bridge=False)


def _modem_options(*, bridge: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    modem = parent.add_argument_group("modem")
    modem.add_argument(
        "--port",
        metavar="URL",
        help="serial device (/dev/ttyACM0, a pty), or a board exported by ser2net as "
        "socket://host:port or rfc2217://host:port?ign_set_control; default $ATBRIDGE_PORT "
        "or [bridge] port in --config",
    )
    modem.add_argument("--baud", type=positive_int, metavar="N", help="baud rate (default 115200)")
    modem.add_argument(
        "--rtscts", action="store_true", default=None, help="hardware flow control (RTS/CTS)"
    )
    modem.add_argument(
        "--line-ending",
        metavar="crlf|cr|lf",  # checked by the loader (atbridge.config is not loaded for --help)
        help="what ends a command line: crlf (Serial LTE Modem default), cr (V.250, SIMCom, "
        "nRF91 Serial Modem) or lf (a build option of the nRF91 firmware); default: found "
        "on the first sync (AT CR, then a lone LF), so a non-default build works",
    )
    modem.add_argument(
        "--transcript",
        metavar="FILE",
        help="append a timestamped record of every byte in both directions to FILE "
        "(secrets masked)",
    )
    modem.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with a [bridge] table (port, baudrate, dialect, apn, backoff..., "
        "[bridge.timeouts]) and the credentials' [mqtt] or [aliyun] table",
    )
    if bridge:
        from atbridge.dialects import DIALECTS  # light: a table of names

        modem.add_argument(
            "--dialect",
            metavar="D",
            type=dialect_name,
            help=f"modem family: auto (default: ask the modem), {', '.join(DIALECTS)} (any case)",
        )
        modem.add_argument("--apn", metavar="A", help="access point name (default: the network's)")
    return parent


def command_timeout_option() -> argparse.ArgumentParser:
    """Parent parser: ``--timeout``, how long one AT command may take (``at``, ``info``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="per-command timeout (default 10)",
    )
    return parent


def bridge_options(
    *, give_up_default: float | None, mosquitto: bool = False
) -> argparse.ArgumentParser:
    """Parent parser: the port options plus the dialect, broker, MQTT session and lifecycle.

    ``mosquitto``: the short options of ``mosquitto_pub``/``mosquitto_sub`` as well.
    """
    parent = argparse.ArgumentParser(add_help=False, parents=[_modem_options(bridge=True)])
    parent.set_defaults(give_up_default=give_up_default)

    broker = parent.add_argument_group("broker and credentials")
    source = broker.add_mutually_exclusive_group()
    source.add_argument(
        "--credentials",
        metavar="FILE",
        help="TOML file with an [mqtt] or [aliyun] table (see atbridge creds)",
    )
    source.add_argument(
        "--broker",
        metavar="HOST:PORT",
        help="any MQTT broker (port default 1883); with --client-id, --username and the "
        "password from $ATBRIDGE_MQTT_PASSWORD or --password-file",
    )
    broker.add_argument(
        *flags(mosquitto, "-h", "--host"),
        metavar="HOST",
        help="the MQTT broker's host (the same as --broker HOST; with --broker-port)",
    )
    broker.add_argument(
        *flags(mosquitto, "-p", "--broker-port"),
        type=positive_int,
        metavar="N",
        help="the MQTT broker's port (default 1883)",
    )
    broker.add_argument(
        *flags(mosquitto, "-i", "--client-id"),
        metavar="ID",
        help="MQTT client id (default atbridge-<pid>-<random>)",
    )
    broker.add_argument(*flags(mosquitto, "-u", "--username"), metavar="U", help="MQTT user name")
    password = broker.add_mutually_exclusive_group()
    password.add_argument(
        "--password-file", metavar="F", help="read the MQTT password from the first line of F"
    )
    password.add_argument(
        *flags(mosquitto, "-P", "--password"),
        metavar="P",
        help="MQTT password; prefer $ATBRIDGE_MQTT_PASSWORD or --password-file, since "
        "options are visible in the process list and the shell history",
    )
    broker.add_argument(
        "--tls",
        nargs="?",
        const="host",
        metavar="host|modem",
        help="TLS to the broker: host (the default for --tls alone: TLS on this computer over "
        "the modem's TCP socket, every dialect) or modem (offload)",
    )
    broker.add_argument(
        "--cafile",
        metavar="F",
        help="the CA (PEM) that signed the broker's certificate (default: the system's store)",
    )
    broker.add_argument("--cert", metavar="F", help="client certificate (PEM), for mutual TLS")
    broker.add_argument("--key", metavar="F", help="the client certificate's private key (PEM)")
    broker.add_argument(
        "--tls-min-version", metavar="1.2|1.3", help="the oldest TLS version offered (default 1.2)"
    )
    broker.add_argument(
        "--sec-tag",
        type=whole_number,
        metavar="N",
        help="with --tls modem: the nRF91 security tag that holds the broker's CA (AT%%CMNG)",
    )
    broker.add_argument(
        *flags(mosquitto, "-k", "--keepalive"),
        type=positive_int,
        metavar="S",
        help="MQTT Keep Alive in seconds",
    )

    session = parent.add_argument_group("MQTT session")
    session.add_argument(
        *flags(mosquitto, "-V", "--mqtt-version"),
        type=mqtt_version,
        metavar="3.1.1|5",
        help="MQTT protocol: 3.1.1 (default; also mqttv311) or 5 (mqttv5: reason strings, "
        "session expiry, topic aliases)",
    )
    session.add_argument(
        "--will-topic",
        metavar="T",
        help="the Will: the broker publishes --will-message to T when the bridge dies "
        "without a DISCONNECT",
    )
    session.add_argument("--will-message", metavar="M", help="the Will's message (UTF-8 text)")
    session.add_argument(
        "--will-qos", type=int, choices=(0, 1, 2), help="the Will's QoS (default 0)"
    )
    session.add_argument(
        "--will-retain", action="store_true", default=None, help="the Will is retained"
    )
    session.add_argument(
        "--session-expiry",
        type=whole_number,
        metavar="S",
        help="MQTT 5: keep the session S seconds after the connection ends (default: "
        "it ends with the connection)",
    )

    lifecycle = parent.add_argument_group("lifecycle")
    lifecycle.add_argument(
        "--attach-timeout",
        type=positive_seconds,
        metavar="S",
        help="how long one registration attempt may take (default 600: a first scan can "
        "take minutes)",
    )
    shown = f"{give_up_default:g} s" if give_up_default is not None else "never"
    lifecycle.add_argument(
        "--give-up-after",
        type=seconds,
        metavar="S",
        help=f"stop (exit 5 or the failure's code) when not online for S seconds; "
        f"0 = never (default {shown})",
    )
    return parent


def output_options(
    *, quiet: bool, what: str, short_quiet: bool = True, verbose: bool = True
) -> argparse.ArgumentParser:
    """Parent parser: ``--json``/``--format json`` (one JSON object per ``what``), ``-v``/``-d``
    (the lifecycle's decisions, and the AT traffic, on stderr; ``verbose`` false leaves
    ``-v`` to the command: ``subscribe -v`` prints topics, as ``mosquitto_sub -v`` does)
    and, with ``quiet``, ``--quiet`` (``-q`` too unless ``short_quiet`` is false:
    mosquitto's ``-q`` is the QoS)."""
    parent = argparse.ArgumentParser(add_help=False)
    out = parent.add_argument_group("output")
    out.add_argument("--json", action="store_true", help=f"one JSON object per {what}")
    out.add_argument(
        "--format",
        choices=("text", "json"),
        help="text (default) or json (the same as --json)",
    )
    if verbose:
        out.add_argument(
            "-v",
            "--verbose",
            dest="log_decisions",
            action="store_true",
            help="log the lifecycle's decisions (state changes, back-offs, retries) on stderr",
        )
    out.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="--verbose, and the AT traffic as a timestamped transcript (secrets masked) on "
        "stderr unless --transcript names a file",
    )
    if quiet:
        names = ("-q", "--quiet") if short_quiet else ("--quiet",)
        out.add_argument(*names, action="store_true", help="no progress on stderr")
    return parent
