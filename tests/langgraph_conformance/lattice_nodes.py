"""Pytest plugin: every plain-function node and callable object given to ``StateGraph.add_node`` runs on Lattice.

Loaded into LangGraph's own test suite (``-p lattice_nodes``, see ``run.py``): each such node is wrapped
with ``LangGraphClient.task(cpu=0)`` against one real head for the whole session, so the suite checks that
a graph behaves the same with its nodes on Lattice. Runnables, compiled graphs and functional-API
``@task``/``@entrypoint`` objects stay as they are: they are not nodes a user would decorate.

The head is the one named by ``LATTICE_CONFORMANCE_URL``/``LATTICE_CONFORMANCE_TOKEN`` (the runner starts
one for all xdist workers); without them the plugin starts its own and stops it at the end.
"""

from __future__ import annotations

import atexit
import importlib.util
import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable
from langgraph.graph.state import StateGraph

from lattice.client.langgraph import LangGraphClient

_ORIGINAL_ADD_NODE = StateGraph.add_node
_state: dict[str, Any] = {}


def _headproc() -> Any:
    """``tests/headproc.py`` by path: LangGraph's suite owns the package name ``tests`` in this process."""
    path = Path(__file__).resolve().parents[1] / "headproc.py"
    spec = importlib.util.spec_from_file_location("lattice_test_headproc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _client() -> LangGraphClient:
    if "client" not in _state:
        url, token = os.environ.get("LATTICE_CONFORMANCE_URL"), os.environ.get("LATTICE_CONFORMANCE_TOKEN")
        if not url:
            head = _headproc().HeadProcess(Path(tempfile.mkdtemp(prefix="lattice-conformance-"))).start()
            atexit.register(head.stop)
            url, token = head.url, head.token
        client = LangGraphClient(url, token=token, graph="langgraph-conformance")
        atexit.register(client.close)
        _state["client"] = client
    return _state["client"]


def _wrappable(action: Any) -> bool:
    """A plain function, bound method or callable object: what a user hands ``add_node`` and would decorate."""
    if action is None or isinstance(action, (str, Runnable, type)):
        return False
    if getattr(action, "lattice_node", None) is not None:
        return False
    if inspect.isfunction(action) or inspect.ismethod(action):
        return True
    return callable(action) and not inspect.isbuiltin(action)


def _add_node(self: StateGraph, node: Any, action: Any = None, **kwargs: Any) -> Any:
    if isinstance(node, str):
        if _wrappable(action):
            action = _client().task(cpu=0)(action)
        return _ORIGINAL_ADD_NODE(self, node, action, **kwargs)
    if _wrappable(node):
        node = _client().task(cpu=0)(node)
    return _ORIGINAL_ADD_NODE(self, node, action, **kwargs)


def pytest_configure(config: Any) -> None:
    StateGraph.add_node = _add_node  # type: ignore[method-assign]


def pytest_unconfigure(config: Any) -> None:
    StateGraph.add_node = _ORIGINAL_ADD_NODE  # type: ignore[method-assign]
