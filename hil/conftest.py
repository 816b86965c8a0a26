"""The hil/ suite's options, boards and reports live in the pytest plugin
:mod:`atbridge.farm.plugin` (entry point ``pytest11``: loaded by every pytest where atbridge is
installed), so a user's own checkout of board tests gets the same fixtures. Nothing to add here.
"""
