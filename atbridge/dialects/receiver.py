"""The receive side of a modem socket, the same for every family: notify, read, safety net.

Theory of operation
-------------------
Every supported modem keeps received data until the host asks for it, and says
so with a notification (``#XAPOLL: <h>,1``, ``+CADATAIND: <cid>``,
``+CIPRXGET: 1,<link>``). A lost notification must cost time, never data. Each
open socket therefore has one :class:`Receiver`, a task that:

1. waits until it is woken (:meth:`Receiver.wake`: the family's notification
   handler calls it) or until the family's safety-net interval has passed with no
   notification (:attr:`Receiver.poll_interval`, read on every round so a test or
   a fallback can change it);
2. hands the round to the family's ``drain(checking)`` coroutine, which reads
   until the modem has nothing more for the socket. ``checking`` is true on a
   safety-net round (no notification, no announced end): a family with a cheap
   "how much is waiting" question may ask it before reading;
3. when the family announced the end of the connection (:meth:`Receiver.end`:
   peer close, POLLHUP, ``+IPCLOSE``...), closes the socket with that reason only
   after a drain that *began after* the announcement, so the bytes the peer sent
   before closing are delivered before :class:`~atbridge.errors.SocketClosed`.

Errors: a :class:`~atbridge.errors.SocketClosed` (reboot, link loss, our own
close) ends the task quietly, the socket already carries its reason; a
:class:`~atbridge.errors.LinkLost` (also a port we closed ourselves) closes the
socket with :attr:`CloseReason.LINK`; any other atbridge error is logged and the
next notification or safety-net round tries again. **Anything else is a bug, and a
bug must not leave the socket silently deaf**: the socket is closed with
:attr:`CloseReason.ERROR` and the exception in its detail, so the owner's
``receive()`` raises it instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from atbridge.errors import AtBridgeError, CloseReason, LinkLost, SocketClosed

if TYPE_CHECKING:
    from atbridge.dialects.base import ModemSocket

log = logging.getLogger(__name__)

#: ``drain(checking)``: read what the modem holds for the socket (see the module doc).
Drain = Callable[[bool], Awaitable[None]]


class Receiver:
    """The receive task of one socket (see the module docstring).

    ``poll_interval()`` gives the seconds a round waits for a notification before
    it reads anyway. With ``check_at_start`` the first round reads at once (data
    may have arrived before the socket was ours).
    """

    def __init__(
        self,
        sock: ModemSocket,
        drain: Drain,
        *,
        poll_interval: Callable[[], float],
        check_at_start: bool = False,
    ) -> None:
        self.sock = sock
        self._drain = drain
        self._poll_interval = poll_interval
        self._check_now = check_at_start
        self._wake = asyncio.Event()
        #: Set when the modem said the connection ended: (reason, detail).
        self.ended: tuple[CloseReason, str] | None = None
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Receiver {self.sock!r}>"

    @property
    def poll_interval(self) -> float:
        """Seconds a round waits for a notification before it reads anyway."""
        return self._poll_interval()

    def start(self) -> asyncio.Task[None]:
        """Start the task (once); it ends when the socket closes."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"receiver {self.sock.dialect.name}#{self.sock.handle}"
            )
        return self.task

    def stop(self) -> None:
        """Cancel the task (the dialect is done with the modem)."""
        if self.task is not None:
            self.task.cancel()

    def wake(self) -> None:
        """The modem says data is waiting (or the socket closed): run a round now."""
        self._wake.set()

    def end(self, reason: CloseReason, detail: str) -> None:
        """The modem says the connection ended: read what is left, then close with ``reason``.

        The first announcement counts; a later one (an error after a hang-up) is ignored.
        """
        if self.ended is None:
            self.ended = (reason, detail)
        self._wake.set()

    async def _run(self) -> None:
        sock = self.sock
        try:
            while sock.closed is None:
                notified = await self._wait()
                if sock.closed is not None:
                    return
                # Only a drain that began after the end was announced has read the rest.
                ended = self.ended
                try:
                    await self._drain(not notified and ended is None)
                except SocketClosed:
                    return
                except LinkLost as exc:  # also a port we closed ourselves
                    sock.mark_closed(CloseReason.LINK, str(exc))
                    return
                except AtBridgeError as exc:
                    if sock.closed is not None:
                        return
                    # The next notification or safety-net round tries again.
                    log.warning("%r: reading failed: %s", sock, exc)
                if ended is not None:
                    sock.mark_closed(*ended)
        except Exception as exc:  # a bug must not leave the socket silently deaf
            log.exception("%r: receiver failed", sock)
            sock.mark_closed(CloseReason.ERROR, f"the receiver failed: {exc!r}")

    async def _wait(self) -> bool:
        """Wait for a wake-up or the safety-net interval; whether a wake-up came."""
        notified = False
        if self._check_now:
            self._check_now = False
        elif self._wake.is_set():
            notified = True
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
                    notified = True
        self._wake.clear()
        return notified


class Receivers:
    """The receivers of one dialect's open sockets, by handle, and their running tasks."""

    def __init__(self) -> None:
        self._by_handle: dict[int, Receiver] = {}
        self._running: set[asyncio.Task[None]] = set()

    def add(self, receiver: Receiver) -> Receiver:
        """Keep ``receiver``; notifications may wake it (or end it) before it starts."""
        self._by_handle[receiver.sock.handle] = receiver
        return receiver

    def start(self, receiver: Receiver) -> None:
        """Start ``receiver``'s task (kept until it ends, for :meth:`stop_all`)."""
        task = receiver.start()
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def get(self, handle: int) -> Receiver | None:
        """The receiver of the open socket ``handle``, if any."""
        return self._by_handle.get(handle)

    def forget(self, sock: ModemSocket) -> None:
        """``sock`` is closed: wake its receiver (it sees the close and ends) and drop it."""
        receiver = self._by_handle.get(sock.handle)
        if receiver is not None and receiver.sock is sock:
            del self._by_handle[sock.handle]
            receiver.wake()

    def stop_all(self) -> list[asyncio.Task[None]]:
        """Cancel every running task; return them, to await."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        return tasks


__all__ = ["Drain", "Receiver", "Receivers"]
