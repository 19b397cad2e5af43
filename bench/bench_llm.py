"""Model pool benchmark: the head's endpoint against calling the engine directly, same run, same engine.

Starts a head (embedded Ray), deploys a ``transformers serve`` pool on a tiny random Llama (built here, no
download; ``pip install -e .[llm]``), then, for 1, 8 and 32 concurrent callers, sends the same requests
(``max_tokens`` = 1 first, so the engine's time is small and Lattice's share shows; then, with
``--max-tokens 1,32``, a short real answer's worth of tokens per request) first straight to the engine's own
address and then through ``/api/v1/llm/{alias}/v1``:

  * added latency per request at 1 caller: median and p99 of Lattice's minus the engine's
  * throughput (requests/s) at 1, 8 and 32 callers, both ways, and the loss through Lattice
  * cold start: a second pool with no replica, from the first request to its first streamed byte
  * the head's own CPU time per request (psutil, user + system, the head process only), both ways: on the
    direct side it is the head's background work, on the Lattice side that plus the proxying. Unlike
    throughput it hardly depends on what else loads the machine, and it is what the head takes from an
    engine that shares its cores (``docs/benchmarks/llm.md`` says how to read it)

The pool's cap is set above 32 so the endpoint's queueing is not what is measured. ``transformers serve``
without continuous batching generates one request after another, so throughput is the engine's.
Writes docs/benchmarks/llm.json and llm.md. Usage: python bench/bench_llm.py [--requests 64] [--max-tokens 1,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "llm"))

from headproc import HeadProcess  # noqa: E402
from tinymodel import build_tiny_llama  # noqa: E402

from lattice import LatticeClient  # noqa: E402

BODY: dict[str, Any] = {"model": "", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def _cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


async def measure(url: str, headers: dict[str, str], callers: int, requests: int,
                  head: psutil.Process | None = None, engine: psutil.Process | None = None,
                  max_tokens: int = 1) -> dict[str, Any]:
    latencies: list[float] = []
    tokens: list[int] = []
    body = {**BODY, "max_tokens": max_tokens}
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=callers + 4)) as http:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def caller() -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await http.post(url, json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                tokens.append(int((response.json().get("usage") or {}).get("completion_tokens") or 0))

        await http.post(url, json=body, headers=headers)  # a connection and a warm engine
        started, cpu, engine_cpu = time.perf_counter(), _cpu_s(head), _cpu_s(engine)
        await asyncio.gather(*(caller() for _ in range(callers)))
        wall, cpu, engine_cpu = time.perf_counter() - started, _cpu_s(head) - cpu, _cpu_s(engine) - engine_cpu
    latencies.sort()
    return {"callers": callers, "requests": requests, "rps": requests / wall, "head_cpu_ms": cpu * 1000 / requests,
            "engine_cpu_ms": engine_cpu * 1000 / requests,
            "median_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
            "tokens_out": statistics.mean(tokens) if tokens else 0.0, "latencies": latencies}


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one side: the median round's throughput, latency percentiles over every request."""
    latencies = sorted(x for run in runs for x in run["latencies"])
    return {"rps": statistics.median(run["rps"] for run in runs),
            "head_cpu_ms": statistics.median(run["head_cpu_ms"] for run in runs),
            "engine_cpu_ms": statistics.median(run["engine_cpu_ms"] for run in runs),
            "tokens_out": statistics.mean(run["tokens_out"] for run in runs),
            "median_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000}


async def cold_start(url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http, http.stream(
            "POST", url, json={**BODY, "stream": True, "max_tokens": 4}, headers=headers) as response:
        response.raise_for_status()
        async for _ in response.aiter_raw():
            return time.perf_counter() - started
    raise RuntimeError("the stream ended without a byte")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64, help="requests per caller count and side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (medians reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--max-tokens", default="1", help="comma-separated max_tokens, a table each (1 first)")
    args = parser.parse_args()
    token_counts = [int(x) for x in args.max_tokens.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    model = build_tiny_llama(work / "tiny")
    BODY["model"] = str(model)  # the engine, called directly, answers only to the name it serves
    head = HeadProcess(work / "head", extra_args=["--num-cpus", "4"]).start()
    head_process = psutil.Process(head.proc.pid)  # type: ignore[union-attr]
    try:
        auth = {"authorization": f"Bearer {head.token}"}
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            client.llm.deploy("bench", engine="transformers", model=str(model), cpu=0.5, min_replicas=1,
                              max_concurrency=64, max_queue=1024)
            while (view := client.llm.list()[0]).state != "ready":
                if view.state == "failed":
                    raise SystemExit(f"the pool failed: {view.error}")
                time.sleep(0.5)
            direct_url = f"{view.replicas[0].address}/v1/chat/completions"
            engine_process = psutil.Process(view.replicas[0].pid) if view.replicas[0].pid else None
            lattice_url = f"{head.url}/api/v1/llm/bench/v1/chat/completions"
            rows = []
            for max_tokens in token_counts:
                for callers in (1, 8, 32):
                    # alternate the two sides, several rounds, so load from other jobs hits both alike
                    sides: dict[str, list[dict[str, Any]]] = {"direct": [], "lattice": []}
                    for _ in range(args.rounds):
                        sides["direct"].append(asyncio.run(measure(direct_url, {}, callers, args.requests,
                                                                   head_process, engine_process, max_tokens)))
                        sides["lattice"].append(asyncio.run(measure(lattice_url, auth, callers, args.requests,
                                                                    head_process, engine_process, max_tokens)))
                    rows.append({"callers": callers, "max_tokens": max_tokens,
                                 **{side: _merge(runs) for side, runs in sides.items()}})
            client.llm.deploy("cold", engine="transformers", model=str(model), cpu=0.5, min_replicas=0)
            cold = asyncio.run(cold_start(f"{head.url}/api/v1/llm/cold/v1/chat/completions", auth))
    finally:
        head.stop()
    one = rows[0]
    added_median = one["lattice"]["median_ms"] - one["direct"]["median_ms"]
    added_p99 = one["lattice"]["p99_ms"] - one["direct"]["p99_ms"]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}; shared and loaded",
        "added_median_ms": round(added_median, 2), "added_p99_ms": round(added_p99, 2),
        "cold_start_to_first_byte_s": round(cold, 2),
        "rows": [{"callers": r["callers"], "max_tokens": r["max_tokens"],
                  **{f"{side}_{k}": round(r[side][k], 2) for side in ("direct", "lattice")
                     for k in ("rps", "median_ms", "p99_ms", "head_cpu_ms", "engine_cpu_ms", "tokens_out")},
                  "throughput_loss_pct": round(100 * (1 - r["lattice"]["rps"] / r["direct"]["rps"]), 1)}
                 for r in rows],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Model pool endpoint overhead",
        "",
        f"`python bench/bench_llm.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + " (see its docstring). "
        "The engine is `transformers serve` on a tiny random",
        "Llama; with `max_tokens` = 1 what the engine spends is small and the endpoint's share shows (the",
        "worst case for the endpoint), larger `max_tokens` rows are a short answer's worth of decoding; the same",
        "requests go straight to the engine and through `/api/v1/llm/{alias}/v1`, same run, same engine.",
        f"Machine: {result['machine']} (other jobs ran on it at the same time; treat the numbers as rough).",
        "The client, the head and the engine share the machine's cores, so with 8 and 32 callers the head's",
        "proxying competes with the engine for CPU: on a real cluster the engine has its own node or GPU.",
        f"Each side: {args.rounds} alternating rounds of {args.requests} requests per caller count.",
        "",
        f"* added latency at 1 caller: median **{added_median:.2f} ms**, p99 {added_p99:.2f} ms",
        f"* cold start, zero replicas to the first streamed byte: **{cold:.1f} s** (engine start + model load"
        " + warm-up request)",
        "",
        "| max_tokens (mean generated) | callers | direct req/s | Lattice req/s | loss | direct median ms |"
        " Lattice median ms | direct p99 ms | Lattice p99 ms | head CPU ms/req, direct (background) |"
        " head CPU ms/req, Lattice | engine CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['max_tokens']} ({r['direct_tokens_out']:.1f}) | {r['callers']} | {r['direct_rps']:.1f} | "
                     f"{r['lattice_rps']:.1f} | "
                     f"{r['throughput_loss_pct']:.1f} % | {r['direct_median_ms']:.1f} | {r['lattice_median_ms']:.1f} | "
                     f"{r['direct_p99_ms']:.1f} | {r['lattice_p99_ms']:.1f} | {r['direct_head_cpu_ms']:.2f} | "
                     f"{r['lattice_head_cpu_ms']:.2f} | {r['direct_engine_cpu_ms']:.2f} |")
    lines += ["", "Targets (issue 12): under 3 ms added median, under 5 % throughput loss at 8 callers.", "",
              "Reading the CPU columns: where the engine is CPU-bound on cores it shares with the head, the",
              "throughput loss is about (Lattice head CPU - background) / (engine CPU + that), whatever else",
              "loads the machine; where the engine has its own node or GPU, the head's CPU costs no throughput.",
              "How the proxy path was profiled and made cheaper: [llm-proxy-profile.md](llm-proxy-profile.md).", ""]
    (args.out / "llm.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
