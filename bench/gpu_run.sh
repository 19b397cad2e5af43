#!/usr/bin/env bash
# What the GPU machine runs (see docs/benchmarks/gpu.md): unpack the bundle, start a head, run the checks
# and the core benchmark, stop the head. Expects the carry bundle in .device (../shared/tools/device-bundle).
set -u
mkdir -p /tmp/site && tar -xJf .device/ray.tar.xz -C /tmp/site \
  && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl/*.whl \
  || { echo "bundle install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD LATTICE_HOME=/tmp/lattice-home PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import ray, torch; print('ray', ray.__version__, 'torch', torch.__version__)"
python3 - <<'PY'
import cloudpickle
from lattice.executor.sandbox import SandboxConfig, capabilities, execute
print("sandbox capabilities:", capabilities())
def probe(params):
    import os
    out = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    import torch
    out["cuda"] = torch.cuda.is_available()
    return {"out": out}
for level in ("subprocess", "seccomp"):
    o = execute(cloudpickle.dumps(probe), {}, ["out"], SandboxConfig(level=level, timeout=120), env={"CUDA_VISIBLE_DEVICES": "0"})
    print(level, o.result.outputs or o.result.error, "stderr:", o.stderr[-2000:])
PY
python3 -m lattice.cli.main start --head --block --port 8000 > "$OUT/head.log" 2>&1 &
HEAD=$!
for i in $(seq 1 120); do python3 -c "import httpx; httpx.get('http://127.0.0.1:8000/health').raise_for_status()" 2>/dev/null && break; sleep 0.5; done
echo "head up after ~$((i / 2)) s"
timeout 240 python3 bench/gpu_check.py --url http://127.0.0.1:8000; rc=$?
kill -TERM $HEAD; wait $HEAD
[ "${SKIP_BENCH:-}" ] || { timeout 240 python3 bench/bench_core.py --out "$OUT" > "$OUT/bench.log" 2>&1 && cat "$OUT/core.md" || tail -20 "$OUT/bench.log"; }
cp /tmp/lattice-home/logs/ray-head.log "$OUT/" 2>/dev/null
exit $rc
