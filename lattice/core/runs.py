"""The live state of a run and its tasks, as the orchestrator holds it, and how it is rebuilt from the
store when a head starts again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lattice.core.states import RunState, TaskState
from lattice.core.store import Store
from lattice.core.workflows import WorkflowEntry, WorkflowRegistry
from lattice.wire.spec import TaskSpec


@dataclass
class TaskRun:
    spec: TaskSpec
    state: TaskState
    waiting_on: int
    attempt: int = 0
    attempt_id: str | None = None
    node_id: str | None = None
    ref: Any = None
    killable: bool = False
    timer: asyncio.TimerHandle | None = None
    enqueued_at: float = 0.0
    dispatched_node: str | None = None


@dataclass
class RunExec:
    run_id: str
    workflow: WorkflowEntry
    priority: int
    state: RunState
    tasks: dict[str, TaskRun]
    literals: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    seq: int = 0
    active: int = 0
    failed_task: str | None = None
    error: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def load_unfinished_run(store: Store, registry: WorkflowRegistry, put: Callable[[Any], Any],
                        run_id: str) -> tuple[RunExec, list[str]]:
    """Rebuild a run a previous head left unfinished.

    Succeeded tasks keep their stored outputs (put back into Ray for their downstream tasks); every task
    that had not finished goes back to ``pending``, its attempt count kept so new attempt ids stay
    unique. Returns the run and the names of the tasks reset.
    """
    row = store.get_run(run_id)
    assert row is not None
    entry = registry.get(row["workflow_id"])
    stored = {t["name"]: t for t in store.get_tasks(run_id)}
    blobs = store.get_blobs(run_id)
    tasks: dict[str, TaskRun] = {}
    for name in entry.graph.order:
        srow = stored.get(name, {})
        state = TaskState(srow.get("state", TaskState.PENDING))
        task = TaskRun(spec=entry.tasks[name], state=state, waiting_on=0, attempt=int(srow.get("attempt") or 0))
        if state is TaskState.SUCCEEDED:
            task.ref = put({"outputs": blobs.get(name, {})})
        tasks[name] = task
    run = RunExec(run_id, entry, int(row["priority"]), RunState.RUNNING, tasks,
                  literals=registry.run_literals(entry, row.get("inputs") or {}), seq=store.last_event_seq(run_id))
    run.failed_task = row.get("failed_task")
    run.error = row.get("error")
    reset: list[str] = []
    for name, task in tasks.items():
        if task.state.terminal:
            continue
        run.active += 1
        task.waiting_on = sum(1 for u in entry.graph.upstream[name] if tasks[u].state is not TaskState.SUCCEEDED)
        if task.state is not TaskState.PENDING:
            task.state = TaskState.PENDING
            reset.append(name)
    return run, reset


def attempt_payload(run: RunExec, name: str, attempt_id: str, upstream_names: list[str], level: str,
                    settings: Any) -> dict[str, Any]:
    """What an attempt carries to the executor: plain data only (names, encoded literals, limits).

    ``refs`` maps an input to (position among the upstream arguments, output name): Ray resolves the
    upstream envelopes and passes them in that order.
    """
    spec = run.workflow.tasks[name]
    index = {u: i for i, u in enumerate(upstream_names)}
    return {
        "run_id": run.run_id, "task": name, "attempt_id": attempt_id,
        "fn_key": run.workflow.code_keys.get(name), "builtin": spec.builtin,
        "outputs": list(spec.outputs), "literals": run.literals[name],
        "refs": {k: (index[v.task], v.output) for k, v in spec.inputs.items() if v.is_reference},
        "sandbox": sandbox_config(spec, level, settings.sandbox_defaults),
        "env": {"LATTICE_RUN_ID": run.run_id, "LATTICE_TASK": name, "LATTICE_ATTEMPT_ID": attempt_id},
        "max_output_bytes": settings.max_output_bytes,
        "log_limit": settings.log_limit_bytes,
    }


def sandbox_config(spec: TaskSpec, level: str, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """The head's sandbox limits, overridden by the task's own timeout, memory and network."""
    if level == "none":
        return None
    config = dict(defaults)
    config["level"] = level
    if spec.timeout is not None:
        config["timeout"] = spec.timeout
    if spec.resources.memory:
        config["max_memory_mb"] = spec.resources.memory
    if spec.network is not None:
        config["network"] = spec.network
    return config
