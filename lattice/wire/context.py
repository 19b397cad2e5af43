"""Which run, task and attempt the code running now belongs to.

A task can ask (``lattice.current_task()``) to tag its own logs, to send ``custom`` events to its run,
or to name files per attempt. In-process (sandbox level ``none``, including the threaded I/O executor)
it is a context variable set around the call; in a sandbox child it comes from ``LATTICE_RUN_ID``,
``LATTICE_TASK`` and ``LATTICE_ATTEMPT_ID``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskContext:
    run_id: str
    task: str
    attempt_id: str


_current: ContextVar[TaskContext | None] = ContextVar("lattice_task", default=None)


def current_task() -> TaskContext | None:
    """The task being executed here, or None outside a Lattice task."""
    context = _current.get()
    if context is not None:
        return context
    run_id = os.environ.get("LATTICE_RUN_ID")
    if run_id:
        return TaskContext(run_id, os.environ.get("LATTICE_TASK", ""), os.environ.get("LATTICE_ATTEMPT_ID", ""))
    return None


@contextmanager
def task_context(context: TaskContext | None) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
