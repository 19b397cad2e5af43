"""``lattice runs ...`` and ``lattice submit`` against a real head (the session's), found by its data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lattice import LatticeClient, task

LATTICE = [sys.executable, "-m", "lattice.cli.main"]


@task(inputs=["x"], outputs=["y"])
def shout(params):
    print(f"shouting {params['x']}")
    return {"y": str(params["x"]).upper()}


@task(inputs=["x"], outputs=["y"])
def breaks(params):
    print("about to fail", file=sys.stderr)
    raise ValueError(f"no {params['x']}")


@task(outputs=["x"], cpu=0)
def sleeps(params):
    time.sleep(120)
    return {"x": 1}


def lattice(head, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LATTICE_URL", "LATTICE_TOKEN")}
    env["LATTICE_HOME"] = str(head.data_dir)  # found as `lattice status` finds it: the data dir's head.json
    return subprocess.run([*LATTICE, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished_runs(head) -> dict[str, str]:
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        good = client.create_workflow("cli-good")
        good.add_task(shout, inputs={"x": "hi"})
        ok = good.run(inputs={"shout": {"x": "per-run"}}, tags={"who": "test"})
        bad = client.create_workflow("cli-bad")
        bad.add_task(breaks, inputs={"x": "way"})
        failed = bad.run()
        client.wait(ok, timeout=60)
        client.wait(failed, timeout=60)
    return {"ok": ok, "failed": failed}


def test_list_filters_by_status_and_prints_json(head, finished_runs) -> None:
    out = lattice(head, "runs", "list", "--json", "--limit", "200")
    assert out.returncode == 0, out.stderr
    ids = {run["run_id"]: run["state"] for run in json.loads(out.stdout)}
    assert ids[finished_runs["ok"]] == "succeeded" and ids[finished_runs["failed"]] == "failed"
    failed = json.loads(lattice(head, "runs", "list", "--status", "failed", "--json", "--limit", "200").stdout)
    assert finished_runs["failed"] in {r["run_id"] for r in failed} and {r["state"] for r in failed} == {"failed"}
    table = lattice(head, "runs", "list", "--limit", "200")
    assert table.returncode == 0 and finished_runs["ok"] in table.stdout  # whole ids, not cut
    bad = lattice(head, "runs", "list", "--status", "sleeping")
    assert bad.returncode == 2 and "--status" in bad.stderr


def test_show_prints_the_tasks_and_the_error(head, finished_runs) -> None:
    shown = json.loads(lattice(head, "runs", "show", finished_runs["failed"], "--json").stdout)
    assert shown["failed_task"] == "breaks" and shown["tasks"][0]["state"] == "failed"
    text = lattice(head, "runs", "show", finished_runs["failed"])
    assert text.returncode == 0 and "ValueError" in text.stdout and "no way" in text.stdout
    missing = lattice(head, "runs", "show", "no-such-run")
    assert missing.returncode == 1 and "no-such-run" in missing.stderr and "Traceback" not in missing.stderr


def test_logs_print_each_attempt_and_follow_ends_with_the_run(head, finished_runs) -> None:
    logs = lattice(head, "runs", "logs", finished_runs["failed"])
    assert logs.returncode == 0, logs.stderr
    assert "== breaks (attempt 1, failed" in logs.stdout and "about to fail" in logs.stderr
    followed = lattice(head, "runs", "logs", finished_runs["ok"], "--follow", timeout=60)
    assert followed.returncode == 0 and "shout | shouting per-run" in followed.stdout
    only = lattice(head, "runs", "logs", finished_runs["ok"], "--task", "nope")
    assert only.returncode == 0 and "no attempts of task nope" in only.stderr


def test_follow_streams_a_live_run_until_it_is_cancelled(head) -> None:
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        wf = client.create_workflow("cli-cancel")
        wf.add_task(sleeps)
        run_id = wf.run()
        env = {**os.environ, "LATTICE_HOME": str(head.data_dir)}
        follower = subprocess.Popen([*LATTICE, "runs", "logs", run_id, "--follow"], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        assert follower.poll() is None  # still following: the run goes on
        cancelled = lattice(head, "runs", "cancel", run_id)
        assert cancelled.returncode == 0 and f"run {run_id}: cancelled" in cancelled.stderr
        assert follower.wait(60) == 0
        assert client.get_run(run_id)["state"] == "cancelled"
        again = lattice(head, "runs", "cancel", run_id)
        assert again.returncode == 0 and "had already finished (cancelled)" in again.stderr


def test_retry_starts_a_new_run_with_the_same_inputs_and_tags(head, finished_runs) -> None:
    out = lattice(head, "runs", "retry", finished_runs["ok"], "--wait")
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.splitlines()[0]
    assert new_id != finished_runs["ok"]
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        new = client.get_run(new_id)
        old = client.get_run(finished_runs["ok"])
        assert new["inputs"] == old["inputs"] and new["workflow_id"] == old["workflow_id"]
        assert new["tags"] == {"who": "test", "retry_of": finished_runs["ok"]}
        assert client.get_results(new_id) == {"y": "PER-RUN"}
    failing = lattice(head, "runs", "retry", finished_runs["failed"], "--wait")
    assert failing.returncode == 1 and "failed" in failing.stderr


SCRIPT = '''
from lattice import LatticeClient, task


@task(inputs=["n"], outputs=["total"])
def add_up(params):
    print("adding", params["n"])
    return {"total": sum(range(params["n"]))}


@task(inputs=["total"], outputs=["half"])
def halve(params):
    if params["total"] < 0:
        raise RuntimeError("negative")
    return {"half": params["total"] / 2}


workflow = LatticeClient().create_workflow("submitted")
first = workflow.add_task(add_up, inputs={"n": 10})
workflow.add_task(halve, inputs={"total": first.outputs["total"]})

if __name__ == "__main__":
    raise SystemExit("the __main__ block must not run under lattice submit")
'''


def test_submit_runs_the_scripts_workflow_streams_progress_and_exits_by_outcome(head, tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = lattice(head, "submit", str(script))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"half": 22.5}
    assert "add_up: succeeded" in out.stderr and "halve: succeeded" in out.stderr and "add_up | adding 10" in out.stderr
    failed = lattice(head, "submit", f"{script}:workflow", "--input", "add_up.n=0", "--input", "add_up.bogus=1")
    assert failed.returncode == 1 and "inputs.add_up.bogus" in failed.stderr  # the head refused: one line
    detached = lattice(head, "submit", str(script), "--detach", "--tag", "k=v")
    assert detached.returncode == 0
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        run = client.get_run(detached.stdout.strip())
        assert run["tags"] == {"k": "v"} and client.get_results(run["run_id"]) == {"half": 22.5}


FAILING = '''
from lattice import LatticeClient, task


@task(outputs=["y"])
def halve(params):
    raise RuntimeError("negative")


def build():
    workflow = LatticeClient().create_workflow("submitted-failing")
    workflow.add_task(halve)
    return workflow
'''


def test_submit_exits_1_when_the_run_fails(head, tmp_path: Path) -> None:
    script = tmp_path / "neg.py"
    script.write_text(FAILING)
    out = lattice(head, "submit", f"{script}:build")  # a function that returns the workflow
    assert out.returncode == 1, out.stderr
    assert "halve: failed RuntimeError: negative" in out.stderr and "lattice runs show" in out.stderr
    assert out.stdout == ""


def test_submit_explains_what_it_cannot_find(head, tmp_path: Path) -> None:
    script = tmp_path / "none.py"
    script.write_text("x = 1\n")
    out = lattice(head, "submit", str(script))
    assert out.returncode == 1 and "defines no workflow" in out.stderr
    assert lattice(head, "submit", str(tmp_path / "missing.py")).returncode == 2


def test_the_examples_run_under_submit_and_find_the_head(head) -> None:
    root = Path(__file__).resolve().parents[2]
    out = lattice(head, "submit", str(root / "examples" / "hello.py"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"result": "Hello Lattice"}


pytestmark = pytest.mark.timeout(400)


SLOW = '''
import time

from lattice import LatticeClient, task


@task(outputs=["x"], cpu=0)
def slow(params):
    time.sleep(120)
    return {"x": 1}


workflow = LatticeClient().create_workflow("submitted-slow")
workflow.add_task(slow)
'''


def test_ctrl_c_while_following_exits_130_without_a_traceback_and_the_run_goes_on(head, tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    env = {**os.environ, "LATTICE_HOME": str(head.data_dir)}
    proc = subprocess.Popen([*LATTICE, "submit", str(script)], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        while time.monotonic() < deadline:
            running = [r for r in client.list_runs(state="running") if r["workflow_name"] == "submitted-slow"]
            if running:
                break
            time.sleep(0.2)
        assert running
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "interrupted" in stderr
        run_id = running[0]["run_id"]
        assert client.get_run(run_id)["state"] == "running"
        client.cancel(run_id)
