"""The worker's watch over its own node, with the head and Ray stood in by callables: it stops the node's
Ray only once the head shows it draining with nothing reserved there, never because the head is away."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from lattice.cli.nodewatch import drained_and_idle, forget_worker, watch


def node(state: str, running: int = 0, node_id: str = "me") -> dict[str, Any]:
    return {"node_id": node_id, "state": state, "running_tasks": running}


class Scripted:
    """The head's answers, one per poll (None: the head did not answer); the last one repeats."""

    def __init__(self, *answers: list[dict[str, Any]] | None) -> None:
        self.answers = list(answers)
        self.polls = 0

    def __call__(self) -> list[dict[str, Any]] | None:
        self.polls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_it_stops_the_ray_only_once_the_node_is_draining_and_idle() -> None:
    stopped: list[bool] = []
    head = Scripted([node("alive")], None, [node("draining", running=2), node("draining", node_id="other")],
                    [node("draining", running=1)], [node("draining")])
    assert watch("me", head, lambda: True, lambda: stopped.append(True), poll_s=0) == "drained"
    assert stopped == [True] and head.polls == 5  # not at the other node's idleness, nor while its tasks ran


def test_a_head_that_does_not_answer_never_stops_the_node() -> None:
    alive = iter([True] * 20 + [False])
    stopped: list[bool] = []
    assert watch("me", Scripted(None), lambda: next(alive), lambda: stopped.append(True), poll_s=0) == "gone"
    assert not stopped


def test_a_node_the_head_no_longer_lists_is_not_stopped_and_the_watch_can_be_told_to_end() -> None:
    stop = threading.Event()
    polls = Scripted([node("alive", node_id="someone else")])

    def fetch() -> list[dict[str, Any]] | None:
        if polls.polls == 3:
            stop.set()
        return polls()

    assert watch("me", fetch, lambda: True, lambda: (_ for _ in ()).throw(AssertionError), stop, poll_s=0) == \
        "stopped"


def test_drained_and_idle() -> None:
    assert drained_and_idle(node("draining")) and not drained_and_idle(node("draining", running=1))
    assert not drained_and_idle(node("alive")) and not drained_and_idle(node("left")) and not drained_and_idle(None)


def test_forget_worker_removes_only_the_record_of_that_ray(tmp_path: Path) -> None:
    record = tmp_path / "worker.json"
    record.write_text(json.dumps({"pid": 42}))
    forget_worker(tmp_path, 41)  # a new worker of this data dir replaced it: its record stays
    assert record.exists()
    forget_worker(tmp_path, 42)
    assert not record.exists()
    forget_worker(tmp_path, 42)  # gone already: nothing to do
