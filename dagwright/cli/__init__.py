"""The ``dagwright`` command line: ``check``, ``run``, ``render``, ``export`` and ``demo``."""

from dagwright.cli.command import main

__all__ = ["main"]
