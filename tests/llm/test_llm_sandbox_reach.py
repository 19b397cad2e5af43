"""Network-off sandboxes reach their declared pools, and nothing else (both halves, for real).

A task at ``seccomp`` (its own network namespace, the seccomp filter, Landlock) or ``docker``
(``--network none``) that declares ``llm="reach"`` must get an answer from the real engine through the
official ``openai`` client configured only by ``OPENAI_BASE_URL``/``OPENAI_API_KEY``, streaming and not.
The same task then tries, as an attacker would, everything else: a pool it did not declare, the head's
other routes (plain, by dot segments, percent-encoded, doubled slashes, a query string, another method),
the head's own port and an arbitrary port on loopback, and the internet. Requests are written by hand on
a raw socket, so no client library normalises the path before the gateway sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from headproc import HeadProcess

from lattice import LatticeClient, task
from tests.integration.sandbox_fixtures import docker_engine  # noqa: F401

pytestmark = pytest.mark.timeout(600)

#: (method, raw request target) the task must not get through; each must meet the gateway's 403
FORBIDDEN = [
    ("POST", "/api/v1/llm/other/v1/chat/completions"),          # a pool the task did not declare
    ("GET", "/api/v1/runs"),                                    # the head's other routes
    ("GET", "/api/v1/llm/pools"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/llm/reach/v1/../../../runs"),              # dot segments
    ("GET", "/api/v1/llm/reach/v1/%2e%2e/%2e%2e/%2e%2e/runs"),  # percent-encoded dot segments
    ("GET", "/api/v1/llm/reach/v1/models/../../../../runs"),
    ("GET", "//api/v1/runs"),
    ("GET", "/api/v1/llm/reach/v1/models?next=/api/v1/runs"),
    ("GET", "/api/v1/llm/reach%2Fv1%2F..%2F..%2Fpools"),
    ("DELETE", "/api/v1/llm/pools/reach"),
    ("POST", "/api/v1/llm/reach/v1/models"),
    ("GET", "http://127.0.0.1:1/api/v1/runs"),                  # absolute-form target: a forward proxy
]


def _probe_task(level: str) -> Any:
    """The probe as a task (defined here, so it travels by value, not as a test-module import)."""

    def probe(params: dict[str, Any]) -> dict[str, Any]:
        """Runs inside the sandbox: what it can reach and what it cannot."""
        import os
        import socket
        from urllib.parse import urlsplit

        from openai import OpenAI

        out: dict[str, Any] = {"env_base_url": os.environ.get("OPENAI_BASE_URL")}
        access = params["llm"]["reach"]
        try:
            ai = OpenAI()  # configured by OPENAI_BASE_URL and OPENAI_API_KEY only
            plain = ai.chat.completions.create(model=access["model"], max_tokens=4,
                                               messages=[{"role": "user", "content": "hi"}])
            out["plain"] = plain.choices[0].message.content
            chunks = ai.chat.completions.create(model=access["model"], max_tokens=4, stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
            out["streamed"] = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
            out["models"] = [m.id for m in ai.models.list()]
        except Exception as exc:  # noqa: BLE001 - reported, the test asserts on it
            out["pool_error"] = f"{type(exc).__name__}: {exc}"

        where = urlsplit(access["base_url"])

        def raw(method: str, target: str) -> str:
            try:
                with socket.create_connection((where.hostname, where.port or 80), timeout=20) as s:
                    body = b"{}" if method == "POST" else b""
                    s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access['api_key']}\r\n"
                              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                              f"Connection: close\r\n\r\n".encode() + body)
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                return f"{head.split(b' ')[1].decode()} {rest[:300].decode(errors='replace')}"
            except Exception as exc:  # noqa: BLE001
                return f"error {type(exc).__name__}: {exc}"

        out["forbidden"] = {f"{m} {t}": raw(m, t) for m, t in params["forbidden"]}

        def connect(host: str, port: int) -> str:
            try:
                with socket.create_connection((host, port), timeout=5) as s:
                    s.sendall(b"GET /api/v1/health HTTP/1.0\r\n\r\n")
                    return f"connected: {s.recv(200)!r}"
            except Exception as exc:  # noqa: BLE001
                return f"error {type(exc).__name__}: {exc}"

        out["head_port"] = connect("127.0.0.1", params["head_port"])
        out["other_port"] = connect("127.0.0.1", params["other_port"])
        out["internet"] = connect("1.1.1.1", 80)
        out["head_url"] = connect(params["head_host"], params["head_port"])
        return out

    return task(name=f"probe_{level}", cpu=0, llm="reach", sandbox=level, timeout=240,
                inputs=["forbidden", "head_port", "other_port", "head_host"], outputs=["out"])(
        lambda params: {"out": probe(params)})


@pytest.fixture(scope="module")
def llm_head(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
             docker_engine: str) -> Iterator[HeadProcess]:  # noqa: F811
    env = {"LATTICE_SANDBOX_CONFIG": json.dumps({"docker_host": docker_engine})}
    proc = HeadProcess(tmp_path_factory.mktemp("llm-reach-head"), extra_args=["--num-cpus", "4"], env=env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pools(llm_head: HeadProcess, tiny_model: Path) -> str:
    from test_llm_pools import wait_ready

    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as client:
        for alias in ("reach", "other"):
            client.llm.deploy(alias, engine="transformers", model=str(tiny_model), cpu=0.5, max_concurrency=2,
                              min_replicas=1 if alias == "reach" else 0, idle_timeout_s=3600)
        wait_ready(client, "reach")
        return next(p.model for p in client.llm.list() if p.alias == "reach")


@pytest.mark.parametrize("level", ["seccomp", "docker"])
def test_a_network_off_task_reaches_its_pool_and_nothing_else(llm_head: HeadProcess, pools: str,
                                                              client: LatticeClient, level: str) -> None:
    pytest.importorskip("openai")
    if level == "seccomp" and not _seccomp_available():
        pytest.skip("level seccomp needs pyseccomp and namespaces here")
    other = _listener()
    try:
        wf = client.create_workflow(f"llm-reach-{level}")
        wf.add_task(_probe_task(level), inputs={"forbidden": FORBIDDEN, "head_port": llm_head.port,
                                                "other_port": other.getsockname()[1], "head_host": "127.0.0.1"})
        run_id = wf.run()
        out = wf.get_results(run_id, timeout=300, trust_outputs=True)
        out = out.get(f"probe_{level}", out)["out"]
    finally:
        other.close()
    print(json.dumps(out, indent=1))
    # the pool answers, from the real engine, through the official client configured by the environment
    assert "pool_error" not in out, out
    assert out["plain"] and out["streamed"] and out["models"] == [pools], out
    assert out["env_base_url"].startswith("http://127.0.0.1:") and "/api/v1/llm/reach/v1" in out["env_base_url"]
    # ...and nothing else: each forbidden request meets the gateway's 403 naming the path
    for request, answer in out["forbidden"].items():
        assert answer.startswith("403 ") and '"forbidden"' in answer, (request, answer)
    for name in ("head_port", "other_port", "internet", "head_url"):
        assert out[name].startswith("error "), (name, out[name])


def _listener() -> Any:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def _seccomp_available() -> bool:
    from lattice.executor.sandbox import capabilities

    return bool(capabilities()["seccomp"])
