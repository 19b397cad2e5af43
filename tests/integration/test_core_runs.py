"""The core runtime, driven only through the public client against a real head and a real Ray cluster."""

from __future__ import annotations

import importlib
import shutil
import sys
import threading
import time
from typing import Any

import pytest

from lattice import (
    LatticeClient,
    OutputError,
    ResourceUnavailable,
    RunCancelled,
    TaskFailed,
    TaskTimeout,
    WorkflowError,
    task,
)


@task(inputs=["text"], outputs=["result"])
def my_task(params):
    text: Any = params.get("text")
    return {"result": f"Hello {text}"}


@task(inputs=["x"], outputs=["y"])
def inc(params):
    return {"y": params["x"] + 1}


@task(inputs=["a", "b"], outputs=["sum"])
def add(params):
    return {"sum": params["a"] + params["b"]}


@task(inputs=["x"], outputs=["y"])
def explode(params):
    raise ValueError(f"cannot handle {params['x']}")


@task(outputs=["t"], cpu=0)
def io_sleep(params):
    start = time.time()
    time.sleep(0.5)
    return {"t": (start, time.time())}


@task(outputs=["t"])
def cpu_sleep(params):
    start = time.time()
    time.sleep(0.3)
    return {"t": (start, time.time())}


def max_overlap(intervals):
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def test_seed_example(client: LatticeClient):
    workflow = client.create_workflow()
    workflow.add_task(my_task, inputs={"text": "Lattice"})
    run_id = workflow.run()
    assert workflow.get_results(run_id) == {"result": "Hello Lattice"}


def test_diamond_passes_data_along_edges(client: LatticeClient):
    wf = client.create_workflow("diamond")
    start = wf.add_task(inc, inputs={"x": 1})
    left = wf.add_task(inc, inputs={"x": start.outputs["y"]})
    right = wf.add_task(add, inputs={"a": start.outputs["y"], "b": 10})
    wf.add_task(add, inputs={"a": left.outputs["y"], "b": right.outputs["sum"]})
    run_id = wf.run()
    assert wf.get_results(run_id) == {"sum": 3 + 12}
    tasks = wf.get_task_results(run_id)
    assert {name: t.state for name, t in tasks.items()} == dict.fromkeys(["inc", "inc_2", "add", "add_2"], "succeeded")
    assert tasks["inc"].outputs == {"y": 2}
    assert all(t.node_id and t.started_at and t.finished_at and t.attempt == 1 for t in tasks.values())
    run = client.get_run(run_id)
    assert run["state"] == "succeeded" and run["task_counts"] == {"succeeded": 4}


def test_fan_out_of_50(client: LatticeClient):
    wf = client.create_workflow("fanout")
    for i in range(50):
        wf.add_task(inc, inputs={"x": i}, name=f"t{i}")
    run_id = wf.run()
    merged = wf.get_results(run_id)  # fifty sinks share the output name "y": none of them is lost
    assert len(merged) == 50 and merged["t3.y"] == 4
    tasks = wf.get_task_results(run_id)
    assert sorted(t.outputs["y"] for t in tasks.values()) == list(range(1, 51))


def test_io_tasks_run_together_cpu_tasks_share_the_cores(client: LatticeClient):
    io_wf = client.create_workflow("io")
    for _ in range(8):
        io_wf.add_task(io_sleep)
    run_id = io_wf.run()
    io_wf.get_results(run_id)
    io_spans = [tuple(t.outputs["t"]) for t in io_wf.get_task_results(run_id).values()]
    assert max_overlap(io_spans) == 8  # cpu=0 holds no core: all eight at once

    cpu_wf = client.create_workflow("cpu")
    for _ in range(6):
        cpu_wf.add_task(cpu_sleep)
    run_id = cpu_wf.run()
    cpu_wf.get_results(run_id)
    cpu_spans = [tuple(t.outputs["t"]) for t in cpu_wf.get_task_results(run_id).values()]
    assert max_overlap(cpu_spans) <= 2  # this head's node has two cores


def test_one_workflow_runs_concurrently_and_many_workflows_from_threads(client: LatticeClient, head):
    wf = client.create_workflow()
    wf.add_task(inc, inputs={"x": 41})
    run_ids = [wf.run() for _ in range(10)]
    assert len(set(run_ids)) == 10
    assert all(wf.get_results(r) == {"y": 42} for r in run_ids)

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with LatticeClient(head.url, token=head.token, progress=False) as own:
                w = own.create_workflow(f"thread{n}")
                a = w.add_task(inc, inputs={"x": n})
                w.add_task(inc, inputs={"x": a.outputs["y"]})
                for _ in range(3):
                    assert w.get_results(w.run()) == {"y": n + 2}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


def test_failure_reports_and_skips_downstream_but_finishes_independent_branch(client: LatticeClient):
    wf = client.create_workflow("fails")
    bad = wf.add_task(explode, inputs={"x": 7})
    wf.add_task(inc, inputs={"x": bad.outputs["y"]}, name="after_bad")
    wf.add_task(inc, inputs={"x": 1}, name="independent")
    run_id = wf.run()
    with pytest.raises(TaskFailed) as err:
        wf.get_results(run_id)
    assert err.value.task == "explode"
    assert err.value.error.type == "ValueError" and err.value.error.message == "cannot handle 7"
    assert "in explode" in err.value.traceback and "ValueError: cannot handle 7" in err.value.traceback
    original = err.value.original_exception()  # the very exception, rebuilt on the client
    assert type(original) is ValueError and original.args == ("cannot handle 7",)
    tasks = wf.get_task_results(run_id)
    assert tasks["after_bad"].state == "skipped"
    assert tasks["independent"].state == "succeeded" and tasks["independent"].outputs == {"y": 2}
    assert client.get_run(run_id)["state"] == "failed"


def test_missing_output_is_named(client: LatticeClient):
    @task(outputs=["answer", "reason"])
    def forgetful(params):
        return {"answer": 42}

    wf = client.create_workflow()
    wf.add_task(forgetful)
    with pytest.raises(OutputError, match="'reason'"):
        wf.get_results(wf.run())


def test_retries_make_new_attempts(client: LatticeClient, tmp_path):
    marker = tmp_path / "attempts"

    @task(outputs=["n"], retries=2)
    def flaky(params):
        with open(marker, "a") as fh:
            fh.write("x")
        count = len(open(marker).read())
        if count < 3:
            raise RuntimeError(f"attempt {count} fails")
        return {"n": count}

    wf = client.create_workflow()
    wf.add_task(flaky)
    run_id = wf.run()
    assert wf.get_results(run_id) == {"n": 3}
    logs = client.get_logs(run_id)
    assert [a["attempt"] for a in logs] == [1, 2, 3]
    assert len({a["attempt_id"] for a in logs}) == 3
    assert [a["state"] for a in logs] == ["failed", "failed", "succeeded"]
    types = [e["type"] for e in client.get_events(run_id)]
    assert types.count("task_retrying") == 2


def test_timeout_stops_the_task(client: LatticeClient):
    @task(outputs=["never"], timeout=1)
    def sleepy(params):
        time.sleep(60)
        return {"never": 1}

    wf = client.create_workflow()
    wf.add_task(sleepy)
    started = time.monotonic()
    with pytest.raises(TaskTimeout):
        wf.get_results(wf.run(), timeout=30)
    assert time.monotonic() - started < 30


def test_cancel_a_running_run(client: LatticeClient):
    @task(outputs=["x"], cpu=0)
    def long(params):
        time.sleep(30)
        return {"x": 1}

    wf = client.create_workflow()
    first = wf.add_task(long)
    wf.add_task(inc, inputs={"x": first.outputs["x"]})
    run_id = wf.run()
    for _ in range(50):
        if client.get_run(run_id)["task_counts"].get("running"):
            break
        time.sleep(0.1)
    body = wf.cancel(run_id)
    assert body["state"] == "cancelled"
    with pytest.raises(RunCancelled):
        wf.get_results(run_id, timeout=10)
    states = {t["name"]: t["state"] for t in client.get_run(run_id)["tasks"]}
    assert states == {"long": "cancelled", "inc": "cancelled"}


def test_impossible_resources_fail_at_once_without_blocking_others(client: LatticeClient):
    @task(outputs=["x"], cpu=64)
    def huge(params):
        return {"x": 1}

    wf = client.create_workflow()
    wf.add_task(huge)
    run_id = wf.run()
    other = client.create_workflow()
    other.add_task(inc, inputs={"x": 1})
    assert other.get_results(other.run(), timeout=30) == {"y": 2}
    with pytest.raises(ResourceUnavailable, match="largest node"):
        wf.get_results(run_id, timeout=10)


def test_client_side_workflow_errors(client: LatticeClient):
    wf = client.create_workflow()
    t = wf.add_task(inc, inputs={"x": 1})
    with pytest.raises(WorkflowError, match="declares no output 'z'"):
        _ = t.outputs["z"]
    with pytest.raises(WorkflowError, match="has no input"):
        wf.add_task(inc, inputs={"x": 1, "typo": 2})
    with pytest.raises(WorkflowError, match="decorated with @task"):
        wf.add_task(lambda p: p)


def test_any_client_reads_a_run_by_id(client: LatticeClient, head):
    wf = client.create_workflow()
    wf.add_task(my_task, inputs={"text": "again"})
    run_id = wf.run()
    with LatticeClient(head.url, token=head.token, progress=False) as other:
        assert other.get_results(run_id) == {"result": "Hello again"}
        assert other.get_run(run_id)["tasks"][0]["state"] == "succeeded"


def test_tasks_from_an_uninstalled_module_run_by_value(client: LatticeClient, tmp_path):
    source = (__import__("pathlib").Path(__file__).parent / "shipped_helpers_src.py.txt")
    package = tmp_path / "client_only_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(source, package / "helpers.py")
    sys.path.insert(0, str(tmp_path))
    try:
        helpers = importlib.import_module("client_only_pkg.helpers")
        # A task defined here that calls a helper of that module: the helper travels with it.
        shout = helpers.shout

        @task(inputs=["text"], outputs=["loud"])
        def uses_helper(params):
            return {"loud": shout(params["text"]) + "?"}

        wf = client.create_workflow()
        wf.add_task(uses_helper, inputs={"text": "ok"})
        assert wf.get_results(wf.run()) == {"loud": "OK!?"}

        # A task defined in that module itself.
        wf = client.create_workflow()
        wf.add_task(helpers.make_task(), inputs={"text": "hi"})
        assert wf.get_results(wf.run()) == {"loud": "HI!"}
    finally:
        sys.path.remove(str(tmp_path))


def test_stream_yields_events_in_order_and_resumes(client: LatticeClient):
    wf = client.create_workflow()
    a = wf.add_task(inc, inputs={"x": 1})
    wf.add_task(inc, inputs={"x": a.outputs["y"]})
    run_id = wf.run()
    events = list(wf.stream(run_id))
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("task_succeeded") == 2 and "task_queued" in types and "task_started" in types
    resumed = list(wf.stream(run_id, after=seqs[2]))
    assert [e["seq"] for e in resumed] == seqs[3:]


async def test_async_client_and_astream(head):
    from lattice import AsyncLatticeClient

    async with AsyncLatticeClient(head.url, token=head.token) as aclient:
        wf = aclient.create_workflow()
        wf.add_task(my_task, inputs={"text": "async"})
        run_id = await wf.run()
        events = [e async for e in wf.stream(run_id)]
        assert events[-1]["type"] == "run_finished"
        assert await wf.get_results(run_id) == {"result": "Hello async"}


def test_logs_are_captured(client: LatticeClient):
    @task(outputs=["ok"])
    def chatty(params):
        print("hello from the task")
        return {"ok": True}

    wf = client.create_workflow()
    wf.add_task(chatty)
    run_id = wf.run()
    wf.get_results(run_id)
    assert "hello from the task" in client.get_logs(run_id)[0]["stdout"]


def test_per_run_inputs_and_task_context(client: LatticeClient):
    from lattice import current_task

    @task(inputs=["x"], outputs=["y", "where"])
    def scaled(params):
        ctx = current_task()
        return {"y": params["x"] * 10, "where": [ctx.run_id, ctx.task, ctx.attempt_id]}

    wf = client.create_workflow()
    first = wf.add_task(scaled, inputs={"x": 1})
    wf.add_task(inc, inputs={"x": first.outputs["y"]})
    default_run = wf.run()
    custom_run = wf.run(inputs={"scaled": {"x": 5}})
    assert wf.get_results(default_run)["y"] == 11
    assert wf.get_results(custom_run)["y"] == 51
    assert client.get_run(custom_run)["inputs"] == {"scaled": {"x": {"encoding": "json", "value": 5}}}
    where = wf.get_task_results(custom_run)["scaled"].outputs["where"]
    assert where[0] == custom_run and where[1] == "scaled" and where[2].startswith(custom_run)
    from lattice import APIError

    with pytest.raises(APIError) as err:
        wf.run(inputs={"inc": {"x": 3}})  # a reference, not a literal
    assert err.value.status == 422 and err.value.field == "inputs.inc.x"
    with pytest.raises(APIError, match="no task 'ghost'"):
        wf.run(inputs={"ghost": {"x": 3}})


def test_run_wait_brings_the_results_back_in_the_submit(client: LatticeClient, head):
    """``run(wait=True)``: one request holds until the run ends and carries its results; ``get_results``
    takes them without asking again (the head is not asked: a results request would be a second call)."""
    wf = client.create_workflow("wait-ok")
    wf.add_task(my_task, inputs={"text": "at once"})
    wf.register()
    sent: list[str] = []
    original = client._request

    def counting(method: str, path: str, **kwargs: Any) -> Any:
        sent.append(f"{method} {path}")
        return original(method, path, **kwargs)

    client._request = counting  # type: ignore[method-assign]
    try:
        run_id = wf.run(wait=True)
        assert wf.get_results(run_id) == {"result": "Hello at once"}
    finally:
        client._request = original  # type: ignore[method-assign]
    assert sent == [f"POST /api/v1/workflows/{wf._registered[1]}/runs"], sent
    assert client.get_run(run_id)["state"] == "succeeded"  # it is stored; a second get_results asks the head
    assert wf.get_results(run_id) == {"result": "Hello at once"}

    failing = client.create_workflow("wait-fail")
    failing.add_task(explode, inputs={"x": 3})
    with pytest.raises(TaskFailed, match="cannot handle 3"):
        failing.get_results(failing.run(wait=True))


def test_run_wait_over_http_and_its_bounds(client: LatticeClient, head):
    import httpx

    wf = client.create_workflow("wait-http")
    wf.add_task(my_task, inputs={"text": "http"})
    workflow_id = wf.register()
    with httpx.Client(base_url=head.url, headers={"Authorization": f"Bearer {head.token}"}, timeout=60) as http:
        body = http.post(f"/api/v1/workflows/{workflow_id}/runs", params={"wait": 30}).json()
        assert body["state"] == "succeeded" and body["results"]["done"] is True
        assert body["results"]["outputs"]["result"]["value"] == "Hello http"
        plain = http.post(f"/api/v1/workflows/{workflow_id}/runs").json()
        assert plain["state"] == "running" and plain["results"] is None
        for bad in (-1, 61, "soon"):
            answer = http.post(f"/api/v1/workflows/{workflow_id}/runs", params={"wait": bad})
            assert answer.status_code == 422, answer.text
            assert "wait" in answer.text
        # a replayed Idempotency-Key with wait answers the first run's results, and starts nothing new
        key = {"Idempotency-Key": "wait-replay-1"}
        first = http.post(f"/api/v1/workflows/{workflow_id}/runs", params={"wait": 30}, headers=key).json()
        again = http.post(f"/api/v1/workflows/{workflow_id}/runs", params={"wait": 30}, headers=key)
        assert again.status_code == 200 and again.json()["run_id"] == first["run_id"]
        assert again.json()["results"]["outputs"] == first["results"]["outputs"]


async def test_async_run_wait(head):
    from lattice import AsyncLatticeClient

    async with AsyncLatticeClient(head.url, token=head.token) as aclient:
        wf = aclient.create_workflow()
        wf.add_task(my_task, inputs={"text": "async wait"})
        assert await wf.get_results(await wf.run(wait=True)) == {"result": "Hello async wait"}
