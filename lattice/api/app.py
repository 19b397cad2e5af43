"""The head's FastAPI application: routers under ``/api/v1``, auth, body limit, error bodies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from lattice import __version__
from lattice.api.deps import require_token
from lattice.api.errors import error_response, install_error_handlers
from lattice.api.routes import checkpoints, cluster, keys, llm, runs, stream, system, workflows
from lattice.api.state import HeadState

log = logging.getLogger("lattice.api")


class BodyLimit:
    """Answers 413 for a body over the limit, by Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"the request body is over the limit of {self.max_bytes} bytes",
            "body", "pass large data by reference (a path or URL) instead of inline, or raise "
                    "--max-body-mb on the head")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(build_state: Callable[[], HeadState], close_state: Callable[[HeadState], Any],
               max_body_bytes: int) -> FastAPI:
    """``build_state`` runs at start-up (connects Ray, opens the store); ``close_state`` at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state()
        app.state.head = state
        await state.orchestrator.start()
        if state.llm is not None:
            await state.llm.start()
        try:
            yield
        finally:
            if state.llm is not None:
                await state.llm.close()  # engines' process groups stop before the head does
            await state.orchestrator.stop()
            close_state(state)

    app = FastAPI(
        title="Lattice head",
        version=__version__,
        description="Submit workflows, run them on the cluster, follow their events and read their results. "
                    "Every route but /health needs `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
    api.include_router(workflows.router)
    api.include_router(runs.router)
    api.include_router(cluster.router)
    api.include_router(checkpoints.router)
    api.include_router(keys.router)
    api.include_router(llm.router)
    app.include_router(api)
    app.include_router(llm.endpoint)
    app.include_router(stream.router, prefix="/api/v1")
    app.include_router(system.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
