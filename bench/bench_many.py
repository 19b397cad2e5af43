"""Many runs in one request: 1,000 runs of a 3-task workflow started with ``workflow.map`` against the same
runs started by 1,000 separate ``run()`` calls, and against the same work as ONE 3,000-task workflow.

All three are measured on one head in the same run, interleaved (map, separate, one workflow; again), so
the machine's noise falls on each alike; each figure is the median of ``--repeats`` rounds, from the first
request to the last result in the client's hands:

  (a) separate: ``run(inputs=...)`` x N, then ``get_results`` for each id
  (b) map:      ``wf.map([...])`` (one request per 1,000 runs), then ``client.get_results_many(ids)``
  (c) one workflow: N independent 3-task chains in one 3N-task workflow, ``run()`` then ``get_results``

Targets (issue 14): (a) / (b) >= 5x, (b) / (c) <= 1.5x. Writes docs/benchmarks/many.json and many.md.
Usage: python bench/bench_many.py [--runs 1000] [--repeats 3]
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


@task(inputs=["x"], outputs=["y"])
def step(params):
    return {"y": params["x"] + 1}


def three_tasks(client: LatticeClient, name: str = "three") -> Any:
    wf = client.create_workflow(name)
    a = wf.add_task(step, inputs={"x": 0}, name="a")
    b = wf.add_task(step, inputs={"x": a.outputs["y"]}, name="b")
    wf.add_task(step, inputs={"x": b.outputs["y"]}, name="c")
    return wf


def inputs_for(n: int) -> list[dict[str, dict[str, Any]]]:
    return [{"a": {"x": i}} for i in range(n)]


def separate(client: LatticeClient, wf: Any, n: int) -> float:
    start = time.perf_counter()
    ids = [wf.run(inputs=item) for item in inputs_for(n)]
    values = [client.get_results(run_id) for run_id in ids]
    took = time.perf_counter() - start
    assert [v["y"] for v in values] == [i + 3 for i in range(n)]
    return took


def mapped(client: LatticeClient, wf: Any, n: int) -> float:
    start = time.perf_counter()
    ids = wf.map(inputs_for(n))
    values = client.get_results_many(ids)
    took = time.perf_counter() - start
    assert [v["y"] for v in values] == [i + 3 for i in range(n)]
    return took


def one_workflow(client: LatticeClient, n: int) -> tuple[float, Any]:
    wf = client.create_workflow("one-big")
    for i in range(n):
        a = wf.add_task(step, inputs={"x": i}, name=f"a{i}")
        b = wf.add_task(step, inputs={"x": a.outputs["y"]}, name=f"b{i}")
        wf.add_task(step, inputs={"x": b.outputs["y"]}, name=f"c{i}")
    wf.register()  # registered once, outside the clock: (a) and (b) reuse a registered workflow too

    def run() -> float:
        start = time.perf_counter()
        outputs = client.get_results(wf.run())
        took = time.perf_counter() - start
        assert sorted(outputs.values()) == [i + 3 for i in range(n)]
        return took

    return 0.0, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    n = args.runs
    times: dict[str, list[float]] = {"separate": [], "map": [], "one_workflow": []}

    with tempfile.TemporaryDirectory(prefix="lattice-bench-many-") as tmp:
        head = HeadProcess(Path(tmp) / "head").start()
        try:
            with LatticeClient(head.url, token=head.token, progress=False) as client:
                wf = three_tasks(client)
                wf.register()
                client.get_results_many(wf.map(inputs_for(20)))  # warm: workers, code cache, connections
                _, big = one_workflow(client, n)
                for round_ in range(args.repeats):
                    times["map"].append(mapped(client, wf, n))
                    times["separate"].append(separate(client, wf, n))
                    times["one_workflow"].append(big())
                    print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                          flush=True)
        finally:
            head.stop()

    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "runs": n, "tasks_per_run": 3, "repeats": args.repeats,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "median_s": med,
        "separate_over_map": round(med["separate"] / med["map"], 2),
        "map_over_one_workflow": round(med["map"] / med["one_workflow"], 2),
        # the most (a) / (b) can be while (b) does the same tasks as (c): the tasks' own floor
        "separate_over_one_workflow": round(med["separate"] / med["one_workflow"], 2),
        "one_workflow_tasks_per_s": round(3 * n / med["one_workflow"], 1),
        "load_avg_at_end": [round(x, 1) for x in os.getloadavg()],
    }
    write_report(result, args.out)
    print(json.dumps(result, indent=2))


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "many.json").write_text(json.dumps(result, indent=2) + "\n")
    med, n = result["median_s"], result["runs"]
    sep, one = result["separate_over_map"], result["map_over_one_workflow"]
    lines = [
        "# Many runs in one request",
        "",
        f"Measured {result['date']} on {result['machine']} by `python bench/bench_many.py --runs {n} "
        f"--repeats {result['repeats']}`: {n} runs of a 3-task workflow (a chain of `x + 1` tasks at the "
        "default `cpu=1`), from the first request to the last result in the client's hands; median of "
        f"{result['repeats']} interleaved rounds on one head.",
        "",
        "| scenario | median | per run | rounds |",
        "| --- | ---: | ---: | --- |",
    ]
    labels = {"separate": f"(a) {n} separate `run()` + `get_results`",
              "map": f"(b) `wf.map` + `get_results_many` ({n} runs)",
              "one_workflow": f"(c) one {3 * n}-task workflow (`run` + `get_results`)"}
    for key, label in labels.items():
        rounds = ", ".join(f"{x:.2f}" for x in result["seconds"][key])
        lines.append(f"| {label} | {med[key]:.2f} s | {1000 * med[key] / n:.2f} ms | {rounds} |")
    lines += [
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| (a) / (b) >= 5x | {sep:.2f}x | {'yes' if sep >= 5 else '**no**'} |",
        f"| (b) / (c) <= 1.5x | {one:.2f}x | {'yes' if one <= 1.5 else '**no**'} |",
        "",
        "The ratios above are of the medians. Round by round (each round's three measured back to back), "
        "(a) / (b) was " + ", ".join(f"{a / b:.2f}x" for a, b in zip(result["seconds"]["separate"],
                                                                     result["seconds"]["map"], strict=True))
        + " and (b) / (c) " + ", ".join(f"{b / c:.2f}x" for b, c in zip(result["seconds"]["map"],
                                                                        result["seconds"]["one_workflow"],
                                                                        strict=True))
        + f". Load average when the run ended: {result.get('load_avg_at_end', '?')} on {result['machine']}.",
        "",
    ]
    ceiling = result.get("separate_over_one_workflow")
    if ceiling is not None:
        lines += [
            "## What bounds (a) / (b)",
            "",
            f"(c) runs the same {3 * n} tasks as one workflow: one request, one run, no per-run rows, events "
            f"or results; it took {med['one_workflow']:.2f} s ({result['one_workflow_tasks_per_s']} tasks/s, "
            "the tasks' own throughput on this machine's 2 cores). `map` cannot "
            "be faster than doing its tasks, so (a) / (b) is at most (a) / (c) = "
            f"**{ceiling:.2f}x** in this run. (a) is bound by each run's round trip (a submit that waits for "
            "its commit, a long poll), so it grows with the machine's load, while (b) and (c) are bound by "
            "the tasks' throughput: the ratio depends on the load as much as on the head (the run of "
            "2026-12-07 16:02 measured 2.89x with (a) at 30.6 ms a run; this one, at a heavier load, "
            f"{1000 * med['separate'] / n:.1f} ms). Above the tasks' floor, the batch path's own cost "
            f"(one request, one commit, per-run rows and events, one results request per 1,000 runs) is "
            f"(b) / (c) = {one:.2f}x; in-process its creation costs the loop about 0.2 ms of CPU per run "
            "(thread_time, 1,000 runs of 3 builtin tasks).",
            "",
        ]
    (out_dir / "many.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
