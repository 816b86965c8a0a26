"""The fake network: socket connections bridged to real TCP on 127.0.0.1, and name resolution.

Theory of operation
-------------------
A fake modem's socket is one ``LoopbackConnection``: a real asyncio TCP connection from the fake
to a server the test runs on a loopback address. The connection forwards what happens on TCP
(connected, bytes from the peer, the peer's FIN, the connection gone) to its ``Receiver`` — the
dialect's socket object, which buffers the bytes and tells the host in the family's words. The
dialect closes (FIN after pending bytes) or aborts (reset) it, and pauses reading when its
receive buffer is full, so the peer sees TCP flow control and nothing is lost. ``detach()``
cuts the receiver off first, so a late TCP callback after a reboot reaches nobody; a connection
detached while it is still being made is aborted as soon as it is made.

Only loopback is reachable. ``resolve`` knows IPv4 literals, ``localhost`` and the names a test
adds with ``add_host`` (a hosts table per fake, kept across reboots, always loopback
addresses); any other name resolves to nothing, like a DNS lookup that found nothing. With the
``dns_fail`` scenario no name resolves at all (address literals still work), so each family's
DNS command reports its failed lookup.

With the ``connack_refused`` scenario the dialects send every connection to the fake's
``refusing_broker.RefusingBroker`` (``FakeModem.route``) instead: a stand-in for a broker that
refuses the login.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import weakref
from typing import TYPE_CHECKING, Final, Protocol, cast

if TYPE_CHECKING:
    from .core import FakeModem

__all__ = ["LOOPBACK", "LoopbackConnection", "Receiver", "add_host", "is_loopback", "resolve"]

log = logging.getLogger("tests.fakes.loopback")

LOOPBACK: Final = "127.0.0.1"

_HOSTS: weakref.WeakKeyDictionary[FakeModem, dict[str, str]] = weakref.WeakKeyDictionary()


def is_loopback(address: str) -> bool:
    """True for a loopback IPv4 address (``127.0.0.0/8``)."""
    try:
        return ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False


def is_ipv4(text: str) -> bool:
    """True for an IPv4 address literal."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def add_host(fake: FakeModem, name: str, address: str = LOOPBACK) -> None:
    """Make ``name`` resolve to ``address`` (a loopback IPv4 address) on this fake's network,
    for the DNS command and for opening sockets by name. Survives reboots."""
    if not is_loopback(address):
        raise ValueError(f"{address!r} is not a loopback IPv4 address")
    _HOSTS.setdefault(fake, {})[name.lower()] = address


def resolve(fake: FakeModem, host: str) -> str | None:
    """The IPv4 address the fake's network gives ``host``, None if it cannot resolve it."""
    if is_ipv4(host):
        return str(ipaddress.IPv4Address(host))
    if fake.scenario.dns_fail:
        return None  # the network's DNS server does not answer (``dns_fail``)
    name = host.lower()
    if name == "localhost":
        return LOOPBACK
    return _HOSTS.get(fake, {}).get(name)


class Receiver(Protocol):
    """What a dialect's socket hears from its TCP connection."""

    def on_connected(self, conn: LoopbackConnection) -> None:
        """The TCP connection is made (before ``connect`` returns)."""

    def on_data(self, data: bytes) -> None:
        """Bytes from the peer."""

    def on_eof(self) -> None:
        """The peer's FIN; ``on_lost`` follows (the fakes model no half-open socket)."""

    def on_lost(self, exc: Exception | None) -> None:
        """The connection is gone: ``exc`` None after an orderly close, else the error."""


class LoopbackConnection(asyncio.Protocol):
    """One fake socket's real TCP connection to a loopback server (see the module docstring)."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver: Receiver | None = receiver
        self._transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def connect(self, address: str, port: int, *, timeout: float) -> bool:
        """Open the TCP connection to ``address``:``port`` (loopback only); False if it cannot
        be made (refused, timed out, not loopback, detached meanwhile)."""
        if not is_loopback(address):
            self._receiver = None
            self.lost.set_result(None)
            return False
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: self, address, port)
        except (OSError, TimeoutError) as exc:
            log.debug("connect %s:%d failed: %s", address, port, exc)
            self._receiver = None
            if not self.lost.done():
                self.lost.set_result(None)
            return False
        return self._receiver is not None

    @property
    def closing(self) -> bool:
        """True once the connection is closed, closing or was never made."""
        return self._transport is None or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        """Send bytes to the peer (dropped once the connection is gone)."""
        if self._transport is not None and data:
            self._transport.write(data)

    def pause_reading(self) -> None:
        """Stop reading from TCP (the socket's receive buffer is full)."""
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from TCP again."""
        if self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        """Orderly close: FIN after the pending bytes."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Reset the connection now."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.abort()

    def detach(self) -> None:
        """Forget the receiver: later TCP callbacks reach nobody."""
        self._receiver = None

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the transport has released its socket."""
        if not self.lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.lost), timeout)
            except TimeoutError:
                log.warning("a loopback connection did not close in %.1f s", timeout)

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always a subclass of asyncio.Transport (uvloop's
        # TCPTransport is a C type): no isinstance check.
        transport = cast(asyncio.Transport, transport)
        if self._receiver is None:
            transport.abort()
            return
        self._transport = transport
        self._receiver.on_connected(self)

    def data_received(self, data: bytes) -> None:
        if self._receiver is not None:
            self._receiver.on_data(data)

    def eof_received(self) -> bool:
        if self._receiver is not None:
            self._receiver.on_eof()
        return False  # let the transport close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        if self._receiver is not None:
            self._receiver.on_lost(exc)
