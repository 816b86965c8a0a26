"""``atbridge certs``: write, list and delete the TLS credentials stored on the modem.

Theory of operation
-------------------
TLS on the modem (``--tls modem``) trusts only what the modem's own store holds under
the connection's *security tag* (``--sec-tag N``). Three actions manage that store
through the family's :class:`~atbridge.certs.CertificateStore` (:func:`atbridge.certs.
store_for`: the nRF91's ``AT%CMNG``, the SIMCom families' files):

- ``certs write --sec-tag N --ca FILE [--cert FILE --key FILE | --psk HEX --identity ID]``
  writes each item given; an item whose digest the modem already lists is "unchanged"
  and not written again;
- ``certs list [--sec-tag N]`` prints what is stored: tag, kind, digest (the first
  12 hex digits; ``--json`` has all 64), file name and size where the family says;
- ``certs delete --sec-tag N [--kind ca|cert|key|psk|identity ...]`` removes the kinds
  named, or without ``--kind`` every item stored under the tag, and says which.

Every input is checked before the port is opened (:func:`plan_write`, the checks of
:mod:`atbridge.certs`): the files readable and PEM of the right type (an encrypted key
refused), a PSK as hex, ``--cert`` with ``--key``, a PSK with its identity and not with
a certificate, the tag in 0..2147483647; with ``--dialect nrf91-slm``/``nrf91-sm`` also
the size (``nrf91_certs.check_size``: one ``AT%CMNG`` line takes at most 4096 bytes).
A store may check more once the family is known (``check(sec_tag, kind, content)``):
every item is checked before the first is written, so a write is refused whole.
A bad input exits 2 with what was wrong and what to do; a modem family with no store
atbridge can drive (SIM7000/SIM800) exits 2 too (a configuration error: use host-side
TLS). A modem error exits 3.

What the store changed to do its work (the nRF91's radio switched to offline and back)
is printed as ``changes``. Keys and PSKs are never printed; in the transcript (``-d``,
``--transcript``) they are masked, in both directions.

``--json`` (or ``--format json``) prints one object: ``action``, ``port``, ``dialect``,
``items`` (``sec_tag``, ``kind``, and ``status`` ``written``/``unchanged``/``deleted``/
``absent`` for a write or a delete; ``sha256`` (lower-case hex, ``null`` for a secret's
write), ``name``, ``size``), ``changes``. ``rich`` is imported only to print the table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atbridge.commands.options import (
    command_timeout_option,
    dialect_name,
    output_options,
    port_options,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from atbridge.certs import CertificateStore, CredentialKind
    from atbridge.dialects.base import Dialect
    from atbridge.modem import Modem

HELP = "write, list and delete the TLS credentials stored on the modem (for --tls modem)"

#: The highest tag (atbridge.credentials.MAX_SEC_TAG; not imported: --help stays light).
_MAX_SEC_TAG = 2147483647
KIND_NAMES = ("ca", "cert", "key", "psk", "identity")

EPILOG = """\
The security tag is the number the modem files the credentials under; give the same
number to --sec-tag of publish/subscribe/run with --tls modem.

examples:
  atbridge certs write --port /dev/ttyACM0 --sec-tag 42 --ca broker-ca.pem
  atbridge certs write --sec-tag 43 --ca ca.pem --cert device.pem --key device.key
  atbridge certs list --sec-tag 42
  atbridge certs delete --sec-tag 43 --kind key --kind cert

The nRF91 writes and deletes only with the radio off: certs switches it to offline
(CFUN=4) and back to the mode it found, and says so. Keys and PSKs are never printed
and are masked in transcripts.

exit codes: 0 ok, 2 bad input (files, tag, options) or a modem with no credential
  store, 3 the modem refused or failed, 5 timeout, 130 interrupted"""


def sec_tag(text: str) -> int:
    """argparse type: a security tag, 0..2147483647."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a whole number: {text!r} (a security tag is 0..{_MAX_SEC_TAG})"
        ) from None
    if not 0 <= value <= _MAX_SEC_TAG:
        raise argparse.ArgumentTypeError(
            f"{value} is outside 0..{_MAX_SEC_TAG}: use a tag in that range (higher ones are "
            "reserved for the modem)"
        )
    return value


def _common() -> list[argparse.ArgumentParser]:
    dialect = argparse.ArgumentParser(add_help=False)
    dialect.add_argument(
        "--dialect",
        metavar="D",
        type=dialect_name,
        help="modem family: auto (default: ask the modem), nrf91-slm, nrf91-sm, sim7080, "
        "sim7600 (any case)",
    )
    return [
        port_options(),
        dialect,
        command_timeout_option(),
        output_options(quiet=False, what="result"),
    ]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="certs_action", metavar="ACTION", required=True)

    write = actions.add_parser(
        "write",
        parents=_common(),
        help="write a CA (and a client certificate and key, or a PSK) under a security tag",
        description="Write credentials to the modem under --sec-tag; items the modem already "
        "holds (the same digest) are left as they are.",
    )
    items = write.add_argument_group("credentials")
    items.add_argument(
        "--sec-tag", type=sec_tag, required=True, metavar="N", help="the security tag"
    )
    items.add_argument("--ca", metavar="FILE", help="the CA certificate (PEM) to trust")
    items.add_argument("--cert", metavar="FILE", help="client certificate (PEM), with --key")
    items.add_argument(
        "--key", metavar="FILE", help="the client certificate's private key (PEM, unencrypted)"
    )
    items.add_argument(
        "--psk",
        metavar="HEX",
        help="pre-shared key as hex, with --identity (options are visible in the process "
        "list: prefer a certificate where the broker allows it)",
    )
    items.add_argument("--identity", metavar="ID", help="the PSK identity, with --psk")

    listing = actions.add_parser(
        "list",
        parents=_common(),
        help="list the stored credentials: tag, kind, digest",
        description="List the credentials the modem holds (of one security tag with --sec-tag).",
    )
    listing.add_argument("--sec-tag", type=sec_tag, metavar="N", help="only this security tag")

    delete = actions.add_parser(
        "delete",
        parents=_common(),
        help="delete stored credentials of a security tag",
        description="Delete credentials of --sec-tag: the kinds named with --kind, or all.",
    )
    delete.add_argument(
        "--sec-tag", type=sec_tag, required=True, metavar="N", help="the security tag"
    )
    delete.add_argument(
        "--kind",
        action="append",
        choices=KIND_NAMES,
        help="what to delete (repeat for several); default every item of the tag",
    )


# -- the input, checked before the port is opened ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One credential to write: its kind and the content as the modem gets it."""

    kind: CredentialKind
    content: str

    def to_json(self, sec_tag: int, status: str, name: str | None = None) -> dict[str, Any]:
        from atbridge.certs import content_digest

        return {
            "sec_tag": sec_tag,
            "kind": str(self.kind),
            "status": status,
            "sha256": None if self.kind.secret else content_digest(self.content),
            "name": name,
            "size": len(self.content),
        }


def plan_write(args: argparse.Namespace) -> list[Item]:
    """What ``certs write`` will write, checked; a ConfigurationError for bad input."""
    from atbridge.certs import CredentialKind, check_identity, check_psk, check_sec_tag, read_pem
    from atbridge.errors import ConfigurationError

    check_sec_tag(args.sec_tag)
    if (args.cert is None) != (args.key is None):
        given, missing = "--cert", "--key"
        if args.cert is None:
            given, missing = missing, given
        raise ConfigurationError(
            f"{given} needs {missing}: a client certificate goes with its private key",
            hint="give both --cert FILE and --key FILE (or neither)",
        )
    if (args.psk is None) != (args.identity is None):
        given, missing = (
            ("--psk", "--identity") if args.identity is None else ("--identity", "--psk")
        )
        raise ConfigurationError(
            f"{given} needs {missing}: a pre-shared key goes with its identity",
            hint="give both --psk HEX and --identity ID (or neither)",
        )
    if args.psk is not None and args.cert is not None:
        raise ConfigurationError(
            "--psk and --cert/--key both authenticate this device: TLS uses one of them",
            hint="give either a client certificate and key or a PSK and identity",
        )
    if args.ca is None and args.cert is None and args.psk is None:
        raise ConfigurationError(
            "nothing to write: give --ca FILE (and --cert/--key, or --psk/--identity)",
            hint="atbridge certs write --sec-tag N --ca broker-ca.pem",
        )
    planned: list[Item] = []
    for kind, path in (
        (CredentialKind.CA, args.ca),
        (CredentialKind.CLIENT_CERT, args.cert),
        (CredentialKind.CLIENT_KEY, args.key),
    ):
        if path is not None:
            planned.append(Item(kind, read_pem(path, kind).content))
    if args.psk is not None:
        planned.append(Item(CredentialKind.PSK, check_psk(args.psk)))
        planned.append(Item(CredentialKind.PSK_IDENTITY, check_identity(args.identity)))
    if getattr(args, "dialect", None) in ("nrf91-slm", "nrf91-sm"):
        from atbridge.dialects.nrf91_certs import check_size

        for item in planned:  # the AT command line's limit, known without the modem
            check_size(args.sec_tag, item.kind, item.content)
    return planned


# -- running ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from atbridge import eventloop

    planned = plan_write(args) if args.certs_action == "write" else []
    return eventloop.run(_main(args, planned))


async def bind(modem: Modem, name: str | None) -> Dialect:
    """The dialect of ``modem`` (``auto``/None: identified), bound without initialising it:
    certs changes nothing it does not need to (no notification is turned on)."""
    from atbridge.dialects import dialect_class, identify, identify_as

    if name is None or name == "auto":
        identity = await identify(modem)
    else:
        identity = await identify_as(modem, name)
    return dialect_class(identity.dialect)(modem)


async def _main(args: argparse.Namespace, planned: list[Item]) -> int:
    """``certs`` on the port the options name (``planned``: what ``write`` writes)."""
    from atbridge.certs import secret_parts, store_for
    from atbridge.commands.settings import open_modem

    modem = await open_modem(args)
    try:
        for item in planned:  # masked from the first byte, whatever the store does
            for part in secret_parts(item.kind, item.content):
                modem.add_secret(part)
        dialect = await bind(modem, args.dialect)
        try:
            store = store_for(dialect)
            result = await _act(args, store, planned)
            report = {
                "action": args.certs_action,
                "port": modem.port,
                "dialect": dialect.name,
                **result,
                "changes": list(store.changes),
            }
        finally:
            dialect.detach_from_modem()
    finally:
        await modem.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


async def _act(
    args: argparse.Namespace, store: CertificateStore, planned: list[Item]
) -> dict[str, Any]:
    from atbridge.certs import CredentialKind, StoredCredential, batch

    action = args.certs_action
    if action == "list":
        listed = await store.list(args.sec_tag)
        return {"sec_tag": args.sec_tag, "items": [item.to_json() for item in listed]}
    tag = args.sec_tag
    if action == "write":
        _check_kinds(store, [item.kind for item in planned])
        check = getattr(store, "check", None)
        if callable(check):  # every item, before the first is written: none or all
            for item in planned:
                check(tag, item.kind, item.content)
        done: list[dict[str, Any]] = []
        async with batch(store, "write"):
            name_of = getattr(store, "file_name", None)  # the SIMCom families name files
            for item in planned:
                written = await store.write(tag, item.kind, item.content)
                name = name_of(tag, item.kind) if callable(name_of) else None
                done.append(item.to_json(tag, "written" if written else "unchanged", name))
        return {"sec_tag": tag, "items": done}
    if args.kind:
        kinds = [CredentialKind(name) for name in dict.fromkeys(args.kind)]
        _check_kinds(store, kinds)
    stored = {item.kind: item for item in await store.list(tag) if item.sec_tag == tag}
    if not args.kind:
        kinds = list(stored)
    deleted: list[dict[str, Any]] = []
    async with batch(store, "delete"):
        for kind in kinds:
            gone = await store.delete(tag, kind)
            known = stored.get(kind)
            fields = (known or StoredCredential(tag, kind)).to_json()
            deleted.append({**fields, "status": "deleted" if gone else "absent"})
    return {"sec_tag": tag, "items": deleted}


def _check_kinds(store: CertificateStore, kinds: list[CredentialKind]) -> None:
    from atbridge.certs import CredentialKind
    from atbridge.errors import ConfigurationError

    missing = [kind for kind in kinds if kind not in store.kinds]
    if missing:
        names = ", ".join(kind.words for kind in missing)
        have = ", ".join(kind.words for kind in CredentialKind if kind in store.kinds)
        raise ConfigurationError(
            f"this modem's credential store keeps no {names}",
            hint=f"it keeps {have}: authenticate with those (a PSK needs an nRF91)",
        )


# -- output ------------------------------------------------------------------------------------


def _print(report: dict[str, Any]) -> None:
    from atbridge.certs import CredentialKind, short_digest

    action, items = report["action"], report["items"]
    where = f"{report['dialect']} on {report['port']}"
    tag = report.get("sec_tag")
    if action == "list":
        scope = f"security tag {tag}" if tag is not None else "every security tag"
        if not items:
            print(f"no credentials stored ({scope}, {where})")
        else:
            _table(
                f"{len(items)} stored ({scope}, {where})",
                ("tag", "kind", "digest", "name", "size"),
                [
                    (
                        str(item["sec_tag"]),
                        CredentialKind(item["kind"]).words,
                        short_digest(item["sha256"]),
                        item["name"] or "-",
                        "-" if item["size"] is None else str(item["size"]),
                    )
                    for item in items
                ],
            )
    elif not items:
        print(f"security tag {tag} holds nothing: nothing deleted ({where})")
    elif action == "delete":
        rows = [(CredentialKind(item["kind"]).words, item["status"]) for item in items]
        _table(f"security tag {tag} ({where})", ("kind", "status"), rows)
    else:
        _table(
            f"security tag {tag} ({where})",
            ("kind", "status", "digest", "size"),
            [
                (
                    CredentialKind(item["kind"]).words,
                    item["status"],
                    short_digest(item["sha256"]),
                    f"{item['size']} bytes",
                )
                for item in items
            ],
        )
    for change in report["changes"]:
        print(f"changed: {change}")


def _table(title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=100 if not _tty() else None).print(table)


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()
