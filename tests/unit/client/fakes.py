"""Fakes of a head for the client core's tests: canned answers in the head's wire format, no Ray.

``FakeHead`` answers httpx requests (through ``httpx.MockTransport``, for both clients), ``LocalHead``
is a real HTTP server on a loopback port (for the standard-library sender and the CLI, which open
their own connections). Both record what they were asked, so a test can check the requests too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from lattice import AsyncLatticeClient, LatticeClient
from lattice.client.transport import AsyncHeadHTTP, HeadHTTP

#: an answer: a JSON body (status 200), or (status, body) for an error or another status
Answer = Any
Route = Callable[["Seen"], Answer]


@dataclass
class Seen:
    """One request as the head saw it."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeHead:
    """Routes ``"METHOD /path"`` to an answer, or to a function of the request; records every request."""

    routes: dict[str, Answer | Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, seen: Seen) -> tuple[int, Any]:
        self.seen.append(seen)
        route = self.routes.get(f"{seen.method} {seen.path}")
        if route is None:
            return 404, {"error": {"type": "not_found", "message": f"no route {seen.method} {seen.path}"}}
        value = route(seen) if callable(route) else route
        return value if isinstance(value, tuple) else (200, value)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen = Seen(request.method, request.url.path, dict(request.url.params), body, dict(request.headers))
        status, value = self.answer(seen)
        if isinstance(value, str | bytes):
            return httpx.Response(status, content=value)
        return httpx.Response(status, json=value)

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]


def connect(client: LatticeClient | AsyncLatticeClient, head: Callable[[httpx.Request], httpx.Response]) -> None:
    """Point a client's I/O at ``head`` (the rest of the client is untouched: its plans, parsing, errors)."""
    transport = httpx.MockTransport(head)
    if isinstance(client, AsyncLatticeClient):
        client._http = AsyncHeadHTTP(client.config, client._read_timeout, transport=transport)
    else:
        client._http = HeadHTTP(client.config, client._read_timeout, transport=transport)
    client._request = client._http.request


class Both:
    """One test body for both clients: ``await both.call("get_run", "r1")`` awaits only what is awaitable."""

    def __init__(self, kind: str, head: FakeHead, **kwargs: Any) -> None:
        self.kind = kind
        cls = AsyncLatticeClient if kind == "async" else LatticeClient
        self.client: Any = cls("http://head.test", token="secret", **kwargs)
        self._original = self.client._http
        connect(self.client, head)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        value = getattr(self.client, name)(*args, **kwargs)
        return await value if self.kind == "async" else value

    async def workflow_call(self, workflow: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        value = getattr(workflow, name)(*args, **kwargs)
        return await value if self.kind == "async" else value

    async def close(self) -> None:
        if self.kind == "async":
            await self.client.aclose()
            await self._original.aclose()
        else:
            self.client.close()
            self._original.close()


class LocalHead:
    """A real HTTP server on 127.0.0.1 that answers like :class:`FakeHead` (routes, records)."""

    def __init__(self) -> None:
        self.fake = FakeHead()
        fake = self.fake

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                            json.loads(raw) if raw else None, {k.lower(): v for k, v in self.headers.items()})
                status, value = fake.answer(seen)
                data = value if isinstance(value, bytes) else (
                    value.encode() if isinstance(value, str) else json.dumps(value).encode())
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def routes(self) -> dict[str, Answer | Route]:
        return self.fake.routes

    @property
    def seen(self) -> list[Seen]:
        return self.fake.seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
