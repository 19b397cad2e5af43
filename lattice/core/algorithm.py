"""The run algorithm: what a run's tasks do when something happens to the run. Pure.

The orchestrator (``lattice.core.orchestrator``) is the loop: it owns the I/O — the store writer, the
backend, timers, waiters. What it must *decide* is here, as plain functions of a run's state and one event:
the run was created, an attempt was dispatched, started, finished (succeeded with outputs, or failed with
an :class:`~lattice.wire.failures.ErrorInfo`) or timed out, a cancel was requested, the loop hit an internal
failure, or a previous head left the run unfinished. It is the split LangGraph makes between its pregel
step functions (``_algo.py``) and the loop that applies them (``_loop.py``).

Each function changes the run's state in place, every task transition checked against the one table in
``lattice.core.states``, and appends to an :class:`Effects` what the loop must do about it: task and run
columns to store, events to announce, tasks to queue or take out of the queue, attempts to stop, attempt
records and outputs to store, runs that ended. No I/O, no clock (``now`` is an argument), no Ray, no
asyncio, no store (``tests/unit/core/test_core_imports.py`` checks the imports), so every rule of the state
machine is tested in microseconds (``tests/unit/core/test_algorithm.py``).

:class:`Effects` is an out-parameter, not a return value, because one loop step handles many events and
the head's CPU per task is what bounds fan-out throughput: one collector per step, no allocation per call.
Functions that receive an event for an attempt that is no longer live (a late result of a cancelled or
timed-out attempt) change nothing and return False.

Why one module of about 400 lines: it is the whole state machine of a run, and its rules are read side by
side (a failure skips downstream, a retry re-queues, a cancel stops attempts); the event functions share
private transition helpers that should not become API. What is not a decision lives elsewhere.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lattice.core.dag import Graph
from lattice.core.scheduler import QueuedTask
from lattice.core.states import RunState, TaskState, check_run_transition, check_task_transition
from lattice.wire.attempt import Encoded, Envelope
from lattice.wire.failures import ErrorInfo, ErrorKind
from lattice.wire.spec import TaskSpec

#: the last characters of each stream a ``task_log`` event carries (the attempt record keeps it all)
LOG_EVENT_TAIL = 65536

_LIVE = (TaskState.SCHEDULED, TaskState.RUNNING)
#: attempts of one task that may be lost to node failures before it fails with ``node_lost``
MAX_NODE_LOSSES = 3
#: upstream states that leave a resumed task nothing to wait for
_DEAD_UPSTREAM = (TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED)


@dataclass(slots=True)
class TaskRun:
    """One task of a run, as far as the algorithm needs to know it."""

    spec: TaskSpec
    state: TaskState
    #: upstream tasks that have not succeeded yet; the task is made ready when it reaches 0
    waiting_on: int
    #: attempts made so far; continues from the store after a restart, so attempt ids stay unique
    attempt: int = 0
    #: the live attempt's id, or the last one's
    attempt_id: str | None = None
    #: the node that attempt was sent to
    node_id: str | None = None
    #: attempts lost to no fault of the task (its node died, a shared executor crashed, a head restart):
    #: they do not count against ``retries``; :data:`MAX_NODE_LOSSES` of them and the task fails
    lost: int = 0
    #: run the next attempt in a process of its own (it was in a shared executor that crashed)
    isolate: bool = False


@dataclass(slots=True)
class RunProgress:
    """A run as the algorithm sees it: its graph and its tasks' states, and how it ends."""

    run_id: str
    graph: Graph
    priority: int
    state: RunState
    tasks: dict[str, TaskRun]
    #: tasks not terminal yet; the run ends when it reaches 0
    active: int = 0
    #: the first task that failed, and its error: the run's cause
    failed_task: str | None = None
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class Effects:
    """What the loop must do after the algorithm decided, each list in the order of the decisions."""

    #: (run, task, columns with ``state`` first) to store on the task's row
    task_changes: list[tuple[RunProgress, str, dict[str, Any]]] = field(default_factory=list)
    #: (run, columns) to store on the run's row
    run_changes: list[tuple[RunProgress, dict[str, Any]]] = field(default_factory=list)
    #: (run, type, task, data) to store and announce, in order
    events: list[tuple[RunProgress, str, str | None, dict[str, Any]]] = field(default_factory=list)
    #: tasks made ready: push them to the scheduler
    enqueue: list[QueuedTask] = field(default_factory=list)
    #: scheduler keys ``(run_id, task)`` of tasks that must not be placed any more
    dequeue: list[tuple[str, str]] = field(default_factory=list)
    #: ids of live attempts to stop in the backend (their reservations freed)
    stop: list[str] = field(default_factory=list)
    #: rows of ended attempts (``error`` as a dict), written once, when the attempt ends
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: (run_id, task, outputs) of succeeded attempts, to keep as blobs
    outputs: list[tuple[str, str, dict[str, Encoded]]] = field(default_factory=list)
    #: runs that ended (their waiters are woken once this is committed)
    finished: list[RunProgress] = field(default_factory=list)
    #: (run, task, attempt number, delay in s) of tasks to make ready later: call :func:`retry_due` then
    retry_later: list[tuple[RunProgress, str, int, float]] = field(default_factory=list)
    tasks_succeeded: int = 0
    tasks_failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.task_changes or self.run_changes or self.events or self.enqueue or self.dequeue
                    or self.stop or self.attempts or self.outputs or self.finished or self.retry_later
                    or self.tasks_succeeded or self.tasks_failed)


# --- events ------------------------------------------------------------------------------------------


def start_run(run: RunProgress, now: float, fx: Effects, unplaceable: Mapping[str, str] | None = None,
              largest_node: Mapping[str, float] | None = None, ready: Iterable[str] | None = None) -> None:
    """A run was created with every task ``pending``: fail at once the tasks no node could ever hold
    (``unplaceable``: task name -> why, in the resource manager's words; ``largest_node`` goes into the
    error's detail) and make ready those without upstreams (of ``ready`` only, when given: the first slice
    of a big run's start)."""
    if unplaceable:
        largest = dict(largest_node or {})
        for name in run.graph.order:
            task = run.tasks[name]
            if name in unplaceable and task.state is TaskState.PENDING:
                requested = task.spec.resources.model_dump()
                error = ErrorInfo(
                    ErrorKind.RESOURCE_UNAVAILABLE, "ResourceUnavailable",
                    f"task {name!r} asks for {requested} but {unplaceable[name]}; no node of this cluster can "
                    "ever run it",
                    detail={"requested": task.spec.resources.model_dump(), "largest_node": largest})
                _fail_task(run, name, task, error.to_dict(), now, fx)
    if ready is None:
        for name, task in run.tasks.items():
            if task.state is TaskState.PENDING and task.waiting_on == 0:
                _make_ready(run, name, task, now, fx)
        _maybe_finish(run, now, fx)
    else:
        start_slice(run, ready, now, fx)


def start_slice(run: RunProgress, names: Iterable[str], now: float, fx: Effects) -> None:
    """Make ready those of ``names`` still pending without upstreams: one slice of a big run's start
    (``lattice.core.startup``); the run's other tasks stay pending, counted as active, until their slice."""
    tasks = run.tasks
    for name in names:
        task = tasks[name]
        if task.state is TaskState.PENDING and task.waiting_on == 0:
            _make_ready(run, name, task, now, fx)
    _maybe_finish(run, now, fx)


def dispatch(run: RunProgress, name: str, node_id: str, fx: Effects) -> str:
    """The scheduler placed a ready task on ``node_id``: a new attempt (``ready -> scheduled``). Returns
    its id, unique per run and attempt, also after a restart (the count continues from the store)."""
    task = run.tasks[name]
    task.attempt += 1
    attempt_id = task.attempt_id = f"{run.run_id}:{name}:{task.attempt}"
    task.node_id = node_id
    _set(run, name, task, TaskState.SCHEDULED, fx, {
        "state": TaskState.SCHEDULED, "attempt": task.attempt, "attempt_id": attempt_id, "node_id": node_id,
        "started_at": None, "finished_at": None, "error": None})
    return attempt_id


def attempt_started(run: RunProgress, name: str, attempt_id: str, now: float, fx: Effects) -> bool:
    """The attempt holds its cores now (at once, or when one freed up): ``scheduled -> running``."""
    task = run.tasks[name]
    if task.attempt_id != attempt_id or task.state is not TaskState.SCHEDULED:
        return False
    _set(run, name, task, TaskState.RUNNING, fx, {"state": TaskState.RUNNING, "started_at": now})
    fx.events.append((run, "task_started", name, {"attempt": task.attempt, "attempt_id": attempt_id,
                                                   "node_id": task.node_id}))
    return True


def attempt_waiting(run: RunProgress, name: str, fx: Effects) -> None:
    """The attempt was sent to its node but waits there for a free core (a prefetch slot): it stays
    ``scheduled``, and says so."""
    task = run.tasks[name]
    fx.events.append((run, "task_scheduled", name, {"attempt": task.attempt, "attempt_id": task.attempt_id,
                                                     "node_id": task.node_id, "waiting_for": "a free core"}))


def attempt_finished(run: RunProgress, name: str, attempt_id: str, envelope: Envelope | None,
                     error: ErrorInfo | None, now: float, fx: Effects) -> bool:
    """The backend reports the attempt's end: its envelope, or the error that left none (a worker died).

    An envelope with an ``error`` is a failed attempt (the task raised, or its outputs did not check);
    one without is a success. Returns False, changing nothing, for an attempt no longer live.
    """
    task = run.tasks[name]
    if task.attempt_id != attempt_id or task.state not in _LIVE:
        return False  # a late answer from an attempt that was cancelled or timed out
    if task.state is TaskState.SCHEDULED:  # it got a core before the head noticed one was free
        attempt_started(run, name, attempt_id, now, fx)
    if error is not None and _not_its_fault(error):
        _attempt_lost(run, name, task, error, now, fx)
    elif error is not None:
        _attempt_failed(run, name, task, error, None, now, fx)
    elif envelope is not None and envelope.error:
        _attempt_failed(run, name, task, ErrorInfo.from_dict(envelope.error), envelope, now, fx)
    elif envelope is not None:
        _attempt_succeeded(run, name, task, envelope, now, fx)
    else:
        _attempt_failed(run, name, task, ErrorInfo(ErrorKind.INTERNAL, "InternalError",
                                                   "the backend reported neither a result nor an error"),
                        None, now, fx)
    return True


def node_lost(run: RunProgress, node_id: str, address: str, attempts: Collection[tuple[str, str]], now: float,
              fx: Effects, reason: str = "dead") -> list[str]:
    """The node ``node_id`` died (or left) with these ``(task, attempt id)`` attempts of the run on it: each
    becomes a new attempt elsewhere without using the task's ``retries`` (a node loss is not the task's
    fault), up to :data:`MAX_NODE_LOSSES` per task, then the task fails with ``node_lost``. One
    ``node_lost`` event names the node and the tasks that moved. Returns the tasks that were live."""
    moved: list[str] = []
    for name, attempt_id in attempts:
        task = run.tasks[name]
        if task.attempt_id != attempt_id or task.state not in _LIVE:
            continue
        moved.append(name)
    if not moved:
        return moved
    fx.events.append((run, "node_lost", None, {"node_id": node_id, "address": address, "tasks": moved,
                                                "reason": reason}))
    for name in moved:
        task = run.tasks[name]
        error = ErrorInfo(ErrorKind.NODE_LOST, "NodeLost",
                          f"node {node_id} ({address}) was lost ({reason}) while it ran task {name!r}",
                          detail={"node_id": node_id, "address": address})
        _attempt_lost(run, name, task, error, now, fx)
    return moved


def _not_its_fault(error: ErrorInfo) -> bool:
    """A lost node, or a crash of an executor the attempt shared with others (which of them crashed it is
    unknown, so each is run again in a process of its own, where a guilty one fails by itself)."""
    return error.kind is ErrorKind.NODE_LOST or bool(error.detail.get("shared_executor"))


def _attempt_lost(run: RunProgress, name: str, task: TaskRun, error: ErrorInfo, now: float, fx: Effects) -> None:
    """A new attempt that does not use the task's ``retries``; after :data:`MAX_NODE_LOSSES`, a failure."""
    err = error.to_dict()
    _attempt_ended(run, name, task, TaskState.FAILED, None, err, now, fx)
    task.lost += 1
    fx.task_changes.append((run, name, {"node_losses": task.lost}))  # stored: the cap holds across restarts
    task.isolate = task.isolate or bool(error.detail.get("shared_executor"))
    if task.lost > MAX_NODE_LOSSES:
        final = ErrorInfo(ErrorKind.NODE_LOST, error.type,
                          f"task {name!r} lost {task.lost} attempts to node or executor failures; the last: "
                          f"{error.message}", detail={**error.detail, "losses": task.lost})
        _fail_task(run, name, task, final.to_dict(), now, fx)
        _maybe_finish(run, now, fx)
        return
    if task.state is TaskState.SCHEDULED:  # it waited in the node's queue and never ran: straight back
        _make_ready(run, name, task, now, fx)
        return
    _set(run, name, task, TaskState.RETRYING, fx, {"state": TaskState.RETRYING, "error": err})
    fx.events.append((run, "task_retrying", name, {"attempt": task.attempt, "error": err, "lost": True,
                                                    "retries_left": task.spec.retries - (task.attempt - task.lost)}))
    _make_ready(run, name, task, now, fx)


def attempt_timed_out(run: RunProgress, name: str, attempt_id: str, now: float, fx: Effects) -> bool:
    """The attempt's timer fired while it ran: a ``timeout`` failure (retried like any other)."""
    task = run.tasks[name]
    if task.attempt_id != attempt_id or task.state is not TaskState.RUNNING:
        return False
    timeout = task.spec.timeout
    error = ErrorInfo(ErrorKind.TIMEOUT, "TaskTimeout",
                      f"task {name!r} ran longer than its timeout of {timeout} s and was stopped",
                      detail={"timeout_s": timeout})
    _attempt_failed(run, name, task, error, None, now, fx)
    return True


def retry_due(run: RunProgress, name: str, attempt: int, now: float, fx: Effects) -> bool:
    """The delay before retrying ``attempt`` is over: the task is queued again. Returns False, changing
    nothing, when the task left ``retrying`` meanwhile (the run was cancelled or failed, or resumed)."""
    task = run.tasks.get(name)
    if task is None or task.state is not TaskState.RETRYING or task.attempt != attempt:
        return False
    _make_ready(run, name, task, now, fx)
    return True


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether a failed attempt is tried again, after how long, and why not when it is not."""

    retry: bool
    delay_s: float = 0.0
    reason: str = ""


def decide_retry(spec: TaskSpec, attempt: int, error: ErrorInfo, attempt_id: str = "") -> RetryDecision:
    """The retry policy of a task (``retries``, ``retry_delay``, ``backoff``, ``max_delay``, ``jitter``,
    ``non_retryable``) applied to its failed attempt number ``attempt`` (1 for the first).

    Never for a kind no retry changes, an error that says so (``NonRetryable``), an exception type the task
    lists (or a subclass of one: the error names its classes), or when no retries are left. Otherwise the
    delay is ``retry_delay * backoff ** (attempt - 1)``, or the delay the error asks for, capped at
    ``max_delay``; ``jitter`` takes up to that fraction off it. The jitter is derived from the attempt's id,
    not a random generator, so the decision stays a pure function (and differs between tasks and attempts,
    which is what jitter is for: retries of many tasks that failed together do not arrive together).
    """
    if not error.retryable:
        why = ("the task raised NonRetryable" if error.detail.get("retryable") is False
               else f"a {error.kind} failure is not retried")
        return RetryDecision(False, reason=why)
    if spec.non_retryable:
        names = error.detail.get("exception_types") or [error.type]
        listed = next((n for n in names if n in spec.non_retryable), None)
        if listed is not None:
            return RetryDecision(False, reason=f"{error.type} is non_retryable (listed: {listed})")
    if attempt > spec.retries:
        return RetryDecision(False, reason=f"no retries left ({spec.retries} allowed)")
    asked = error.next_delay_s
    delay = asked if asked is not None else spec.retry_delay * spec.backoff ** (attempt - 1)
    if spec.max_delay is not None:
        delay = min(delay, spec.max_delay)
    if spec.jitter and delay > 0:
        sample = zlib.crc32(attempt_id.encode()) / 0xFFFFFFFF
        delay *= 1 - spec.jitter * sample
    return RetryDecision(True, delay_s=round(delay, 6))


def cancel_run(run: RunProgress, now: float, fx: Effects) -> None:
    """Cancel every unfinished task: queued ones leave the queue, live attempts are stopped (and recorded
    as cancelled); the run ends ``cancelled``. A finished run does not change."""
    for name, task in run.tasks.items():
        if task.state.terminal:
            continue
        _withdraw(run, name, task, TaskState.CANCELLED, now, fx)
        _set(run, name, task, TaskState.CANCELLED, fx, {"state": TaskState.CANCELLED, "finished_at": now})
        fx.events.append((run, "task_cancelled", name, {}))
    _finish_run(run, RunState.CANCELLED, now, fx)


def fail_internal(run: RunProgress, message: str, now: float, fx: Effects) -> None:
    """The loop failed while handling this run (a bug, or the store refused a write): every unfinished
    task fails, whatever state the bug left it in, and the run fails with an ``internal`` error unless it
    already has a cause."""
    for name, task in run.tasks.items():
        if task.state.terminal:
            continue
        _withdraw(run, name, task, TaskState.FAILED, now, fx)
        task.state = TaskState.FAILED  # unchecked on purpose: a bug may have left any state
        fx.task_changes.append((run, name, {"state": TaskState.FAILED, "finished_at": now}))
    run.active = 0
    if run.error is None:
        run.error = ErrorInfo(ErrorKind.INTERNAL, "InternalError", message).to_dict()
    _finish_run(run, RunState.FAILED, now, fx)


def restore_tasks(graph: Graph, specs: Mapping[str, TaskSpec],
                  stored: Mapping[str, tuple[str, int] | tuple[str, int, int]],
                  ) -> tuple[dict[str, TaskRun], int, list[str]]:
    """The pure part of resuming a run a previous head left unfinished, from its stored task rows
    (``stored``: task -> (state, attempts made[, node losses so far]); a task without a row is ``pending``).

    Finished tasks keep their state; every other one goes back to ``pending``, its attempt count kept
    so new attempt ids stay unique, and its node losses kept so that :data:`MAX_NODE_LOSSES` counts
    across head restarts too; it waits on the upstreams that have not succeeded. An attempt in flight
    when the previous head died is one more loss. Returns the tasks, how many are unfinished, and the
    names of those that were reset.
    """
    tasks: dict[str, TaskRun] = {}
    for name in graph.order:
        row = stored.get(name, (TaskState.PENDING, 0))
        state, attempt = row[0], row[1]
        lost = int(row[2] or 0) if len(row) > 2 else 0  # type: ignore[misc]
        tasks[name] = TaskRun(spec=specs[name], state=TaskState(state), waiting_on=0, attempt=int(attempt or 0),
                              lost=lost)
    active = 0
    reset: list[str] = []
    for name, task in tasks.items():
        if task.state.terminal:
            continue
        active += 1
        task.waiting_on = sum(1 for u in graph.upstream[name] if tasks[u].state is not TaskState.SUCCEEDED)
        if task.state is not TaskState.PENDING:
            if task.state in _LIVE:  # in flight when the previous head died: not the task's fault
                task.lost += 1
            task.state = TaskState.PENDING
            reset.append(name)
    return tasks, active, reset


def resume_run(run: RunProgress, reset: Collection[str], now: float, fx: Effects) -> None:
    """Continue a restored run (:func:`restore_tasks`): store the reset tasks as ``pending``, say the run
    resumed, skip what depends on a failed task, make ready what has all its inputs. A reset task that
    has now lost more than :data:`MAX_NODE_LOSSES` attempts (to nodes, or heads, that died under it) fails
    with ``node_lost``, as it would have without the restart."""
    for name in reset:
        fx.task_changes.append((run, name, {"state": TaskState.PENDING, "node_losses": run.tasks[name].lost}))
    fx.events.append((run, "run_resumed", None, {"pending_tasks": run.active}))
    for name in reset:
        task = run.tasks[name]
        if task.lost > MAX_NODE_LOSSES and task.state is TaskState.PENDING:
            error = ErrorInfo(ErrorKind.NODE_LOST, "NodeLost",
                              f"task {name!r} lost {task.lost} attempts to node failures or head restarts",
                              detail={"losses": task.lost})
            _fail_task(run, name, task, error.to_dict(), now, fx)
    upstream = run.graph.upstream
    for name, task in run.tasks.items():
        if task.state is not TaskState.PENDING:
            continue
        if any(run.tasks[u].state in _DEAD_UPSTREAM for u in upstream[name]):
            _set(run, name, task, TaskState.SKIPPED, fx, {"state": TaskState.SKIPPED})
        elif task.waiting_on == 0:
            _make_ready(run, name, task, now, fx)
    _maybe_finish(run, now, fx)


# --- transitions -------------------------------------------------------------------------------------


def _set(run: RunProgress, name: str, task: TaskRun, state: TaskState, fx: Effects, values: dict[str, Any]) -> None:
    check_task_transition(task.state, state)
    if state.terminal and not task.state.terminal:
        run.active -= 1
    task.state = state
    fx.task_changes.append((run, name, values))


def _make_ready(run: RunProgress, name: str, task: TaskRun, now: float, fx: Effects) -> None:
    _set(run, name, task, TaskState.READY, fx, {"state": TaskState.READY, "queued_at": now})
    spec = task.spec
    # A task with a timeout is only sent where it starts at once (no prefetch slot), so its clock starts
    # when it does.
    fx.enqueue.append(QueuedTask(
        key=(run.run_id, name), resources=spec.resources, priority=run.priority + spec.priority,
        enqueued_at=now, critical_path=run.graph.critical_path[name], prefetch=spec.timeout is None, run=run.run_id))
    fx.events.append((run, "task_queued", name, {"attempt": task.attempt + 1}))


def _withdraw(run: RunProgress, name: str, task: TaskRun, state: TaskState, now: float, fx: Effects) -> None:
    """Take an unfinished task out of the queue, and stop and record its attempt if one is out."""
    if task.state in _LIVE:
        fx.stop.append(task.attempt_id)  # type: ignore[arg-type]
        _attempt_ended(run, name, task, state, None, None, now, fx)
    fx.dequeue.append((run.run_id, name))


def _attempt_ended(run: RunProgress, name: str, task: TaskRun, state: TaskState, envelope: Envelope | None,
                   error: dict[str, Any] | None, now: float, fx: Effects, stderr_tail: str | None = None) -> None:
    """An attempt is recorded once, when it ends (its live state is on the task row and in events)."""
    if envelope is not None:
        node_id, pid = envelope.node_id or task.node_id, envelope.pid
        started, finished = envelope.started_at, envelope.finished_at
        stdout, stderr = envelope.stdout, envelope.stderr
    else:
        node_id, pid, started, finished, stdout, stderr = task.node_id, None, None, now, "", ""
    if not stderr and stderr_tail:
        stderr = stderr_tail
    fx.attempts.append({
        "id": task.attempt_id, "run_id": run.run_id, "task": name, "number": task.attempt, "state": state,
        "node_id": node_id, "worker_pid": pid, "started_at": started, "finished_at": finished,
        "stdout": stdout or None, "stderr": stderr or None, "error": error})
    if stdout:
        fx.events.append((run, "task_log", name, {"stream": "stdout", "text": stdout[-LOG_EVENT_TAIL:],
                                                  "attempt_id": task.attempt_id, "final": True}))
    if stderr:
        fx.events.append((run, "task_log", name, {"stream": "stderr", "text": stderr[-LOG_EVENT_TAIL:],
                                                  "attempt_id": task.attempt_id, "final": True}))


def _attempt_succeeded(run: RunProgress, name: str, task: TaskRun, envelope: Envelope, now: float,
                       fx: Effects) -> None:
    _attempt_ended(run, name, task, TaskState.SUCCEEDED, envelope, None, now, fx)
    fx.outputs.append((run.run_id, name, envelope.outputs))
    started, finished = envelope.started_at, envelope.finished_at
    _set(run, name, task, TaskState.SUCCEEDED, fx, {
        "state": TaskState.SUCCEEDED, "started_at": started, "finished_at": finished,
        "node_id": envelope.node_id or task.node_id})
    fx.events.append((run, "task_succeeded", name, {
        "attempt": task.attempt, "duration_s": round((finished or 0) - (started or 0), 6),
        "node_id": envelope.node_id}))
    fx.tasks_succeeded += 1
    tasks = run.tasks
    for child in run.graph.downstream[name]:
        child_task = tasks[child]
        child_task.waiting_on -= 1
        if child_task.waiting_on == 0 and child_task.state is TaskState.PENDING:
            _make_ready(run, child, child_task, now, fx)
    _maybe_finish(run, now, fx)


def _attempt_failed(run: RunProgress, name: str, task: TaskRun, error: ErrorInfo, envelope: Envelope | None,
                    now: float, fx: Effects) -> None:
    """Retry as the task's policy decides (:func:`decide_retry`): at once, or ``retrying`` until the loop
    calls :func:`retry_due` after the delay; else fail, saying why it was not retried."""
    err = error.to_dict()
    _attempt_ended(run, name, task, TaskState.FAILED, envelope, err, now, fx,
                   stderr_tail=error.detail.get("stderr_tail"))
    own = task.attempt - task.lost  # attempts lost with their node are not the task's to pay for
    decision = decide_retry(task.spec, own, error, task.attempt_id or "")
    if decision.retry:
        delay = decision.delay_s
        _set(run, name, task, TaskState.RETRYING, fx, {"state": TaskState.RETRYING, "error": err})
        fx.events.append((run, "task_retrying", name, {
            "attempt": task.attempt, "error": err, "retries_left": task.spec.retries - own + 1,
            "delay_s": delay, "retry_at": now + delay}))
        if delay > 0:
            fx.retry_later.append((run, name, task.attempt, delay))
        else:
            _make_ready(run, name, task, now, fx)
        return
    _fail_task(run, name, task, err, now, fx, not_retried=decision.reason)
    _maybe_finish(run, now, fx)


def _fail_task(run: RunProgress, name: str, task: TaskRun, err: dict[str, Any], now: float, fx: Effects,
               not_retried: str | None = None) -> None:
    """The task has failed for good: downstream tasks that have not started are skipped; the first task
    to fail is the run's cause. ``not_retried`` says why the retry policy gave up, on the event."""
    fx.dequeue.append((run.run_id, name))
    _set(run, name, task, TaskState.FAILED, fx, {"state": TaskState.FAILED, "error": err, "finished_at": now})
    data: dict[str, Any] = {"attempt": task.attempt, "error": err}
    if not_retried:
        data["not_retried"] = not_retried
    fx.events.append((run, "task_failed", name, data))
    fx.tasks_failed += 1
    if run.failed_task is None:
        run.failed_task = name
        run.error = err
    _skip_downstream(run, name, fx)


def _skip_downstream(run: RunProgress, name: str, fx: Effects) -> None:
    downstream = run.graph.downstream
    stack = list(downstream[name])
    while stack:
        child = stack.pop()
        task = run.tasks[child]
        if task.state is not TaskState.PENDING:
            continue
        _set(run, child, task, TaskState.SKIPPED, fx, {"state": TaskState.SKIPPED})
        fx.events.append((run, "task_skipped", child, {"because": name}))
        stack.extend(downstream[child])


def _maybe_finish(run: RunProgress, now: float, fx: Effects) -> None:
    if run.active == 0 and not run.state.terminal:
        _finish_run(run, RunState.FAILED if run.failed_task else RunState.SUCCEEDED, now, fx)


def _finish_run(run: RunProgress, state: RunState, now: float, fx: Effects) -> None:
    if run.state.terminal:
        return
    check_run_transition(run.state, state)
    run.state = state
    fx.run_changes.append((run, {"state": state, "finished_at": now, "failed_task": run.failed_task,
                                 "error": run.error}))
    fx.events.append((run, "run_finished", None, {"state": str(state), "failed_task": run.failed_task,
                                                  "error": run.error}))
    fx.finished.append(run)


__all__ = [
    "MAX_NODE_LOSSES", "Effects", "RetryDecision", "RunProgress", "TaskRun", "attempt_finished", "attempt_started",
    "attempt_timed_out", "attempt_waiting", "cancel_run", "decide_retry", "dispatch", "fail_internal", "node_lost",
    "restore_tasks", "resume_run", "retry_due", "start_run",
]
