"""Clients ride out a head that dies and comes back, and a head that stops says so (503), never a 500.

Real heads (tests/headproc.py), killed with SIGKILL (the server process only, as a crash would) and
started again on the same data dir and port, while clients wait on results and follow event streams.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lattice import HeadUnavailable, LatticeClient, task
from lattice.executor.ray_process import kill_process_group

pytestmark = pytest.mark.timeout(400)


@task(inputs=["x"], outputs=["x"], cpu=0)
def step(params):
    import time

    time.sleep(2)
    return {"x": params["x"] + 1}


def crash(head: Any) -> None:
    """SIGKILL the head's server process, then stop the Ray it left behind (no test may leak one).

    The restarted head starts an embedded Ray of its own; adopting the old one is not this test's subject.
    """
    info = json.loads((Path(head.data_dir) / "head.json").read_text())
    os.kill(head.proc.pid, signal.SIGKILL)
    head.proc.wait(10)
    head.proc = None
    if info.get("ray_pgid"):
        kill_process_group(info["ray_pgid"])


def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


class Background(threading.Thread):
    """Runs ``fn`` and keeps its value or its exception."""

    def __init__(self, fn: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.value, self.error = fn, None, None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc


def test_waiting_clients_get_their_result_and_every_event_across_a_head_crash(head_factory, tmp_path):
    data_dir = tmp_path / "crash"
    head = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    port, token = head.port, head.token
    client = LatticeClient(head.url, token=token, progress=False, unavailable_timeout=180)
    workflow = client.create_workflow("chain")
    previous = workflow.add_task(step, inputs={"x": 0}, name="s0")
    for index in range(1, 5):
        previous = workflow.add_task(step, inputs={"x": previous.outputs["x"]}, name=f"s{index}")
    run_id = workflow.run()
    waiter = Background(lambda: client.get_results(run_id))
    streamed: list[dict[str, Any]] = []
    streamer = Background(lambda: streamed.extend(client.stream(run_id)))
    waiter.start()
    streamer.start()
    wait_until(lambda: any(e["type"] == "task_succeeded" for e in streamed))  # mid-run, events already seen
    crash(head)
    time.sleep(1)
    restarted = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"], port=port)
    waiter.join(180)
    streamer.join(60)
    assert waiter.error is None and streamer.error is None, (waiter.error, streamer.error)
    assert waiter.value == {"x": 5}
    with LatticeClient(restarted.url, token=token, progress=False) as fresh:
        stored = fresh.get_events(run_id)
    seqs = [e["seq"] for e in streamed]
    assert seqs == [e["seq"] for e in stored]  # every stored event, once, in order, across the restart
    assert streamed[-1]["type"] == "run_finished" and "run_resumed" in [e["type"] for e in streamed]
    client.close()


def test_a_stopping_head_answers_503_and_clients_give_up_after_their_deadline(head_factory, tmp_path):
    head = head_factory(data_dir=tmp_path / "stop", extra_args=["--num-cpus", "1"])
    client = LatticeClient(head.url, token=head.token, progress=False, unavailable_timeout=3)
    workflow = client.create_workflow("slow")
    workflow.add_task(step, inputs={"x": 0})
    workflow.add_task(step, inputs={"x": 10}, name="other")
    run_id = workflow.run()

    def raw_long_poll() -> httpx.Response:
        return httpx.get(f"{head.url}/api/v1/runs/{run_id}/results", params={"wait": 60},
                         headers={"authorization": f"Bearer {head.token}"}, timeout=90)

    raw = Background(raw_long_poll)
    sdk = Background(lambda: client.get_results(run_id))
    stream = Background(lambda: list(client.stream(run_id)))
    for thread in (raw, sdk, stream):
        thread.start()
    time.sleep(1)
    started = time.monotonic()
    head.stop()
    raw.join(30)
    answer = raw.value
    assert answer is not None, raw.error
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["type"] == "shutting_down" and answer.headers["retry-after"] == "2"
    assert time.monotonic() - started < 20  # the 60 s long poll ended with the shutdown, not after it
    assert "graceful shutdown exceeded" not in head.log_path.read_text()
    sdk.join(60)
    stream.join(60)
    for thread in (sdk, stream):
        assert isinstance(thread.error, HeadUnavailable), thread.error
    assert "unavailable_timeout=3 s" in str(sdk.error) and "unavailable_timeout=3 s" in str(stream.error)
    client.close()
