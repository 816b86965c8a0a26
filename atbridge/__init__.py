"""atbridge: drive a cellular modem over AT commands from a host.

Importing the package is cheap: the asyncio and serial layers load only when
one of their names is first used, so ``atbridge --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atbridge.errors import (
    AtBridgeError,
    AtTimeout,
    BrokerRefused,
    ConfigurationError,
    LinkLost,
    LocalProtocolError,
    ModemError,
    ModemRebooted,
    ProtocolError,
    RemoteProtocolError,
    StepTimeout,
)

if TYPE_CHECKING:
    from atbridge.fsm import Bridge, BridgeConfig
    from atbridge.modem import Modem, Response

__version__ = "0.1.0"

__all__ = [
    "AtBridgeError",
    "AtTimeout",
    "Bridge",
    "BridgeConfig",
    "BrokerRefused",
    "ConfigurationError",
    "LinkLost",
    "LocalProtocolError",
    "Modem",
    "ModemError",
    "ModemRebooted",
    "ProtocolError",
    "RemoteProtocolError",
    "Response",
    "StepTimeout",
    "__version__",
]

_LAZY = {
    "Bridge": "atbridge.fsm",
    "BridgeConfig": "atbridge.fsm",
    "Modem": "atbridge.modem",
    "Response": "atbridge.modem",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atbridge' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
