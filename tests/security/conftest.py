"""The security and reliability suite: each defect of the fault and attack study, reproduced and held fixed.

The shared helpers of ``tests/`` (``strategies``, ``helpers_runtime``) are importable from here too.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
