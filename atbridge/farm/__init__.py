"""Board farms: atbridge on labgrid (places as ports, a labgrid driver, the hil/ pytest plugin).

Theory of operation
-------------------
A team's boards sit on labgrid exporters; a *place* names one board and the
resources it needs. :mod:`atbridge.farm.places` turns ``labgrid://PLACE`` into
the ``rfc2217://`` (or ``socket://``) URL of the place's ``NetworkSerialPort``:
it acquires the place through labgrid's client API, waits for the exporter's
ser2net to be up, and releases the place when done. :mod:`atbridge.farm.driver`
is a labgrid driver (``AtBridgeDriver``) an environment YAML loads with
``imports:``; :mod:`atbridge.farm.plugin` is the pytest plugin the hil/ suite
runs on (entry point ``pytest11``).

Nothing here imports labgrid until a ``labgrid://`` port is used: without it,
the error says ``pip install 'atbridge[labgrid]'``.
"""

from __future__ import annotations

from atbridge.farm.places import (
    LabgridUrl,
    PlaceLease,
    PlaceUnavailable,
    acquire,
    is_labgrid_url,
    parse_labgrid_url,
)

__all__ = [
    "LabgridUrl",
    "PlaceLease",
    "PlaceUnavailable",
    "acquire",
    "is_labgrid_url",
    "parse_labgrid_url",
]
