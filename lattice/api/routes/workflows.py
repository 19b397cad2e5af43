"""Workflows: submit a spec once, then start runs of it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from lattice.api.deps import Caller, OrchestratorDep, StoreDep, owns, require_submit
from lattice.api.errors import HTTPError
from lattice.api.routes.runs import MAX_WAIT_S, wait_for_results
from lattice.core.errors import NotFound, StoreUnavailable
from lattice.core.orchestrator import Orchestrator
from lattice.core.store import Store
from lattice.wire.catalog import redact_spec
from lattice.wire.http import ErrorResponse, RunCreated, RunsCreated, WorkflowCreated, WorkflowPublic
from lattice.wire.spec import MAX_BATCH_TASKS, RunBatchCreate, RunCreate, WorkflowSpec, inline_code

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
                          sinks=list(entry.graph.sinks), created_at=row["created_at"],
                          spec=redact_spec(inline_code(row["spec"])))


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
                     request: Request, response: Response, options: RunCreate | None = Body(None),
                     idempotency_key: IdempotencyKey = None,
                     wait: float = Query(0.0, ge=0, le=MAX_WAIT_S,
                                         description="seconds to wait for the run to finish; its results "
                                                     "come with the answer (submit and result in one request)")
                     ) -> RunCreated:
    """Start a run of a registered workflow; returns at once with the run's id, or with ``wait`` once it ended.

    With ``Idempotency-Key``, a repeat of the request (a client retrying after a lost answer or a head
    restart) starts no second run: it answers ``200`` with the first run and ``Idempotent-Replayed: true``.
    The same key with a different body is a 422. ``wait`` holds the answer until the run ends (at most that
    many seconds) and adds its ``results``: a short run costs one request instead of a submit and a poll.
    The run is committed before the wait begins, as without it.
    """
    found, owner = orchestrator.registry.owner(workflow_id)
    if not found or not owns(caller, owner):
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
            return await _created(request, orchestrator, store, workflow_id, run_id, existing["state"], wait)
    run_id = orchestrator.create_run(workflow_id, options, caller.name, run_id)
    try:
        await orchestrator.flush()  # the run is in the store before its id is handed out
    except StoreUnavailable as exc:
        orchestrator.abandon_run(run_id, f"the store could not commit the run when it was created: {exc}")
        raise
    return await _created(request, orchestrator, store, workflow_id, run_id, "running", wait)


async def _created(request: Request, orchestrator: Orchestrator, store: Store, workflow_id: str, run_id: str,
                   state: str, wait: float) -> RunCreated:
    if wait <= 0:
        return RunCreated(run_id=run_id, workflow_id=workflow_id, state=state)
    results = await wait_for_results(request, orchestrator, store, run_id, wait)
    return RunCreated(run_id=run_id, workflow_id=workflow_id, state=results.state, results=results)


def keyed_batch_run_ids(workflow_id: str, key: str, count: int) -> list[str]:
    """The run ids a batch's idempotency key stands for, one per position (a key holds no newline, so
    ``key\\ni`` never equals a single run's key)."""
    return [keyed_run_id(workflow_id, f"{key}\n{index}") for index in range(count)]


@router.post("/{workflow_id}/runs:batch", status_code=201, response_model=RunsCreated,
             responses={**_errors, 200: {"model": RunsCreated, "description": "a repeated Idempotency-Key"},
                        503: {"model": ErrorResponse}})
async def create_runs(workflow_id: str, body: RunBatchCreate, orchestrator: OrchestratorDep, store: StoreDep,
                      caller: Caller, response: Response, idempotency_key: IdempotencyKey = None) -> RunsCreated:
    """Start many runs of a registered workflow in one request, each with its own options and inputs.

    Every run is checked before any starts, and all are committed together before the ids are returned,
    in the order of ``runs``. With ``Idempotency-Key`` a repeat of the request starts nothing and answers
    ``200`` with the same ids (``Idempotent-Replayed: true``); the same key with another body is a 422.
    """
    row = store.get_workflow(workflow_id)
    if row is None or not owns(caller, row.get("tenant")):
        raise NotFound("workflow", workflow_id)
    require_submit(caller)
    tasks = len(orchestrator.get_workflow(workflow_id).graph.order)
    if tasks * len(body.runs) > MAX_BATCH_TASKS:
        raise HTTPError(422, "batch_too_large",
                        f"{len(body.runs)} runs of this {tasks}-task workflow make {tasks * len(body.runs)} tasks, "
                        f"over the {MAX_BATCH_TASKS} one batch may create", "runs",
                        f"send at most {max(1, MAX_BATCH_TASKS // tasks)} runs of it per request")
    run_ids: list[str] | None = None
    if idempotency_key is not None:
        run_ids = keyed_batch_run_ids(workflow_id, idempotency_key, len(body.runs))
        if any(run_id in orchestrator.runs for run_id in run_ids):
            await orchestrator.flush()  # started by a request still in flight: answer once it is stored
        existing = store.get_runs(run_ids)
        if existing:
            same = len(existing) == len(run_ids) and all(
                _same_request(existing[run_id], options) for run_id, options in zip(run_ids, body.runs, strict=True))
            if not same:
                raise HTTPError(422, "idempotency_key_reused",
                                "this Idempotency-Key started a batch of other runs (their number, priority, tags, "
                                "inputs or weight differ)", "Idempotency-Key", "use a new key for a different batch")
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return RunsCreated(workflow_id=workflow_id, run_ids=run_ids)
    created = orchestrator.create_runs(workflow_id, body.runs, caller.name, run_ids)
    try:
        await orchestrator.flush()  # every run is in the store before any id is handed out
    except StoreUnavailable as exc:
        for run_id in created:
            orchestrator.abandon_run(run_id, f"the store could not commit the run when it was created: {exc}")
        raise
    return RunsCreated(workflow_id=workflow_id, run_ids=created)
