"""The batch routes' request models: bounded, strict, and naming the field a bad request got wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lattice.wire.http import MAX_BATCH_RESULTS, ResultsBatchQuery
from lattice.wire.spec import MAX_BATCH_RUNS, RunBatchCreate


def test_a_batch_holds_one_to_max_runs_each_a_run_create() -> None:
    batch = RunBatchCreate.model_validate({"runs": [{}, {"priority": 3, "inputs": {"t": {"x": {"value": 1}}}}]})
    assert [run.priority for run in batch.runs] == [0, 3]
    assert len(RunBatchCreate.model_validate({"runs": [{}] * MAX_BATCH_RUNS}).runs) == MAX_BATCH_RUNS
    for runs in ([], [{}] * (MAX_BATCH_RUNS + 1)):
        with pytest.raises(ValidationError) as info:
            RunBatchCreate.model_validate({"runs": runs})
        assert info.value.errors()[0]["loc"] == ("runs",)


def test_a_bad_run_in_a_batch_is_named_by_its_position() -> None:
    with pytest.raises(ValidationError) as info:
        RunBatchCreate.model_validate({"runs": [{}, {"weight": 0}]})
    assert info.value.errors()[0]["loc"] == ("runs", 1, "weight")
    with pytest.raises(ValidationError) as info:
        RunBatchCreate.model_validate({"runs": [{}], "priority": 1})
    assert info.value.errors()[0]["loc"] == ("priority",)  # options are per run; nothing else is taken


def test_a_results_query_is_bounded_in_ids_and_wait() -> None:
    assert ResultsBatchQuery.model_validate({"run_ids": ["a"]}).wait == 0
    bad = [({"run_ids": []}, ("run_ids",)), ({"run_ids": ["a"] * (MAX_BATCH_RESULTS + 1)}, ("run_ids",)),
           ({"run_ids": [""]}, ("run_ids", 0)), ({"run_ids": ["x" * 65]}, ("run_ids", 0)),
           ({"run_ids": ["a"], "wait": 61}, ("wait",)), ({"run_ids": ["a"], "wait": -1}, ("wait",)),
           ({"run_ids": ["a"], "after": 1}, ("after",))]
    for body, loc in bad:
        with pytest.raises(ValidationError) as info:
            ResultsBatchQuery.model_validate(body)
        assert info.value.errors()[0]["loc"] == loc, body
