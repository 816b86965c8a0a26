"""Aliyun IoT Platform: the CA a device trusts, and dynamic registration through the modem.

Theory of operation
-------------------
The credentials themselves (the signed client id, user name and password of
``securemode`` 2 and 3, the CONNECT of registration, the reply's parsing) are pure
and live in :mod:`atbridge.credentials`; this module does the few things around
them that touch files or the network:

- :func:`describe_ca`: what a CA file holds (subjects, the earliest expiry), for
  ``atbridge creds aliyun`` to say which CA securemode 2 will trust — the bundled
  Aliyun IoT Root CA (:data:`~atbridge.credentials.ALIYUN_ROOT_CA`) unless ``cafile``
  names another. It uses :meth:`ssl.SSLContext.get_ca_certs`, the same loading the TLS
  layer does, so a file that cannot be used fails here the same way.
- :func:`register`: "one type one secret" dynamic registration over MQTT (Aliyun doc
  "MQTT-based dynamic registration", help.aliyun.com/zh/iot/user-guide/
  mqtt-based-dynamic-registration; iotkit-embedded v3.2 ``src/dynamic_register/
  dynreg.c``; aliyun-iot-linkkit 1.2.13 ``linkkit.py``). The bridge goes online with
  the CONNECT of :meth:`~atbridge.credentials.AliyunProduct.register_credentials`
  (``<pk>.<dn>|securemode=2,authType=register,random=<r>,signmethod=hmacsha256|``,
  ``securemode=-2`` and ``instanceId=<id>`` for an instance, user name ``dn&pk``,
  password HMAC-SHA256 of ``deviceName<dn>productKey<pk>random<r>`` keyed by the
  ProductSecret, ``random`` from :mod:`secrets`), over TLS only (the platform has no
  plain-TCP registration). The platform answers with a CONNACK and, without being
  subscribed to, a PUBLISH on ``/ext/register`` whose JSON carries ``deviceSecret``;
  then it closes the connection. The bridge is told to expect that topic
  (:meth:`~atbridge.bridge.Bridge.expect_unsubscribed`); the wait for the reply is
  bounded (``timeout`` seconds from the CONNACK), and a connection that ends after
  the CONNACK with no reply is an error at once (no reconnect with the same nonce).
  A refused CONNACK is a :class:`~atbridge.errors.ConnectRefused` that says it was the
  registration, with what to check (exit 4 on the command line).
- :func:`credentials_toml` and :func:`write_private`: the registered device as the
  ``[aliyun]`` table :mod:`atbridge.config` reads, written to a file created with
  mode 0600 from its first byte (``O_CREAT | O_EXCL``; replacing an existing file goes
  through a new 0600 file renamed over it, so the old file's mode never applies).

The secrets (ProductSecret, the returned DeviceSecret) appear in no message, log or
transcript: the CONNECT's password is masked by its position and the ProductSecret by
its text (:mod:`atbridge.transcript`), the reply's ``"deviceSecret":"..."`` value as it
arrives (plain text on the serial line with TLS on the modem), and once parsed the
DeviceSecret is registered with the transcript as a text to mask too.

Not done: ``authType=regnwl`` (registration without pre-registration) gives a
DeviceToken and a client id to connect with ``securemode=-2,authType=connwl``
(:class:`~atbridge.credentials.AliyunTokenDevice`), but no ``[aliyun]`` key holds a
token, so :func:`register` asks for ``register`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atbridge.credentials import (
    ALIYUN_ROOT_CA,
    DEFAULT_ALIYUN_KEEPALIVE,
    DEFAULT_REGION,
    REGISTER_TOPIC,
    AliyunDevice,
    AliyunProduct,
    SignMethod,
    TlsMode,
)
from atbridge.errors import (
    ConfigurationError,
    ConnectRefused,
    Failed,
    RemoteProtocolError,
    StepTimeout,
)

if TYPE_CHECKING:
    from atbridge.bridge import Bridge
    from atbridge.fsm import Message, Transition

#: Seconds to wait for the ``/ext/register`` reply after the CONNACK (the platform sends
#: it at once; a slow link still carries ~200 bytes in well under this).
DEFAULT_REPLY_TIMEOUT = 30.0


# -- the CA ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaSummary:
    """What a CA file holds: its path, whether it is atbridge's bundled Aliyun IoT Root
    CA, the subject of each certificate and the earliest expiry (UTC)."""

    path: str
    bundled: bool
    subjects: tuple[str, ...]
    expires: datetime


def describe_ca(path: str) -> CaSummary:
    """The certificates of the CA file ``path`` (ConfigurationError if none can be used)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigurationError(
            f"cannot use the CA file {path}: {reason}",
            hint="give --cafile a readable PEM file of the CA that signed the broker's "
            "certificate (or leave it out: the bundled Aliyun IoT Root CA)",
        ) from None
    certificates = context.get_ca_certs()
    if not certificates:
        raise ConfigurationError(f"the CA file {path} holds no CA certificate")
    subjects = tuple(_name(cert.get("subject", ())) for cert in certificates)
    expires = min(
        datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
        for cert in certificates
    )
    bundled = os.path.realpath(path) == os.path.realpath(ALIYUN_ROOT_CA)
    return CaSummary(path, bundled, subjects, expires)


def _name(subject: object) -> str:
    """An X.509 name as ``ssl`` gives it (RDNs of (key, value) pairs), as ``C=CN, ...``."""
    short = {
        "countryName": "C",
        "stateOrProvinceName": "ST",
        "localityName": "L",
        "organizationName": "O",
        "organizationalUnitName": "OU",
        "commonName": "CN",
    }
    parts = []
    for rdn in subject if isinstance(subject, tuple) else ():
        for key, value in rdn:
            parts.append(f"{short.get(key, key)}={value}")
    return ", ".join(parts)


# -- the credentials file -------------------------------------------------------------------


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string (the same escapes: \", \\, \n, \uXXXX).
    return json.dumps(value, ensure_ascii=True)


def credentials_toml(device: AliyunDevice, *, note: str = "") -> str:
    """The ``[aliyun]`` table of ``device`` (only the keys that differ from the defaults,
    and the triple), as :func:`atbridge.config.load_credentials` reads it."""
    secret = device.device_secret
    assert not isinstance(secret, str)  # AliyunDevice made it a Secret
    lines = [
        "# An Alibaba Cloud IoT Platform device (the device triple), for --credentials FILE.",
        "# It holds the DeviceSecret: keep it readable by you only (it was written mode 0600).",
    ]
    if note:
        lines.append(f"# {note}")
    lines += [
        "",
        "[aliyun]",
        f"product_key = {_toml_string(device.product_key)}",
        f"device_name = {_toml_string(device.device_name)}",
        f"device_secret = {_toml_string(secret.reveal())}",
    ]
    optional: list[tuple[str, object, object]] = [
        ("sign_method", device.sign_method.value, SignMethod.HMACSHA256.value),
        ("secure_mode", device.secure_mode, None),  # always written: it decides TLS
        ("region", device.region, DEFAULT_REGION if device.instance_id else None),
        ("instance_id", device.instance_id, None),
        ("endpoint", device.endpoint, None),
        ("port", device.port, None),
        ("keepalive", device.keepalive, DEFAULT_ALIYUN_KEEPALIVE),
        ("tls", device.tls.value if device.tls is not None else None, TlsMode.HOST.value),
        ("cafile", device.cafile, None),
        ("sec_tag", device.sec_tag, None),
    ]
    for key, value, default in optional:
        if value is None or (value == default and key != "secure_mode"):
            continue
        shown = _toml_string(value) if isinstance(value, str) else str(value)
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def write_private(path: str | Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to ``path`` as a file only its owner can read (mode 0600, module doc).

    An existing file is an error unless ``force``; then it is replaced whole.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigurationError(
            f"--output {target} is a directory", hint="give --output the name of a file"
        )
    if not target.parent.is_dir():
        raise ConfigurationError(
            f"cannot write {target}: the directory {target.parent} does not exist",
            hint="create the directory, or give --output a file in an existing one",
        )
    if target.exists() and not force:
        raise ConfigurationError(
            f"{target} exists: not overwritten",
            hint="pass --force to replace it, or give --output another file",
        )
    data = text.encode("utf-8")
    try:
        if force:
            fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                os.fchmod(fd, 0o600)
                _write_all(fd, data)
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(target, flags, 0o600)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask left, exactly 0600
                _write_all(fd, data)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    target.unlink()
                raise
    except FileExistsError:
        raise ConfigurationError(
            f"{target} exists: not overwritten",
            hint="pass --force to replace it, or give --output another file",
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"cannot write {target}: {error.strerror or error}",
            hint="give --output a file in a directory you can write to",
        ) from None


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


# -- dynamic registration -----------------------------------------------------------------


#: What to check when the platform refuses the registration's CONNECT.
REFUSED_HINT = (
    "check the ProductKey, the ProductSecret and the DeviceName (the device must exist "
    "in the console for authType=register), and that dynamic registration is turned on "
    "for the product"
)


async def register(
    bridge: Bridge,
    product: AliyunProduct,
    device_name: str,
    *,
    timeout: float = DEFAULT_REPLY_TIMEOUT,
    transitions: AsyncIterator[Transition] | None = None,
) -> AliyunDevice:
    """Wait for the registration reply on ``bridge`` and return the registered device.

    ``bridge`` is built with :meth:`AliyunProduct.register_credentials` of
    ``device_name`` and told :meth:`~atbridge.bridge.Bridge.expect_unsubscribed` of
    ``/ext/register`` (:func:`prepare` does both); it may be started already, as long
    as ``transitions`` (its :meth:`~atbridge.bridge.Bridge.transitions`) was taken
    before it started. A lifecycle that gives up raises :class:`~atbridge.errors.Failed`
    (a refused CONNACK: :func:`registration_failure` of it as its cause).
    """
    stream = transitions if transitions is not None else bridge.transitions()
    message = await _reply(bridge, stream, timeout)
    device = product.parse_registration_reply(device_name, message.topic, message.payload)
    assert isinstance(device, AliyunDevice)  # /ext/register: a device secret
    add_secret = getattr(bridge.modem, "add_secret", None)  # the Modem (not every ModemPort)
    secret = device.device_secret
    if callable(add_secret) and not isinstance(secret, str):
        add_secret(secret.reveal())  # a second net, should the modem echo it
    return device


def prepare(bridge: Bridge) -> AsyncIterator[Transition]:
    """Tell ``bridge`` (not started yet) to expect the reply; its transitions from now on."""
    bridge.expect_unsubscribed(REGISTER_TOPIC)
    return bridge.transitions()


async def _reply(bridge: Bridge, transitions: AsyncIterator[Transition], timeout: float) -> Message:
    """The first message on ``/ext/register`` (module doc for the bounds)."""
    loop = asyncio.get_running_loop()
    messages = bridge.messages()
    getter: asyncio.Future[Message] = asyncio.ensure_future(anext(messages))
    deadline: float | None = None
    step: asyncio.Future[Transition] | None = None
    try:
        while True:
            if step is None:
                step = asyncio.ensure_future(anext(transitions))
            left = None if deadline is None else max(deadline - loop.time(), 0)
            waiting: set[asyncio.Future[Any]] = {getter, step}
            done, _ = await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                return getter.result()
            if not done:
                raise StepTimeout(
                    f"no registration reply on {REGISTER_TOPIC} within {timeout:g} s of the "
                    "CONNACK",
                    hint="the platform accepted the CONNECT but sent nothing: check that "
                    "dynamic registration is on for the product; raise --timeout on a slow link",
                )
            transition, step = step.result(), None
            if transition.new == "failed":
                failure = bridge.failure
                assert failure is not None
                raise Failed(registration_failure(failure))
            if transition.new == "online":
                deadline = loop.time() + timeout
            elif transition.old == "online":
                # The platform closes after its reply, which is queued before the close
                # is seen: take it if it came.
                if getter.done():
                    return getter.result()
                queued = bridge.take_message()
                if queued is not None:
                    return queued
                raise RemoteProtocolError(
                    f"the connection ended after the CONNACK without a registration reply "
                    f"on {REGISTER_TOPIC} ({transition.cause})",
                    hint="the platform closes it so for a device registered already, which "
                    "gets no second DeviceSecret: use its credentials file, or reset the "
                    "device in the console",
                )
    finally:
        for future in (getter, step):
            if future is not None and not future.done():
                future.cancel()
        for stream in (messages, transitions):  # stop listening (async generators)
            close = getattr(stream, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


def registration_failure(failure: BaseException) -> BaseException:
    """A refused CONNACK as a :class:`~atbridge.errors.ConnectRefused` that says it was the
    registration and what to check; any other failure as it is."""
    if isinstance(failure, ConnectRefused) and not failure.reason.startswith(_REFUSED):
        refused = ConnectRefused(failure.code, f"{_REFUSED}: {failure.reason}", hint=REFUSED_HINT)
        refused.__cause__ = failure
        return refused
    return failure


_REFUSED = "the registration was refused"
