"""The store over a real PostgreSQL server: the same writes and reads as on SQLite, and a head using it."""

from __future__ import annotations

import uuid

from lattice import LatticeClient, task
from lattice.core.store import Batch, Store
from tests.integration.postgres_fixtures import postgres_url  # noqa: F401


def test_store_round_trip_on_postgres(postgres_url: str) -> None:  # noqa: F811
    store = Store(postgres_url)
    run_id = uuid.uuid4().hex
    store.create_workflow(run_id, "wf", {"tasks": []})
    batch = Batch()
    batch.run_inserts.append({"id": run_id, "workflow_id": run_id, "workflow_name": "wf", "state": "running",
                              "priority": 0, "tags": "{}", "created_at": 1.0})
    batch.task_inserts += [{"run_id": run_id, "name": n, "state": "pending", "attempt": 0} for n in "ab"]
    batch.update_task(run_id, "a", state="ready", queued_at=2.0)
    batch.add_event(run_id, 1, "run_started", None, {"k": [1, "x"]}, 1.0)
    store.commit(batch)
    later = Batch()
    later.update_task(run_id, "b", state="failed", error={"kind": "exception"})
    later.add_attempt(id=f"{run_id}:b:1", run_id=run_id, task="b", number=1, state="failed", finished_at=3.0)
    later.put_blob(run_id, "a", "out", "pickle", b"\x00\x01binary")
    later.update_run(run_id, state="failed", failed_task="b")
    store.commit(later)
    assert store.get_run(run_id)["state"] == "failed"
    tasks = {t["name"]: t for t in store.get_tasks(run_id)}
    assert tasks["a"]["queued_at"] == 2.0 and tasks["b"]["error"] == {"kind": "exception"}
    assert store.get_blobs(run_id) == {"a": {"out": ("pickle", b"\x00\x01binary")}}
    assert store.get_events(run_id)[0]["data"] == {"k": [1, "x"]}
    assert store.get_attempts(run_id)[0]["state"] == "failed"
    store.close()


@task(inputs=["x"], outputs=["y"])
def double(params):
    return {"y": params["x"] * 2}


def test_head_on_postgres_keeps_runs_across_a_restart(postgres_url: str, head_factory, tmp_path) -> None:  # noqa: F811
    args = ["--num-cpus", "1", "--store-url", postgres_url]
    first = head_factory(data_dir=tmp_path / "a", extra_args=args)
    with LatticeClient(first.url, token=first.token, progress=False) as client:
        wf = client.create_workflow()
        a = wf.add_task(double, inputs={"x": 4})
        wf.add_task(double, inputs={"x": a.outputs["y"]})
        run_id = wf.run()
        assert wf.get_results(run_id) == {"y": 16}
    first.stop()
    # Another head, another data dir, the same database: the run is there.
    second = head_factory(data_dir=tmp_path / "b", extra_args=args)
    with LatticeClient(second.url, token=second.token, progress=False) as client:
        assert client.get_results(run_id) == {"y": 16}
        assert [t["state"] for t in client.get_run(run_id)["tasks"]] == ["succeeded", "succeeded"]
