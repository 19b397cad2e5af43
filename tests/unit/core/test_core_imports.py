"""The layering of the head's core, checked from the source until import-linter contracts do it in CI.

Imports are read with ``ast`` and followed through Lattice's own modules (``TYPE_CHECKING`` imports count,
as they do for import-linter; importing a module does not count as importing its parent packages, also as
for import-linter). So a wrong arrow fails here, in a unit test, instead of waiting for a review.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import lattice

PACKAGE_ROOT = Path(lattice.__file__).resolve().parent.parent


def _file(module: str) -> Path | None:
    path = PACKAGE_ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


@cache
def direct_imports(module: str) -> frozenset[str]:
    path = _file(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:
                if base.startswith("lattice") and _file(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
    return frozenset(found)


def reachable(module: str) -> set[str]:
    """Every module ``module`` imports, directly or through Lattice's own modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in direct_imports(current):
            if name in seen:
                continue
            seen.add(name)
            if name.startswith("lattice") and _file(name) is not None:
                todo.append(name)
    return seen


def core_modules() -> list[str]:
    return sorted(f"lattice.core.{path.stem}" for path in (PACKAGE_ROOT / "lattice" / "core").glob("*.py")
                  if path.stem != "__init__")


@pytest.mark.parametrize("module", core_modules())
def test_core_never_imports_the_executor(module: str) -> None:
    assert not {name for name in reachable(module) if name.startswith("lattice.executor")}


@pytest.mark.parametrize("module", ["lattice.core.algorithm", "lattice.core.scheduler"])
def test_the_pure_parts_import_no_ray_no_asyncio_and_no_store(module: str) -> None:
    names = reachable(module)
    forbidden = {name for name in names
                 if name.split(".")[0] in ("ray", "asyncio") or name.startswith("lattice.core.store")}
    assert not forbidden, f"{module} reaches {sorted(forbidden)}"


def test_the_wire_imports_only_itself_of_lattice() -> None:
    for path in (PACKAGE_ROOT / "lattice" / "wire").glob("*.py"):
        module = "lattice.wire" if path.stem == "__init__" else f"lattice.wire.{path.stem}"
        own = {name for name in direct_imports(module) if name.split(".")[0] == "lattice"}
        assert all(name == "lattice.wire" or name.startswith("lattice.wire.") for name in own), (module, own)


def test_the_spec_builtins_are_the_executor_builtins() -> None:
    from lattice.executor.builtins import BUILTINS
    from lattice.wire.attempt import BUILTIN_NAMES

    assert set(BUILTINS) == BUILTIN_NAMES
