"""Scale: a 100,000-task workflow on one machine, a store of 10,000 runs, and an idle head.

  (a) a fan-out of ``--leaves`` no-op tasks (builtin ``noop``, ``cpu=0``) into a tree of fan-ins of
      ``--fan`` inputs each, down to one sink: submitted as a raw spec, run, and waited for. Reported: the
      time of each phase, tasks/s, the head process's peak RSS (psutil, sampled every 0.2 s) and the
      store's size per task (SQLite file + WAL after the run);
  (b) ``GET /api/v1/runs`` (50 per page; first page, a deep page, a state filter, a search) on a head
      started on a store seeded with ``--stored-runs`` finished runs of 3 tasks each, seeded through the
      store's own tables as tests/unit/web does (10,000 runs through a head would take minutes): p50/p99;
  (c) the head's own CPU time over 10 s while idle (after (b)), from psutil.

Targets (issue 14): (a) completes with head RSS < 1.5 GB; (b) p99 < 50 ms; (c) < 0.5 s CPU per 10 s.
``--profile`` records the head with py-spy during (a) and writes the top frames to the report.
Writes docs/benchmarks/scale.json and scale.md.
Usage: python bench/bench_scale.py [--leaves 100000] [--fan 100] [--stored-runs 10000] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import subprocess
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
from lattice.core.store import Store, runs, tasks, workflows  # noqa: E402

MB = 1024 * 1024


def fan_in_spec(leaves: int, fan: int) -> dict[str, Any]:
    """``leaves`` no-ops, then levels of no-ops taking ``fan`` upstream outputs each, down to one sink."""
    spec_tasks: list[dict[str, Any]] = [
        {"name": f"l{i}", "builtin": "noop", "outputs": ["result"], "resources": {"cpu": 0}} for i in range(leaves)]
    level, names = 0, [t["name"] for t in spec_tasks]
    while len(names) > 1:
        level += 1
        upper = []
        for start in range(0, len(names), fan):
            name = f"f{level}_{start // fan}"
            spec_tasks.append({"name": name, "builtin": "noop", "outputs": ["result"], "resources": {"cpu": 0},
                               "inputs": {f"i{j}": {"task": up, "output": "result"}
                                          for j, up in enumerate(names[start:start + fan])}})
            upper.append(name)
        names = upper
    return {"format": "lattice.workflow/v1", "name": f"fan-in-{leaves}", "tasks": spec_tasks}


class RssSampler:
    """The peak RSS of one process, sampled on a thread until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.proc, self.every_s = psutil.Process(pid), every_s
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class HealthProbe:
    """``GET /health`` every 20 ms on a thread while a phase runs: how long the head's event loop stalled
    (a request waits for whatever holds the loop). Use as ``with HealthProbe(url) as probe: ...``."""

    def __init__(self, url: str, every_s: float = 0.02) -> None:
        self.url, self.every_s = url, every_s
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=600) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                http.get("/health")
                self.latencies_ms.append(1000 * (time.perf_counter() - start))
                self._stop.wait(self.every_s)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms) or [0.0]
        return {"max_ms": round(ordered[-1], 1), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
                "p50_ms": round(statistics.median(ordered), 1), "probes": len(self.latencies_ms)}


def store_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("lattice.db*"))


def top_frames(raw: Path, limit: int = 12) -> list[tuple[str, float]]:
    """py-spy's ``--format raw`` (collapsed stacks with counts) as the leaf frames with the most samples."""
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = [f for f in stack.split(";") if f]
        leaf = next((f for f in reversed(frames) if "lattice" in f), frames[-1] if frames else "?")
        leaves[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1] if " (" in leaf else leaf] += int(count)
    return [(frame, round(100 * n / total, 1)) for frame, n in leaves.most_common(limit)] if total else []


def memory_breakdown(leaves: int, fan: int) -> list[tuple[str, float, int]]:
    """What the head's own per-task structures take for this workflow, measured with tracemalloc in this process
    (no Ray, no HTTP): (what, MB, bytes per task). The rest of the head's peak is Ray's side (object refs of
    every output, in-flight calls) and the batches in flight to the store."""
    import gc
    import tracemalloc

    from lattice.core.algorithm import TaskRun
    from lattice.core.dag import build_graph
    from lattice.core.states import TaskState
    from lattice.wire.spec import WorkflowSpec

    spec_dict = fan_in_spec(leaves, fan)
    count = len(spec_dict["tasks"])
    body = json.dumps(spec_dict).encode()
    del spec_dict
    out: list[tuple[str, float, int]] = []

    def measured(label: str, make: Any) -> Any:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        value = make()
        gc.collect()
        grew = tracemalloc.get_traced_memory()[0] - before
        out.append((label, round(grew / MB, 1), round(grew / count)))
        return value

    tracemalloc.start()
    try:
        # as the head does it: the body's JSON validated in one pass (no parsed dict in between)
        spec = measured("the validated spec (`WorkflowSpec.model_validate_json` of the body)",
                        lambda: WorkflowSpec.model_validate_json(body))
        graph = measured("the graph (`build_graph`: up/downstream sets, order, critical path)",
                         lambda: build_graph(spec))
        by_name = {t.name: t for t in spec.tasks}
        measured("the run's task states (`TaskRun` per task)", lambda: {
            name: TaskRun(spec=by_name[name], state=TaskState.PENDING, waiting_on=len(graph.upstream[name]))
            for name in graph.order})
    finally:
        tracemalloc.stop()
    return out


def bench_big(leaves: int, fan: int, profile: bool, tmp: Path) -> dict[str, Any]:
    spec = fan_in_spec(leaves, fan)
    body_mb = len(json.dumps(spec)) / MB
    head = HeadProcess(tmp / "big").start()
    assert head.proc is not None
    result: dict[str, Any] = {"leaves": leaves, "fan": fan, "tasks": len(spec["tasks"]),
                              "spec_body_mb": round(body_mb, 2)}
    spy = None
    try:
        rss_start = psutil.Process(head.proc.pid).memory_info().rss
        sampler = RssSampler(head.proc.pid)
        if profile and shutil.which("py-spy"):
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(head.proc.pid), "--rate", "50", "--format", "raw",
                                    "--output", str(tmp / "big.raw"), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with LatticeClient(head.url, token=head.token, progress=False, timeout=300) as client:
            with HealthProbe(head.url) as register_probe:
                t0 = time.perf_counter()
                workflow_id = client.submit_workflow(spec)
                t1 = time.perf_counter()
            with HealthProbe(head.url) as start_probe:
                run_id = client.start_run(workflow_id)
                t2 = time.perf_counter()
            result["health_while_registering"] = register_probe.summary()
            result["health_while_starting"] = start_probe.summary()
            outputs = client.get_results(run_id, timeout=3600)
            t3 = time.perf_counter()
            run = client.get_run(run_id)
        assert list(outputs) == ["result"], outputs
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes what it recorded
            spy.wait(60)
            if (tmp / "big.raw").exists():
                result["profile_top"] = top_frames(tmp / "big.raw")
        time.sleep(1.0)  # the last batch's commit
        result.update({
            "submit_workflow_s": round(t1 - t0, 2), "start_run_s": round(t2 - t1, 2), "run_s": round(t3 - t2, 2),
            "tasks_per_s": round(len(spec["tasks"]) / (t3 - t2), 1), "state": run["state"],
            "task_states": dict(collections.Counter(t["state"] for t in run["tasks"])),
            "head_rss_start_mb": round(rss_start / MB, 1), "head_rss_peak_mb": round(sampler.stop() / MB, 1),
        })
        size = store_bytes(head.data_dir)
        result["store_mb"] = round(size / MB, 1)
        result["store_bytes_per_task"] = round(size / len(spec["tasks"]))
        store = Store(f"sqlite:///{head.data_dir / 'lattice.db'}", auto_upgrade=False)
        with store.engine.connect() as conn:
            from sqlalchemy import func, select

            from lattice.core.store import attempts, blobs, events
            result["rows"] = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                              for t in (tasks, attempts, events, blobs)}
        store.engine.dispose()
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        head.stop()
    return result


def seed(data_dir: Path, count: int) -> None:
    """``count`` finished runs of a 3-task workflow, written straight into a new store's tables."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{data_dir / 'lattice.db'}")
    now = time.time() - count
    spec = {"format": "lattice.workflow/v1", "name": "seeded",
            "tasks": [{"name": n, "builtin": "noop", "outputs": ["result"]} for n in ("a", "b", "c")]}
    run_rows = [{"id": f"seeded{i:06d}", "workflow_id": "wfseeded", "workflow_name": "seeded",
                 "state": "failed" if i % 10 == 0 else "succeeded", "priority": 0,
                 "tags": json.dumps({"batch": "big" if i % 1000 == 0 else "small"}), "created_at": now + i,
                 "started_at": now + i, "finished_at": now + i + 0.5, "tenant": None} for i in range(count)]
    task_rows = [{"run_id": row["id"], "name": name, "state": "succeeded", "attempt": 1}
                 for row in run_rows for name in ("a", "b", "c")]
    with store.engine.begin() as conn:
        conn.execute(workflows.insert(), [{"id": "wfseeded", "name": "seeded", "spec": json.dumps(spec),
                                           "created_at": now}])
        conn.execute(runs.insert(), run_rows)
        conn.execute(tasks.insert(), task_rows)
    store.engine.dispose()


def bench_list(stored: int, queries: int, tmp: Path) -> dict[str, Any]:
    data_dir = tmp / "listed"
    seed(data_dir, stored)
    head = HeadProcess(data_dir).start()
    assert head.proc is not None
    result: dict[str, Any] = {"stored_runs": stored, "queries_each": queries}
    try:
        with httpx.Client(base_url=f"{head.url}/api/v1", headers={"authorization": f"Bearer {head.token}"},
                          timeout=30) as http:
            cases = {"first page": {"limit": 50}, "deep page (offset 9,000)": {"limit": 50, "offset": 9000},
                     "state=failed": {"limit": 50, "state": "failed"}, "search q=seeded0099": {"limit": 50,
                                                                                          "q": "seeded0099"}}
            latencies: dict[str, dict[str, float]] = {}
            for label, params in cases.items():
                assert http.get("/runs", params=params).json()["total"] > 0  # warm, and the page is not empty
                times = []
                for _ in range(queries):
                    start = time.perf_counter()
                    answer = http.get("/runs", params=params)
                    times.append(1000 * (time.perf_counter() - start))
                    answer.raise_for_status()
                ordered = sorted(times)
                p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
                latencies[label] = {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2)}
            result["list_runs"] = latencies
            total = http.get("/runs", params={"limit": 1}).json()["total"]
            assert total == stored, total
        time.sleep(3.0)  # let the requests' after-effects settle: what follows is the head doing nothing
        proc = psutil.Process(head.proc.pid)
        before = proc.cpu_times()
        time.sleep(10.0)
        after = proc.cpu_times()
        result["idle_cpu_s_per_10s"] = round((after.user - before.user) + (after.system - before.system), 3)
        result["idle_head_rss_mb"] = round(proc.memory_info().rss / MB, 1)
    finally:
        head.stop()
    return result


@task(inputs=["i"], outputs=["result"], cpu=0)
def code_noop(params):
    return {"result": params["i"]}


def bench_code_table(tasks_n: int, tmp: Path) -> dict[str, Any]:
    """(d) a ``tasks_n``-task ``@task`` workflow (one function, a literal input each) registered through the
    SDK: its request with the code table (what the SDK sends) against the same spec with the code inline
    in every task (what it sent before; over the head's body limit at 100,000 tasks)."""
    from lattice.client.workflow import WorkflowBuilder

    builder = WorkflowBuilder(f"code-table-{tasks_n}")
    for i in range(tasks_n):
        builder.add_task(code_noop, inputs={"i": i}, name=f"t{i}")
    shared, inline = builder.to_spec(), builder.to_spec(shared_code=False)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "load_avg_at_start": [round(x, 1) for x in os.getloadavg()],
                              "tasks": tasks_n, "request_mb": round(len(json.dumps(shared)) / MB, 2),
                              "inline_request_mb": round(len(json.dumps(inline)) / MB, 2),
                              "distinct_functions": len(shared.get("code", {}))}
    del inline
    head = HeadProcess(tmp / "code-table").start()
    try:
        body = json.dumps(shared).encode()
        with httpx.Client(base_url=f"{head.url}/api/v1", headers={"authorization": f"Bearer {head.token}",
                                                                   "content-type": "application/json"},
                          timeout=600) as http:
            with HealthProbe(head.url) as probe:
                t0 = time.perf_counter()
                answer = http.post("/workflows", content=body)  # what client.submit_workflow sends, answer kept
                result["register_s"] = round(time.perf_counter() - t0, 2)
            result["health_while_registering"] = probe.summary()
            assert answer.status_code == 201, answer.text[:500]
            result["registered_tasks"] = len(answer.json()["tasks"])
            workflow_id = answer.json()["workflow_id"]
            t0 = time.perf_counter()
            page = http.get(f"/workflows/{workflow_id}")  # the first page of its spec (what the Board reads first)
            result["get_page_s"] = round(time.perf_counter() - t0, 3)
            assert page.status_code == 200, page.text[:500]
            result["get_page_mb"] = round(len(page.content) / MB, 3)
            result["get_page_tasks"] = len(page.json()["spec"]["tasks"])
        assert result["registered_tasks"] == tasks_n, result
    finally:
        head.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--fan", type=int, default=100)
    parser.add_argument("--stored-runs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--code-tasks", type=int, default=100_000,
                        help="(d): tasks of the @task workflow registered with the code table (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--only-code-table", action="store_true",
                        help="run (d) only and put it into the existing scale.json/scale.md (the others kept)")
    parser.add_argument("--notes", type=Path, default=ROOT / "bench" / "scale_notes.md",
                        help="hand-written notes (before/after, where the time goes) appended to the report")
    args = parser.parse_args()
    notes = args.notes.read_text() if args.notes.exists() else ""
    if args.only_code_table:
        kept = json.loads((args.out / "scale.json").read_text())
        with tempfile.TemporaryDirectory(prefix="lattice-bench-scale-") as tmp:
            kept["code_table"] = bench_code_table(args.code_tasks, Path(tmp))
        print(json.dumps(kept["code_table"], indent=2), flush=True)
        write_report(kept, args.out, notes)
        return
    load = os.getloadavg()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total // MB // 1024} GiB, "
                   f"Python {platform.python_version()}",
        "load_avg_at_start": [round(x, 1) for x in load],
    }
    with tempfile.TemporaryDirectory(prefix="lattice-bench-scale-") as tmp:
        print("listing 10,000 stored runs, then idle ...", flush=True)
        result["store"] = bench_list(args.stored_runs, args.queries, Path(tmp))
        print(json.dumps(result["store"], indent=2), flush=True)
        if not args.skip_big:
            print(f"a {args.leaves}-leaf fan-in workflow ...", flush=True)
            result["big"] = bench_big(args.leaves, args.fan, args.profile, Path(tmp))
            result["big"]["memory"] = memory_breakdown(args.leaves, args.fan)
            print(json.dumps(result["big"], indent=2), flush=True)
        if args.code_tasks:
            print(f"a {args.code_tasks}-task @task workflow with the code table ...", flush=True)
            result["code_table"] = bench_code_table(args.code_tasks, Path(tmp))
            print(json.dumps(result["code_table"], indent=2), flush=True)
    write_report(result, args.out, notes)


def _probe(summary: dict[str, float]) -> str:
    return f"{summary['max_ms']:,} / {summary['p99_ms']:,} / {summary['p50_ms']:,} ms ({summary['probes']} probes)"


def write_report(result: dict[str, Any], out_dir: Path, notes: str = "") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    store = result["store"]
    lines = ["# Scale", "",
             f"Measured {result['date']} on {result['machine']} by `python bench/bench_scale.py` (load average at "
             f"start {result['load_avg_at_start']}: the machine is shared, so absolute times are noisy).", ""]
    big = result.get("big")
    if big:
        rss_ok = big["head_rss_peak_mb"] < 1536
        lines += [
            f"## (a) a {big['tasks']:,}-task workflow", "",
            f"{big['leaves']:,} no-op tasks (builtin `noop`, `cpu=0`) fanning into a tree of fan-ins of "
            f"{big['fan']} inputs each, one sink; spec body {big['spec_body_mb']} MB.", "",
            "| measure | value | target | met |", "| --- | ---: | --- | --- |",
            f"| run state | {big['state']} ({big['task_states']}) | completes | "
            f"{'yes' if big['state'] == 'succeeded' else '**no**'} |",
            f"| register the workflow (`POST /workflows`) | {big['submit_workflow_s']} s | | |",
            f"| start the run | {big['start_run_s']} s | | |",
            f"| run, start to result | {big['run_s']} s ({big['tasks_per_s']:,} tasks/s) | | |",
            *([f"| `/health` while registering (every 20 ms): max / p99 / p50 | "
               f"{_probe(big['health_while_registering'])} | | |",
               f"| `/health` while starting the run: max / p99 / p50 | {_probe(big['health_while_starting'])} | | |"]
              if "health_while_registering" in big else []),
            f"| head RSS, peak (start: {big['head_rss_start_mb']} MB) | {big['head_rss_peak_mb']} MB | < 1,536 MB | "
            f"{'yes' if rss_ok else '**no**'} |",
            f"| store after the run (SQLite + WAL) | {big['store_mb']} MB, {big['store_bytes_per_task']:,} bytes/task "
            f"| stated | |",
            f"| rows | {big['rows']} | | |", ""]
        if big.get("memory"):
            lines += ["What the head's own structures for this workflow take (tracemalloc, in the benchmark's "
                      "process, no Ray); the rest of the peak is not broken down here: it holds Ray's driver side "
                      "(an object ref per output, calls in flight), the writes and events batched for the store, "
                      "and the request's own copies of the body:", "",
                      "| structure | MB | bytes/task |", "| --- | ---: | ---: |"]
            lines += [f"| {label} | {mb} | {per:,} |" for label, mb, per in big["memory"]]
            lines.append("")
        if big.get("profile_top"):
            lines += ["Where the head's time went during the run (py-spy, share of samples by innermost Lattice "
                      "frame):", "", "| frame | share |", "| --- | ---: |"]
            lines += [f"| `{frame}` | {share} % |" for frame, share in big["profile_top"]]
            lines.append("")
    lines += [f"## (b) `GET /api/v1/runs` over {store['stored_runs']:,} stored runs", "",
              f"50 runs a page, {store['queries_each']} requests each, sequential, from a client on the same machine.",
              "", "| page | p50 | p99 | target p99 | met |", "| --- | ---: | ---: | --- | --- |"]
    for label, values in store["list_runs"].items():
        lines.append(f"| {label} | {values['p50_ms']} ms | {values['p99_ms']} ms | < 50 ms | "
                     f"{'yes' if values['p99_ms'] < 50 else '**no**'} |")
    idle = store["idle_cpu_s_per_10s"]
    lines += ["", "## (c) an idle head", "",
              f"The head process's CPU time over 10 s with nothing to do: **{idle} s** (target < 0.5 s: "
              f"{'met' if idle < 0.5 else '**not met**'}); its RSS then {store['idle_head_rss_mb']} MB.", ""]
    code = result.get("code_table")
    if code:
        lines += [f"## (d) a {code['tasks']:,}-task `@task` workflow, registered through the SDK", "",
                  f"Measured {code.get('date', result['date'])} (load average "
                  f"{code.get('load_avg_at_start', '?')}). One `@task` function, {code['tasks']:,} tasks with "
                  "a literal input each, the body `client.submit_workflow` sends for "
                  "the spec the SDK builds (`WorkflowBuilder.to_spec()`: each distinct function's code once, in "
                  "the spec's `code` table; tasks name it by `code_ref`).", "",
                  "| measure | value |", "| --- | ---: |",
                  f"| request body with the code table | {code['request_mb']} MB |",
                  f"| the same spec with the code inline in every task (before; the head takes at most 64 MB) "
                  f"| {code['inline_request_mb']} MB |",
                  f"| distinct functions in the table | {code['distinct_functions']} |",
                  f"| register (`POST /workflows`, 201) | {code['register_s']} s |",
                  *([f"| `/health` meanwhile (every 20 ms): max / p99 / p50 | "
                     f"{_probe(code['health_while_registering'])} |"] if "health_while_registering" in code else []),
                  f"| tasks the head registered (its 201 answer) | {code['registered_tasks']:,} |",
                  *([f"| `GET /workflows/{{id}}`, first page ({code['get_page_tasks']:,} tasks, code by reference) "
                     f"| {code['get_page_mb']} MB, {code['get_page_s']} s |"] if "get_page_mb" in code else []),
                  ""]
    if notes:
        lines += [notes.rstrip(), ""]
    (out_dir / "scale.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
