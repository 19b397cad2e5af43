"""GPU checks on a machine with NVIDIA GPUs: NVML discovery, placement, CUDA_VISIBLE_DEVICES, GPU memory admission.

Run against a live head on a GPU machine: ``python bench/gpu_check.py --url http://127.0.0.1:8000``.
Prints one line per check and exits non-zero if any check fails. Not part of the test suite (CI has no GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from lattice import LatticeClient, ResourceUnavailable, task


@task(outputs=["info"], gpu=1)
def whole_gpu(params):
    import os

    info = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import torch

        x = torch.ones(1024, 1024, device="cuda")
        info.update(torch_device=torch.cuda.get_device_name(0), sum=float((x @ x).sum()))
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        info["nvml_pids_mib"] = {p.pid: (p.usedGpuMemory or 0) // (1024 * 1024) for p in procs}
        info["my_pid"] = os.getpid()
    except Exception as exc:  # noqa: BLE001 - reported as data
        info["error"] = repr(exc)
    return {"info": info}


@task(outputs=["info"], gpu=1, sandbox="subprocess")
def sandboxed_gpu(params):
    import os

    info = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
    try:
        import torch

        info["cuda_available"] = torch.cuda.is_available()
        info["device"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001 - reported as data
        info["error"] = repr(exc)
    return {"info": info}


@task(outputs=["span"], gpu=0.5)
def half_gpu(params):
    import os
    import time

    start = time.time()
    time.sleep(2)
    return {"span": [start, time.time(), os.environ.get("CUDA_VISIBLE_DEVICES")]}


@task(outputs=["span"], gpu_memory=60_000)
def sixty_gb(params):
    import os
    import time

    start = time.time()
    time.sleep(2)
    return {"span": [start, time.time(), os.environ.get("CUDA_VISIBLE_DEVICES")]}


def overlap(spans: list[list[float]]) -> int:
    points = sorted([(s[0], 1) for s in spans] + [(s[1], -1) for s in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    failures = 0

    def check(name: str, ok: bool, detail: object) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {json.dumps(detail, default=str)}", flush=True)

    client = LatticeClient(args.url, progress=False)
    nodes = client.nodes()
    gpus = [g for n in nodes for g in n["gpus"]]
    check("NVML discovery through the head", bool(gpus) and gpus[0]["memory_total_mb"] > 0,
          {"nodes": [(n["total"], n["gpus"], n["labels"]) for n in nodes]})

    wf = client.create_workflow("gpu-whole")
    wf.add_task(whole_gpu)
    info = wf.get_results(wf.run(), timeout=300)["info"]
    check("gpu=1 task sees one GPU and torch runs on it", info.get("CUDA_VISIBLE_DEVICES") == "0"
          and "sum" in info, info)
    check("NVML sees the task's process using GPU memory", str(info.get("my_pid")) in
          {str(k) for k in info.get("nvml_pids_mib", {})}, info.get("nvml_pids_mib"))

    wf = client.create_workflow("gpu-sandboxed")
    wf.add_task(sandboxed_gpu)
    run_id = wf.run()
    try:
        info = wf.get_results(run_id, timeout=300)["info"]
        check("a sandboxed (subprocess) gpu=1 task gets CUDA_VISIBLE_DEVICES and CUDA",
              info.get("CUDA_VISIBLE_DEVICES") == "0" and info.get("cuda_available") is True, info)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        logs = [(a["stdout"][-1500:], a["stderr"][-3000:]) for a in client.get_logs(run_id)]
        check("a sandboxed (subprocess) gpu=1 task gets CUDA_VISIBLE_DEVICES and CUDA", False,
              {"error": repr(exc)[:500], "logs": logs})

    wf = client.create_workflow("gpu-half")
    wf.add_task(half_gpu, name="a")
    wf.add_task(half_gpu, name="b")
    run_id = wf.run()
    wf.get_results(run_id, timeout=300)
    spans = [t.outputs["span"] for t in wf.get_task_results(run_id).values()]
    check("two gpu=0.5 tasks share the GPU at once", overlap(spans) == 2, spans)

    wf = client.create_workflow("gpu-mem")
    for i in range(3):
        wf.add_task(sixty_gb, name=f"m{i}")
    run_id = wf.run()
    wf.get_results(run_id, timeout=300)
    spans = [t.outputs["span"] for t in wf.get_task_results(run_id).values()]
    total = max(g["memory_total_mb"] for g in gpus) if gpus else 0
    expected = max(1, total // 60_000)
    check(f"gpu_memory=60000 admission: at most {expected} at once on a {total} MB GPU",
          overlap(spans) == min(3, expected), spans)

    @task(outputs=["x"], gpu_memory=10_000_000)
    def too_big(params):
        return {"x": 1}

    wf = client.create_workflow("gpu-too-big")
    wf.add_task(too_big)
    started = time.monotonic()
    try:
        wf.get_results(wf.run(), timeout=60)
        check("impossible GPU memory fails at once", False, "it ran")
    except ResourceUnavailable as exc:
        check("impossible GPU memory fails at once", time.monotonic() - started < 10, str(exc).splitlines()[0])
    print(f"{failures} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
