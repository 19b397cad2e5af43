"""Registered workflows: validated once, kept in memory, rebuilt from the store after a restart.

A :class:`WorkflowEntry` holds what every run of a workflow shares: the validated spec and graph, each
task's literal inputs already encoded, its sandbox level, and a key per distinct function (so its bytes go
to Ray's object store once). The registry owns that cache; the orchestrator only reads it.

Making an entry is the heavy part of registering a big workflow (a 100,000-task spec is seconds of CPU:
parsing, validation, the graph): :meth:`WorkflowRegistry.create` and :meth:`WorkflowRegistry.load` do it
without touching the cache, so the head runs them on a worker thread and only :meth:`WorkflowRegistry.add`
(a dict insert) on its event loop.

The builtin task names a spec may use are data handed in (:data:`lattice.wire.attempt.BUILTIN_NAMES` by
default), so core checks specs without importing the executor that implements the builtins.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from lattice.core.dag import Graph, SpecError, build_graph
from lattice.core.errors import NotFound
from lattice.core.results import shared_outputs
from lattice.core.store import Store
from lattice.wire.attempt import BUILTIN_NAMES
from lattice.wire.encoding import Encoding, from_wire
from lattice.wire.sandbox import SandboxLevel
from lattice.wire.spec import CodeSpec, InputSpec, TaskSpec, WorkflowSpec


@dataclass
class WorkflowEntry:
    workflow_id: str
    spec: WorkflowSpec
    graph: Graph
    #: each task's spec by name, as submitted: a task naming its function in the code table keeps its
    #: ``code_ref`` (:meth:`code_of` finds the code), so a fan-out holds no copy of a task per function
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
    #: output names more than one sink declares (``task.output`` in every results page), worked out once
    shared_outputs: frozenset[str] = frozenset()

    def code_of(self, name: str) -> CodeSpec | None:
        """The task's function (inline or from the workflow's code table); None for a builtin."""
        return self.spec.code_of(self.tasks[name])


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
        self.add(entry)
        return entry.workflow_id

    def create(self, body: bytes | str, tenant: str | None = None) -> WorkflowEntry:
        """A submitted spec (the request's JSON text) parsed, validated, built and committed to the store
        under a new id, not yet in the cache (:meth:`add` it). Touches no state of the registry, so it may
        run on a worker thread. Raises ``pydantic.ValidationError`` for a bad shape, :class:`SpecError`
        for a bad graph. The text is stored as submitted: it validated, so it validates again after a
        restart, and dumping the model back would cost as much as the parse (a 100,000-task spec: ~1 s)."""
        spec = WorkflowSpec.model_validate_json(body)
        entry = self.build(uuid.uuid4().hex, spec)
        text = body.decode() if isinstance(body, bytes) else body
        self.store.create_workflow(entry.workflow_id, spec.name, text, tenant)
        entry.tenant = tenant
        return entry

    def add(self, entry: WorkflowEntry) -> None:
        """Put an entry that :meth:`create` or :meth:`load` made into the cache (on the loop)."""
        self.workflows.setdefault(entry.workflow_id, entry)

    def build(self, workflow_id: str, spec: WorkflowSpec) -> WorkflowEntry:
        """Validate a spec (graph, sandbox levels, code, literals) into what runs are made from.

        Work per task is kept to what differs per task: a sandbox level is parsed and checked once per
        distinct name, a function's base64 once per distinct text, and a task naming the code table is
        not copied (a 100,000-task fan-out of one function: one check of its code, no copies)."""
        graph = build_graph(spec, set(self.builtins))
        literals: dict[str, dict[str, tuple[str, bytes]]] = {}
        levels: dict[str, SandboxLevel] = {}
        level_of: dict[str | None, SandboxLevel] = {}  # per distinct ``sandbox`` value
        checked_code: set[str] = set()  # pickles already checked to be base64 (an inline fan-out repeats one)
        for index, task in enumerate(spec.tasks):
            level = level_of.get(task.sandbox)
            if level is None:
                level = level_of[task.sandbox] = self._level(task.sandbox, f"tasks[{index}]", task.name)
            levels[task.name] = level
            if task.code is not None and task.code.pickle not in checked_code:
                _check_base64(task.code, f"tasks[{index}].code.pickle")
                checked_code.add(task.code.pickle)
            task_literals: dict[str, tuple[str, bytes]] = {}
            for name, item in task.inputs.items():
                if not item.is_reference:
                    task_literals[name] = _literal(item, f"tasks[{index}].inputs.{name}", name)
            literals[task.name] = task_literals
        for key, code in spec.code.items():
            _check_base64(code, f"code.{key}.pickle")
        tasks = {t.name: t for t in spec.tasks}
        # keyed by workflow too: two workflows whose functions pickle alike (identical closures of separate
        # graphs) must not share one unpickled function, and with it its state, on a worker
        digests: dict[int, str] = {}  # per distinct CodeSpec object: a fan-out hashes its function once
        code_keys = {}
        for t in spec.tasks:
            code = spec.code_of(t)
            if code is not None:
                digest = digests.get(id(code))
                if digest is None:
                    digest = digests[id(code)] = hashlib.sha1(f"{workflow_id}:{code.pickle}".encode()).hexdigest()
                code_keys[t.name] = digest
        shared = shared_outputs(graph.sinks, {name: tuple(tasks[name].outputs) for name in graph.sinks})
        return WorkflowEntry(workflow_id, spec, graph, tasks, literals, code_keys, levels=levels,
                             shared_outputs=shared)

    def _level(self, name: str | None, where: str, task: str) -> SandboxLevel:
        level_name = name or self.default_sandbox
        try:
            level = SandboxLevel(level_name)  # exactly a level's name, as the spec's contract says
        except ValueError:
            raise SpecError(f"unknown sandbox level {level_name!r}", f"{where}.sandbox",
                            f"one of {SandboxLevel.names()}") from None
        if not level.at_least(self.min_sandbox):
            raise SpecError(
                f"task {task!r} asks for sandbox {level_name!r}, weaker than this head's minimum "
                f"{self.min_sandbox!r}", f"{where}.sandbox", f"use {self.min_sandbox!r} or a stricter level")
        return level

    def get(self, workflow_id: str) -> WorkflowEntry:
        """A workflow from the cache, else from the store (after a restart)."""
        entry = self.workflows.get(workflow_id)
        if entry is None:
            entry = self.load(workflow_id)
            self.add(entry)
        return self.workflows[workflow_id]

    def load(self, workflow_id: str) -> WorkflowEntry:
        """A stored workflow rebuilt from its row (after a restart), not put in the cache: like
        :meth:`create`, safe on a worker thread. Raises :class:`NotFound` for an unknown id."""
        row = self.store.get_workflow(workflow_id)
        if row is None:
            raise NotFound("workflow", workflow_id)
        entry = self.build(workflow_id, WorkflowSpec.model_validate(row["spec"]))
        entry.tenant = row.get("tenant")
        return entry

    def owner(self, workflow_id: str) -> tuple[bool, str | None]:
        """Whether the workflow exists, and its tenant: from the cache (workflows are never deleted or
        re-owned, so a cached entry is the store's answer), else one read of its row."""
        entry = self.workflows.get(workflow_id)
        if entry is not None:
            return True, entry.tenant
        row = self.store.get_workflow(workflow_id, spec=False)
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


@dataclass(frozen=True, slots=True)
class SpecPage:
    """One page of a registered workflow's spec (``GET /workflows/{id}?after=&limit=``)."""

    #: the spec's own fields, the code-table entries this page's tasks name, and this page's tasks
    spec: dict[str, Any]
    #: this page's tasks in the graph's topological order (the pages together: the whole order)
    tasks: tuple[str, ...]
    #: the sinks among them, in topological order (the pages together: every sink)
    sinks: tuple[str, ...]
    #: where the next page starts, or None after the last one
    next_after: int | None


def spec_page(entry: WorkflowEntry, after: int, limit: int) -> SpecPage:
    """Tasks ``after`` to ``after + limit`` of the workflow's topological order, with their specs as stored
    (fields left unset stay unset; code by reference where the spec has a code table), so a 100,000-task
    spec is read a bounded page at a time, and its functions once each, not once per task."""
    names = entry.graph.order[after:after + limit]
    tasks = [entry.tasks[name] for name in names]
    spec = entry.spec.model_dump(mode="json", exclude_unset=True, exclude={"tasks", "code"})
    named = {task.code_ref for task in tasks if task.code_ref is not None}
    if named:
        spec["code"] = {key: code.model_dump(mode="json", exclude_unset=True)
                        for key, code in entry.spec.code.items() if key in named}
    spec["tasks"] = [task.model_dump(mode="json", exclude_unset=True) for task in tasks]
    end = after + limit
    return SpecPage(spec=spec, tasks=names, sinks=tuple(n for n in names if not entry.graph.downstream[n]),
                    next_after=end if end < len(entry.graph.order) else None)


def _check_base64(code: CodeSpec, field: str) -> None:
    try:
        base64.b64decode(code.pickle, validate=True)
    except ValueError as exc:
        raise SpecError("code.pickle is not valid base64", field) from exc


def _literal(item: InputSpec, field: str, name: str) -> tuple[str, bytes]:
    """A literal input as the head keeps it, encoded once: what :func:`from_wire` makes of the item, read
    from the model's fields instead of a dump of it (one ``model_dump`` per literal was most of the cost)."""
    try:
        if item.encoding != Encoding.PICKLE:
            return str(Encoding.JSON), json.dumps(item.value, separators=(",", ":")).encode()
        encoding, data = from_wire({"encoding": item.encoding, "data": item.data})
    except ValueError as exc:
        raise SpecError(f"input {name!r} is not valid: {exc}", field) from exc
    return str(encoding), data


def stored_spec(spec: WorkflowSpec) -> dict[str, Any]:
    """The spec as submitted (fields left unset stay unset), so it validates again after a restart."""
    return spec.model_dump(mode="json", exclude_unset=True)
