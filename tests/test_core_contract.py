"""What every dialect gets from the base (issue 10): registration on any of three commands,
left-over sockets closed by the steps, a modem-core reset without a banner, a dialect's own
boot banners, the escape from data mode, late SIMCom boot lines, the line ending.

These run the real AT channel and the base :class:`~atbridge.dialects.base.Dialect` against
the generic 3GPP fake (or a family's fake where its line rules matter); the family overrides
have their own tests.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

import pytest

import atbridge.modem as modem_module
from atbridge import steps
from atbridge.decode import Registration
from atbridge.dialects.base import Dialect, Identity, ModemSocket
from atbridge.errors import AtTimeout, CloseReason, ModemRebooted
from atbridge.modem import Modem, Urc
from atbridge.steps import DialectLink, ModemPort, SocketLink
from tests.fakes import FakeModem, Response


class Lte(Dialect):
    name = "test-lte"


class Packet(Dialect):
    """A SIM70xx-like family: LTE first, then GPRS."""

    name = "test-packet"
    registration_sources: tuple[str, ...] = ("+CEREG", "+CGREG")


class AnyOfThree(Dialect):
    name = "test-any"
    registration_sources: tuple[str, ...] = ("+CEREG", "+CGREG", "+CREG")


class A76xx(Dialect):
    name = "test-a76xx"
    boot_banners: ClassVar[frozenset[str]] = frozenset({"*ATREADY: 1"})


@pytest.fixture
async def fakes() -> AsyncIterator[list[FakeModem]]:
    started: list[FakeModem] = []
    yield started
    for fake in started:
        await fake.stop()


@pytest.fixture
async def modems() -> AsyncIterator[list[Modem]]:
    opened: list[Modem] = []
    yield opened
    for modem in opened:
        await modem.close()


async def start(fakes: list[FakeModem], dialect: str = "generic", **kw: object) -> FakeModem:
    fake = FakeModem(dialect, **kw)  # type: ignore[arg-type]
    await fake.start()
    fakes.append(fake)
    return fake


async def open_on(modems: list[Modem], fake: FakeModem, **kw: object) -> Modem:
    modem = await Modem.open(fake.port, **kw)  # type: ignore[arg-type]
    modems.append(modem)
    return modem


# -- registration on any of +CEREG / +CGREG / +CREG --------------------------------------------


async def test_gprs_only_registration_counts_and_says_where(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes, rat="gprs", cfun=0)
    dialect = Packet(await open_on(modems, fake, line_ending="\r"))
    seen: list[Registration] = []
    registration = await dialect.attach(timeout=10, poll_interval=5, progress=seen.append)
    assert registration.registered and registration.source == "+CGREG"
    assert registration.rat == "GPRS" and registration.where() == "+CGREG (GPRS)"
    assert dialect.registration == registration
    assert not dialect.registrations["+CEREG"].registered
    assert seen and seen[-1].registered
    # +CEREG saying "not registered" does not take the registration away.
    fake.send_urc("+CEREG: 2")
    await dialect.modem.command("AT")
    assert dialect.registration is not None and dialect.registration.source == "+CGREG"


async def test_lte_only_dialect_does_not_see_gprs(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes, rat="gprs")
    dialect = Lte(await open_on(modems, fake, line_ending="\r"))
    found = await dialect.read_registration()
    assert found is not None and not found.registered and found.source == "+CEREG"


async def test_a_source_the_modem_refuses_is_dropped(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    """A SIM800 answers ERROR to AT+CEREG: registered on +CREG (GSM) all the same."""
    fake = await start(fakes, rat="gsm", cfun=0)
    fake.on_command("+CEREG", Response.error())
    dialect = AnyOfThree(await open_on(modems, fake, line_ending="\r"))
    registration = await dialect.attach(timeout=10, poll_interval=5)
    assert registration.source == "+CREG" and registration.rat == "GSM"
    assert dialect.registration_sources == ("+CGREG", "+CREG")
    assert AnyOfThree.registration_sources == ("+CEREG", "+CGREG", "+CREG")


async def test_registration_urcs_during_a_read_are_not_its_answer(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes, rat="wcdma")
    modem = await open_on(modems, fake, line_ending="\r")
    await modem.command("AT+CGREG=2")
    heard: list[str] = []
    modem.subscribe("+C", lambda urc: heard.append(urc.text))
    fake.urc_during_next_response('+CGREG: 5,"0A1B","01234567",2,"01"')
    fake.urc_during_next_response("+CREG: 1")
    response = await modem.command("AT+CGREG?")
    assert response.lines == ('+CGREG: 2,1,"0A1B","01234567",2,"01"',)
    assert heard == ['+CGREG: 5,"0A1B","01234567",2,"01"', "+CREG: 1"]


# -- modem reset without a banner, boot banners, late boot lines -------------------------------


async def test_modem_reset_closes_sockets_fails_the_command_and_the_attach(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes, sim=False)  # never registers
    dialect = Lte(await open_on(modems, fake, line_ending="\r"))
    sock = dialect._adopt(ModemSocket(dialect, 0, "broker", 1883))
    fake.drop_next_response()
    waiting = asyncio.ensure_future(dialect.modem.command("AT+CGSN", timeout=30))
    await fake.wait_for_command("AT+CGSN")
    dialect.modem_reset("#XMODEM: FAULT,0x1,0x2")
    with pytest.raises(ModemRebooted, match="XMODEM: FAULT"):
        await waiting
    assert sock.closed is not None and sock.closed.reason is CloseReason.REBOOT
    # The next command re-runs the session setup (echo off, numeric errors) first.
    await dialect.modem.command("AT")
    attaching = asyncio.ensure_future(dialect.attach(timeout=60, poll_interval=30))
    await fake.wait_for_command("AT+CEREG?")
    dialect.modem_reset("#XMODEM: SHUTDOWN")
    with pytest.raises(ModemRebooted, match="SHUTDOWN"):
        await attaching


async def test_a_dialects_boot_banner_is_a_reboot_once_bound(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes)
    modem = await open_on(modems, fake, line_ending="\r")
    heard: list[str] = []
    modem.subscribe("*ATREADY", lambda urc: heard.append(urc.text))
    fake.send_urc("*ATREADY: 1")
    await modem.command("AT")
    assert heard == ["*ATREADY: 1"]  # no dialect said it is a banner: a URC
    A76xx(modem)
    booted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    modem.on_reboot(booted.set_result)
    fake.send_urc("*ATREADY: 1")
    assert await asyncio.wait_for(booted, 5) == "*ATREADY: 1"
    await modem.command("AT")  # the session setup again, then the command
    assert heard == ["*ATREADY: 1"]


@pytest.mark.parametrize("late", ["SMS DONE", "PB DONE", "Call Ready", "SMS Ready", "DST: 0"])
async def test_late_simcom_boot_lines_are_never_part_of_an_answer(
    fakes: list[FakeModem], modems: list[Modem], late: str
) -> None:
    fake = await start(fakes)
    modem = await open_on(modems, fake, line_ending="\r")
    fake.on_command("+CGMI", Response.ok(late, "SIMCOM INCORPORATED"), times=1)
    heard: list[Urc] = []
    modem.subscribe(None, heard.append)
    response = await modem.command("AT+CGMI")
    assert response.lines == ("SIMCOM INCORPORATED",)
    assert [urc.text for urc in heard] == [late]


# -- escaping data mode -------------------------------------------------------------------------


async def test_resync_calls_the_escape_hook_before_its_probes(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes)
    modem = await open_on(modems, fake, line_ending="\r")
    order: list[str] = []

    async def escape() -> None:
        order.append("escape")
        await modem.command("AT")  # the hook may use the channel

    modem.escape_hook = escape
    fake.drop_next_response()
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGSN", timeout=0.2)
    fake.commands.clear()
    await modem.command("AT+CGMM")
    assert order == ["escape"]
    assert fake.commands[:3] == ["AT", "AT+CMEE?", "AT+CGMM"]


async def test_a_silent_first_sync_sends_the_generic_escape(
    fakes: list[FakeModem], modems: list[Modem], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modem_module, "ESCAPE_GUARD", 0.01)
    fake = await start(fakes)
    fake.drop_next_response()
    log = io.StringIO()
    await open_on(modems, fake, line_ending="\r", transcript=log, sync_timeout=0.3)
    assert "+++" in log.getvalue() and "escaping data mode" in log.getvalue()


async def test_an_answered_first_sync_sends_no_escape(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes)
    log = io.StringIO()
    await open_on(modems, fake, line_ending="\r", transcript=log)
    assert "+++" not in log.getvalue()


# -- line ending ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "found"), [("generic", b"\r"), ("nrf91-slm", b"\r\n"), ("nrf91-sm", b"\r")]
)
async def test_the_line_ending_is_detected_when_not_given(
    fakes: list[FakeModem], modems: list[Modem], dialect: str, found: bytes
) -> None:
    fake = await start(fakes, dialect)
    modem = await open_on(modems, fake, line_ending=None)
    assert (modem.line_ending, modem.line_ending_origin) == (found, "detected")
    await modem.command("AT+CGMM")


async def test_the_users_line_ending_is_kept_when_a_dialect_is_bound(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    from atbridge.dialects.sim7000 import DIALECT

    fake = await start(fakes, "sim7000")
    modem = await open_on(modems, fake, line_ending="\r\n")
    DIALECT(modem)
    assert DIALECT.line_ending == b"\r" and modem.line_ending == b"\r\n"
    unsynced = await open_on(modems, fake, line_ending=None, sync=False, exclusive=False)
    DIALECT(unsynced)
    assert unsynced.line_ending == b"\r" and unsynced.line_ending_origin == "default"


# -- the steps close what earlier runs left open -------------------------------------------------


class Leftovers:
    """A dialect stand-in with ``count`` sockets left on the modem."""

    name = "leftovers"

    def __init__(self, count: int) -> None:
        self.count = count
        self.calls: list[str] = []

    async def close_leftover_sockets(self) -> int:
        self.calls.append("close_leftover_sockets")
        closed, self.count = self.count, 0
        return closed

    async def open_socket(
        self, host: str, port: int, *, tls: bool = False, timeout: float = 60.0
    ) -> SocketLink:
        self.calls.append("open_socket")
        return None  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Callable[..., object]:
        raise AttributeError(name)


async def test_probe_and_open_socket_close_what_was_left_open() -> None:
    stand_in = Leftovers(3)

    async def bind(modem: ModemPort, name: str) -> tuple[DialectLink, Identity | None]:
        return stand_in, None  # type: ignore[return-value]

    probed = await steps.probe(None, bind=bind)  # type: ignore[arg-type]
    assert probed.leftover_sockets == 3
    stand_in.count = 1
    opened = await steps.open_socket(stand_in, "broker", 1883)  # type: ignore[arg-type]
    assert opened.leftover_sockets == 1
    assert stand_in.calls == ["close_leftover_sockets"] * 2 + ["open_socket"]


async def test_the_base_closes_nothing_it_cannot_list(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    fake = await start(fakes)
    dialect = Lte(await open_on(modems, fake, line_ending="\r"))
    fake.commands.clear()
    assert await dialect.close_leftover_sockets() == 0
    assert fake.commands == []


async def test_a_detached_dialect_takes_its_escape_hook_with_it(
    fakes: list[FakeModem], modems: list[Modem]
) -> None:
    class Hooked(Dialect):
        name = "test-hooked"

        async def escape_data_mode(self) -> None:
            """Nothing to leave."""

    fake = await start(fakes)
    modem = await open_on(modems, fake, line_ending="\r")
    first = Hooked(modem)
    modem.escape_hook = first.escape_data_mode
    first.detach_from_modem()
    assert modem.escape_hook is None
    second = Hooked(modem)
    modem.escape_hook = second.escape_data_mode
    Lte(modem).detach_from_modem()  # another dialect's detach leaves it
    assert modem.escape_hook == second.escape_data_mode
