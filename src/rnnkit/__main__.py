"""``python -m rnnkit``: the same as the ``rnnkit`` command (see rnnkit/cli.py)."""

import sys

from .cli import main

sys.exit(main())
