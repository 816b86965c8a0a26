"""The parsed options as settings: what :mod:`atbridge.config` is asked to load.

Each option given becomes a :class:`~atbridge.config.Setting` that names it
(``--baud``), under the key of the field it sets; the loader layers them over
the ``--config`` file and the ``ATBRIDGE_*`` environment and validates them, so
an error names the option, the variable or the file. Only the few things the
command line means by itself are decided here:

- ``--broker HOST:PORT`` is ``[mqtt]`` host and port, and so are ``--host``
  (``-h``) and ``--broker-port`` (``-p``), mosquitto's way; not both ways at once;
- the password may come from ``--password-file``;
- an ``[mqtt]`` client id defaults to ``atbridge-<pid>-<random>``;
- ``--give-up-after 0`` means never; publish and subscribe give up after
  :data:`~atbridge.commands.options.DEFAULT_GIVE_UP` unless told otherwise;
- a ``labgrid://PLACE`` port (from ``--port``, ``$ATBRIDGE_PORT`` or ``[bridge]
  port``) is acquired here, for every command, and replaced by the URL of the
  place's serial port at the place's speed (``--baud`` still wins); the place is
  released when the process exits, also on Ctrl-C and SIGTERM
  (:func:`atbridge.farm.places.hold_for_process`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from atbridge.config import BridgeConfig, PortSettings, Setting
    from atbridge.modem import Modem

Settings = TypeVar("Settings", "BridgeConfig", "PortSettings")

#: Option -> the key it sets (see :func:`atbridge.config.load_config`).
PORT_KEYS = {
    "port": "port",
    "baud": "baudrate",
    "rtscts": "rtscts",
    "line_ending": "line_ending",
    "transcript": "transcript",
}
BRIDGE_KEYS = {
    **PORT_KEYS,
    "dialect": "dialect",
    "apn": "apn",
    "mqtt_version": "mqtt_version",
    "will_topic": "will_topic",
    "will_message": "will_message",
    "will_qos": "will_qos",
    "will_retain": "will_retain",
    "session_expiry": "session_expiry",
    "attach_timeout": "timeouts.attach",
    "client_id": "credentials.client_id",
    "username": "credentials.username",
    "password": "credentials.password",
    "keepalive": "credentials.keepalive",
    "tls": "credentials.tls",
    "cafile": "credentials.cafile",
    "cert": "credentials.certfile",
    "key": "credentials.keyfile",
    "tls_min_version": "credentials.tls_min_version",
    "sec_tag": "credentials.sec_tag",
}


def given(args: argparse.Namespace, keys: Mapping[str, str]) -> dict[str, Setting]:
    """The options of ``keys`` that were given, as settings naming their option."""
    from atbridge.config import Setting

    settings: dict[str, Setting] = {}
    for dest, key in keys.items():
        value = getattr(args, dest, None)
        if value is not None:
            settings[key] = Setting(value, "--" + dest.replace("_", "-"))
    return settings


def parse_broker(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as (host, port or None)."""
    from atbridge.errors import ConfigurationError

    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigurationError(f"--broker {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigurationError(f"--broker {text!r}: expected :PORT after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ConfigurationError(f"--broker {text!r} names no host", hint="use HOST:PORT")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigurationError(
            f"--broker {text!r}: the port must be a number in 1..65535", hint="use HOST:PORT"
        )
    return host, int(port_text)


def _read_password(path: str) -> str:
    from atbridge.errors import ConfigurationError

    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read the password file {path}: {reason}") from None


def default_client_id() -> str:
    """The ``[mqtt]`` client id a command invents when none is given: ``atbridge-<pid>-<hex>``."""
    import secrets

    return f"atbridge-{os.getpid()}-{secrets.token_hex(3)}"


def bridge_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """The :class:`~atbridge.config.BridgeConfig` the bridge options describe (module doc)."""
    from atbridge.config import Setting, load_config

    arguments = given(args, BRIDGE_KEYS)
    if args.password_file is not None:
        arguments["credentials.password"] = Setting(
            _read_password(args.password_file), f"--password-file {args.password_file}"
        )
    host_option, port_option = getattr(args, "host", None), getattr(args, "broker_port", None)
    if args.broker is not None:
        if host_option is not None or port_option is not None:
            from atbridge.errors import ConfigurationError

            raise ConfigurationError(
                "--broker and -h/--host or -p/--broker-port both name the broker",
                hint="give either --broker HOST:PORT or -h HOST -p PORT",
            )
        host, port = parse_broker(args.broker)
        arguments["mqtt.host"] = Setting(host, "--broker")
        if port is not None:
            arguments["mqtt.port"] = Setting(port, "--broker")
    if host_option is not None:
        arguments["mqtt.host"] = Setting(host_option, "-h/--host")
    if port_option is not None:
        arguments["mqtt.port"] = Setting(port_option, "-p/--broker-port")
    defaults: dict[str, object] = {"mqtt.client_id": default_client_id()}
    if args.give_up_after is not None:
        arguments["give_up_after"] = Setting(args.give_up_after or None, "--give-up-after")
    elif args.give_up_default is not None:
        defaults["give_up_after"] = args.give_up_default
    if args.give_up_default is not None:  # a one-shot command (publish, subscribe)
        defaults["retry_unreachable_broker"] = False
    config = load_config(
        args.config,
        env=os.environ if env is None else env,
        credentials_path=args.credentials,
        arguments=arguments,
        defaults=defaults,
    )
    return resolve_farm_port(config, args)


def resolve_farm_port(settings: Settings, args: argparse.Namespace) -> Settings:
    """A ``labgrid://`` port acquired and replaced by its serial URL (module doc)."""
    from atbridge.farm.places import hold_for_process, is_labgrid_url

    if not is_labgrid_url(settings.port):
        return settings
    lease = hold_for_process(settings.port)
    baudrate = settings.baudrate if getattr(args, "baud", None) is not None else lease.baudrate
    return replace(settings, port=lease.url, baudrate=baudrate)


def port_settings(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> PortSettings:
    """The :class:`~atbridge.config.PortSettings` the port options describe."""
    from atbridge.config import load_port_settings

    settings = load_port_settings(
        args.config, env=os.environ if env is None else env, arguments=given(args, PORT_KEYS)
    )
    return resolve_farm_port(settings, args)


async def open_modem(args: argparse.Namespace) -> Modem:
    """Open and synchronise the modem the port options name (``at``, ``info``)."""
    from atbridge.modem import Modem

    settings = port_settings(args)
    return await Modem.open(
        settings.port,
        baudrate=settings.baudrate,
        rtscts=settings.rtscts,
        line_ending=settings.line_ending_bytes,
        transcript=settings.transcript,
        default_timeout=args.timeout,
    )
