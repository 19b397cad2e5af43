"""The head's GC settings: young collections in larger batches, start-up objects frozen, cycles still freed."""

from __future__ import annotations

import gc
import weakref

from lattice.utils.gctune import YOUNG_THRESHOLD, tune_for_head


def test_the_head_collects_in_larger_batches_and_still_frees_cycles() -> None:
    before = gc.get_threshold()
    try:
        tune_for_head()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None  # a reference cycle made after start-up is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
