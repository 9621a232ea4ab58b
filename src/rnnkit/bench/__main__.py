"""``python -m rnnkit.bench``."""

import sys

from . import main

sys.exit(main())
