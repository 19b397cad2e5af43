"""Model pools end to end: a real head, real Ray, a real engine (``transformers serve``), real requests.

What is in flight is counted AT THE ENGINE, from its own log: ``transformers serve`` logs
``[Request received]`` (before 5.2x; since then ``Request <id>: model ...``, only with
``--enable-log-requests``, which :func:`request_log_args` adds where the engine has it) when its handler
takes a request (it accepts every connection at once and then
generates one after another) and uvicorn logs the ``POST`` when the answer is sent, so
received-minus-answered is the engine's own count of requests it holds.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from headproc import HeadProcess

from lattice import LatticeClient, task

pytestmark = pytest.mark.timeout(600)


def engine_log(head: HeadProcess, replica_id: str) -> Path:
    return head.data_dir / "llm" / f"{replica_id}.log"


_RECEIVED = re.compile(r"\[Request received\]|\bRequest \S+: model ")


def request_log_args() -> list[str]:
    """The engine flag that makes ``transformers serve`` log each request it takes, where it has one."""
    from transformers.cli import serve

    return ["--enable-log-requests"] if "enable_log_requests" in inspect.getsource(serve) else []


def peak_at_engine(log: Path) -> tuple[int, int]:
    """(most requests the engine held at once, requests it answered), from the engine's own log."""
    held = peak = answered = 0
    for line in log.read_text(errors="replace").splitlines():
        if _RECEIVED.search(line):
            held += 1
            peak = max(peak, held)
        elif '"POST /v1/chat/completions' in line or '"POST /v1/completions' in line:
            held -= 1
            answered += 1
    return peak, answered


def wait_ready(client: LatticeClient, alias: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = next(p for p in client.llm.list() if p.alias == alias)
        if view.state == "ready":
            return view.model_dump()
        assert view.state != "failed", view.error
        time.sleep(0.5)
    raise AssertionError(f"pool {alias} not ready in {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> float:
    started = time.monotonic()
    while pid_alive(pid):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"engine pid {pid} still alive after {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def chat(max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {"model": "anything", "messages": [{"role": "user", "content": "hello pool"}], "max_tokens": max_tokens,
            **extra}


async def post_all(url: str, token: str, bodies: list[tuple[str, dict[str, Any]]],
                   timeout: float = 300) -> list[tuple[httpx.Response, float]]:
    """POST every (run, body) at once; (response, seconds) in order."""
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=200)) as http:
        async def one(run: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await http.post(url, json=body, headers={"authorization": f"Bearer {token}",
                                                                 "x-lattice-run": run})
            return response, time.monotonic() - started
        return await asyncio.gather(*(one(run, body) for run, body in bodies))


# --- one pool, cap 2: the cap at the engine, fairness, a workflow with the openai client ---------------

@pytest.fixture(scope="module")
def capped(llm_head: HeadProcess, tiny_model: Path) -> str:
    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as client:
        client.llm.deploy("capped", engine="transformers", model=str(tiny_model), cpu=0.5, max_concurrency=2,
                          max_queue=100, min_replicas=1, idle_timeout_s=3600, engine_args=request_log_args())
        wait_ready(client, "capped")
    return "capped"


def test_twenty_requests_from_four_runs_never_more_than_two_at_the_engine(llm_head: HeadProcess, capped: str,
                                                                          client: LatticeClient) -> None:
    url = f"{llm_head.url}/api/v1/llm/{capped}/v1/chat/completions"
    bodies = [(f"run{i % 4}", chat(max_tokens=24)) for i in range(20)]
    answers = asyncio.run(post_all(url, llm_head.token, bodies))
    assert [r.status_code for r, _ in answers] == [200] * 20, [r.text[:200] for r, _ in answers]
    assert all(r.json()["choices"][0]["message"]["content"] is not None for r, _ in answers)
    view = next(p for p in client.llm.list() if p.alias == capped)
    peak, answered = peak_at_engine(engine_log(llm_head, view.replicas[0].replica_id))
    assert answered >= 21  # 20 + the warm-up: all of them reached the engine
    assert peak <= 2, f"the engine held {peak} requests at once"
    assert peak == 2  # and the cap was used, not just one at a time
    assert view.tokens_out >= 20 and view.in_flight == 0 and view.queued == 0


def test_a_flooding_run_does_not_push_another_past_the_bound(llm_head: HeadProcess, capped: str) -> None:
    """docs/llm.md: a run not ahead of the flooder in tokens waits for at most one slot to free per request;
    with cap 2 on an engine that generates one at a time, that is about 4 service times per request. FIFO
    would make it wait behind all 30 of the flooder's (about 30 service times)."""
    url = f"{llm_head.url}/api/v1/llm/{capped}/v1/chat/completions"
    alone = [asyncio.run(post_all(url, llm_head.token, [("probe", chat(max_tokens=24))]))[0][1] for _ in range(3)]
    service = statistics.median(alone)

    async def scenario() -> tuple[list[float], list[float]]:
        flood = asyncio.create_task(post_all(url, llm_head.token, [("flooder", chat(max_tokens=24))] * 30))
        await asyncio.sleep(2 * service)  # the flood is queued
        light: list[float] = []
        for _ in range(5):
            (response, seconds), = await post_all(url, llm_head.token, [("light", chat(max_tokens=24))])
            assert response.status_code == 200
            light.append(seconds)
        flooded = await flood
        assert all(r.status_code == 200 for r, _ in flooded)
        return light, [s for _, s in flooded]

    light, flooded = asyncio.run(scenario())
    p95 = sorted(light)[int(0.95 * (len(light) - 1))]
    bound = 6 * service + 1.0  # 4 service times, with room for a loaded machine
    assert p95 <= bound, f"light run p95 {p95:.2f} s over the bound {bound:.2f} s (service {service:.2f} s)"
    assert max(flooded) > p95  # the flooder did wait behind its own requests


def test_a_workflow_task_calls_the_pool_with_the_openai_client(llm_head: HeadProcess, capped: str,
                                                               client: LatticeClient) -> None:
    pytest.importorskip("openai")

    # in a sandbox (its own process) the key is also in OPENAI_BASE_URL/OPENAI_API_KEY; at level none the
    # task shares its worker process with others, so only params["llm"] carries it
    @task(cpu=0, llm="capped", sandbox="subprocess", outputs=["plain", "streamed", "env", "model"])
    def ask(params: dict[str, Any]) -> dict[str, Any]:
        import os

        from openai import OpenAI

        access = params["llm"]["capped"]
        ai = OpenAI(base_url=access["base_url"], api_key=access["api_key"])
        plain = ai.chat.completions.create(model=access["model"], max_tokens=6,
                                           messages=[{"role": "user", "content": "hi"}])
        chunks = ai.chat.completions.create(model=access["model"], max_tokens=6, stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
        streamed = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
        return {"plain": plain.choices[0].message.content, "streamed": streamed,
                "env": os.environ.get("OPENAI_BASE_URL") == access["base_url"]
                and os.environ.get("OPENAI_API_KEY") == access["api_key"], "model": access["model"]}

    wf = client.create_workflow("llm-openai")
    wf.add_task(ask)
    run_id = wf.run()
    results = wf.get_results(run_id, timeout=240)
    out = results.get("ask", results)
    assert out["plain"] and out["streamed"] and out["env"] is True and out["model"] == capped_model(client)
    # each request is an event of the run that made it
    events = client.get_events(run_id)
    assert sum(1 for e in events if (e.get("data") or {}).get("llm") == "capped") == 2, events


def capped_model(client: LatticeClient) -> str:
    return next(p for p in client.llm.list() if p.alias == "capped").model


def test_a_pool_key_opens_only_its_pool(llm_head: HeadProcess, capped: str) -> None:
    bad = httpx.post(f"{llm_head.url}/api/v1/llm/{capped}/v1/chat/completions", json=chat(),
                     headers={"authorization": "Bearer lpk_forged.x.1.y"}, timeout=30)
    assert bad.status_code == 401 and "key" in bad.json()["error"]["message"]
    missing = httpx.post(f"{llm_head.url}/api/v1/llm/nosuch/v1/chat/completions", json=chat(),
                         headers={"authorization": f"Bearer {llm_head.token}"}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "alias"


def test_metrics_carry_the_pool_label(llm_head: HeadProcess, capped: str) -> None:
    text = httpx.get(f"{llm_head.url}/metrics", headers={"authorization": f"Bearer {llm_head.token}"},
                     timeout=30).text
    for name in ("lattice_llm_in_flight", "lattice_llm_queue_length", "lattice_llm_tokens_total",
                 "lattice_llm_time_to_first_token_seconds_bucket", "lattice_llm_gpu_memory_bytes"):
        assert f'{name}{{' in text and f'pool="{capped}"' in text, name
    assert f'lattice_llm_tokens_total{{direction="out",pool="{capped}"}}' in text


def test_an_external_pool_gets_the_same_cap_and_queue(llm_head: HeadProcess, capped: str,
                                                       client: LatticeClient) -> None:
    """An external provider is any OpenAI-compatible URL: here the capped pool's engine, addressed directly."""
    engine = next(p for p in client.llm.list() if p.alias == capped)
    with pytest.raises(Exception, match="NO_SUCH_KEY_VAR"):
        client.llm.deploy("ext-bad", engine="external", model=engine.model, base_url="http://127.0.0.1:9/v1",
                          api_key_env="NO_SUCH_KEY_VAR")
    client.llm.deploy("ext", engine="external", model=engine.model, base_url=f"{engine.replicas[0].address}/v1",
                      max_concurrency=1, max_queue=1, requests_per_minute=1000)
    url = f"{llm_head.url}/api/v1/llm/ext/v1/chat/completions"
    answers = asyncio.run(post_all(url, llm_head.token, [("e", chat(max_tokens=100))] * 6))
    codes = [r.status_code for r, _ in answers]
    assert set(codes) <= {200, 429} and codes.count(200) >= 2 and codes.count(429) >= 1, codes
    view = next(p for p in client.llm.list() if p.alias == "ext")
    assert view.state == "ready" and view.replicas == [] and view.rejected >= 1 and view.tokens_out > 0
    client.llm.stop("ext")


# --- a small queue: 429; kill -9; stop ----------------------------------------------------------------

def test_queue_bound_then_429_then_kill_then_stop(llm_head: HeadProcess, tiny_model: Path,
                                                 client: LatticeClient) -> None:
    client.llm.deploy("small", engine="transformers", model=str(tiny_model), cpu=0.5, max_concurrency=2,
                      max_queue=5, min_replicas=1, idle_timeout_s=3600)
    view = wait_ready(client, "small")
    url = f"{llm_head.url}/api/v1/llm/small/v1/chat/completions"

    # 2 in flight + 5 queued are taken; the rest is refused at once with Retry-After
    answers = asyncio.run(post_all(url, llm_head.token, [(f"r{i % 3}", chat(max_tokens=200)) for i in range(15)]))
    codes = [r.status_code for r, _ in answers]
    assert set(codes) <= {200, 429}, [r.text[:200] for r, _ in answers]
    assert codes.count(200) >= 7 and codes.count(429) >= 1, codes
    for response, _ in answers:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["type"] == "rate_limited"

    # kill -9 the engine while requests wait: restarted, every request answered
    pid = view["replicas"][0]["pid"]

    async def killed() -> list[tuple[httpx.Response, float]]:
        requests = asyncio.create_task(post_all(url, llm_head.token, [(f"k{i}", chat(max_tokens=200))
                                                                      for i in range(6)], timeout=200))
        # kill while the engine holds some of them and the rest wait (the head says so), not after they ended
        deadline = time.monotonic() + 30
        while (held := next(p for p in client.llm.list() if p.alias == "small")).in_flight < 2:
            assert time.monotonic() < deadline and not requests.done(), "the requests never reached the engine"
            await asyncio.sleep(0.05)
        assert held.queued >= 1, held
        os.kill(pid, signal.SIGKILL)
        return await requests

    started = time.monotonic()
    answers = asyncio.run(killed())
    assert [r.status_code for r, _ in answers] == [200] * 6, [r.text[:300] for r, _ in answers]
    assert time.monotonic() - started < 60 + 60  # restarted (start ~15-30 s here) and answered
    after = wait_ready(client, "small", timeout=60)
    assert after["replicas"][0]["restarts"] >= 1 and after["replicas"][0]["pid"] != pid
    new_pid = after["replicas"][0]["pid"]

    # the CLI shows it (lattice llm list, lattice status), then lattice llm stop: engine gone, endpoint 404
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    target = ["--url", llm_head.url, "--token", llm_head.token]
    listed = subprocess.run([sys.executable, "-m", "lattice.cli.main", "llm", "list", "--json", *target],
                            capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0 and any(p["alias"] == "small" for p in json.loads(listed.stdout)), listed.stderr
    status = subprocess.run([sys.executable, "-m", "lattice.cli.main", "status", "--json", *target],
                            capture_output=True, text=True, timeout=120, env=env)
    assert status.returncode == 0 and "small" in {p["alias"] for p in json.loads(status.stdout)["llm_pools"]}
    done = subprocess.run([sys.executable, "-m", "lattice.cli.main", "llm", "stop", "small", "--url", llm_head.url,
                           "--token", llm_head.token], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    wait_gone(new_pid, 15)
    gone = httpx.post(url, json=chat(), headers={"authorization": f"Bearer {llm_head.token}"}, timeout=30)
    assert gone.status_code == 404


# --- scale to zero ------------------------------------------------------------------------------------

def test_idle_timeout_stops_the_engine_and_the_next_request_starts_it(llm_head: HeadProcess, tiny_model: Path,
                                                                      client: LatticeClient) -> None:
    client.llm.deploy("idle", engine="transformers", model=str(tiny_model), cpu=0.5, max_concurrency=2,
                      idle_timeout_s=5)
    assert next(p for p in client.llm.list() if p.alias == "idle").replicas == []  # nothing until asked
    url = f"{llm_head.url}/api/v1/llm/idle/v1/chat/completions"
    first = httpx.post(url, json=chat(), headers={"authorization": f"Bearer {llm_head.token}"}, timeout=240)
    assert first.status_code == 200, first.text  # held while the engine started from zero
    pid = next(p for p in client.llm.list() if p.alias == "idle").replicas[0].pid
    assert pid is not None
    gone = wait_gone(pid, 5 + 10)
    # the process goes first; the manager drops the replica once its stop (actor, lease) has finished
    deadline = time.monotonic() + max(1.0, 5 + 10 - gone)
    while next(p for p in client.llm.list() if p.alias == "idle").replicas:
        assert time.monotonic() < deadline, "the idle replica is still listed after its engine stopped"
        time.sleep(0.2)
    again = httpx.post(url, json=chat(), headers={"authorization": f"Bearer {llm_head.token}"}, timeout=240)
    assert again.status_code == 200
    client.llm.stop("idle")


def test_a_submitted_run_starts_its_pool_before_its_llm_task_is_ready(llm_head: HeadProcess, tiny_model: Path,
                                                                        client: LatticeClient) -> None:
    """The engine starts loading at submit, while the run's first task still runs, not at dispatch."""
    client.llm.deploy("early", engine="transformers", model=str(tiny_model), cpu=0.5, max_concurrency=2,
                      idle_timeout_s=3600)
    assert next(p for p in client.llm.list() if p.alias == "early").replicas == []  # at zero

    @task(cpu=0, outputs=["go"])
    def first(params: dict[str, Any]) -> dict[str, Any]:
        import time

        time.sleep(20)
        return {"go": "hi"}

    @task(cpu=0, llm="early", inputs=["go"], outputs=["answer"])
    def ask(params: dict[str, Any]) -> dict[str, Any]:
        import httpx

        access = params["llm"]["early"]
        answer = httpx.post(f"{access['base_url']}/chat/completions", timeout=240,
                            headers={"authorization": f"Bearer {access['api_key']}"},
                            json={"model": access["model"], "max_tokens": 4,
                                  "messages": [{"role": "user", "content": params["go"]}]})
        return {"answer": answer.json()["choices"][0]["message"]["content"]}

    wf = client.create_workflow("llm-early")
    go = wf.add_task(first)
    wf.add_task(ask, inputs={"go": go.outputs["go"]})
    run_id = wf.run()
    submitted = time.monotonic()
    while not next(p for p in client.llm.list() if p.alias == "early").replicas:
        assert time.monotonic() - submitted < 10, "no replica started within 10 s of the submit"
        time.sleep(0.2)
    states = {t["name"]: t["state"] for t in client.get_run(run_id)["tasks"]}
    assert states["ask"] == "pending" and states["first"] in ("ready", "scheduled", "running"), states
    results = wf.get_results(run_id, timeout=300)
    assert isinstance(results.get("ask", results)["answer"], str)
    client.llm.stop("early")


# --- the head stops: no engine remains ----------------------------------------------------------------

def test_head_stop_leaves_no_engine(tmp_path: Path, tiny_model: Path) -> None:
    head = HeadProcess(tmp_path / "head", extra_args=["--num-cpus", "2"]).start()
    try:
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            client.llm.deploy("mine", engine="transformers", model=str(tiny_model), cpu=0.5, min_replicas=1)
            pid = wait_ready(client, "mine")["replicas"][0]["pid"]
        assert pid_alive(pid)
    finally:
        head.stop()
    wait_gone(pid, 10)
