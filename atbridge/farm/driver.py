"""``AtBridgeDriver``: atbridge as a labgrid driver, for a board in an environment YAML.

Theory of operation
-------------------
labgrid builds a target's drivers from its environment YAML through
``labgrid.target_factory``; a module listed under ``imports:`` is imported
first, so the ``@target_factory.reg_driver`` below makes ``AtBridgeDriver`` a
name the YAML can use (labgrid's "Writing a driver" and environment
configuration docs)::

    imports:
      - atbridge.farm.driver
    targets:
      main:
        resources:
          NetworkSerialPort: {host: rack-3, port: 3333, protocol: raw}
        drivers:
          AtBridgeDriver: {dialect: nrf91-slm}

The driver binds to the target's serial port — a ``NetworkSerialPort`` (what a
``RemotePlace`` expands to, or written out as above) or a local ``SerialPort``
(``RawSerialPort``, ``USBSerialPort``) — and gives tests the same objects
atbridge's own API has: :meth:`modem` (an opened :class:`~atbridge.modem.Modem`)
and :meth:`bridge` (a :class:`~atbridge.bridge.Bridge`, not started: ``async
with`` it). Like labgrid's ``SerialDriver`` it opens a network port as
``rfc2217://host:port?ign_set_control`` (``protocol: rfc2217``) or
``socket://host:port`` (``raw``) at the resource's ``speed``. It does not hold
the port open itself (atbridge's channel owns it while a test runs), so it
cannot be combined with a ``SerialDriver`` on the same port at the same time.

The URL is computed each time it is asked for (:attr:`url`), from the resource
as it is *now*: after a power cycle a USB serial port re-enumerates and labgrid
updates the resource, and the next :meth:`modem` opens the new one. Power or
reset (a ``PowerProtocol`` or ``DigitalOutputProtocol`` driver on the target)
is not driven by this driver; a strategy that cycles power and then asks for
:meth:`modem` gets the re-resolved port.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver  # type: ignore[import-untyped]
from labgrid.factory import target_factory  # type: ignore[import-untyped]

from atbridge.bridge import Bridge
from atbridge.credentials import MqttCredentials
from atbridge.modem import Modem


def port_url(resource: Any) -> tuple[str, int]:
    """The atbridge URL and speed of a labgrid serial resource."""
    if resource.__class__.__name__ == "NetworkSerialPort" or hasattr(resource, "protocol"):
        if resource.protocol == "raw":
            return f"socket://{resource.host}:{resource.port}", int(resource.speed)
        return f"rfc2217://{resource.host}:{resource.port}?ign_set_control", int(resource.speed)
    return str(resource.port), int(resource.speed)


@target_factory.reg_driver
@attr.s(eq=False)
class AtBridgeDriver(Driver):  # type: ignore[misc]
    """atbridge on a labgrid target's serial port (module doc)."""

    bindings: ClassVar[dict[str, set[str]]] = {"port": {"SerialPort", "NetworkSerialPort"}}

    dialect: str = attr.ib(default="auto", validator=attr.validators.instance_of(str))
    apn: str | None = attr.ib(default=None)

    @property
    def url(self) -> str:
        """Where the port is now (re-resolved on every use)."""
        return port_url(self.port)[0]

    @property
    def baudrate(self) -> int:
        return port_url(self.port)[1]

    @Driver.check_active  # type: ignore[untyped-decorator]
    async def modem(self, **options: Any) -> Modem:
        """An opened, synchronised :class:`~atbridge.modem.Modem` on the port."""
        return await Modem.open(self.url, baudrate=self.baudrate, **options)

    @Driver.check_active  # type: ignore[untyped-decorator]
    def bridge(self, credentials: MqttCredentials, **options: Any) -> Bridge:
        """A :class:`~atbridge.bridge.Bridge` on the port (``async with`` it to go online)."""
        options.setdefault("dialect", self.dialect)
        options.setdefault("apn", self.apn)
        options.setdefault("baudrate", self.baudrate)
        return Bridge(port=self.url, credentials=credentials, **options)


__all__ = ["AtBridgeDriver", "port_url"]
