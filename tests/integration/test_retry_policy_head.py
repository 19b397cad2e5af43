"""The retry policy on a real head and Ray: delayed retries with backoff, NonRetryable and non_retryable,
cancel during the delay, a head restart during the delay; and task tracebacks naming this file."""

from __future__ import annotations

import time

import pytest

import lattice
from lattice import LatticeClient, NonRetryable, TaskFailed, task

THIS_FILE = __file__


class QuotaExceeded(RuntimeError):
    pass


def _attempt() -> int:
    context = lattice.current_task()
    assert context is not None
    return int(context.attempt_id.rsplit(":", 1)[1])


@task(outputs=["attempt"], retries=3, retry_delay=1.0, backoff=2.0, max_delay=1.5)
def flaky(params):
    attempt = _attempt()
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} failed")
    return {"attempt": attempt}


@task(outputs=["y"], retries=5, retry_delay=0.1)
def refuses(params):
    raise NonRetryable("the input can never work")


@task(outputs=["y"], retries=5, non_retryable=[QuotaExceeded])
def over_quota(params):
    raise QuotaExceeded("no quota left")


@task(outputs=["attempt"], retries=2, retry_delay=600)
def waits_long(params):
    attempt = _attempt()
    if attempt == 1:
        raise ConnectionError("first attempt fails")
    return {"attempt": attempt}


def _wait_for(client: LatticeClient, run_id: str, event_type: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in client.get_events(run_id) if e["type"] == event_type]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {event_type} event within {timeout} s")


def test_delayed_retries_back_off_up_to_the_cap(client: LatticeClient) -> None:
    wf = client.create_workflow()
    wf.add_task(flaky)
    run_id = wf.run()
    assert wf.get_results(run_id, timeout=120) == {"attempt": 3}
    retrying = [e for e in client.get_events(run_id) if e["type"] == "task_retrying"]
    assert [e["data"]["delay_s"] for e in retrying] == [1.0, 1.5]  # 1 s, then 2 s capped at 1.5
    assert all(e["data"]["retry_at"] == pytest.approx(e["ts"] + e["data"]["delay_s"], abs=0.05) for e in retrying)
    # each next attempt was queued no earlier than its delay after the failure (generous: a bound, not a timing)
    queued = [e for e in client.get_events(run_id) if e["type"] == "task_queued"]
    assert [e["data"]["attempt"] for e in queued] == [1, 2, 3]
    assert queued[1]["ts"] - retrying[0]["ts"] >= 0.95 and queued[2]["ts"] - retrying[1]["ts"] >= 1.45


def test_non_retryable_failures_make_one_attempt_and_name_the_users_file(client: LatticeClient) -> None:
    for fn, kind in ((refuses, "NonRetryable"), (over_quota, "non_retryable")):
        wf = client.create_workflow()
        wf.add_task(fn)
        run_id = wf.run()
        with pytest.raises(TaskFailed) as failed:
            wf.get_results(run_id, timeout=60)
        run = client.get_run(run_id)
        assert run["tasks"][0]["attempt"] == 1, kind
        event = next(e for e in client.get_events(run_id) if e["type"] == "task_failed")
        assert kind in event["data"]["not_retried"]
        traceback = failed.value.error.traceback
        assert "<dynamic-code>" not in traceback
        assert f'File "{THIS_FILE}"' in traceback and "raise " in traceback


def test_cancel_during_the_delay(client: LatticeClient) -> None:
    wf = client.create_workflow()
    wf.add_task(waits_long)
    run_id = wf.run()
    retrying = _wait_for(client, run_id, "task_retrying")
    assert retrying["data"]["delay_s"] == 600
    assert client.get_run(run_id)["tasks"][0]["state"] == "retrying"
    client.cancel(run_id)
    assert client.wait(run_id, timeout=30)["state"] == "cancelled"
    assert client.get_run(run_id)["tasks"][0]["state"] == "cancelled"


def test_a_head_restart_during_the_delay_still_retries(head_factory, tmp_path) -> None:
    data_dir = tmp_path / "restart"
    first = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(first.url, token=first.token, progress=False) as client:
        wf = client.create_workflow()
        wf.add_task(waits_long)
        run_id = wf.run()
        _wait_for(client, run_id, "task_retrying")
    first.stop()
    second = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(second.url, token=second.token, progress=False) as client:
        # the delay is not carried over a restart: the resumed task is queued at once, its count kept
        assert client.get_results(run_id, timeout=120) == {"attempt": 2}
