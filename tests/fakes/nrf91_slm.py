"""The nRF9160 running Nordic's Serial LTE Modem application (NCS <= v3.1), as a fake dialect.

What sets it apart from the generic 3GPP modem, with sources (shared/reference/at-dialects.md
§3.2 and §4; sdk-nrf ``applications/serial_lte_modem/src/slm_at_host.c``):

- Boot banner ``Ready\\r\\n`` (``SLM_SYNC_STR``: no leading CR LF), sent when the AT host starts.
- Command lines end with CR LF (``CONFIG_SLM_CR_LF_TERMINATION``): a lone CR is an ordinary
  character, CR and LF inside double quotes do not end a line, backspace (0x08) and DEL (0x7F)
  delete the previous character, empty lines are ignored, and bytes before the first ``AT`` of
  a line are skipped (``cmd_send``).
- Every line goes through the SLM grammar check (``cmd_grammar_check``): ``AT``, or ``AT``,
  one of ``+ % #``, an alphanumeric name, then nothing, ``?``, ``=``, ``=?`` or ``=<params>``.
  Anything else answers a plain ``ERROR`` whatever AT+CMEE says. So basic V.250 commands such as
  ``ATE0``/``ATE1`` are rejected: the SLM has no command echo (the reference lists echo only for
  the later Serial Modem). A line with no ``AT`` at all also answers ``ERROR``.
- Identity: ``Nordic Semiconductor ASA`` / ``nRF9160-SICA`` / ``mfw_nrf9160_1.3.5``;
  ``AT#XSLMVER`` -> ``#XSLMVER: "<NCS version>","<modem library version>"`` (a third
  ``"<customer version>"`` only when the firmware was built with one).
- Powers up in CFUN=0 (SIM off: AT+CIMI and AT%XICCID fail until CFUN=1 or 4), default bearer
  on cid 0 (``+CGDCONT: 0,"IP","","",0,0``), cids 0..11; +CEREG stat 90 (UICC failure) when
  CFUN=1 finds no SIM.
- ``AT%XICCID`` -> ``%XICCID: <iccid>`` (may end in an ``F`` pad); ``AT#XRESET`` answers OK,
  then reboots (``Ready`` again).
"""

from __future__ import annotations

from typing import Final

from .core import (
    Command,
    CommandError,
    Dialect,
    FakeModem,
    Identity,
    Kind,
    Response,
    register_dialect,
)

__all__ = ["NRF91_SLM", "SLM_CUSTOMER_VERSION", "SLM_LIBMODEM_VERSION", "SLM_NCS_VERSION"]

SLM_NCS_VERSION: Final = "2.5.0"
SLM_LIBMODEM_VERSION: Final = "2.5.0-lte-5ccd2d4dd54c"
SLM_CUSTOMER_VERSION: Final[str | None] = None


def _is_name_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def slm_grammar_ok(line: str) -> bool:
    """The SLM's AT command grammar check, applied to the line from its AT prefix on."""
    if len(line) < 2 or line[:2].upper() != "AT":
        return False
    rest = line[2:]
    if rest == "":
        return True
    if rest[0] not in "+%#":
        return False
    end = 1
    while end < len(rest) and _is_name_char(rest[end]):
        end += 1
    if end == 1:
        return False
    tail = rest[end:]
    if tail in ("", "?", "=", "=?"):
        return True
    return tail.startswith("=") and not tail.startswith("=?")


def _xslmver(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    fields = [SLM_NCS_VERSION, SLM_LIBMODEM_VERSION]
    if SLM_CUSTOMER_VERSION:
        fields.append(SLM_CUSTOMER_VERSION)
    return Response.ok("#XSLMVER: " + ",".join(f'"{value}"' for value in fields))


def _xiccid(fake: FakeModem, cmd: Command) -> Response:
    cmd.require_kind(Kind.EXEC)
    fake.check_sim()
    return Response.ok(f"%XICCID: {fake.identity.iccid}")


def _xreset(fake: FakeModem, cmd: Command) -> Response:
    if cmd.kind is not Kind.EXEC:
        raise CommandError(None)
    fake.after_response(lambda: fake.after_output(fake.reboot))
    return Response.ok()


def _slm_banner(text: str) -> bytes:
    return text.encode("latin-1") + b"\r\n"


NRF91_SLM: Final = register_dialect(
    Dialect(
        name="nrf91-slm",
        description="nRF9160 with the Serial LTE Modem application (NCS <= 3.1)",
        terminator="CRLF",
        quote_aware=True,
        backspace=b"\x08\x7f",
        max_line=4096,
        non_at_line="error",
        syntax_check=slm_grammar_ok,
        boot_banner=((0.0, "Ready"),),
        frame_banner=_slm_banner,
        default_echo=False,
        boot_cfun=0,
        identity=Identity(
            manufacturer="Nordic Semiconductor ASA",
            model="nRF9160-SICA",
            revision="mfw_nrf9160_1.3.5",
            imei="352656100367872",
            imsi="284011234567890",
            iccid="8901234567012345678F",
        ),
        cfun_modes=(0, 1, 4),
        sim_powered_cfun=frozenset({1, 4}),
        sim_off_error=13,
        no_sim_stat=90,
        cid_range=(0, 11),
        default_contexts={0: ("IP", "")},
        handlers={"#XSLMVER": _xslmver, "%XICCID": _xiccid, "#XRESET": _xreset},
    )
)
