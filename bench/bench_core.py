"""Core benchmark: Lattice against raw Ray on the same machine, in the same run, on the same Ray cluster.

Starts a head (embedded Ray), then measures each scenario first with a raw Ray driver attached to the
head's own Ray cluster, then through the Lattice client:

  (a) one no-op task, submit to result: median and p99 over N runs (``run(wait=True)``: one request), and
      the median as two requests (``run()``, then the ``get_results`` long poll)
  (b) fan-outs of 2,000 and 20,000 ``cpu=0`` no-ops: tasks/s, median of --repeats, against raw Ray's
      ``num_cpus=0`` and its default ``num_cpus=1`` (on a small machine the faster of the two); the sides
      alternate, so a noisy neighbour hits both; while Lattice's fan-out runs, a thread asks the head's
      ``/health`` every 20 ms (its p99 is the head's responsiveness under load; the same probe on the idle
      head is its baseline)
  (c) a 200-task chain, each task consuming the previous one's output: ms per hop
  (d) eight 1-second I/O-bound tasks (Lattice: cpu=0; Ray: num_cpus=0): wall time
  (e) the head's CPU time over 10 s idle (psutil ``cpu_times`` of the head process and its threads)

Writes docs/benchmarks/core.json and core.md and prints the ratios.
Usage: python bench/bench_core.py [--runs 200] [--fanout 2000,20000] [--chain 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient, task  # noqa: E402
from lattice.executor.ray_process import apply_ray_env  # noqa: E402


@task(outputs=["result"])
def noop(params):
    return {"result": None}


@task(outputs=["result"], cpu=0)
def noop_io(params):
    return {"result": None}


@task(inputs=["x"], outputs=["y"])
def step(params):
    return {"y": params["x"] + 1}


@task(outputs=["r"], cpu=0)
def io_second(params):
    import time

    time.sleep(1.0)
    return {"r": 1}


IDLE_S = 10.0  # the head's idle CPU is measured over this long
HEALTH_EVERY_S = 0.02  # how often /health is asked while a fan-out runs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class HealthProbe:
    """Asks ``/health`` every :data:`HEALTH_EVERY_S` on its own thread and keeps each answer's latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                http.get(f"{self.url}/health").raise_for_status()
                self.latencies.append(time.perf_counter() - start)
                self._stop.wait(HEALTH_EVERY_S)


class RaySide:
    """Raw Ray as a driver on the head's own cluster: the baseline of every row."""

    def __init__(self, address: str) -> None:
        import ray

        self.ray = ray
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)

        @ray.remote
        def r_noop() -> None:
            return None

        @ray.remote(num_cpus=0)
        def r_noop_io() -> None:
            return None

        @ray.remote
        def r_step(x: int) -> int:
            return x + 1

        @ray.remote(num_cpus=0)
        def r_io() -> int:
            time.sleep(1.0)
            return 1

        self.r_noop, self.r_noop_io, self.r_step, self.r_io = r_noop, r_noop_io, r_step, r_io
        ray.get([r_noop.remote() for _ in range(20)] + [r_noop_io.remote() for _ in range(20)])

    def round_trips(self, runs: int) -> list[float]:
        return [timed(lambda: self.ray.get(self.r_noop.remote())) for _ in range(runs)]

    def fanout(self, n: int) -> float:
        """``num_cpus=0``, as the Lattice side's ``cpu=0``."""
        return timed(lambda: self.ray.get([self.r_noop_io.remote() for _ in range(n)]))

    def fanout_cpu(self, n: int) -> float:
        """Ray's default (one CPU a task): on a small machine it is faster than ``num_cpus=0``, whose
        tasks each lease a worker of their own (Ray starts dozens), so this is the stricter baseline."""
        return timed(lambda: self.ray.get([self.r_noop.remote() for _ in range(n)]))

    def chain(self, n: int) -> float:
        def run() -> None:
            ref = self.r_step.remote(0)
            for _ in range(n - 1):
                ref = self.r_step.remote(ref)
            assert self.ray.get(ref) == n

        return timed(run)

    def io(self) -> float:
        return timed(lambda: self.ray.get([self.r_io.remote() for _ in range(8)]))

    def close(self) -> None:
        self.ray.shutdown()


class LatticeSide:
    def __init__(self, client: LatticeClient, fanouts: list[int], chain: int) -> None:
        self.client = client
        self.single = client.create_workflow("bench-noop")
        self.single.add_task(noop)
        for _ in range(20):
            self.single.get_results(self.single.run())
        self.fan_wfs = {}
        for n in fanouts:
            wf = client.create_workflow(f"bench-fanout-{n}")
            for i in range(n):
                wf.add_task(noop_io, name=f"n{i}")
            wf.register()
            self.fan_wfs[n] = wf
        self.chain_wf = client.create_workflow("bench-chain")
        prev = self.chain_wf.add_task(step, inputs={"x": 0}, name="s0")
        for i in range(1, chain):
            prev = self.chain_wf.add_task(step, inputs={"x": prev.outputs["y"]}, name=f"s{i}")
        self.chain_wf.register()
        self.chain_n = chain
        self.io_wf = client.create_workflow("bench-io")
        for i in range(8):
            self.io_wf.add_task(io_second, name=f"io{i}")
        self.io_wf.register()

    def round_trips(self, runs: int) -> list[float]:
        """Submit and result in one request (``run(wait=True)``)."""
        return [timed(lambda: self.single.get_results(self.single.run(wait=True))) for _ in range(runs)]

    def round_trips_two_requests(self, runs: int) -> list[float]:
        """``run()`` then the ``get_results`` long poll: two requests."""
        return [timed(lambda: self.single.get_results(self.single.run())) for _ in range(runs)]

    def fanout(self, n: int, probe: HealthProbe) -> float:
        wf = self.fan_wfs[n]
        with probe:
            return timed(lambda: wf.get_results(wf.run(), timeout=600))

    def chain(self) -> float:
        return timed(lambda: self.chain_wf.get_results(self.chain_wf.run(wait=True), timeout=600))

    def io(self) -> float:
        return timed(lambda: self.io_wf.get_results(self.io_wf.run(), timeout=60))


def head_process(head: HeadProcess) -> psutil.Process:
    """The process that serves the head's HTTP API (the CLI runs it in-process; Ray's are its children)."""
    assert head.proc is not None
    return psutil.Process(head.proc.pid)


def idle_cpu_s(proc: psutil.Process, seconds: float) -> float:
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def run_all(head: HeadProcess, address: str, runs: int, fanouts: list[int], chain: int,
            repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    ray_side = RaySide(address)
    ray: dict[str, Any] = {}
    lat: dict[str, Any] = {}
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        lattice = LatticeSide(client, fanouts, chain)
        time.sleep(2.0)  # what registering and warming up left behind settles first
        lat["idle_cpu_s_per_10s"] = round(idle_cpu_s(head_process(head), IDLE_S) * 10 / IDLE_S, 3)
        with HealthProbe(head.url) as idle_probe:  # the same probe on the idle head: what the machine allows
            time.sleep(5.0)
        ray["idle_cpu_s_per_10s"] = None
        lat["health_p99_ms_idle"] = round(percentile(idle_probe.latencies, 99) * 1000, 2)
        ray["health_p99_ms_idle"] = None

        r_lat, l_lat, l_two = [], [], []
        for _ in range(repeats):  # alternate, so a neighbour's burst lands on both sides
            r_lat += ray_side.round_trips(runs // repeats)
            l_lat += lattice.round_trips(runs // repeats)
            l_two += lattice.round_trips_two_requests(runs // repeats)
        lat["noop_two_requests_median_ms"] = round(statistics.median(l_two) * 1000, 3)
        ray["noop_median_ms"] = round(statistics.median(r_lat) * 1000, 3)
        ray["noop_two_requests_median_ms"] = ray["noop_median_ms"]
        ray["noop_p99_ms"] = round(percentile(r_lat, 99) * 1000, 3)
        lat["noop_median_ms"] = round(statistics.median(l_lat) * 1000, 3)
        lat["noop_p99_ms"] = round(percentile(l_lat, 99) * 1000, 3)

        for n in fanouts:
            r_t, r_c, l_t, health = [], [], [], []
            for _ in range(repeats):
                r_t.append(ray_side.fanout(n))
                r_c.append(ray_side.fanout_cpu(n))
                probe = HealthProbe(head.url)
                l_t.append(lattice.fanout(n, probe))
                health += probe.latencies
            ray[f"fanout_{n}_tasks_per_s"] = round(n / statistics.median(r_t), 1)
            lat[f"fanout_{n}_tasks_per_s"] = round(n / statistics.median(l_t), 1)
            ray[f"fanout_{n}_all_s"] = [round(t, 3) for t in r_t]
            ray[f"fanout_{n}_cpu1_tasks_per_s"] = round(n / statistics.median(r_c), 1)
            ray[f"fanout_{n}_cpu1_all_s"] = [round(t, 3) for t in r_c]
            lat[f"fanout_{n}_cpu1_tasks_per_s"] = lat[f"fanout_{n}_tasks_per_s"]
            lat[f"fanout_{n}_all_s"] = [round(t, 3) for t in l_t]
            lat[f"health_p99_ms_during_{n}"] = round(percentile(health, 99) * 1000, 2)
            ray[f"health_p99_ms_during_{n}"] = None

        r_c = statistics.median(ray_side.chain(chain) for _ in range(repeats))
        l_c = statistics.median(lattice.chain() for _ in range(repeats))
        ray["chain_ms_per_hop"] = round(r_c / chain * 1000, 3)
        lat["chain_ms_per_hop"] = round(l_c / chain * 1000, 3)
        ray["io_8x1s_s"] = round(ray_side.io(), 3)
        lat["io_8x1s_s"] = round(lattice.io(), 3)
    ray_side.close()
    return ray, lat


TARGETS = {
    "noop_median_ms": ("<= 2.5x raw Ray", lambda v, ray: v <= 2.5 * ray),
    "chain_ms_per_hop": ("<= 2x raw Ray", lambda v, ray: v <= 2 * ray),
    "io_8x1s_s": ("< 1.3 s", lambda v, _: v < 1.3),
    "idle_cpu_s_per_10s": ("< 0.5 s", lambda v, _: v < 0.5),
}


def rows(fanouts: list[int], repeats: int) -> list[tuple[str, str, str]]:
    out = [
        ("(a) no-op round trip, median", "noop_median_ms", "ms"),
        ("(a) no-op round trip, p99", "noop_p99_ms", "ms"),
        ("(a) no-op round trip as two requests (`run()`, then `get_results`), median",
         "noop_two_requests_median_ms", "ms"),
    ]
    out.append(("(b) `/health` p99 on the idle head (the same probe; what this machine allows)",
                "health_p99_ms_idle", "ms"))
    for n in fanouts:
        out.append((f"(b) {n:,}-task `cpu=0` fan-out throughput (median of {repeats}); Ray `num_cpus=0`",
                    f"fanout_{n}_tasks_per_s", "tasks/s"))
        out.append(("(b) the same, against Ray's default `num_cpus=1` fan-out (the stricter baseline here)",
                    f"fanout_{n}_cpu1_tasks_per_s", "tasks/s"))
        TARGETS[f"fanout_{n}_cpu1_tasks_per_s"] = (">= 0.8x raw Ray", lambda v, ray: v >= 0.8 * ray)
        out.append((f"(b) `/health` p99 while the {n:,}-task fan-out runs", f"health_p99_ms_during_{n}", "ms"))
        TARGETS[f"fanout_{n}_tasks_per_s"] = (">= 0.8x raw Ray", lambda v, ray: v >= 0.8 * ray)
        TARGETS[f"health_p99_ms_during_{n}"] = ("< 50 ms", lambda v, _: v < 50)
    out += [
        (f"(c) 200-task chain, per hop (median of {repeats})", "chain_ms_per_hop", "ms"),
        ("(d) eight 1 s I/O tasks, wall", "io_8x1s_s", "s"),
        (f"(e) head CPU while idle, per {IDLE_S:g} s", "idle_cpu_s_per_10s", "s"),
    ]
    return out


def write_report(result: dict[str, Any], out_dir: Path, notes: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "core.json").write_text(json.dumps(result, indent=2) + "\n")
    ray, lat = result["ray"], result["lattice"]
    lines = [
        "# Core benchmark: Lattice vs raw Ray",
        "",
        f"Measured {result['date']} on {result['machine']} by `python bench/bench_core.py` "
        f"({result['runs']} round trips, fan-outs and chains {result['repeats']} times each, the two sides "
        "alternating; raw Ray runs as a driver on the head's own Ray cluster, same run).",
        "",
        "| scenario | raw Ray | Lattice | Lattice / Ray | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for label, key, unit in rows(result["fanouts"], result["repeats"]):
        target, check = TARGETS.get(key, ("", None))
        met = "" if check is None else ("yes" if check(lat[key], ray[key]) else "**no**")
        ratio = f"{lat[key] / ray[key]:.2f}x" if ray[key] else ""
        base = f"{ray[key]} {unit}" if ray[key] is not None else "-"
        lines.append(f"| {label} | {base} | {lat[key]} {unit} | {ratio} | {target} | {met} |")
    lines += [
        "",
        "Lattice's numbers include what raw Ray does not do: an HTTP submit and a long-poll for the result, "
        "validation of the DAG, admission against each node's capacity, every state change committed to "
        "SQLite before it is announced, events, and outputs stored as blobs.",
        "",
    ]
    if notes:
        lines += [notes.rstrip(), ""]
    (out_dir / "core.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fanout", default="2000,20000", help="comma-separated fan-out sizes")
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--notes", type=Path, default=ROOT / "bench" / "core_notes.md",
                        help="markdown appended to core.md (the profile: where the time goes)")
    args = parser.parse_args()
    fanouts = [int(n) for n in args.fanout.split(",") if n]

    with tempfile.TemporaryDirectory(prefix="lattice-bench-") as tmp:
        head = HeadProcess(Path(tmp) / "head").start()
        try:
            info = json.loads((head.data_dir / "head.json").read_text())
            apply_ray_env((head.data_dir / "ray_token").read_text().strip())
            print(f"head pid {head.proc.pid if head.proc else '?'}; measuring ...", flush=True)
            ray_result, lattice_result = run_all(head, info["ray_address"], args.runs, fanouts, args.chain,
                                                 args.repeats)
        finally:
            head.stop()

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "repeats": args.repeats,
        "fanouts": fanouts,
        "ray": ray_result,
        "lattice": lattice_result,
        "ratio_lattice_over_ray": {k: round(lattice_result[k] / v, 3) for k, v in ray_result.items()
                                   if isinstance(v, int | float) and v},
    }
    notes = args.notes.read_text() if args.notes.exists() else ""
    write_report(result, args.out, notes)
    print(json.dumps(result, indent=2))
    print((args.out / "core.md").read_text())


if __name__ == "__main__":
    main()
