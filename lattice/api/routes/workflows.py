"""Workflows: submit a spec once, then start runs of it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from lattice.api.deps import Caller, OrchestratorDep, StoreDep, owns, require_submit
from lattice.api.errors import HTTPError
from lattice.core.errors import NotFound, StoreUnavailable
from lattice.wire.catalog import redact_spec
from lattice.wire.http import ErrorResponse, RunCreated, WorkflowCreated, WorkflowPublic
from lattice.wire.spec import RunCreate, WorkflowSpec

router = APIRouter(prefix="/workflows", tags=["workflows"])
_errors = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}


@router.post("", status_code=201, response_model=WorkflowCreated, responses=_errors)
async def create_workflow(spec: WorkflowSpec, orchestrator: OrchestratorDep, caller: Caller) -> WorkflowCreated:
    """Validate a ``lattice.workflow/v1`` spec (references, cycles, sandbox levels) and keep it."""
    require_submit(caller)
    workflow_id = orchestrator.register_workflow(spec, caller.name)
    entry = orchestrator.get_workflow(workflow_id)
    return WorkflowCreated(workflow_id=workflow_id, name=spec.name, tasks=list(entry.graph.order),
                           sinks=list(entry.graph.sinks))


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=_errors)
async def get_workflow(workflow_id: str, orchestrator: OrchestratorDep, store: StoreDep,
                       caller: Caller) -> WorkflowPublic:
    row = store.get_workflow(workflow_id)
    if row is None or not owns(caller, row.get("tenant")):
        raise NotFound("workflow", workflow_id)
    entry = orchestrator.get_workflow(workflow_id)
    return WorkflowPublic(workflow_id=workflow_id, name=row["name"], tasks=list(entry.graph.order),
                          sinks=list(entry.graph.sinks), created_at=row["created_at"], spec=redact_spec(row["spec"]))


#: the namespace of run ids derived from idempotency keys (uuid5), fixed so that a restarted head derives the same
_KEYED_RUNS = uuid.UUID("6f1d3c2a-8e4b-5a7c-9d0e-1f2a3b4c5d6e")
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="a key the client picks once per run it means to start (the SDK: a random one per call); "
                "the same key again answers 200 with the run it started, so a submission can be retried")]


def keyed_run_id(workflow_id: str, key: str) -> str:
    """The run id an idempotency key stands for: derived, so that it survives a head restart without a table."""
    return uuid.uuid5(_KEYED_RUNS, f"{workflow_id}\n{key}").hex


def _same_request(row: dict[str, Any], options: RunCreate) -> bool:
    inputs = {task: {name: item.model_dump(exclude_unset=True) for name, item in values.items()}
              for task, values in options.inputs.items()}  # as the orchestrator stores them (runs.inputs)
    stored = (row["priority"], row["tags"], row["inputs"] or {}, row.get("weight") or 1.0)
    return stored == (options.priority, options.tags, inputs, options.weight)


@router.post("/{workflow_id}/runs", status_code=201, response_model=RunCreated,
             responses={**_errors, 200: {"model": RunCreated, "description": "a repeated Idempotency-Key"}})
async def create_run(workflow_id: str, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller,
                     response: Response, options: RunCreate | None = Body(None),
                     idempotency_key: IdempotencyKey = None) -> RunCreated:
    """Start a run of a registered workflow; returns at once with the run's id.

    With ``Idempotency-Key``, a repeat of the request (a client retrying after a lost answer or a head
    restart) starts no second run: it answers ``200`` with the first run and ``Idempotent-Replayed: true``.
    The same key with a different body is a 422.
    """
    row = store.get_workflow(workflow_id)
    if row is None or not owns(caller, row.get("tenant")):
        raise NotFound("workflow", workflow_id)
    require_submit(caller)
    options = options or RunCreate()
    run_id = None
    if idempotency_key is not None:
        run_id = keyed_run_id(workflow_id, idempotency_key)
        if run_id in orchestrator.runs:
            await orchestrator.flush()  # started by a request still in flight: answer once it is stored
        existing = store.get_run(run_id)
        if existing is not None:
            if not _same_request(existing, options):
                raise HTTPError(422, "idempotency_key_reused",
                                "this Idempotency-Key started a run with another priority, tags, inputs or weight",
                                "Idempotency-Key", "use a new key for a different run")
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return RunCreated(run_id=run_id, workflow_id=workflow_id, state=existing["state"])
    run_id = orchestrator.create_run(workflow_id, options, caller.name, run_id)
    try:
        await orchestrator.flush()  # the run is in the store before its id is handed out
    except StoreUnavailable as exc:
        orchestrator.abandon_run(run_id, f"the store could not commit the run when it was created: {exc}")
        raise
    return RunCreated(run_id=run_id, workflow_id=workflow_id, state="running")
