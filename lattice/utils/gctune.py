"""The head's garbage-collector settings: fewer full collections while a big run is created or answered.

A head holds many long-lived objects (every registered workflow's validated spec, every live run's tasks),
and starting a 20,000-task run allocates hundreds of thousands more in one go. With CPython's defaults
(a young collection every 700 allocations, an older one every 10 of those) each burst re-scans the
long-lived heap many times: measured with ``thread_time`` on this 2-core machine, creating a 20,000-task
run cost about 0.69 s of CPU with the defaults and 0.26-0.31 s with these settings (the loop, and every
request behind it, waits that long). ``gc.freeze()`` once the head has started moves what start-up made
(imported modules, the app, resumed workflows) out of every later scan. Reference cycles are still
collected, only in larger batches; memory a run frees without a cycle is freed at once, as always.
"""

from __future__ import annotations

import gc

#: allocations between young collections (CPython's default is 700)
YOUNG_THRESHOLD = 50_000


def tune_for_head() -> None:
    """Call once, after the head has started (its imports and start-up objects are then frozen)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(middle, 50), max(old, 100))
    gc.collect()
    gc.freeze()
