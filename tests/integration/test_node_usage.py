"""Live per-node utilization on a real head: ``GET /api/v1/cluster/nodes`` carries each node's CPU and memory,
sampled on the node by its I/O executor every 2 s, and the samples move on by themselves."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psutil
from headproc import HeadProcess


def _nodes(head: HeadProcess) -> list[dict[str, Any]]:
    answer = httpx.get(f"{head.url}/api/v1/cluster/nodes", headers={"Authorization": f"Bearer {head.token}"})
    answer.raise_for_status()
    return answer.json()["nodes"]


def test_nodes_report_live_utilization_that_updates_by_itself(head: HeadProcess) -> None:
    deadline = time.monotonic() + 30
    while not all(n.get("usage") for n in _nodes(head) if n["alive"]):
        assert time.monotonic() < deadline, "no utilization sample within 30 s"
        time.sleep(0.5)
    first = {n["node_id"]: n["usage"] for n in _nodes(head) if n["alive"]}
    for usage in first.values():
        assert 0.0 <= usage["cpu_percent"] <= 100.0
        assert usage["memory_total_mb"] == psutil.virtual_memory().total // (1024 * 1024)  # this machine
        assert 0 < usage["memory_used_mb"] <= usage["memory_total_mb"]
        assert isinstance(usage["gpus"], list)
    # a request reads the latest sample, never takes one: ten requests see no more samples than the 2 s
    # sampling made in the time they took (however slow a loaded machine makes them)
    node = next(iter(first))
    stamps = set()
    started = time.monotonic()
    for _ in range(10):
        stamps.add(next(n["usage"]["ts"] for n in _nodes(head) if n["node_id"] == node))
        time.sleep(0.1)
    assert len(stamps) <= int((time.monotonic() - started) / 2.0) + 2, stamps
    # and the samples move on by themselves (the node samples every 2 s; requests only read): twice per node
    for node, usage in first.items():
        seen = [usage["ts"]]
        deadline = time.monotonic() + 60
        while len(seen) < 3:
            assert time.monotonic() < deadline, f"node {node}'s sample did not move on: {seen}"
            time.sleep(1.0)
            ts = next(n["usage"]["ts"] for n in _nodes(head) if n["node_id"] == node)
            if ts != seen[-1]:
                assert ts > seen[-1]
                seen.append(ts)
