"""The orchestrator: owns every run and task state, and moves them along the state machine.

It is event-driven. Submissions, cancels, finished Ray attempts and timeouts each schedule one *step*
on the head's asyncio loop; a step applies what happened, asks the scheduler for placements, hands
them to Ray, commits all resulting changes to the store in one transaction and only then announces
them (events, waiters). No step polls Ray, so an idle head does nothing.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lattice.core.cluster import ResourceManager
from lattice.core.dag import SpecError
from lattice.core.errors import Conflict, NotFound
from lattice.core.events import EventBus
from lattice.core.runs import RunExec, TaskRun, attempt_payload, load_unfinished_run
from lattice.core.scheduler import QueuedTask, Scheduler
from lattice.core.states import RunState, TaskState, check_run_transition, check_task_transition
from lattice.core.store import Batch, Store
from lattice.core.workflows import WorkflowEntry, WorkflowRegistry
from lattice.core.writer import StoreWriter
from lattice.errors import ErrorInfo, ErrorKind
from lattice.executor.dispatch import Attempt, RayBackend
from lattice.executor.failures import error_from_ray_exception
from lattice.wire.spec import RunCreate, TaskSpec, WorkflowSpec

log = logging.getLogger("lattice.orchestrator")

NOT_RETRYABLE = {ErrorKind.RESOURCE_UNAVAILABLE, ErrorKind.CANCELLED, ErrorKind.UPSTREAM_FAILED}


@dataclass
class OrchestratorSettings:
    default_sandbox: str = "none"
    min_sandbox: str = "none"
    sandbox_defaults: dict[str, Any] = field(default_factory=dict)
    max_output_bytes: int = 256 * 1024 * 1024
    log_limit_bytes: int = 1024 * 1024
    node_refresh_s: float = 5.0
    sandbox_timeout_grace_s: float = 10.0


class Orchestrator:
    def __init__(self, store: Store, resources: ResourceManager, backend: RayBackend, bus: EventBus,
                 settings: OrchestratorSettings | None = None) -> None:
        self.store = store
        self.resources = resources
        self.backend = backend
        self.bus = bus
        self.settings = settings or OrchestratorSettings()
        self.scheduler = Scheduler()
        self.runs: dict[str, RunExec] = {}
        self.registry = WorkflowRegistry(store, self.settings.default_sandbox, self.settings.min_sandbox)
        self._completions: list[tuple[str, str, str, Any, BaseException | None]] = []
        self._waiting: dict[str, deque[tuple[str, str, str]]] = {}
        self._arrived: deque[tuple[str, str, str, Any, BaseException | None]] = deque()  # on Ray threads
        self._wake_pending = False
        self._step_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._writer: StoreWriter | None = None
        self._batch = Batch()
        self._announce: list[tuple[str, dict[str, Any]]] = []
        self._finished: list[RunExec] = []
        self.stats = {"tasks_dispatched": 0, "tasks_succeeded": 0, "tasks_failed": 0, "steps": 0}

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = StoreWriter(self.store, self._loop)
        self.refresh_nodes()
        self._resume_unfinished()
        self._refresher = asyncio.create_task(self._refresh_nodes_forever())
        self._kick()

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._writer is not None:
            await self._flush()
            self._writer.stop()
        for run in self.runs.values():
            run.done.set()

    def refresh_nodes(self) -> None:
        self.resources.update_nodes(self.backend.nodes())

    async def _refresh_nodes_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_refresh_s)
            try:
                before = {n for n, node in self.resources.nodes.items() if node.alive}
                self.refresh_nodes()
                after = {n for n, node in self.resources.nodes.items() if node.alive}
                if after != before:
                    log.info("cluster changed: %d alive node(s)", len(after))
                    self._kick()
            except Exception:
                log.exception("refreshing the cluster view failed")

    # --- workflows ----------------------------------------------------------------------------------

    def register_workflow(self, spec: WorkflowSpec) -> str:
        return self.registry.register(spec)

    def get_workflow(self, workflow_id: str) -> WorkflowEntry:
        return self.registry.get(workflow_id)

    # --- runs ---------------------------------------------------------------------------------------

    def create_run(self, workflow_id: str, options: RunCreate | None = None) -> str:
        options = options or RunCreate()
        entry = self.get_workflow(workflow_id)
        run_id = uuid.uuid4().hex
        now = time.time()
        tasks = {
            name: TaskRun(spec=entry.tasks[name], state=TaskState.PENDING,
                          waiting_on=len(entry.graph.upstream[name]))
            for name in entry.graph.order
        }
        overrides = {task: {name: item.model_dump(exclude_unset=True) for name, item in values.items()}
                     for task, values in options.inputs.items()}
        literals = self.registry.run_literals(entry, overrides)
        run = RunExec(run_id, entry, options.priority, RunState.RUNNING, tasks, literals=literals, active=len(tasks))
        self._batch.run_inserts.append({
            "id": run_id, "workflow_id": workflow_id, "workflow_name": entry.spec.name,
            "state": RunState.RUNNING, "priority": options.priority,
            "tags": _json(options.tags), "inputs": _json(overrides) if overrides else None,
            "created_at": now, "started_at": now,
        })
        self._batch.task_inserts.extend(
            {"run_id": run_id, "name": name, "state": TaskState.PENDING, "attempt": 0} for name in tasks)
        self.runs[run_id] = run
        self._event(run, "run_started", None, {"workflow_id": workflow_id, "tasks": len(tasks),
                                                "tags": options.tags})
        self._guarded(run, self._start_run, run)
        self._kick()
        return run_id

    def _start_run(self, run: RunExec) -> None:
        for name, task in run.tasks.items():
            if task.state is TaskState.PENDING and not self.resources.fits_anywhere(task.spec.resources):
                largest = self.resources.largest_node()
                error = ErrorInfo(
                    ErrorKind.RESOURCE_UNAVAILABLE, "ResourceUnavailable",
                    f"task {name!r} asks for {task.spec.resources.model_dump()} but the largest node "
                    f"has {largest}; no node of this cluster can ever run it",
                    detail={"requested": task.spec.resources.model_dump(), "largest_node": largest})
                self._fail_task(run, name, error)
        for name, task in run.tasks.items():
            if task.state is TaskState.PENDING and task.waiting_on == 0:
                self._make_ready(run, name)
        self._maybe_finish(run)

    def cancel_run(self, run_id: str) -> str:
        run = self.runs.get(run_id)
        if run is None:
            row = self.store.get_run(run_id)
            if row is None:
                raise NotFound("run", run_id)
            return row["state"]
        for name, task in run.tasks.items():
            if task.state.terminal:
                continue
            self._withdraw(run, name, TaskState.CANCELLED)
            self._set_task(run, name, TaskState.CANCELLED, finished_at=time.time())
            self._event(run, "task_cancelled", name, {})
        self._finish_run(run, RunState.CANCELLED)
        self._kick()
        return RunState.CANCELLED

    def emit_custom_event(self, run_id: str, task: str | None, data: dict[str, Any]) -> int:
        """Record an event a running task sends (progress, a LangGraph stream write); returns its seq."""
        run = self.runs.get(run_id)
        if run is None or run.state.terminal:
            if self.store.get_run(run_id) is None:
                raise NotFound("run", run_id)
            raise Conflict(f"run {run_id} has finished; it takes no more events")
        if task is not None and task not in run.tasks:
            raise NotFound("task", task)
        self._event(run, "custom", task, data)
        self._kick()
        return run.seq

    async def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is not None and timeout > 0:
            try:
                await asyncio.wait_for(asyncio.shield(run.done.wait()), timeout)
            except TimeoutError:
                pass
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFound("run", run_id)
        return row

    def sinks(self, workflow_id: str) -> tuple[str, ...]:
        return self.get_workflow(workflow_id).graph.sinks

    # --- the step -----------------------------------------------------------------------------------

    def _kick(self) -> None:
        if not self._step_pending and self._loop is not None:
            self._step_pending = True
            self._loop.call_soon(self._step)

    def _on_done(self, run_id: str, name: str, attempt_id: str, envelope: Any, error: BaseException | None) -> None:
        """Called on a Ray thread when an attempt ends. Completions are queued and the loop is woken
        once per burst, not once per task (each wake-up is a system call and a loop iteration)."""
        self._arrived.append((run_id, name, attempt_id, envelope, error))
        if not self._wake_pending:
            self._wake_pending = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._take_arrived)

    def _take_arrived(self) -> None:
        self._wake_pending = False
        arrived = self._arrived
        while arrived:
            self._completions.append(arrived.popleft())
        self._kick()

    def _step(self) -> None:
        self._step_pending = False
        self.stats["steps"] += 1
        completions, self._completions = self._completions, []
        for run_id, name, attempt_id, envelope, error in completions:
            run = self.runs.get(run_id)
            if run is not None:
                self._guarded(run, self._handle_completion, run, name, attempt_id, envelope, error)
        for placement in self.scheduler.schedule(self._place):
            run_id, name = placement.task.key  # type: ignore[misc]
            run = self.runs.get(run_id)
            if run is None or run.tasks[name].state is not TaskState.READY:
                self.resources.release(placement.node_id, placement.task.resources)
                continue
            self._guarded(run, self._dispatch, run, name, placement.node_id)
        self._flush()

    def _place(self, queued: QueuedTask) -> str | None:
        """Admit a task on a node. CPU tasks without a timeout may wait in Ray's queue on the node
        (prefetch slots, see ``cluster.PREFETCH_PER_CORE``), so its cores never idle while the head turns
        a finished task around; a task with a timeout is only sent where it starts at once, so its clock
        starts when it does."""
        return self.resources.try_place(queued.resources, prefetch=queued.prefetch)

    def _flush(self) -> asyncio.Future[None]:
        """Hand this step's changes to the store writer; announce them once they are committed."""
        assert self._loop is not None and self._writer is not None
        batch, self._batch = self._batch, Batch()
        announce, self._announce = self._announce, []
        finished, self._finished = self._finished, []
        done: asyncio.Future[None] = self._loop.create_future()

        def committed(error: BaseException | None) -> None:
            if error is not None:
                for run_id in {run_id for run_id, _ in announce}:
                    run = self.runs.get(run_id)
                    if run is not None and not run.state.terminal:
                        self._fail_run_internal(run, f"the store refused a write: {error}")
                self._kick()
            else:
                for run_id, event in announce:
                    self.bus.publish(run_id, event)
            for run in finished:
                run.done.set()
                self.runs.pop(run.run_id, None)
            if not done.done():
                done.set_result(None)

        if batch or announce or finished:
            self._writer.submit(batch, committed)
        else:
            done.set_result(None)
        return done

    async def flush(self) -> None:
        """Wait until every change made so far is committed (used before handing out an id)."""
        await self._flush()

    def _guarded(self, run: RunExec, fn: Callable[..., None], *args: Any) -> None:
        """Run one piece of step logic; a bug there fails that run only, never the loop."""
        try:
            fn(*args)
        except Exception as exc:
            log.exception("run %s: internal error", run.run_id)
            if not run.state.terminal:
                self._fail_run_internal(run, f"{type(exc).__name__}: {exc}")

    def _fail_run_internal(self, run: RunExec, message: str) -> None:
        for name, task in run.tasks.items():
            if task.state.terminal:
                continue
            self._withdraw(run, name, TaskState.FAILED)
            task.state = TaskState.FAILED  # unchecked on purpose: a bug may have left any state
            self._batch.update_task(run.run_id, name, state=TaskState.FAILED, finished_at=time.time())
        run.active = 0
        if run.error is None:
            run.error = ErrorInfo(ErrorKind.INTERNAL, "InternalError", message).to_dict()
        self._finish_run(run, RunState.FAILED)

    # --- transitions --------------------------------------------------------------------------------

    def _set_task(self, run: RunExec, name: str, state: TaskState, **values: Any) -> None:
        task = run.tasks[name]
        check_task_transition(task.state, state)
        was_terminal = task.state.terminal
        task.state = state
        if state.terminal and not was_terminal:
            run.active -= 1
        self._batch.update_task(run.run_id, name, state=state, **values)

    def _event(self, run: RunExec, type: str, task: str | None, data: dict[str, Any]) -> None:
        run.seq += 1
        now = time.time()
        self._batch.add_event(run.run_id, run.seq, type, task, data, now)
        self._announce.append((run.run_id, {"seq": run.seq, "ts": now, "type": type, "task": task,
                                            "run_id": run.run_id, "data": data}))

    def _make_ready(self, run: RunExec, name: str) -> None:
        task = run.tasks[name]
        now = time.time()
        self._set_task(run, name, TaskState.READY, queued_at=now)
        task.enqueued_at = now
        self.scheduler.push(QueuedTask(
            key=(run.run_id, name), resources=task.spec.resources,
            priority=run.priority + task.spec.priority, enqueued_at=now,
            critical_path=run.workflow.graph.critical_path[name],
            prefetch=task.spec.timeout is None))
        self._event(run, "task_queued", name, {"attempt": task.attempt + 1})

    def _dispatch(self, run: RunExec, name: str, node_id: str) -> None:
        task = run.tasks[name]
        spec = task.spec
        task.attempt += 1
        # Unique per run and attempt, also after a restart: attempt numbers continue from the store.
        task.attempt_id = f"{run.run_id}:{name}:{task.attempt}"
        task.node_id = task.dispatched_node = node_id
        level = spec.sandbox or self.settings.default_sandbox
        task.killable = spec.timeout is not None and level == "none"
        upstream_names = sorted(run.workflow.graph.upstream[name])
        node = self.resources.nodes[node_id]
        attempt = Attempt(
            payload=attempt_payload(run, name, task.attempt_id, upstream_names, level, self.settings),
            fn_ref=self._fn_ref(run.workflow, spec), upstream=[run.tasks[u].ref for u in upstream_names],
            resources=spec.resources, node_id=node_id, gpu_fraction=node.gpu_fraction(spec.resources),
            killable=task.killable)
        attempt_id = task.attempt_id
        run_id = run.run_id
        task.ref = self.backend.submit(
            attempt, lambda envelope, error: self._on_done(run_id, name, attempt_id, envelope, error))
        self._set_task(run, name, TaskState.SCHEDULED, attempt=task.attempt, attempt_id=attempt_id,
                       node_id=node_id, started_at=None, finished_at=None, error=None)
        self.stats["tasks_dispatched"] += 1
        cpu = spec.resources.cpu
        if cpu == 0 or node.busy_cpu + cpu <= node.cpu + 1e-9:
            node.busy_cpu += cpu
            self._mark_running(run, name)
        else:
            self._event(run, "task_scheduled", name, {"attempt": task.attempt, "attempt_id": attempt_id,
                                                       "node_id": node_id, "waiting_for": "a free core"})
            self._waiting.setdefault(node_id, deque()).append((run.run_id, name, attempt_id))
        if spec.timeout is not None:
            grace = 0.0 if level == "none" else self.settings.sandbox_timeout_grace_s
            task.timer = self._loop.call_later(  # type: ignore[union-attr]
                spec.timeout + grace, self._on_timeout, run.run_id, name, attempt_id)

    def _mark_running(self, run: RunExec, name: str) -> None:
        task = run.tasks[name]
        now = time.time()
        self._set_task(run, name, TaskState.RUNNING, started_at=now)
        self._event(run, "task_started", name, {"attempt": task.attempt, "attempt_id": task.attempt_id,
                                                 "node_id": task.dispatched_node})

    def _free(self, task: TaskRun) -> None:
        """Give back an attempt's reservation; tasks waiting in that node's queue take the core."""
        node_id, task.node_id = task.node_id, None
        if node_id is None:
            return
        self.resources.release(node_id, task.spec.resources)
        node = self.resources.nodes.get(node_id)
        if node is None:
            return
        if task.state is TaskState.RUNNING:
            node.busy_cpu = max(0.0, node.busy_cpu - task.spec.resources.cpu)
        waiting = self._waiting.get(node_id)
        while waiting:
            run_id, name, attempt_id = waiting[0]
            run = self.runs.get(run_id)
            queued = run.tasks.get(name) if run else None
            if queued is None or queued.attempt_id != attempt_id or queued.state is not TaskState.SCHEDULED:
                waiting.popleft()
                continue
            if node.busy_cpu + queued.spec.resources.cpu > node.cpu + 1e-9:
                break
            waiting.popleft()
            node.busy_cpu += queued.spec.resources.cpu
            self._mark_running(run, name)  # type: ignore[arg-type]

    def _fn_ref(self, entry: WorkflowEntry, spec: TaskSpec) -> Any:
        """The function's bytes in Ray's object store, put once per distinct function of a workflow."""
        if spec.code is None:
            return None
        key = entry.code_keys[spec.name]
        ref = entry.fn_refs.get(key)
        if ref is None:
            ref = self.backend.put(base64.b64decode(spec.code.pickle))
            entry.fn_refs[key] = ref
        return ref

    def _on_timeout(self, run_id: str, name: str, attempt_id: str) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        task = run.tasks.get(name)
        if task is None or task.attempt_id != attempt_id or task.state is not TaskState.RUNNING:
            return
        task.timer = None
        self._abort_attempt(run, task)
        error = ErrorInfo(ErrorKind.TIMEOUT, "TaskTimeout",
                          f"task {name!r} ran longer than its timeout of {task.spec.timeout} s and was stopped",
                          detail={"timeout_s": task.spec.timeout})
        self._guarded(run, self._attempt_failed, run, name, attempt_id, error, {})
        self._kick()

    @staticmethod
    def _stop_timer(task: TaskRun) -> None:
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None

    def _withdraw(self, run: RunExec, name: str, state: TaskState) -> None:
        """Take an unfinished task out of the queue, and stop and record its attempt if one is out."""
        task = run.tasks[name]
        if task.state in (TaskState.SCHEDULED, TaskState.RUNNING):
            self._abort_attempt(run, task)
            self._record_attempt_end(run, name, task.attempt_id, state, {}, None)  # type: ignore[arg-type]
        self.scheduler.remove((run.run_id, name))

    def _abort_attempt(self, run: RunExec, task: TaskRun) -> None:
        """Stop a running attempt in Ray and free its reservation now; its late result is ignored."""
        self._stop_timer(task)
        if task.ref is not None:
            self.backend.cancel(task.ref, force=task.killable)
        self._free(task)

    def _handle_completion(self, run: RunExec, name: str, attempt_id: str, envelope: Any,
                           error: BaseException | None) -> None:
        task = run.tasks[name]
        if task.attempt_id != attempt_id or task.state not in (TaskState.RUNNING, TaskState.SCHEDULED):
            return  # a late answer from an attempt that was cancelled or timed out
        self._stop_timer(task)
        self._free(task)
        if task.state is TaskState.SCHEDULED:  # it got a core before the head noticed one was free
            self._mark_running(run, name)
        if error is not None:
            self._attempt_failed(run, name, attempt_id, error_from_ray_exception(error), {})
            return
        if envelope.get("error"):
            self._attempt_failed(run, name, attempt_id, ErrorInfo.from_dict(envelope["error"]), envelope)
            return
        self._attempt_succeeded(run, name, attempt_id, envelope)

    def _record_attempt_end(self, run: RunExec, name: str, attempt_id: str, state: TaskState,
                            envelope: dict[str, Any], error: ErrorInfo | None) -> None:
        """An attempt is written once, when it ends (its live state is on the task row and in events)."""
        task = run.tasks[name]
        self._batch.add_attempt(
            id=attempt_id, run_id=run.run_id, task=name, number=task.attempt, state=state,
            node_id=envelope.get("node_id") or task.dispatched_node, worker_pid=envelope.get("pid"),
            started_at=envelope.get("started_at"), finished_at=envelope.get("finished_at", time.time()),
            stdout=envelope.get("stdout") or None, stderr=envelope.get("stderr") or None,
            error=_json(error.to_dict()) if error else None)
        for stream in ("stdout", "stderr"):
            text = envelope.get(stream)
            if text:
                self._event(run, "task_log", name, {"stream": stream, "text": text[-65536:],
                                                     "attempt_id": attempt_id})

    def _attempt_succeeded(self, run: RunExec, name: str, attempt_id: str, envelope: dict[str, Any]) -> None:
        task = run.tasks[name]
        self._record_attempt_end(run, name, attempt_id, TaskState.SUCCEEDED, envelope, None)
        for output, (encoding, data) in envelope["outputs"].items():
            self._batch.put_blob(run.run_id, name, output, encoding, data)
        started, finished = envelope.get("started_at"), envelope.get("finished_at")
        node = self.resources.nodes.get(task.dispatched_node or "")
        if node is not None and started and finished and task.spec.resources.cpu > 0:
            node.observe(finished - started)
        self._set_task(run, name, TaskState.SUCCEEDED, started_at=started, finished_at=finished,
                       node_id=envelope.get("node_id") or task.dispatched_node)
        self._event(run, "task_succeeded", name, {
            "attempt": task.attempt, "duration_s": round((finished or 0) - (started or 0), 6),
            "node_id": envelope.get("node_id")})
        self.stats["tasks_succeeded"] += 1
        for child in run.workflow.graph.downstream[name]:
            child_task = run.tasks[child]
            child_task.waiting_on -= 1
            if child_task.waiting_on == 0 and child_task.state is TaskState.PENDING:
                self._make_ready(run, child)
        self._maybe_finish(run)

    def _attempt_failed(self, run: RunExec, name: str, attempt_id: str, error: ErrorInfo,
                        envelope: dict[str, Any]) -> None:
        task = run.tasks[name]
        if not envelope.get("stderr") and error.detail.get("stderr_tail"):
            envelope = {**envelope, "stderr": error.detail["stderr_tail"]}
        self._record_attempt_end(run, name, attempt_id, TaskState.FAILED, envelope, error)
        if task.attempt <= task.spec.retries and error.kind not in NOT_RETRYABLE:
            self._set_task(run, name, TaskState.RETRYING, error=error.to_dict())
            self._event(run, "task_retrying", name, {"attempt": task.attempt, "error": error.to_dict(),
                                                      "retries_left": task.spec.retries - task.attempt + 1})
            self._make_ready(run, name)
            return
        self._fail_task(run, name, error)
        self._maybe_finish(run)

    def _fail_task(self, run: RunExec, name: str, error: ErrorInfo) -> None:
        self.scheduler.remove((run.run_id, name))
        self._set_task(run, name, TaskState.FAILED, error=error.to_dict(), finished_at=time.time())
        self._event(run, "task_failed", name, {"attempt": run.tasks[name].attempt, "error": error.to_dict()})
        self.stats["tasks_failed"] += 1
        if run.failed_task is None:
            run.failed_task = name
            run.error = error.to_dict()
        self._skip_downstream(run, name)

    def _skip_downstream(self, run: RunExec, name: str) -> None:
        stack = list(run.workflow.graph.downstream[name])
        while stack:
            child = stack.pop()
            task = run.tasks[child]
            if task.state is not TaskState.PENDING:
                continue
            self._set_task(run, child, TaskState.SKIPPED)
            self._event(run, "task_skipped", child, {"because": name})
            stack.extend(run.workflow.graph.downstream[child])

    def _maybe_finish(self, run: RunExec) -> None:
        if run.active == 0 and not run.state.terminal:
            self._finish_run(run, RunState.FAILED if run.failed_task else RunState.SUCCEEDED)

    def _finish_run(self, run: RunExec, state: RunState) -> None:
        if run.state.terminal:
            return
        check_run_transition(run.state, state)
        run.state = state
        self._batch.update_run(run.run_id, state=state, finished_at=time.time(),
                               failed_task=run.failed_task, error=run.error)
        self._event(run, "run_finished", None, {"state": str(state), "failed_task": run.failed_task,
                                                "error": run.error})
        self._finished.append(run)

    # --- restart ------------------------------------------------------------------------------------

    def _resume_unfinished(self) -> None:
        """Pick up the runs a previous head left unfinished: finished tasks keep their outputs."""
        for run_id in self.store.unfinished_run_ids():
            try:
                run, reset = load_unfinished_run(self.store, self.registry, self.backend.put, run_id)
            except (NotFound, SpecError, ValidationError) as exc:
                log.error("cannot resume run %s: %s", run_id, exc)
                continue
            for name in reset:
                self._batch.update_task(run_id, name, state=TaskState.PENDING)
            self.runs[run_id] = run
            self._event(run, "run_resumed", None, {"pending_tasks": run.active})
            upstream = run.workflow.graph.upstream
            for name, task in run.tasks.items():
                if task.state is not TaskState.PENDING:
                    continue
                if any(run.tasks[u].state in (TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED)
                       for u in upstream[name]):
                    self._set_task(run, name, TaskState.SKIPPED)
                elif task.waiting_on == 0:
                    self._make_ready(run, name)
            self._maybe_finish(run)
            log.info("resumed run %s with %d unfinished task(s)", run_id, run.active)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
