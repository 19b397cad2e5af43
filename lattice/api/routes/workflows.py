"""Workflows: submit a spec once, then start runs of it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from pydantic import ValidationError

from lattice.api.deps import Caller, OrchestratorDep, StoreDep, owns, require_submit
from lattice.api.draining import unless_draining
from lattice.api.errors import HTTPError, body_validation_error
from lattice.api.openapi import json_body
from lattice.api.responses import json_response
from lattice.api.routes.runs import MAX_WAIT_S, UNPAGED_WAIT_SINKS, ResultsLimit, wait_for_results
from lattice.core.errors import NotFound, StoreUnavailable
from lattice.core.orchestrator import Orchestrator
from lattice.core.store import Store
from lattice.core.workflows import spec_page
from lattice.wire.catalog import redact_spec
from lattice.wire.http import (
    INT64_MAX,
    MAX_SPEC_PAGE,
    ErrorResponse,
    RunCreated,
    RunsCreated,
    WorkflowCreated,
    WorkflowPublic,
)
from lattice.wire.spec import MAX_BATCH_TASKS, RunBatchCreate, RunCreate, WorkflowSpec

router = APIRouter(prefix="/workflows", tags=["workflows"])
_errors = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}


#: the bodies routes here parse themselves, off the event loop (declared for the OpenAPI document)
RAW_BODIES = (WorkflowSpec,)


@router.post("", status_code=201, response_model=WorkflowCreated, responses=_errors,
             openapi_extra=json_body(WorkflowSpec))
async def create_workflow(request: Request, orchestrator: OrchestratorDep, caller: Caller) -> WorkflowCreated:
    """Validate a ``lattice.workflow/v1`` spec (references, cycles, sandbox levels) and keep it.

    The body is parsed and checked on a worker thread, not by FastAPI on the event loop: a 100,000-task
    spec takes seconds, and every other request (``/health`` too) would wait for it. The spec is committed
    before its id is answered."""
    require_submit(caller)
    body = await request.body()
    try:
        entry = await orchestrator.create_workflow(body, caller.name)
    except ValidationError as exc:
        raise body_validation_error(exc) from None
    return WorkflowCreated(workflow_id=entry.workflow_id, name=entry.spec.name, tasks=list(entry.graph.order),
                           sinks=list(entry.graph.sinks))


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=_errors)
async def get_workflow(workflow_id: str, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller,
                       limit: int = Query(MAX_SPEC_PAGE // 10, ge=1, le=MAX_SPEC_PAGE,
                                          description="tasks per page (in the workflow's topological order)"),
                       after: int = Query(0, ge=0, le=INT64_MAX,
                                          description="the page starts at this task (`next_after` of the page "
                                                      "before)")) -> WorkflowPublic:
    """The registered workflow, its spec a page of tasks at a time, code by reference as stored.

    A 100,000-task workflow answered whole was over 100 MB of JSON (its function repeated in every task):
    a page holds ``limit`` tasks and the code-table entries they name; ``next_after`` says where the next
    page starts (null: the last), ``task_count`` how many tasks there are."""
    found, owner = orchestrator.registry.owner(workflow_id)
    row = store.get_workflow(workflow_id, spec=False) if found and owns(caller, owner) else None
    if row is None:
        raise NotFound("workflow", workflow_id)
    entry = await orchestrator.load_workflow(workflow_id)
    page = spec_page(entry, after, limit)
    return WorkflowPublic(workflow_id=workflow_id, name=row["name"], tasks=list(page.tasks), sinks=list(page.sinks),
                          created_at=row["created_at"], spec=redact_spec(page.spec),
                          task_count=len(entry.graph.order), next_after=page.next_after)


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
                     request: Request, options: RunCreate | None = Body(None),
                     idempotency_key: IdempotencyKey = None,
                     wait: float = Query(0.0, ge=0, le=MAX_WAIT_S,
                                         description="seconds to wait for the run to finish; its results "
                                                     "come with the answer (submit and result in one request)"),
                     limit: ResultsLimit = None) -> Response:
    """Start a run of a registered workflow; returns at once with the run's id, or with ``wait`` once it ended.

    With ``Idempotency-Key``, a repeat of the request (a client retrying after a lost answer or a head
    restart) starts no second run: it answers ``200`` with the first run and ``Idempotent-Replayed: true``.
    The same key with a different body is a 422. ``wait`` holds the answer until the run ends (at most that
    many seconds) and adds its ``results``: a short run costs one request instead of a submit and a poll.
    The run is committed before the wait begins, as without it. The results are bounded as
    ``GET /runs/{id}/results`` pages them: with ``limit``, the first page (``next_after`` says where that route
    goes on); without, they come only for a run of at most 1,000 sinks (a bigger one's are read there).
    """
    found, owner = orchestrator.registry.owner(workflow_id)
    if not found or not owns(caller, owner):
        raise NotFound("workflow", workflow_id)
    require_submit(caller)
    await orchestrator.load_workflow(workflow_id)  # after a restart: rebuilt off the loop, not in create_run
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
            created = await _created(request, orchestrator, store, workflow_id, run_id, existing["state"], wait,
                                     limit)
            return json_response(created, 200, {"Idempotent-Replayed": "true"})
    run_id = orchestrator.create_run(workflow_id, options, caller.name, run_id)
    try:
        await orchestrator.flush()  # the run is in the store before its id is handed out
    except StoreUnavailable as exc:
        orchestrator.abandon_run(run_id, f"the store could not commit the run when it was created: {exc}")
        raise
    return json_response(await _created(request, orchestrator, store, workflow_id, run_id, "running", wait, limit),
                         201)


async def _created(request: Request, orchestrator: Orchestrator, store: Store, workflow_id: str, run_id: str,
                   state: str, wait: float, limit: int | None) -> RunCreated:
    if wait <= 0:
        return RunCreated(run_id=run_id, workflow_id=workflow_id, state=state)
    if limit is None and len(orchestrator.get_workflow(workflow_id).graph.sinks) > UNPAGED_WAIT_SINKS:
        # more sinks than one answer carries unasked: the run's state only, its results from the paged route
        row = await unless_draining(request, orchestrator.wait_run(run_id, wait))
        return RunCreated(run_id=run_id, workflow_id=workflow_id, state=row["state"])
    results = await wait_for_results(request, orchestrator, store, run_id, wait, limit)
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
    found, owner = orchestrator.registry.owner(workflow_id)
    if not found or not owns(caller, owner):
        raise NotFound("workflow", workflow_id)
    require_submit(caller)
    tasks = len((await orchestrator.load_workflow(workflow_id)).graph.order)
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
