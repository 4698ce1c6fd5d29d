"""Pausing the cyclic garbage collector while the compiler builds a large graph.

CPython starts a collection after every few hundred new container objects, and a
full one whenever the objects that survived since the last full collection reach a
quarter of all long-lived objects. Compiling a graph allocates objects that all
stay alive (edges, the passes' lookup index, the graph itself), so at 100 000
nodes those collections free nothing yet walk the whole heap several times: about
a sixth of the time of ``Flow.compile()``. The compiler runs no user code and
builds no reference cycles while it works, so automatic collection is paused for
that stretch and runs again afterwards as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable automatic garbage collection inside the block and re-enable it after.

    Nesting is harmless (the outermost block re-enables), and a collector that was
    already disabled by the caller stays disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
