"""``lattice start/status/stop`` against real heads: the bugs of issue 13 (a port another head holds, a
status that guessed a head, a stop that trusted a pid) and the head's logging."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lattice import LatticeClient, task
from lattice.core.config import HeadSettings
from lattice.utils.net import free_port

LATTICE = [sys.executable, "-m", "lattice.cli.main"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@task(inputs=["x"], outputs=["y"])
def double(params):
    return {"y": params["x"] * 2}


def run(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LATTICE_URL", "LATTICE_TOKEN")}
    env["LATTICE_HOME"] = str(home)
    return subprocess.run([*LATTICE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_start_on_a_port_another_head_holds_fails_with_the_cause(head, tmp_path) -> None:
    started = time.monotonic()
    out = run("start", "--head", "--port", str(head.port), "--data-dir", str(tmp_path / "second"), home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"127.0.0.1:{head.port} is already in use" in out.stderr
    assert "Lattice head running" not in out.stderr
    assert time.monotonic() - started < 30  # said at once, not after starting Ray
    assert not (tmp_path / "second" / "head.json").exists()


def test_a_head_that_cannot_bind_never_says_it_listens(tmp_path) -> None:
    """The race the pre-check cannot close: the port is taken after the check. The head dies, and
    neither its head.json nor its log claim it listened (the banner comes only once bound)."""
    data_dir = tmp_path / "race"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings = HeadSettings(port=holder.getsockname()[1], data_dir=data_dir, num_cpus=1, object_store_mb=128)
        env = {**os.environ, "LATTICE_SETTINGS_JSON": settings.model_dump_json()}
        proc = subprocess.run([sys.executable, "-m", "lattice.cli.head"], env=env, capture_output=True, text=True,
                              timeout=180)
    assert proc.returncode != 0
    log = (data_dir / "logs" / "head.log").read_text()
    assert "address already in use" in log and "Lattice head listening" not in log
    assert not (data_dir / "head.json").exists()
    assert json.loads((data_dir / "head.last.json").read_text())["listening"] is False


def test_background_head_logs_status_and_stop(tmp_path) -> None:
    home, data_dir, port = tmp_path / "home", tmp_path / "bg", free_port()
    try:
        out = run("start", "--head", "--port", str(port), "--data-dir", str(data_dir), "--num-cpus", "1",
                  "--object-store-mb", "128", "--log-format", "json", "--access-log", home=home)
        assert out.returncode == 0, out.stderr
        token = (data_dir / "token").read_text().strip()
        assert "Lattice head running" in out.stderr and token not in out.stderr
        assert f"--addr http://127.0.0.1:{port} --token <TOKEN from {data_dir / 'token'}>" in out.stderr
        assert "workers on other machines cannot reach it" in out.stderr

        url = f"http://127.0.0.1:{port}"
        with LatticeClient(url, token=token, progress=False) as client:
            wf = client.create_workflow("status-runs")
            wf.add_task(double, inputs={"x": 21})
            run_id = wf.run()
            assert wf.get_results(run_id) == {"y": 42}
        status = run("status", "--data-dir", str(data_dir), "--json", home=home)
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert body["running"] and body["url"] == url and body["resources"]["cpu"] == 1
        assert [r["run_id"] for r in body["runs"]] == [run_id]  # the recent runs the text view shows
        text = run("status", "--data-dir", str(data_dir), home=home)
        assert text.returncode == 0 and run_id in text.stdout

        records = [json.loads(line) for line in (data_dir / "logs" / "head.log").read_text().splitlines()]
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
        messages = [r["message"] for r in records]
        assert any(m.startswith(f"Lattice head listening on {url}") for m in messages)
        assert any("/api/v1/runs" in m for m in messages if "POST" in m or "GET" in m)  # the access log
    finally:
        stop = run("stop", "--data-dir", str(data_dir), home=home)
    assert stop.returncode == 0 and "stopped" in stop.stderr

    down = run("status", "--data-dir", str(data_dir), home=home)
    assert down.returncode == 3
    assert f"the last head there was {url}" in down.stderr and "8000" not in down.stderr
    down_json = run("status", "--data-dir", str(data_dir), "--json", home=home)
    assert down_json.returncode == 3
    assert json.loads(down_json.stdout) == {"running": False, "data_dir": str(data_dir.resolve()), "url": url,
                                            "error": json.loads(down_json.stdout)["error"]}


def test_status_of_a_data_dir_with_no_head_never_asks_another_head(head, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "token").write_text("a-token-that-must-stay-here\n")
    # a head listening on the default port would have been asked (with this token) before the fix
    out = run("status", "--data-dir", str(empty), home=tmp_path)
    assert out.returncode == 3 and "no Lattice head runs for" in out.stderr and "401" not in out.stderr
    assert "none was started there" in out.stderr


def test_stop_never_signals_a_process_that_reused_the_pid(tmp_path) -> None:
    data_dir = tmp_path / "stale"
    data_dir.mkdir()
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = __import__("psutil").Process(bystander.pid).create_time()
        # what a crashed head left: its pid (now the bystander's) with the crashed head's start time
        (data_dir / "head.json").write_text(json.dumps({
            "pid": bystander.pid, "create_time": created - 500, "url": "http://127.0.0.1:1",
            "ray_pgid": bystander.pid, "ray_create_time": created - 400}))
        (data_dir / "worker.json").write_text(json.dumps({"pid": bystander.pid, "create_time": created - 300}))
        out = run("stop", "--data-dir", str(data_dir), home=tmp_path, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "is not running" in out.stderr and "left alone" in out.stderr
        time.sleep(0.5)
        assert bystander.poll() is None  # alive: neither it nor its group was signalled
        assert not (data_dir / "head.json").exists() and not (data_dir / "worker.json").exists()
        out = run("status", "--data-dir", str(data_dir), home=tmp_path)
        assert out.returncode == 3 and "http://127.0.0.1:1" in out.stderr
    finally:
        os.kill(bystander.pid, signal.SIGKILL)
        bystander.wait()


def test_a_blocking_head_logs_with_timestamps(head) -> None:
    lines = [line for line in head.log_path.read_text().splitlines() if line.strip()]
    listening = [line for line in lines if "Lattice head listening on" in line]
    assert listening and all(TIMESTAMP.match(line) for line in listening)
    assert all(TIMESTAMP.match(line) for line in lines if "lattice." in line.split(":")[0])


pytestmark = pytest.mark.timeout(400)
