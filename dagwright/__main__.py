"""``python -m dagwright``: the same as the ``dagwright`` command."""

import sys

from dagwright.cli import main

sys.exit(main())
