"""Profile the per-task latency path: no-op round trips and a chain, with py-spy on the head (and the client).

Starts a head, measures raw Ray's round trip and Lattice's (``run(wait=True)``) alternating, then, with
``--pyspy DIR``, records ``py-spy record --gil --format raw`` of the head process during a loop of round
trips and during a chain, and summarizes the head's GIL samples by where they fall (the rows of
docs/benchmarks/core.md's "where the time goes"). Timing only: no pass/fail.
With ``--against TREE`` (another checkout, e.g. main's) it also starts a head from that tree and
alternates the two heads' round trips and chains in the same run: a before/after under the same load,
with the CPU each head process (all its threads, Ray's included) and this client's thread spend per
round trip, the figures the machine's load moves least.
Usage: python bench/profile_roundtrip.py [--runs 300] [--chain 200] [--pyspy /tmp/prof] [--against /work/main]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_core import LatticeSide, RaySide  # noqa: E402
from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient  # noqa: E402
from lattice.executor.ray_process import apply_ray_env  # noqa: E402

#: (label, a substring of a frame) in the order they are tested: a sample counts for the first that matches
BUCKETS = [
    ("Ray submit (RayBackend.submit)", "submit (lattice/executor/dispatch.py"),
    ("dispatch, the rest (payload, algorithm)", "dispatch (lattice/core/dispatcher.py"),
    ("completion (Dispatcher.complete, algorithm)", "complete (lattice/core/dispatcher.py"),
    ("create_run (orchestrator)", "create_run (lattice/core/orchestrator.py"),
    ("the results answer (store reads, blobs)", "wait_for_results (lattice/api/routes/runs.py"),
    ("store commit (writer thread)", "_commit (lattice/core/writer.py"),
    ("route: create_run, the rest (workflow row, deps)", "create_run (lattice/api/routes/workflows.py"),
    ("auth / dependencies", "lattice/api/deps.py"),
    ("pydantic validation / serialization", "pydantic"),
    ("FastAPI / Starlette routing", "fastapi/"),
    ("uvicorn HTTP", "uvicorn/"),
    ("the orchestrator's step, the rest", "_step (lattice/core/orchestrator.py"),
    ("flush / announce", "committed (lattice/core/orchestrator.py"),
    ("asyncio loop itself (select, callbacks)", "asyncio/"),
    ("Ray's own threads (core worker callbacks)", "ray/"),
]


def summarize(raw: Path) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        for label, needle in BUCKETS:
            if needle in stack:
                counts[label] += int(n)
                break
        else:
            counts["other"] += int(n)
    return {"samples": total, **{k: round(100 * v / total, 1) for k, v in counts.most_common()}} if total else {}


def record(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "--gil", "-r", "500", "--format", "raw", "-d", str(int(seconds)),
                             "-o", str(out), "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pyspy", type=Path, default=None, help="a folder for the head's profiles")
    parser.add_argument("--against", type=Path, default=None, help="another checkout whose head is measured too")
    args = parser.parse_args()
    if args.against is not None:
        against(args)
        return
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="lattice-rt-") as tmp:
        head = HeadProcess(Path(tmp) / "head").start()
        try:
            info = json.loads((head.data_dir / "head.json").read_text())
            apply_ray_env((head.data_dir / "ray_token").read_text().strip())
            assert head.proc is not None
            ray_side = RaySide(info["ray_address"])
            with LatticeClient(head.url, token=head.token, progress=False) as client:
                lattice = LatticeSide(client, [], args.chain)
                r_lat: list[float] = []
                l_lat: list[float] = []
                r_chain: list[float] = []
                l_chain: list[float] = []
                for _ in range(args.repeats):
                    r_lat += ray_side.round_trips(args.runs // args.repeats)
                    l_lat += lattice.round_trips(args.runs // args.repeats)
                    r_chain.append(ray_side.chain(args.chain))
                    l_chain.append(lattice.chain())
                r, l_ = statistics.median(r_lat) * 1000, statistics.median(l_lat) * 1000
                rc, lc = statistics.median(r_chain) / args.chain * 1000, statistics.median(l_chain) / args.chain * 1000
                out["noop_ms"] = {"ray": round(r, 3), "lattice": round(l_, 3), "ratio": round(l_ / r, 2)}
                out["chain_hop_ms"] = {"ray": round(rc, 3), "lattice": round(lc, 3), "ratio": round(lc / rc, 2)}
                print(json.dumps(out), flush=True)
                if args.pyspy is not None:
                    args.pyspy.mkdir(parents=True, exist_ok=True)
                    for name, work in (("noop", lambda: lattice.round_trips(args.runs)),
                                       ("chain", lambda: [lattice.chain() for _ in range(args.repeats)])):
                        raw = args.pyspy / f"head-{name}.txt"
                        spy = record(head.proc.pid, raw, 600)
                        time.sleep(1.0)
                        start = time.perf_counter()
                        work()
                        wall = time.perf_counter() - start
                        spy.send_signal(2)
                        spy.wait(30)
                        time.sleep(0.5)
                        out[f"profile_{name}"] = {"wall_s": round(wall, 2), **summarize(raw)}
                        print(name, json.dumps(out[f"profile_{name}"], indent=1), flush=True)
            ray_side.close()
        finally:
            head.stop()
    print(json.dumps(out, indent=2))


def against(args: argparse.Namespace) -> None:
    """This tree's head and ``args.against``'s, round trips and chains alternating, raw Ray beside them."""
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lattice-rt-") as tmp:
        heads = {"this": HeadProcess(Path(tmp) / "this"),
                 "against": HeadProcess(Path(tmp) / "against", env={"PYTHONPATH": str(args.against)})}
        try:
            for head in heads.values():
                head.start()
            info = json.loads((heads["this"].data_dir / "head.json").read_text())
            apply_ray_env((heads["this"].data_dir / "ray_token").read_text().strip())
            ray_side = RaySide(info["ray_address"])
            clients = {name: LatticeClient(h.url, token=h.token, progress=False) for name, h in heads.items()}
            sides = {name: LatticeSide(c, [], args.chain) for name, c in clients.items()}
            procs = {name: psutil.Process(h.proc.pid) for name, h in heads.items() if h.proc is not None}
            for name in ("ray", *sides):
                results[name] = {"noop": [], "chain": [], "cpu_ms": [], "client_cpu_ms": []}
            for _ in range(args.repeats):
                results["ray"]["noop"] += ray_side.round_trips(args.runs // args.repeats)
                results["ray"]["chain"].append(ray_side.chain(args.chain))
                for name, side in sides.items():
                    before, client_before = procs[name].cpu_times(), time.thread_time()
                    results[name]["noop"] += side.round_trips(args.runs // args.repeats)
                    after, client_after = procs[name].cpu_times(), time.thread_time()
                    cpu = (after.user - before.user) + (after.system - before.system)
                    results[name]["cpu_ms"].append(cpu * 1000 / (args.runs // args.repeats))
                    results[name]["client_cpu_ms"].append((client_after - client_before) * 1000
                                                          / (args.runs // args.repeats))
                    results[name]["chain"].append(side.chain())
            for client in clients.values():
                client.close()
            ray_side.close()
        finally:
            for head in heads.values():
                if head.proc is not None:
                    head.stop()
    out = {name: {"noop_median_ms": round(statistics.median(r["noop"]) * 1000, 3),
                  "chain_ms_per_hop": round(statistics.median(r["chain"]) / args.chain * 1000, 3)}
           for name, r in results.items()}
    for name in ("this", "against"):
        out[name]["head_cpu_ms_per_round_trip"] = round(statistics.median(results[name]["cpu_ms"]), 3)
        out[name]["client_cpu_ms_per_round_trip"] = round(statistics.median(results[name]["client_cpu_ms"]), 3)
        out[name]["noop_x_ray"] = round(out[name]["noop_median_ms"] / out["ray"]["noop_median_ms"], 2)
        out[name]["chain_x_ray"] = round(out[name]["chain_ms_per_hop"] / out["ray"]["chain_ms_per_hop"], 2)
    print(json.dumps({"against": str(args.against), "load": os.getloadavg(), **out}))


if __name__ == "__main__":
    main()
