"""``atbridge register aliyun``: dynamic registration ("one type one secret") through the modem.

The device knows its product's ProductKey and ProductSecret and its own DeviceName
(pre-registered in the console); the command goes online through the modem with the
registration CONNECT, over TLS (host-side by default, ``--tls modem`` for offload),
waits at most ``--timeout`` seconds after the CONNACK for the platform's reply on
``/ext/register``, and writes the device's credentials — the ``[aliyun]`` table that
``--credentials FILE`` reads, DeviceSecret included — to ``--output FILE``, created
with mode 0600 (an existing file is kept unless ``--force``). The flow and what is
masked where: :mod:`atbridge.aliyun`.

Where to connect: ``--region`` (legacy public instance, default cn-shanghai),
``--instance-id`` (``<id>.mqtt.iothub.aliyuncs.com``, ``securemode=-2``) or
``--host`` (a private endpoint; ``--broker-port``, as ``publish``, since ``--port``
is the modem's). The CA is the bundled Aliyun IoT Root CA unless ``--cafile``.

The ProductSecret comes from ``--product-secret``, ``--product-secret-file`` or
``$ATBRIDGE_PRODUCT_SECRET`` (the option is visible in the process list: prefer the
other two); the ProductSecret and the DeviceSecret are never printed, logged or
written to the transcript. What it prints: the device registered, the file, the host.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from atbridge.commands.options import (
    DEFAULT_GIVE_UP,
    EXIT_CODES_EPILOG,
    dialect_name,
    output_options,
    port_options,
    positive_int,
    positive_seconds,
    seconds,
    whole_number,
)

if TYPE_CHECKING:
    from pathlib import Path

    from atbridge.credentials import AliyunProduct

HELP = "register a device with its cloud and store its credentials (Aliyun: one type one secret)"

_EPILOG = f"""\
example:
  ATBRIDGE_PRODUCT_SECRET=... atbridge register aliyun --port /dev/ttyACM0 \\
      --product-key a1B2c3D4e5F --device-name sensor-01 --region cn-shanghai \\
      --output sensor-01.toml
  atbridge publish --port /dev/ttyACM0 --credentials sensor-01.toml \
      -t /a1B2c3D4e5F/sensor-01/user/update -m hi

The DeviceSecret is returned once: keep the file (mode 0600). Registering a
device that is registered already gets no second secret.

{EXIT_CODES_EPILOG}
"""

#: Options -> the [bridge] key they set (the modem side; the credentials are built here).
_BRIDGE_KEYS = {
    "port": "port",
    "baud": "baudrate",
    "rtscts": "rtscts",
    "line_ending": "line_ending",
    "transcript": "transcript",
    "dialect": "dialect",
    "apn": "apn",
    "attach_timeout": "timeouts.attach",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``aliyun`` sub-command and its options."""
    kinds = parser.add_subparsers(dest="register_kind", metavar="KIND", required=True)
    aliyun = kinds.add_parser(
        "aliyun",
        parents=[
            port_options(),
            _modem_extras(),
            output_options(quiet=True, what="registration"),
        ],
        help="Alibaba Cloud IoT Platform: ProductKey + ProductSecret -> DeviceSecret",
        description="Dynamic registration of a pre-registered Aliyun IoT device (MQTT, "
        "authType=register), over TLS through the modem.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    device = aliyun.add_argument_group("device")
    device.add_argument("--product-key", metavar="PK", help="ProductKey ($ATBRIDGE_PRODUCT_KEY)")
    secret = device.add_mutually_exclusive_group()
    secret.add_argument(
        "--product-secret",
        metavar="PS",
        help="ProductSecret; prefer $ATBRIDGE_PRODUCT_SECRET or --product-secret-file, "
        "since options are visible in the process list and the shell history",
    )
    secret.add_argument(
        "--product-secret-file", metavar="F", help="read the ProductSecret from the first line of F"
    )
    device.add_argument("--device-name", metavar="DN", help="DeviceName ($ATBRIDGE_DEVICE_NAME)")
    device.add_argument(
        "--client-id", metavar="ID", help="free-text client id of the CONNECT (default <PK>.<DN>)"
    )
    where = aliyun.add_argument_group("where to register")
    place = where.add_mutually_exclusive_group()
    place.add_argument(
        "--region", metavar="R", help="region of a legacy public instance (default cn-shanghai)"
    )
    place.add_argument(
        "--instance-id", metavar="I", help="instance id (host <I>.mqtt.iothub.aliyuncs.com)"
    )
    place.add_argument("--host", metavar="H", help="a host of its own (private endpoint)")
    where.add_argument(
        "--broker-port", type=positive_int, metavar="N", help="the platform's port (default 8883)"
    )
    where.add_argument(
        "--tls",
        nargs="?",
        const="host",
        metavar="host|modem",
        help="where TLS runs: host (default: this computer, every dialect) or modem (offload, "
        "with --sec-tag)",
    )
    where.add_argument(
        "--cafile",
        metavar="F",
        help="the CA of the platform (default: the bundled Aliyun IoT Root CA)",
    )
    where.add_argument(
        "--sec-tag",
        type=whole_number,
        metavar="N",
        help="with --tls modem: the security tag that holds the CA (atbridge certs write)",
    )
    where.add_argument(
        "--keepalive", type=positive_int, metavar="S", help="MQTT Keep Alive (default 300)"
    )
    result = aliyun.add_argument_group("result")
    result.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="FILE",
        help="the credentials file to write (mode 0600; the [aliyun] table --credentials reads)",
    )
    result.add_argument("--force", action="store_true", help="replace FILE if it exists")
    result.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="how long to wait for the reply after the CONNACK (default 30)",
    )


def _modem_extras() -> argparse.ArgumentParser:
    from atbridge.dialects import DIALECTS  # light: a table of names

    parent = argparse.ArgumentParser(add_help=False)
    modem = parent.add_argument_group("modem and lifecycle")
    modem.add_argument(
        "--dialect",
        metavar="D",
        type=dialect_name,
        help=f"modem family: auto (default: ask the modem), {', '.join(DIALECTS)} (any case)",
    )
    modem.add_argument("--apn", metavar="A", help="access point name (default: the network's)")
    modem.add_argument(
        "--attach-timeout",
        type=positive_seconds,
        metavar="S",
        help="how long one registration attempt on the network may take (default 600)",
    )
    modem.add_argument(
        "--give-up-after",
        type=seconds,
        metavar="S",
        help=f"stop when not online for S seconds; 0 = never (default {DEFAULT_GIVE_UP:g})",
    )
    return parent


def run(args: argparse.Namespace) -> int:
    from atbridge.commands.session import run_bridge_command

    product, device_name = product_of(args)
    _check_output(args.output, force=args.force)  # before the one-time secret is asked for
    _check_tls(product, device_name, args.client_id)
    return run_bridge_command(lambda: _main(args, product, device_name))


def _check_output(path: str, *, force: bool) -> None:
    from pathlib import Path

    from atbridge.errors import ConfigurationError

    target = Path(path)
    if target.is_dir():
        raise ConfigurationError(f"--output {target} is a directory", hint="name a file")
    if target.exists() and not force:
        raise ConfigurationError(
            f"{target} exists: not overwritten",
            hint="pass --force to replace it, or give --output another file",
        )
    if not target.parent.is_dir():
        what = (
            f"{target.parent} is not a directory"
            if target.parent.exists()
            else f"the directory {target.parent} does not exist"
        )
        raise ConfigurationError(
            f"cannot write {target}: {what}",
            hint="create the directory, or give --output a file in an existing one",
        )
    _probe_writable(target)


def _probe_writable(target: Path) -> None:
    """Create and remove a file beside ``target``: the DeviceSecret comes once, so a
    directory it could not be written to is found before it is asked for (permissions,
    a read-only file system; also for root, whom ``os.access`` would not tell)."""
    import tempfile

    from atbridge.errors import ConfigurationError

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
    except OSError as error:
        raise ConfigurationError(
            f"cannot write {target}: {error.strerror or error} (in {target.parent})",
            hint="give --output a file in a directory you can write to: the DeviceSecret is "
            "returned only once, so atbridge checks the file can be written before it registers",
        ) from None
    os.close(fd)
    os.unlink(probe)


def _check_tls(product: AliyunProduct, device_name: str, client_id: str | None) -> None:
    """What the registration's TLS needs, checked before the port is opened: a security
    tag for TLS on the modem, a CA file host-side TLS can load."""
    from atbridge.credentials import TlsMode
    from atbridge.errors import ConfigurationError

    options = product.register_credentials(device_name, client_id=client_id).tls_options
    if options.mode is TlsMode.MODEM:
        if options.sec_tag is None:
            raise ConfigurationError(
                "--tls modem needs --sec-tag N: the security tag that holds the Aliyun IoT "
                "Root CA on the modem",
                hint="write it first (atbridge certs write --sec-tag N --ca "
                "atbridge/data/aliyun-iot-root-ca.pem), then give --sec-tag N; or drop "
                "--tls modem (host-side TLS, the default)",
            )
        return
    from atbridge.tls import client_context

    client_context(options)  # a CA file it cannot load is a ConfigurationError naming it


def _text(args: argparse.Namespace, option: str, variable: str) -> str:
    from atbridge.errors import ConfigurationError

    value = getattr(args, option) or os.environ.get(variable)
    if not value:
        flag = "--" + option.replace("_", "-")
        raise ConfigurationError(f"no {flag} given", hint=f"pass {flag} or set ${variable}")
    return str(value)


def _product_secret(args: argparse.Namespace) -> str:
    from atbridge.errors import ConfigurationError

    if args.product_secret_file is not None:
        try:
            with open(args.product_secret_file, encoding="utf-8") as handle:
                line = handle.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(
                f"cannot read the ProductSecret file {args.product_secret_file}: {reason}"
            ) from None
        if not line:
            raise ConfigurationError(f"the ProductSecret file {args.product_secret_file} is empty")
        return line
    value = args.product_secret or os.environ.get("ATBRIDGE_PRODUCT_SECRET")
    if not value:
        raise ConfigurationError(
            "no ProductSecret given",
            hint="set $ATBRIDGE_PRODUCT_SECRET, or pass --product-secret-file F",
        )
    return str(value)


def product_of(args: argparse.Namespace) -> tuple[AliyunProduct, str]:
    """The :class:`~atbridge.credentials.AliyunProduct` and the DeviceName the options give."""
    from atbridge.credentials import DEFAULT_ALIYUN_KEEPALIVE, AliyunProduct, Secret, TlsMode

    product = AliyunProduct(
        _text(args, "product_key", "ATBRIDGE_PRODUCT_KEY"),
        Secret(_product_secret(args)),
        region=args.region or os.environ.get("ATBRIDGE_ALIYUN_REGION") or "cn-shanghai",
        instance_id=args.instance_id,
        port=args.broker_port or 8883,
        keepalive=args.keepalive or DEFAULT_ALIYUN_KEEPALIVE,
        tls=TlsMode.of(args.tls or "host"),
        cafile=args.cafile,
        sec_tag=args.sec_tag,
        endpoint=args.host,
    )
    return product, _text(args, "device_name", "ATBRIDGE_DEVICE_NAME")


async def _main(args: argparse.Namespace, product: AliyunProduct, device_name: str) -> int:
    import sys

    from atbridge import aliyun
    from atbridge.commands.output import Output
    from atbridge.commands.session import Interrupted, Session
    from atbridge.commands.settings import given, resolve_farm_port
    from atbridge.config import load_config
    from atbridge.errors import Failed

    credentials = product.register_credentials(device_name, client_id=args.client_id)
    arguments = given(args, _BRIDGE_KEYS)
    defaults: dict[str, object] = {"retry_unreachable_broker": False}
    if args.give_up_after is not None:
        from atbridge.config import Setting

        arguments["give_up_after"] = Setting(args.give_up_after or None, "--give-up-after")
    else:
        defaults["give_up_after"] = DEFAULT_GIVE_UP
    config = load_config(
        args.config,
        env=os.environ,
        credentials=credentials,
        arguments=arguments,
        defaults=defaults,
    )
    config = resolve_farm_port(config, args)
    output = Output(json_lines=args.json, progress="none" if args.quiet else "stderr")

    session = Session(config, output)
    transitions = aliyun.prepare(session.bridge)
    async with session:
        try:
            device = await session.guard(
                aliyun.register(
                    session.bridge,
                    product,
                    device_name,
                    timeout=args.timeout,
                    transitions=transitions,
                )
            )
        except Interrupted:
            print("atbridge: interrupted before the registration reply", file=sys.stderr)
            return 130
        except Failed as failed:
            raise Failed(aliyun.registration_failure(failed.cause)) from None

    host, port = credentials.endpoint()
    aliyun.write_private(
        args.output,
        aliyun.credentials_toml(device, note=f"Registered by atbridge register aliyun at {host}."),
        force=args.force,
    )
    output.result(
        f"registered {device_name} of product {product.product_key} at {host}:{port}: "
        f"its credentials (DeviceSecret included) are in {args.output} (mode 0600)",
        {
            "registered": True,
            "product_key": product.product_key,
            "device_name": device_name,
            "host": host,
            "port": port,
            "tls": credentials.tls_mode.value,
            "output": str(args.output),
        },
    )
    return 0
