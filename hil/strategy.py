"""The board strategy (:mod:`atbridge.farm.strategy`, where the installed plugin finds it)."""

from atbridge.farm.strategy import BoardState, BoardStrategy

__all__ = ["BoardState", "BoardStrategy"]
