"""Running the ``dagwright`` command line from tests: the console script or ``python -m``, several at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

Result = subprocess.CompletedProcess[str]
SCRIPT = Path(sys.executable).with_name("dagwright")


def run_many(commands: list[list[str]], *, cwd: Path, script: bool = True) -> list[Result]:
    """Run command lines side by side: the console script (as pre-commit runs it) or ``python -m dagwright``."""
    prefix = [str(SCRIPT)] if script else [sys.executable, "-m", "dagwright"]
    procs = [
        (
            [*prefix, *args],
            subprocess.Popen(
                [*prefix, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=cwd,
                env=dict(os.environ),
            ),
        )
        for args in commands
    ]
    results = []
    for argv, proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results
