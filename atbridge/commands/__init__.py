"""The ``atbridge`` subcommands, one module each.

Each module exposes ``configure(parser)`` (adds its arguments) and ``run(args)``
(does the work, returns the exit code). Modules import only the standard
library at import time, so building the parser for ``--help`` stays instant;
atbridge's asyncio and serial layers load inside ``run``.
"""
