"""What the head counts about itself, kept in memory so a scrape reads numbers instead of the store.

The orchestrator tells :class:`HeadMetrics` when runs start and end, when attempts are dispatched and
when they end; each call is a few additions on the loop. The Prometheus collector
(``lattice.api.metrics``) reads these numbers on a scrape and turns them into metric families: nothing
here knows about Prometheus, and no scrape touches the store or takes a lock the loop waits on.

Run counts by state start from one ``GROUP BY`` over the store when the head starts (the runs earlier
heads left), then move with every run this head creates and finishes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: queue waits: from a few milliseconds (an idle cluster) to an hour (a long backlog)
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                         60.0, 300.0, 900.0, 3600.0)
#: attempt durations: from a builtin noop to a long LLM agent step
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                                       120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram (Prometheus' shape): ``counts[i]`` is the observations ``<= bounds[i]``
    only, the cumulative sums are made when read, so an observation is one bisect and two additions."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf

    def observe(self, value: float) -> None:
        value = max(0.0, value)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for each bucket, ``+Inf`` last (equal to :attr:`count`)."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass
class HeadMetrics:
    """The head's counters since it started (run counts by state also include earlier heads' runs)."""

    #: runs by state, as the store holds them
    runs_by_state: Counter[str] = field(default_factory=Counter)
    #: attempts handed to the backend
    dispatches: int = 0
    #: ended attempts by outcome: ``succeeded``, ``failed``, ``cancelled``
    attempts: Counter[str] = field(default_factory=Counter)
    #: failed attempts by error kind (``exception``, ``timeout``, ``worker_died``, ...)
    failures: Counter[str] = field(default_factory=Counter)
    #: tasks that ended for good: ``succeeded`` or ``failed`` (a retried attempt is not a failed task)
    tasks_finished: Counter[str] = field(default_factory=Counter)
    #: from a task becoming ready to the scheduler placing it on a node
    queue_wait: Histogram = field(default_factory=lambda: Histogram(QUEUE_WAIT_BUCKETS))
    #: how long attempts ran (the executor's start to end), by outcome
    durations: dict[str, Histogram] = field(default_factory=dict)

    def seed_runs(self, counts: Mapping[str, int]) -> None:
        self.runs_by_state = Counter({str(state): n for state, n in counts.items()})

    def run_created(self) -> None:
        self.runs_by_state["running"] += 1

    def run_finished(self, state: str) -> None:
        if self.runs_by_state["running"] > 0:
            self.runs_by_state["running"] -= 1
        self.runs_by_state[str(state)] += 1

    def dispatched(self, queue_wait_s: float) -> None:
        self.dispatches += 1
        self.queue_wait.observe(queue_wait_s)

    def attempt_ended(self, row: Mapping[str, Any]) -> None:
        """An attempt's row as the algorithm recorded it (``state``, ``started_at``, ``finished_at``,
        ``error``): counted by outcome, its error kind, and its duration where it started."""
        outcome = str(row["state"])
        self.attempts[outcome] += 1
        error = row.get("error")
        if outcome == "failed" and isinstance(error, Mapping):
            self.failures[str(error.get("kind", "unknown"))] += 1
        started, finished = row.get("started_at"), row.get("finished_at")
        if started is not None and finished is not None:
            histogram = self.durations.get(outcome)
            if histogram is None:
                histogram = self.durations[outcome] = Histogram(DURATION_BUCKETS)
            histogram.observe(finished - started)

    def tasks_ended(self, succeeded: int, failed: int) -> None:
        if succeeded:
            self.tasks_finished["succeeded"] += succeeded
        if failed:
            self.tasks_finished["failed"] += failed


__all__ = ["DURATION_BUCKETS", "QUEUE_WAIT_BUCKETS", "HeadMetrics", "Histogram"]
