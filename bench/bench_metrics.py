"""What a ``/metrics`` scrape costs the head's loop, against the store scan it replaced.

Builds the real orchestrator (on the in-memory backend of the unit tests, no Ray) over a SQLite store
holding ``--runs`` finished runs, then times the old per-scrape work (``count_runs_by_state``, a GROUP BY
over every run, on the event loop) and the new one (rendering the registry built once at start, from
in-memory counters). Prints milliseconds per scrape; nothing is written.

    python bench/bench_metrics.py [--runs 100000] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "core"))

from fake_backend import FakeBackend  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from lattice.api.metrics import build_registry  # noqa: E402
from lattice.core import store as store_module  # noqa: E402
from lattice.core.cluster import ResourceManager  # noqa: E402
from lattice.core.events import EventBus  # noqa: E402
from lattice.core.orchestrator import Orchestrator, OrchestratorSettings  # noqa: E402


def _per_call_ms(fn: Callable[[], object], n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


async def main(runs: int, scrapes: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="lattice-bench-metrics-"))
    store = store_module.Store(f"sqlite:///{data / 'lattice.db'}")
    with store.engine.begin() as conn:
        conn.execute(insert(store_module.runs), [
            {"id": f"run-{i}", "workflow_id": "w", "workflow_name": "bench", "state": "succeeded", "priority": 0,
             "created_at": 0.0} for i in range(runs)])
    orchestrator = Orchestrator(store, ResourceManager(), FakeBackend(), EventBus(),
                                OrchestratorSettings(node_refresh_s=3600))
    await orchestrator.start()
    try:
        registry = build_registry(orchestrator, orchestrator.resources, "bench")
        old = _per_call_ms(store.count_runs_by_state, scrapes)
        new = _per_call_ms(lambda: generate_latest(registry), scrapes)
        print(f"{runs} runs in the store, {scrapes} scrapes each:")
        print(f"  before: store scan per scrape   {old:8.2f} ms (on the event loop)")
        print(f"  now:    render the registry      {new:8.2f} ms (in-memory counters, process metrics included)")
    finally:
        await orchestrator.stop()
        store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.scrapes))
