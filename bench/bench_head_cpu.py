"""The head's own CPU per task, without Ray or HTTP: where a fan-out's head-side time goes.

Drives the real orchestrator (scheduler, resource manager, dispatcher, algorithm, store writer on a temp
SQLite file) with a backend that ends each attempt at once from a thread of its own, as Ray's callback
thread does (after pickling the payload, as ``RayBackend.submit`` does). It reports the CPU time of the
loop's thread and of the store writer's thread per task, and the wall time. What it leaves out is Ray's
submit (about half of the loop's time in a real head, per ``py-spy``) and the executor; see
docs/benchmarks/core.md, "where the time goes".

    python bench/bench_head_cpu.py [--tasks 20000] [--cpu 0] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pickle
import pstats
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "core"))

from fake_backend import FakeBackend  # noqa: E402

from lattice.core.cluster import ResourceManager  # noqa: E402
from lattice.core.events import EventBus  # noqa: E402
from lattice.core.orchestrator import Orchestrator, OrchestratorSettings  # noqa: E402
from lattice.core.store import Store  # noqa: E402
from lattice.wire.attempt import Envelope  # noqa: E402
from lattice.wire.encoding import encode_value  # noqa: E402
from lattice.wire.resources import Resources  # noqa: E402
from lattice.wire.spec import TaskSpec, WorkflowSpec  # noqa: E402


@dataclass
class InstantBackend(FakeBackend):
    """Ends every attempt at once, from its own thread, with a ``None`` output."""

    def __post_init__(self) -> None:
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._finish, daemon=True).start()

    def submit(self, attempt: Any, on_done: Any) -> None:
        pickle.dumps(attempt.payload, protocol=5)
        self._done.put(on_done)

    def _finish(self) -> None:
        encoding, data = encode_value(None)
        while True:
            on_done = self._done.get()
            now = time.time()
            on_done(Envelope(outputs={"result": (str(encoding), data)}, started_at=now, finished_at=now), None)


_commit_cpu = [0.0]
_commit = Store.commit


def _timed_commit(self: Store, batch: Any) -> None:
    started = time.thread_time()
    _commit(self, batch)
    _commit_cpu[0] += time.thread_time() - started


async def measure(tasks: int, cpu: float, profile: cProfile.Profile | None) -> dict[str, float]:
    Store.commit = _timed_commit  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/lattice.db")
        orchestrator = Orchestrator(store, ResourceManager(), InstantBackend(), EventBus(),
                                    OrchestratorSettings(node_refresh_s=3600))
        await orchestrator.start()
        spec = WorkflowSpec(tasks=[TaskSpec(name=f"n{i}", builtin="noop", outputs=["result"],
                                            resources=Resources(cpu=cpu)) for i in range(tasks)])
        workflow_id = orchestrator.register_workflow(spec)
        warm = orchestrator.create_run(workflow_id)
        await orchestrator.wait_run(warm, 600)
        _commit_cpu[0] = 0.0
        loop_cpu, wall = time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        run_id = orchestrator.create_run(workflow_id)
        row = await orchestrator.wait_run(run_id, 600)
        if profile is not None:
            profile.disable()
        loop_cpu, wall = time.thread_time() - loop_cpu, time.perf_counter() - wall
        assert row["state"] == "succeeded", row
        await orchestrator.stop()
        store.close()
    return {"tasks": tasks, "wall_s": round(wall, 3), "tasks_per_s": round(tasks / wall, 1),
            "loop_cpu_us_per_task": round(loop_cpu / tasks * 1e6, 1),
            "writer_cpu_us_per_task": round(_commit_cpu[0] / tasks * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--cpu", type=float, default=0.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the loop's thread (top 30 by own time)")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    print(asyncio.run(measure(args.tasks, args.cpu, profile)))
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
