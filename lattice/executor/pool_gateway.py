"""The worker's gateway from one network-off sandboxed attempt to the model pools it declared.

A task at level ``seccomp`` or ``docker`` without ``network=True`` has no route to the head. When it
declares ``llm=...`` it gets ``OPENAI_BASE_URL=http://127.0.0.1:18080/api/v1/llm/{alias}/v1``: inside
its own network namespace a forwarder it does not control (``lattice.executor.sandbox.loopback``)
carries each connection to this gateway's Unix socket, and the gateway, in the worker (which has the
network), passes on **only** these requests, for the aliases the task declared::

    POST /api/v1/llm/{alias}/v1/chat/completions
    POST /api/v1/llm/{alias}/v1/completions
    GET  /api/v1/llm/{alias}/v1/models

The method and the raw request target are compared, as bytes and before any decoding, with that fixed
set: dot segments, percent-encoding, doubled slashes, a query string or an absolute-form target do not
normalise into a match, they are simply not equal. Everything else gets ``403`` with a JSON error naming
the path. A request that passes goes to the head with the attempt's pool key for that alias (the
``Authorization`` the task sent is dropped), and the answer streams back as the head sends it, so
streaming completions work through ``openai``, LangChain or plain httpx unchanged.

HTTP/1.1 is parsed by ``h11`` (the parser httpcore builds on, already installed with httpx) rather than by
hand; one thread per connection, since a task holds a few connections at most. The socket lives in a
fresh directory that others may traverse but not list (``0o711``, for the docker level's unprivileged
user) under a random name, and is removed with the attempt.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import h11
import httpx

#: the routes of a pool a sandboxed task may call: (method, path after ``/api/v1/llm/{alias}/v1/``)
ROUTES: tuple[tuple[bytes, str], ...] = ((b"POST", "chat/completions"), (b"POST", "completions"),
                                        (b"GET", "models"))
MAX_BODY = 32 * 1024 * 1024
#: request headers passed on to the head; the rest (Authorization first of all) are the task's business
PASSED_HEADERS = frozenset({b"content-type", b"accept", b"user-agent", b"accept-encoding"})
#: response headers h11 must frame itself (it answers chunked, or closes for an HTTP/1.0 caller)
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})


@dataclass(frozen=True, slots=True)
class PoolRoute:
    """Where one declared pool is on the head (its base URL, ending in ``/v1``) and the attempt's key."""

    url: str
    key: str


class PoolGateway:
    """A Unix-socket HTTP gateway to an attempt's declared pools; ``close()`` (or ``with``) ends it."""

    def __init__(self, pools: Mapping[str, PoolRoute], timeout_s: float = 600.0) -> None:
        self._routes: dict[tuple[bytes, bytes], tuple[str, PoolRoute]] = {
            (method, f"/api/v1/llm/{alias}/v1/{suffix}".encode()): (suffix, route)
            for alias, route in pools.items() for method, suffix in ROUTES}
        self._dir = tempfile.mkdtemp(prefix="lattice-pools-")
        os.chmod(self._dir, 0o711)
        self.path = os.path.join(self._dir, f"{secrets.token_hex(12)}.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        os.chmod(self.path, 0o666)  # the docker level's task user connects; the directory hides the name
        self._server.listen(64)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="pool-gateway", daemon=True).start()

    def __enter__(self) -> PoolGateway:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="pool-gateway-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        wire = h11.Connection(h11.SERVER)
        try:
            while True:
                request = self._read_request(wire, conn)
                if request is None:
                    return
                self._answer(wire, conn, *request)
                if wire.our_state is not h11.DONE or wire.their_state is not h11.DONE:
                    return
                wire.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if wire.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    self._error(wire, conn, exc.error_status_hint, "bad_request", f"not valid HTTP/1.1: {exc}",
                                "request", "send plain HTTP/1.1 requests (the openai client does)")
        except (OSError, h11.LocalProtocolError, httpx.HTTPError):
            return  # the task or the head went away mid-answer: its connection ends
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _read_request(self, wire: h11.Connection, conn: socket.socket) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = wire.next_event()
            if event is h11.NEED_DATA:
                wire.receive_data(conn.recv(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    self._error(wire, conn, 413, "too_large", f"the request body is over {MAX_BODY} bytes",
                                "body", "send a smaller request")
                    return None
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    def _answer(self, wire: h11.Connection, conn: socket.socket, request: h11.Request, body: bytes) -> None:
        found = self._routes.get((request.method, request.target))
        if found is None:
            target = request.target.decode("latin-1")
            self._error(wire, conn, 403, "forbidden",
                        f"{request.method.decode('latin-1')} {target} is not a route of a pool this task declared",
                        "path", "a network-off sandboxed task reaches only POST .../v1/chat/completions, POST "
                        ".../v1/completions and GET .../v1/models of the pools named in @task(llm=...)")
            return
        suffix, route = found
        headers = {name.decode(): value.decode("latin-1") for name, value in request.headers
                   if name in PASSED_HEADERS}
        headers["authorization"] = f"Bearer {route.key}"
        try:
            upstream = self._http.send(self._http.build_request(request.method.decode(), f"{route.url}/{suffix}",
                                                                content=body, headers=headers), stream=True)
        except httpx.HTTPError as exc:
            self._error(wire, conn, 502, "bad_gateway", f"the head could not be reached: {type(exc).__name__}: "
                        f"{exc}", "OPENAI_BASE_URL", "retry shortly; the worker lost its head")
            return
        try:
            out = [(k, v) for k, v in upstream.headers.raw if k.lower() not in _FRAMING]
            conn.sendall(wire.send(h11.Response(status_code=upstream.status_code, headers=out)))
            for chunk in upstream.iter_raw():
                if chunk:
                    conn.sendall(wire.send(h11.Data(data=chunk)))
            conn.sendall(wire.send(h11.EndOfMessage()))
        finally:
            upstream.close()

    @staticmethod
    def _error(wire: h11.Connection, conn: socket.socket, status: int, kind: str, message: str, field: str,
               hint: str) -> None:
        body = json.dumps({"error": {"type": kind, "message": message, "field": field, "hint": hint}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status >= 400 and kind in ("too_large", "bad_request"):
            headers.append((b"connection", b"close"))
        conn.sendall(wire.send(h11.Response(status_code=status, headers=headers)))
        conn.sendall(wire.send(h11.Data(data=body)))
        conn.sendall(wire.send(h11.EndOfMessage()))


__all__ = ["MAX_BODY", "ROUTES", "PoolGateway", "PoolRoute"]
