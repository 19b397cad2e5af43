"""Dependencies routes ask for by type: the head's state, and authentication.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a thread pool, a thread
hop per request for what is an attribute lookup.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPBearer

from lattice.api.errors import HTTPError
from lattice.api.openapi import BEARER_SCHEME
from lattice.api.state import HeadState
from lattice.core.orchestrator import Orchestrator
from lattice.core.store import Store
from lattice.wire.tenants import ADMIN_POLICY, ADMIN_TENANT, TenantPolicy


async def get_state(request: Request) -> HeadState:
    return request.app.state.head


def token_matches(state: HeadState, given: str | None) -> bool:
    if state.token is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), state.token.encode())


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def authenticate(state: HeadState, given: str | None) -> TenantPolicy | None:
    """Who sends ``given``: the admin (the head's own token, or anyone when auth is off), a live named key's
    tenant, or nobody (None)."""
    if state.token is None:
        return ADMIN_POLICY
    if given is None:
        return None
    if token_matches(state, given):
        return ADMIN_POLICY
    return state.keys.authenticate(given) if state.keys is not None else None


async def require_token(request: Request) -> None:
    state: HeadState = request.app.state.head
    given = bearer(request.headers.get("authorization"))
    caller = authenticate(state, given)
    request.state.caller = caller
    if caller is None:
        raise HTTPError(401, "unauthorized",
                        "missing token" if given is None else "invalid token", "Authorization",
                        "send 'Authorization: Bearer <token>'; the token is in the head's data dir "
                        "(~/.lattice/token by default), or set LATTICE_TOKEN")


class TokenRequired(HTTPBearer):
    """:func:`require_token` as a dependency that also declares the bearer scheme in the OpenAPI document.

    One dependency where a route had two (the scheme, then the check): FastAPI solves each of a route's
    dependencies on every request, some tens of microseconds apiece, and every ``/api/v1`` request has these.
    """

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        await require_token(request)


token_required = TokenRequired(**BEARER_SCHEME)


def websocket_caller(websocket: WebSocket) -> TenantPolicy | None:
    state: HeadState = websocket.app.state.head
    given = bearer(websocket.headers.get("authorization")) or websocket.query_params.get("token")
    return authenticate(state, given)


def websocket_authorized(websocket: WebSocket) -> bool:
    return websocket_caller(websocket) is not None


async def get_caller(request: Request) -> TenantPolicy:
    """The tenant of this request (``require_token`` guards every ``/api/v1`` route before this runs)."""
    caller = getattr(request.state, "caller", None)
    if caller is None:
        await require_token(request)
        caller = request.state.caller
    return caller


def owns(caller: TenantPolicy, owner: str | None) -> bool:
    """Whether the caller may see something its owner made (the admin's things have no owner: None)."""
    return caller.is_admin or (owner or ADMIN_TENANT) == caller.name


def require_submit(caller: TenantPolicy) -> None:
    if not caller.role.can_submit:
        raise HTTPError(403, "forbidden", f"the key {caller.name!r} has the role 'read': it cannot submit, "
                        "start, cancel or write", "Authorization",
                        "use a key with the role 'submit' (lattice keys create NAME --role submit)")


def require_admin(caller: TenantPolicy) -> None:
    if not caller.is_admin:
        raise HTTPError(403, "forbidden", f"the key {caller.name!r} is not an admin key", "Authorization",
                        "use the head's own token (its data dir's 'token' file) or an admin key")


State = Annotated[HeadState, Depends(get_state)]


async def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.head.orchestrator


async def get_store(request: Request) -> Store:
    return request.app.state.head.store


Caller = Annotated[TenantPolicy, Depends(get_caller)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
StoreDep = Annotated[Store, Depends(get_store)]
