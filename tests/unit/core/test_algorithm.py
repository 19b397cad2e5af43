"""The run algorithm on its own: every rule of a run's state machine, with no loop, store, clock or Ray.

``Loop`` below stands in for the orchestrator only as far as these tests need: it places every queued
task at once and keeps the attempt ids the algorithm hands out. Everything asserted is what
``lattice.core.algorithm`` decided.
"""

from __future__ import annotations

import pytest

from lattice.core import algorithm
from lattice.core.algorithm import Effects, RunProgress, TaskRun
from lattice.core.dag import build_graph
from lattice.core.states import InvalidTransition, RunState, TaskState
from lattice.wire.attempt import Envelope
from lattice.wire.failures import ErrorInfo, ErrorKind
from lattice.wire.resources import Resources
from lattice.wire.spec import InputSpec, TaskSpec, WorkflowSpec

NOW = 1000.0


def t(name: str, *upstream: str, retries: int = 0, timeout: float | None = None, priority: int = 0,
      cpu: float = 1.0) -> TaskSpec:
    return TaskSpec(name=name, builtin="noop", outputs=["out"], retries=retries, timeout=timeout, priority=priority,
                    resources=Resources(cpu=cpu), inputs={u: InputSpec(task=u, output="out") for u in upstream})


def new_run(*tasks: TaskSpec, priority: int = 0) -> RunProgress:
    graph = build_graph(WorkflowSpec(tasks=list(tasks)))
    specs = {task.name: task for task in tasks}
    runs = {name: TaskRun(spec=specs[name], state=TaskState.PENDING, waiting_on=len(graph.upstream[name]))
            for name in graph.order}
    return RunProgress("r1", graph, priority, RunState.RUNNING, runs, active=len(runs))


def ok(task: str = "x") -> Envelope:
    return Envelope(outputs={"out": ("json", b"1")}, started_at=1.0, finished_at=1.25, node_id="n1", pid=7)


def raised(message: str = "boom", kind: ErrorKind = ErrorKind.EXCEPTION, **detail: object) -> Envelope:
    error = ErrorInfo(kind, "ValueError", message, "Traceback ...", detail=dict(detail))
    return Envelope(error=error.to_dict(), started_at=1.0, finished_at=1.1, node_id="n1", pid=7)


class Loop:
    """Places what the algorithm queues at once, on one node with room for everything."""

    def __init__(self, run: RunProgress) -> None:
        self.run = run
        self.fx = Effects()
        self.attempts: dict[str, str] = {}  # task -> its live attempt id
        self.events: list[tuple[str, str | None]] = []  # (type, task), in order
        self.rows: list[dict] = []
        self.changes: list[tuple[str, dict]] = []
        self.event_data: list[tuple[str, dict]] = []  # (type, data), in order, until take_all_events
        self.last_retry_later: list[tuple[str, int, float]] = []

    def take(self) -> Effects:
        fx, self.fx = self.fx, Effects()
        self.events += [(type, task) for _, type, task, _ in fx.events]
        self.event_data += [(type, data) for _, type, _, data in fx.events]
        if fx.retry_later:
            self.last_retry_later = [(name, attempt, delay) for _, name, attempt, delay in fx.retry_later]
        self.rows += fx.attempts
        self.changes += [(name, values) for _, name, values in fx.task_changes]
        return fx

    def place_all(self, wait: bool = False) -> list[str]:
        """Dispatch every queued task; each starts at once unless ``wait`` (a prefetch slot)."""
        placed: list[str] = []
        while self.fx.enqueue:
            queued, self.fx.enqueue = self.fx.enqueue, []
            for item in queued:
                _, name = item.key  # type: ignore[misc]
                attempt_id = algorithm.dispatch(self.run, name, "n1", self.fx)
                self.attempts[name] = attempt_id
                if wait:
                    algorithm.attempt_waiting(self.run, name, self.fx)
                else:
                    assert algorithm.attempt_started(self.run, name, attempt_id, NOW, self.fx)
                placed.append(name)
        return placed

    def start(self, **kwargs: object) -> list[str]:
        algorithm.start_run(self.run, NOW, self.fx, **kwargs)  # type: ignore[arg-type]
        placed = self.place_all()
        self.take()
        return placed

    def finish(self, name: str, envelope: Envelope | None = None, error: ErrorInfo | None = None) -> list[str]:
        """End the task's live attempt; returns the tasks that were placed because of it."""
        if envelope is None and error is None:
            envelope = ok()
        assert algorithm.attempt_finished(self.run, name, self.attempts[name], envelope, error, NOW, self.fx)
        placed = self.place_all()
        self.take()
        return placed

    def take_all_events(self) -> list[tuple[str, dict]]:
        """(type, data) of the events so far, without ``error`` (checked elsewhere); then forgets them."""
        self.take()
        out = [(type, {k: v for k, v in data.items() if k not in ("error", "retries_left")})
               for type, data in self.event_data]
        self.event_data = []
        return out

    def state(self, name: str) -> TaskState:
        return self.run.tasks[name].state


def test_diamond_runs_each_task_once_its_inputs_are_there() -> None:
    loop = Loop(new_run(t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c")))
    assert loop.start() == ["a"]
    assert sorted(loop.finish("a")) == ["b", "c"]
    assert loop.finish("b") == []  # d still waits for c
    assert loop.state("d") is TaskState.PENDING and loop.run.tasks["d"].waiting_on == 1
    assert loop.finish("c") == ["d"]
    fx_before = len(loop.events)
    loop.finish("d")
    assert loop.run.state is RunState.SUCCEEDED and loop.run.active == 0
    assert loop.events[-1] == ("run_finished", None) and len(loop.events) == fx_before + 2
    assert [row["id"] for row in loop.rows] == ["r1:a:1", "r1:b:1", "r1:c:1", "r1:d:1"]
    assert all(row["state"] is TaskState.SUCCEEDED for row in loop.rows)


def test_events_and_stored_columns_of_one_task() -> None:
    loop = Loop(new_run(t("a")))
    algorithm.start_run(loop.run, NOW, loop.fx)
    fx = loop.fx
    assert [e[1:] for e in fx.events] == [("task_queued", "a", {"attempt": 1})]
    assert fx.task_changes[0][1:] == ("a", {"state": TaskState.READY, "queued_at": NOW})
    loop.place_all()
    fx = loop.take()
    assert fx.task_changes[-2][2] == {"state": TaskState.SCHEDULED, "attempt": 1, "attempt_id": "r1:a:1",
                                      "node_id": "n1", "started_at": None, "finished_at": None, "error": None}
    assert fx.task_changes[-1][2] == {"state": TaskState.RUNNING, "started_at": NOW}
    assert fx.events[-1][1:] == ("task_started", "a", {"attempt": 1, "attempt_id": "r1:a:1", "node_id": "n1"})
    algorithm.attempt_finished(loop.run, "a", "r1:a:1", Envelope(outputs={"out": ("json", b"2")}, stdout="hi",
                                                                   started_at=1.0, finished_at=1.5, node_id="n9"),
                               None, NOW, loop.fx)
    fx = loop.take()
    assert [e[1] for e in fx.events] == ["task_log", "task_succeeded", "run_finished"]
    assert fx.events[0][3] == {"stream": "stdout", "text": "hi", "attempt_id": "r1:a:1",
                                 "final": True}
    assert fx.events[1][3] == {"attempt": 1, "duration_s": 0.5, "node_id": "n9"}
    assert fx.outputs == [("r1", "a", {"out": ("json", b"2")})]
    assert fx.task_changes[-1][2] == {"state": TaskState.SUCCEEDED, "started_at": 1.0, "finished_at": 1.5,
                                      "node_id": "n9"}
    assert fx.run_changes[0][1] == {"state": RunState.SUCCEEDED, "finished_at": NOW, "failed_task": None,
                                    "error": None}
    assert fx.finished == [loop.run] and fx.tasks_succeeded == 1
    assert fx.attempts[0] == {"id": "r1:a:1", "run_id": "r1", "task": "a", "number": 1,
                              "state": TaskState.SUCCEEDED, "node_id": "n9", "worker_pid": None,
                              "started_at": 1.0, "finished_at": 1.5, "stdout": "hi", "stderr": None,
                              "error": None}


def test_fan_out_and_fan_in() -> None:
    children = [t(f"c{i}", "root") for i in range(50)]
    loop = Loop(new_run(t("root"), *children, t("sink", *(c.name for c in children))))
    loop.start()
    assert len(loop.finish("root")) == 50
    for i in range(49):
        assert loop.finish(f"c{i}") == []
    assert loop.finish("c49") == ["sink"]
    loop.finish("sink")
    assert loop.run.state is RunState.SUCCEEDED


def test_a_failure_skips_downstream_while_an_independent_branch_finishes() -> None:
    loop = Loop(new_run(t("a"), t("b", "a"), t("c", "b"), t("x"), t("y", "x")))
    assert sorted(loop.start()) == ["a", "x"]
    loop.finish("a", raised())
    assert loop.state("a") is TaskState.FAILED
    assert loop.state("b") is TaskState.SKIPPED and loop.state("c") is TaskState.SKIPPED
    assert ("task_skipped", "b") in loop.events and ("task_skipped", "c") in loop.events
    assert loop.run.state is RunState.RUNNING  # x and y are still to come
    assert loop.finish("x") == ["y"]
    loop.finish("y")
    assert loop.run.state is RunState.FAILED and loop.run.failed_task == "a"
    assert loop.run.error is not None and loop.run.error["kind"] == "exception"
    assert loop.run.error["message"] == "boom"


def test_the_first_failure_is_the_cause() -> None:
    loop = Loop(new_run(t("a"), t("b"), t("c")))
    loop.start()
    loop.finish("b", raised("first"))
    loop.finish("a", raised("second"))
    loop.finish("c")
    assert loop.run.state is RunState.FAILED
    assert loop.run.failed_task == "b" and loop.run.error["message"] == "first"  # type: ignore[index]


def test_retries_make_new_attempts_until_one_succeeds() -> None:
    loop = Loop(new_run(t("a", retries=2)))
    loop.start()
    assert loop.finish("a", raised()) == ["a"]
    assert loop.finish("a", None, ErrorInfo(ErrorKind.WORKER_DIED, "WorkerCrashedError", "gone")) == ["a"]
    loop.finish("a")
    assert [row["id"] for row in loop.rows] == ["r1:a:1", "r1:a:2", "r1:a:3"]
    assert [row["state"] for row in loop.rows] == [TaskState.FAILED, TaskState.FAILED, TaskState.SUCCEEDED]
    assert loop.rows[1]["node_id"] == "n1" and loop.rows[1]["finished_at"] == NOW  # no envelope: the head's view
    retrying = [values for name, values in loop.changes if values["state"] is TaskState.RETRYING]
    assert [values["error"]["kind"] for values in retrying] == ["exception", "worker_died"]
    assert loop.run.state is RunState.SUCCEEDED


def test_retries_run_out() -> None:
    loop = Loop(new_run(t("a", retries=1), t("b", "a")))
    loop.start()
    fx = Effects()
    algorithm.attempt_finished(loop.run, "a", "r1:a:1", raised(), None, NOW, fx)
    assert [e[1:3] for e in fx.events] == [("task_retrying", "a"), ("task_queued", "a")]
    assert fx.events[0][3]["retries_left"] == 1 and fx.events[1][3] == {"attempt": 2}
    loop.fx = fx
    loop.place_all()
    loop.take()
    loop.finish("a", raised())
    assert loop.state("a") is TaskState.FAILED and loop.state("b") is TaskState.SKIPPED
    assert loop.run.state is RunState.FAILED


@pytest.mark.parametrize("kind, detail", [
    (ErrorKind.CANCELLED, {}),
    (ErrorKind.RESOURCE_UNAVAILABLE, {}),
    (ErrorKind.UPSTREAM_FAILED, {}),
    (ErrorKind.EXCEPTION, {"retryable": False}),  # the error itself says no
])
def test_errors_that_no_retry_changes_fail_at_once(kind: ErrorKind, detail: dict) -> None:
    loop = Loop(new_run(t("a", retries=3)))
    loop.start()
    assert loop.finish("a", raised(kind=kind, **detail)) == []
    assert loop.state("a") is TaskState.FAILED and loop.run.state is RunState.FAILED
    assert ("task_retrying", "a") not in loop.events


def test_a_timeout_is_a_failure_that_is_retried() -> None:
    loop = Loop(new_run(t("a", timeout=5, retries=1)))
    loop.start()
    first = loop.attempts["a"]
    assert algorithm.attempt_timed_out(loop.run, "a", first, NOW, loop.fx)
    loop.place_all()
    loop.take()
    assert loop.rows[0]["state"] is TaskState.FAILED and loop.rows[0]["error"]["kind"] == "timeout"
    second = loop.attempts["a"]
    assert second == "r1:a:2"
    assert not algorithm.attempt_timed_out(loop.run, "a", first, NOW, loop.fx)  # a stale timer
    assert not algorithm.attempt_finished(loop.run, "a", first, ok(), None, NOW, loop.fx)  # its late result
    assert not loop.fx
    assert algorithm.attempt_timed_out(loop.run, "a", second, NOW, loop.fx)
    loop.take()
    assert loop.run.state is RunState.FAILED
    assert loop.run.error["type"] == "TaskTimeout" and loop.run.error["detail"] == {"timeout_s": 5}  # type: ignore[index]
    assert "ran longer than its timeout of 5.0 s" in loop.run.error["message"]  # type: ignore[index]


def test_a_task_with_a_timeout_is_never_prefetched() -> None:
    loop = Loop(new_run(t("a", timeout=5, priority=3), t("b", "a"), priority=10))
    algorithm.start_run(loop.run, NOW, loop.fx)
    (queued,) = loop.fx.enqueue
    assert queued.key == ("r1", "a") and queued.priority == 13 and queued.critical_path == 2
    assert queued.prefetch is False and queued.enqueued_at == NOW


def test_an_attempt_waiting_for_a_core_is_scheduled_until_it_gets_one() -> None:
    loop = Loop(new_run(t("a"), t("b")))
    algorithm.start_run(loop.run, NOW, loop.fx)
    loop.place_all(wait=True)
    fx = loop.take()
    scheduled = {e[2]: e[3] for e in fx.events if e[1] == "task_scheduled"}
    assert scheduled["b"] == {"attempt": 1, "attempt_id": "r1:b:1", "node_id": "n1", "waiting_for": "a free core"}
    assert len(scheduled) == 2
    assert loop.state("a") is TaskState.SCHEDULED
    assert algorithm.attempt_started(loop.run, "a", "r1:a:1", NOW, loop.fx)
    assert not algorithm.attempt_started(loop.run, "a", "r1:a:1", NOW, loop.fx)  # once only
    loop.take()
    # b finishes before the head saw it start: it is shown running first, then succeeded
    loop.finish("b")
    assert loop.events[-2:] == [("task_started", "b"), ("task_succeeded", "b")]


def test_cancel_stops_live_attempts_and_ignores_their_late_results() -> None:
    loop = Loop(new_run(t("a"), t("b"), t("c", "a")))
    algorithm.start_run(loop.run, NOW, loop.fx)
    loop.place_all(wait=True)
    algorithm.attempt_started(loop.run, "a", "r1:a:1", NOW, loop.fx)  # a runs, b waits for a core
    loop.take()
    fx = Effects()
    algorithm.cancel_run(loop.run, NOW, fx)
    assert sorted(fx.stop) == ["r1:a:1", "r1:b:1"]
    assert sorted((row["id"], row["state"]) for row in fx.attempts) == [("r1:a:1", TaskState.CANCELLED),
                                                                         ("r1:b:1", TaskState.CANCELLED)]
    assert sorted(fx.dequeue) == [("r1", "a"), ("r1", "b"), ("r1", "c")]
    assert sorted(e[2] for e in fx.events if e[1] == "task_cancelled") == ["a", "b", "c"]
    assert fx.events[-1][1] == "run_finished" and len(fx.events) == 4
    assert loop.run.state is RunState.CANCELLED and fx.finished == [loop.run]
    assert all(task.state is TaskState.CANCELLED for task in loop.run.tasks.values())
    late = Effects()
    assert not algorithm.attempt_finished(loop.run, "a", "r1:a:1", ok(), None, NOW, late)
    assert not late
    algorithm.cancel_run(loop.run, NOW, late)  # cancelling a finished run changes nothing
    assert not late


def test_an_internal_failure_fails_every_unfinished_task_and_keeps_the_first_cause() -> None:
    loop = Loop(new_run(t("a"), t("b"), t("c", "a")))
    loop.start()
    loop.finish("a")  # c is now running, b running
    fx = Effects()
    algorithm.fail_internal(loop.run, "KeyError: 'x'", NOW, fx)
    assert sorted(fx.stop) == ["r1:b:1", "r1:c:1"]
    assert all(values == {"state": TaskState.FAILED, "finished_at": NOW} for _, _, values in fx.task_changes)
    assert loop.run.state is RunState.FAILED and loop.run.active == 0
    assert loop.run.error == {"kind": "internal", "type": "InternalError", "message": "KeyError: 'x'",
                              "traceback": "", "detail": {}}
    assert [e[1] for e in fx.events] == ["run_finished"]

    caused = Loop(new_run(t("a"), t("b")))
    caused.start()
    caused.finish("a", raised("the cause"))
    algorithm.fail_internal(caused.run, "later", NOW, Effects())
    assert caused.run.failed_task == "a" and caused.run.error["message"] == "the cause"  # type: ignore[index]


def test_impossible_resources_fail_at_once_without_holding_up_the_rest() -> None:
    loop = Loop(new_run(t("big", cpu=64), t("after", "big"), t("small")))
    largest = {"cpu": 2, "gpu": 0, "memory_mb": 1000, "gpu_memory_mb": 0}
    placed = loop.start(unplaceable={"big": f"the largest node has {largest}"}, largest_node=largest)
    assert placed == ["small"]
    assert loop.state("big") is TaskState.FAILED and loop.state("after") is TaskState.SKIPPED
    error = loop.run.error
    assert error is not None and error["kind"] == "resource_unavailable"
    assert "but the largest node has {'cpu': 2" in error["message"]
    assert error["detail"]["requested"]["cpu"] == 64 and error["detail"]["largest_node"] == largest
    loop.finish("small")
    assert loop.run.state is RunState.FAILED and loop.run.failed_task == "big"

    nothing = Loop(new_run(t("big", cpu=64)))
    nothing.start(unplaceable={"big": "there is no node"}, largest_node={})
    assert nothing.run.state is RunState.FAILED  # nothing waits forever


def test_logs_and_a_sandbox_stderr_tail_become_events_and_the_attempt_record() -> None:
    loop = Loop(new_run(t("a")))
    loop.start()
    envelope = Envelope(error=ErrorInfo(ErrorKind.SANDBOX_VIOLATION, "SandboxViolation", "blocked",
                                        detail={"stderr_tail": "tail"}).to_dict(), stdout="x" * 70_000)
    loop.finish("a", envelope)
    row = loop.rows[-1]
    assert row["stderr"] == "tail" and len(row["stdout"]) == 70_000 and row["error"]["kind"] == "sandbox_violation"
    logs = [e for e in loop.events if e[0] == "task_log"]
    assert len(logs) == 2


def test_resume_restores_finished_tasks_and_runs_the_rest_again() -> None:
    run = new_run(t("a"), t("b", "a"), t("c", "b"), t("x"), t("y", "x"), t("z"))
    stored = {"a": ("succeeded", 1), "b": ("running", 1), "x": ("failed", 2), "y": ("pending", 0),
              "z": ("ready", 0)}  # c has no row: pending
    tasks, active, reset = algorithm.restore_tasks(run.graph, {n: task.spec for n, task in run.tasks.items()}, stored)
    assert active == 4 and sorted(reset) == ["b", "z"]
    assert {n: (task.state, task.attempt, task.waiting_on) for n, task in tasks.items()} == {
        "a": (TaskState.SUCCEEDED, 1, 0), "b": (TaskState.PENDING, 1, 0), "c": (TaskState.PENDING, 0, 1),
        "x": (TaskState.FAILED, 2, 0), "y": (TaskState.PENDING, 0, 1), "z": (TaskState.PENDING, 0, 0)}
    resumed = RunProgress("r1", run.graph, 0, RunState.RUNNING, tasks, active=active, failed_task="x",
                          error={"kind": "exception", "message": "before the restart"})
    loop = Loop(resumed)
    algorithm.resume_run(resumed, reset, NOW, loop.fx)
    fx = loop.fx
    assert sorted(fx.task_changes[:2], key=lambda change: change[1]) == [
        (resumed, "b", {"state": TaskState.PENDING, "node_losses": 1}),  # in flight when the head died
        (resumed, "z", {"state": TaskState.PENDING, "node_losses": 0})]  # only queued: nothing lost
    assert fx.events[0][1:] == ("run_resumed", None, {"pending_tasks": 4})
    assert ("task_skipped", "y") not in [e[1:3] for e in fx.events]  # skipped quietly, as before
    assert tasks["y"].state is TaskState.SKIPPED
    assert sorted(item.key[1] for item in fx.enqueue) == ["b", "z"]  # type: ignore[index]
    loop.place_all()
    loop.take()
    assert loop.attempts["b"] == "r1:b:2"  # the attempt count continues: ids stay unique
    loop.finish("b")
    loop.finish("z")
    loop.finish("c")
    assert resumed.state is RunState.FAILED and resumed.failed_task == "x"


def test_a_resumed_run_with_nothing_left_finishes() -> None:
    run = new_run(t("a"), t("b", "a"))
    tasks, active, reset = algorithm.restore_tasks(run.graph, {n: task.spec for n, task in run.tasks.items()},
                                                   {"a": ("succeeded", 1), "b": ("succeeded", 1)})
    resumed = RunProgress("r1", run.graph, 0, RunState.RUNNING, tasks, active=active)
    fx = Effects()
    algorithm.resume_run(resumed, reset, NOW, fx)
    assert resumed.state is RunState.SUCCEEDED and [e[1] for e in fx.events] == ["run_resumed", "run_finished"]


def test_transitions_are_checked() -> None:
    run = new_run(t("a"), t("b", "a"))
    with pytest.raises(InvalidTransition):
        algorithm.dispatch(run, "b", "n1", Effects())  # b is pending, not ready


def test_a_lost_nodes_attempt_that_waited_in_its_queue_goes_straight_back_to_ready() -> None:
    """Regression (0e01389): an attempt still ``scheduled`` (it waited in the lost node's queue, never ran)
    has no ``retrying`` step (scheduled -> retrying is no transition: InvalidTransition broke the cluster
    refresh on a real cluster); it is recorded once and queued again, its loss counted."""
    loop = Loop(new_run(t("a"), t("b")))
    algorithm.start_run(loop.run, NOW, loop.fx)
    loop.place_all(wait=True)
    loop.take()
    assert algorithm.attempt_started(loop.run, "a", loop.attempts["a"], NOW, loop.fx)  # a runs, b still waits
    loop.take()
    assert loop.state("b") is TaskState.SCHEDULED
    moved = algorithm.node_lost(loop.run, "n1", "127.0.0.3", [("a", loop.attempts["a"]), ("b", loop.attempts["b"])],
                                NOW, loop.fx)
    fx = loop.take()
    assert moved == ["a", "b"]
    assert loop.state("a") is TaskState.READY and loop.state("b") is TaskState.READY
    events = [(type, task) for _, type, task, _ in fx.events]
    assert ("task_retrying", "a") in events and ("task_retrying", "b") not in events
    assert sorted(item.key[1] for item in fx.enqueue) == ["a", "b"]  # type: ignore[index]
    assert sorted(row["id"] for row in fx.attempts) == ["r1:a:1", "r1:b:1"]
    assert loop.run.tasks["a"].lost == loop.run.tasks["b"].lost == 1


def test_the_node_loss_cap_counts_the_stored_losses_and_the_restart() -> None:
    """Resumed with its stored losses: one in flight when the head died that had used up the cap fails with
    ``node_lost`` (the restart was one loss more); one below the cap is queued again."""
    run = new_run(t("a"), t("b"), t("c", "a"))
    stored = {"a": ("running", 4, algorithm.MAX_NODE_LOSSES), "b": ("running", 2, 1)}
    tasks, active, reset = algorithm.restore_tasks(run.graph, {n: task.spec for n, task in run.tasks.items()}, stored)
    assert tasks["a"].lost == algorithm.MAX_NODE_LOSSES + 1 and tasks["b"].lost == 2
    resumed = RunProgress("r1", run.graph, 0, RunState.RUNNING, tasks, active=active)
    fx = Effects()
    algorithm.resume_run(resumed, reset, NOW, fx)
    assert tasks["a"].state is TaskState.FAILED and tasks["c"].state is TaskState.SKIPPED
    assert resumed.error is not None and resumed.error["kind"] == "node_lost"
    assert resumed.error["detail"]["losses"] == algorithm.MAX_NODE_LOSSES + 1
    assert tasks["b"].state is TaskState.READY
    assert ("b", {"state": TaskState.PENDING, "node_losses": 2}) in [(n, v) for _, n, v in fx.task_changes]
