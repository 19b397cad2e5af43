"""Dependencies routes ask for by type: the head's state, and authentication.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a thread pool, a thread
hop per request for what is an attribute lookup.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, WebSocket

from lattice.api.errors import HTTPError
from lattice.api.state import HeadState
from lattice.core.orchestrator import Orchestrator
from lattice.core.store import Store


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


async def require_token(request: Request) -> None:
    state: HeadState = request.app.state.head
    given = bearer(request.headers.get("authorization"))
    if not token_matches(state, given):
        raise HTTPError(401, "unauthorized",
                        "missing token" if given is None else "invalid token", "Authorization",
                        "send 'Authorization: Bearer <token>'; the token is in the head's data dir "
                        "(~/.lattice/token by default), or set LATTICE_TOKEN")


def websocket_authorized(websocket: WebSocket) -> bool:
    state: HeadState = websocket.app.state.head
    given = bearer(websocket.headers.get("authorization")) or websocket.query_params.get("token")
    return token_matches(state, given)


State = Annotated[HeadState, Depends(get_state)]


async def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.head.orchestrator


async def get_store(request: Request) -> Store:
    return request.app.state.head.store


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
StoreDep = Annotated[Store, Depends(get_store)]
