"""atbridge: drive a cellular modem over AT commands from a host.

Importing the package is cheap: the asyncio and serial layers load only when
one of their names is first used, so ``atbridge --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atbridge.errors import (
    CONNACK_REFUSALS,
    AtBridgeError,
    AtTimeout,
    BrokerRefused,
    CloseReason,
    ConfigurationError,
    ConnectRefused,
    Failed,
    LinkLost,
    LocalProtocolError,
    MalformedPacket,
    MissingInformation,
    ModemError,
    ModemRebooted,
    NotConnected,
    Offline,
    PacketTooLarge,
    PingTimeout,
    PlaceUnavailable,
    PlotError,
    PortNotFound,
    ProtocolError,
    PublishRefused,
    QueueFull,
    Refusal,
    RegistrationLost,
    RemoteProtocolError,
    ResyncFailed,
    SimNotReady,
    SocketClosed,
    SocketError,
    StepTimeout,
    SubscribeRefused,
    TlsError,
    TlsProtocolError,
    TlsRefused,
    UnsupportedFirmware,
    describe_error,
)

if TYPE_CHECKING:
    from atbridge.bridge import Bridge
    from atbridge.config import BridgeConfig
    from atbridge.modem import Modem, Response


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atbridge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


#: The installed distribution's version (pyproject.toml is the one place it is written).
__version__ = _version()

__all__ = [
    "CONNACK_REFUSALS",
    "AtBridgeError",
    "AtTimeout",
    "Bridge",
    "BridgeConfig",
    "BrokerRefused",
    "CloseReason",
    "ConfigurationError",
    "ConnectRefused",
    "Failed",
    "LinkLost",
    "LocalProtocolError",
    "MalformedPacket",
    "MissingInformation",
    "Modem",
    "ModemError",
    "ModemRebooted",
    "NotConnected",
    "Offline",
    "PacketTooLarge",
    "PingTimeout",
    "PlaceUnavailable",
    "PlotError",
    "PortNotFound",
    "ProtocolError",
    "PublishRefused",
    "QueueFull",
    "Refusal",
    "RegistrationLost",
    "RemoteProtocolError",
    "Response",
    "ResyncFailed",
    "SimNotReady",
    "SocketClosed",
    "SocketError",
    "StepTimeout",
    "SubscribeRefused",
    "TlsError",
    "TlsProtocolError",
    "TlsRefused",
    "UnsupportedFirmware",
    "__version__",
    "describe_error",
]

_LAZY = {
    "Bridge": "atbridge.bridge",
    "BridgeConfig": "atbridge.config",
    "Modem": "atbridge.modem",
    "Response": "atbridge.modem",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atbridge' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
