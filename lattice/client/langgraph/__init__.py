"""Run LangGraph nodes on a Lattice cluster: ``LangGraphClient`` and the ``LatticeSaver`` checkpointer.

Needs the ``langgraph`` extra (``pip install lattice-agent[langgraph]``). Both are imported on first
use (PEP 562): a worker that runs a node imports ``lattice.client.langgraph.remote`` only, not the
client, the checkpointer and their HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lattice.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from lattice.client.langgraph.checkpointer import LatticeSaver
    from lattice.client.langgraph.client import LangGraphClient

_LAZY = {"LangGraphClient": "lattice.client.langgraph.client", "LatticeSaver": "lattice.client.langgraph.checkpointer"}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = ["LangGraphClient", "LatticeSaver"]
