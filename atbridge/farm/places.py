"""``labgrid://PLACE``: a labgrid place as a modem port, acquired for as long as it is used.

Theory of operation
-------------------
labgrid (https://labgrid.readthedocs.io, ``labgrid.remote.client``) keeps its
boards on *exporters*; a ``labgrid-coordinator`` knows every exporter's
resources and every *place* (a named set of resource matches, e.g.
``exporter/group/NetworkSerialPort``). A place is used by *acquiring* it: the
coordinator marks it ``acquired`` by ``host/user`` and tells the exporters, and
an exporter serving a ``RawSerialPort`` or ``USBSerialPort`` then starts a
ser2net for it (accepter ``telnet(rfc2217)``) and publishes it as a
``NetworkSerialPort`` with ``host``, ``port``, ``speed`` and ``protocol``
(``rfc2217`` or ``raw``). Acquisition outlives the client connection (as with
``labgrid-client acquire``), so it must be released explicitly.

:func:`acquire_place` does exactly that through labgrid's own
:class:`~labgrid.remote.client.ClientSession`: connect (``LG_COORDINATOR`` or
the URL's coordinator, default ``127.0.0.1:20408``), find the place by name or
alias, refuse clearly when someone else holds it (:class:`PlaceUnavailable`:
``place P is acquired by USER@HOST``), acquire it (``AcquirePlace``), then wait
for the exporter's update that gives its serial port a TCP port (ser2net is
up) and return a :class:`PlaceLease` with the URL to open:
``rfc2217://host:port?ign_set_control`` (labgrid's own ``SerialDriver`` opens it
the same way) or ``socket://host:port`` for a raw port, and the resource's
``speed``. A place this user already holds on this host (``labgrid-client
acquire`` beforehand) is used as it is and left acquired. The session runs in a
worker thread with its own event loop, so a caller inside a running loop (every
atbridge command) can use it; every wait is bounded.

URLs: ``labgrid://PLACE``, ``labgrid://HOST:PORT/PLACE`` (the coordinator),
``...?resource=NAME`` to pick one serial resource of a place that has several.

labgrid is optional: without it every entry point raises a
:class:`~atbridge.errors.ConfigurationError` saying ``pip install
'atbridge[labgrid]'``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from atbridge.errors import ConfigurationError, PlaceUnavailable, PortNotFound

SCHEME = "labgrid://"
#: labgrid's own default (``labgrid-client -x``).
DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: How long connecting, acquiring and waiting for the exporter's ser2net may take.
DEFAULT_TIMEOUT = 30.0
INSTALL_HINT = "install labgrid: pip install 'atbridge[labgrid]'"

T = TypeVar("T")


@dataclass(frozen=True)
class LabgridUrl:
    """A parsed ``labgrid://`` port: which coordinator, which place, which serial resource."""

    coordinator: str
    place: str
    resource: str | None = None

    def __str__(self) -> str:
        query = f"?resource={self.resource}" if self.resource else ""
        return f"{SCHEME}{self.coordinator}/{self.place}{query}"


def is_labgrid_url(text: object) -> bool:
    return isinstance(text, str) and text.startswith(SCHEME)


def parse_labgrid_url(text: str, env: Mapping[str, str] | None = None) -> LabgridUrl:
    """``labgrid://[HOST:PORT/]PLACE[?resource=NAME]`` -> :class:`LabgridUrl`."""
    env = os.environ if env is None else env
    if not is_labgrid_url(text):
        raise ConfigurationError(f"{text!r} is not a labgrid:// port", hint="use labgrid://PLACE")
    rest, _, query = text[len(SCHEME) :].partition("?")
    coordinator, _, place = rest.rpartition("/")
    coordinator = coordinator or env.get("LG_COORDINATOR") or DEFAULT_COORDINATOR
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - {"resource"})
    if not place or unknown or "/" in coordinator:
        what = f"unknown option {unknown[0]!r}" if unknown else "no place named"
        raise ConfigurationError(
            f"port {text!r}: {what}",
            hint="use labgrid://PLACE, labgrid://HOST:PORT/PLACE or labgrid://PLACE?resource=NAME",
        )
    resource = params.get("resource", [None])[-1] or None
    return LabgridUrl(coordinator, place, resource)


def owner_text(acquired: str) -> str:
    """labgrid's ``host/user`` as ``user@host``."""
    host, _, user = acquired.partition("/")
    return f"{user}@{host}" if user else acquired


@dataclass(frozen=True)
class SerialResource:
    """One serial resource of a place, as the coordinator describes it."""

    path: str  # exporter/group/cls/name
    name: str
    host: str | None
    port: int | None
    speed: int
    protocol: str
    avail: bool
    proxy_required: bool = False

    @property
    def url(self) -> str:
        if self.protocol == "raw":
            return f"socket://{self.host}:{self.port}"
        return f"rfc2217://{self.host}:{self.port}?ign_set_control"


@dataclass
class PlaceLease:
    """A place in use: open ``url`` at ``baudrate``; :meth:`release` when done."""

    place: str
    coordinator: str
    url: str
    baudrate: int
    resource: str
    owner: str
    acquired_here: bool
    released: bool = field(default=False, compare=False)
    timeout: float = DEFAULT_TIMEOUT

    def release(self) -> None:
        """Release the place if this lease acquired it (idempotent)."""
        if self.released or not self.acquired_here:
            self.released = True
            return
        self.released = True
        release_place(self.coordinator, self.place, timeout=self.timeout)


@dataclass(frozen=True)
class PlaceInfo:
    """A place as ``atbridge ports --labgrid`` lists it."""

    name: str
    acquired: str | None
    tags: dict[str, str]
    comment: str
    serial: list[SerialResource]


def _client() -> Any:
    """labgrid's client module, or how to install it."""
    try:
        from labgrid.remote import client  # type: ignore[import-untyped]
    except ImportError as error:
        raise ConfigurationError(
            f"labgrid:// ports need labgrid, which is not installed ({error})", hint=INSTALL_HINT
        ) from None
    return client


def _run(work: Callable[[], Awaitable[T]], timeout: float, coordinator: str) -> T:
    """Run ``work`` on its own event loop in a worker thread; at most ``timeout`` seconds."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        async def bounded() -> T:
            async with asyncio.timeout(timeout):
                return await work()

        try:
            outcome["value"] = asyncio.run(bounded())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name="atbridge-labgrid", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, TimeoutError):
        raise PlaceUnavailable(
            f"the labgrid coordinator {coordinator} did not answer within {timeout:g} s",
            hint="is labgrid-coordinator running there? set LG_COORDINATOR or labgrid://HOST:PORT/P",
        )
    if error is not None:
        raise error
    value: T = outcome["value"]
    return value


@contextlib.asynccontextmanager
async def _session(coordinator: str) -> AsyncIterator[Any]:
    """A started labgrid ClientSession that signals every resource or place update."""
    import argparse

    client = _client()

    class Session(client.ClientSession):  # type: ignore[misc,name-defined]
        def __attrs_post_init__(self) -> None:
            super().__attrs_post_init__()
            self.updated = asyncio.Event()

        async def on_resource_changed(self, *args: Any) -> None:
            await super().on_resource_changed(*args)
            self.updated.set()

        async def on_place_changed(self, *args: Any) -> None:
            await super().on_place_changed(*args)
            self.updated.set()

    address = coordinator if ":" in coordinator.rpartition("]")[2] else f"{coordinator}:20408"
    args = argparse.Namespace(place=None, allow_unmatched=False, kick=False)
    session = Session(address, asyncio.get_running_loop(), args=args)
    try:
        try:
            await session.start()
        except client.Error as error:
            raise PlaceUnavailable(
                f"cannot reach the labgrid coordinator {coordinator}: {error}",
                hint="is labgrid-coordinator running? set LG_COORDINATOR or labgrid://HOST:PORT/P",
            ) from None
        yield session
    finally:
        with contextlib.suppress(Exception):
            await session.stop()
        with contextlib.suppress(Exception):
            await session.close()


def _me(session: Any) -> str:
    return f"{session.gethostname()}/{session.getuser()}"


def _find(session: Any, name: str, coordinator: str) -> Any:
    """The place called ``name`` (or with that alias)."""
    places = session.places
    if name in places:
        return places[name]
    for place in places.values():
        if name in place.aliases:
            return place
    known = ", ".join(sorted(places)) or "none"
    raise PortNotFound(
        f"labgrid place {name!r} does not exist on {coordinator} (places: {known})",
        hint="`atbridge ports --labgrid` lists the places with serial ports",
    )


def _serial_resources(session: Any, place: Any) -> list[SerialResource]:
    """The serial resources a place matches (all of them, acquired or not)."""
    found = []
    for exporter, groups in sorted(session.resources.items()):
        for group_name, group in sorted(groups.items()):
            for resource_name, entry in sorted(group.items()):
                if not entry.data.get("cls"):
                    continue  # deleted
                path = (exporter, group_name, entry.cls, resource_name)
                if entry.cls != "NetworkSerialPort" or place.getmatch(path) is None:
                    continue
                match = place.getmatch(path)
                params = entry.params
                found.append(
                    SerialResource(
                        path="/".join(path),
                        name=match.rename or resource_name,
                        host=params.get("host"),
                        port=params.get("port"),
                        speed=int(params.get("speed") or 115200),
                        protocol=str(params.get("protocol") or "rfc2217"),
                        avail=bool(entry.avail),
                        proxy_required=bool(entry.extra.get("proxy_required")),
                    )
                )
    return found


def _choose(serial: list[SerialResource], url: LabgridUrl) -> SerialResource | None:
    if url.resource is not None:
        chosen = [r for r in serial if url.resource in (r.name, r.path)]
        if not chosen:
            names = ", ".join(r.name for r in serial) or "none"
            raise PortNotFound(
                f"place {url.place} has no serial resource {url.resource!r} (it has: {names})",
                hint="pick one of those with labgrid://PLACE?resource=NAME",
            )
        return chosen[0]
    if len(serial) > 1:
        names = ", ".join(r.name for r in serial)
        raise ConfigurationError(
            f"place {url.place} has {len(serial)} serial ports ({names})",
            hint=f"choose one: labgrid://{url.place}?resource=NAME",
        )
    return serial[0] if serial else None


async def _acquire(url: LabgridUrl, deadline: float) -> PlaceLease:
    async with _session(url.coordinator) as session:
        place = _find(session, url.place, url.coordinator)
        me = _me(session)
        if not _serial_resources(session, place):
            raise PortNotFound(
                f"labgrid place {place.name} has no serial port (NetworkSerialPort) on "
                f"{url.coordinator}: is its exporter running?",
                hint=f"labgrid-client -p {place.name} show lists its matches",
            )
        acquired_here = False
        if place.acquired and place.acquired != me:
            raise PlaceUnavailable(
                f"place {place.name} is acquired by {owner_text(place.acquired)}"
            )
        if not place.acquired:
            request = _client().labgrid_coordinator_pb2.AcquirePlaceRequest(placename=place.name)
            try:
                await session.stub.AcquirePlace(request)
            except Exception as error:  # grpc.aio.AioRpcError
                details = error.details() if hasattr(error, "details") else str(error)
                await session.sync_with_coordinator()
                holder = session.places.get(place.name)
                if holder is not None and holder.acquired and holder.acquired != me:
                    raise PlaceUnavailable(
                        f"place {place.name} is acquired by {owner_text(holder.acquired)}"
                    ) from None
                raise PlaceUnavailable(f"cannot acquire place {place.name}: {details}") from None
            acquired_here = True
        try:
            chosen = await _wait_for_port(session, place.name, url, deadline)
        except BaseException:
            if acquired_here:
                await _release_in(session, place.name)
            raise
        return PlaceLease(
            place=place.name,
            coordinator=url.coordinator,
            url=chosen.url,
            baudrate=chosen.speed,
            resource=chosen.path,
            owner=owner_text(me),
            acquired_here=acquired_here,
        )


async def _wait_for_port(
    session: Any, name: str, url: LabgridUrl, deadline: float
) -> SerialResource:
    """The chosen serial resource once its exporter has it served (a TCP port, available)."""
    while True:
        session.updated.clear()
        place = session.places[name]
        chosen = _choose(_serial_resources(session, place), url)
        if chosen is not None and chosen.proxy_required:
            raise ConfigurationError(
                f"place {name}: its exporter requires an SSH proxy (labgrid-exporter -i)",
                hint="atbridge opens the port directly: run that exporter without --isolated",
            )
        if chosen is not None and chosen.avail and chosen.port and chosen.host:
            return chosen
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PlaceUnavailable(
                f"place {name} is acquired but its exporter never served the serial port",
                hint="check the exporter's log (ser2net installed? the device present?)",
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await session.updated.wait()


async def _release_in(session: Any, name: str) -> None:
    place = session.places.get(name)
    if place is None or place.acquired != _me(session):
        return  # deleted, released or kicked meanwhile: nothing of ours to release
    request = _client().labgrid_coordinator_pb2.ReleasePlaceRequest(placename=name)
    await session.stub.ReleasePlace(request)
    await session.sync_with_coordinator()


def acquire_place(url: LabgridUrl | str, *, timeout: float = DEFAULT_TIMEOUT) -> PlaceLease:
    """Acquire the place ``url`` names and return where to open its serial port (module doc)."""
    parsed = parse_labgrid_url(url) if isinstance(url, str) else url
    _client()
    deadline = time.monotonic() + timeout
    lease = _run(lambda: _acquire(parsed, deadline), timeout, parsed.coordinator)
    lease.timeout = timeout
    return lease


def release_place(coordinator: str, place: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Release ``place`` if this user on this host holds it."""

    async def work() -> None:
        async with _session(coordinator) as session:
            await _release_in(session, place)

    _run(work, timeout, coordinator)


def list_places(coordinator: str | None = None, *, timeout: float = 10.0) -> list[PlaceInfo]:
    """Every place on the coordinator that has a serial resource."""
    address = coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR
    _client()

    async def work() -> list[PlaceInfo]:
        async with _session(address) as session:
            found = []
            for name, place in sorted(session.places.items()):
                serial = _serial_resources(session, place)
                if serial:
                    found.append(
                        PlaceInfo(name, place.acquired, dict(place.tags), place.comment, serial)
                    )
            return found

    return _run(work, timeout, address)


@contextlib.asynccontextmanager
async def acquire(
    place: str, *, coordinator: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[PlaceLease]:
    """The Python API: hold a place for the block; ``lease.url`` / ``lease.baudrate`` to open.

    ::

        async with atbridge.farm.acquire("rack3-nrf91") as lease:
            async with Bridge(port=lease.url, baudrate=lease.baudrate, credentials=c) as b:
                ...

    ``place`` is a name or a ``labgrid://`` URL. Released on the way out, also on
    cancellation and Ctrl-C.
    """
    text = place if is_labgrid_url(place) else f"{SCHEME}{place}"
    url = parse_labgrid_url(text)
    if coordinator is not None:
        url = LabgridUrl(coordinator, url.place, url.resource)
    lease = await asyncio.to_thread(acquire_place, url, timeout=timeout)
    try:
        yield lease
    finally:
        await asyncio.shield(asyncio.to_thread(lease.release))


# -- for the command line: one process, leases released at exit ------------------------------

_held: list[PlaceLease] = []
_held_lock = threading.Lock()


def _release_held() -> None:
    with _held_lock:
        leases, _held[:] = list(_held), []
    for lease in leases:
        with contextlib.suppress(Exception):
            lease.release()


def hold_for_process(port: str, *, timeout: float = DEFAULT_TIMEOUT) -> PlaceLease:
    """Acquire ``port``'s place until this process exits (normally, by Ctrl-C or SIGTERM).

    The same place asked twice (a command that loads its settings twice) is one lease.
    """
    url = parse_labgrid_url(port)
    with _held_lock:
        for lease in _held:
            if (lease.coordinator, lease.place) == (url.coordinator, url.place):
                return lease
    lease = acquire_place(url, timeout=timeout)
    with _held_lock:
        first = not _held
        _held.append(lease)
    if first:
        atexit.register(_release_held)
        _exit_on_sigterm()
    return lease


def _exit_on_sigterm() -> None:
    """SIGTERM ends the process through ``SystemExit`` (so ``atexit`` releases the place),
    unless something else already handles it."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


__all__ = [
    "DEFAULT_COORDINATOR",
    "LabgridUrl",
    "PlaceInfo",
    "PlaceLease",
    "PlaceUnavailable",
    "SerialResource",
    "acquire",
    "acquire_place",
    "hold_for_process",
    "is_labgrid_url",
    "list_places",
    "owner_text",
    "parse_labgrid_url",
    "release_place",
]
