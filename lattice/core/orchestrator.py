"""The orchestrator: the loop that moves runs along, applying what the run algorithm decides.

Four parts meet here, each owning its piece: the run algorithm (``lattice.core.algorithm``, pure) decides
what a run's tasks do; the resource manager (``lattice.core.cluster``) owns capacity; the dispatcher
(``lattice.core.dispatcher``) follows attempts in flight on a :class:`~lattice.core.backend.Backend`; the
store writer commits. The loop feeds the algorithm events, carries out its
:class:`~lattice.core.algorithm.Effects` (store writes, events, the scheduler's queues, stopping attempts),
and wakes the clients that wait for runs.

It is event-driven. Submissions, cancels, finished attempts and timeouts each schedule one *step* on the
head's asyncio loop; a step applies what happened, asks the scheduler for placements, hands them to the
backend, passes all resulting changes to the store writer in one batch and only announces them (events,
waiters) once they are committed. No step polls the backend, so an idle head does nothing.

Why it is still about 400 lines: it is both the surface the API routes call (workflows, runs, cancel,
custom events, waiting) and the loop behind it (step, applying effects, commit and announce, resume); the
decisions, the capacity and the attempts in flight already live in their own modules, and splitting the
surface from the loop would only add a hop between two halves that share every piece of state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError

from lattice.core import algorithm
from lattice.core.algorithm import Effects, TaskRun
from lattice.core.backend import Backend
from lattice.core.cluster import Node, ResourceManager
from lattice.core.dag import SpecError
from lattice.core.dispatcher import Dispatcher
from lattice.core.errors import Conflict, NotFound, StoreUnavailable
from lattice.core.events import EventBus
from lattice.core.finished import Blobs, FinishedRuns, SinkOutputs
from lattice.core.metrics import HeadMetrics
from lattice.core.runs import RunExec, load_unfinished_run, new_run
from lattice.core.scheduler import Placement, QueuedTask, Scheduler, SchedulingPolicy
from lattice.core.startup import RunStarter, first_slice
from lattice.core.states import RunState, TaskState
from lattice.core.store import Batch, Store
from lattice.core.tracing import NO_TRACING, RunTracing
from lattice.core.workflows import WorkflowEntry, WorkflowRegistry
from lattice.core.writer import StoreWriter
from lattice.wire.attempt import Envelope
from lattice.wire.failures import ErrorInfo
from lattice.wire.livelog import LiveLogChunk
from lattice.wire.spec import RunCreate, WorkflowSpec
from lattice.wire.tenants import ADMIN_TENANT, ClusterQueues, TenantPolicy

log = logging.getLogger("lattice.orchestrator")
#: how long an API call waits for its changes to commit before answering 503 (a store refusing writes)
FLUSH_TIMEOUT_S = 10.0
#: most seconds one step spends dispatching before it lets the loop serve requests (``/health`` stays
#: answered within tens of ms while a fan-out starts); what is left goes in the next step
STEP_BUDGET_S = 0.01

Completion = tuple[str, Envelope | None, ErrorInfo | None]
_LIVE_LOGGING = frozenset({TaskState.SCHEDULED, TaskState.RUNNING})


@dataclass
class OrchestratorSettings:
    default_sandbox: str = "none"
    min_sandbox: str = "none"
    sandbox_defaults: dict[str, Any] = field(default_factory=dict)
    max_output_bytes: int = 256 * 1024 * 1024
    log_limit_bytes: int = 1024 * 1024
    #: each run's workspace is ``<workspace_root>/<run id>`` on the node a task runs on (the file builtins')
    workspace_root: str = "/tmp/lattice-workspaces"
    #: how often the cluster view is refreshed (off the loop, in a thread); a dead node is acted on then
    node_refresh_s: float = 1.0
    #: how long a worker-died error waits to learn whether the worker's node died (then a node loss)
    node_loss_grace_s: float = 12.0
    sandbox_timeout_grace_s: float = 10.0
    #: how ready tasks share the cluster: "fair" (between tenants, then runs) or "fifo" (strict order)
    scheduling: str = SchedulingPolicy.FAIR
    #: ``(run_id, aliases) -> params["llm"]`` for tasks that declare ``llm=`` (the pool manager's ``access``)
    llm_access: Callable[[str, tuple[str, ...]], dict[str, dict[str, str]]] | None = None
    #: told the pools a submitted run's tasks declare, so an engine at zero starts loading while the run's
    #: first tasks run, not when its first ``llm=`` task is dispatched (the pool manager's ``warm``)
    llm_warm: Callable[[frozenset[str]], None] | None = None


class Orchestrator:
    def __init__(self, store: Store, resources: ResourceManager, backend: Backend, bus: EventBus,
                 settings: OrchestratorSettings | None = None, tracing: RunTracing | None = None) -> None:
        self.store = store
        self.resources = resources
        self.backend = backend
        self.bus = bus
        self.settings = settings or OrchestratorSettings()
        self.scheduler = Scheduler(policy=self.settings.scheduling)
        self.runs: dict[str, RunExec] = {}
        self.registry = WorkflowRegistry(store, self.settings.default_sandbox, self.settings.min_sandbox)
        self._fx = Effects()  # what the algorithm decided and the loop has not carried out yet
        self._dispatcher = Dispatcher(backend, resources, self.settings, self._fx, self._on_done, self._on_timeout,
                                      released=self.scheduler.release, observe=self.scheduler.observe)
        self._completions: list[Completion] = []
        self._starter = RunStarter()  # big runs whose root tasks are made ready a slice per loop turn
        self._placed: deque[Placement] = deque()  # placed (capacity reserved), not dispatched yet
        self._arrived: deque[Completion] = deque()  # appended on the backend's threads
        self._wake_pending = False
        self._step_handle: asyncio.Handle | None = None  # the step scheduled on the loop, not taken yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._refresh_now = asyncio.Event()
        self._writer: StoreWriter | None = None
        self._batch = Batch()
        #: the writer's answer for the last batch handed over: batches commit in order, so once it is
        #: answered, so is everything handed over before it (what a flush with nothing new waits for)
        self._last_commit: asyncio.Future[None] | None = None
        self._announce: list[tuple[str, dict[str, Any]]] = []
        self._finished: list[RunExec] = []
        #: succeeded runs' answers, kept once committed, so a waiting client is answered without a store read
        self.finished = FinishedRuns()
        self.stats = {"tasks_dispatched": 0, "tasks_succeeded": 0, "tasks_failed": 0, "steps": 0}
        #: what /metrics reports, counted as things happen (no store scan per scrape)
        self.metrics = HeadMetrics()
        self.tracing = self._dispatcher.tracing = tracing or NO_TRACING

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = self._dispatcher.loop = asyncio.get_running_loop()
        self._writer = StoreWriter(self.store, self._loop)
        self.metrics.seed_runs(self.store.count_runs_by_state())
        self.refresh_nodes()
        self._resume_unfinished()
        self._refresher = asyncio.create_task(self._refresh_nodes_forever())
        self._kick()

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._writer is not None:
            try:  # a store that refuses writes does not hold the shutdown up (resumed runs re-run what it lost)
                await asyncio.wait_for(asyncio.shield(self._flush()), FLUSH_TIMEOUT_S)
            except (TimeoutError, StoreUnavailable):
                log.error("stopping with changes the store did not take; unfinished runs resume on the next start")
            self._writer.stop()
        for run in self.runs.values():
            run.done.set()
        self.tracing.close()

    def refresh_nodes(self) -> None:
        self.resources.update_nodes(self.backend.nodes())

    async def _refresh_nodes_forever(self) -> None:
        assert self._loop is not None
        self._dispatcher._suspected = lambda _node: self._refresh_now.set()
        while True:
            try:
                await asyncio.wait_for(self._refresh_now.wait(), self.settings.node_refresh_s)
            except TimeoutError:
                pass
            self._refresh_now.clear()
            try:
                fresh = await self._loop.run_in_executor(None, self.backend.nodes)
                self._apply_nodes(fresh)
            except Exception:
                log.exception("refreshing the cluster view failed")

    def _apply_nodes(self, fresh: list[Any]) -> None:
        """Merge a fresh cluster view; attempts on nodes that died or left move elsewhere (``node_lost``)."""
        before = self.resources.alive_node_ids()
        self.resources.update_nodes(fresh)
        after = self.resources.alive_node_ids()
        if after == before:
            return
        log.info("cluster changed: %d alive node(s)", len(after))
        for node_id in before - after:
            node = self.resources.nodes[node_id]
            moved = self._dispatcher.lose_node(node_id, node.address)
            log.warning("node %s (%s) is %s; %d task(s) of %d run(s) move elsewhere", node_id, node.address,
                        node.state, sum(len(t) for t in moved.values()), len(moved))
        self._apply()
        self._kick()

    def drain(self, node: str, timeout_s: float | None = None) -> Node:
        """``lattice drain``: no new attempts go to the node (an id, a unique id prefix or its IP); those
        running there finish, or after ``timeout_s`` become new attempts elsewhere (not charged to their
        retries). The node leaves when its worker stops its Ray: the worker's watch does so once the node
        is draining and idle (``lattice.cli.nodewatch``), or ``lattice stop --worker`` on it."""
        found = self.resources.find(node)
        if found is None:
            raise NotFound("node", node)
        if not found.alive:
            raise Conflict(f"node {found.node_id} ({found.address}) is {found.state}; only a live node drains")
        self.resources.drain(found.node_id)
        log.info("draining node %s (%s)%s", found.node_id, found.address,
                 f"; what still runs there after {timeout_s:g} s moves elsewhere" if timeout_s is not None else "")
        if timeout_s is not None and self._loop is not None:
            self._loop.call_later(timeout_s, self._drain_timed_out, found.node_id)
        self._kick()
        return found

    def _drain_timed_out(self, node_id: str) -> None:
        node = self.resources.nodes.get(node_id)
        if node is None or not node.draining or not node.alive:
            return
        self._dispatcher.lose_node(node_id, node.address, reason="drained")
        self._apply()
        self._kick()

    # --- workflows ----------------------------------------------------------------------------------

    def register_workflow(self, spec: WorkflowSpec, tenant: str = ADMIN_TENANT) -> str:
        return self.registry.register(spec, None if tenant == ADMIN_TENANT else tenant)

    def get_workflow(self, workflow_id: str) -> WorkflowEntry:
        return self.registry.get(workflow_id)

    async def create_workflow(self, body: bytes, tenant: str = ADMIN_TENANT) -> WorkflowEntry:
        """Register a submitted spec (its JSON text). Parsing, validation, the graph and the store's commit
        run on a worker thread, so the loop keeps serving while a big spec is checked (a 100,000-task one
        is seconds of CPU); the entry joins the cache on the loop, once committed. Raises
        ``pydantic.ValidationError`` or :class:`SpecError` for a bad spec."""
        entry = await asyncio.to_thread(self.registry.create, body, None if tenant == ADMIN_TENANT else tenant)
        self.registry.add(entry)
        return entry

    async def load_workflow(self, workflow_id: str) -> WorkflowEntry:
        """:meth:`get_workflow`, but a workflow not cached (after a restart) is rebuilt from the store on a
        worker thread instead of on the loop; raises :class:`NotFound` for an unknown id."""
        if workflow_id not in self.registry.workflows:
            self.registry.add(await asyncio.to_thread(self.registry.load, workflow_id))
        return self.registry.workflows[workflow_id]

    # --- runs ---------------------------------------------------------------------------------------

    def set_tenant(self, policy: TenantPolicy) -> None:
        """A tenant's weight and quota, for the scheduler (a key was made, or the head started)."""
        self.scheduler.set_tenant(policy)

    def queues(self, tenant: str | None = None) -> ClusterQueues:
        """What each tenant and run holds, has queued and waits for (``tenant``: only that one)."""
        return ClusterQueues(scheduling=str(self.scheduler.policy), tenants=self.scheduler.queues(tenant))

    def create_run(self, workflow_id: str, options: RunCreate | None = None, tenant: str = ADMIN_TENANT,
                   run_id: str | None = None) -> str:
        """Start a run; ``run_id`` is given by the API for an idempotent submission (derived from its key)."""
        options = options or RunCreate()
        if self._writer is not None and self._writer.refusing is not None:
            raise StoreUnavailable(f"the store refuses writes ({self._writer.refusing}); no run can start until "
                                   "it takes them again (free disk space): the head recovers by itself")
        entry = self.get_workflow(workflow_id)
        run_id = run_id or uuid.uuid4().hex
        now = time.time()
        tasks = {
            name: TaskRun(spec=entry.tasks[name], state=TaskState.PENDING,
                          waiting_on=len(entry.graph.upstream[name]))
            for name in entry.graph.order
        }
        overrides = {task: {name: item.model_dump(exclude_unset=True) for name, item in values.items()}
                     for task, values in options.inputs.items()}
        literals = self.registry.run_literals(entry, overrides)
        run = new_run(run_id, entry, options.priority, tasks, literals, active=len(tasks),
                      sink_outputs=SinkOutputs(entry.graph.sinks))
        self._batch.run_inserts.append({
            "id": run_id, "workflow_id": workflow_id, "workflow_name": entry.spec.name,
            "state": RunState.RUNNING, "priority": options.priority,
            "tags": _json(options.tags), "inputs": _json(overrides) if overrides else None,
            "created_at": now, "started_at": now,
            "tenant": None if tenant == ADMIN_TENANT else tenant, "weight": options.weight,
        })
        self._batch.new_tasks.append((run_id, tuple(tasks)))
        self.runs[run_id] = run
        self.scheduler.add_run(run_id, tenant, options.weight, options.priority)
        self.metrics.run_created()
        self.tracing.run_started(run_id, entry.spec.name, len(tasks))
        self._event(run, "run_started", None, {"workflow_id": workflow_id, "tasks": len(tasks),
                                                "tags": options.tags})
        self._guarded(run, self._start_run, run)
        self._warm_pools(run)
        self._apply()
        self._kick()
        return run_id

    def create_runs(self, workflow_id: str, options: list[RunCreate], tenant: str = ADMIN_TENANT,
                    run_ids: list[str] | None = None) -> list[str]:
        """Start many runs of one workflow at once (``POST /workflows/{id}/runs:batch``).

        Every run's inputs are checked before any run is made, so a bad item (a 422 naming
        ``runs[i].inputs...``) starts nothing; the runs then go into one store batch, so the caller's
        single :meth:`flush` commits all of them or none.
        """
        entry = self.get_workflow(workflow_id)
        for index, item in enumerate(options):
            overrides = {task: {name: value.model_dump(exclude_unset=True) for name, value in values.items()}
                         for task, values in item.inputs.items()}
            try:
                self.registry.run_literals(entry, overrides)
            except SpecError as exc:
                raise SpecError(exc.message, f"runs[{index}].{exc.field}" if exc.field else f"runs[{index}]",
                                exc.hint) from None
        ids = run_ids or [None] * len(options)
        return [self.create_run(workflow_id, item, tenant, run_id) for item, run_id in zip(options, ids, strict=True)]

    def _warm_pools(self, run: RunExec) -> None:
        """Start the model pools the run's unfinished tasks call, while its earlier tasks run."""
        if self.settings.llm_warm is not None:
            pools = frozenset(a for t in run.tasks.values() if not t.state.terminal for a in t.spec.llm)
            if pools:
                self.settings.llm_warm(pools)

    def _start_run(self, run: RunExec) -> None:
        """Fail what no node can hold, make ready what fits in one slice; a big run's other roots are made
        ready in later slices (``lattice.core.startup``), after its id is committed and answered."""
        fits: dict[Any, bool] = {}  # per distinct resources: a fan-out's tasks mostly ask alike
        fits_anywhere = self.resources.fits_anywhere
        unplaceable: dict[str, str] = {}
        for name, task in run.tasks.items():
            resources = task.spec.resources
            # a plain tuple key: hashing the pydantic model costs ~10x more (its dict fields sorted per call)
            key = ((resources.cpu, resources.gpu, resources.memory, resources.gpu_memory)
                   if not resources.custom and not resources.node_labels else id(resources))
            ok = fits.get(key)
            if ok is None:
                ok = fits[key] = fits_anywhere(resources)
            if not ok:
                unplaceable[name] = self.resources.why_never_fits(resources)
        largest = self.resources.largest_node() if unplaceable else None
        now, fx = time.time(), self._fx
        algorithm.start_run(run, now, fx, unplaceable, largest, ready=())
        if run.state.terminal:
            return
        roots = (name for name, task in run.tasks.items() if task.waiting_on == 0)
        more = first_slice(roots, self._starter.budget_s, lambda names: algorithm.start_slice(run, names, now, fx))
        if more and not run.state.terminal:
            self._starter.add(run, roots)
            if len(self._starter) == 1 and self._loop is not None:
                self._loop.call_soon(self._continue_starting)

    def _continue_starting(self) -> None:
        """One slice of the big runs' starts on the loop, then the loop serves what queued up meanwhile."""
        more = self._starter.advance(self._start_slice)
        self._apply()
        self._kick()
        if more and self._loop is not None:
            self._loop.call_soon(self._continue_starting)

    def _start_slice(self, run: RunExec, names: list[str], last: bool) -> None:
        self._guarded(run, algorithm.start_slice, run, names, time.time(), self._fx)

    def cancel_run(self, run_id: str) -> str:
        run = self.runs.get(run_id)
        if run is None:
            row = self.store.get_run(run_id)
            if row is None:
                raise NotFound("run", run_id)
            return row["state"]
        algorithm.cancel_run(run, time.time(), self._fx)
        self._apply()
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

    def post_task_logs(self, chunks: list[LiveLogChunk]) -> None:
        """From any thread: live output of running attempts (``lattice.core.livelogs``) becomes ``task_log``
        events on the loop. A chunk of an attempt that is no longer the task's live one is dropped: its end
        already recorded the attempt's log."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._task_logs, chunks)

    def _task_logs(self, chunks: list[LiveLogChunk]) -> None:
        for chunk in chunks:
            run = self.runs.get(chunk.run_id)
            task = run.tasks.get(chunk.task) if run is not None and not run.state.terminal else None
            if task is not None and task.attempt_id == chunk.attempt_id and task.state in _LIVE_LOGGING:
                self._event(run, "task_log", chunk.task, chunk.event_data())  # type: ignore[arg-type]
        self._kick()

    async def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        await self._wait_done(run_id, timeout)
        return self._stored_run(run_id)

    async def wait_result(self, run_id: str, timeout: float) -> tuple[dict[str, Any], Blobs | None]:
        """:meth:`wait_run` for the results answer: a run that just succeeded comes from the finished table
        (committed when kept: the row's id, workflow_id, state, failed_task and error, and its sinks'
        outputs), without a store read; any other, its stored row and ``None``."""
        await self._wait_done(run_id, timeout)
        kept = self.finished.get(run_id)
        if kept is not None:
            return kept.row, kept.blobs
        return self._stored_run(run_id), None

    async def _wait_done(self, run_id: str, timeout: float) -> None:
        run = self.runs.get(run_id)
        if run is not None and timeout > 0 and not run.done.is_set():
            try:  # in the caller's task: no task of its own (a wait per no-op round trip)
                async with asyncio.timeout(timeout):
                    await run.done.wait()
            except TimeoutError:
                pass

    def _stored_run(self, run_id: str) -> dict[str, Any]:
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFound("run", run_id)
        return row

    async def wait_runs(self, run_ids: list[str], timeout: float) -> None:
        """Wait until every one of the runs this head is running has ended, or ``timeout`` seconds passed."""
        waits = [asyncio.ensure_future(run.done.wait()) for run_id in run_ids
                 if (run := self.runs.get(run_id)) is not None and not run.done.is_set()]
        if not waits or timeout <= 0:
            for wait in waits:
                wait.cancel()
            return
        try:
            await asyncio.wait(waits, timeout=timeout)
        finally:
            for wait in waits:
                wait.cancel()

    def sinks(self, workflow_id: str) -> tuple[str, ...]:
        return self.get_workflow(workflow_id).graph.sinks

    # --- the step -----------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._step_handle is None and self._loop is not None:
            self._step_handle = self._loop.call_soon(self._step)

    def _step_now(self) -> None:
        """Take the step that is due now instead of on a later loop turn (it was going to run anyway)."""
        if self._step_handle is not None:
            self._step_handle.cancel()
            self._step()

    def _on_done(self, attempt_id: str, envelope: Envelope | None, error: ErrorInfo | None) -> None:
        """Called on a backend thread when an attempt ends. Completions are queued and the loop is woken
        once per burst, not once per task (each wake-up is a system call and a loop iteration)."""
        self._arrived.append((attempt_id, envelope, error))
        if not self._wake_pending:
            self._wake_pending = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._take_arrived)

    def _take_arrived(self) -> None:
        self._wake_pending = False
        arrived = self._arrived
        while arrived:
            self._completions.append(arrived.popleft())
        # this is a loop callback already: step now, not one loop turn later (taking a step that was due)
        if self._step_handle is not None:
            self._step_handle.cancel()
        self._step()

    def _step(self) -> None:
        self._step_handle = None
        self.stats["steps"] += 1
        completions, self._completions = self._completions, []
        dispatcher = self._dispatcher
        inflight = dispatcher.inflight
        for attempt_id, envelope, error in completions:
            attempt = inflight.pop(attempt_id, None)
            if attempt is not None:  # else a late answer from an attempt that was stopped
                self._guarded(attempt.run, dispatcher.complete, attempt, attempt_id, envelope, error)
        self._apply()  # once for the whole burst: what it queued and freed is there for the scheduler
        runs = self.runs
        scheduler = self.scheduler
        backlog = self._placed
        backlog.extend(scheduler.schedule(self._place))
        # Each dispatch is a Ray submit (most of a task's cost on the loop): a fan-out placing hundreds at
        # once would hold the loop, and every HTTP request behind it, for as long. Past the step's budget
        # the rest wait (reserved, in order) for the next step, after the loop has served what queued up.
        budget_ends = time.perf_counter() + STEP_BUDGET_S
        while backlog:
            placement = backlog.popleft()
            run_id, name = placement.task.key  # type: ignore[misc]
            run = runs.get(run_id)
            if run is None or run.tasks[name].state is not TaskState.READY:
                self.resources.release(placement.node_id, placement.task.resources)
                scheduler.release(placement.task.key)
                continue
            self.metrics.dispatched(time.time() - placement.task.enqueued_at)
            self._guarded(run, self._dispatch, run, name, placement.node_id)
            if backlog and time.perf_counter() > budget_ends:  # at least one per step: always progress
                self._kick()
                break
        for wait in scheduler.take_wait_changes():  # each kind of wait once per run, as an event
            run = runs.get(wait.run_id)
            if run is not None:
                self._event(run, "run_waiting", None, {"reason": str(wait.reason), "detail": wait.detail})
        self._apply()
        self._flush()

    def _dispatch(self, run: RunExec, name: str, node_id: str) -> None:
        self._dispatcher.dispatch(run, name, node_id)
        self.stats["tasks_dispatched"] += 1

    def _place(self, queued: QueuedTask) -> str | None:
        """Admit a task on a node. CPU tasks without a timeout may wait in Ray's queue on the node
        (prefetch slots, see ``cluster.PREFETCH_PER_CORE``), so its cores never idle while the head turns
        a finished task around; a task with a timeout is only sent where it starts at once, so its clock
        starts when it does."""
        return self.resources.try_place(queued.resources, prefetch=queued.prefetch)

    def _on_timeout(self, attempt_id: str) -> None:
        inflight = self._dispatcher.inflight.get(attempt_id)
        if inflight is None:
            return
        task = inflight.run.tasks[inflight.name]
        if task.attempt_id != attempt_id or task.state is not TaskState.RUNNING:
            return
        inflight.timer = None
        self._guarded(inflight.run, self._dispatcher.time_out, attempt_id)
        self._apply()
        self._kick()

    def _on_retry_due(self, run_id: str, name: str, attempt: int) -> None:
        run = self.runs.get(run_id)
        if run is None:  # finished (cancelled, failed) while the task waited
            return
        self._guarded(run, algorithm.retry_due, run, name, attempt, time.time(), self._fx)
        self._apply()
        self._kick()

    # --- applying the algorithm's decisions ---------------------------------------------------------

    def _apply(self) -> None:
        """Carry out what the algorithm decided, in the order it decided, and leave ``self._fx`` empty.

        Stopping an attempt frees cores that a waiting attempt may take, which the algorithm turns into more
        effects: so after stops, once more. Each list is swapped out before it is worked through, so a
        failure halfway never repeats a write."""
        fx = self._fx
        again = True
        while again:
            again = False
            batch = self._batch
            if fx.enqueue:
                queued, fx.enqueue = fx.enqueue, []
                push = self.scheduler.push
                for item in queued:
                    push(item)
            if fx.dequeue:  # after enqueue: a task queued and then failed in one go must leave the queue
                keys, fx.dequeue = fx.dequeue, []
                remove = self.scheduler.remove
                for key in keys:
                    remove(key)
            if fx.task_changes:
                changes, fx.task_changes = fx.task_changes, []
                for run, name, values in changes:
                    batch.update_task(run.run_id, name, **values)
            if fx.attempts:
                rows, fx.attempts = fx.attempts, []
                for row in rows:
                    self.metrics.attempt_ended(row)
                    self.tracing.attempt_ended(row)
                    if row["error"] is not None:
                        row["error"] = _json(row["error"])
                    batch.add_attempt(**row)
            if fx.outputs:
                outputs, fx.outputs = fx.outputs, []
                runs = self.runs
                for run_id, name, encoded in outputs:
                    kept = runs[run_id].sink_outputs if run_id in runs else None
                    if kept is not None:
                        kept.add(name, encoded)
                    for output, (encoding, data) in encoded.items():
                        batch.put_blob(run_id, name, output, encoding, data)
            if fx.events:
                events, fx.events = fx.events, []
                for run, type, task, data in cast("list[tuple[RunExec, str, str | None, dict[str, Any]]]", events):
                    self._event(run, type, task, data)
            if fx.run_changes:
                run_changes, fx.run_changes = fx.run_changes, []
                for run, values in run_changes:
                    batch.update_run(run.run_id, **values)
            if fx.finished:
                finished, fx.finished = fx.finished, []
                for run in cast("list[RunExec]", finished):
                    self.metrics.run_finished(run.state)
                    self.tracing.run_finished(run.run_id, run.state, run.error)
                self._finished.extend(cast("list[RunExec]", finished))
                for run in finished:
                    self.scheduler.end_run(run.run_id)
            if fx.retry_later:  # a timer on the loop, not a sleep; a cancel meanwhile makes it a no-op
                later, fx.retry_later = fx.retry_later, []
                for run, name, attempt, delay in later:
                    self._loop.call_later(delay, self._on_retry_due, run.run_id, name, attempt)  # type: ignore[union-attr]
            if fx.tasks_succeeded or fx.tasks_failed:
                self.stats["tasks_succeeded"] += fx.tasks_succeeded
                self.stats["tasks_failed"] += fx.tasks_failed
                self.metrics.tasks_ended(fx.tasks_succeeded, fx.tasks_failed)
                fx.tasks_succeeded = fx.tasks_failed = 0
            if fx.stop:  # the only effect that decides more: go round again
                stop, fx.stop = fx.stop, []
                for attempt_id in stop:
                    self._dispatcher.stop(attempt_id)
                again = True

    def _event(self, run: RunExec, type: str, task: str | None, data: dict[str, Any]) -> None:
        run.seq += 1
        now = time.time()
        self._announce.append((run.run_id, self._batch.add_event(run.run_id, run.seq, type, task, data, now)))

    def _guarded(self, run: RunExec, fn: Callable[..., None], *args: Any) -> None:
        """Run one piece of step logic; a bug there fails that run only, never the loop.

        Its effects stay in ``self._fx`` for the caller's :meth:`_apply` (one per burst of events, not one
        per event); failing a run applies at once, so what that run had in flight is stopped before the
        next event is handled."""
        try:
            fn(*args)
        except Exception as exc:
            log.exception("run %s: internal error", run.run_id)
            if not run.state.terminal:
                self._fail_run_internal(run, f"{type(exc).__name__}: {exc}")

    def _fail_run_internal(self, run: RunExec, message: str) -> None:
        algorithm.fail_internal(run, message, time.time(), self._fx)
        self._apply()

    # --- committing and announcing ------------------------------------------------------------------

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
                if error is None and run.state is RunState.SUCCEEDED:
                    self.finished.add(run.run_id, run.workflow.workflow_id, run.state, run.sink_outputs)
                run.done.set()
                self.runs.pop(run.run_id, None)
            if not done.done():
                if error is None:
                    done.set_result(None)
                else:  # flush() must not say "committed" when it was not (a 201 for a run that is not stored)
                    done.set_exception(StoreUnavailable(f"the store refused a write: {error}"))
                    done.add_done_callback(_retrieved)

        if batch or announce or finished:
            self._writer.submit(batch, committed)
            self._last_commit = done
        elif self._last_commit is not None and not self._last_commit.done():
            return self._last_commit  # nothing new, but an earlier step's batch is not committed yet
        else:
            done.set_result(None)
        return done

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every change made so far is committed (used before handing out an id); raises
        :class:`StoreUnavailable` when the store refused it, or did not take it within ``timeout`` s
        (default :data:`FLUSH_TIMEOUT_S`; what it owes stays queued and commits when it recovers).

        A step that is due is taken first: what it does with the changes (the dispatch of a run just
        created) then goes in the same commit, one commit and one round of announcements fewer."""
        self._step_now()
        committed = self._flush()
        if committed.done():
            committed.result()  # raises the store's refusal, as awaiting it would
            return
        try:
            async with asyncio.timeout(timeout or FLUSH_TIMEOUT_S):
                await asyncio.shield(committed)
        except TimeoutError:
            why = self._writer.refusing if self._writer is not None else None
            raise StoreUnavailable(f"the store did not commit within {timeout or FLUSH_TIMEOUT_S:g} s"
                                   + (f" (it refuses writes: {why})" if why else "")) from None

    def abandon_run(self, run_id: str, reason: str) -> None:
        """A run whose creation the store did not confirm (its client got 503): fail it now with the reason,
        so that when the store takes the owed writes it is stored failed, never left running unasked."""
        run = self.runs.get(run_id)
        if run is not None and not run.state.terminal:
            self._fail_run_internal(run, reason)
            self._kick()

    # --- restart ------------------------------------------------------------------------------------

    def _resume_unfinished(self) -> None:
        """Pick up the runs a previous head left unfinished: finished tasks keep their outputs."""
        for run_id in self.store.unfinished_run_ids():
            try:
                run, reset = load_unfinished_run(self.store, self.registry, self.backend.put, run_id)
            except (NotFound, SpecError, ValidationError) as exc:
                log.error("cannot resume run %s: %s", run_id, exc)
                continue
            self.runs[run_id] = run
            row = self.store.get_run(run_id) or {}
            self.scheduler.add_run(run_id, row.get("tenant") or ADMIN_TENANT, row.get("weight") or 1.0, run.priority)
            self.tracing.run_started(run_id, run.workflow.spec.name, len(run.tasks), resumed=True)
            algorithm.resume_run(run, reset, time.time(), self._fx)
            self._warm_pools(run)
            self._apply()
            log.info("resumed run %s with %d unfinished task(s)", run_id, run.active)


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a flush's failure as seen when nobody awaits it (the loop's own flushes)."""
    if not future.cancelled():
        future.exception()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
