"""Fair sharing on a real 2-core head with real Ray: a small run is never starved by a flood.

The bounds are behavioural and generous (the machine these run on is shared and loaded): what they tell
apart is "served at once" (about a second) from "served when the flood is over" (ten seconds and more).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from headproc import HeadProcess

from lattice import LatticeClient, task

TASK_S = 0.2


@task(outputs=["t"])
def sleeper(params):
    start = time.time()
    time.sleep(0.2)
    return {"t": (start, time.time())}


def fan_out(client: LatticeClient, name: str, n: int):
    wf = client.create_workflow(name)
    for i in range(n):
        wf.add_task(sleeper, name=f"s{i}")
    wf.register()
    return wf


def finished_at(client: LatticeClient, run_id: str) -> float:
    return max(t["finished_at"] for t in client.get_run(run_id)["tasks"])


def wall(client: LatticeClient, run_id: str) -> float:
    run = client.get_run(run_id)
    return max(t["finished_at"] for t in run["tasks"]) - run["created_at"]


@pytest.fixture(scope="module")
def two_core_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    proc = HeadProcess(tmp_path_factory.mktemp("fair"), extra_args=["--num-cpus", "2"]).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fifo_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    proc = HeadProcess(tmp_path_factory.mktemp("fifo"), extra_args=["--num-cpus", "2", "--scheduling", "fifo"]).start()
    yield proc
    proc.stop()


def _flood_then_small(client: LatticeClient) -> tuple[float, float, float, float]:
    """A run of 100 x 0.2 s tasks, then 0.5 s later a run of 2: (small's latency, small's end, big's end,
    big's wall time)."""
    big, small = fan_out(client, "flood", 100), fan_out(client, "small", 2)
    big_id = big.run()
    time.sleep(0.5)
    submitted = time.time()
    small_id = small.run()
    small.get_results(small_id, timeout=120)
    big.get_results(big_id, timeout=300)
    small_end = finished_at(client, small_id)
    return small_end - submitted, small_end, finished_at(client, big_id), wall(client, big_id)


def test_a_small_run_is_served_while_a_flood_runs(two_core_head: HeadProcess, tmp_path: Path):
    with LatticeClient(two_core_head.url, token=two_core_head.token, progress=False) as client:
        alone = fan_out(client, "flood-alone", 100)
        alone_id = alone.run()
        alone.get_results(alone_id, timeout=300)
        big_alone = wall(client, alone_id)

        latency, small_end, big_end, big_wall = _flood_then_small(client)
    # The small run's work is 0.2 s (two tasks on two cores); today it waited for the flood (~10 s).
    assert latency < 3.0, f"the small run took {latency:.2f} s under the flood"
    assert small_end < big_end - 2.0, "the small run should finish while the big one still has seconds to go"
    # The flood pays for the small run's work (0.2 s) and a little overhead, not more.
    assert big_wall <= big_alone + 2 * TASK_S + 2.0, (big_wall, big_alone)


def test_fifo_keeps_the_strict_order(fifo_head: HeadProcess):
    """``--scheduling fifo``: the younger small run of the same priority waits for the flood."""
    with LatticeClient(fifo_head.url, token=fifo_head.token, progress=False) as client:
        latency, small_end, big_end, _ = _flood_then_small(client)
    assert latency > 5.0, f"fifo served the small run after {latency:.2f} s; it should wait for the flood"
    assert client is not None and small_end > big_end - 2.0
