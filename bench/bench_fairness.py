"""Fairness benchmark: what fair scheduling buys a small run under a flood, and what it costs a fan-out.

Starts two 2-core heads side by side, one ``--scheduling fair`` (the default) and one ``--scheduling fifo``,
and on each:

  (a) small-run latency under a flood: a run of FLOOD x 0.2 s tasks, then 0.5 s later a run of 2 x 0.2 s
      tasks of the same priority; the small run's submit-to-last-task time and the flood's wall time
  (b) throughput of a FANOUT-task fan-out of no-ops (one run alone, so fairness has nothing to share):
      tasks/s, median of REPEATS, alternating between the two heads

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


def fanout_once(client: LatticeClient, wf: Any, n: int) -> float:
    start = time.perf_counter()
    run_id = wf.run()
    wf.get_results(run_id, timeout=600)
    return n / (time.perf_counter() - start)


def bench(flood: int, fanout: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Both heads run side by side; the fan-outs alternate between them, so the machine's load (it is
    shared) falls on both alike."""
    with tempfile.TemporaryDirectory(prefix="lattice-bench-fair-") as data_dir:
        heads = {policy: HeadProcess(Path(data_dir) / policy, extra_args=["--num-cpus", "2", "--scheduling", policy])
                 for policy in ("fair", "fifo")}
        try:
            clients = {}
            for policy, head in heads.items():
                head.start()
                clients[policy] = LatticeClient(head.url, token=head.token, progress=False, timeout=120)
            results: dict[str, dict[str, Any]] = {}
            flows = {}
            for policy, client in clients.items():
                warm = fan_out(client, noop, 20, "warm")
                warm.get_results(warm.run(), timeout=120)  # the workers are up
                results[policy] = flood_latency(client, flood)
                flows[policy] = fan_out(client, noop, fanout, "fanout")
            rates: dict[str, list[float]] = {policy: [] for policy in clients}
            for _ in range(repeats):
                for policy, client in clients.items():
                    rates[policy].append(fanout_once(client, flows[policy], fanout))
            for policy, values in rates.items():
                results[policy]["fanout_tasks_per_s"] = round(statistics.median(values), 1)
                results[policy]["fanout_runs_tasks_per_s"] = [round(v, 1) for v in values]
            for client in clients.values():
                client.close()
            return results
        finally:
            for head in heads.values():
                head.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = bench(args.flood, args.fanout, args.repeats)
    cost = 1 - results["fair"]["fanout_tasks_per_s"] / results["fifo"]["fanout_tasks_per_s"]
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "params": vars(args), "results": results, "fair_throughput_cost": round(cost, 4)}
    docs = ROOT / "docs" / "benchmarks"
    (docs / "fairness.json").write_text(json.dumps(out, indent=2) + "\n")
    fair, fifo = results["fair"], results["fifo"]
    lines = [
        "# Fairness benchmark", "",
        f"`python bench/bench_fairness.py --flood {args.flood} --fanout {args.fanout} --repeats {args.repeats}` "
        f"on {os.cpu_count()} CPUs (two heads side by side, each `--num-cpus 2`, the fan-outs alternating "
        "between them; the machine is shared with other work, so only the ratios mean much); raw numbers in "
        "`fairness.json`.", "",
        "| | fair | fifo |", "|---|---|---|",
        f"| small run (2 x 0.2 s, same priority) submitted 0.5 s into a flood of {args.flood} x 0.2 s: "
        "submit to done | "
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
