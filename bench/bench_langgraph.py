"""LangGraph on Lattice vs plain LangGraph, same machine, same run (issue 4's benchmark).

1. A "financial risk" graph: start -> N parallel CPU-bound pure-Python Monte Carlo nodes (about 2 s
   each alone) -> report; N = 3 and N = 2. Plain LangGraph runs the branches in its thread pool, where
   the GIL serializes them; Lattice runs each in its own worker process.
2. The overhead of one remote call of a trivial node: a one-node graph invoked 200 times, plain and
   Lattice-backed (``cpu=0`` and ``cpu=1``), median and p99.
3. A 50-way ``Send`` fan-out of 0.5 s I/O-bound nodes (``cpu=0``), both with ``max_concurrency=64``.

Run: ``python bench/bench_langgraph.py`` (starts its own head; about two minutes on 2 cores).
``BENCH_REPEATS`` (default 3: runs of rows 1 and 3, rounds of row 2), ``BENCH_BRANCHES`` (default ``3,2``),
``BENCH_ROWS`` (default ``risk,overhead,send``) and ``BENCH_OUT`` (default docs/benchmarks) change what is
measured and where the tables go.
Writes ``docs/benchmarks/langgraph.md`` (the tables, then ``bench/langgraph_notes.md``: where the time
goes, other machines) and ``docs/benchmarks/langgraph.json``.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples"))

from headproc import HeadProcess  # noqa: E402
from langgraph_risk import expected_shortfall  # noqa: E402 - the example's node body, measured as is

from lattice.client.langgraph import LangGraphClient  # noqa: E402

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def monte_carlo(paths: int, seed: int) -> float:
    """The example's Monte Carlo node body (``examples/langgraph_risk.py``): pure Python, holds the GIL."""
    return expected_shortfall(seed, paths)


def calibrate(target_s: float = 2.0) -> int:
    probe = 500_000
    started = time.perf_counter()
    monte_carlo(probe, 0)
    return int(probe * target_s / (time.perf_counter() - started))


class RiskState(TypedDict):
    portfolio: str
    paths: int
    risks: Annotated[list[tuple[str, float]], operator.add]
    report: str


def risk_graph(node: Wrap, branches: int) -> Any:
    def start(state: RiskState) -> dict[str, Any]:
        return {"portfolio": state["portfolio"].upper()}

    def make(name: str, seed: int) -> Callable[[RiskState], dict[str, Any]]:
        def risk(state: RiskState) -> dict[str, Any]:
            return {"risks": [(name, monte_carlo(state["paths"], seed))]}
        risk.__name__ = name
        return node(risk)

    def report(state: RiskState) -> dict[str, Any]:
        return {"report": ", ".join(f"{n}={v:.4f}" for n, v in sorted(state["risks"]))}

    names = ["market_risk", "credit_risk", "liquidity_risk", *(f"risk_{i}" for i in range(3, branches))][:branches]
    g = StateGraph(RiskState)
    g.add_node("start", start)
    g.add_node("report", report)
    g.add_edge(START, "start")
    for seed, name in enumerate(names):
        g.add_node(name, make(name, seed))
        g.add_edge("start", name)
    g.add_edge(names, "report")
    g.add_edge("report", END)
    return g.compile()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def bench_risk(lg: LangGraphClient, paths: int, branches: int, repeats: int) -> dict[str, Any]:
    state = {"portfolio": "demo", "paths": paths, "risks": []}
    local, remote = risk_graph(plain, branches), risk_graph(lg.task(cpu=1), branches)
    for _ in range(3):  # warm-up: Ray starts worker processes for the first calls (about 1 s each)
        _, expected = timed(lambda: remote.invoke(state))
    plain_s, lattice_s = [], []
    for _ in range(repeats):
        t, out = timed(lambda: local.invoke(state))
        plain_s.append(t)
        assert out == expected
        t, out = timed(lambda: remote.invoke(state))
        lattice_s.append(t)
        assert out == expected
    p, q = statistics.median(plain_s), statistics.median(lattice_s)
    return {"branches": branches, "plain_s": round(p, 3), "lattice_s": round(q, 3), "speedup": round(p / q, 2),
            "plain_runs": [round(x, 3) for x in plain_s], "lattice_runs": [round(x, 3) for x in lattice_s]}


class One(TypedDict):
    n: int


def one_node(node: Wrap) -> Any:
    @node
    def bump(state: One) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    g = StateGraph(One)
    g.add_node(bump)
    g.add_edge(START, "bump")
    return g.compile()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)}


def bench_overhead(lg: LangGraphClient, calls: int, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds of ``calls`` calls, the three kinds alternating round by round (a loaded machine's
    bursts fall on all of them); the median of the rounds' medians, and the p99 of every call."""
    graphs = {label: one_node(node) for label, node in
              (("plain", plain), ("lattice_cpu0", lg.task(cpu=0)), ("lattice_cpu1", lg.task(cpu=1)))}
    for graph in graphs.values():
        for _ in range(10):
            graph.invoke({"n": 0})
    samples: dict[str, list[float]] = {label: [] for label in graphs}
    medians: dict[str, list[float]] = {label: [] for label in graphs}
    for _ in range(rounds):
        for label, graph in graphs.items():
            batch = [timed(lambda g=graph: g.invoke({"n": 0}))[0] for _ in range(calls)]
            samples[label] += batch
            medians[label].append(statistics.median(batch))
    out: dict[str, Any] = {"calls": calls}
    for label in graphs:
        out[label] = {**percentiles(samples[label]),
                      "median_ms": round(statistics.median(medians[label]) * 1000, 2),
                      "medians_ms": [round(m * 1000, 2) for m in medians[label]]}
    for label in ("lattice_cpu0", "lattice_cpu1"):
        out[label]["overhead_median_ms"] = round(out[label]["median_ms"] - out["plain"]["median_ms"], 2)
    return out


class MapState(TypedDict):
    items: list[int]
    done: Annotated[list[int], operator.add]


def send_graph(node: Wrap) -> Any:
    @node
    def fetch(item: dict[str, int]) -> dict[str, Any]:
        time.sleep(0.5)  # an HTTP call, a model API, a database query
        return {"done": [item["i"]]}

    g = StateGraph(MapState)
    g.add_node(fetch)
    g.add_conditional_edges(START, lambda s: [Send("fetch", {"i": i}) for i in s["items"]], ["fetch"])
    g.add_edge("fetch", END)
    return g.compile()


def bench_send(lg: LangGraphClient, width: int, repeats: int) -> dict[str, Any]:
    state, config = {"items": list(range(width)), "done": []}, {"max_concurrency": 64}
    local, remote = send_graph(plain), send_graph(lg.task(cpu=0))
    remote.invoke(state, config)
    plain_s, lattice_s = [], []
    for _ in range(repeats):
        t, a = timed(lambda: local.invoke(state, config))
        plain_s.append(t)
        t, b = timed(lambda: remote.invoke(state, config))
        lattice_s.append(t)
        assert a == b
    p, q = statistics.median(plain_s), statistics.median(lattice_s)
    return {"width": width, "node_s": 0.5, "plain_s": round(p, 3), "lattice_s": round(q, 3),
            "ratio": round(q / p, 3), "plain_runs": [round(x, 3) for x in plain_s],
            "lattice_runs": [round(x, 3) for x in lattice_s]}


def write_report(results: dict[str, Any], out_dir: Path, notes: Path) -> None:
    """The tables of what was measured (a row not asked for with ``BENCH_ROWS`` is left out), then ``notes``
    (hand-written: where the time goes, other machines), so a re-run keeps them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "langgraph.json").write_text(json.dumps(results, indent=2) + "\n")
    env = results["environment"]
    lines = [
        "# LangGraph on Lattice: benchmark", "",
        f"Generated by `bench/bench_langgraph.py` on {env['date']}: {env['cpus']} CPUs, Python {env['python']}, "
        f"LangGraph {env['langgraph']}, one local head (real Ray), load average {env['load']} when it started. "
        f"Medians of {env['repeats']} runs after a warm-up; plain and Lattice-backed graphs alternate in the "
        "same process.", "",
    ]
    if "risk" in results:
        lines += [
            f"## 1. Financial-risk graph (CPU-bound Monte Carlo nodes, {env['paths']:,} paths each, "
            f"{env['node_alone_s']} s alone)", "",
            "| parallel branches | plain LangGraph (s) | Lattice-backed (s) | speed-up | target |",
            "|---|---|---|---|---|",
        ]
        for row in results["risk"]:
            target = {3: "1.4x", 2: "1.8x"}.get(row["branches"], "-")
            lines.append(f"| {row['branches']} | {row['plain_s']} | {row['lattice_s']} | {row['speedup']}x "
                         f"| {target} |")
        lines.append("")
    if "overhead" in results:
        ov = results["overhead"]
        lines += [
            f"## 2. Overhead of one remote call of a trivial node ({ov['calls']} calls of a one-node graph, "
            f"median of {len(ov['lattice_cpu0']['medians_ms'])} rounds)", "",
            "| | median (ms) | p99 (ms) | median overhead vs plain (ms) | target |", "|---|---|---|---|---|",
            f"| plain LangGraph | {ov['plain']['median_ms']} | {ov['plain']['p99_ms']} | - | |",
            f"| Lattice, `cpu=0` (I/O executor thread) | {ov['lattice_cpu0']['median_ms']} | "
            f"{ov['lattice_cpu0']['p99_ms']} | {ov['lattice_cpu0']['overhead_median_ms']} | <= 3 ms median |",
            f"| Lattice, `cpu=1` (worker process) | {ov['lattice_cpu1']['median_ms']} | "
            f"{ov['lattice_cpu1']['p99_ms']} | {ov['lattice_cpu1']['overhead_median_ms']} | |", "",
        ]
    if "send_fanout" in results:
        send = results["send_fanout"]
        lines += [
            f"## 3. {send['width']}-way `Send` fan-out of {send['node_s']} s I/O-bound nodes (`cpu=0`, "
            "`max_concurrency=64`)", "",
            "| plain LangGraph (s) | Lattice-backed (s) | ratio | target | runs (plain / Lattice) |",
            "|---|---|---|---|---|",
            f"| {send['plain_s']} | {send['lattice_s']} | {send['ratio']}x | <= 1.05x | "
            f"{send['plain_runs']} / {send['lattice_runs']} |", "",
        ]
    if notes.is_file():
        lines += [notes.read_text().rstrip(), ""]
    (out_dir / "langgraph.md").write_text("\n".join(lines))


def main() -> None:
    import langgraph.version

    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    paths = calibrate()
    node_alone = timed(lambda: monte_carlo(paths, 0))[0]
    with tempfile.TemporaryDirectory() as tmp:
        head = HeadProcess(Path(tmp) / "head").start()
        try:
            with LangGraphClient(head.url, token=head.token, graph="bench") as lg:
                results: dict[str, Any] = {"environment": {
                    "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "langgraph": langgraph.version.__version__, "repeats": repeats, "paths": paths,
                    "node_alone_s": round(node_alone, 2),
                    "load": round(os.getloadavg()[0], 1)}}
                branches = [int(b) for b in os.environ.get("BENCH_BRANCHES", "3,2").split(",")]
                rows = set(os.environ.get("BENCH_ROWS", "risk,overhead,send").split(","))
                if "risk" in rows:
                    results["risk"] = [bench_risk(lg, paths, n, repeats) for n in branches]
                    print(json.dumps(results["risk"], indent=1), flush=True)
                if "overhead" in rows:
                    results["overhead"] = bench_overhead(lg, 200, repeats)
                    print(json.dumps(results["overhead"], indent=1), flush=True)
                if "send" in rows:
                    results["send_fanout"] = bench_send(lg, 50, repeats)
                    print(json.dumps(results["send_fanout"], indent=1), flush=True)
        finally:
            head.stop()
    write_report(results, Path(os.environ.get("BENCH_OUT") or ROOT / "docs" / "benchmarks"),
                 ROOT / "bench" / "langgraph_notes.md")


if __name__ == "__main__":
    main()
