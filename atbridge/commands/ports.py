"""``atbridge ports``: the serial ports on this host, which modem each probably is, and ``--probe``.

Theory of operation
-------------------
pyserial's :func:`serial.tools.list_ports.comports` lists the ports the kernel
knows (with USB vendor and product ids, serial number, manufacturer, product).
:func:`by_id_names` adds the stable ``/dev/serial/by-id/`` name of each (udev's
symlinks, which survive re-enumeration: the name to put in a config).
:func:`guess_family` names the modem family from the USB ids alone, from the
ids the Linux ``option`` driver (``drivers/usb/serial/option.c``) lists for
SIMCom (vendor ``1e0e``: ``9001``/``9011`` SIM7500/SIM7600 and the A76xx,
``9205``/``9206`` SIM7070/SIM7080/SIM7090), Nordic's vendor id (``1915``, the
Thingy:91 / Thingy:91 X) and SEGGER's (``1366``, the J-Link on the nRF91
development kits). A USB-UART bridge (CP210x, FTDI, CH340) says nothing about
what is behind it: only ``--probe`` can tell.

``--probe`` opens each port briefly (a short sync: two ``AT`` of half a second),
asks ``AT+CGMI``/``AT+CGMM``/``AT+CGMR`` and the family's version command
(:func:`atbridge.dialects.identify`), and closes it; a port that does not
answer says so. Probing writes to every port listed: pass ``--port`` names to
probe only those. ``--json`` prints one JSON object (``ports``: a list).

``--labgrid`` lists the places of a labgrid coordinator (``LG_COORDINATOR``,
or ``--labgrid HOST:PORT``) that have a serial resource, instead of local
ports: place, who holds it, its tags, each serial resource (exporter path,
speed, protocol) and the ``labgrid://PLACE`` URL to pass as ``--port``
(:mod:`atbridge.farm.places`). ``--json``: one object, ``places`` a list.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serial.tools.list_ports_common import ListPortInfo

HELP = "list serial ports, their USB ids and by-id names, and guess (or --probe) the modem"

#: Where udev keeps the stable names of USB serial devices.
BY_ID_DIR = "/dev/serial/by-id"

#: (vendor id, product id or None for any) -> what the USB ids say.
USB_FAMILIES: dict[tuple[int, int | None], str] = {
    (0x1E0E, 0x9001): "SIMCom SIM7500/SIM7600 (sim7600)",
    (0x1E0E, 0x9011): "SIMCom SIM7500/SIM7600 or A76xx (sim7600)",
    (0x1E0E, 0x9205): "SIMCom SIM7070/SIM7080/SIM7090 (sim7080)",
    (0x1E0E, 0x9206): "SIMCom SIM7070/SIM7080/SIM7090 (sim7080)",
    (0x1E0E, None): "SIMCom module (family unknown: --probe)",
    (0x1915, None): "Nordic Semiconductor device, e.g. Thingy:91 (nrf91-slm or nrf91-sm: --probe)",
    (0x1366, None): "SEGGER J-Link, e.g. an nRF91 DK's serial port (nrf91: --probe)",
    (0x10C4, 0xEA60): "USB-UART bridge (Silicon Labs CP210x): --probe to see the modem",
    (0x0403, None): "USB-UART bridge (FTDI): --probe to see the modem",
    (0x1A86, 0x7523): "USB-UART bridge (WCH CH340): --probe to see the modem",
}


def guess_family(vid: int | None, pid: int | None) -> str | None:
    """What the USB ids say about the device (``None``: not a device atbridge knows)."""
    if vid is None:
        return None
    return USB_FAMILIES.get((vid, pid)) or USB_FAMILIES.get((vid, None))


def by_id_names(directory: str | None = None) -> dict[str, str]:
    """Real device path -> its ``/dev/serial/by-id/`` name (``directory``: :data:`BY_ID_DIR`)."""
    directory = BY_ID_DIR if directory is None else directory
    names: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return names
    for entry in entries:
        link = os.path.join(directory, entry)
        names.setdefault(os.path.realpath(link), link)
    return names


@dataclass(frozen=True)
class PortEntry:
    """One serial port as ``ports`` shows it (``probe``: what the modem said, if asked)."""

    device: str
    by_id: str | None
    description: str | None
    vid: str | None
    pid: str | None
    serial_number: str | None
    manufacturer: str | None
    product: str | None
    guess: str | None
    probe: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def entries(ports: list[ListPortInfo], names: dict[str, str]) -> list[PortEntry]:
    """The ports with their by-id names and guesses, sorted by device path."""

    def hex4(value: int | None) -> str | None:
        return None if value is None else f"{value:04x}"

    found = []
    for port in sorted(ports, key=lambda p: p.device):
        description = port.description if port.description not in (None, "n/a") else None
        found.append(
            PortEntry(
                device=port.device,
                by_id=names.get(os.path.realpath(port.device)),
                description=description,
                vid=hex4(port.vid),
                pid=hex4(port.pid),
                serial_number=port.serial_number,
                manufacturer=port.manufacturer,
                product=port.product,
                guess=guess_family(port.vid, port.pid),
            )
        )
    return found


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--probe",
        action="store_true",
        help="open each port briefly and ask the modem who it is (writes AT commands)",
    )
    parser.add_argument(
        "--port",
        action="append",
        metavar="DEVICE",
        help="only this port (repeatable); a port pyserial does not list is probed as given",
    )
    parser.add_argument(
        "--baud", type=int, default=115200, help="speed for --probe (default 115200)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--labgrid",
        nargs="?",
        const="",
        default=None,
        metavar="HOST:PORT",
        help="list the labgrid places with serial ports instead (coordinator: "
        "$LG_COORDINATOR, default 127.0.0.1:20408)",
    )


def _places(args: argparse.Namespace) -> int:
    """``--labgrid``: the coordinator's places that have a serial resource."""
    from atbridge.farm.places import list_places, owner_text

    places = list_places(args.labgrid or None)
    if args.json:
        listed = [
            {
                "place": p.name,
                "port": f"labgrid://{p.name}",
                "acquired_by": owner_text(p.acquired) if p.acquired else None,
                "tags": p.tags,
                "comment": p.comment,
                "serial": [asdict(r) for r in p.serial],
            }
            for p in places
        ]
        print(json.dumps({"places": listed}, indent=2))
        return 0
    if not places:
        print("no labgrid place has a serial port (labgrid-client places)", file=sys.stderr)
        return 0
    rows = [("PORT", "ACQUIRED BY", "TAGS", "SERIAL")]
    for p in places:
        tags = ",".join(f"{k}={v}" for k, v in sorted(p.tags.items())) or "-"
        serial = "; ".join(f"{r.path} {r.speed} {r.protocol}" for r in p.serial)
        holder = owner_text(p.acquired) if p.acquired else "-"
        rows.append((f"labgrid://{p.name}", holder, tags, serial))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(
        "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
            for row in rows
        )
    )
    return 0


def _selected(args: argparse.Namespace) -> list[PortEntry]:
    from serial.tools import list_ports

    listed = entries(list(list_ports.comports()), by_id_names())
    if not args.port:
        return listed
    wanted = {os.path.realpath(name): name for name in args.port}
    chosen = [entry for entry in listed if os.path.realpath(entry.device) in wanted]
    known = {os.path.realpath(entry.device) for entry in chosen}
    for real, name in wanted.items():
        if real not in known:  # a pty, a socket:// URL or a port udev does not list
            names = by_id_names()
            chosen.append(
                PortEntry(name, names.get(real), None, None, None, None, None, None, None)
            )
    return chosen


async def probe(device: str, baud: int) -> dict[str, str]:
    """Open ``device`` briefly and identify the modem: manufacturer, model, revision, dialect."""
    from atbridge.dialects import identify
    from atbridge.errors import AtBridgeError
    from atbridge.modem import Modem

    try:
        modem = await Modem.open(
            device, baudrate=baud, sync_attempts=2, sync_timeout=0.5, default_timeout=2.0
        )
    except (AtBridgeError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        return {"error": message}
    try:
        identity = await identify(modem)
    except AtBridgeError as exc:
        return {"error": exc.message}
    finally:
        await modem.close()
    result = {
        "manufacturer": identity.manufacturer,
        "model": identity.model,
        "revision": identity.revision,
        "dialect": identity.dialect,
    }
    if identity.version:
        result["version"] = identity.version
    return result


def _table(found: list[PortEntry]) -> str:
    rows = [("DEVICE", "USB ID", "SERIAL", "BY-ID", "WHAT")]
    for entry in found:
        usb = f"{entry.vid}:{entry.pid}" if entry.vid else "-"
        what = entry.guess or entry.description or "-"
        if entry.probe is not None:
            if "error" in entry.probe:
                what += f"; probe: {entry.probe['error']}"
            else:
                p = entry.probe
                what = f"{p['manufacturer']} {p['model']} ({p['revision']}) -> {p['dialect']}"
        by_id = os.path.basename(entry.by_id) if entry.by_id else "-"
        rows.append((entry.device, usb, entry.serial_number or "-", by_id, what))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    )


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    if args.labgrid is not None:
        return _places(args)
    found = _selected(args)
    if args.probe:

        async def probe_all() -> list[PortEntry]:
            from dataclasses import replace

            return [replace(e, probe=await probe(e.device, args.baud)) for e in found]

        found = eventloop.run(probe_all())
    if args.json:
        print(json.dumps({"ports": [entry.to_json() for entry in found]}, indent=2))
        return 0
    if not found:
        print(
            "no serial ports found (is the modem plugged in and powered? "
            "on Linux, USB modems appear as /dev/ttyACM* or /dev/ttyUSB*)",
            file=sys.stderr,
        )
        return 0
    print(_table(found))
    if any(entry.by_id for entry in found):
        print(f"\nby-id names are under {BY_ID_DIR}/ and survive re-plugging: use them in configs")
    return 0
