from lattice.core.store import Batch, Store


def test_batches_commit_and_read_back(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.create_workflow("w", "wf", {"tasks": []})
    b = Batch()
    b.run_inserts.append({"id": "r", "workflow_id": "w", "workflow_name": "wf", "state": "running", "priority": 0,
                          "tags": "{}", "created_at": 1.0})
    b.task_inserts += [{"run_id": "r", "name": n, "state": "pending", "attempt": 0} for n in "ab"]
    b.add_event("r", 1, "run_started", None, {"x": 1}, 1.0)
    store.commit(b)
    later = Batch()
    later.update_task("r", "a", state="succeeded", error=None)
    later.update_task("r", "b", state="failed", error={"kind": "exception"})
    later.put_blob("r", "a", "out", "json", b"1")
    later.add_event("r", 2, "task_failed", "b", {}, 2.0)
    later.update_run("r", state="failed", failed_task="b")
    merged = Batch()
    merged.merge(later)
    store.commit(merged)
    store.close()

    reopened = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert reopened.get_run("r")["state"] == "failed"
    tasks = {t["name"]: t for t in reopened.get_tasks("r")}
    assert tasks["b"]["error"] == {"kind": "exception"} and tasks["a"]["state"] == "succeeded"
    assert reopened.get_blobs("r") == {"a": {"out": ("json", b"1")}}
    assert [e["seq"] for e in reopened.get_events("r", after=1)] == [2]
    assert reopened.last_event_seq("r") == 2
    assert reopened.unfinished_run_ids() == []
    assert reopened.get_workflow("w")["spec"] == {"tasks": []}


def test_rows_inserted_and_updated_in_one_batch(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    b = Batch()
    b.task_inserts += [{"run_id": "r", "name": n, "state": "pending", "attempt": 0} for n in "abc"]
    b.update_task("r", "a", state="ready", queued_at=5.0)
    b.update_task("r", "c", state="failed", error={"kind": "exception"})
    b.add_attempt(id="r:a:1", run_id="r", task="a", number=1, state="scheduled")
    b.update_attempt("r:a:1", state="running", started_at=6.0)
    store.commit(b)
    tasks = {t["name"]: t for t in store.get_tasks("r")}
    assert (tasks["a"]["state"], tasks["a"]["queued_at"]) == ("ready", 5.0)
    assert tasks["b"]["state"] == "pending" and tasks["c"]["error"] == {"kind": "exception"}
    assert store.get_attempts("r")[0]["state"] == "running"


def test_a_tasks_node_losses_start_at_zero_and_survive_a_reopen(tmp_path):
    """``tasks.node_losses`` (migration 0004): a new row has 0 without being told; an update is kept across
    a reopen (a head restart), next to updates of other columns in the same batch."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    b = Batch()
    b.task_inserts += [{"run_id": "r", "name": n, "state": "pending", "attempt": 0} for n in "ab"]
    store.commit(b)
    assert [t["node_losses"] for t in store.get_tasks("r")] == [0, 0]
    later = Batch()
    later.update_task("r", "a", state="retrying", node_losses=2)
    later.update_task("r", "b", state="ready", queued_at=3.0)
    store.commit(later)
    store.close()
    reopened = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    tasks = {t["name"]: t for t in reopened.get_tasks("r")}
    assert (tasks["a"]["state"], tasks["a"]["node_losses"]) == ("retrying", 2)
    assert (tasks["b"]["state"], tasks["b"]["node_losses"]) == ("ready", 0)
