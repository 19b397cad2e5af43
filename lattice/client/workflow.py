"""Building a workflow on the client: tasks, the edges between them, and the spec sent to the head.

:class:`WorkflowBuilder` is pure (no I/O): it builds the spec, and describes registering and running
it as plans (:data:`~lattice.client.endpoints.Plan`); :class:`LatticeWorkflow` and
:class:`AsyncLatticeWorkflow` only drive those plans through a sync or an async client, and have the
same methods (``tests/unit/client/test_parity.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lattice.client import endpoints
from lattice.client.base import RESULT_POLL_S
from lattice.client.decoding import TaskResult
from lattice.client.endpoints import Plan
from lattice.client.finished import FinishedRuns
from lattice.client.task import TaskDefinition
from lattice.errors import WorkflowError
from lattice.wire.encoding import value_to_wire
from lattice.wire.spec import WORKFLOW_FORMAT

if TYPE_CHECKING:
    from lattice.client.aio import AsyncLatticeClient
    from lattice.client.client import LatticeClient


@dataclass(frozen=True)
class OutputRef:
    """A reference to one output of a task in a workflow: an edge of the DAG once used as an input."""

    workflow: WorkflowBuilder
    task: str
    output: str


class TaskOutputs(Mapping[str, OutputRef]):
    def __init__(self, handle: TaskHandle) -> None:
        self._handle = handle

    def __getitem__(self, name: str) -> OutputRef:
        declared = self._handle.definition.outputs
        if name not in declared:
            raise WorkflowError(
                f"task {self._handle.name!r} declares no output {name!r}; its outputs are {list(declared)}")
        return OutputRef(self._handle.workflow, self._handle.name, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._handle.definition.outputs)

    def __len__(self) -> int:
        return len(self._handle.definition.outputs)


@dataclass
class TaskHandle:
    """A task placed in a workflow; ``handle.outputs["x"]`` is an input for another task."""

    workflow: WorkflowBuilder
    name: str
    definition: TaskDefinition
    inputs: dict[str, Any]

    @property
    def outputs(self) -> TaskOutputs:
        return TaskOutputs(self)


class WorkflowBuilder:
    """The tasks of a workflow and the edges between them; knows when it must be registered again."""

    def __init__(self, name: str = "workflow") -> None:
        self.name = name
        self.tasks: dict[str, TaskHandle] = {}
        self._registered: tuple[str, str] | None = None  # (spec digest, workflow id)
        self._registered_version = -1
        self._version = 0  # bumped by add_task: a run re-registers only after the graph changed

    def add_task(self, fn: TaskDefinition, inputs: dict[str, Any] | None = None,
                 name: str | None = None) -> TaskHandle:
        """Add a task; an input is a literal value or another task's ``outputs["name"]``."""
        if not isinstance(fn, TaskDefinition):
            raise WorkflowError(
                f"add_task expects a function decorated with @task, got {fn!r}; "
                "decorate it with @task(inputs=[...], outputs=[...])")
        inputs = dict(inputs or {})
        unknown = sorted(set(inputs) - set(fn.inputs))
        if unknown:
            raise WorkflowError(f"task {fn.name!r} has no input(s) {unknown}; it declares {list(fn.inputs)}")
        missing = sorted(set(fn.inputs) - set(inputs))
        if missing:
            raise WorkflowError(f"task {fn.name!r} needs input(s) {missing}; pass them in inputs={{...}}")
        for key, value in inputs.items():
            if isinstance(value, OutputRef) and value.workflow is not self:
                raise WorkflowError(f"input {key!r} refers to a task of another workflow")
            if isinstance(value, TaskHandle):
                raise WorkflowError(
                    f"input {key!r} is a task, not one of its outputs; use task.outputs[\"name\"]")
        task_name = name or self._unique_name(fn.name)
        if task_name in self.tasks:
            raise WorkflowError(f"the workflow already has a task named {task_name!r}")
        handle = TaskHandle(self, task_name, fn, inputs)
        self.tasks[task_name] = handle
        self._version += 1
        return handle

    def _unique_name(self, base: str) -> str:
        if base not in self.tasks:
            return base
        index = 2
        while f"{base}_{index}" in self.tasks:
            index += 1
        return f"{base}_{index}"

    def to_spec(self, shared_code: bool = True) -> dict[str, Any]:
        """The spec the head is sent. With ``shared_code``, a function that more than one task runs goes
        once into the spec's ``code`` table and its tasks name it (``code_ref``): a 100,000-task fan-out of
        one function is then its bytes once, not 100,000 times (over the head's body limit). A workflow
        whose functions each run once keeps its code inline, which heads older than the table also take."""
        if not self.tasks:
            raise WorkflowError("the workflow has no tasks; add one with workflow.add_task(...)")
        uses: dict[int, int] = {}
        for handle in self.tasks.values():
            uses[id(handle.definition)] = uses.get(id(handle.definition), 0) + 1
        table: dict[str, dict[str, Any]] = {}
        keys: dict[int, str] = {}
        tasks = []
        for handle in self.tasks.values():
            definition = handle.definition
            inputs: dict[str, Any] = {}
            for key, value in handle.inputs.items():
                if isinstance(value, OutputRef):
                    inputs[key] = {"task": value.task, "output": value.output}
                else:
                    inputs[key] = value_to_wire(value)
            if shared_code and uses[id(definition)] > 1:
                ref = keys.get(id(definition))
                if ref is None:
                    ref = keys[id(definition)] = f"f{len(table)}"
                    table[ref] = definition.code_spec()
                code: dict[str, Any] = {"code_ref": ref}
            else:
                code = {"code": definition.code_spec()}
            tasks.append({"name": handle.name, **code, "inputs": inputs, "outputs": list(definition.outputs),
                          **definition.policy()})
        spec: dict[str, Any] = {"format": WORKFLOW_FORMAT, "name": self.name, "tasks": tasks}
        if table:
            spec["code"] = table
        return spec

    def export(self) -> dict[str, Any]:
        """The workflow as a ``lattice.workflow/v1`` document (JSON-ready): open it in the Playground, keep it in
        a file, or submit it later with ``client.submit_workflow(spec)``. Its code is inline in each task
        (no ``code`` table), the form every reader of the format takes."""
        return self.to_spec(shared_code=False)

    def _spec_and_digest(self) -> tuple[dict[str, Any], str]:
        spec = self.to_spec()
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        return spec, digest

    def _register_plan(self) -> Plan[str]:
        """Send the spec only when the graph changed since the last registration (and its digest with it).

        An unchanged workflow is not even re-serialized: a run of it costs one request, not two.
        """
        if self._registered is not None and self._registered_version == self._version:
            return self._registered[1]
        version = self._version
        spec, digest = self._spec_and_digest()
        if self._registered is None or self._registered[0] != digest:
            self._registered = (digest, (yield endpoints.submit_workflow(spec)))
        self._registered_version = version
        return self._registered[1]

    def _run_plan(self, priority: int, tags: dict[str, str] | None, inputs: dict[str, dict[str, Any]] | None,
                  weight: float = 1.0, idempotency_key: str | None = None,
                  finished: FinishedRuns | None = None) -> Plan[str]:
        """Register if needed, then start the run. With ``finished`` (``run(wait=True)``), the head holds
        the answer until the run ends (up to ``RESULT_POLL_S``) and its results are kept there, for the
        ``get_results`` that follows to take without a request."""
        workflow_id = yield from self._register_plan()
        if finished is None:
            return (yield endpoints.start_run(workflow_id, priority, tags, inputs, weight, idempotency_key))
        body = yield endpoints.start_run_waiting(workflow_id, RESULT_POLL_S, priority, tags, inputs, weight,
                                                 idempotency_key)
        finished.keep(body["run_id"], body.get("results"))
        return body["run_id"]


    def _map_plan(self, inputs: list[dict[str, dict[str, Any]]], priority: int, tags: dict[str, str] | None,
                  weight: float, idempotency_key: str | None) -> Plan[list[str]]:
        if not isinstance(inputs, list | tuple):
            raise WorkflowError(f"map takes a list of per-run inputs ({{task: {{input: value}}}} each), "
                                f"got {type(inputs).__name__}")
        for index, item in enumerate(inputs):
            if not isinstance(item, Mapping):
                raise WorkflowError(f"inputs[{index}] is a {type(item).__name__}; each run's inputs are a dict "
                                    "{task: {input: value}} ({} for the workflow's own literals)")
        runs = [endpoints.run_body(priority, tags, item, weight) for item in inputs]
        if not runs:
            return []
        workflow_id = yield from self._register_plan()
        return (yield from endpoints.start_runs_plan(workflow_id, runs, idempotency_key))


class LatticeWorkflow(WorkflowBuilder):
    """A workflow bound to a :class:`~lattice.LatticeClient`; run it as often as you like."""

    def __init__(self, client: LatticeClient, name: str = "workflow") -> None:
        super().__init__(name)
        self.client = client

    def register(self) -> str:
        """Send the spec to the head (once per change) and return the workflow's id."""
        return self.client._drive(self._register_plan())

    def run(self, priority: int = 0, tags: dict[str, str] | None = None,
            inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
            idempotency_key: str | None = None, wait: bool = False) -> str:
        """Start a run and return its id at once; each call is a new, independent run.

        ``wait=True`` returns the id only once the run ended (or after 30 s): its results come in the same
        answer, so ``get_results(run(wait=True))`` costs one request instead of two, which is most of a
        short run's round trip.

        ``inputs={"task": {"input": value}}`` replaces literal inputs for this run only, without
        registering the workflow again. ``weight`` is the run's share of its tenant's capacity relative
        to the tenant's other runs (fair scheduling; ``priority`` also scales it, x2 per 10 points).
        ``idempotency_key`` names the run for the head: a second ``run`` with the same key (from a
        process that restarted, say) returns the first run's id.
        """
        return self.client._drive(self._run_plan(priority, tags, inputs, weight, idempotency_key,
                                                 self.client.finished if wait else None))

    def map(self, inputs: list[dict[str, dict[str, Any]]], priority: int = 0, tags: dict[str, str] | None = None,
            weight: float = 1.0, idempotency_key: str | None = None) -> list[str]:
        """Start one run per item of ``inputs`` (each ``{task: {input: value}}``, as ``run(inputs=...)`` takes)
        in one request per 1,000 runs, and return their ids in order once all are committed on the head.

        The options (``priority``, ``tags``, ``weight``) apply to every run; ``idempotency_key`` makes a
        repeat of the call start nothing and return the same ids. Wait for them with
        ``client.get_results_many(ids)``.
        """
        return self.client._drive(self._map_plan(inputs, priority, tags, weight, idempotency_key))

    def get_results(self, run_id: str, timeout: float | None = None, progress: bool | None = None,
                    trust_outputs: bool | None = None) -> dict[str, Any]:
        return self.client.get_results(run_id, timeout=timeout, progress=progress, trust_outputs=trust_outputs)

    def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        return self.client.get_task_results(run_id, trust_outputs=trust_outputs)

    def stream(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        return self.client.stream(run_id, after=after)

    async def astream(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        from lattice.client.aio import AsyncLatticeClient

        async with AsyncLatticeClient(self.client.config.url, token=self.client.config.token,
                                      timeout=self.client.config.timeout,
                                      unavailable_timeout=self.client.retry.unavailable_timeout) as client:
            client.trust = self.client.trust  # events carry no outputs today; the same trust should one ever
            async for event in client.stream(run_id, after=after):
                yield event

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self.client.cancel(run_id)


class AsyncLatticeWorkflow(WorkflowBuilder):
    """A workflow bound to an :class:`~lattice.AsyncLatticeClient`."""

    def __init__(self, client: AsyncLatticeClient, name: str = "workflow") -> None:
        super().__init__(name)
        self.client = client

    async def register(self) -> str:
        """As :meth:`LatticeWorkflow.register`."""
        return await self.client._drive(self._register_plan())

    async def run(self, priority: int = 0, tags: dict[str, str] | None = None,
                  inputs: dict[str, dict[str, Any]] | None = None, weight: float = 1.0,
                  idempotency_key: str | None = None, wait: bool = False) -> str:
        """As :meth:`LatticeWorkflow.run`: a new run, its id returned at once (with ``wait=True``, once it
        ended, its results brought back in the same answer for ``get_results``)."""
        return await self.client._drive(self._run_plan(priority, tags, inputs, weight, idempotency_key,
                                                       self.client.finished if wait else None))

    async def map(self, inputs: list[dict[str, dict[str, Any]]], priority: int = 0,
                  tags: dict[str, str] | None = None, weight: float = 1.0,
                  idempotency_key: str | None = None) -> list[str]:
        """As :meth:`LatticeWorkflow.map`: one run per item of ``inputs``, ids in order once all are committed."""
        return await self.client._drive(self._map_plan(inputs, priority, tags, weight, idempotency_key))

    async def get_results(self, run_id: str, timeout: float | None = None, progress: bool | None = None,
                          trust_outputs: bool | None = None) -> dict[str, Any]:
        return await self.client.get_results(run_id, timeout=timeout, progress=progress, trust_outputs=trust_outputs)

    async def get_task_results(self, run_id: str, trust_outputs: bool | None = None) -> dict[str, TaskResult]:
        return await self.client.get_task_results(run_id, trust_outputs=trust_outputs)

    def stream(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        return self.client.stream(run_id, after=after)

    def astream(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The same as :meth:`stream`, under the sync workflow's name for it, so code can use either workflow."""
        return self.client.stream(run_id, after=after)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return await self.client.cancel(run_id)
