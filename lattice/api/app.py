"""The head's FastAPI application: routers under ``/api/v1``, auth, body limit, error bodies.

Every answer names the head's version (``X-Lattice-Version``, :class:`VersionHeader`); a head that is
shutting down answers ``503`` (:mod:`lattice.api.draining`); ``/docs`` is served from the head itself
(:mod:`lattice.api.openapi`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from lattice import __version__
from lattice.api.deps import token_required
from lattice.api.draining import Draining, begin_draining, draining_event
from lattice.api.errors import error_response, install_error_handlers
from lattice.api.history import MetricsRing
from lattice.api.metrics import build_registry
from lattice.api.openapi import document_models, install_docs
from lattice.api.routes import catalog, checkpoints, cluster, keys, llm, runs, stream, system, ui, workflows
from lattice.api.state import HeadState
from lattice.llm.metrics import LLMCollector

__all__ = ["BodyLimit", "VersionHeader", "begin_draining", "create_app"]

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


class VersionHeader:
    """Adds ``X-Lattice-Version`` to every HTTP answer, errors included: clients warn on an incompatible head."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-lattice-version", __version__.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_version)


def create_app(build_state: Callable[[], HeadState], close_state: Callable[[HeadState], Any],
               max_body_bytes: int) -> FastAPI:
    """``build_state`` runs at start-up (connects Ray, opens the store); ``close_state`` at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state()
        app.state.head = state
        app.state.metrics = build_registry(state.orchestrator, state.resources, state.ray_version)
        if state.llm is not None:  # the pools' own collector, in the same registry (lattice.llm.metrics)
            app.state.metrics.register(LLMCollector(state.llm))
        if state.llm is not None:  # first: the runs the orchestrator resumes may call the pools it deploys again
            await state.llm.start()
        await state.orchestrator.start()
        app.state.metrics_ring = MetricsRing(state)
        app.state.metrics_ring.start()
        try:
            yield
        finally:
            if state.llm is not None:
                await state.llm.close()  # engines' process groups stop before the head does
            await app.state.metrics_ring.stop()
            await state.orchestrator.stop()
            close_state(state)

    app = FastAPI(
        title="Lattice head",
        version=__version__,
        description="Submit workflows, run them on the cluster, follow their events and read their results. "
                    "The routes under `/api/v1` and `/metrics` need `Authorization: Bearer <token>` (use "
                    "\"Authorize\" above); `/health`, `/docs` and `/openapi.json` do not. A head that is "
                    "shutting down answers `503 shutting_down` with `Retry-After`.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,  # install_docs serves /docs locally
    )
    draining_event(app)
    install_error_handlers(app)
    install_docs(app)
    # token_required enforces the token and declares the requirement in the OpenAPI document
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(token_required)])
    api.include_router(workflows.router)
    api.include_router(runs.router)
    api.include_router(cluster.router)
    api.include_router(checkpoints.router)
    api.include_router(keys.router)
    api.include_router(catalog.router)
    api.include_router(llm.router)
    app.include_router(api)
    app.include_router(llm.endpoint)
    app.include_router(stream.router, prefix="/api/v1")
    app.include_router(system.router)
    app.include_router(ui.router)
    document_models(app, *workflows.RAW_BODIES)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(Draining)
    app.add_middleware(VersionHeader)  # outermost: on every answer, a 503 or a 413 too
    return app
