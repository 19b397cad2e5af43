"""Workflows: submit a spec once, then start runs of it."""

from __future__ import annotations

from fastapi import APIRouter, Body

from lattice.api.deps import Caller, OrchestratorDep, StoreDep, owns, require_submit
from lattice.core.errors import NotFound, StoreUnavailable
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
                          sinks=list(entry.graph.sinks), created_at=row["created_at"], spec=row["spec"])


@router.post("/{workflow_id}/runs", status_code=201, response_model=RunCreated, responses=_errors)
async def create_run(workflow_id: str, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller,
                     options: RunCreate | None = Body(None)) -> RunCreated:
    """Start a run of a registered workflow; returns at once with the run's id."""
    row = store.get_workflow(workflow_id)
    if row is None or not owns(caller, row.get("tenant")):
        raise NotFound("workflow", workflow_id)
    require_submit(caller)
    run_id = orchestrator.create_run(workflow_id, options, caller.name)
    try:
        await orchestrator.flush()  # the run is in the store before its id is handed out
    except StoreUnavailable as exc:
        orchestrator.abandon_run(run_id, f"the store could not commit the run when it was created: {exc}")
        raise
    return RunCreated(run_id=run_id, workflow_id=workflow_id, state="running")
