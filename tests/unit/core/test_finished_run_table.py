"""The finished-runs table (``lattice.core.finished``) and the loop's use of it: a succeeded run's answer is
kept only once committed, says what the store says, and is bounded; anything else is read from the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_backend import FakeBackend
from test_orchestrator import Head, make_head, t, until

from lattice.core.finished import MAX_RUN_BYTES, MAX_SINKS, FinishedRuns, SinkOutputs
from lattice.core.store import Store


def sinks_of(*tasks: tuple[str, bytes]) -> SinkOutputs:
    kept = SinkOutputs(tuple(name for name, _ in tasks))
    for name, data in tasks:
        kept.add(name, {"out": ("json", data)})
    return kept


def test_only_sink_tasks_are_kept_and_a_big_result_is_not() -> None:
    kept = SinkOutputs(("b",))
    kept.add("a", {"out": ("json", b"1")})  # not a sink: its output is no part of the answer
    kept.add("b", {"out": ("json", b"2")})
    assert kept.blobs == {"b": {"out": ("json", b"2")}}
    kept.add("b", {"out": ("raw", b"x" * (MAX_RUN_BYTES + 1))})
    assert kept.blobs is None  # too big: read from the store
    assert SinkOutputs(tuple(f"s{i}" for i in range(MAX_SINKS + 1))).blobs is None  # a wide fan-out


def test_the_table_is_bounded_by_runs_and_by_bytes_oldest_out_first() -> None:
    table = FinishedRuns(max_runs=2, max_bytes=10)
    for run_id in ("r1", "r2", "r3"):
        table.add(run_id, "wf", "succeeded", sinks_of(("s", b"12")))
    assert (table.get("r1"), len(table)) == (None, 2)
    assert table.get("r3") is not None and table.get("r3").row["state"] == "succeeded"  # type: ignore[union-attr]
    table.add("big", "wf", "succeeded", sinks_of(("s", b"123456789")))
    assert [r for r in ("r2", "r3", "big") if table.get(r)] == ["big"]
    table.add("none", "wf", "succeeded", None)  # a resumed run: nothing kept of it
    assert table.get("none") is None


@pytest.fixture
async def head(tmp_path: Path) -> AsyncIterator[Head]:
    h = make_head(tmp_path, FakeBackend())
    await h.orchestrator.start()
    yield h
    await h.orchestrator.stop()
    h.store.close()


async def test_a_succeeded_run_is_answered_as_the_store_answers_and_only_once_committed(head: Head) -> None:
    run_id = head.run(t("a"), t("b", "a"), t("c", "a"))
    await until(lambda: len(head.backend.live()) == 1)
    head.backend.succeed(head.backend.live()[0], {"out": "A"})
    await until(lambda: len(head.backend.live()) == 2)
    first, second = head.backend.live()
    head.backend.succeed(first, {"out": 1})
    head.backend.succeed(second, {"out": 2})
    orchestrator = head.orchestrator
    row, kept = await orchestrator.wait_result(run_id, 5)
    assert kept is not None and set(kept) == {"b", "c"}  # the sinks only
    stored = head.store.get_run(run_id)
    assert stored is not None
    assert {k: row[k] for k in ("id", "workflow_id", "state", "failed_task", "error")} == \
        {k: stored[k] for k in ("id", "workflow_id", "state", "failed_task", "error")}
    assert kept == head.store.get_blobs(run_id, orchestrator.sinks(row["workflow_id"]))
    assert (await orchestrator.wait_run(run_id, 0))["tenant"] is None  # wait_run is still the stored row


async def test_a_failed_run_and_an_unknown_one_come_from_the_store(head: Head) -> None:
    run_id = head.run(t("a"))
    await until(lambda: len(head.backend.live()) == 1)
    head.backend.raise_in_task(head.backend.live()[0])
    row, kept = await head.orchestrator.wait_result(run_id, 5)
    assert row["state"] == "failed" and kept is None and head.orchestrator.finished.get(run_id) is None
    assert row == head.store.get_run(run_id)
    with pytest.raises(Exception, match="run"):
        await head.orchestrator.wait_result("nope", 0)


async def test_a_run_the_store_refused_is_not_kept(tmp_path: Path) -> None:
    h = make_head(tmp_path, FakeBackend())
    await h.orchestrator.start()
    try:
        run_id = h.run(t("a"))
        await h.orchestrator.flush()
        await until(lambda: len(h.backend.live()) == 1)
        store: Store = h.orchestrator.store
        real = store.commit

        def refuse(batch: object) -> None:
            raise ValueError("a batch that can never commit")

        store.commit = refuse  # type: ignore[method-assign]
        h.backend.succeed(h.backend.live()[0])
        await until(lambda: run_id not in h.orchestrator.runs)  # its end was handed over, and refused
        assert h.orchestrator.finished.get(run_id) is None
        store.commit = real  # type: ignore[method-assign]
        row, kept = await h.orchestrator.wait_result(run_id, 0)
        assert kept is None and row["state"] == "running"  # what the store holds, not what the loop saw
    finally:
        await h.orchestrator.stop()
        h.store.close()


async def test_a_small_function_travels_by_value_and_a_big_one_is_put_once(head: Head) -> None:
    """A small function's bytes go in each attempt (Ray inlines them; a ref would make every attempt wait
    for the object store); one above ``INLINE_FN_BYTES`` is put in the backend once, then passed by ref."""
    import base64

    from lattice.core.dispatcher import INLINE_FN_BYTES
    from lattice.wire.spec import CodeSpec, TaskSpec

    small, big = b"small-function", b"b" * (INLINE_FN_BYTES + 1)

    def coded(name: str, code: bytes) -> TaskSpec:
        return TaskSpec(name=name, outputs=["out"], code=CodeSpec(pickle=base64.b64encode(code).decode()))

    head.run(coded("s", small), coded("b", big))
    await until(lambda: len(head.backend.live()) == 2)
    by_task = {sub.attempt.payload.task: sub.attempt.fn_ref for sub in head.backend.submitted.values()}
    assert by_task["s"] == small
    assert head.backend.objects[by_task["b"]] == big and len(head.backend.objects) == 1
