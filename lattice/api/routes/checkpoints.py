"""LangGraph checkpoints: opaque, typed byte strings kept per thread, namespace and checkpoint id.

Used by ``lattice.client.langgraph.LatticeSaver``. The head never decodes the bytes (they are
LangGraph serde output, possibly pickles); it only stores, orders and returns them. Handlers are
plain ``def``s so FastAPI runs the database calls in its thread pool, off the event loop.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from lattice.api.deps import Caller, require_submit
from lattice.api.errors import HTTPError
from lattice.core.checkpoints import CheckpointRow, CheckpointStore, Typed, WriteRow
from lattice.wire.http import INT64_MAX, INT64_MIN, ErrorResponse
from lattice.wire.tenants import TenantPolicy

router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])
_errors = {422: {"model": ErrorResponse}}


def get_checkpoint_store(request: Request) -> CheckpointStore:
    """One :class:`CheckpointStore` per head, made on first use (it creates its tables)."""
    app_state = request.app.state
    store = getattr(app_state, "lattice_checkpoints", None)
    if store is None:
        store = CheckpointStore(app_state.head.store.engine)
        app_state.lattice_checkpoints = store
    return store


CheckpointStoreDep = Annotated[CheckpointStore, Depends(get_checkpoint_store)]
#: between a tenant's name and its thread id in the stored thread id: each tenant has its own namespace
_NS = "\x1f"


def _namespace(caller: TenantPolicy) -> str | None:
    """The prefix of the caller's threads; None for the admin, which sees (and names) threads as stored."""
    return None if caller.is_admin else f"{caller.name}{_NS}"


def _stored(caller: TenantPolicy, thread_id: str) -> str:
    prefix = _namespace(caller)
    return thread_id if prefix is None else prefix + thread_id


def _shown(caller: TenantPolicy, stored: str) -> str:
    prefix = _namespace(caller)
    return stored if prefix is None else stored.removeprefix(prefix)


class TypedBytes(BaseModel):
    """A serialized value: the serde's type tag and the bytes, base64."""

    type: str = Field(max_length=32)
    data: str = Field(description="base64")

    def decoded(self, field: str) -> Typed:
        try:
            return Typed(self.type, base64.b64decode(self.data, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise HTTPError(422, "validation_error", f"{field}.data is not valid base64", f"{field}.data") from exc

    @classmethod
    def of(cls, value: Typed) -> TypedBytes:
        return cls(type=value.type, data=base64.b64encode(value.data).decode())


class CheckpointPut(BaseModel):
    thread_id: str = Field(min_length=1, max_length=256)
    checkpoint_ns: str = Field("", max_length=512)
    checkpoint_id: str = Field(min_length=1, max_length=64)
    parent_checkpoint_id: str | None = Field(None, max_length=64)
    checkpoint: TypedBytes
    metadata: TypedBytes


class WriteIn(BaseModel):
    idx: int = Field(ge=INT64_MIN, le=INT64_MAX,
                     description="the write's index; LangGraph's special channels use negative ones")
    channel: str = Field(max_length=256)
    value: TypedBytes


class WritesPut(BaseModel):
    thread_id: str = Field(min_length=1, max_length=256)
    checkpoint_ns: str = Field("", max_length=512)
    checkpoint_id: str = Field(min_length=1, max_length=64)
    task_id: str = Field(min_length=1, max_length=64)
    task_path: str = Field("", max_length=512)
    writes: list[WriteIn]


class WriteOut(BaseModel):
    task_id: str
    idx: int
    channel: str
    value: TypedBytes
    task_path: str


class CheckpointOut(BaseModel):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: TypedBytes
    metadata: TypedBytes
    writes: list[WriteOut]


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointOut]


@router.post("", status_code=201, responses=_errors)
def put_checkpoint(body: CheckpointPut, store: CheckpointStoreDep, caller: Caller) -> dict[str, str]:
    """Save (or replace) one checkpoint (in the caller's own namespace of threads)."""
    require_submit(caller)
    store.put(CheckpointRow(_stored(caller, body.thread_id), body.checkpoint_ns, body.checkpoint_id,
                            body.parent_checkpoint_id,
                            body.checkpoint.decoded("checkpoint"), body.metadata.decoded("metadata")))
    return {"checkpoint_id": body.checkpoint_id}


@router.post("/writes", status_code=201, responses=_errors)
def put_writes(body: WritesPut, store: CheckpointStoreDep, caller: Caller) -> dict[str, int]:
    """Save a task's pending writes against a checkpoint."""
    require_submit(caller)
    rows = [WriteRow(body.task_id, w.idx, w.channel, w.value.decoded(f"writes[{i}].value"), body.task_path)
            for i, w in enumerate(body.writes)]
    store.put_writes(_stored(caller, body.thread_id), body.checkpoint_ns, body.checkpoint_id, rows)
    return {"writes": len(rows)}


@router.get("", response_model=CheckpointList, responses=_errors)
def list_checkpoints(store: CheckpointStoreDep, caller: Caller, thread_id: str | None = None,
                     checkpoint_ns: str | None = None,
                     checkpoint_id: str | None = None, before: str | None = None,
                     limit: int | None = Query(None, ge=1, le=100_000)) -> CheckpointList:
    """Checkpoints newest first, each with its pending writes; every filter is optional. A tenant sees only
    the threads it saved."""
    rows = store.list(None if thread_id is None else _stored(caller, thread_id), checkpoint_ns, checkpoint_id,
                      before, limit, thread_prefix=_namespace(caller))
    return CheckpointList(checkpoints=[
        CheckpointOut(thread_id=_shown(caller, r.thread_id), checkpoint_ns=r.checkpoint_ns,
                      checkpoint_id=r.checkpoint_id,
                      parent_checkpoint_id=r.parent_checkpoint_id, checkpoint=TypedBytes.of(r.checkpoint),
                      metadata=TypedBytes.of(r.metadata),
                      writes=[WriteOut(task_id=w.task_id, idx=w.idx, channel=w.channel, value=TypedBytes.of(w.value),
                                       task_path=w.task_path) for w in r.writes])
        for r in rows
    ])


@router.delete("", responses=_errors)
def delete_thread(store: CheckpointStoreDep, caller: Caller, thread_id: str = Query(min_length=1)) -> dict[str, str]:
    """Delete every checkpoint and write of a thread (of the caller's own)."""
    require_submit(caller)
    store.delete_thread(_stored(caller, thread_id))
    return {"thread_id": thread_id}
