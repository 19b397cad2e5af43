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
    # ten requests in about a second see at most two samples: a request reads the latest, never takes one
    node = next(iter(first))
    stamps = set()
    for _ in range(10):
        stamps.add(next(n["usage"]["ts"] for n in _nodes(head) if n["node_id"] == node))
        time.sleep(0.1)
    assert len(stamps) <= 2, stamps
    time.sleep(4.5)
    later = {n["node_id"]: n["usage"] for n in _nodes(head) if n["alive"]}
    for node, usage in first.items():
        assert later[node]["ts"] > usage["ts"]
        assert later[node]["ts"] - usage["ts"] < 10
