""" "Did you mean": the one place that picks close matches for a misspelt name.

Every error about an unknown name (a node, a port, a type, a config key, a flow
input, a function reference) offers the closest known names through :func:`suggest`,
so they all judge closeness the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest"]


def suggest(name: str, candidates: Iterable[str], *, cutoff: float = 0.6, limit: int = 1) -> list[str]:
    """The known names closest to ``name``, best first (at most ``limit``; none when nothing is close).

    ``cutoff`` is difflib's similarity ratio (0..1): lower accepts wilder guesses.
    """
    return difflib.get_close_matches(name, list(candidates), n=limit, cutoff=cutoff)
