"""Device credentials: what goes into CONNECT, and where to connect.

Theory of operation
-------------------
Every way of getting online ends in one :class:`MqttCredentials`: client id,
user name, password, host, port, TLS on/off (with its :class:`TlsOptions`) and
Keep Alive. The lifecycle opens a (TLS) socket to ``host:port`` and sends
:meth:`MqttCredentials.connect_packet`; the transcript layer masks every string
:meth:`MqttCredentials.secrets` returns. This module is pure: no sockets, no
clocks (a timestamp is whatever the caller passes), no randomness except the
registration nonce, which the caller may pass too.

Sources of credentials:

- :class:`AliyunDevice` — Alibaba Cloud IoT Platform, one device one secret
  (ProductKey, DeviceName, DeviceSecret). The client id is
  ``<clientId>|securemode=<2|3>,signmethod=<m>[,timestamp=<t>]|``, the user name
  ``<DeviceName>&<ProductKey>``, and the password the hex HMAC, keyed by the
  DeviceSecret, of the parameters sent, sorted by name:
  ``clientId<id>deviceName<dn>productKey<pk>[timestamp<t>]``. securemode 2 is
  TLS, 3 plain TCP (port 1883). The platform accepts Keep Alive 30..1200 s only.
  See "Aliyun over TLS" below for the port and the CA.
- :class:`AliyunProduct` — one type one secret (ProductKey, ProductSecret):
  :meth:`AliyunProduct.register_credentials` gives the CONNECT for dynamic
  registration (``authType=register`` for a pre-registered device, ``regnwl``
  without pre-registration) and :meth:`AliyunProduct.parse_registration_reply`
  turns the broker's ``/ext/register`` or ``/ext/regnwl`` PUBLISH into an
  :class:`AliyunDevice` or an :class:`AliyunTokenDevice`.
- :meth:`MqttCredentials.plain` — any broker, values used as given.
- :class:`PlainBroker` — the same, as a dataclass: the fields of a
  configuration file's ``[mqtt]`` table, as :class:`AliyunDevice` holds those
  of its ``[aliyun]`` table.

TLS is ``off``, ``host`` or ``modem`` (:class:`TlsMode`; ``true`` means ``host``):
on the host (:mod:`atbridge.tls`, over a plain TCP socket through any modem; the
default) or offloaded to the modem. :class:`TlsOptions` says what to trust (a CA
file, or the system's store), the client certificate and key (mutual TLS) and the
lowest TLS version; these are file names only, read by :mod:`atbridge.tls`.

Aliyun over TLS (securemode 2): the port and the CA
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Alibaba's "Establish MQTT connections" page (alibabacloud.com/help/doc-detail/73742)
offers two roots for the server's certificate: its own self-signed "Aliyun IoT Root
CA" (recommended, valid to 2053-07-04), used on **port 8883**, and GlobalSign Root CA
R1 (valid to 2028-01-28) on port 1883. atbridge takes the first: the certificate that
outlives any device, with TLS on 8883 (also the default port of Alibaba's Python SDK,
aliyun-iot-linkkit, for both the legacy ``<pk>.iot-as-mqtt.<region>.aliyuncs.com``
and the ``<instanceId>.mqtt.iothub.aliyuncs.com`` endpoints; the older C SDK,
iotkit-embedded v3, used 443). The CA is bundled, :data:`ALIYUN_ROOT_CA`
(``atbridge/data/aliyun-iot-root-ca.pem``: subject ``C=CN, ST=Zhejiang, L=Hangzhou,
O=Aliyun IoT, OU=Root CA, CN=Aliyun IoT Root CA``, self-signed, valid 2023-07-04 to
2053-07-04, SHA-256 fingerprint 7C:A4:38:A3:97:6B:52:42:D2:31:F8:61:49:98:22:DA:85:
58:31:38:27:35:83:6B:36:1E:7E:97:15:66:16:76; taken from the PyPI sdist
aliyun-iot-linkkit 1.2.13, ``linkkit/linkkit.py`` ``__ALIYUN_BROKER_CA_DATA``, the
second of its five roots), since no system CA store holds it. An instance with a CA
of its own (an Enterprise instance's custom certificate) names it with ``cafile``;
GlobalSign users set ``cafile`` to the system's copy and ``port = 1883``; a private
endpoint (or a test broker) is ``endpoint``. TLS runs on this host by default (any
modem); ``tls = "modem"`` offloads it, with the CA written to the modem first
(``atbridge certs write --ca`` the bundled file). securemode 3 stays plain TCP on 1883,
and TLS settings with it are refused.

Reading those tables from a TOML file and ``ATBRIDGE_*`` variables is the job
of :mod:`atbridge.config` (:func:`atbridge.config.load_credentials`): this
module reads no file and no environment.

Secrets (DeviceSecret, ProductSecret, device tokens, passwords) are held in
:class:`Secret`, whose ``repr`` and ``str`` are a mask; only
:meth:`Secret.reveal` gives the value. Error messages name the field and the
file, never a secret's value.

Size: the credential maths of both kinds (an Aliyun device, product or token device; plain
MQTT) and the TLS options they carry share one ``Secret`` and one vocabulary of checks; all of
it is pure code, without I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from atbridge.at_mqtt import NO_PROPERTIES, Connect, Properties, ProtocolVersion, Will
from atbridge.errors import ConfigurationError, RemoteProtocolError

MASK = "********"

#: Keep Alive range the Aliyun IoT Platform accepts (doc 73742).
ALIYUN_KEEPALIVE_RANGE = (30, 1200)
DEFAULT_ALIYUN_KEEPALIVE = 300
DEFAULT_KEEPALIVE = 60
DEFAULT_REGION = "cn-shanghai"

#: The bundled Aliyun IoT Root CA (PEM), trusted for securemode 2 unless ``cafile`` says
#: otherwise: see "Aliyun over TLS" in the module doc for what it is and where it is from.
ALIYUN_ROOT_CA = str(Path(__file__).resolve().parent / "data" / "aliyun-iot-root-ca.pem")
#: How :data:`ALIYUN_ROOT_CA` is named to a user.
ALIYUN_ROOT_CA_NAME = "bundled Aliyun IoT Root CA"
#: Ports of the platform: TLS with the Aliyun IoT Root CA, and plain TCP (module doc).
ALIYUN_TLS_PORT = 8883
ALIYUN_TCP_PORT = 1883


class Secret:
    """A secret string whose ``repr`` and ``str`` are a mask; :meth:`reveal` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value. Call it only where the value must leave the process."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def _as_secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


class SignMethod(StrEnum):
    """HMAC algorithms the Aliyun IoT Platform accepts for the MQTT password."""

    HMACMD5 = "hmacmd5"
    HMACSHA1 = "hmacsha1"
    HMACSHA256 = "hmacsha256"


_DIGESTS: Mapping[SignMethod, Callable[[], Any]] = {
    SignMethod.HMACMD5: hashlib.md5,
    SignMethod.HMACSHA1: hashlib.sha1,
    SignMethod.HMACSHA256: hashlib.sha256,
}


def aliyun_sign_content(params: Mapping[str, str]) -> str:
    """The signed text: ``name + value`` for each parameter, sorted by name (ASCII)."""
    return "".join(name + params[name] for name in sorted(params))


def aliyun_sign(key: Secret | str, method: SignMethod | str, params: Mapping[str, str]) -> Secret:
    """Lowercase hex HMAC of :func:`aliyun_sign_content` keyed by ``key``."""
    digest = _DIGESTS[_sign_method(method)]
    mac = hmac.new(_as_secret(key).reveal().encode(), aliyun_sign_content(params).encode(), digest)
    return Secret(mac.hexdigest())


def _sign_method(value: SignMethod | str) -> SignMethod:
    try:
        return SignMethod(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in SignMethod)
        raise ConfigurationError(
            f"sign_method {value!r} is not one of {choices}",
            hint="use hmacsha256 unless the product is set up otherwise",
        ) from None


def _check_range(name: str, value: int, low: int, high: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an integer in {low}..{high}{why}, got {value!r}")


def _check_text(name: str, value: str, *, forbidden: str = "") -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    if value != value.strip():
        raise ConfigurationError(f"{name} has leading or trailing white space: {value!r}")
    bad = sorted({c for c in value if c in forbidden or c.isspace() or c == "\x00"})
    if bad:
        raise ConfigurationError(f"{name} must not contain {''.join(bad)!r}: {value!r}")


# --- TLS -----------------------------------------------------------------------------

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "none")


class TlsMode(StrEnum):
    """Where TLS runs: not at all, on this host (any modem), or on the modem (offload)."""

    OFF = "off"
    HOST = "host"
    MODEM = "modem"

    @classmethod
    def _missing_(cls, value: object) -> TlsMode | None:
        # ``tls = true`` (the key was a switch before it had a place) means host-side TLS.
        if value is True or (isinstance(value, str) and value.strip().lower() in _ON):
            return cls.HOST
        if value is False or (isinstance(value, str) and value.strip().lower() in _OFF):
            return cls.OFF
        if isinstance(value, str) and value.strip().lower() != value:
            return cls._value2member_map_.get(value.strip().lower())  # type: ignore[return-value]
        return None

    @classmethod
    def of(cls, value: TlsMode | bool | str) -> TlsMode:
        """``value`` as a mode (``True``/``"1"``/``"on"`` are ``host``), or ConfigurationError."""
        if isinstance(value, bool):
            return cls.HOST if value else cls.OFF
        try:
            return cls(value)
        except ValueError:
            raise ConfigurationError(
                f"tls={value!r} is not one of 'off', 'host', 'modem'",
                hint='use tls = "host" (TLS on this computer, through any modem) or "off"',
            ) from None


#: The lowest TLS versions atbridge lets a user choose (TLS 1.0 and 1.1 are deprecated, RFC 8996).
TLS_VERSIONS = ("1.2", "1.3")


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How TLS is spoken when it is on: where, what to trust, who we are, how old at least.

    ``cafile`` ``None`` trusts the system's CA store; ``certfile`` (with ``keyfile``, or a
    PEM file holding both) is the client certificate for mutual TLS. Only names of files:
    :mod:`atbridge.tls` reads them (and says clearly when one cannot be read).
    """

    mode: TlsMode = TlsMode.HOST
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"
    #: TLS on the modem: the security tag its CA (and client certificate) were written
    #: to with ``atbridge certs write`` (``AT%CMNG``); host-side TLS ignores it.
    sec_tag: int | None = None
    #: TLS on the modem: peer verification, 0 none, 1 optional, 2 required (the default).
    peer_verify: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", TlsMode.of(self.mode))
        if self.sec_tag is not None and (
            isinstance(self.sec_tag, bool)
            or not isinstance(self.sec_tag, int)
            or not 0 <= self.sec_tag <= MAX_SEC_TAG
        ):
            raise ConfigurationError(
                f"sec_tag={self.sec_tag!r} must be a whole number from 0 to {MAX_SEC_TAG}",
                hint="give --sec-tag the security tag the CA was written to with atbridge certs",
            )
        if self.peer_verify not in (0, 1, 2) or isinstance(self.peer_verify, bool):
            raise ConfigurationError(
                f"peer_verify={self.peer_verify!r} must be 0 (none), 1 (optional) or 2 (required)"
            )
        if self.mode is TlsMode.OFF:
            raise ConfigurationError("TlsOptions are for TLS that is on (host or modem)")
        for name in ("cafile", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"{name} must be the name of a file, got {value!r}")
        if self.keyfile is not None and self.certfile is None:
            raise ConfigurationError(
                "keyfile was given without certfile",
                hint="pass the client certificate (--cert FILE) with its key (--key FILE)",
            )
        if self.min_version not in TLS_VERSIONS:
            raise ConfigurationError(
                f"tls_min_version={self.min_version!r} must be '1.2' or '1.3'",
                hint="TLS 1.0 and 1.1 are deprecated (RFC 8996); most brokers speak 1.2 and 1.3",
            )


#: The highest security tag a user may write (``AT%CMNG``: higher ones are the modem's).
MAX_SEC_TAG = 2147483647


def _tls_options(
    mode: TlsMode,
    cafile: str | None,
    certfile: str | None,
    keyfile: str | None,
    min_version: str,
    sec_tag: int | None = None,
) -> TlsOptions:
    """The options of TLS in ``mode`` (default ones when off); settings without TLS refused."""
    if mode is TlsMode.OFF:
        settings = (("cafile", cafile), ("certfile", certfile), ("keyfile", keyfile),
                    ("sec_tag", sec_tag))  # fmt: skip
        given = [name for name, value in settings if value is not None]
        if given or min_version != "1.2":
            named = ", ".join(given or ["tls_min_version"])
            raise ConfigurationError(
                f"{named} set but tls is off",
                hint='turn TLS on (tls = "host", --tls) or drop the TLS settings',
            )
        return TlsOptions()
    _refuse_files_on_the_modem(mode, cafile=cafile, certfile=certfile, keyfile=keyfile)
    return TlsOptions(mode, cafile, certfile, keyfile, min_version, sec_tag)  # type: ignore[arg-type]


def _refuse_files_on_the_modem(mode: TlsMode, **files: str | None) -> None:
    """TLS on the modem reads no file of this computer: a CA, certificate or key file given
    with it would be silently unused (the modem trusts what its security tag holds)."""
    given = [name for name, value in files.items() if value is not None]
    if mode is TlsMode.MODEM and given:
        raise ConfigurationError(
            f'{", ".join(given)} set with tls = "modem": TLS on the modem reads no file on '
            "this computer, it uses what is stored on the modem under sec_tag",
            hint="write the files to the modem (atbridge certs write --sec-tag N --ca FILE "
            "[--cert FILE --key FILE]) and give --sec-tag N; or use host-side TLS "
            "(--tls host), which reads them",
        )


# --- the result ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class MqttCredentials:
    """Everything the lifecycle needs to open the socket and send CONNECT.

    ``host`` is ``None`` only when none was configured (e.g. ``atbridge creds
    plain`` without ``--host``); :meth:`endpoint` insists on one. ``hidden`` holds
    further secrets the password was derived from (a DeviceSecret), so that
    :meth:`secrets` can tell the transcript to mask them too.
    """

    client_id: str
    username: str | None
    password: Secret | None
    host: str | None
    port: int
    tls: bool
    keepalive: int
    hidden: tuple[Secret, ...] = ()
    #: Where TLS runs and what it trusts (used only when ``tls`` is on).
    tls_options: TlsOptions = TlsOptions()

    def __post_init__(self) -> None:
        _check_range("port", self.port, 1, 65535)
        _check_range("keepalive", self.keepalive, 0, 65535, " seconds")
        if self.host is not None:
            _check_text("host", self.host, forbidden="/")

    @classmethod
    def plain(
        cls,
        *,
        client_id: str,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: Secret | str | None = None,
        tls: TlsMode | bool | str = False,
        keepalive: int = DEFAULT_KEEPALIVE,
        cafile: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        tls_min_version: str = "1.2",
        sec_tag: int | None = None,
    ) -> MqttCredentials:
        """Credentials for any broker, used as given (port 8883 with TLS, else 1883).

        ``tls`` is a :class:`TlsMode` (``True`` means ``host``); the CA file, the client
        certificate and key and the lowest TLS version apply only with TLS on, the
        security tag (``sec_tag``) only with TLS on the modem.
        """
        if not isinstance(client_id, str):
            raise ConfigurationError("client_id must be a string")
        mode = TlsMode.of(tls)
        on = mode is not TlsMode.OFF
        return cls(
            client_id=client_id,
            username=username,
            password=None if password is None else _as_secret(password),
            host=host,
            port=port if port is not None else (8883 if on else 1883),
            tls=on,
            keepalive=keepalive,
            tls_options=_tls_options(mode, cafile, certfile, keyfile, tls_min_version, sec_tag),
        )

    @property
    def tls_mode(self) -> TlsMode:
        """``off``, or where TLS runs (``host``: :mod:`atbridge.tls`; ``modem``: offload)."""
        return self.tls_options.mode if self.tls else TlsMode.OFF

    def endpoint(self) -> tuple[str, int]:
        """``(host, port)``; raises ConfigurationError when no host is configured."""
        if self.host is None:
            raise ConfigurationError("no MQTT host is configured", hint="give --host or set host")
        return self.host, self.port

    def secrets(self) -> tuple[str, ...]:
        """Every secret string to mask in logs and transcripts (password first)."""
        values = [s.reveal() for s in (self.password, *self.hidden) if s]
        return tuple(dict.fromkeys(values))

    def connect_packet(
        self,
        *,
        clean_session: bool = True,
        will: Will | None = None,
        protocol: ProtocolVersion = ProtocolVersion.MQTT_3_1_1,
        properties: Properties = NO_PROPERTIES,
    ) -> Connect:
        """The CONNECT packet these credentials produce."""
        return Connect(
            client_id=self.client_id,
            clean_session=clean_session,
            keepalive=self.keepalive,
            username=self.username,
            password=None if self.password is None else self.password.reveal().encode(),
            will=will,
            protocol=protocol,
            properties=properties,
        )

    def as_dict(self, *, show_secret: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; the password is the mask unless ``show_secret``."""
        password: str | None = None
        if self.password is not None:
            password = self.password.reveal() if show_secret else MASK
        return {
            "client_id": self.client_id,
            "username": self.username,
            "password": password,
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "keepalive": self.keepalive,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"MqttCredentials({fields})"


@dataclass(frozen=True, slots=True)
class PlainBroker:
    """Any MQTT broker, as a configuration file's ``[mqtt]`` table describes it.

    The fields are the keyword arguments of :meth:`MqttCredentials.plain`;
    :meth:`credentials` makes the :class:`MqttCredentials` (and validates them).
    """

    client_id: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: Secret | None = None
    #: ``off``, ``host`` or ``modem`` (``true`` means ``host``): see :class:`TlsMode`.
    tls: TlsMode = TlsMode.OFF
    keepalive: int = DEFAULT_KEEPALIVE
    #: TLS: the CA that signed the broker's certificate (None: the system's CA store).
    cafile: str | None = None
    #: TLS: the client certificate (PEM) for mutual TLS, and its key (None: in certfile).
    certfile: str | None = None
    keyfile: str | None = None
    #: TLS: the lowest version spoken, "1.2" or "1.3".
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    #: TLS on the modem: the security tag of its CA (``atbridge certs write``).
    sec_tag: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tls", TlsMode.of(self.tls))

    def credentials(self) -> MqttCredentials:
        """The MQTT credentials, used as given (port 8883 with TLS, else 1883)."""
        return MqttCredentials.plain(
            client_id=self.client_id,
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            tls=self.tls,
            keepalive=self.keepalive,
            cafile=self.cafile,
            certfile=self.certfile,
            keyfile=self.keyfile,
            tls_min_version=self.tls_min_version,
            sec_tag=self.sec_tag,
        )


# --- Aliyun, one device one secret ------------------------------------------------------


def aliyun_host(
    product_key: str, region: str = DEFAULT_REGION, instance_id: str | None = None
) -> str:
    """MQTT host: ``<instanceId>.mqtt.iothub.aliyuncs.com`` or the legacy public one."""
    if instance_id:
        return f"{instance_id}.mqtt.iothub.aliyuncs.com"
    return f"{product_key}.iot-as-mqtt.{region}.aliyuncs.com"


def _check_aliyun_keepalive(keepalive: int) -> None:
    low, high = ALIYUN_KEEPALIVE_RANGE
    _check_range(
        "keepalive", keepalive, low, high, " seconds (the Aliyun IoT Platform refuses others)"
    )


def _check_location(region: str, instance_id: str | None) -> None:
    _check_text("region", region, forbidden="/")
    if instance_id is not None:
        _check_text("instance_id", instance_id, forbidden="/|,")


@dataclass(frozen=True, slots=True, repr=False)
class AliyunDevice:
    """An Aliyun IoT device with its "triple" (one device one secret).

    ``client_id`` is the free-text part before the first ``|`` (default
    ``<ProductKey>.<DeviceName>``, as Aliyun's C SDK does). ``timestamp`` (ms) is
    optional: when ``None`` neither the client id nor the signature carries one.
    ``port`` defaults to 8883 with TLS (securemode 2) and 1883 without; with TLS the
    broker's certificate is checked against ``cafile``, by default the bundled Aliyun
    IoT Root CA (:data:`ALIYUN_ROOT_CA`; module doc, "Aliyun over TLS"). ``tls`` is
    where TLS runs (``host``, the default for securemode 2, or ``modem``);
    ``endpoint`` a host to connect to instead of the one the region or instance gives.
    """

    product_key: str
    device_name: str
    device_secret: Secret | str
    client_id: str | None = None
    timestamp: str | None = None
    sign_method: SignMethod = SignMethod.HMACSHA256
    secure_mode: int = 2
    region: str = DEFAULT_REGION
    instance_id: str | None = None
    port: int | None = None
    keepalive: int = DEFAULT_ALIYUN_KEEPALIVE
    #: Where TLS runs: ``None`` is ``host`` for securemode 2 and ``off`` for 3.
    tls: TlsMode | None = None
    #: The CA of the broker's certificate (None: the bundled Aliyun IoT Root CA).
    cafile: str | None = None
    #: A device certificate (PEM) for X.509 mutual TLS, and its key (None: in certfile).
    certfile: str | None = None
    keyfile: str | None = None
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    #: TLS on the modem: the security tag of the CA (``atbridge certs write``).
    sec_tag: int | None = None
    #: A host of its own (a private endpoint, a test broker) instead of the derived one.
    endpoint: str | None = None

    def __post_init__(self) -> None:
        _check_text("product_key", self.product_key, forbidden="&|,.")
        _check_text("device_name", self.device_name, forbidden="&|,")
        if self.tls is not None:
            object.__setattr__(self, "tls", TlsMode.of(self.tls))
        if self.endpoint is not None:
            _check_text("endpoint", self.endpoint, forbidden="/")
        if isinstance(self.device_secret, str):
            object.__setattr__(self, "device_secret", Secret(self.device_secret))
        if not isinstance(self.device_secret, Secret) or not self.device_secret:
            raise ConfigurationError("device_secret must be a non-empty string")
        if self.client_id is not None:
            _check_text("client_id", self.client_id, forbidden="|")
            if len(self.client_id) > 64:
                raise ConfigurationError(
                    f"client_id is {len(self.client_id)} characters; Aliyun allows at most 64"
                )
        if self.timestamp is not None and not (
            isinstance(self.timestamp, str) and self.timestamp.isdigit()
        ):
            raise ConfigurationError(
                f"timestamp must be milliseconds since the epoch (digits only), "
                f"got {self.timestamp!r}"
            )
        object.__setattr__(self, "sign_method", _sign_method(self.sign_method))
        if self.secure_mode not in (2, 3):
            raise ConfigurationError(
                f"secure_mode must be 2 (TLS) or 3 (plain TCP), got {self.secure_mode!r}",
                hint="new Aliyun instances accept TLS only: use 2",
            )
        _check_location(self.region, self.instance_id)
        if self.port is not None:
            _check_range("port", self.port, 1, 65535)
        _check_aliyun_keepalive(self.keepalive)
        if self.secure_mode == 3 and self.tls not in (None, TlsMode.OFF):
            raise ConfigurationError(
                f"tls={self.tls.value!r} with secure_mode 3, which is plain TCP",
                hint="use secure_mode = 2 for TLS (the platform's default), or drop tls",
            )
        if self.secure_mode == 2 and self.tls is TlsMode.OFF:
            raise ConfigurationError(
                "tls is off but secure_mode 2 means TLS",
                hint="use secure_mode = 3 for plain TCP (refused by new instances), or drop tls",
            )

    @property
    def tls_mode(self) -> TlsMode:
        """Where TLS runs: ``off`` for securemode 3, else ``tls`` (default ``host``)."""
        if self.secure_mode == 3:
            return TlsMode.OFF
        return self.tls or TlsMode.HOST

    @property
    def host(self) -> str:
        """The MQTT host: ``endpoint``, else that of the instance (or of the legacy public
        instance in ``region``)."""
        return self.endpoint or aliyun_host(self.product_key, self.region, self.instance_id)

    @property
    def trusted_ca(self) -> str | None:
        """The CA file host-side TLS trusts (``cafile`` or :data:`ALIYUN_ROOT_CA`); ``None``
        without host-side TLS (plain TCP, or TLS on the modem: its security tag's CA)."""
        if self.tls_mode is TlsMode.HOST:
            return self.cafile or ALIYUN_ROOT_CA
        return self.cafile if self.tls_mode is TlsMode.MODEM else None  # refused when set

    @property
    def base_client_id(self) -> str:
        """The free-text client id (before the first ``|``)."""
        return self.client_id or f"{self.product_key}.{self.device_name}"

    def mqtt_client_id(self) -> str:
        """``<clientId>|securemode=..,signmethod=..[,timestamp=..]|``."""
        params = f"securemode={self.secure_mode},signmethod={self.sign_method.value}"
        if self.timestamp is not None:
            params += f",timestamp={self.timestamp}"
        return f"{self.base_client_id}|{params}|"

    def sign_params(self) -> dict[str, str]:
        """The signed parameters: clientId, deviceName, productKey[, timestamp]."""
        params = {
            "clientId": self.base_client_id,
            "deviceName": self.device_name,
            "productKey": self.product_key,
        }
        if self.timestamp is not None:
            params["timestamp"] = self.timestamp
        return params

    def password(self) -> Secret:
        """Lowercase hex HMAC of the sorted parameters, keyed by the DeviceSecret."""
        return aliyun_sign(self.device_secret, self.sign_method, self.sign_params())

    def password_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` (another tool's password) equals ours; hex case is ignored."""
        mine = self.password().reveal().encode()
        return hmac.compare_digest(mine, candidate.strip().lower().encode())

    def credentials(self) -> MqttCredentials:
        """The MQTT credentials of this device (the port and CA: module doc)."""
        mode = self.tls_mode
        on = mode is not TlsMode.OFF
        default_port = ALIYUN_TLS_PORT if on else ALIYUN_TCP_PORT
        return MqttCredentials(
            client_id=self.mqtt_client_id(),
            username=f"{self.device_name}&{self.product_key}",
            password=self.password(),
            host=self.host,
            port=self.port if self.port is not None else default_port,
            tls=on,
            keepalive=self.keepalive,
            hidden=(_as_secret(self.device_secret),),
            tls_options=_tls_options(
                mode,
                self.trusted_ca if on else self.cafile,  # a CA without TLS: refused
                self.certfile,
                self.keyfile,
                self.tls_min_version,
                self.sec_tag,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"AliyunDevice(product_key={self.product_key!r}, device_name={self.device_name!r}, "
            f"device_secret={self.device_secret!r}, client_id={self.base_client_id!r}, "
            f"sign_method={self.sign_method.value!r}, secure_mode={self.secure_mode}, "
            f"host={self.host!r})"
        )


# --- Aliyun, one type one secret (dynamic registration) -----------------------------------


def _registration_tls(mode: TlsMode, cafile: str | None, sec_tag: int | None) -> TlsOptions:
    """TLS of registration and of token devices: the bundled CA unless ``cafile``."""
    _refuse_files_on_the_modem(mode, cafile=cafile)
    trusted = (cafile or ALIYUN_ROOT_CA) if mode is TlsMode.HOST else None
    return TlsOptions(mode, cafile=trusted, sec_tag=sec_tag)


REGISTER_TOPIC = "/ext/register"
REGISTER_NO_PREREGISTRATION_TOPIC = "/ext/regnwl"


@dataclass(frozen=True, slots=True, repr=False)
class AliyunTokenDevice:
    """A device registered without pre-registration: it connects with a DeviceToken."""

    product_key: str
    device_name: str
    client_id: str
    device_token: Secret
    region: str = DEFAULT_REGION
    instance_id: str | None = None
    port: int = ALIYUN_TLS_PORT
    keepalive: int = DEFAULT_ALIYUN_KEEPALIVE
    #: TLS as for :class:`AliyunDevice`: where it runs, the CA (None: the bundled one),
    #: the security tag of TLS on the modem, a host of its own.
    tls: TlsMode = TlsMode.HOST
    cafile: str | None = None
    sec_tag: int | None = None
    endpoint: str | None = None

    def credentials(self) -> MqttCredentials:
        """``<clientId>|securemode=-2,authType=connwl|``, ``dn&pk``, the token as password."""
        return MqttCredentials(
            client_id=f"{self.client_id}|securemode=-2,authType=connwl|",
            username=f"{self.device_name}&{self.product_key}",
            password=self.device_token,
            host=self.endpoint or aliyun_host(self.product_key, self.region, self.instance_id),
            port=self.port,
            tls=True,
            keepalive=self.keepalive,
            tls_options=_registration_tls(self.tls, self.cafile, self.sec_tag),
        )

    def __repr__(self) -> str:
        return (
            f"AliyunTokenDevice(product_key={self.product_key!r}, "
            f"device_name={self.device_name!r}, client_id={self.client_id!r}, "
            f"device_token={self.device_token!r})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class AliyunProduct:
    """A product with its ProductSecret, for one-type-one-secret dynamic registration.

    Registration runs over TLS only (the platform has no plain-TCP registration):
    ``port`` defaults to 8883 and the CA to the bundled Aliyun IoT Root CA, as for
    :class:`AliyunDevice` (module doc); ``tls`` is ``host`` (default) or ``modem``,
    ``cafile``, ``sec_tag`` and ``endpoint`` as there. The device it registers gets
    the same location and TLS settings.
    """

    product_key: str
    product_secret: Secret
    region: str = DEFAULT_REGION
    instance_id: str | None = None
    sign_method: SignMethod = SignMethod.HMACSHA256
    port: int = ALIYUN_TLS_PORT
    keepalive: int = DEFAULT_ALIYUN_KEEPALIVE
    tls: TlsMode = TlsMode.HOST
    cafile: str | None = None
    sec_tag: int | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        _check_text("product_key", self.product_key, forbidden="&|,.")
        if not isinstance(self.product_secret, Secret) or not self.product_secret:
            raise ConfigurationError("product_secret must be a non-empty string")
        object.__setattr__(self, "sign_method", _sign_method(self.sign_method))
        _check_location(self.region, self.instance_id)
        _check_range("port", self.port, 1, 65535)
        _check_aliyun_keepalive(self.keepalive)
        object.__setattr__(self, "tls", TlsMode.of(self.tls))
        if self.tls is TlsMode.OFF:
            raise ConfigurationError(
                "dynamic registration runs over TLS only",
                hint="use TLS on this host (--tls host, the default) or on the modem",
            )
        _refuse_files_on_the_modem(self.tls, cafile=self.cafile)
        if self.endpoint is not None:
            _check_text("endpoint", self.endpoint, forbidden="/")

    @property
    def host(self) -> str:
        """The host registration connects to: ``endpoint``, else the instance's or region's."""
        return self.endpoint or aliyun_host(self.product_key, self.region, self.instance_id)

    def register_credentials(
        self,
        device_name: str,
        *,
        preregistered: bool = True,
        random: str | None = None,
        client_id: str | None = None,
    ) -> MqttCredentials:
        """The CONNECT credentials that ask the platform for this device's credentials.

        ``preregistered`` selects ``authType=register`` (the device exists in the
        console; the reply on ``/ext/register`` carries its DeviceSecret) or
        ``regnwl`` (no pre-registration; ``/ext/regnwl`` carries a DeviceToken).
        ``random`` is the nonce (default: 16 random hex digits).
        """
        _check_text("device_name", device_name, forbidden="&|,")
        nonce = random if random is not None else _random.token_hex(8)
        _check_text("random", nonce, forbidden="|,=")
        base = client_id or f"{self.product_key}.{device_name}"
        _check_text("client_id", base, forbidden="|")
        auth_type = "register" if preregistered else "regnwl"
        secure_mode = -2 if self.instance_id else 2
        params = (
            f"securemode={secure_mode},authType={auth_type},random={nonce},"
            f"signmethod={self.sign_method.value}"
        )
        if self.instance_id:
            params += f",instanceId={self.instance_id}"
        password = aliyun_sign(
            self.product_secret,
            self.sign_method,
            {"deviceName": device_name, "productKey": self.product_key, "random": nonce},
        )
        return MqttCredentials(
            client_id=f"{base}|{params}|",
            username=f"{device_name}&{self.product_key}",
            password=password,
            host=self.host,
            port=self.port,
            tls=True,
            keepalive=self.keepalive,
            hidden=(self.product_secret,),
            tls_options=_registration_tls(self.tls, self.cafile, self.sec_tag),
        )

    def parse_registration_reply(
        self, device_name: str, topic: str, payload: bytes
    ) -> AliyunDevice | AliyunTokenDevice:
        """Turn the registration reply PUBLISH into the device's own credentials.

        Raises RemoteProtocolError (naming the missing field, never echoing the
        payload, which holds a secret) when the reply is not what the platform
        documents.
        """
        if topic not in (REGISTER_TOPIC, REGISTER_NO_PREREGISTRATION_TOPIC):
            raise RemoteProtocolError(
                f"unexpected topic {topic!r} for a registration reply "
                f"(expected {REGISTER_TOPIC} or {REGISTER_NO_PREREGISTRATION_TOPIC})"
            )
        try:
            reply = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise RemoteProtocolError(
                f"the registration reply on {topic} is not JSON ({len(payload)} bytes)"
            ) from None
        if not isinstance(reply, dict):
            raise RemoteProtocolError(f"the registration reply on {topic} is not a JSON object")

        def text(key: str) -> str:
            value = reply.get(key)
            if not isinstance(value, str) or not value:
                raise RemoteProtocolError(
                    f"the registration reply on {topic} has no {key!r} string",
                    hint="the product may not allow dynamic registration; check the console",
                )
            return value

        product_key = reply.get("productKey", self.product_key)
        name = reply.get("deviceName", device_name)
        if product_key != self.product_key or name != device_name:
            raise RemoteProtocolError(
                f"the registration reply on {topic} is for {name!r} of {product_key!r}, "
                f"not {device_name!r} of {self.product_key!r}"
            )
        if topic == REGISTER_TOPIC:
            return AliyunDevice(
                self.product_key,
                device_name,
                Secret(text("deviceSecret")),
                sign_method=self.sign_method,
                region=self.region,
                instance_id=self.instance_id,
                port=self.port,
                keepalive=self.keepalive,
                tls=self.tls,
                cafile=self.cafile,
                sec_tag=self.sec_tag,
                endpoint=self.endpoint,
            )
        return AliyunTokenDevice(
            self.product_key,
            device_name,
            text("clientId"),
            Secret(text("deviceToken")),
            region=self.region,
            instance_id=self.instance_id,
            port=self.port,
            keepalive=self.keepalive,
            tls=self.tls,
            cafile=self.cafile,
            sec_tag=self.sec_tag,
            endpoint=self.endpoint,
        )

    def __repr__(self) -> str:
        return (
            f"AliyunProduct(product_key={self.product_key!r}, "
            f"product_secret={self.product_secret!r}, region={self.region!r}, "
            f"instance_id={self.instance_id!r})"
        )
