"""The store's reads for many runs at once (the batch results route): every row, in one query per 500 ids."""

from __future__ import annotations

from pathlib import Path

from lattice.core.store import Batch, Store


def test_many_runs_and_their_sink_blobs_read_back_across_chunks(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    batch = Batch()
    ids = [f"r{i:04d}" for i in range(1203)]  # over two chunks of 500 ids
    for i, run_id in enumerate(ids):
        batch.run_inserts.append({"id": run_id, "workflow_id": "wf", "workflow_name": "w", "state": "succeeded",
                                  "priority": 0, "tags": "{}", "created_at": float(i)})
        batch.put_blob(run_id, "sink", "y", "json", str(i).encode())
        batch.put_blob(run_id, "middle", "y", "json", b"0")
    store.commit(batch)
    rows = store.get_runs([*ids, "nope"])
    assert sorted(rows) == ids and rows["r1202"]["created_at"] == 1202.0
    blobs = store.get_blobs_of_runs(ids, {"sink"})
    assert len(blobs) == 1203 and blobs["r0007"] == {"sink": {"y": ("json", b"7")}}
    # more task names than one statement may bind: filtered after the read, same answer
    names = {"sink", *(f"other{i}" for i in range(600))}
    assert store.get_blobs_of_runs(ids[:3], names) == {run_id: blobs[run_id] for run_id in ids[:3]}
    assert store.get_runs([]) == {} and store.get_blobs_of_runs([], {"sink"}) == {}
    store.close()
