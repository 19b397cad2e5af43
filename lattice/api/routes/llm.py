"""Model pools: deploy, list and stop them (``/api/v1/llm/pools``), and their OpenAI-compatible endpoint
``/api/v1/llm/{alias}/v1/...`` (chat completions, completions, models).

The endpoint takes a pool key (``lpk_...``, minted for a task's run and scoped to one pool) or any key the
rest of the API takes (the head's token, a tenant's key: a human trying a pool); its requests count as
the key's run, or as ``tenant:<name>``. It is mounted outside the token-guarded router because pool keys
open nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from lattice.api.deps import Caller, State, authenticate, bearer, require_admin
from lattice.api.errors import HTTPError, error_response
from lattice.api.openapi import bearer as bearer_scheme
from lattice.api.state import HeadState
from lattice.llm.gate import GateError, QueueFull
from lattice.llm.manager import Pool, PoolError, PoolManager
from lattice.llm.proxy import forward
from lattice.wire.http import ErrorResponse
from lattice.wire.llm import PoolSpec, PoolView

router = APIRouter(prefix="/llm/pools", tags=["llm"])
#: pool keys, tenant keys and the head token are all bearer tokens: declared for the OpenAPI document and
#: "Authorize" in /docs; the routes check them themselves (a pool key is not a head key)
endpoint = APIRouter(prefix="/api/v1/llm", tags=["llm"], dependencies=[Depends(bearer_scheme)])
_errors = {403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 409: {"model": ErrorResponse},
           422: {"model": ErrorResponse}}


def _manager(state: HeadState) -> PoolManager:
    if state.llm is None:
        raise HTTPError(409, "conflict", "this head has no model pools", "llm",
                        "start the head with 'lattice start --head' (it builds the pool manager)")
    return state.llm


def _raise(exc: PoolError) -> HTTPError:
    return HTTPError(exc.status, exc.code, exc.message, exc.field, exc.hint)


@router.post("", status_code=201, response_model=PoolView, responses=_errors)
async def deploy(body: PoolSpec, state: State, caller: Caller) -> PoolView:
    """Declare a pool; replicas start now (``min_replicas``) or on the first request. Admin only."""
    require_admin(caller)
    try:
        return await _manager(state).deploy(body)
    except PoolError as exc:
        raise _raise(exc) from None


@router.get("", responses=_errors)
async def list_pools(state: State) -> dict[str, list[PoolView]]:
    return {"pools": _manager(state).views() if state.llm is not None else []}


@router.delete("/{alias}", responses=_errors)
async def stop_pool(alias: str, state: State, caller: Caller) -> dict[str, Any]:
    """Stop every replica (their process groups) and give back the leases; waiting requests get 503."""
    require_admin(caller)
    if not await _manager(state).stop(alias):
        raise HTTPError(404, "not_found", f"no pool {alias!r}", "alias", "list pools with 'lattice llm list'")
    return {"alias": alias, "stopped": True}


# --- the OpenAI-compatible endpoint ---------------------------------------------------------------

def _who(state: HeadState, request: Request, alias: str) -> tuple[PoolManager, Pool, str]:
    manager = state.llm
    given = bearer(request.headers.get("authorization"))
    run: str | None = None
    if manager is not None and given is not None:
        scoped = manager.keys.check(given, alias)
        if scoped is not None:
            run = scoped.run
    if run is None:
        caller = authenticate(state, given)
        if caller is None:
            raise HTTPError(401, "unauthorized", "missing key" if given is None else "invalid or expired key",
                            "Authorization", "a task gets its key in params['llm'][alias]['api_key'] (or "
                            "OPENAI_API_KEY); a person may use the head's token or a tenant key")
        run = request.headers.get("x-lattice-run") or f"tenant:{caller.name}"
    pool = manager.get(alias) if manager is not None else None
    if manager is None or pool is None:
        raise HTTPError(404, "not_found", f"no pool {alias!r}", "alias",
                        "deploy it with 'lattice llm deploy' or list pools with 'lattice llm list'")
    return manager, pool, run


@endpoint.get("/{alias}/v1/models")
async def models(alias: str, request: Request) -> dict[str, Any]:
    _, pool, _ = _who(request.app.state.head, request, alias)
    return {"object": "list", "data": [{"id": pool.served_model, "object": "model", "owned_by": "lattice",
                                        "created": 0}]}


@endpoint.post("/{alias}/v1/chat/completions")
async def chat_completions(alias: str, request: Request) -> Response:
    return await _proxy(alias, request, "chat/completions")


@endpoint.post("/{alias}/v1/completions")
async def completions(alias: str, request: Request) -> Response:
    return await _proxy(alias, request, "completions")


async def _proxy(alias: str, request: Request, path: str) -> Response:
    state: HeadState = request.app.state.head
    manager, pool, run = _who(state, request, alias)
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPError(422, "validation_error", "the body is not JSON", "body",
                        "send an OpenAI request body (model, messages, ...)") from None
    if not isinstance(body, dict):
        raise HTTPError(422, "validation_error", "the body must be a JSON object", "body",
                        "send an OpenAI request body (model, messages, ...)")
    try:
        out = await forward(manager, pool, run, path, body, raw)
    except QueueFull as exc:
        return error_response(429, "rate_limited", f"pool {alias!r} is full: {exc}", "alias",
                              f"retry after {exc.retry_after:g} s", headers={"retry-after": f"{exc.retry_after:g}"})
    except GateError as exc:
        return error_response(503, "unavailable", f"pool {alias!r}: {exc}", "alias",
                              f"retry after {exc.retry_after:g} s; 'lattice llm list' shows the pool's state",
                              headers={"retry-after": f"{exc.retry_after:g}"})
    except PoolError as exc:
        raise _raise(exc) from None
    if out.stream is not None:
        return StreamingResponse(out.stream, status_code=out.status, headers=out.headers,
                                 media_type=out.headers.get("content-type", "text/event-stream"))
    return Response(out.content or b"", status_code=out.status, headers=out.headers,
                    media_type=out.headers.get("content-type"))
