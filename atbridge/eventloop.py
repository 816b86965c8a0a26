"""Which asyncio event loop the command line runs on: the standard one, or uvloop.

Theory of operation
-------------------
Every atbridge command is one ``asyncio`` program; what it costs per message on a fast line
(921600 baud, a USB modem with no baud limit) is mostly the event loop's own work: each AT
exchange is a write, a wake-up on the modem's answer and a few callbacks, and the standard
loop runs its turn in Python. uvloop (the libuv-based drop-in loop, MagicStack/uvloop,
``pip install 'atbridge[fast]'``) runs the same turn in C: measured here with cachegrind
(``bench/instructions.py``), 20-30 % fewer instructions per publish for the same AT
exchanges, with nothing else changed. atbridge uses nothing beyond the documented loop API
(``add_reader``/``add_writer`` on the serial port's descriptor, timers, tasks, TCP for the
host-side TLS test peers), which both loops provide.

The choice, in order of precedence:

- the command line's ``--event-loop {auto,asyncio,uvloop}`` (before the command);
- the environment variable :data:`ENVIRONMENT` (``ATBRIDGE_EVENT_LOOP``), the same words;
- ``auto``: uvloop when it is installed, the standard loop otherwise.

Asking for ``uvloop`` where it is not installed (or cannot be imported: uvloop has no
Windows build) is a :class:`~atbridge.errors.ConfigurationError` that says how to install it
or how to do without; ``auto`` never fails. Nothing here imports uvloop until a loop is made,
so ``atbridge --help`` stays free of it.

A program that embeds :class:`~atbridge.bridge.Bridge` chooses its own loop; the bridge runs
on either (``tests/test_eventloop.py`` runs the lifecycle on both).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, TypeVar

from atbridge.errors import ConfigurationError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "CHOICES",
    "ENVIRONMENT",
    "chosen",
    "loop_factory",
    "new_event_loop",
    "resolve",
    "run",
    "select",
]

T = TypeVar("T")

#: What ``--event-loop`` and :data:`ENVIRONMENT` accept.
CHOICES: Final = ("auto", "asyncio", "uvloop")
#: The environment variable read when ``--event-loop`` is not given.
ENVIRONMENT: Final = "ATBRIDGE_EVENT_LOOP"

_INSTALL_HINT: Final = (
    "install it with `pip install 'atbridge[fast]'` (Linux and macOS), or use --event-loop asyncio"
)

#: What :func:`select` was given for this process (None: :data:`ENVIRONMENT`, else ``auto``).
_selected: str | None = None


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None when uvloop cannot be imported."""
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def _checked(choice: str, where: str) -> str:
    word = choice.strip().lower()
    if word not in CHOICES:
        raise ConfigurationError(
            f"{where} {choice!r} is not an event loop",
            hint=f"use one of {', '.join(CHOICES)}",
        )
    return word


def resolve(choice: str | None = None) -> str:
    """``asyncio`` or ``uvloop``: what ``choice`` (None: :data:`ENVIRONMENT`, else ``auto``)
    means on this machine. Raises :class:`ConfigurationError` for an unknown word, or for
    ``uvloop`` where it is not installed."""
    if choice is None:
        env = os.environ.get(ENVIRONMENT, "").strip()
        word = _checked(env, f"{ENVIRONMENT}=") if env else "auto"
    else:
        word = _checked(choice, "--event-loop")
    if word == "asyncio":
        return "asyncio"
    if _uvloop_factory() is not None:
        return "uvloop"
    if word == "uvloop":
        raise ConfigurationError("the uvloop event loop is not installed", hint=_INSTALL_HINT)
    return "asyncio"


def select(choice: str | None) -> None:
    """Choose the loop for this process's commands: ``choice`` is checked now (an unknown
    word is a :class:`ConfigurationError`), and resolved (see :func:`resolve`) when a loop is
    made, so a command that runs no loop never imports uvloop."""
    global _selected
    _selected = None if choice is None else _checked(choice, "--event-loop")


def chosen() -> str:
    """The loop :func:`run` uses: ``asyncio`` or ``uvloop`` (see :func:`select`)."""
    return resolve(_selected)


def loop_factory(name: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A constructor of new loops of kind ``name`` (``asyncio``/``uvloop``; None:
    :func:`chosen`)."""
    import asyncio

    kind = chosen() if name is None else name
    if kind == "uvloop":
        factory = _uvloop_factory()
        if factory is None:
            raise ConfigurationError("the uvloop event loop is not installed", hint=_INSTALL_HINT)
        return factory
    return asyncio.new_event_loop


def new_event_loop(name: str | None = None) -> asyncio.AbstractEventLoop:
    """A new loop of the chosen kind (for a loop that runs in a thread of its own)."""
    return loop_factory(name)()


def run(main: Coroutine[Any, Any, T], name: str | None = None) -> T:
    """``asyncio.run(main)`` on a loop of the chosen kind (logged: ``-v`` shows it)."""
    import asyncio
    import logging

    try:
        kind = chosen() if name is None else name
        factory = loop_factory(kind)
    except BaseException:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    logging.getLogger("atbridge.eventloop").info("event loop: %s", kind)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
