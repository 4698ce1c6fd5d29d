"""Where the user declared something: the first stack frame outside dagwright's own building code.

Nodes, connections and flow inputs carry that :class:`SourceLocation`, so a diagnostic
points at the user's line (or at the call of a pattern factory), not into the library.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Iterator
from types import FrameType

from dagwright.compiler.ir import SourceLocation

__all__ = [
    "INTERNAL_PATHS",
    "caller_location",
    "caller_position",
    "location_at",
    "locations_at",
    "register_internal_path",
]

# Frames in these files are the builder's own; a declaration's location is the first frame outside them.
# Read it through the module (register_internal_path replaces it).
INTERNAL_PATHS: tuple[str, ...] = (os.path.dirname(os.path.abspath(__file__)) + os.sep,)


def register_internal_path(path: str) -> None:
    """Treat frames in ``path`` (a directory ending in a separator, or a file) as the builder's own."""
    global INTERNAL_PATHS
    if path not in INTERNAL_PATHS:
        INTERNAL_PATHS = (*INTERNAL_PATHS, path)


def caller_location() -> SourceLocation | None:
    """The first frame outside the registered paths: where the user's code made the call.

    Called once per declaration (100 000 times for a 100 000-node flow), so it does the least it
    can: it starts at the frame that called its caller (its caller, a builder method, is internal by
    definition), compares file names with one ``startswith`` each, and builds no new location for a
    line it has seen.
    """
    internal = INTERNAL_PATHS
    try:
        frame: FrameType | None = sys._getframe(2)
    except ValueError:  # called from the outermost frame: nothing outside it
        return None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(internal):
            return _location(filename, frame.f_lineno)
        frame = frame.f_back
    return None


def caller_position() -> tuple[str | None, int]:
    """:func:`caller_location` as a file name and a line, ``(None, 0)`` when there is none: what a
    ``connect()`` records, turned into a location by :func:`location_at` only when the flow compiles."""
    internal = INTERNAL_PATHS
    try:
        frame: FrameType | None = sys._getframe(2)
    except ValueError:
        return None, 0
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(internal):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None, 0


@functools.lru_cache(maxsize=4096)
def _location(filename: str, line: int) -> SourceLocation:
    # A loop adding many nodes calls from one line: they share one (immutable) location.
    return SourceLocation(filename, line)


def location_at(filename: str | None, line: int) -> SourceLocation | None:
    """The location of a :func:`caller_position` (shared by every declaration made on that line)."""
    return None if filename is None else _location(filename, line)


def locations_at(files: list[str | None], lines: Iterable[int]) -> Iterator[SourceLocation | None]:
    """:func:`location_at` of each file and line, without a Python call per pair when every file is known."""
    if None in files:
        return map(location_at, files, lines)
    return map(_location, files, lines)
