"""Node utilization: a real psutil sample of this machine, the strict parsing of what a worker sends, and the
monitor's rules (one sample per node per round, a node that does not answer keeps its last sample)."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from lattice.executor import node_usage
from lattice.executor.node_usage import NodeUsageMonitor, parse_usage, sample_usage


def test_a_sample_of_this_machine() -> None:
    sample_usage()  # primes cpu_percent's interval
    usage = parse_usage(sample_usage())
    assert usage is not None
    assert 0.0 <= usage.cpu_percent <= 100.0
    assert usage.memory_total_mb == psutil.virtual_memory().total // (1024 * 1024)
    assert 0 < usage.memory_used_mb <= usage.memory_total_mb


@pytest.mark.parametrize("raw", [None, {}, {"ts": 1, "cpu_percent": "busy", "memory_used_mb": 1,
                                           "memory_total_mb": 2, "gpus": []},
                                 {"ts": 1, "cpu_percent": 1, "memory_used_mb": 1, "memory_total_mb": 2,
                                  "gpus": [{"index": "x"}]}])
def test_a_malformed_sample_is_dropped(raw: Any) -> None:
    assert parse_usage(raw) is None


class FakeRay:
    """``ray.get`` over plain values: the monitor's only Ray call (the sampler returns the value itself)."""

    @staticmethod
    def get(ref: Any, timeout: float) -> Any:
        if isinstance(ref, Exception):
            raise ref
        return ref


def test_the_monitor_keeps_the_last_sample_of_a_node_that_did_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", FakeRay)
    answers: dict[str, Any] = {"a": {"ts": 1.0, "cpu_percent": 10.0, "memory_used_mb": 5, "memory_total_mb": 10,
                                     "gpus": [{"index": 0, "utilization_percent": 50.0, "memory_used_mb": 1,
                                               "memory_total_mb": 80}]},
                               "b": {"ts": 1.0, "cpu_percent": 20.0, "memory_used_mb": 6, "memory_total_mb": 10,
                                     "gpus": []}}
    alive = {"a", "b"}
    calls: list[str] = []

    def sampler(node_id: str) -> Any:
        calls.append(node_id)
        return answers[node_id]

    monitor = NodeUsageMonitor(lambda: alive, sampler)
    monitor.sample_once()
    assert sorted(calls) == ["a", "b"]
    assert monitor.latest()["a"].gpus[0].utilization_percent == 50.0
    answers["b"] = TimeoutError("busy")
    monitor.sample_once()
    assert monitor.latest()["b"].cpu_percent == 20.0  # kept
    alive.discard("b")
    monitor.sample_once()
    assert set(monitor.latest()) == {"a"}  # a node that left is forgotten


def test_gpu_usage_is_empty_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_usage, "_nvml", {"module": None})
    assert node_usage._gpu_usage() == []
