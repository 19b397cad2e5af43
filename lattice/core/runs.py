"""The live state of a run as the orchestrator's loop holds it, the payload of an attempt, and how a run is
rebuilt from the store when a head starts again.

:class:`RunExec` is the algorithm's :class:`~lattice.core.algorithm.RunProgress` plus what only the loop
needs: the workflow (for payloads and function handles), the run's literal inputs, the event counter, the
waiters' event and the backend's handles of each task's last attempt. Extending the algorithm's record,
rather than wrapping it, keeps one object per run and plain attribute access on the per-task path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lattice.core.algorithm import RunProgress, TaskRun, restore_tasks
from lattice.core.finished import SinkOutputs
from lattice.core.states import RunState, TaskState
from lattice.core.store import Store
from lattice.core.workflows import WorkflowEntry, WorkflowRegistry
from lattice.wire.attempt import AttemptPayload, Encoded, Envelope
from lattice.wire.encoding import encode_value
from lattice.wire.llm import sandbox_base_url
from lattice.wire.sandbox import SandboxLevel
from lattice.wire.spec import TaskSpec

if TYPE_CHECKING:
    from lattice.core.orchestrator import OrchestratorSettings

__all__ = ["RunExec", "TaskRun", "attempt_payload", "load_unfinished_run", "sandbox_config"]


@dataclass(slots=True, kw_only=True)
class RunExec(RunProgress):
    workflow: WorkflowEntry
    #: each task's literal inputs, encoded: the workflow's, with this run's own values in their place
    literals: dict[str, dict[str, Encoded]] = field(default_factory=dict)
    #: sequence number of the run's last event (continues from the store after a restart)
    seq: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: task -> the backend's handle of its last attempt; a succeeded task's handle is what its downstream
    #: attempts receive (after a restart: its stored outputs, put back into the backend)
    refs: dict[str, Any] = field(default_factory=dict)
    #: its sinks' outputs as they succeed, for the results answer (``lattice.core.finished``); None for a
    #: run resumed after a restart, whose earlier outputs are only in the store
    sink_outputs: SinkOutputs | None = None


def new_run(run_id: str, entry: WorkflowEntry, priority: int, tasks: dict[str, TaskRun],
            literals: dict[str, dict[str, Encoded]], **values: Any) -> RunExec:
    return RunExec(run_id=run_id, graph=entry.graph, priority=priority, state=RunState.RUNNING, tasks=tasks,
                   workflow=entry, literals=literals, **values)


def load_unfinished_run(store: Store, registry: WorkflowRegistry, put: Callable[[Any], Any],
                        run_id: str) -> tuple[RunExec, list[str]]:
    """Rebuild a run a previous head left unfinished (see :func:`~lattice.core.algorithm.restore_tasks`).

    Succeeded tasks keep their stored outputs, put back into the backend for their downstream tasks.
    Returns the run and the names of the tasks reset to ``pending``.
    """
    row = store.get_run(run_id)
    assert row is not None
    entry = registry.get(row["workflow_id"])
    stored = {t["name"]: (t["state"], t.get("attempt") or 0, t.get("node_losses") or 0)
              for t in store.get_tasks(run_id)}
    tasks, active, reset = restore_tasks(entry.graph, entry.tasks, stored)
    run = new_run(run_id, entry, int(row["priority"]), tasks, registry.run_literals(entry, row.get("inputs") or {}),
                  seq=store.last_event_seq(run_id), active=active, failed_task=row.get("failed_task"),
                  error=row.get("error"))
    succeeded = [name for name, task in tasks.items() if task.state is TaskState.SUCCEEDED]
    if succeeded:
        blobs = store.get_blobs(run_id)
        for name in succeeded:
            run.refs[name] = put(Envelope(outputs=blobs.get(name, {})))
    return run, reset


@dataclass(frozen=True, slots=True)
class PayloadParts:
    """What every attempt of one task of a workflow carries alike, worked out on its first attempt.

    A fan-out's per-task cost on the head bounds its throughput: the refs index, the sandbox limits and
    the outputs tuple were rebuilt for every attempt, though they depend only on the spec and the head's
    settings (fixed for the head's life, as is the :class:`~lattice.core.workflows.WorkflowEntry` that
    keeps these)."""

    fn_key: str | None
    builtin: str | None
    outputs: tuple[str, ...]
    refs: dict[str, tuple[int, str]]
    sandbox: dict[str, Any] | None
    max_output_bytes: int
    log_limit: int


def payload_parts(entry: WorkflowEntry, name: str, upstream_names: list[str], level: SandboxLevel,
                  settings: OrchestratorSettings) -> PayloadParts:
    parts = entry.payload_parts.get(name)
    if parts is None:
        spec = entry.tasks[name]
        index = {u: i for i, u in enumerate(upstream_names)}
        parts = entry.payload_parts[name] = PayloadParts(
            fn_key=entry.code_keys.get(name), builtin=spec.builtin, outputs=tuple(spec.outputs),
            refs={k: (index[v.task], v.output) for k, v in spec.inputs.items() if v.is_reference},  # type: ignore[misc]
            sandbox=sandbox_config(spec, level, settings.sandbox_defaults),
            max_output_bytes=settings.max_output_bytes, log_limit=settings.log_limit_bytes)
    return parts


#: the levels whose tasks have no network unless they opt in (the executor's ``LevelProfile.network_off``;
#: a unit test keeps the two equal, since the core does not import the executor)
NETWORK_OFF_LEVELS = frozenset({str(SandboxLevel.SECCOMP), str(SandboxLevel.DOCKER)})


def attempt_payload(run: RunExec, name: str, attempt_id: str, upstream_names: list[str], level: SandboxLevel,
                    settings: OrchestratorSettings) -> AttemptPayload:
    """What an attempt carries to the executor: plain data only (names, encoded literals, limits).

    ``refs`` maps an input to (position among the upstream arguments, output name): the backend resolves
    the upstream envelopes and passes them in that order. ``upstream_names`` is the same sorted list for
    every attempt of the task (the graph's), so the positions are cached with the rest of its
    :class:`PayloadParts`; the payload itself is never mutated after it is built (``refs`` and ``sandbox``
    are shared between attempts).
    """
    spec = run.workflow.tasks[name]
    parts = payload_parts(run.workflow, name, upstream_names, level, settings)
    workspace = run_workspace(getattr(settings, "workspace_root", DEFAULT_WORKSPACE_ROOT), run.run_id)
    # a workspace builtin's sandbox may write its run's workspace, so its limits are the run's, not cached
    sandbox = (sandbox_config(spec, level, settings.sandbox_defaults, workspace)
               if spec.builtin in WORKSPACE_BUILTINS else parts.sandbox)
    literals, env = run.literals[name], {"LATTICE_RUN_ID": run.run_id, "LATTICE_TASK": name,
                                         "LATTICE_ATTEMPT_ID": attempt_id, "LATTICE_WORKSPACE": workspace}
    pools: dict[str, dict[str, str]] = {}
    if spec.llm and settings.llm_access is not None:  # fresh pool keys per attempt, scoped to this run
        access = settings.llm_access(run.run_id, tuple(spec.llm))
        if sandbox is not None and sandbox["level"] in NETWORK_OFF_LEVELS and not sandbox.get("network"):
            # no route to the head: the worker's gateway takes the requests; the task sees it on loopback
            pools = {alias: {"url": a["base_url"], "key": a["api_key"]} for alias, a in access.items()}
            access = {alias: {**a, "base_url": sandbox_base_url(alias)} for alias, a in access.items()}
        encoding, data = encode_value(access)
        literals = {**literals, "llm": (str(encoding), data)}
        first = access[spec.llm[0]]
        env.update(OPENAI_BASE_URL=first["base_url"], OPENAI_API_KEY=first["api_key"], OPENAI_MODEL=first["model"])
    return AttemptPayload(
        run_id=run.run_id, task=name, attempt_id=attempt_id, fn_key=parts.fn_key, builtin=parts.builtin,
        outputs=parts.outputs, literals=literals, refs=parts.refs, sandbox=sandbox, env=env,
        max_output_bytes=parts.max_output_bytes, log_limit=parts.log_limit,
        pools=pools,
    )


#: where each run's workspace lives on every node (``<root>/<run id>``), unless the head says otherwise
DEFAULT_WORKSPACE_ROOT = "/tmp/lattice-workspaces"
#: the builtins that read and write the run's workspace: their sandbox may write there (and only there)
WORKSPACE_BUILTINS = frozenset({"file_read", "file_write"})


def run_workspace(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{run_id}"


def sandbox_config(spec: TaskSpec, level: SandboxLevel | str, defaults: dict[str, Any],
                   workspace: str | None = None) -> dict[str, Any] | None:
    """The head's sandbox limits, overridden by the task's own timeout, memory and network; None at ``none``.
    A workspace builtin may also write the run's ``workspace``."""
    level = SandboxLevel.parse(level)
    if not level.sandboxed:
        return None
    config = dict(defaults)
    config["level"] = str(level)
    if workspace is not None and spec.builtin in WORKSPACE_BUILTINS:
        config["extra_write_paths"] = [*defaults.get("extra_write_paths", ()), workspace]
    if spec.timeout is not None:
        config["timeout"] = spec.timeout
    if spec.resources.memory:
        config["max_memory_mb"] = spec.resources.memory
    if spec.network is not None:
        config["network"] = spec.network
    return config
