"""``python -m vaereg_core.cli``."""

import sys

from vaereg_core.cli import main

sys.exit(main())
