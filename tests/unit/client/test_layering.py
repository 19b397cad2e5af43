"""The client core's shape, checked on its source: each thing has one home.

* an endpoint's path is written only in ``endpoints.py`` (so the clients cannot ask different things);
* httpx is imported only by ``transport.py``, ``urllib.request`` only by ``worker_http.py``, websockets only where
  a stream's socket is read (so every request gets the same auth and error handling);
* nothing under ``lattice.client`` reaches the head's code (``lattice.api``, ``core``, ``executor``,
  ``cli``), also not transitively (pyproject's import-linter contract says so statically).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lattice.client

CLIENT = Path(lattice.client.__file__).parent
LIBRARIES = {"httpx": {"transport.py"}, "urllib.request": {"worker_http.py"}, "urllib.error": {"worker_http.py"},
             "websockets": {"client.py", "aio.py", "base.py"}}


def modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(CLIENT)): ast.parse(path.read_text()) for path in sorted(CLIENT.rglob("*.py"))}


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_paths_are_written_only_in_endpoints() -> None:
    for name, tree in modules().items():
        if name == "endpoints.py":
            continue
        literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                    and isinstance(node.value, str) and node.value.startswith(("/api/", "/health"))]
        formatted = [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) and node.values
                     and isinstance(node.values[0], ast.Constant) and str(node.values[0].value).startswith("/api/")]
        assert not literals and not formatted, f"{name} writes a head path; describe it in endpoints.py"


def test_each_io_library_has_one_home() -> None:
    for name, tree in modules().items():
        for library, homes in LIBRARIES.items():
            uses = any(module == library or module.startswith(f"{library}.") for module in imported(tree))
            assert not uses or name in homes, f"{name} imports {library}; only {sorted(homes)} may"


def test_the_client_imports_nothing_of_the_head() -> None:
    names = sorted("lattice.client." + str(path.relative_to(CLIENT).with_suffix("")).replace("/", ".")
                   .removesuffix(".__init__") for path in CLIENT.rglob("*.py"))
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['lattice', 'api'], ['lattice', 'core'], ['lattice', 'executor'], ['lattice', 'cli']))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
