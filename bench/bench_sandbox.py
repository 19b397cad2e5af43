"""Sandbox overhead: no-op latency per level (median, p99, ratio against ``none``) and fan-out throughput.

Calls :func:`lattice.executor.sandbox.execute` directly, as the Ray worker does: latency from one
thread, one task after another; throughput from a thread pool, as the worker's I/O executor does.
Writes docs/benchmarks/sandbox.md and sandbox.json. Docker runs fewer tasks (a container start costs
~0.3 s) and needs an engine: ``DOCKER_HOST``, or a private dockerd started here.

    python bench/bench_sandbox.py [--runs 200] [--fanout 500] [--threads 8] [--docker-runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cloudpickle  # noqa: E402

from lattice.executor.sandbox import SandboxConfig, SandboxLevel, capabilities, execute  # noqa: E402
from lattice.executor.sandbox.pool import default_size, shutdown_pool  # noqa: E402


def noop(params: dict) -> dict:
    return {"ok": True}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(config: SandboxConfig, runs: int, blob: bytes) -> dict:
    for _ in range(3):
        execute(blob, {}, ["ok"], config)  # warm the pool / engine
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        outcome = execute(blob, {}, ["ok"], config)
        samples.append((time.perf_counter() - started) * 1000)
        assert outcome.ok, outcome.result.error
    return {
        "runs": runs,
        "median_ms": statistics.median(samples),
        "p99_ms": _percentile(samples, 0.99),
        "mean_ms": statistics.fmean(samples),
    }


def _cpu_s() -> float:
    """CPU of this process and of every reaped descendant (zygote, and through it launchers and tasks)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def throughput(config: SandboxConfig, tasks: int, threads: int, blob: bytes) -> dict:
    """Fan-out rate, and CPU per task: a figure that other load on shared cores moves far less than a rate.

    The pool (and its zygote) is shut down before and after, so every process the fan-out used has been
    reaped and counted; the CPU includes one zygote start and pool warm-up (~0.1-0.2 ms per task over 500),
    not the kernel's deferred network-namespace teardown (kworkers; level seccomp).
    """
    shutdown_pool()
    cpu0 = _cpu_s()
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(lambda _: execute(blob, {}, ["ok"], config), range(tasks)))
    elapsed = time.perf_counter() - started
    shutdown_pool()
    cpu_ms = (_cpu_s() - cpu0) * 1000 / tasks
    failed = sum(not o.ok for o in outcomes)
    return {"tasks": tasks, "threads": threads, "seconds": elapsed, "tasks_per_s": tasks / elapsed, "failed": failed,
            "cpu_ms_per_task": cpu_ms}


@contextlib.contextmanager
def docker_host():
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    from tests.integration.sandbox_fixtures import private_dockerd

    try:
        with private_dockerd() as url:
            yield url
    except RuntimeError as exc:
        print(f"docker skipped: {exc}", file=sys.stderr)
        yield None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--docker-runs", type=int, default=50)
    parser.add_argument("--docker-fanout", type=int, default=100)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "sandbox"))
    args = parser.parse_args()
    blob = cloudpickle.dumps(noop)
    results: dict[str, dict] = {}
    for level in (SandboxLevel.NONE, SandboxLevel.SUBPROCESS, SandboxLevel.SECCOMP):
        config = SandboxConfig(level=level, timeout=60)
        results[str(level)] = {
            "latency": latency(config, args.runs, blob),
            "throughput": throughput(config, args.fanout, args.threads, blob),
        }
        print(level, json.dumps(results[str(level)]), flush=True)
    if not args.no_docker:
        with docker_host() as url:
            if url:
                from lattice.executor.sandbox.docker_image import build_image

                build_image(host=url)
                config = SandboxConfig(level="docker", timeout=60, docker_host=url)
                results["docker"] = {
                    "latency": latency(config, args.docker_runs, blob),
                    "throughput": throughput(config, args.docker_fanout, args.threads, blob),
                }
                print("docker", json.dumps(results["docker"]), flush=True)
    base = results["none"]["latency"]["median_ms"]
    for data in results.values():
        lat = data["latency"]
        lat["added_median_ms"] = lat["median_ms"] - base
        lat["ratio_vs_none"] = lat["median_ms"] / base if base else None
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "python": platform.python_version(),
        "pool_size": default_size(),
        "host": capabilities(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    Path(args.out + ".md").write_text(render(meta, results))
    print(render(meta, results))
    return 0


def render(meta: dict, results: dict) -> str:
    lines = [
        "# Sandbox overhead",
        "",
        f"Measured by `python bench/bench_sandbox.py` on {meta['date']}: {meta['machine']}, Python {meta['python']},",
        f"warm pool of {meta['pool_size']} launchers, host capabilities `{json.dumps(meta['host'])}`.",
        "A no-op task through `lattice.executor.sandbox.execute` directly (no head, no Ray): latency one task",
        "after another; throughput as a fan-out from a thread pool (the worker's I/O executor does the same).",
        "",
        "| level | runs | median ms | p99 ms | added median ms | ratio vs none | fan-out tasks | tasks/s "
        "| CPU ms/task |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level, data in results.items():
        lat, thr = data["latency"], data["throughput"]
        ratio = f"{lat['ratio_vs_none']:.0f}x" if lat["ratio_vs_none"] else "-"
        lines.append(
            f"| {level} | {lat['runs']} | {lat['median_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['added_median_ms']:.2f} "
            f"| {ratio} | {thr['tasks']} ({thr['threads']} threads) | {thr['tasks_per_s']:.0f} "
            f"| {thr.get('cpu_ms_per_task', 0):.1f} |"
        )
    lines += [
        "",
        "The ratio against `none` is large because `none` is a bare function call (microseconds); what matters",
        "is the added median: the target is under 30 ms for `subprocess` and `seccomp` on this 2-core machine.",
        "Each sandboxed task is a fresh process (PID 1 of its own PID namespace) forked by a launcher that a",
        "pre-imported zygote (fork server) forked ahead of time; the pool refills in the background. Moving",
        "a launcher into its cgroups costs ~10 ms (a kernel RCU grace period) and is done at spawn time, off",
        "the task's path; it can still delay a concurrent fork, which shows in p99. An earlier version that",
        "exec'd a new interpreter per launcher measured 32 ms median and 15-21 tasks/s back to back: the",
        "~60 ms of interpreter start-up per task was the bottleneck on 2 cores. Docker starts a container",
        "per task (`runc`), hence its cost; it runs fewer tasks here to keep the benchmark short.",
        "",
        "`CPU ms/task` is user+system time of this process and every process it reaped (zygote, launchers,",
        "tasks) over the fan-out: on shared cores it moves far less than tasks/s. Bisect, profile (where the",
        "time goes), before/after and what 150 tasks/s would need: [sandbox-profile.md](sandbox-profile.md).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
