"""Lattice: a distributed runtime for LLM-agent workflows on Ray."""

from __future__ import annotations

__version__ = "0.1.0"

from lattice.errors import (
    APIError,
    AuthenticationError,
    HeadUnavailable,
    HeadUnavailableError,
    LatticeError,
    MemoryExceeded,
    NotFoundError,
    OutputError,
    ResourceUnavailable,
    RunCancelled,
    RunFailed,
    SandboxViolation,
    TaskDefinitionError,
    TaskFailed,
    TaskKilled,
    TaskTimeout,
    UntrustedOutputError,
    WaitTimeout,
    WorkflowError,
)
from lattice.utils.lazy import lazy_exports

_LAZY = {
    "task": "lattice.client.task",
    "TaskDefinition": "lattice.client.task",
    "LatticeClient": "lattice.client.client",
    "AsyncLatticeClient": "lattice.client.aio",
    "LatticeWorkflow": "lattice.client.workflow",
    "LangGraphClient": "lattice.client.langgraph",
    "current_task": "lattice.wire.context",
    "NonRetryable": "lattice.errors",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "APIError",
    "AsyncLatticeClient",
    "AuthenticationError",
    "HeadUnavailable",
    "HeadUnavailableError",
    "LangGraphClient",
    "LatticeClient",
    "LatticeError",
    "LatticeWorkflow",
    "MemoryExceeded",
    "NonRetryable",
    "NotFoundError",
    "OutputError",
    "ResourceUnavailable",
    "RunCancelled",
    "RunFailed",
    "SandboxViolation",
    "TaskDefinition",
    "TaskDefinitionError",
    "TaskFailed",
    "TaskKilled",
    "TaskTimeout",
    "UntrustedOutputError",
    "WaitTimeout",
    "WorkflowError",
    "__version__",
    "current_task",
    "task",
]
