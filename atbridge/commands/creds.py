"""``atbridge creds``: print the MQTT credentials the bridge would send.

Nothing is sent anywhere: the command computes the client id, user name,
password, host, port and TLS setting from the options, a ``--credentials`` TOML
file and the environment (options win over the environment, the environment
over the file), and prints them. With TLS, ``creds aliyun`` also says where TLS
runs (``tls_mode``) and which CA it trusts: the file, whether it is the bundled
Aliyun IoT Root CA, its subject and when it expires (``ca``, ``ca_bundled``,
``ca_subject``, ``ca_expires``; TLS on the modem trusts the CA under its security
tag, ``ca_sec_tag``, instead). ``creds plain`` without a client id shows the one
``publish`` would invent (:data:`DEFAULT_CLIENT_ID`, new on every run, as
:mod:`atbridge.commands.settings` makes it). A credentials file that holds the
other kind's table is named with the command that reads it. The password is masked unless
``--show-secret`` is given; ``--connect-frame`` adds the whole CONNECT packet as
spaced hex, ready to paste into a TCP tool to try a broker by hand (its
password bytes are masked too, unless ``--show-secret``).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atbridge.credentials import MqttCredentials

HELP = "print the MQTT client id, user name, password and host the bridge would use"

_ALIYUN_EXAMPLE = """example:
  ATBRIDGE_DEVICE_SECRET=... atbridge creds aliyun --product-key a1B2c3D4e5F \\
      --device-name sensor-01 --region cn-shanghai --connect-frame
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``aliyun`` and ``plain`` sub-commands and their options."""
    common = argparse.ArgumentParser(add_help=False)
    output = common.add_argument_group("input and output")
    output.add_argument(
        "--credentials",
        metavar="FILE",
        help="TOML file with an [aliyun] or [mqtt] table (options override it)",
    )
    output.add_argument("--keepalive", type=int, metavar="S", help="MQTT Keep Alive in seconds")
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: client_id, username, password, host, port, tls",
    )
    output.add_argument(
        "--show-secret", action="store_true", help="print the password instead of a mask"
    )
    output.add_argument(
        "--connect-frame",
        action="store_true",
        help="also print the complete MQTT 3.1.1 CONNECT packet as spaced hex",
    )
    kinds = parser.add_subparsers(dest="creds_kind", metavar="KIND", required=True)

    aliyun = kinds.add_parser(
        "aliyun",
        parents=[common],
        help="Alibaba Cloud IoT Platform device (ProductKey, DeviceName, DeviceSecret)",
        description="Credentials of an Aliyun IoT Platform device (one device one secret).",
        epilog=_ALIYUN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    aliyun.add_argument("--product-key", metavar="PK", help="ProductKey ($ATBRIDGE_PRODUCT_KEY)")
    aliyun.add_argument("--device-name", metavar="DN", help="DeviceName ($ATBRIDGE_DEVICE_NAME)")
    aliyun.add_argument(
        "--device-secret",
        metavar="DS",
        help="DeviceSecret; prefer $ATBRIDGE_DEVICE_SECRET or the file, since options "
        "end up in shell history",
    )
    aliyun.add_argument("--client-id", metavar="ID", help="free-text client id (default <PK>.<DN>)")
    aliyun.add_argument(
        "--timestamp", metavar="T", help="timestamp in ms to sign (default: none sent)"
    )
    aliyun.add_argument(
        "--sign-method",
        metavar="M",
        choices=("hmacmd5", "hmacsha1", "hmacsha256"),
        help="hmacmd5, hmacsha1 or hmacsha256 (default hmacsha256)",
    )
    aliyun.add_argument(
        "--secure-mode",
        type=int,
        choices=(2, 3),
        help="2 = TLS, port 8883, the bundled Aliyun IoT Root CA (default); 3 = plain TCP, "
        "port 1883",
    )
    aliyun.add_argument(
        "--tls",
        metavar="host|modem",
        help="with securemode 2: TLS on this computer (host, the default) or on the modem",
    )
    aliyun.add_argument(
        "--cafile",
        metavar="F",
        help="the CA of the instance (default: the bundled Aliyun IoT Root CA)",
    )
    aliyun.add_argument("--port", type=int, metavar="N", help="the platform's port")
    aliyun.add_argument(
        "--sec-tag", type=int, metavar="N", help="with --tls modem: the CA's security tag"
    )
    where = aliyun.add_mutually_exclusive_group()
    where.add_argument(
        "--region", metavar="R", help="region of a legacy public instance (default cn-shanghai)"
    )
    where.add_argument(
        "--instance-id", metavar="I", help="instance id (host <I>.mqtt.iothub.aliyuncs.com)"
    )
    where.add_argument(
        "--endpoint", metavar="H", help="a host of its own (private endpoint) instead"
    )

    plain = kinds.add_parser(
        "plain",
        parents=[common],
        help="any MQTT broker",
        description="Credentials for any MQTT broker, used as given.",
    )
    plain.add_argument("--client-id", metavar="ID", help="MQTT client id")
    plain.add_argument("--username", metavar="U", help="user name")
    plain.add_argument(
        "--password", metavar="P", help="password; prefer $ATBRIDGE_MQTT_PASSWORD or the file"
    )
    plain.add_argument("--host", metavar="H", help="broker host name or address")
    plain.add_argument(
        "--port", type=int, metavar="N", help="broker port (default 1883, 8883 with --tls)"
    )
    plain.add_argument("--tls", action="store_true", default=None, help="connect with TLS")


_ALIYUN_OPTIONS = (
    "product_key",
    "device_name",
    "device_secret",
    "client_id",
    "timestamp",
    "sign_method",
    "secure_mode",
    "region",
    "instance_id",
    "keepalive",
    "tls",
    "cafile",
    "port",
    "sec_tag",
    "endpoint",
)
_PLAIN_OPTIONS = ("client_id", "username", "password", "host", "port", "tls", "keepalive")


#: The rule of a client id nobody gave (the bridge commands' default, commands/settings.py).
DEFAULT_CLIENT_ID = "atbridge-<pid>-<6 hex digits>"


def default_client_id() -> str:
    """A client id by :data:`DEFAULT_CLIENT_ID`, as ``publish`` invents one (the one rule)."""
    from atbridge.commands.settings import default_client_id as invent

    return invent()


def _check_table(path: str, table: str) -> None:
    """A credentials file that holds only the other kind's table: say which command reads it."""
    import tomllib

    from atbridge.errors import ConfigurationError

    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return  # the loader reports an unreadable file, naming it
    other = "mqtt" if table == "aliyun" else "aliyun"
    if table not in document and other in document:
        command = "creds plain" if other == "mqtt" else "creds aliyun"
        raise ConfigurationError(
            f"{path} has an [{other}] table, not the [{table}] table "
            f"`creds {'aliyun' if table == 'aliyun' else 'plain'}` reads",
            hint=f"use `atbridge {command} --credentials {path}`",
        )


def _trust(credentials: MqttCredentials, *, text: bool) -> dict[str, object]:
    """Where TLS runs and the CA it trusts (module doc); ``text``: for the text output."""
    from atbridge.aliyun import describe_ca
    from atbridge.credentials import ALIYUN_ROOT_CA_NAME, TlsMode

    options = credentials.tls_options
    report: dict[str, object] = {"tls_mode": credentials.tls_mode.value}
    if options.cafile is None:
        tag = options.sec_tag
        if text:
            if credentials.tls_mode is not TlsMode.MODEM:
                report["ca"] = None
            elif tag is None:
                report["ca"] = (
                    "the CA stored on the modem under a security tag: none given "
                    "(--tls modem needs --sec-tag N, the tag atbridge certs write used)"
                )
            else:
                report["ca"] = f"the CA under security tag {tag} on the modem"
        else:
            report["ca"] = None
            if credentials.tls_mode is TlsMode.MODEM:
                report["ca_sec_tag"] = tag
        return report
    ca = describe_ca(options.cafile)
    if text:
        report["ca"] = f"{ALIYUN_ROOT_CA_NAME} ({ca.path})" if ca.bundled else ca.path
    else:
        report["ca"] = ca.path
        report["ca_bundled"] = ca.bundled
    report["ca_subject"] = "; ".join(ca.subjects)
    report["ca_expires"] = ca.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return report


def run(args: argparse.Namespace) -> int:
    """Compute the credentials and print them; returns 0."""
    import json

    from atbridge.at_mqtt import encode
    from atbridge.commands.settings import given
    from atbridge.config import load_credentials
    from atbridge.credentials import MASK

    table = "aliyun" if args.creds_kind == "aliyun" else "mqtt"
    names = _ALIYUN_OPTIONS if table == "aliyun" else _PLAIN_OPTIONS
    if args.credentials is not None:
        _check_table(args.credentials, table)
    defaults: dict[str, object] = {}
    if table == "mqtt":
        defaults["client_id"] = default_client_id()
    credentials = load_credentials(
        args.credentials,
        table=table,
        env=os.environ,
        arguments=given(args, {name: name for name in names}),
        defaults=defaults,
    )
    invented = table == "mqtt" and credentials.client_id == defaults["client_id"]

    report = credentials.as_dict(show_secret=args.show_secret)
    if invented and args.json:
        report["client_id_default"] = True
    if table == "aliyun" and credentials.tls:
        report.update(_trust(credentials, text=not args.json))
    # Built every time: credentials the bridge could not send (a password without a user
    # name in MQTT 3.1.1, a client id too long...) fail here, with the rule they break.
    frame = encode(credentials.connect_packet())
    if args.connect_frame:
        octets = [f"{byte:02x}" for byte in frame]
        if credentials.password is not None and not args.show_secret:
            # The password is the last field of CONNECT: mask exactly its bytes.
            hidden = len(credentials.password.reveal().encode())
            if hidden:
                octets[-hidden:] = ["**"] * hidden
        report["connect_frame"] = " ".join(octets)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(key) for key in report)
    for key, value in report.items():
        if key == "tls":
            shown = "yes" if value else "no"
        elif value is None:
            shown = "-"
        elif key == "password" and value == MASK:
            shown = f"{MASK}  (add --show-secret to print it)"
        elif key == "client_id" and invented:
            shown = f"{value}  (the default, {DEFAULT_CLIENT_ID}: new each run; set --client-id)"
        else:
            shown = str(value)
        print(f"{key:<{width}}  {shown}")
    if args.connect_frame and credentials.password is not None and not args.show_secret:
        print(f"{'':<{width}}  (password bytes shown as **; add --show-secret for a usable frame)")
    return 0
