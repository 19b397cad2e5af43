"""A head that is shutting down: it says so (``503 shutting_down``), and what waits is ended at once.

uvicorn's graceful shutdown waits for the requests in flight, then cancels them; a client
long-polling a run's results (up to 60 s) outlived the 3 s grace, was cancelled, and got uvicorn's
bare ``500 Internal Server Error``. Now the composition root calls :func:`begin_draining` the moment
shutdown begins (``lattice.cli.server``); from then on:

* :class:`Draining` answers every new request ``503`` with a JSON error and ``Retry-After``;
* :func:`unless_draining` ends a wait in a handler (the results long poll) with that same ``503``;
* the event stream closes with 1012 (service restart), which clients reconnect from.

``shutting_down`` promises that the head did nothing with the request, so a client may resend even
one that is not idempotent (:mod:`lattice.client.retry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from lattice.api.errors import HTTPError, error_response

T = TypeVar("T")

__all__ = ["RETRY_AFTER_S", "SHUTTING_DOWN", "Draining", "begin_draining", "draining_event", "unless_draining"]

SHUTTING_DOWN = "shutting_down"
#: what a shutting-down head tells clients to wait before trying again (a restart takes seconds)
RETRY_AFTER_S = 2


def draining_event(app: FastAPI) -> asyncio.Event:
    """The app's "shutdown has begun" event (one per app, made on first use, on the app's loop)."""
    event: asyncio.Event | None = getattr(app.state, "draining", None)
    if event is None:
        event = app.state.draining = asyncio.Event()
    return event


def begin_draining(app: FastAPI) -> None:
    """Shutdown has begun: refuse new requests and end the waits. Call it on the app's event loop."""
    draining_event(app).set()
    began: asyncio.Future[None] | None = getattr(app.state, "draining_began", None)
    if began is not None and not began.done():
        began.set_result(None)


def _draining_began(app: FastAPI) -> asyncio.Future[None]:
    """A future done once shutdown has begun, shared by every wait: a wait then costs no task of its own
    for the event (the results long poll is on the no-op round trip's path)."""
    began: asyncio.Future[None] | None = getattr(app.state, "draining_began", None)
    if began is None:
        began = app.state.draining_began = asyncio.get_running_loop().create_future()
        if draining_event(app).is_set():
            began.set_result(None)
    return began


def shutting_down_error() -> HTTPError:
    return HTTPError(503, SHUTTING_DOWN, "the Lattice head is shutting down", None,
                     f"retry in a few seconds (Retry-After: {RETRY_AFTER_S}); a restarted head resumes unfinished "
                     "runs, and the Lattice client retries by itself", headers={"Retry-After": str(RETRY_AFTER_S)})


async def unless_draining(connection: HTTPConnection, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s value, or ``503 shutting_down`` as soon as shutdown begins (the wait is cancelled)."""
    began = _draining_began(connection.app)
    if began.done():
        raise shutting_down_error()
    work = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait((work, began), return_when=asyncio.FIRST_COMPLETED)
    finally:
        finished = work.done()
        if not finished:
            work.cancel()  # shutdown began, or the request itself was cancelled: the wait is over
    if finished:
        return work.result()
    raise shutting_down_error()


class Draining:
    """ASGI middleware: once shutdown has begun, every new HTTP request gets ``503 shutting_down``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and draining_event(scope["app"]).is_set():
            error = shutting_down_error()
            response = error_response(error.status, error.type, error.message, error.field, error.hint,
                                      error.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
