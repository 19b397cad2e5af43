"""Live utilization of every node: CPU and memory (psutil), GPU utilization and memory (NVML where present).

Gathered **on the node itself**: the head could only see its own machine. Each node already runs one
long-lived Lattice process, its I/O executor actor (``runner.IOExecutor``), so the sample is a method of that
actor (:func:`sample_usage`), not a process of its own. :class:`NodeUsageMonitor` is a thread of the head that
asks every alive node for one sample every :data:`SAMPLE_EVERY_S` (all nodes in parallel, one actor call
each) and keeps the latest; ``GET /api/v1/cluster/nodes`` reads that, so a request costs nothing and a
thousand Board tabs cost the cluster no more than one.

``psutil.cpu_percent(None)`` measures since its previous call in the same process, so with one call every
2 s each sample is the CPU use over the last 2 s. On a machine that runs several Ray nodes (tests), they
all report the same machine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from lattice.wire.http import GPUUsage, NodeUsage

log = logging.getLogger("lattice.usage")

SAMPLE_EVERY_S = 2.0
SAMPLE_TIMEOUT_S = 5.0
_MB = 1024 * 1024
_nvml: dict[str, Any] = {}
_nvml_lock = threading.Lock()


def _gpu_usage() -> list[dict[str, Any]]:
    """Each GPU's utilization and memory; [] where NVML is absent. NVML is initialised once per process."""
    with _nvml_lock:
        if "module" not in _nvml:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml["module"] = pynvml
            except Exception:  # noqa: BLE001 - no package, no driver: a node without GPUs
                _nvml["module"] = None
        pynvml = _nvml["module"]
    if pynvml is None:
        return []
    gpus = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            gpus.append({"index": index, "utilization_percent": float(rates.gpu),
                         "memory_used_mb": int(memory.used // _MB), "memory_total_mb": int(memory.total // _MB)})
    except Exception as exc:  # noqa: BLE001 - a GPU fell off the bus: report the rest of the node
        log.warning("NVML sampling failed: %s", exc)
    return gpus


def sample_usage() -> dict[str, Any]:
    """This machine's CPU % (since the previous call), memory and GPUs, as plain data."""
    import psutil

    memory = psutil.virtual_memory()
    return {"ts": time.time(), "cpu_percent": float(psutil.cpu_percent(interval=None)),
            "memory_used_mb": int((memory.total - memory.available) // _MB),
            "memory_total_mb": int(memory.total // _MB), "gpus": _gpu_usage()}


def parse_usage(raw: Any) -> NodeUsage | None:
    """A sample as the API's model; None for anything malformed (it came from a worker process)."""
    try:
        return NodeUsage(ts=raw["ts"], cpu_percent=raw["cpu_percent"], memory_used_mb=raw["memory_used_mb"],
                         memory_total_mb=raw["memory_total_mb"], gpus=[GPUUsage(**g) for g in raw["gpus"]])
    except (KeyError, TypeError, ValueError):
        return None


class NodeUsageMonitor:
    """Samples every alive node every ``every_s`` seconds on a thread; :meth:`latest` is what the API shows.

    ``alive_nodes`` lists the node ids to sample; ``sampler(node_id)`` returns an object ref of one sample
    taken on that node (the node's I/O executor's ``usage`` call)."""

    def __init__(self, alive_nodes: Callable[[], Iterable[str]], sampler: Callable[[str], Any],
                 every_s: float = SAMPLE_EVERY_S) -> None:
        self._alive_nodes = alive_nodes
        self._sampler = sampler
        self.every_s = every_s
        self._latest: dict[str, NodeUsage] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> dict[str, NodeUsage]:
        return self._latest

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lattice-node-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SAMPLE_TIMEOUT_S + 1)

    def sample_once(self) -> None:
        import ray

        try:
            nodes = list(self._alive_nodes())
        except RuntimeError:  # the loop changed the node table while it was read: next time
            return
        refs = {}
        for node_id in nodes:
            try:
                refs[node_id] = self._sampler(node_id)
            except Exception as exc:  # noqa: BLE001 - a node going away
                log.debug("cannot sample node %s: %s", node_id, exc)
        fresh: dict[str, NodeUsage] = {}
        for node_id, ref in refs.items():
            try:
                usage = parse_usage(ray.get(ref, timeout=SAMPLE_TIMEOUT_S))
            except Exception as exc:  # noqa: BLE001 - a busy or dying node: keep its last sample a while
                log.debug("node %s did not answer its usage sample: %s", node_id, exc)
                usage = self._latest.get(node_id)
            if usage is not None:
                fresh[node_id] = usage
        self._latest = fresh  # one assignment: readers on the loop see the old dict or the new one

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample_once()
            except Exception:
                log.exception("sampling node usage failed")
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))


__all__ = ["NodeUsageMonitor", "parse_usage", "sample_usage"]
