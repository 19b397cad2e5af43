"""Client SDK: ``@task``, workflows, and the sync and async clients."""

from lattice.client.aio import AsyncLatticeClient
from lattice.client.base import TaskResult
from lattice.client.client import LatticeClient
from lattice.client.task import TaskDefinition, task
from lattice.client.workflow import AsyncLatticeWorkflow, LatticeWorkflow, OutputRef, TaskHandle

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
