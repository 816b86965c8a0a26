"""The ``atbridge`` subcommands, one module each, and the parts they share.

Each command module (``at``, ``info``, ``creds``, ``publish``, ``subscribe``,
``run``, ``fsm``) exposes ``configure(parser)`` (adds its own arguments),
``run(args)`` (does the work, returns the exit code) and, when it shares
options, ``parents()`` (the argparse parent parsers it is built from).

The shared parts:

- :mod:`~atbridge.commands.options` — the option declarations, as parent
  parsers (the port options once for every command that talks to a modem);
- :mod:`~atbridge.commands.settings` — the parsed options as settings for the
  one loader, :mod:`atbridge.config`;
- :mod:`~atbridge.commands.session` — one bridge per command: progress, the
  stop signals, a lifecycle that gave up;
- :mod:`~atbridge.commands.output` — how messages, progress and errors are shown;
- :mod:`~atbridge.commands.publishing` — publishing a stream of payloads in order;
- :mod:`~atbridge.commands.stdin` — the one stdin reader.

Modules import only the standard library at import time, so building the
parser for ``--help`` stays instant; atbridge's asyncio and serial layers load
inside ``run``.
"""
