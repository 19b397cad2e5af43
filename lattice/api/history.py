"""Numbers over time for the Board: the head samples a few counters every few seconds into a bounded ring.

Prometheus (``/metrics``) is the place for long-term series; this ring only lets the Board draw the last
half hour without a Prometheus server: tasks finished per second, ready tasks per resource class, running
tasks and reserved CPUs. It is in memory and starts empty with each head.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from lattice.api.state import HeadState
from lattice.wire.http import MetricsHistory, MetricsSample

SAMPLE_EVERY_S = 2.0
KEEP_SAMPLES = 900  # half an hour at one sample every 2 s


class MetricsRing:
    """Samples the head's state on a timer; ``history()`` is what ``GET /api/v1/cluster/metrics/history`` serves."""

    def __init__(self, state: HeadState, every_s: float = SAMPLE_EVERY_S, keep: int = KEEP_SAMPLES) -> None:
        self.state = state
        self.every_s = every_s
        self.samples: deque[MetricsSample] = deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[float, int] | None = None

    def sample(self) -> MetricsSample:
        now = time.time()
        stats = self.state.orchestrator.stats
        done = int(stats["tasks_succeeded"]) + int(stats["tasks_failed"])
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = max(0.0, (done - self._last[1]) / (now - self._last[0]))
        self._last = (now, done)
        totals = self.state.resources.totals()
        sample = MetricsSample(ts=round(now, 3), tasks_per_s=round(rate, 3), running_tasks=int(totals["running_tasks"]),
                               queued=dict(self.state.orchestrator.scheduler.queued()),
                               used_cpu=totals["used_cpu"], active_runs=len(self.state.orchestrator.runs))
        self.samples.append(sample)
        return sample

    def history(self) -> MetricsHistory:
        return MetricsHistory(every_s=self.every_s, samples=list(self.samples))

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lattice-metrics-ring")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.sample()
