"""Starting a big run in slices: its id is committed and answered first, its tasks made ready across steps.

Making a task ready costs the loop a few microseconds (its state change, its queue entry, the scheduler's
bookkeeping): nothing for a small run, but a 20,000-task fan-out made ready in one call held the loop for
0.3-0.7 s of CPU on a 2-core machine, and every request behind it (``/health`` included) waited as long.
So :class:`RunStarter` makes a run's root tasks ready a slice at a time, each slice bounded by a time
budget, and hands the loop back between slices (``call_soon``), where requests, completions and the
dispatching step take their turn.

Why this needs nothing on restart: every task row is inserted ``pending`` with the run's first commit, and
a run's still-pending roots are exactly what :func:`~lattice.core.algorithm.resume_run` makes ready when a
head picks the run up again. A head killed between slices therefore resumes the run as if it had been
killed after the last slice.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lattice.core.runs import RunExec

#: most seconds one slice of a run's start spends making tasks ready: half the dispatching step's budget, since
#: pushing them into the scheduler afterwards (the loop's `_apply`) costs about as much again (measured)
SLICE_BUDGET_S = 0.005
#: tasks made ready between two looks at the clock (a clock read costs about as much as 1/20 of a task)
CHECK_EVERY = 64


@dataclass
class _Starting:
    run: RunExec
    names: Iterator[str]


class RunStarter:
    """The runs whose root tasks are still being made ready, oldest first (one at a time, in order)."""

    def __init__(self, budget_s: float = SLICE_BUDGET_S) -> None:
        self.budget_s = budget_s
        self._queue: deque[_Starting] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def starting(self, run_id: str) -> bool:
        return any(item.run.run_id == run_id for item in self._queue)

    def add(self, run: RunExec, names: Iterator[str]) -> None:
        self._queue.append(_Starting(run, names))

    def advance(self, start: Callable[[RunExec, list[str], bool], None]) -> bool:
        """Make ready what fits in one budget; ``start(run, names, last)`` makes ``names`` ready (``last``:
        the run's final slice). Returns whether any run still has tasks to make ready.

        A run that ended meanwhile (cancelled, failed fast) is dropped: what it had left is not pending."""
        ends = time.perf_counter() + self.budget_s
        queue = self._queue
        while queue:
            item = queue[0]
            if item.run.state.terminal:
                queue.popleft()
                continue
            while True:
                chunk = [name for _, name in zip(range(CHECK_EVERY), item.names, strict=False)]
                last = len(chunk) < CHECK_EVERY
                start(item.run, chunk, last)
                if last:
                    queue.popleft()
                    break
                if time.perf_counter() > ends:
                    return True
            if time.perf_counter() > ends:
                return bool(queue)
        return False


def first_slice(names: Iterator[str], budget_s: float, make_ready: Callable[[list[str]], None]) -> bool:
    """Make ready, inline, what fits in ``budget_s`` (a small run: all of it, as before slicing).
    Returns whether ``names`` has more left."""
    ends = time.perf_counter() + budget_s
    while True:
        chunk = [name for _, name in zip(range(CHECK_EVERY), names, strict=False)]
        if chunk:
            make_ready(chunk)
        if len(chunk) < CHECK_EVERY:
            return False
        if time.perf_counter() > ends:
            return True
