"""Fairness benchmark: what fair scheduling buys a small run under a flood, and what it costs a fan-out.

Starts two 2-core heads, one ``--scheduling fair`` (the default) and one ``--scheduling fifo``, and on each:

  (a) small-run latency under a flood: a run of FLOOD x 0.2 s tasks, then 0.5 s later a run of 2 x 0.2 s
      tasks of the same priority; the small run's submit-to-last-task time and the flood's wall time
  (b) throughput of a FANOUT-task fan-out of no-ops (one run alone, so fairness has nothing to share):
      tasks/s, median of REPEATS

Writes docs/benchmarks/fairness.json and fairness.md.
Usage: python bench/bench_fairness.py [--flood 100] [--fanout 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient, task  # noqa: E402


@task(outputs=["t"])
def sleeper(params):
    import time

    time.sleep(0.2)
    return {"t": None}


@task(outputs=["result"])
def noop(params):
    return {"result": None}


def fan_out(client: LatticeClient, fn: Any, n: int, name: str) -> Any:
    wf = client.create_workflow(name)
    for i in range(n):
        wf.add_task(fn, name=f"t{i}")
    wf.register()
    return wf


def last_finish(client: LatticeClient, run_id: str) -> float:
    return max(t["finished_at"] for t in client.get_run(run_id)["tasks"])


def flood_latency(client: LatticeClient, flood: int) -> dict[str, float]:
    big, small = fan_out(client, sleeper, flood, "flood"), fan_out(client, sleeper, 2, "small")
    big_id = big.run()
    time.sleep(0.5)
    submitted = time.time()
    small_id = small.run()
    small.get_results(small_id, timeout=600)
    big.get_results(big_id, timeout=600)
    created = client.get_run(big_id)["created_at"]
    return {"small_latency_s": round(last_finish(client, small_id) - submitted, 3),
            "flood_wall_s": round(last_finish(client, big_id) - created, 3)}


def fanout_throughput(client: LatticeClient, n: int, repeats: int) -> float:
    wf = fan_out(client, noop, n, "fanout")
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_id = wf.run()
        wf.get_results(run_id, timeout=600)
        rates.append(n / (time.perf_counter() - start))
    return round(statistics.median(rates), 1)


def bench(policy: str, flood: int, fanout: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lattice-bench-{policy}-") as data_dir:
        head = HeadProcess(Path(data_dir), extra_args=["--num-cpus", "2", "--scheduling", policy]).start()
        try:
            with LatticeClient(head.url, token=head.token, progress=False, timeout=120) as client:
                fan_out(client, noop, 20, "warm").run()  # warm the workers
                time.sleep(2)
                return {**flood_latency(client, flood), "fanout_tasks_per_s": fanout_throughput(client, fanout,
                                                                                                repeats)}
        finally:
            head.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {policy: bench(policy, args.flood, args.fanout, args.repeats) for policy in ("fair", "fifo")}
    cost = 1 - results["fair"]["fanout_tasks_per_s"] / results["fifo"]["fanout_tasks_per_s"]
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "params": vars(args), "results": results, "fair_throughput_cost": round(cost, 4)}
    docs = ROOT / "docs" / "benchmarks"
    (docs / "fairness.json").write_text(json.dumps(out, indent=2) + "\n")
    fair, fifo = results["fair"], results["fifo"]
    lines = [
        "# Fairness benchmark", "",
        f"`python bench/bench_fairness.py --flood {args.flood} --fanout {args.fanout} --repeats {args.repeats}` "
        f"on {os.cpu_count()} CPUs (heads with `--num-cpus 2`); raw numbers in `fairness.json`.", "",
        "| | fair | fifo |", "|---|---|---|",
        f"| small run (2 x 0.2 s) submitted 0.5 s into a flood of {args.flood} x 0.2 s: submit to done | "
        f"{fair['small_latency_s']:.2f} s | {fifo['small_latency_s']:.2f} s |",
        f"| the flood's wall time | {fair['flood_wall_s']:.2f} s | {fifo['flood_wall_s']:.2f} s |",
        f"| {args.fanout}-task fan-out of no-ops, one run alone | {fair['fanout_tasks_per_s']:.0f} tasks/s | "
        f"{fifo['fanout_tasks_per_s']:.0f} tasks/s |", "",
        f"Throughput cost of fair scheduling on the fan-out: {cost:+.1%} (target: under 5 %; a negative number "
        "is noise in fair's favour).", "",
    ]
    (docs / "fairness.md").write_text("\n".join(lines))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
