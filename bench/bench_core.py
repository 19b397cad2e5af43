"""Core benchmark: Lattice against raw Ray on the same machine, in the same run, on the same Ray cluster.

Starts a head (embedded Ray), then measures each scenario first with a raw Ray driver attached to the
head's own Ray cluster, then through the Lattice client:

  (a) one no-op task, submit to result: median and p99 over N runs
  (b) a 2,000-task fan-out of no-ops: tasks/s (median of 3)
  (c) a 200-task chain, each task consuming the previous one's output: ms per hop
  (d) eight 1-second I/O-bound tasks (Lattice: cpu=0; Ray: num_cpus=0): wall time

Writes docs/benchmarks/core.json and core.md and prints the ratios.
Usage: python bench/bench_core.py [--runs 200] [--fanout 2000] [--chain 200]
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
from lattice.executor.ray_process import apply_ray_env  # noqa: E402


@task(outputs=["result"])
def noop(params):
    return {"result": None}


@task(inputs=["x"], outputs=["y"])
def step(params):
    return {"y": params["x"] + 1}


@task(outputs=["r"], cpu=0)
def io_second(params):
    import time

    time.sleep(1.0)
    return {"r": 1}


REPEATS = 3  # the fan-out is measured this many times on each side; the median is reported


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_ray(address: str, runs: int, fanout: int, chain: int) -> dict[str, Any]:
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)

    @ray.remote
    def r_noop() -> None:
        return None

    @ray.remote
    def r_step(x: int) -> int:
        return x + 1

    @ray.remote(num_cpus=0)
    def r_io() -> int:
        time.sleep(1.0)
        return 1

    ray.get([r_noop.remote() for _ in range(20)])
    latencies = [timed(lambda: ray.get(r_noop.remote())) for _ in range(runs)]
    fan = statistics.median(timed(lambda: ray.get([r_noop.remote() for _ in range(fanout)]))
                            for _ in range(REPEATS))

    def run_chain() -> None:
        ref = r_step.remote(0)
        for _ in range(chain - 1):
            ref = r_step.remote(ref)
        assert ray.get(ref) == chain

    chained = timed(run_chain)
    io = timed(lambda: ray.get([r_io.remote() for _ in range(8)]))
    ray.shutdown()
    return summarize(latencies, fan, fanout, chained, chain, io)


def bench_lattice(client: LatticeClient, runs: int, fanout: int, chain: int) -> dict[str, Any]:
    single = client.create_workflow("bench-noop")
    single.add_task(noop)
    for _ in range(20):
        single.get_results(single.run())
    latencies = [timed(lambda: single.get_results(single.run())) for _ in range(runs)]

    fan_wf = client.create_workflow("bench-fanout")
    for i in range(fanout):
        fan_wf.add_task(noop, name=f"n{i}")
    fan_wf.register()
    fan = statistics.median(timed(lambda: fan_wf.get_results(fan_wf.run(), timeout=600)) for _ in range(REPEATS))

    chain_wf = client.create_workflow("bench-chain")
    prev = chain_wf.add_task(step, inputs={"x": 0}, name="s0")
    for i in range(1, chain):
        prev = chain_wf.add_task(step, inputs={"x": prev.outputs["y"]}, name=f"s{i}")
    chain_wf.register()

    def run_chain() -> None:
        assert chain_wf.get_results(chain_wf.run(), timeout=600) == {"y": chain}

    chained = timed(run_chain)

    io_wf = client.create_workflow("bench-io")
    for i in range(8):
        io_wf.add_task(io_second, name=f"io{i}")
    io_wf.register()
    io = timed(lambda: io_wf.get_results(io_wf.run(), timeout=60))
    return summarize(latencies, fan, fanout, chained, chain, io)


def summarize(latencies: list[float], fan: float, fanout: int, chained: float, chain: int, io: float) -> dict:
    return {
        "noop_median_ms": round(statistics.median(latencies) * 1000, 3),
        "noop_p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "fanout_tasks_per_s": round(fanout / fan, 1),
        "fanout_s": round(fan, 3),
        "chain_ms_per_hop": round(chained / chain * 1000, 3),
        "io_8x1s_s": round(io, 3),
    }


TARGETS = {
    "noop_median_ms": ("< 10 ms", lambda v, _: v < 10),
    "fanout_tasks_per_s": (">= 0.5x raw Ray", lambda v, ray: v >= 0.5 * ray),
    "chain_ms_per_hop": ("< 5 ms", lambda v, _: v < 5),
    "io_8x1s_s": ("< 1.3 s", lambda v, _: v < 1.3),
}


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "core.json").write_text(json.dumps(result, indent=2) + "\n")
    ray, lat = result["ray"], result["lattice"]
    rows = [
        ("(a) no-op round trip, median", "noop_median_ms", "ms"),
        ("(a) no-op round trip, p99", "noop_p99_ms", "ms"),
        ("(b) 2,000-task fan-out throughput (median of 3)", "fanout_tasks_per_s", "tasks/s"),
        ("(c) 200-task chain, per hop", "chain_ms_per_hop", "ms"),
        ("(d) eight 1 s I/O tasks, wall", "io_8x1s_s", "s"),
    ]
    lines = [
        "# Core benchmark: Lattice vs raw Ray",
        "",
        f"Measured {result['date']} on {result['machine']} by `python bench/bench_core.py` "
        f"({result['runs']} round trips; raw Ray runs as a driver on the head's own Ray cluster, same run).",
        "",
        "| scenario | raw Ray | Lattice | Lattice / Ray | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for label, key, unit in rows:
        target, check = TARGETS.get(key, ("", None))
        met = "" if check is None else ("yes" if check(lat[key], ray[key]) else "**no**")
        ratio = lat[key] / ray[key] if ray[key] else float("nan")
        lines.append(f"| {label} | {ray[key]} {unit} | {lat[key]} {unit} | {ratio:.2f}x | {target} | {met} |")
    lines += [
        "",
        "Lattice's numbers include what raw Ray does not do: an HTTP submit and a long-poll for the result, "
        "validation of the DAG, admission against each node's capacity, every state change committed to "
        "SQLite before it is announced, events, and outputs stored as blobs.",
        "",
    ]
    (out_dir / "core.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=2000)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lattice-bench-") as tmp:
        head = HeadProcess(Path(tmp) / "head").start()
        try:
            info = json.loads((head.data_dir / "head.json").read_text())
            apply_ray_env((head.data_dir / "ray_token").read_text().strip())
            print("raw Ray ...", flush=True)
            ray_result = bench_ray(info["ray_address"], args.runs, args.fanout, args.chain)
            print("Lattice ...", flush=True)
            with LatticeClient(head.url, token=head.token, progress=False) as client:
                lattice_result = bench_lattice(client, args.runs, args.fanout, args.chain)
        finally:
            head.stop()

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "runs": args.runs,
        "ray": ray_result,
        "lattice": lattice_result,
        "ratio_lattice_over_ray": {k: round(lattice_result[k] / ray_result[k], 3) for k in ray_result if ray_result[k]},
    }
    write_report(result, args.out)
    print(json.dumps(result, indent=2))
    print((args.out / "core.md").read_text())


if __name__ == "__main__":
    main()
