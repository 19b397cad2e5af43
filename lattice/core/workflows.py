"""Registered workflows: validated once, kept in memory, rebuilt from the store after a restart.

A :class:`WorkflowEntry` holds what every run of a workflow shares: the validated spec and graph, each
task's literal inputs already encoded, its sandbox level, and a key per distinct function (so its bytes go
to Ray's object store once). The registry owns that cache; the orchestrator only reads it.

The builtin task names a spec may use are data handed in (:data:`lattice.wire.attempt.BUILTIN_NAMES` by
default), so core checks specs without importing the executor that implements the builtins.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from lattice.core.dag import Graph, SpecError, build_graph
from lattice.core.errors import NotFound
from lattice.core.store import Store
from lattice.wire.attempt import BUILTIN_NAMES
from lattice.wire.encoding import from_wire
from lattice.wire.sandbox import SandboxLevel
from lattice.wire.spec import TaskSpec, WorkflowSpec


@dataclass
class WorkflowEntry:
    workflow_id: str
    spec: WorkflowSpec
    graph: Graph
    tasks: dict[str, TaskSpec]
    literals: dict[str, dict[str, tuple[str, bytes]]]
    code_keys: dict[str, str]
    fn_refs: dict[str, Any] = field(default_factory=dict)
    #: each task's sandbox level: its own, or the head's default
    levels: dict[str, SandboxLevel] = field(default_factory=dict)
    #: per task, what every attempt's payload shares (``lattice.core.runs.attempt_payload`` fills it on the
    #: first attempt): the same for every run and attempt, so it is worked out once, not per attempt
    payload_parts: dict[str, Any] = field(default_factory=dict)
    #: the tenant that owns it (None: the admin), so a run's submit checks ownership without a store read
    tenant: str | None = None


class WorkflowRegistry:
    def __init__(self, store: Store, default_sandbox: str = "none", min_sandbox: str = "none",
                 builtins: Collection[str] = BUILTIN_NAMES) -> None:
        self.store = store
        self.default_sandbox = default_sandbox
        self.min_sandbox = min_sandbox
        self.builtins = frozenset(builtins)
        self.workflows: dict[str, WorkflowEntry] = {}

    def register(self, spec: WorkflowSpec, tenant: str | None = None) -> str:
        """Keep a validated spec under a new id, owned by ``tenant`` (None: the admin)."""
        entry = self.build(uuid.uuid4().hex, spec)
        self.store.create_workflow(entry.workflow_id, spec.name, stored_spec(spec), tenant)
        entry.tenant = tenant
        self.workflows[entry.workflow_id] = entry
        return entry.workflow_id

    def build(self, workflow_id: str, spec: WorkflowSpec) -> WorkflowEntry:
        """Validate a spec (graph, sandbox levels, code, literals) into what runs are made from."""
        graph = build_graph(spec, set(self.builtins))
        literals: dict[str, dict[str, tuple[str, bytes]]] = {}
        levels: dict[str, SandboxLevel] = {}
        for index, task in enumerate(spec.tasks):
            level_name = task.sandbox or self.default_sandbox
            try:
                level = SandboxLevel(level_name)  # exactly a level's name, as the spec's contract says
            except ValueError:
                raise SpecError(f"unknown sandbox level {level_name!r}", f"tasks[{index}].sandbox",
                                f"one of {SandboxLevel.names()}") from None
            levels[task.name] = level
            if not level.at_least(self.min_sandbox):
                raise SpecError(
                    f"task {task.name!r} asks for sandbox {level_name!r}, weaker than this head's minimum "
                    f"{self.min_sandbox!r}", f"tasks[{index}].sandbox",
                    f"use {self.min_sandbox!r} or a stricter level")
            if task.code is not None:
                try:
                    base64.b64decode(task.code.pickle, validate=True)
                except ValueError as exc:
                    raise SpecError("code.pickle is not valid base64", f"tasks[{index}].code.pickle") from exc
            literals[task.name] = {}
            for name, item in task.inputs.items():
                if item.is_reference:
                    continue
                try:
                    encoding, data = from_wire(item.model_dump(exclude_unset=True))
                except ValueError as exc:
                    raise SpecError(f"input {name!r} is not valid: {exc}",
                                    f"tasks[{index}].inputs.{name}") from exc
                literals[task.name][name] = (str(encoding), data)
        for key, code in spec.code.items():
            try:
                base64.b64decode(code.pickle, validate=True)
            except ValueError as exc:
                raise SpecError("code.pickle is not valid base64", f"code.{key}.pickle") from exc
        # a task naming its function in the code table runs as if its code were inline: the same CodeSpec
        # object for every task of that function (no copy of its bytes per task)
        tasks = {t.name: t if t.code_ref is None else t.model_copy(update={"code": spec.code[t.code_ref]})
                 for t in spec.tasks}
        # keyed by workflow too: two workflows whose functions pickle alike (identical closures of separate
        # graphs) must not share one unpickled function, and with it its state, on a worker
        digests: dict[int, str] = {}  # per distinct CodeSpec object: a fan-out hashes its function once
        code_keys = {}
        for t in tasks.values():
            if t.code is not None:
                digest = digests.get(id(t.code))
                if digest is None:
                    digest = digests[id(t.code)] = hashlib.sha1(f"{workflow_id}:{t.code.pickle}".encode()).hexdigest()
                code_keys[t.name] = digest
        return WorkflowEntry(workflow_id, spec, graph, tasks, literals, code_keys, levels=levels)

    def get(self, workflow_id: str) -> WorkflowEntry:
        """A workflow from the cache, else from the store (after a restart)."""
        entry = self.workflows.get(workflow_id)
        if entry is not None:
            return entry
        row = self.store.get_workflow(workflow_id)
        if row is None:
            raise NotFound("workflow", workflow_id)
        entry = self.build(workflow_id, WorkflowSpec.model_validate(row["spec"]))
        entry.tenant = row.get("tenant")
        self.workflows[workflow_id] = entry
        return entry

    def owner(self, workflow_id: str) -> tuple[bool, str | None]:
        """Whether the workflow exists, and its tenant: from the cache (workflows are never deleted or
        re-owned, so a cached entry is the store's answer), else one read of its row."""
        entry = self.workflows.get(workflow_id)
        if entry is not None:
            return True, entry.tenant
        row = self.store.get_workflow(workflow_id)
        return (False, None) if row is None else (True, row.get("tenant"))

    @staticmethod
    def run_literals(entry: WorkflowEntry,
                      overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, tuple[str, bytes]]]:
        """The workflow's literal inputs with this run's values in place of the ones it overrides."""
        if not overrides:
            return entry.literals
        literals = dict(entry.literals)
        for task, values in overrides.items():
            if task not in entry.tasks:
                raise SpecError(f"the workflow has no task {task!r}", f"inputs.{task}",
                                f"its tasks are {sorted(entry.tasks)[:20]}")
            merged = dict(literals[task])
            for name, item in values.items():
                if name not in merged:
                    kind = "a reference" if name in entry.tasks[task].inputs else "not an input"
                    raise SpecError(f"input {name!r} of task {task!r} is {kind}; only literal inputs can be "
                                    "given per run", f"inputs.{task}.{name}")
                try:
                    encoding, data = from_wire(item)
                except (ValueError, KeyError) as exc:
                    raise SpecError(f"input {name!r} is not valid: {exc}", f"inputs.{task}.{name}") from exc
                merged[name] = (str(encoding), data)
            literals[task] = merged
        return literals


def stored_spec(spec: WorkflowSpec) -> dict[str, Any]:
    """The spec as submitted (fields left unset stay unset), so it validates again after a restart."""
    return spec.model_dump(mode="json", exclude_unset=True)
