"""The diagnostics vocabulary: modem answers as JSON-ready dicts, and the words for them.

Theory of operation
-------------------
:mod:`atbridge.decode` parses the generic answers into dataclasses; this package
names what a modem said with exactly the field names of the field vocabulary
(``shared/reference/diagnostics.md``), so ``explain``, ``diag`` and ``watch``
print the same keys. One reader, :func:`explain_text`, takes a whole pasted
answer (several lines, with or without the echo and the final ``OK``, leading
blank lines) and files each line under its prefix, aggregating the lines of one
command (``contexts``, ``available``, ``neighbours``, ``dns_servers``...);
:func:`decode_answer` is the same reader for the lines of one
:class:`~atbridge.modem.Response` (what :mod:`atbridge.survey` asks with).
:func:`decode_line` decodes one ``prefix: value`` line. Unknown values are
``None``, never a sentinel number; text that is no known answer raises
:class:`ExplainError` with what was seen.

Submodules, one per family of commands (small pure functions each):
:mod:`~atbridge.diagnostics.standard` (3GPP TS 27.007/27.005),
:mod:`~atbridge.diagnostics.nordic` (nRF91 ``%`` commands),
:mod:`~atbridge.diagnostics.simcom` (SIMCom ``+CPSI``, ``+CNACT``...),
:mod:`~atbridge.diagnostics.human` (the table's units and meanings),
:mod:`~atbridge.diagnostics.common` (conversions, ratings, reject causes).

``--command`` tells shapes apart that collide: a ``+CEREG``/``+CGREG``/``+CREG``
read form (``<n>,<stat>``) from a URC, ``+CSCON: <n>,<mode>`` from the URC
``+CSCON: <mode>``, ``+NETOPEN: <state>`` (``AT+NETOPEN?``) from the result URC
``+NETOPEN: <err>`` (``--command AT+NETOPEN``), and which field a bare line
fills (``AT+CIMI`` -> ``imsi``, ``AT+CGMM`` -> ``model``). ``+CEDRXRDP`` (read)
and ``+CEDRXP`` (URC) have their own prefixes and the same fields.

Ratings (human output only, never JSON fields) come from one table,
:data:`RATINGS` (lower bound of each rating, dBm / dB):

=========  =========  ======  ======  =====
quantity   excellent  good    fair    poor
=========  =========  ======  ======  =====
RSRP dBm   >= -84     >= -102 >= -111 below
RSRQ dB    >= -10     >= -15  >= -20  below
SNR dB     >= 20      >= 13   >= 0    below
RSSI dBm   >= -65     >= -75  >= -85  below
=========  =========  ======  ======  =====

Source, honestly: the RSRP row is :data:`atbridge.decode.RSRP_RATINGS` (the bands
``info`` rates with; an earlier docstring attributed them to nRF Connect Cellular
Monitor, which was not verified). The same RSRP and RSSI bands are the common
field-engineering table found in many public tools, so read all four rows as a
*convention*, not a vendor spec. ``sinr_db`` (SIMCom) is rated like ``snr_db``.

Reject causes (:data:`EMM_CAUSES`) are TS 24.301 Annex A EMM causes with a short
"what to try" each; ``+CME ERROR``/``+CMS ERROR`` texts are :mod:`atbridge.cme`'s.

Sources
-------
- 3GPP TS 27.007 (§7.3 +COPS, §7.40/§7.41 +CEDRXS/+CEDRXRDP, §8.3 +CPIN, §8.5 +CSQ,
  §8.69 +CESQ, §9.2 +CME ERROR, §10.1.1 +CGDCONT, §10.1.14 +CGPADDR, §10.1.23
  +CGCONTRDP, §10.1.20/10.1.22 +CGREG/+CEREG, §10.1.30 +CSCON), TS 27.005 §3.2.5
  (+CMS ERROR); TS 24.008 §10.5.7.3, Tables 10.5.163a/10.5.172 (GPRS timers) and
  §10.5.5.32 / Table 10.5.5.32 (eDRX cycle and paging time window); TS 24.301
  Annex A (EMM causes).
- Nordic nRF91 AT Commands Reference (docs.nordicsemi.com; the nRF9160 v1.x and
  nRF91x1 editions): %XMONITOR, %CONEVAL, %CESQ, %XCBAND, %NBRGRSRP, %XSYSTEMMODE,
  %XTEMP, %XVBAT, %XICCID, %XPTW, %MDMEV, +CGCONTRDP; their examples are quoted in
  the tests.
- sdk-nrf ``lib/lte_link_control``: ``modules/coneval.c`` (the 17 %CONEVAL
  parameters), ``modules/mdmev.c`` (the %MDMEV events), ``modules/edrx.c`` (eDRX
  multiples per LTE mode and the 1.28 s / 2.56 s PTW units); ``lib/modem_info``.
- nRF Connect Cellular Monitor (pc-nrfconnect-cellularmonitor) decoders: %NBRGRSRP
  as PCI/EARFCN/RSRP triplets, %CONEVAL test data.
- SIMCom SIM7000 Series, SIM7070/SIM7080/SIM7090 Series and SIM7500/SIM7600 Series
  AT Command Manuals: +CPSI, +CNMP, +CMNB, +CBANDCFG, +CBC, +CPMUTEMP, +CICCID,
  +CCID, +CNACT, +NETOPEN, +CIPSTATUS, +CDNSCFG; Zephyr
  ``drivers/modem/simcom-sim7080`` (+CPSI RSSNR -> SINR = 2 × RSSNR − 20).
- TinyGSM (SIM7000/SIM800 ``STATE:``/``C:`` lines of AT+CIPSTATUS, ``+CBC`` forms).

Verified and not: ``+CENG?`` is decoded for the SIM7080 layout only (a header
``+CENG: <mode>,<Ncell>,<num>,LTE CAT-M1|LTE NB-IOT`` and quoted cell lines, as a
public SIM7080 driver quotes the manual); the SIM7600's and the 2G layouts are
refused with a message. ``AT+CDNSCFG?`` is decoded in the SIM800/SIM7000
``PrimaryDns:``/``SecondaryDns:`` form; a SIM7080 form was not found documented.

Fields not in the reference vocabulary
--------------------------------------
Chosen here where ``diagnostics.md`` is silent (for the lead to document):

======================================  ==============================================
command                                 fields
======================================  ==============================================
AT+CIMI                                 ``imsi``
AT+CCID / AT+CICCID (+ICCID)            ``iccid`` (as %XICCID)
AT+CPIN?                                ``pin_state`` (the code as printed, upper case)
AT+CGMI / AT+CGMM / AT+CGMR             ``manufacturer`` / ``model`` / ``revision``
AT%XTEMP? / AT+CPMUTEMP                 ``temperature_c``
AT%XVBAT / AT+CBC                       ``voltage_mv``; +CBC SIM70x0 also
                                        ``charge_state``, ``battery_percent``
AT%XSYSTEMMODE?                         ``lte_m_enabled``, ``nbiot_enabled``,
                                        ``gnss_enabled`` (bools), ``lte_preference``
AT%XMONITOR                             ``rsrp_index``, ``snr_index``, ``edrx_s``
AT%CONEVAL                              ``rsrp_index``, ``rsrq_index``, ``snr_index``
AT%NBRGRSRP                             ``neighbours``: ``{pci, earfcn, rsrp_index,
                                        rsrp_dbm}``
%CESQ                                   ``rsrp_index``, ``rsrq_index`` (and the
                                        vocabulary's thresholds, 255 -> null)
%MDMEV                                  ``event``; ``ce_level`` (PRACH CE-LEVEL),
                                        ``mcc`` (DETECTED COUNTRY),
                                        ``band_config_ltem``/``_nbiot``/``_ntn_nbiot``
AT+CEDRXRDP / +CEDRXP                   ``act_type`` (27.007 eDRX AcT-type 4/5, NOT
                                        +CEREG's ``act``), ``requested_edrx_raw``,
                                        ``requested_edrx_s``, ``edrx_raw``, ``edrx_s``,
                                        ``ptw_raw``, ``ptw_s``
AT%XPTW?                                ``ptw``: ``{act_type, requested_ptw_raw,
                                        requested_ptw_s}``
AT+CGCONTRDP                            ``cid``, ``apn``, ``dns_servers``, ``mtu``,
                                        ``contexts``: ``{cid, bearer_id, apn,
                                        local_address, gateway, dns_primary,
                                        dns_secondary, mtu}``
AT+CGPADDR                              ``addresses``: ``{cid, address, address_ipv6}``
AT+CNMP?                                ``rat_preference``, ``rat_preference_name``
AT+CMNB?                                ``lte_mode_preference``,
                                        ``lte_mode_preference_name``
AT+CBANDCFG?                            ``bands``: ``{"CAT-M": [..], "NB-IOT": [..]}``
AT+CPSI?                                ``service`` (false for NO SERVICE); GSM layout:
                                        ``arfcn``, ``rxlev_dbm``
AT+CENG? (SIM7080 only)                 ``mode``, ``ncell``, ``cell_count``,
                                        ``system_mode``, ``serving``: ``{earfcn, pci,
                                        rsrp_dbm, rssi_dbm, rsrq_db, sinr_db, tac_raw,
                                        cell_id_raw, mcc, mnc, plmn, tx_power_raw}``,
                                        ``neighbours``: the first six of those
AT+CNACT?                               ``contexts``: ``{pdpidx, status, address}``
+APP PDP                                ``pdpidx``, ``state``
AT+NETOPEN? / +NETOPEN URC              ``network_open``; URC: ``netopen_error``
AT+CIPSTATUS                            ``state``, ``connections``: ``{link, bearer,
                                        protocol, address, port, state}``
AT+CDNSCFG?                             ``dns_primary``, ``dns_secondary``,
                                        ``dns_servers``
+CME ERROR / +CMS ERROR / ERROR         ``error_kind`` (CME/CMS/null), ``error_code``,
                                        ``error_text``
======================================  ==============================================
"""

from __future__ import annotations

from atbridge.diagnostics._text import (
    PREFIXES,
    command_name,
    decode_answer,
    decode_line,
    explain_text,
    flatten,
)
from atbridge.diagnostics.common import (
    EMM_CAUSES,
    RATINGS,
    ExplainError,
    Fields,
    cause_text,
    rate,
)
from atbridge.diagnostics.human import describe_field
from atbridge.diagnostics.standard import looks_like_read, registration

__all__ = [
    "EMM_CAUSES",
    "PREFIXES",
    "RATINGS",
    "ExplainError",
    "Fields",
    "cause_text",
    "command_name",
    "decode_answer",
    "decode_line",
    "describe_field",
    "explain_text",
    "flatten",
    "looks_like_read",
    "rate",
    "registration",
]
