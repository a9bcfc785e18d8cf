"""Run the ``bosun`` command line as ``python -m bosun``."""

from __future__ import annotations

import sys

from bosun import cli

sys.exit(cli.main())
