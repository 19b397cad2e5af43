"""Node loss through the real loop and the fake backend: a dead node's attempts move elsewhere without
using the task's retries (capped), a worker-died error waits to learn whether its node died, a crashed
shared executor re-runs its attempts isolated, stale results of lost attempts are ignored, a draining
node takes no new attempts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_backend import FakeBackend
from test_orchestrator import Head, make_head, t, until

from lattice.core.algorithm import MAX_NODE_LOSSES
from lattice.core.cluster import Node
from lattice.wire.failures import ErrorInfo, ErrorKind


def two_nodes() -> FakeBackend:
    return FakeBackend(cluster=[Node("n1", "127.0.0.3", cpu=2, gpu=0, memory_mb=4096),
                                Node("n2", "127.0.0.4", cpu=2, gpu=0, memory_mb=4096)])


@pytest.fixture
async def head(tmp_path: Path) -> AsyncIterator[Head]:
    h = make_head(tmp_path, two_nodes(), node_loss_grace_s=30.0)
    await h.orchestrator.start()
    yield h
    await h.orchestrator.stop()
    h.store.close()


def kill(head: Head, node_id: str, alive: bool = False) -> None:
    """The node dies in the backend's view; the head looks at once (as it does every second)."""
    for node in head.backend.cluster:
        if node.node_id == node_id:
            node.alive = alive
    head.orchestrator._apply_nodes(head.backend.nodes())


def current(fake: FakeBackend) -> list[str]:
    """Live attempts on nodes still alive (a lost node's attempts stay live in the fake)."""
    alive = {n.node_id for n in fake.cluster if n.alive}
    return [a for a in fake.live() if fake.submitted[a].attempt.node_id in alive]


def on_node(head: Head, node_id: str) -> list[str]:
    fake = head.backend
    return [a for a in fake.live() if fake.submitted[a].attempt.node_id == node_id]


async def test_a_dead_nodes_tasks_move_without_using_retries(head: Head) -> None:
    fake = head.backend
    run_id = head.run(*(t(f"t{i}", retries=0) for i in range(4)))
    await until(lambda: len(fake.live()) == 4)
    lost = sorted(fake.submitted[a].attempt.payload.task for a in on_node(head, "n1"))
    assert lost, "the resource manager spreads four one-core tasks over two two-core nodes"
    done_first = on_node(head, "n2")[0]
    fake.succeed(done_first)
    await until(lambda: head.orchestrator.stats["tasks_succeeded"] == 1)
    stale = on_node(head, "n1")
    kill(head, "n1")
    await until(lambda: len(on_node(head, "n2")) == 2)  # one moved task runs, one waits for a core
    assert head.orchestrator.resources.nodes["n1"].state == "dead"
    assert not fake.cancelled  # nothing is cancelled on a lost node: a frozen one would hang the call
    for attempt_id in stale:  # the lost attempts' results come back late (a partition healed): ignored
        fake.succeed(attempt_id)
    while head.orchestrator.runs:
        for attempt_id in fake.live():
            fake.succeed(attempt_id)
        await asyncio.sleep(0.01)
    row = await head.finished(run_id)
    assert row["state"] == "succeeded"
    events = head.store.get_events(run_id)
    node_lost = [e for e in events if e["type"] == "node_lost"]
    assert len(node_lost) == 1 and node_lost[0]["data"]["node_id"] == "n1"
    assert node_lost[0]["data"]["address"] == "127.0.0.3" and sorted(node_lost[0]["data"]["tasks"]) == lost
    succeeded = [e["task"] for e in events if e["type"] == "task_succeeded"]
    assert sorted(succeeded) == ["t0", "t1", "t2", "t3"]  # each once: a stale result is never applied
    assert head.orchestrator.resources.nodes["n2"].used_cpu == 0


async def test_a_task_that_loses_too_many_nodes_fails_with_node_lost(tmp_path: Path) -> None:
    fake = FakeBackend(cluster=[Node(f"n{i}", f"127.0.0.{i + 3}", cpu=1, gpu=0, memory_mb=1024)
                                for i in range(MAX_NODE_LOSSES + 1)])
    head = make_head(tmp_path, fake)
    await head.orchestrator.start()
    try:
        run_id = head.run(t("a", retries=5))
        for _ in range(MAX_NODE_LOSSES + 1):
            await until(lambda: len(current(fake)) == 1)
            kill(head, fake.submitted[current(fake)[0]].attempt.node_id)
        row = await head.finished(run_id)
        assert row["state"] == "failed" and row["error"]["kind"] == "node_lost"
        assert row["error"]["detail"]["losses"] == MAX_NODE_LOSSES + 1
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_a_worker_died_error_waits_for_its_node_and_becomes_a_node_loss(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a", retries=0))
    await until(lambda: len(fake.live()) == 1)
    first = fake.live()[0]
    node_id = fake.submitted[first].attempt.node_id
    fake.lose(first)  # Ray says the worker died; its node's death is only known a few seconds later
    await until(lambda: first in head.orchestrator._dispatcher.inflight
                and head.orchestrator._dispatcher.inflight[first].suspect is not None)
    assert head.orchestrator.runs[run_id].tasks["a"].state in ("running", "scheduled")
    kill(head, node_id)
    await until(lambda: len(current(fake)) == 1)
    fake.succeed(current(fake)[0])
    row = await head.finished(run_id)
    assert row["state"] == "succeeded"  # retries=0, yet it ran again: the node, not the task, failed


async def test_a_worker_died_error_on_a_live_node_is_the_tasks_failure(tmp_path: Path) -> None:
    head = make_head(tmp_path, two_nodes(), node_loss_grace_s=0.05)
    await head.orchestrator.start()
    try:
        fake = head.backend
        run_id = head.run(t("a", retries=1))
        await until(lambda: len(fake.live()) == 1)
        fake.lose(fake.live()[0])
        await until(lambda: len(fake.live()) == 1 and fake.live()[0].endswith(":2"))
        fake.lose(fake.live()[0])
        row = await head.finished(run_id)
        assert row["state"] == "failed" and row["error"]["kind"] == "worker_died"
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_a_crashed_shared_executor_reruns_its_tasks_isolated(tmp_path: Path) -> None:
    head = make_head(tmp_path, two_nodes(), node_loss_grace_s=0.05)
    await head.orchestrator.start()
    try:
        await _shared_executor_crash(head)
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def _shared_executor_crash(head: Head) -> None:
    fake = head.backend
    guilty_run = head.run(t("crash", retries=0, cpu=0.0))
    innocent_run = head.run(t("sleep", retries=0, cpu=0.0))
    await until(lambda: len(fake.live()) == 2)
    shared = ErrorInfo(ErrorKind.WORKER_DIED, "ActorDiedError", "the actor died", detail={"shared_executor": True})
    for attempt_id in list(fake.live()):
        assert not fake.submitted[attempt_id].attempt.isolated
        fake._end(attempt_id).on_done(None, shared)
    await until(lambda: len(fake.live()) == 2)
    assert all(fake.submitted[a].attempt.isolated for a in fake.live())  # each in a process of its own now
    fake.succeed(fake.attempt_of("sleep"))
    fake.lose(fake.attempt_of("crash"))  # alone, the guilty one fails by itself
    assert (await head.finished(innocent_run))["state"] == "succeeded"
    row = await head.finished(guilty_run)
    assert row["state"] == "failed" and row["error"]["kind"] == "worker_died"


async def test_a_draining_node_takes_no_new_attempts(head: Head) -> None:
    fake = head.backend
    head.orchestrator.resources.drain("n1")
    assert head.orchestrator.resources.nodes["n1"].state == "draining"
    run_id = head.run(*(t(f"t{i}") for i in range(3)))
    await until(lambda: len(fake.live()) == 3)  # prefetch: the third waits on n2 for a core
    assert all(fake.submitted[a].attempt.node_id == "n2" for a in fake.live())
    while head.orchestrator.runs:
        for attempt_id in fake.live():
            fake.succeed(attempt_id)
        await asyncio.sleep(0.01)
    assert (await head.finished(run_id))["state"] == "succeeded"
    kill(head, "n1")
    assert head.orchestrator.resources.nodes["n1"].state == "left"


async def test_labels_and_custom_resources_place_only_where_they_fit(tmp_path: Path) -> None:
    from lattice.wire.resources import Resources
    from lattice.wire.spec import TaskSpec

    fake = FakeBackend(cluster=[Node("n1", "127.0.0.3", cpu=2, gpu=0, memory_mb=1024, labels={"zone": "a"},
                                     custom={"my_res": 1.0}),
                                Node("n2", "127.0.0.4", cpu=2, gpu=0, memory_mb=1024, labels={"zone": "b"})])
    head = make_head(tmp_path, fake)
    await head.orchestrator.start()
    try:
        def spec(name: str, **r: object) -> TaskSpec:
            return TaskSpec(name=name, builtin="noop", outputs=["out"], resources=Resources(**r))

        run_id = head.run(spec("in_b", node_labels={"zone": "b"}), spec("res1", custom={"my_res": 1}),
                          spec("res2", custom={"my_res": 1}))
        await until(lambda: len(fake.live()) == 2)  # my_res: 1 on n1, so the second waits for it
        placed = {fake.submitted[a].attempt.payload.task: fake.submitted[a].attempt.node_id for a in fake.live()}
        assert placed["in_b"] == "n2" and set(placed) == {"in_b", next(t for t in placed if t.startswith("res"))}
        assert fake.submitted[fake.attempt_of(next(t for t in placed if t.startswith("res")))].attempt.node_id == "n1"
        nowhere = head.run(spec("zone_c", node_labels={"zone": "c"}))
        row = await head.finished(nowhere)
        assert row["state"] == "failed" and row["error"]["kind"] == "resource_unavailable"
        kill(head, "n1")  # what needs my_res now fits only a dead node: it waits, with a reason
        waiting = head.run(spec("res3", custom={"my_res": 1}))
        await until(lambda: any(e["type"] == "run_waiting" for e in head.store.get_events(waiting)))
        assert head.orchestrator.runs[waiting].tasks["res3"].state == "ready"
        assert head.orchestrator.runs[run_id].state == "running"
    finally:
        await head.orchestrator.stop()
        head.store.close()


def test_rays_errors_for_a_lost_node_are_node_losses() -> None:
    from ray import exceptions as rex

    from lattice.executor.failures import error_from_ray_exception

    unschedulable = rex.TaskUnschedulableError("The node specified via NodeAffinitySchedulingStrategy doesn't exist")
    assert error_from_ray_exception(unschedulable).kind is ErrorKind.NODE_LOST
    assert error_from_ray_exception(rex.NodeDiedError("node died")).kind is ErrorKind.NODE_LOST
    assert error_from_ray_exception(rex.WorkerCrashedError()).kind is ErrorKind.WORKER_DIED


async def test_a_node_lost_error_before_the_node_is_known_dead_still_names_the_node(head: Head) -> None:
    fake = head.backend
    run_id = head.run(t("a", retries=0))
    await until(lambda: len(fake.live()) == 1)
    first = fake.live()[0]
    node_id = fake.submitted[first].attempt.node_id
    fake.lose(first, ErrorKind.NODE_LOST)  # Ray: "the node specified via NodeAffinity doesn't exist any more"
    await until(lambda: head.orchestrator._dispatcher.inflight.get(first) is not None
                and head.orchestrator._dispatcher.inflight[first].suspect is not None)
    kill(head, node_id)
    await until(lambda: len(current(fake)) == 1)
    fake.succeed(current(fake)[0])
    assert (await head.finished(run_id))["state"] == "succeeded"
    assert [e["data"]["node_id"] for e in head.store.get_events(run_id) if e["type"] == "node_lost"] == [node_id]


async def test_an_attempt_waiting_in_a_lost_nodes_queue_goes_back_to_the_queue(tmp_path: Path) -> None:
    fake = FakeBackend(cluster=[Node("n1", "127.0.0.3", cpu=1, gpu=0, memory_mb=1024),
                                Node("n2", "127.0.0.4", cpu=1, gpu=0, memory_mb=1024)])
    head = make_head(tmp_path, fake)
    await head.orchestrator.start()
    try:
        head.orchestrator.resources.drain("n2")  # everything goes to n1 first: one runs, the rest wait there
        run_id = head.run(*(t(f"q{i}", retries=0) for i in range(3)))
        await until(lambda: len(fake.live()) == 3)
        states = {n: tr.state for n, tr in head.orchestrator.runs[run_id].tasks.items()}
        assert sorted(states.values()) == ["running", "scheduled", "scheduled"]
        queued = sorted(n for n, state in states.items() if state == "scheduled")
        head.orchestrator.resources.nodes["n2"].draining = False
        # Without the fix, scheduled -> retrying raised InvalidTransition out of the cluster refresh here.
        # The running attempt is forgotten first, and the core it frees on the dead node starts nothing:
        # the queued ones are still ``scheduled`` when the algorithm hears of the loss.
        kill(head, "n1")
        await head.orchestrator.flush()
        events = head.store.get_events(run_id)
        started_on_n1 = [e["task"] for e in events if e["type"] == "task_started" and e["data"]["node_id"] == "n1"]
        ran = sorted(set(states) - set(queued))
        assert started_on_n1 == ran  # only the one that ran: the queued ones were never shown started there
        assert [e["task"] for e in events if e["type"] == "task_retrying"] == ran  # the queued: straight to ready
        assert sorted(e["task"] for e in events if e["type"] == "task_queued" and e["data"]["attempt"] == 2) == \
            sorted(states)
        while head.orchestrator.runs:
            for attempt_id in current(fake):
                fake.succeed(attempt_id)
            await asyncio.sleep(0.01)
        assert (await head.finished(run_id))["state"] == "succeeded"
    finally:
        await head.orchestrator.stop()
        head.store.close()


async def test_one_runs_failure_in_lose_node_fails_that_run_only(head: Head, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in handling one run's share of a lost node fails that run with the reason, and the cluster
    refresh goes on: the other run's attempts on the node still move elsewhere and it succeeds."""
    from lattice.core import algorithm

    fake = head.backend
    head.orchestrator.resources.drain("n2")  # both runs' attempts land on n1
    broken = head.run(t("b0", retries=0))
    fine = head.run(t("f0", retries=0))
    await until(lambda: len(fake.live()) == 2)
    head.orchestrator.resources.nodes["n2"].draining = False
    real = algorithm.node_lost

    def node_lost(run, *args, **kwargs):  # type: ignore[no-untyped-def]
        if run.run_id == broken:
            raise RuntimeError("a bug in one run's node-loss handling")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(algorithm, "node_lost", node_lost)
    kill(head, "n1")  # without the guard the RuntimeError escapes the refresh and f0 never moves
    row = await head.finished(broken)
    assert row["state"] == "failed" and row["error"]["kind"] == "internal"
    assert "n1" in row["error"]["message"] and "a bug in one run" in row["error"]["message"]
    await until(lambda: len(current(fake)) == 1)
    assert fake.submitted[current(fake)[0]].attempt.node_id == "n2"
    fake.succeed(current(fake)[0])
    assert (await head.finished(fine))["state"] == "succeeded"
    assert [e["type"] for e in head.store.get_events(fine)].count("node_lost") == 1


async def test_node_losses_are_stored_and_count_after_a_head_restart(tmp_path: Path) -> None:
    """The cap of MAX_NODE_LOSSES holds across restarts: losses are kept in the store's task row, and
    the attempt in flight when the head died counts as one more."""
    fake = FakeBackend(cluster=[Node(f"n{i}", f"127.0.0.{i + 3}", cpu=1, gpu=0, memory_mb=1024)
                                for i in range(MAX_NODE_LOSSES + 1)])
    first = make_head(tmp_path, fake)
    await first.orchestrator.start()
    run_id = first.run(t("a", retries=5))
    for _ in range(MAX_NODE_LOSSES - 1):
        await until(lambda: len(current(fake)) == 1)
        kill(first, fake.submitted[current(fake)[0]].attempt.node_id)
    await until(lambda: len(current(fake)) == 1)  # the third attempt runs when the head goes away
    await first.orchestrator.stop()  # it commits what it has before it goes
    assert first.store.get_tasks(run_id)[0]["node_losses"] == MAX_NODE_LOSSES - 1
    first.store.close()

    second = make_head(tmp_path, FakeBackend(cluster=[Node("m1", "127.0.0.9", cpu=1, gpu=0, memory_mb=1024)]))
    await second.orchestrator.start()
    try:
        await until(lambda: len(second.backend.live()) == 1)
        # the restart was one more loss (attempt 3 was in flight): stored with the resumed attempt's row
        await until(lambda: second.store.get_tasks(run_id)[0]["attempt"] == MAX_NODE_LOSSES + 1)
        assert second.store.get_tasks(run_id)[0]["node_losses"] == MAX_NODE_LOSSES
        kill(second, "m1")  # one more is past the cap: without the stored count it would be the first loss
        row = await second.finished(run_id)
        assert row["state"] == "failed" and row["error"]["kind"] == "node_lost"
        assert row["error"]["detail"]["losses"] == MAX_NODE_LOSSES + 1
    finally:
        await second.orchestrator.stop()
        second.store.close()
