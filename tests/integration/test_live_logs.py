"""Live logs against a real head and real Ray: a task prints, sleeps, prints, and its first line reaches
``workflow.stream()`` as a ``task_log`` event while the task still runs, at every sandbox level this machine
has (``none`` in a Ray worker and in the shared I/O executor, ``subprocess``, ``seccomp``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lattice import LatticeClient, task
from lattice.executor.sandbox import capabilities

SLEEP_S = 4.0


def _printer(params: dict[str, Any]) -> dict[str, Any]:
    import sys
    import time as clock

    print("first line", params["tag"])
    print("to stderr", file=sys.stderr)
    clock.sleep(params["sleep"])
    print("second line")
    return {"done": clock.time()}


def _levels() -> list[Any]:
    caps = capabilities()
    levels: list[Any] = [pytest.param("none", 1, id="none"), pytest.param("none", 0, id="none-io-executor")]
    for level, needs in (("subprocess", "pid_namespace"), ("seccomp", "seccomp")):
        levels.append(pytest.param(level, 1, id=level, marks=pytest.mark.skipif(
            not caps.get(needs), reason=f"this machine cannot run sandbox level {level}")))
    return levels


@pytest.mark.parametrize(("level", "cpu"), _levels())
def test_the_first_line_arrives_before_the_task_ends(client: LatticeClient, level: str, cpu: int) -> None:
    printer = task(inputs=["tag", "sleep"], outputs=["done"], cpu=cpu, sandbox=level)(_printer)
    workflow = client.create_workflow(f"live-logs-{level}-{cpu}")
    workflow.add_task(printer, name="printer", inputs={"tag": level, "sleep": SLEEP_S})
    run_id = workflow.run()
    received: list[tuple[float, dict[str, Any]]] = []

    def follow() -> None:
        for event in workflow.stream(run_id):
            received.append((time.time(), event))

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    reader.join(timeout=90)
    assert not reader.is_alive(), "the run's event stream did not end"
    events = [e for _, e in received]
    logs = client.get_logs(run_id, "printer")
    finished_at = logs[0]["finished_at"]

    live = [(at, e) for at, e in received if e["type"] == "task_log" and e["data"].get("live")]
    first = next(((at, e) for at, e in live if "first line" in e["data"]["text"]), None)
    assert first is not None, [e for e in events if e["type"] == "task_log"]
    arrived, event = first
    assert event["task"] == "printer" and event["data"]["stream"] == "stdout"
    assert event["data"]["attempt_id"] == f"{run_id}:printer:1"
    assert f"first line {level}" in event["data"]["text"]
    # it came while the task slept: well before its return, and before its task_succeeded event
    assert arrived < finished_at - SLEEP_S / 2, (arrived, finished_at)
    succeeded = next(e["seq"] for e in events if e["type"] == "task_succeeded")
    assert event["seq"] < succeeded
    assert any(e["data"]["stream"] == "stderr" and "to stderr" in e["data"]["text"] for _, e in live)
    # the attempt's own record is whole, and the final task_log event says it is the final one
    final = [e for e in events if e["type"] == "task_log" and e["data"].get("final")]
    assert any("second line" in e["data"]["text"] for e in final)
    assert "first line" in logs[0]["stdout"] and "second line" in logs[0]["stdout"]
    # a reconnect resumes by sequence number: the live event is replayed from the store after seq - 1
    replay = list(workflow.stream(run_id, after=event["seq"] - 1))
    assert replay[0]["seq"] == event["seq"] and replay[0]["data"] == event["data"]


def test_a_flood_of_output_is_capped_in_the_live_log(client: LatticeClient) -> None:
    @task(outputs=["n"])
    def flood(params: dict[str, Any]) -> dict[str, Any]:
        import time as clock

        block = ("x" * 1023 + "\n") * 64
        for _ in range(48):  # 3 MiB over about 2.5 s, three times the live cap: the cap is hit while it runs
            print(block, end="")
            clock.sleep(0.05)
        return {"n": 48}

    workflow = client.create_workflow("live-logs-flood")
    workflow.add_task(flood, name="flood")
    run_id = workflow.run()
    events = list(workflow.stream(run_id))
    live = [e["data"]["text"] for e in events if e["type"] == "task_log" and e["data"].get("live")]
    total = sum(len(t) for t in live)
    assert 1024 * 1024 <= total < 1024 * 1024 + 1024, total
    assert "live log of this attempt stopped after 1048576 characters" in live[-1]
    assert max(len(t) for t in live) <= 64 * 1024
    final = [e for e in events if e["type"] == "task_log" and e["data"].get("final")]
    assert len(final) == 1 and len(final[0]["data"]["text"]) <= 64 * 1024  # the event keeps the tail
