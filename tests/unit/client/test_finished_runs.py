"""The results ``run(wait=True)`` brings back are handed to the next ``get_results`` once, and bounded."""

from __future__ import annotations

from lattice.client.finished import FinishedRuns


def done(run_id: str) -> dict[str, object]:
    return {"run_id": run_id, "state": "succeeded", "done": True, "outputs": {}}


def test_a_finished_body_is_taken_once() -> None:
    finished = FinishedRuns()
    finished.keep("r1", done("r1"))
    assert finished.take("r1") == done("r1")
    assert finished.take("r1") is None  # the next get_results asks the head


def test_a_run_still_going_or_no_results_is_not_kept() -> None:
    finished = FinishedRuns()
    finished.keep("r1", {"run_id": "r1", "state": "running", "done": False})
    finished.keep("r2", None)
    assert finished.take("r1") is None and finished.take("r2") is None


def test_only_the_newest_are_kept() -> None:
    finished = FinishedRuns(keep=2)
    for run_id in ("a", "b", "c"):
        finished.keep(run_id, done(run_id))
    assert finished.take("a") is None
    assert finished.take("b") == done("b") and finished.take("c") == done("c")
