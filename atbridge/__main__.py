"""``python -m atbridge`` runs the command line."""

import sys

from atbridge.cli import main

sys.exit(main())
