"""What the sandbox's zygote holds: every module and fd it has is copied into two forks per task.

Not timing (that is bench/bench_sandbox.py): the zygote's import set and the Landlock base rules it
resolves once, which a launcher must drop before its task starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lattice
from lattice.executor.sandbox import landlock


def test_zygote_imports_no_pydantic_nor_the_llm_wire() -> None:
    """pydantic (via lattice.wire.llm for one port number) doubled the zygote's modules (177 -> 265) and
    grew its resident memory by ~10 MB: each fork copied it and each task paid its copy-on-write faults."""
    code = (
        "import json, sys; import lattice.executor.sandbox.child, lattice.executor.sandbox.zygote; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(lattice.__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": root})
    modules = set(json.loads(out.stdout))
    assert not {m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core", "httpx", "ray")}
    assert "lattice.wire.llm" not in modules and "lattice.wire.ports" in modules


def test_port_is_the_one_the_llm_wire_names() -> None:
    from lattice.wire.llm import SANDBOX_POOL_PORT, sandbox_base_url
    from lattice.wire.ports import SANDBOX_POOL_PORT as PORT

    assert SANDBOX_POOL_PORT == PORT and f":{PORT}/" in sandbox_base_url("m")


def test_resolve_gives_files_their_file_only_rights(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    rules = landlock.resolve([str(tmp_path), str(tmp_path / "f"), str(tmp_path / "missing")], landlock.READ)
    try:
        assert len(rules) == 2
        (_, dir_rights), (_, file_rights) = rules
        assert dir_rights == landlock.READ
        assert file_rights == landlock.READ & landlock.FILE_ONLY and not file_rights & landlock.READ_DIR
    finally:
        landlock.close_rules(rules)


def test_warm_rules_are_released_with_their_fds() -> None:
    before = set(os.listdir("/proc/self/fd"))
    landlock.warm()
    try:
        held = set(os.listdir("/proc/self/fd")) - before
        assert len(held) >= 5  # /usr, /etc entries, devices: each an O_PATH fd
    finally:
        landlock.release()
    assert set(os.listdir("/proc/self/fd")) == before
