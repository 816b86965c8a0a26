"""Fake cellular modems on a pty, one script per dialect, for tests, demos, benchmarks and HIL.

    async with FakeModem(dialect="nrf91-slm", registration_delay=0.1) as fake:
        ...  # open fake.port with pyserial; make things go wrong with fake.drop_pdp(), ...

Layout (each module says more in its docstring):

- ``grammar``   the AT command grammar: ``parse_command``, ``Command``, ``Param``, ``Kind``,
                ``Response``, ``CommandError``, ``frame_line``. Pure, no I/O.
- ``wire``      the serial line: the command-line reader, the baud-rate ``Pacer``, the hot line.
- ``registry``  what a modem family is: ``Dialect``, ``Identity``, ``Network``,
                ``register_dialect`` and ``DIALECTS``.
- ``core``      the engine, ``FakeModem``: the pty, exchanges (echo, dispatch, response),
                the modem state, registration.
- ``faults``    the fault interface (``FaultControls``, inherited by ``FakeModem``) and the
                per-family ``NetworkFaults`` it forwards to.
- ``loopback``  the fake network: sockets bridged to real TCP on 127.0.0.1, name resolution.
- ``generic``   the plain 3GPP TS 27.007 commands every dialect inherits.
- ``radio``     the cell and signal model (serving/neighbour cells, SNR, RSSI, %CONEVAL
                figures derived from RSRP) and the radio settings a power cycle resets.
- ``scenarios`` ``RadioControls`` (inherited by ``FakeModem``): RRC state (+CSCON), PSM grants,
                the dialect's radio notifications.
- ``nrf91_diag``, ``simcom_diag``  each family's field-diagnostics commands (%XMONITOR,
                %CONEVAL, +CBC, +CENG...), with their sources.
- one module per dialect (``nrf91_slm``, ``nrf91_sm``, ``sim7080``, ``sim7600``, ``sim7000``)
  with what a family shares beside them (``nrf91_sockets``, ``simcom_common``). Add a dialect by
  adding its module and one import line below.

The fault interface
-------------------
Every dialect takes the same calls, so a test that runs on all of them never names a family;
each modem reports the fault the way the real one does:

==============================  ==============================  ===============================
``FakeModem`` method            nRF91 SLM / SM                  SIM7080 / SIM7600 / SIM7000
==============================  ==============================  ===============================
``drop_pdp()``                  LTE-M: the last PDN goes only   ``+APP PDP: 0,DEACTIVE`` /
network deactivates the data    with a detach: as               ``+CIPEVENT: NETWORK CLOSED
context, sockets fail           ``network_detach`` below, back  UNEXPECTEDLY`` / ``+PDP: DEACT``;
                                after ``registration_delay``.   sockets reset, no socket URC;
                                NB-IoT (AcT 9): ``+CGEV: NW     **registration stays**; opens
                                PDN DEACT 0``, POLLERR,         fail until the host brings the
                                **registration stays**          bearer up again
``network_detach(               ``+CGEV: NW DETACH`` (or ME),   ``+CEREG: 2`` (or 0), then the
reattach_after=None,            ``+CEREG: 2`` (or 0), sockets   ``drop_pdp`` URC; later
initiator="NW")``               fail; later ``+CEREG: 1``,      ``+CEREG: 1``, bearer stays down
                                ``+CGEV: ME PDN ACT 0``
``peer_close(link=None)``       peer FIN: POLLIN|POLLHUP        ``+CASTATE: <cid>,0`` /
remote end closes the TCP       (``#XAPOLL: <h>,17``), recv 0   ``+IPCLOSE: <l>,1`` /
connection (None: every open)                                   ``<n>, CLOSED``
``fail_next_send(count=1)``     ``#XSEND: 0`` + ``ERROR``;      ``ERROR`` /
                                data mode: ``+++``, then        ``+CIPSEND: <l>,<len>,-1`` /
                                ``#XDATAMODE: <negative>``      ``<n>, SEND FAIL``
``fail_next_open(count=1)``     ``AT#XCONNECT`` -> ``ERROR``    ``+CAOPEN: <cid>,23`` /
                                                                ``+CIPOPEN: <l>,<err>`` /
                                                                ``<n>, CONNECT FAIL``
``lose_next_notification()``    no ``#XAPOLL`` POLLIN / push    no ``+CADATAIND`` /
                                                                ``+CIPRXGET: 1,<l>``
``reboot_during_next_send()``   reboot after data-mode ``OK``   reboot after the ``> `` prompt
``reboot(banner=None)``         ``Ready``; sockets, CFUN, URC   ``RDY`` ... banners; sockets and
                                levels lost                     bearer lost
``drop_link()``                 the pty hangs up (USB unplugged): reads EOF, writes EIO
==============================  ==============================  ===============================

Field scenarios (``scenarios``; every dialect, ``FakeModem`` keywords and CLI flags):
``deny=N``, ``no_service``, ``roaming``, ``rsrp_series`` (+ ``series_period``,
``fake.step_signal()``), ``handover_after`` (``fake.handover()``), ``psm_grant``, ``dns_fail``,
``broker_unreachable``, ``connack_refused``; the table in ``scenarios`` says what each family
answers. Every dialect also answers its family's field-diagnostics queries (``nrf91_diag``,
``simcom_diag``, and +CPSMS/+CEDRXRDP/+CGPADDR/+CSCON in ``generic``).

Options every dialect takes: ``rat="lte"|"nbiot"|"gprs"|"wcdma"|"gsm"`` (which of ``+CEREG``,
``+CGREG``, ``+CREG`` report the registration, with which AcT), ``by_id=<dir>`` (served through
a ``/dev/serial/by-id/``-like symlink, ``fake.device``, that vanishes on every reset and comes
back naming a new pty), and the dialect's own keywords (``Dialect.options``, in
``fake.options``); ``python -m tests.fakes`` takes them as ``--rat``, ``--by-id`` and
``--option NAME=VALUE``. The builds and models made in Python (``nrf91_slm.slm_build``,
``nrf91_sm.sm_build``, the SIMCom ``model()``s) and ``nrf91_slm.start_in_data_mode`` are its
``--terminator``, ``--ncs-version``, ``--legacy-datamode``, ``--autobaud``, ``--late-boot`` and
``--start-in-data-mode``; SIGUSR1 to it is ``nrf91_sockets.modem_fault``.

Line faults are the same everywhere: ``send_urc``, ``hold_urcs``, ``urc_during_next_response``,
``send_garbage``, ``drop_next_response``, ``delay_next_response``. The generic dialect has no
sockets: its socket faults raise ``UnsupportedFault``.
"""

from . import (
    generic,  # noqa: F401  (registers "generic" and the 3GPP commands)
    nrf91_slm,  # noqa: F401  (registers "nrf91-slm")
    nrf91_sm,  # noqa: F401  (registers "nrf91-sm")
    sim7000,  # noqa: F401  (registers "sim7000")
    sim7080,  # noqa: F401  (registers "sim7080")
    sim7600,  # noqa: F401  (registers "sim7600")
)
from .core import FakeModem, ModemState
from .faults import NetworkFaults, UnsupportedFault
from .grammar import Command, CommandError, Handler, Kind, Response
from .registry import DIALECTS, Dialect, Identity, Network, register_dialect

__all__ = [
    "DIALECTS",
    "Command",
    "CommandError",
    "Dialect",
    "FakeModem",
    "Handler",
    "Identity",
    "Kind",
    "ModemState",
    "Network",
    "NetworkFaults",
    "Response",
    "UnsupportedFault",
    "register_dialect",
]
