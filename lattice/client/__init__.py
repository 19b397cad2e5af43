"""Client SDK: ``@task``, workflows, and the sync and async clients.

The clients are imported on first use (PEP 562), like ``lattice``'s own exports: a task on a worker
imports ``lattice.client.langgraph.remote`` or ``lattice.client.worker_http`` without paying for
httpx, rich and the clients it does not use. ``task`` is imported at once, because the submodule of
the same name would otherwise shadow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lattice.client.task import TaskDefinition, task
from lattice.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from lattice.client.aio import AsyncLatticeClient
    from lattice.client.client import LatticeClient
    from lattice.client.decoding import TaskResult
    from lattice.client.workflow import AsyncLatticeWorkflow, LatticeWorkflow, OutputRef, TaskHandle

_LAZY = {
    "AsyncLatticeClient": "lattice.client.aio",
    "AsyncLatticeWorkflow": "lattice.client.workflow",
    "LatticeClient": "lattice.client.client",
    "LatticeWorkflow": "lattice.client.workflow",
    "OutputRef": "lattice.client.workflow",
    "TaskHandle": "lattice.client.workflow",
    "TaskResult": "lattice.client.decoding",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "AsyncLatticeClient",
    "AsyncLatticeWorkflow",
    "LatticeClient",
    "LatticeWorkflow",
    "OutputRef",
    "TaskDefinition",
    "TaskHandle",
    "TaskResult",
    "task",
]
