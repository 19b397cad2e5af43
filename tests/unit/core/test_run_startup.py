"""A big run's start in slices (``lattice.core.startup``): the run and every task row are committed first,
its root tasks made ready a slice per loop turn; a cancel stops the slicing; a head that dies between
slices resumes the run whole. Driven through the real orchestrator loop and store, no Ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from test_orchestrator import Head, make_head, t, until

from lattice.core import startup
from lattice.core.startup import CHECK_EVERY, RunStarter, first_slice
from lattice.core.states import RunState, TaskState


def _not_pending(head: Head, run_id: str) -> int:
    run = head.orchestrator.runs[run_id]
    return sum(1 for task in run.tasks.values() if task.state is not TaskState.PENDING)


def test_advance_makes_ready_one_chunk_per_call_past_its_budget_and_drops_ended_runs() -> None:
    starter = RunStarter(budget_s=-1.0)  # past the budget at once: one chunk per call, always progress
    live = SimpleNamespace(run_id="a", state=RunState.RUNNING)
    ended = SimpleNamespace(run_id="b", state=RunState.CANCELLED)
    names: Iterator[str] = iter([f"n{i}" for i in range(CHECK_EVERY * 2 + 5)])
    starter.add(ended, iter(["x"]))  # type: ignore[arg-type]
    starter.add(live, names)  # type: ignore[arg-type]
    seen: list[tuple[str, int, bool]] = []

    def start(run: Any, chunk: list[str], last: bool) -> None:
        seen.append((run.run_id, len(chunk), last))

    assert starter.advance(start) is True
    assert seen == [("a", CHECK_EVERY, False)]  # the cancelled run was dropped, its task never started
    assert starter.advance(start) is True
    assert starter.advance(start) is False
    assert seen[1:] == [("a", CHECK_EVERY, False), ("a", 5, True)]
    assert len(starter) == 0 and not starter.starting("a")


def test_first_slice_does_a_small_run_whole_and_stops_a_big_one_at_its_budget() -> None:
    done: list[str] = []
    assert first_slice(iter(["a", "b"]), 10.0, done.extend) is False and done == ["a", "b"]
    done.clear()
    names = iter([f"n{i}" for i in range(1000)])
    assert first_slice(names, -1.0, done.extend) is True
    assert len(done) == CHECK_EVERY and next(names) == f"n{CHECK_EVERY}"  # the rest is left for later slices


async def succeed_all(fake: Any, n: int) -> set[str]:
    """End every attempt the fake backend holds as it comes, until ``n`` have ended; their ids."""
    finished: set[str] = set()

    def finish_live() -> bool:
        for attempt_id in fake.live():
            fake.succeed(attempt_id)
            finished.add(attempt_id)
        return len(finished) == n

    await until(finish_live)
    return finished


async def test_a_big_run_is_committed_first_and_made_ready_over_several_loop_turns(tmp_path: Path) -> None:
    h = make_head(tmp_path)
    await h.orchestrator.start()
    h.orchestrator._starter.budget_s = -1.0  # one chunk per slice
    try:
        n = CHECK_EVERY * 8
        run_id = h.run(*(t(f"n{i}", cpu=0) for i in range(n)))
        assert _not_pending(h, run_id) == CHECK_EVERY  # create_run returned after one chunk
        assert h.orchestrator._starter.starting(run_id)
        await h.orchestrator.flush()  # what the API awaits before it answers the id
        rows = h.store.get_tasks(run_id)
        assert len(rows) == n and h.store.get_run(run_id)["state"] == "running"  # every task row committed
        await until(lambda: not h.orchestrator._starter.starting(run_id))  # done (an empty last slice included)
        assert _not_pending(h, run_id) == n
        await succeed_all(h.backend, n)
        assert (await h.finished(run_id))["state"] == "succeeded"
        assert sorted(r["attempt"] for r in h.store.get_tasks(run_id)) == [1] * n  # each task once
    finally:
        await h.orchestrator.stop()
        h.store.close()


async def test_a_run_cancelled_while_it_starts_makes_no_more_tasks_ready(tmp_path: Path) -> None:
    h = make_head(tmp_path)
    await h.orchestrator.start()
    h.orchestrator._starter.budget_s = -1.0
    try:
        run_id = h.run(*(t(f"n{i}", cpu=0) for i in range(CHECK_EVERY * 8)))
        h.orchestrator.cancel_run(run_id)
        assert (await h.finished(run_id))["state"] == "cancelled"
        await until(lambda: len(h.orchestrator._starter) == 0)
        states = set(h.states(run_id).values())
        assert states == {"cancelled"}, states  # none was left pending or made ready after the cancel
    finally:
        await h.orchestrator.stop()
        h.store.close()


async def test_a_head_gone_between_slices_resumes_the_run_whole(tmp_path: Path, monkeypatch: Any) -> None:
    n = CHECK_EVERY * 6
    first = make_head(tmp_path)
    await first.orchestrator.start()
    first.orchestrator._starter.budget_s = -1.0
    monkeypatch.setattr(first.orchestrator, "_continue_starting", lambda: None)  # it dies before slice two
    run_id = first.run(*(t(f"n{i}", cpu=0) for i in range(n)))
    await first.orchestrator.flush()
    stored = first.states(run_id)
    assert len(stored) == n and list(stored.values()).count("pending") >= n - CHECK_EVERY
    await first.orchestrator.stop()
    first.store.close()

    second = make_head(tmp_path)
    await second.orchestrator.start()
    try:
        finished = await succeed_all(second.backend, n)
        row = await second.finished(run_id)
        assert row["state"] == "succeeded"
        assert sorted({a.split(":")[1] for a in finished}) == sorted(f"n{i}" for i in range(n))  # each task ran
        types = [e for e, _ in second.events(run_id)]
        assert types.count("run_resumed") == 1 and types.count("run_started") == 1
    finally:
        await second.orchestrator.stop()
        second.store.close()


def test_the_slice_budget_is_the_steps() -> None:
    from lattice.core.orchestrator import STEP_BUDGET_S

    # a slice and the scheduler pushes after it hold the loop no longer than a dispatching step
    assert startup.SLICE_BUDGET_S <= STEP_BUDGET_S / 2
