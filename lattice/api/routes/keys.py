"""Named API keys (tenants): make, list and revoke them. Admin only (the head's own token or an admin key)."""

from __future__ import annotations

from fastapi import APIRouter

from lattice.api.deps import Caller, State, require_admin
from lattice.api.errors import HTTPError
from lattice.core.tenants import KeyRing
from lattice.wire.http import ErrorResponse
from lattice.wire.tenants import KeyCreate, KeyCreated, KeyList, KeyPublic

router = APIRouter(prefix="/keys", tags=["keys"])
_errors = {403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 409: {"model": ErrorResponse},
           422: {"model": ErrorResponse}}


def _ring(state: State, caller: Caller) -> KeyRing:
    require_admin(caller)
    if state.keys is None:
        raise HTTPError(409, "conflict", "this head has no key ring", "keys", "start the head with auth on")
    return state.keys


@router.post("", status_code=201, response_model=KeyCreated, responses=_errors)
async def create_key(body: KeyCreate, state: State, caller: Caller) -> KeyCreated:
    """A new tenant's key; the secret is in this answer only (the head keeps a hash)."""
    return _ring(state, caller).create(body)


@router.get("", response_model=KeyList, responses=_errors)
async def list_keys(state: State, caller: Caller) -> KeyList:
    return KeyList(keys=_ring(state, caller).list())


@router.delete("/{name}", response_model=KeyPublic, responses=_errors)
async def revoke_key(name: str, state: State, caller: Caller) -> KeyPublic:
    """Revoke at once: the key's next request is a 401 and its open WebSockets close with 4401. Its runs go
    on (cancel them first if they should not)."""
    return _ring(state, caller).revoke(name)
