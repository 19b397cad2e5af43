"""The head's Prometheus collector: metric families built on each scrape from numbers kept in memory.

One :class:`HeadCollector` is registered, with the standard process, platform and GC collectors, in a
registry made once when the head starts (:func:`build_registry`); ``/metrics`` renders that registry. A
scrape reads the orchestrator's :class:`~lattice.core.metrics.HeadMetrics`, the scheduler's queue counts
and the resource manager's totals: all in memory, so it neither touches the store nor blocks the loop.

Names follow Prometheus' conventions: counters end in ``_total``, values are in base units (seconds,
bytes), one metric per unit (``lattice_cluster_cpus`` and ``lattice_cluster_memory_bytes``, not one
metric with a ``resource`` label mixing cores and megabytes). docs/observability.md lists them all.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lattice import __version__
from lattice.core.cluster import ResourceManager
from lattice.core.metrics import Histogram
from lattice.core.orchestrator import Orchestrator

MB = 1024 * 1024


@dataclass(eq=False)  # registries key collectors by identity
class HeadCollector(Collector):
    """Reads the head's live parts; holds no numbers of its own."""

    orchestrator: Orchestrator
    resources: ResourceManager
    ray_version: str = ""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected fresh each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        m = self.orchestrator.metrics
        info = GaugeMetricFamily("lattice_build_info", "the head's Lattice, Python and Ray versions (always 1)",
                                 labels=["version", "python_version", "ray_version"])
        info.add_metric([__version__, platform.python_version(), self.ray_version], 1)
        yield info

        runs = GaugeMetricFamily("lattice_runs", "runs in the store by state", labels=["state"])
        for state in ("running", "succeeded", "failed", "cancelled"):
            runs.add_metric([state], m.runs_by_state.get(state, 0))
        for state, count in sorted(m.runs_by_state.items()):
            if state not in ("running", "succeeded", "failed", "cancelled"):
                runs.add_metric([state], count)
        yield runs
        yield GaugeMetricFamily("lattice_active_runs", "runs in progress in this head",
                                value=len(self.orchestrator.runs))

        yield CounterMetricFamily("lattice_task_dispatches", "task attempts handed to the cluster",
                                  value=m.dispatches)
        attempts = CounterMetricFamily("lattice_task_attempts", "ended task attempts by outcome",
                                       labels=["outcome"])
        for outcome in ("succeeded", "failed", "cancelled"):
            attempts.add_metric([outcome], m.attempts.get(outcome, 0))
        yield attempts
        failures = CounterMetricFamily("lattice_task_failures", "failed task attempts by error kind",
                                       labels=["kind"])
        for kind, count in sorted(m.failures.items()):
            failures.add_metric([kind], count)
        yield failures
        finished = CounterMetricFamily("lattice_tasks_finished",
                                       "tasks that ended for good (retried attempts are not counted)",
                                       labels=["state"])
        for state in ("succeeded", "failed"):
            finished.add_metric([state], m.tasks_finished.get(state, 0))
        yield finished

        wait = HistogramMetricFamily("lattice_task_queue_wait_seconds",
                                     "from a task becoming ready to its placement on a node")
        _add_histogram(wait, [], m.queue_wait)
        yield wait
        duration = HistogramMetricFamily("lattice_task_duration_seconds",
                                         "how long task attempts ran, by outcome", labels=["outcome"])
        for outcome, histogram in sorted(m.durations.items()):
            _add_histogram(duration, [outcome], histogram)
        yield duration

        queued = GaugeMetricFamily("lattice_queued_tasks", "ready tasks waiting for capacity",
                                   labels=["resource_class"])
        for cls, count in self.orchestrator.scheduler.queued().items():
            queued.add_metric([cls], count)
        yield queued

        totals = self.resources.totals()
        yield from _gauges([
            ("lattice_cluster_nodes", "alive nodes", totals["nodes"]),
            ("lattice_cluster_cpus", "CPU cores of the alive nodes", totals["cpu"]),
            ("lattice_cluster_cpus_reserved", "CPU cores Lattice has reserved for running tasks", totals["used_cpu"]),
            ("lattice_cluster_gpus", "GPUs of the alive nodes", totals["gpu"]),
            ("lattice_cluster_gpus_reserved", "GPUs Lattice has reserved for running tasks", totals["used_gpu"]),
            ("lattice_cluster_memory_bytes", "memory of the alive nodes", totals["memory_mb"] * MB),
            ("lattice_cluster_memory_reserved_bytes", "memory Lattice has reserved for running tasks",
             totals["used_memory_mb"] * MB),
            ("lattice_cluster_gpu_memory_bytes", "GPU memory of the alive nodes", totals["gpu_memory_mb"] * MB),
            ("lattice_running_tasks", "attempts holding capacity on a node", totals["running_tasks"]),
        ])


def _gauges(specs: list[tuple[str, str, float]]) -> Iterator[Metric]:
    for name, documentation, value in specs:
        yield GaugeMetricFamily(name, documentation, value=value)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    buckets = [(_le(bound), float(count)) for bound, count in histogram.cumulative()]
    family.add_metric(labels, buckets, histogram.sum)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def build_registry(orchestrator: Orchestrator, resources: ResourceManager, ray_version: str = "",
                   *, process: bool = True) -> CollectorRegistry:
    """The head's registry, made once at start-up: Lattice's collector plus the process, platform and GC
    collectors (``process_*`` where ``/proc`` exists, ``python_info``, ``python_gc_*``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HeadCollector(orchestrator, resources, ray_version))
    extras = [PLATFORM_COLLECTOR, GC_COLLECTOR, *([PROCESS_COLLECTOR] if process else [])]
    for extra in extras:
        registry.register(extra)
    return registry


__all__ = ["HeadCollector", "build_registry"]
