"""Run LangGraph nodes on a Lattice cluster: ``LangGraphClient`` and the ``LatticeSaver`` checkpointer.

Needs the ``langgraph`` extra (``pip install lattice-agent[langgraph]``). Both are imported on first
use (PEP 562): a worker that runs a node imports ``lattice.client.langgraph.remote`` only, not the
client, the checkpointer and their HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lattice.client.langgraph.checkpointer import LatticeSaver
    from lattice.client.langgraph.client import LangGraphClient

_LAZY = {"LangGraphClient": "lattice.client.langgraph.client", "LatticeSaver": "lattice.client.langgraph.checkpointer"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lattice.client.langgraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["LangGraphClient", "LatticeSaver"]
