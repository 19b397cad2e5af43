#!/usr/bin/env bash
# The wheel as a user gets it: build it, install it into a fresh venv OUTSIDE the source tree (so nothing
# is imported from the checkout), check it carries what the head needs at run time (the store's
# migrations, the web UI, py.typed), start a head from it, run the README's example against it, stop it.
#
# Catches what the editable install of the test suite cannot: a module or data file missing from the
# wheel, a dependency floor that is not true (the venv gets what pip resolves from pyproject.toml alone),
# an import of the source tree. Works on a clean machine that reaches PyPI; where pip is configured with a
# local wheel cache it uses that.
#
# Usage: bash .ci/wheel-smoke.sh [WORKDIR]   (WORKDIR defaults to a fresh temporary directory)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t lattice-wheel-smoke.XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work/" in "$src"/*) echo "wheel-smoke: WORKDIR must be outside the source tree" >&2; exit 2 ;; esac
python="${PYTHON:-python3}"
head_pid=""
# the wheel alone: nothing may reach the checkout through the environment (a developer's PYTHONPATH)
unset PYTHONPATH PYTHONHOME

cleanup() {
  if [ -n "$head_pid" ]; then
    "$work/venv/bin/lattice" stop --data-dir "$work/home" >/dev/null 2>&1 || kill "$head_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "wheel-smoke: building the wheel from $src"
rm -rf "$work/dist"
# --no-deps: only our wheel; --no-build-isolation is not used, so the build needs nothing but pip
"$python" -m pip wheel -q --no-deps -w "$work/dist" "$src"
wheel="$(ls "$work"/dist/lattice_agent-*.whl)"
echo "wheel-smoke: $wheel"

echo "wheel-smoke: checking the wheel's contents"
"$python" - "$wheel" <<'EOF'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
required = [
    "lattice/py.typed",
    "lattice/core/migrations/env.py",
    "lattice/core/migrations/script.py.mako",
    "lattice/cli/head.py",
    "lattice/cli/db.py",
    "lattice/web/dist/board.html",
    "lattice/web/dist/playground.html",
]
missing = [name for name in required if name not in names]
versions = [n for n in names if n.startswith("lattice/core/migrations/versions/") and n.endswith(".py")]
if len(versions) < 2:
    missing.append("lattice/core/migrations/versions/*.py (at least the baseline and runs.inputs)")
leaked = [n for n in names if n.startswith(("tests/", "bench/", "examples/"))]
if missing or leaked:
    sys.exit(f"wheel-smoke: missing from the wheel: {missing}; not meant to be in it: {leaked[:5]}")
print(f"wheel-smoke: wheel has {len(names)} files, {len(versions)} migration revisions")
EOF

echo "wheel-smoke: fresh venv in $work/venv"
rm -rf "$work/venv" "$work/home"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"

cd "$work"  # nothing of the checkout on sys.path from here on
"$work/venv/bin/python" - "$src" <<'EOF'
import sys

import lattice

src = sys.argv[1]
if lattice.__file__.startswith(src):
    sys.exit(f"wheel-smoke: lattice was imported from the source tree ({lattice.__file__})")
print(f"wheel-smoke: lattice {lattice.__version__} from {lattice.__file__}")
EOF

port="$("$work/venv/bin/python" -c 'from lattice.utils.net import free_port; print(free_port())')"
export LATTICE_HOME="$work/home"
echo "wheel-smoke: lattice db upgrade, then a head on 127.0.0.1:$port"
"$work/venv/bin/lattice" db upgrade --data-dir "$work/home"
"$work/venv/bin/lattice" db current --data-dir "$work/home"
"$work/venv/bin/lattice" start --head --port "$port" --data-dir "$work/home" --object-store-mb 256 --num-cpus 2
head_pid="$("$work/venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' \
  "$work/home/head.json")"

# The README's first Python example, verbatim but for the port.
"$python" - "$src/README.md" "$port" > "$work/readme_example.py" <<'EOF'
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
example = next(block for block in blocks if "LatticeClient" in block and "@task" in block)
print(example.replace("localhost:8000", f"127.0.0.1:{sys.argv[2]}"))
EOF
echo "wheel-smoke: the Board is served from the wheel (no Node), with every asset it names"
"$work/venv/bin/python" - "http://127.0.0.1:$port" <<'EOF'
import re
import sys

import httpx

page = httpx.get(f"{sys.argv[1]}/board", timeout=10)
assets = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', page.text)
bad = [a for a in assets if httpx.get(sys.argv[1] + a, timeout=10).status_code != 200]
if page.status_code != 200 or not assets or bad:
    sys.exit(f"wheel-smoke: /board answered {page.status_code}, assets {assets}, missing {bad}")
EOF
echo "wheel-smoke: running the README example"
out="$("$work/venv/bin/python" "$work/readme_example.py")"
echo "$out"
if [ "$out" != "{'result': 'Hello Lattice'}" ]; then
  echo "wheel-smoke: the README example printed the wrong thing" >&2
  exit 1
fi
"$work/venv/bin/lattice" stop --data-dir "$work/home"
head_pid=""
echo "wheel-smoke: ok"
