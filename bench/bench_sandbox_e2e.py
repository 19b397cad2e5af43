"""Sandbox levels end to end: a no-op task through a head started at each level, against level none.

For each level (none, subprocess, seccomp) a head is started with ``--sandbox LEVEL``; then 200 no-op
runs are timed from submit to result (median, p99) and a 500-task fan-out of no-ops is timed (tasks/s).
``bench/bench_sandbox.py`` measures the sandbox alone (``execute`` called directly); this one shows what a
user sees. Writes docs/benchmarks/sandbox_e2e.md and .json. Usage: python bench/bench_sandbox_e2e.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient, task  # noqa: E402

LEVELS = ("none", "subprocess", "seccomp")
RUNS, FANOUT = 200, 500


@task(outputs=["result"])
def noop(params):
    return {"result": None}


def measure(level: str, tmp: Path) -> dict[str, float]:
    head = HeadProcess(tmp / level, extra_args=["--sandbox", level]).start()
    try:
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            single = client.create_workflow("noop")
            single.add_task(noop)
            for _ in range(20):
                single.get_results(single.run())
            latencies = []
            for _ in range(RUNS):
                start = time.perf_counter()
                single.get_results(single.run())
                latencies.append(time.perf_counter() - start)
            fan = client.create_workflow("fanout")
            for i in range(FANOUT):
                fan.add_task(noop, name=f"n{i}")
            fan.register()
            start = time.perf_counter()
            fan.get_results(fan.run(), timeout=600)
            fan_s = time.perf_counter() - start
    finally:
        head.stop()
    ordered = sorted(latencies)
    return {"median_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
            "fanout_tasks_per_s": round(FANOUT / fan_s, 1)}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lattice-sbx-bench-") as tmp:
        results = {level: measure(level, Path(tmp)) for level in LEVELS}
        print(json.dumps(results, indent=1), flush=True)
    base = results["none"]["median_ms"]
    out = ROOT / "docs" / "benchmarks"
    report = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "python": platform.python_version(),
              "runs": RUNS, "fanout": FANOUT, "levels": results}
    (out / "sandbox_e2e.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Sandbox levels end to end (through a head)", "",
             f"Measured {report['date']} on {report['cpus']} CPUs, Python {report['python']}, by "
             "`python bench/bench_sandbox_e2e.py`: a head per level (`--sandbox LEVEL`), a no-op task submitted "
             f"and waited for {RUNS} times, then a {FANOUT}-task fan-out. `bench/bench_sandbox.py` "
             "([sandbox.md](sandbox.md)) measures the sandbox alone.", "",
             "| level | no-op median (ms) | p99 (ms) | added to `none`, median (ms) | fan-out (tasks/s) | target |",
             "|---|---:|---:|---:|---:|---|"]
    for level, row in results.items():
        added = round(row["median_ms"] - base, 2)
        target = "" if level == "none" else ("< 30 ms added: " + ("met" if added < 30 else "**not met**"))
        lines.append(f"| {level} | {row['median_ms']} | {row['p99_ms']} | {added} | {row['fanout_tasks_per_s']} "
                     f"| {target} |")
    (out / "sandbox_e2e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
