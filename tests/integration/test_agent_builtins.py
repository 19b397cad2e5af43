"""The agent builtins as real tasks on a real head (real Ray, the sandbox levels this machine has), against
real loopback servers started here: a tiny OpenAI-compatible chat endpoint and an HTTP app (FastAPI under
uvicorn, in a thread). Nothing of the builtins is mocked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lattice import LatticeClient, RunFailed
from lattice.executor.sandbox import capabilities
from lattice.utils.net import free_port
from lattice.wire.catalog import REDACTED

KEY = "sk-loopback-test-key-123"


def _app(seen: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        seen.append({"auth": request.headers.get("authorization"), "body": body})
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        last = body["messages"][-1]["content"]
        return {"id": "c1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {last}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}

    @app.get("/json")
    async def json_route() -> Any:
        return {"hello": "world"}

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return {"got": await request.json(), "header": request.headers.get("x-test")}

    @app.get("/big")
    async def big() -> Any:
        async def chunks() -> Any:
            for _ in range(64):
                yield b"y" * 65536
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/slow")
    async def slow() -> Any:
        await asyncio.sleep(10)
        return {"late": True}

    return app


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(seen), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/json", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the loopback server did not start"
            time.sleep(0.1)
    yield url, seen
    server.should_exit = True
    thread.join(timeout=10)


def _run(client: LatticeClient, tasks: list[dict[str, Any]], name: str = "builtins") -> str:
    workflow_id = client.submit_workflow({"format": "lattice.workflow/v1", "name": name, "tasks": tasks})
    return client.start_run(workflow_id)


def _results(client: LatticeClient, run_id: str) -> dict[str, Any]:
    run = client.wait(run_id, timeout=90)
    assert run["state"] == "succeeded", run
    return client.get_task_results(run_id)


def _task(name: str, builtin: str, outputs: list[str], **inputs: Any) -> dict[str, Any]:
    return {"name": name, "builtin": builtin, "outputs": outputs,
            "inputs": {k: v if isinstance(v, dict) and "task" in v else {"value": v} for k, v in inputs.items()}}


def _levels() -> list[Any]:
    caps = capabilities()
    return ["none", pytest.param("seccomp", marks=pytest.mark.skipif(not caps.get("seccomp"),
                                                                       reason="no seccomp here"))]


@pytest.mark.parametrize("level", _levels())
def test_http_request_reaches_a_loopback_server(client: LatticeClient, loopback: Any, level: str) -> None:
    url, _ = loopback
    get = {**_task("get", "http_request", ["status", "headers", "text", "json"], url=f"{url}/json"),
           "sandbox": level, "network": True}
    post = {**_task("post", "http_request", ["status", "headers", "text", "json"], url=f"{url}/echo",
                    method="POST", body={"a": 1}, headers={"x-test": "yes"}), "sandbox": level, "network": True}
    run_id = _run(client, [get, post], f"http-{level}")
    results = _results(client, run_id)
    assert results["get"].outputs["status"] == 200 and results["get"].outputs["json"] == {"hello": "world"}
    assert results["post"].outputs["json"] == {"got": {"a": 1}, "header": "yes"}


def test_http_request_is_bounded_and_times_out(client: LatticeClient, loopback: Any) -> None:
    url, _ = loopback
    big = _task("big", "http_request", ["status", "headers", "text", "json"], url=f"{url}/big", max_bytes=100_000)
    slow = _task("slow", "http_request", ["status", "headers", "text", "json"], url=f"{url}/slow", timeout_s=0.5)
    run_id = _run(client, [big], "http-big")
    with pytest.raises(RunFailed) as failed:
        client.get_results(run_id, timeout=60)
    assert "max_bytes=100000" in str(failed.value)
    run_id = _run(client, [slow], "http-slow")
    with pytest.raises(RunFailed) as failed:
        client.get_results(run_id, timeout=60)
    assert "Timeout" in str(failed.value) or "timed out" in str(failed.value)


def test_http_request_in_seccomp_without_network_is_stopped_by_the_sandbox(client: LatticeClient,
                                                                         loopback: Any) -> None:
    if not capabilities().get("seccomp"):
        pytest.skip("no seccomp here")
    url, _ = loopback
    offline = {**_task("offline", "http_request", ["status", "headers", "text", "json"], url=f"{url}/json"),
               "sandbox": "seccomp"}
    with pytest.raises(RunFailed):
        client.get_results(_run(client, [offline], "http-offline"), timeout=60)


def test_llm_chat_against_a_loopback_openai_server_and_the_key_is_never_shown(
        client: LatticeClient, loopback: Any, head: Any) -> None:
    url, seen = loopback
    chat = _task("chat", "llm_chat", ["result", "usage"], base_url=f"{url}/v1", model="tiny", prompt="hello there",
                 system="be brief", api_key=KEY, temperature=0.0)
    workflow_id = client.submit_workflow({"format": "lattice.workflow/v1", "name": "chat", "tasks": [chat]})
    run_id = client.start_run(workflow_id, inputs={"chat": {"api_key": KEY}})
    results = _results(client, run_id)
    assert results["chat"].outputs["result"] == "echo: hello there"
    assert results["chat"].outputs["usage"]["total_tokens"] == 5
    assert seen[-1]["auth"] == f"Bearer {KEY}"
    assert seen[-1]["body"]["messages"][0] == {"role": "system", "content": "be brief"}
    headers = {"Authorization": f"Bearer {head.token}"}
    views = [httpx.get(f"{head.url}/api/v1/workflows/{workflow_id}", headers=headers).text,
             httpx.get(f"{head.url}/api/v1/runs/{run_id}", headers=headers).text,
             httpx.get(f"{head.url}/api/v1/runs/{run_id}/tasks", headers=headers).text,
             httpx.get(f"{head.url}/api/v1/runs/{run_id}/events", headers=headers).text,
             httpx.get(f"{head.url}/api/v1/catalog/tasks", headers=headers).text]
    assert all(KEY not in view for view in views)
    assert REDACTED in views[0] and REDACTED in views[1]
    # a wrong key: the endpoint's 401 fails the task, and the error does not echo the key
    bad = _task("chat", "llm_chat", ["result", "usage"], base_url=f"{url}/v1", model="tiny", prompt="hi",
                api_key="sk-wrong-key")
    with pytest.raises(RunFailed) as failed:
        client.get_results(_run(client, [bad], "chat-bad"), timeout=60)
    assert "401" in str(failed.value) and "sk-wrong-key" not in str(failed.value)


@pytest.mark.parametrize("level", ["none", *(["subprocess", "seccomp"] if capabilities().get("seccomp") else [])])
def test_python_code_and_workspace_files_under_the_sandbox(client: LatticeClient, level: str) -> None:
    code = {**_task("code", "python_code", ["result"], code="result = {'n': sum(inputs['xs'])}",
                    inputs={"xs": [1, 2, 3]}), "sandbox": level}
    write = {**_task("write", "file_write", ["result"], path="out/report.txt",
                     content={"task": "code", "output": "result"}), "sandbox": level}
    read = {**_task("read", "file_read", ["result"], path="out/report.txt"), "sandbox": level}
    read["inputs"]["after"] = {"task": "write", "output": "result"}  # ordering only
    run_id = _run(client, [code, write, read], f"files-{level}")
    results = _results(client, run_id)
    assert results["code"].outputs["result"] == {"n": 6}
    assert results["write"].outputs["result"] == {"path": "out/report.txt", "bytes": len('{"n": 6}')}
    assert results["read"].outputs["result"] == '{"n": 6}'
    escape = {**_task("escape", "file_read", ["result"], path="../../../etc/passwd"), "sandbox": level}
    with pytest.raises(RunFailed) as failed:
        client.get_results(_run(client, [escape], f"escape-{level}"), timeout=60)
    assert "must stay inside the run's workspace" in str(failed.value)
