"""The board strategy: an explicit state machine that latches broken on the first failure.

Like labgrid's strategies with ``never_retry``: a board starts ``unknown``, becomes ``ready``
once a test got it to answer, and becomes ``broken`` (with the first failure's reason) when a
test that uses it fails. Once broken it stays broken for the session, and every later test that
needs the board is skipped with that reason instead of failing in a cascade.
"""

from __future__ import annotations

from enum import Enum

import pytest


class BoardState(Enum):
    UNKNOWN = "unknown"
    READY = "ready"
    BROKEN = "broken"


class BoardStrategy:
    """The state of one board (a port, or one fake dialect) across the session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = BoardState.UNKNOWN
        self.reason: str | None = None

    def require(self) -> None:
        """Skip the calling test if the board is broken."""
        if self.state is BoardState.BROKEN:
            pytest.skip(f"board {self.name} is broken since {self.reason}")

    def ready(self) -> None:
        """The board answered (a broken board stays broken)."""
        if self.state is BoardState.UNKNOWN:
            self.state = BoardState.READY

    def broken(self, reason: str) -> None:
        """Latch broken; only the first failure's reason is kept (never retry)."""
        if self.state is not BoardState.BROKEN:
            self.state = BoardState.BROKEN
            self.reason = reason


__all__ = ["BoardState", "BoardStrategy"]
