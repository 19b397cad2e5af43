"""The scheduler's pure core: ready queues per resource class, ordered by priority, age and path.

No Ray, no I/O: tasks go in, a placer says whether a task fits somewhere (and reserves it), and
placements come out. That keeps the policy small enough to test exhaustively.

Order inside a queue: a task's score is ``priority + aging_rate * seconds_waited +
critical_path_weight * critical_path_length``. Every task in a queue ages at the same rate, so the
ordering never changes while tasks wait and a heap keyed on ``priority - aging_rate * enqueued_at``
is exact. A task that does not fit is skipped for this round (backfill): it never blocks a task in
another class, and inside its class a smaller task behind it may go first.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from lattice.wire.resources import ResourceClass, Resources

Placer = Callable[["QueuedTask"], str | None]


@dataclass
class QueuedTask:
    key: Hashable
    resources: Resources
    priority: int
    enqueued_at: float
    critical_path: int = 1
    prefetch: bool = False


@dataclass(frozen=True)
class Placement:
    task: QueuedTask
    node_id: str


class Scheduler:
    def __init__(self, aging_rate: float = 1.0, critical_path_weight: float = 0.01,
                 max_skips_per_class: int = 32) -> None:
        self.aging_rate = aging_rate
        self.critical_path_weight = critical_path_weight
        self.max_skips_per_class = max_skips_per_class
        # Heap entries are (-score, arrival, task): plain tuples compare fast; arrival breaks ties.
        self._queues: dict[ResourceClass, list[tuple[float, int, QueuedTask]]] = {cls: [] for cls in ResourceClass}
        self._live: dict[Hashable, tuple[float, int, QueuedTask]] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def queued(self) -> dict[str, int]:
        counts = {str(cls): 0 for cls in ResourceClass}
        for _, _, item in self._live.values():
            counts[str(item.resources.resource_class)] += 1
        return counts

    def push(self, task: QueuedTask) -> None:
        if task.key in self._live:
            raise ValueError(f"task {task.key!r} is already queued")
        score = (task.priority - self.aging_rate * task.enqueued_at
                 + self.critical_path_weight * task.critical_path)
        entry = (-score, next(self._counter), task)
        self._live[task.key] = entry
        heapq.heappush(self._queues[task.resources.resource_class], entry)

    def remove(self, key: Hashable) -> bool:
        """Forget a queued task (lazy: its heap entry is dropped when it surfaces)."""
        return self._live.pop(key, None) is not None

    def schedule(self, place: Placer, limit: int | None = None) -> list[Placement]:
        """Place as many queued tasks as fit, best score first in each class."""
        placements: list[Placement] = []
        for cls in (ResourceClass.GPU, ResourceClass.CPU, ResourceClass.IO):
            queue = self._queues[cls]
            skipped: list[tuple[float, int, QueuedTask]] = []
            while queue and len(skipped) < self.max_skips_per_class:
                if limit is not None and len(placements) >= limit:
                    break
                entry = heapq.heappop(queue)
                item = entry[2]
                if self._live.get(item.key) is not entry:
                    continue  # removed or re-queued since
                node_id = place(item)
                if node_id is None:
                    skipped.append(entry)
                    continue
                del self._live[item.key]
                placements.append(Placement(item, node_id))
            for entry in skipped:
                heapq.heappush(queue, entry)
        return placements
