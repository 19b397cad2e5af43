"""The real orchestrator loop — scheduler, resource manager, store writer, a real SQLite store — driven
through the in-memory :class:`FakeBackend`: runs are created, attempts completed, timed out and cancelled
by the test, with no Ray."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_backend import FakeBackend, FakeRef

from lattice.core.cluster import Node, ResourceManager
from lattice.core.events import EventBus
from lattice.core.orchestrator import Orchestrator, OrchestratorSettings
from lattice.core.store import Store
from lattice.wire.attempt import AttemptPayload, Envelope
from lattice.wire.failures import ErrorKind
from lattice.wire.resources import Resources
from lattice.wire.spec import InputSpec, TaskSpec, WorkflowSpec


def t(name: str, *upstream: str, **policy: Any) -> TaskSpec:
    resources = Resources(cpu=policy.pop("cpu", 1.0))
    return TaskSpec(name=name, builtin="noop", outputs=["out"], resources=resources,
                    inputs={u: InputSpec(task=u, output="out") for u in upstream}, **policy)


@dataclass
class Head:
    orchestrator: Orchestrator
    backend: FakeBackend
    store: Store
    bus: EventBus

    def run(self, *tasks: TaskSpec) -> str:
        workflow_id = self.orchestrator.register_workflow(WorkflowSpec(tasks=list(tasks)))
        return self.orchestrator.create_run(workflow_id)

    def states(self, run_id: str) -> dict[str, str]:
        return {row["name"]: row["state"] for row in self.store.get_tasks(run_id)}

    def events(self, run_id: str) -> list[tuple[str, str | None]]:
        return [(e["type"], e["task"]) for e in self.store.get_events(run_id)]

    async def finished(self, run_id: str) -> dict[str, Any]:
        row = await self.orchestrator.wait_run(run_id, timeout=5)
        assert row["state"] in ("succeeded", "failed", "cancelled"), row
        return row


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop step and the store writer commit until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.002)


def make_head(tmp_path: Path, backend: FakeBackend | None = None, **settings: Any) -> Head:
    store = Store(f"sqlite:///{tmp_path / 'lattice.db'}")
    bus = EventBus()
    settings.setdefault("node_loss_grace_s", 0.01)  # the fake's nodes never die unless a test says so
    orchestrator = Orchestrator(store, ResourceManager(), backend or FakeBackend(), bus,
                                OrchestratorSettings(node_refresh_s=3600, **settings))
    return Head(orchestrator, orchestrator.backend, store, bus)  # type: ignore[arg-type]


@pytest.fixture
async def head(tmp_path: Path) -> AsyncIterator[Head]:
    h = make_head(tmp_path)
    await h.orchestrator.start()
    yield h
    await h.orchestrator.stop()
    h.store.close()


async def test_a_diamond_runs_through_the_real_loop(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c"))
    listener = head.bus.subscribe(run_id)
    await head.orchestrator.flush()
    assert head.store.get_run(run_id)["state"] == "running"  # type: ignore[index]
    assert fake.live_tasks() == ["a"]
    first = fake.submitted[fake.attempt_of("a")].attempt
    assert isinstance(first.payload, AttemptPayload) and first.payload.attempt_id == f"{run_id}:a:1"
    assert first.node_id == "n1" and first.upstream == [] and first.killable is False

    fake.succeed(fake.attempt_of("a"), {"out": 1})
    await until(lambda: fake.live_tasks() == ["b", "c"])
    b = fake.submitted[fake.attempt_of("b")].attempt
    assert b.upstream == [FakeRef(f"{run_id}:a:1")]  # a's envelope, straight from the backend
    assert b.payload.refs == {"a": (0, "out")}
    fake.succeed(fake.attempt_of("b"))
    fake.succeed(fake.attempt_of("c"), stdout="hello\n")
    await until(lambda: fake.live_tasks() == ["d"])
    d = fake.submitted[fake.attempt_of("d")].attempt
    assert d.upstream == [FakeRef(f"{run_id}:b:1"), FakeRef(f"{run_id}:c:1")]
    fake.succeed(fake.attempt_of("d"))

    row = await head.finished(run_id)
    assert row["state"] == "succeeded" and row["failed_task"] is None
    assert head.states(run_id) == dict.fromkeys("abcd", "succeeded")
    assert head.store.get_blobs(run_id)["a"] == {"out": ("json", b"1")}
    attempts = head.store.get_attempts(run_id)
    assert [(a["task"], a["state"], a["worker_pid"]) for a in attempts] == [
        (name, "succeeded", 4242) for name in "abcd"]
    assert next(a for a in attempts if a["task"] == "c")["stdout"] == "hello\n"
    events = head.store.get_events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert ("task_log", "c") in head.events(run_id)
    published = []
    while not listener.empty():
        published.append(listener.get_nowait()["seq"])
    assert published == [e["seq"] for e in events]  # everything announced was committed first
    assert head.orchestrator.stats["tasks_succeeded"] == 4 and head.orchestrator.stats["tasks_dispatched"] == 4
    assert run_id not in head.orchestrator.runs


async def test_a_failure_skips_downstream_and_a_retry_gets_a_new_attempt_id(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a"), t("b", "a"), t("flaky", retries=1))
    await until(lambda: fake.live_tasks() == ["a", "flaky"])
    fake.raise_in_task(fake.attempt_of("flaky"), "once")
    fake.raise_in_task(fake.attempt_of("a"), "for good")
    await until(lambda: fake.live_tasks() == ["flaky"])
    assert fake.attempt_of("flaky") == f"{run_id}:flaky:2"
    fake.succeed(fake.attempt_of("flaky"))
    row = await head.finished(run_id)
    assert row["state"] == "failed" and row["failed_task"] == "a"
    assert row["error"]["message"] == "for good" and row["error"]["kind"] == "exception"
    assert head.states(run_id) == {"a": "failed", "b": "skipped", "flaky": "succeeded"}
    assert [a["state"] for a in head.store.get_attempts(run_id, "flaky")] == ["failed", "succeeded"]
    assert head.orchestrator.stats["tasks_failed"] == 1


async def test_a_lost_worker_is_reported_as_data_and_retried(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a", retries=1))
    await until(lambda: fake.live_tasks() == ["a"])
    fake.lose(fake.attempt_of("a"))
    await until(lambda: fake.live_tasks() == ["a"] and fake.attempt_of("a").endswith(":2"))
    fake.lose(fake.attempt_of("a"), ErrorKind.MEMORY_EXCEEDED)
    row = await head.finished(run_id)
    assert row["state"] == "failed" and row["error"]["kind"] == "memory_exceeded"
    assert head.orchestrator.resources.nodes["n1"].used_cpu == 0


async def test_a_timeout_stops_the_attempt_and_kills_its_worker(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("slow", timeout=0.05))
    await until(lambda: fake.live_tasks() == ["slow"])
    attempt_id = fake.attempt_of("slow")
    assert fake.submitted[attempt_id].attempt.killable  # level none: only killing the worker stops it
    row = await head.finished(run_id)
    assert row["state"] == "failed" and row["error"]["kind"] == "timeout" and row["error"]["type"] == "TaskTimeout"
    assert fake.cancelled == [(attempt_id, True)]
    fake.succeed(attempt_id)  # its late result changes nothing
    await asyncio.sleep(0.01)
    await head.orchestrator.flush()
    assert head.states(run_id) == {"slow": "failed"}
    assert head.orchestrator.resources.busy_cpu("n1") == 0


async def test_a_sandboxed_task_is_not_killed_and_its_timer_has_grace(tmp_path: Path) -> None:
    head = make_head(tmp_path, sandbox_timeout_grace_s=0.05)
    await head.orchestrator.start()
    try:
        fake = head.backend
        run_id = head.run(t("boxed", timeout=0.05, sandbox="subprocess"))
        await until(lambda: fake.live_tasks() == ["boxed"])
        attempt = fake.submitted[fake.attempt_of("boxed")].attempt
        assert not attempt.killable
        assert attempt.payload.sandbox is not None and attempt.payload.sandbox["level"] == "subprocess"
        assert attempt.payload.sandbox["timeout"] == 0.05
        assert attempt.payload.env["LATTICE_ATTEMPT_ID"] == attempt.payload.attempt_id
        row = await head.finished(run_id)
        assert row["error"]["kind"] == "timeout" and fake.cancelled == [(attempt.payload.attempt_id, False)]
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_cancel_stops_what_runs_and_frees_its_reservation(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a"), t("b", "a"))
    await until(lambda: fake.live_tasks() == ["a"])
    attempt_id = fake.attempt_of("a")
    assert head.orchestrator.cancel_run(run_id) == "cancelled"
    await head.orchestrator.flush()
    assert head.states(run_id) == {"a": "cancelled", "b": "cancelled"}
    assert head.store.get_run(run_id)["state"] == "cancelled"  # type: ignore[index]
    assert fake.cancelled == [(attempt_id, False)]
    assert head.orchestrator.resources.nodes["n1"].used_cpu == 0
    fake.succeed(attempt_id)  # a late result of a cancelled attempt is ignored
    await asyncio.sleep(0.01)
    assert head.states(run_id) == {"a": "cancelled", "b": "cancelled"}
    assert [a["state"] for a in head.store.get_attempts(run_id)] == ["cancelled"]
    assert head.orchestrator.cancel_run(run_id) == "cancelled"  # from the store, now


async def test_prefetched_tasks_wait_for_a_core_first_come_first_served(tmp_path: Path) -> None:
    backend = FakeBackend(cluster=[Node("n1", "127.0.0.1", cpu=1, gpu=0, memory_mb=1000)])
    head = make_head(tmp_path, backend)
    await head.orchestrator.start()
    try:
        rm = head.orchestrator.resources
        run_id = head.run(t("a"), t("b"), t("c"))
        await until(lambda: len(backend.live()) == 3)  # one core, three prefetch slots per core
        await head.orchestrator.flush()
        states = head.states(run_id)
        running = [name for name, state in states.items() if state == "running"]
        waiting = [name for name, state in states.items() if state == "scheduled"]
        assert len(running) == 1 and len(waiting) == 2
        assert rm.busy_cpu("n1") == 1 and len(rm.waiting("n1")) == 2
        scheduled = [e for e in head.store.get_events(run_id) if e["type"] == "task_scheduled"]
        assert {e["data"]["waiting_for"] for e in scheduled} == {"a free core"}
        first_in_line = rm.waiting("n1")[0]
        backend.succeed(backend.attempt_of(running[0]))
        await until(lambda: head.states(run_id)[first_in_line.split(":")[1]] == "running")
        # the other waiting task finishes before the head saw it start: shown running, then succeeded
        last = next(a for a in rm.waiting("n1"))
        backend.succeed(last)
        backend.succeed(first_in_line)
        row = await head.finished(run_id)
        assert row["state"] == "succeeded"
        assert rm.busy_cpu("n1") == 0 and rm.waiting("n1") == [] and rm.nodes["n1"].used_cpu == 0
        assert head.events(run_id).count(("task_started", last.split(":")[1])) == 1
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_impossible_resources_fail_at_once_without_blocking_others(head: Head) -> None:
    big = head.run(t("huge", cpu=64))
    row = await head.finished(big)
    assert row["state"] == "failed" and row["error"]["kind"] == "resource_unavailable"
    assert "largest node" in row["error"]["message"]
    small = head.run(t("a"))
    await until(lambda: head.backend.live_tasks() == ["a"])
    head.backend.succeed(head.backend.attempt_of("a"))
    assert (await head.finished(small))["state"] == "succeeded"


async def test_a_bug_fails_that_run_only_and_gives_its_reservation_back(head: Head) -> None:
    fake = head.backend
    real_submit = fake.submit

    def broken(attempt: Any, on_done: Any) -> Any:
        if attempt.payload.task == "bad":
            raise RuntimeError("submit broke")
        return real_submit(attempt, on_done)

    fake.submit = broken  # type: ignore[method-assign]
    run_id = head.run(t("bad"))
    row = await head.finished(run_id)
    assert row["state"] == "failed" and row["error"]["type"] == "InternalError"
    assert "RuntimeError: submit broke" in row["error"]["message"]
    assert head.orchestrator.resources.nodes["n1"].used_cpu == 0
    other = head.run(t("good"))
    await until(lambda: fake.live_tasks() == ["good"])
    fake.succeed(fake.attempt_of("good"))
    assert (await head.finished(other))["state"] == "succeeded"


async def test_custom_events_and_finished_runs(head: Head) -> None:
    run_id = head.run(t("a"))
    seq = head.orchestrator.emit_custom_event(run_id, "a", {"progress": 0.5})
    await head.orchestrator.flush()
    assert head.store.get_events(run_id, after=seq - 1)[0]["data"] == {"progress": 0.5}
    head.backend.succeed(head.backend.attempt_of("a"))
    await head.finished(run_id)
    from lattice.core.errors import Conflict

    with pytest.raises(Conflict):
        head.orchestrator.emit_custom_event(run_id, None, {})


async def test_an_unfinished_run_resumes_on_a_new_head(tmp_path: Path) -> None:
    first = make_head(tmp_path)
    await first.orchestrator.start()
    run_id = first.run(t("a"), t("b", "a"), t("c", "b"))
    await until(lambda: first.backend.live_tasks() == ["a"])
    first.backend.succeed(first.backend.attempt_of("a"), {"out": 41})
    await until(lambda: first.backend.live_tasks() == ["b"])
    await first.orchestrator.flush()
    await first.orchestrator.stop()  # the head goes away while b runs
    first.store.close()

    second = make_head(tmp_path)
    await second.orchestrator.start()
    try:
        fake = second.backend
        await until(lambda: fake.live_tasks() == ["b"])
        attempt = fake.submitted[fake.attempt_of("b")].attempt
        assert attempt.payload.attempt_id == f"{run_id}:b:2"  # the count continues: ids stay unique
        (ref,) = attempt.upstream
        assert fake.objects[ref] == Envelope(outputs={"out": ("json", json.dumps(41).encode())})
        fake.succeed(fake.attempt_of("b"))
        await until(lambda: fake.live_tasks() == ["c"])
        fake.succeed(fake.attempt_of("c"))
        row = await second.finished(run_id)
        assert row["state"] == "succeeded"
        types = [e for e, _ in second.events(run_id)]
        assert types.count("run_resumed") == 1 and types.count("run_started") == 1
        assert [a["id"] for a in second.store.get_attempts(run_id, "b")] == [f"{run_id}:b:2"]
    finally:
        await second.orchestrator.stop()
        second.store.close()


async def test_a_step_past_its_budget_leaves_the_rest_placed_for_the_next_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no time budget at all, each step dispatches one placement: a fan-out still goes out whole, in
    order, over several steps (the loop serves requests in between); a cancel meanwhile frees what waited."""
    from lattice.core import orchestrator as module

    monkeypatch.setattr(module, "STEP_BUDGET_S", -1.0)
    h = make_head(tmp_path)
    await h.orchestrator.start()
    try:
        fake = h.backend
        names = [f"n{i}" for i in range(20)]
        run_id = h.run(*(t(name, cpu=0) for name in names))
        await until(lambda: len(fake.live_tasks()) == 20)
        assert h.orchestrator.stats["steps"] >= 20  # not one step for the whole fan-out
        sent = [s.attempt.payload.task for s in fake.submitted.values()]
        assert sorted(sent) == sorted(names) and len(sent) == len(names)  # each once
        first, second = (fake.submitted[fake.attempt_of(n)].attempt.payload for n in ("n0", "n1"))
        assert first.sandbox is second.sandbox and first.env["LATTICE_TASK"] == "n0"  # shared parts, own env
        for name in names:
            fake.succeed(fake.attempt_of(name))
        assert (await h.finished(run_id))["state"] == "succeeded"

        cancelled = h.run(*(t(name, cpu=0) for name in names))
        h.orchestrator.cancel_run(cancelled)  # before the steps that would dispatch the rest
        assert (await h.finished(cancelled))["state"] == "cancelled"
        await until(lambda: not h.orchestrator._placed)
        assert h.orchestrator.resources.nodes["n1"].used_io == 0  # every reservation given back
        assert all(fake.submitted[a].attempt.payload.run_id != cancelled for a in fake.live())
    finally:
        await h.orchestrator.stop()
        h.store.close()


async def test_a_runs_creation_and_its_first_dispatch_are_one_commit(head: Head) -> None:
    """flush() takes the step that is due before it commits: the run's rows and its first attempts (a
    no-op run's only one) go to the store together, one commit and one round of announcements per run."""
    writer = head.orchestrator._writer
    assert writer is not None
    before = writer.commits
    run_id = head.run(t("a"))
    listener = head.bus.subscribe(run_id)
    await head.orchestrator.flush()
    assert writer.commits == before + 1
    assert head.backend.live_tasks() == ["a"]  # dispatched before the id is handed out, as before
    assert head.states(run_id) == {"a": "running"}
    published = []
    while not listener.empty():
        published.append(listener.get_nowait()["type"])
    assert published == [e["type"] for e in head.store.get_events(run_id)]  # committed, then announced
    assert "task_started" in published or "task_scheduled" in published


async def test_a_wait_for_a_result_that_runs_out_answers_the_run_still_running(head: Head) -> None:
    run_id = head.run(t("a"))
    await head.orchestrator.flush()
    row, kept = await head.orchestrator.wait_result(run_id, 0.05)
    assert row["state"] == "running" and kept is None
    head.backend.succeed(head.backend.attempt_of("a"))
    row, kept = await head.orchestrator.wait_result(run_id, 5)
    assert row["state"] == "succeeded" and kept == {"a": {"out": ("json", b"null")}}


async def test_flush_waits_for_changes_an_earlier_step_handed_to_the_writer(head: Head) -> None:
    """flush() says "committed" only once everything made before it is: a run created just before the loop's
    own step flushed it must not get its id handed out while that batch still waits in the writer."""
    gate = threading.Event()
    commit = head.store.commit

    def slow_commit(batch: Any) -> None:
        gate.wait(5)
        commit(batch)

    head.store.commit = slow_commit  # type: ignore[method-assign]
    run_id = head.run(t("a"))
    head.orchestrator._flush()  # the loop's step hands the creation over first
    flushed = asyncio.ensure_future(head.orchestrator.flush())
    await asyncio.sleep(0.05)
    assert not flushed.done(), "flush() returned while the run's creation was not committed"
    assert head.store.get_run(run_id) is None
    gate.set()
    await asyncio.wait_for(flushed, 5)
    assert head.store.get_run(run_id) is not None
