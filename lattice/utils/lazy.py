"""Lazy re-exports for package ``__init__`` modules (PEP 562 ``__getattr__``).

``import lattice`` must stay cheap (a task on a worker imports it; so does the CLI), so a package names
what it exports and from where, and the module is imported on first use. One helper, so the three
public packages (``lattice``, ``lattice.client``, ``lattice.client.langgraph``) behave alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any],
                 exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``exports`` comes from its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
