"""The worker's pool gateway and the sandbox's loopback forwarder, on real sockets (no sandbox, no head).

A stand-in for the head (a threaded HTTP server that records what reaches it) sits behind the gateway; the
forwarder listens on a free loopback port and carries connections to the gateway's Unix socket, as it
does inside a task's network namespace. What must hold: the declared pool's three routes pass, with the
attempt's key instead of the caller's; nothing else passes, whatever the spelling of the path; a stream
passes chunk by chunk.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from lattice.executor.pool_gateway import PoolGateway, PoolRoute
from lattice.executor.sandbox.loopback import Forwarder
from lattice.wire.llm import sandbox_base_url


class _Head(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        _Head.seen.append((self.command, self.path, self.headers.get("authorization")))
        if self.path.endswith("/chat/completions") and b'"stream": true' in body:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(3):
                chunk = f"data: {json.dumps({'i': i})}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        out = json.dumps({"path": self.path, "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def path_to_gateway() -> Iterator[tuple[str, PoolGateway]]:
    """(base URL on loopback the forwarder listens on, the gateway) for pool ``p``."""
    _Head.seen = []
    head = ThreadingHTTPServer(("127.0.0.1", 0), _Head)
    threading.Thread(target=head.serve_forever, daemon=True).start()
    gateway = PoolGateway({"p": PoolRoute(url=f"http://127.0.0.1:{head.server_address[1]}/api/v1/llm/p/v1",
                                          key="lpk_attempt")})
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    forwarder = Forwarder(server, gateway.path)
    threading.Thread(target=forwarder.run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", gateway
    finally:
        gateway.close()
        server.close()
        head.shutdown()


def _raw(base: str, method: str, target: str) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_the_declared_routes_pass_with_the_attempts_key(path_to_gateway: tuple[str, PoolGateway]) -> None:
    base, _ = path_to_gateway
    with httpx.Client(base_url=base, timeout=10) as http:
        chat = http.post("/api/v1/llm/p/v1/chat/completions", json={"a": 1},
                         headers={"authorization": "Bearer the-tasks-own"})
        done = http.post("/api/v1/llm/p/v1/completions", json={"b": 2})
        models = http.get("/api/v1/llm/p/v1/models")  # same connection: keep-alive through both hops
    assert chat.status_code == done.status_code == models.status_code == 200
    assert chat.json() == {"path": "/api/v1/llm/p/v1/chat/completions", "body": '{"a":1}'}
    assert [(m, p, a) for m, p, a in _Head.seen] == [
        ("POST", "/api/v1/llm/p/v1/chat/completions", "Bearer lpk_attempt"),
        ("POST", "/api/v1/llm/p/v1/completions", "Bearer lpk_attempt"),
        ("GET", "/api/v1/llm/p/v1/models", "Bearer lpk_attempt")]


def test_a_stream_passes_chunk_by_chunk(path_to_gateway: tuple[str, PoolGateway]) -> None:
    base, _ = path_to_gateway
    with httpx.Client(base_url=base, timeout=10) as http, http.stream(
            "POST", "/api/v1/llm/p/v1/chat/completions", content=b'{"stream": true}') as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"] == "text/event-stream"
    assert lines == [f'data: {{"i": {i}}}' for i in range(3)]


@pytest.mark.parametrize(("method", "target"), [
    ("POST", "/api/v1/llm/q/v1/chat/completions"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/llm/pools"),
    ("GET", "/api/v1/llm/p/v1/../../../runs"),
    ("GET", "/api/v1/llm/p/v1/%2e%2e/%2e%2e/runs"),
    ("GET", "/api/v1/llm/p/v1/models/../../pools"),
    ("GET", "/api/v1/llm/p%2fv1%2fmodels"),
    ("GET", "//api/v1/llm/p/v1/models"),
    ("GET", "/api/v1/llm/p/v1/models?x=1"),
    ("GET", "/api/v1/llm/p/v1/models#x"),
    ("GET", "/API/V1/LLM/P/V1/MODELS"),
    ("POST", "/api/v1/llm/p/v1/models"),
    ("GET", "/api/v1/llm/p/v1/chat/completions"),
    ("DELETE", "/api/v1/llm/pools/p"),
    ("GET", "http://127.0.0.1:9/api/v1/llm/p/v1/models"),
    ("OPTIONS", "*"),
])
def test_nothing_else_passes(path_to_gateway: tuple[str, PoolGateway], method: str, target: str) -> None:
    base, _ = path_to_gateway
    status, body = _raw(base, method, target)
    assert status == 403, body
    error = json.loads(body)["error"]
    assert error["type"] == "forbidden" and error["field"] == "path"
    assert _Head.seen == []  # never reached the head


def test_bad_http_gets_400_and_never_reaches_the_head(path_to_gateway: tuple[str, PoolGateway]) -> None:
    base, _ = path_to_gateway
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 ") and _Head.seen == []


def test_the_socket_is_hidden_and_removed(path_to_gateway: tuple[str, PoolGateway]) -> None:
    _, gateway = path_to_gateway
    folder = os.path.dirname(gateway.path)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o711  # traversable, not listable
    gateway.close()
    assert not os.path.exists(folder)


def test_the_task_is_told_the_loopback_url() -> None:
    assert sandbox_base_url("p") == "http://127.0.0.1:18080/api/v1/llm/p/v1"
