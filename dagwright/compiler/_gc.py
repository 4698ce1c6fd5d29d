"""Pausing the cyclic garbage collector while the compiler builds a large graph.

CPython starts a collection after every few hundred new container objects, and a
full one whenever the objects that survived since the last full collection reach a
quarter of all long-lived objects. Compiling a graph allocates objects that all
stay alive (edges, the passes' lookup index, the graph itself), so at 100 000
nodes those collections free nothing yet walk the whole heap several times: about
a sixth of the time of ``Flow.compile()``. The compiler runs no user code and
builds no reference cycles while it works, so automatic collection is paused for
that stretch and runs again afterwards as usual.

When the pause leaves many new objects behind (a large graph), they go straight to
the oldest generation, where the next full collection looks at them as it would
have anyway: otherwise the first allocation after the pause starts a collection of
the youngest generation that walks every one of them (and later one of the middle
generation that walks them again) to free nothing. ``gc.freeze()`` followed by
``gc.unfreeze()`` does that move without walking any object; it is done only when
nothing else has frozen objects (``gc.get_freeze_count()`` is 0), since unfreezing
would release those too.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PROMOTE_AT", "gc_paused"]

PROMOTE_AT = 50_000
"""New container objects left by a pause from which they are moved to the oldest generation."""


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
        if gc.get_count()[0] >= PROMOTE_AT and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()
