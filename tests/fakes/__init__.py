"""Fake cellular modems on a pty, one script per dialect, for tests, demos, benchmarks and HIL.

    async with FakeModem(dialect="nrf91-slm", registration_delay=0.1) as fake:
        ...  # open fake.port with pyserial; script faults with fake.send_urc(...), ...

The engine and the generic 3GPP dialect live in ``core``; each other dialect is one module
beside it that builds a ``Dialect`` and calls ``register_dialect``. Add a dialect by adding its
module and one import line below.
"""

from . import (
    nrf91_slm,  # noqa: F401  (registers "nrf91-slm")
    nrf91_sm,  # noqa: F401  (registers "nrf91-sm")
    sim7000,  # noqa: F401  (registers "sim7000")
    sim7080,  # noqa: F401  (registers "sim7080")
    sim7600,  # noqa: F401  (registers "sim7600")
)
from .core import (
    DIALECTS,
    Command,
    CommandError,
    Dialect,
    FakeModem,
    Handler,
    Identity,
    Kind,
    ModemState,
    Network,
    Response,
    register_dialect,
)

__all__ = [
    "DIALECTS",
    "Command",
    "CommandError",
    "Dialect",
    "FakeModem",
    "Handler",
    "Identity",
    "Kind",
    "ModemState",
    "Network",
    "Response",
    "register_dialect",
]
