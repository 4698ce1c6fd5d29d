"""The collector paused while the compiler builds: re-enabled after, and a large pause's objects moved on."""

from __future__ import annotations

import gc

from dagwright.compiler._gc import PROMOTE_AT, gc_paused


class Box:
    """A container object the collector tracks."""


def test_the_collector_is_enabled_again_after_a_pause_and_stays_off_when_it_was() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_large_pause_leaves_its_objects_in_the_oldest_generation_unwalked() -> None:
    gc.collect()
    with gc_paused():
        boxes = [Box() for _ in range(PROMOTE_AT + 1_000)]
    assert gc.get_count()[0] < 100 and gc.get_freeze_count() == 0
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(b) in oldest for b in boxes)
    del boxes


def test_objects_frozen_by_someone_else_stay_frozen() -> None:
    gc.collect()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            boxes = [Box() for _ in range(PROMOTE_AT + 1_000)]
        assert gc.get_freeze_count() == frozen  # nothing frozen was let go, and the new objects were not frozen
        del boxes
    finally:
        gc.unfreeze()
