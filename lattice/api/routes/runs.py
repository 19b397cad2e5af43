"""Runs: state, per-task detail, results, events, logs, cancel."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from lattice.api.deps import Caller, OrchestratorDep, StoreDep, owns, require_submit
from lattice.api.draining import unless_draining
from lattice.api.errors import HTTPError
from lattice.core.errors import NotFound
from lattice.core.finished import Blobs
from lattice.core.orchestrator import Orchestrator
from lattice.core.results import ResultsPage, results_page
from lattice.core.states import RunState
from lattice.core.store import Store
from lattice.core.workflows import WorkflowEntry
from lattice.wire.catalog import redact_run_inputs
from lattice.wire.encoding import to_wire
from lattice.wire.http import (
    INT64_MAX,
    MAX_RESULTS_PAGE,
    RESULTS_PAGE,
    AttemptLog,
    ErrorResponse,
    Event,
    EventList,
    LogList,
    ResultsBatch,
    ResultsBatchQuery,
    RunList,
    RunPublic,
    RunResults,
    TaskPublic,
)
from lattice.wire.tenants import TenantPolicy

router = APIRouter(prefix="/runs", tags=["runs"])
_errors = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
MAX_WAIT_S = 60.0
#: without ``limit``, the results a ``wait`` submit carries come only for a run of at most this many sinks
UNPAGED_WAIT_SINKS = RESULTS_PAGE


def _run_row(store: Store, run_id: str, caller: TenantPolicy) -> dict[str, Any]:
    """The run's row, if the caller may see it: another tenant's run is a 404, so its id does not leak."""
    row = store.get_run(run_id)
    if row is None or not owns(caller, row.get("tenant")):
        raise NotFound("run", run_id)
    return row


def _tasks(store: Store, run_id: str, include_outputs: bool) -> list[TaskPublic]:
    blobs = store.get_blobs(run_id) if include_outputs else {}
    out = []
    for row in store.get_tasks(run_id):
        started, finished = row["started_at"], row["finished_at"]
        outputs = None
        if include_outputs:
            outputs = {k: to_wire(*v) for k, v in blobs.get(row["name"], {}).items()}
        out.append(TaskPublic(
            name=row["name"], state=row["state"], attempt=row["attempt"], node_losses=row.get("node_losses") or 0,
            attempt_id=row["attempt_id"],
            node_id=row["node_id"], queued_at=row["queued_at"], started_at=started, finished_at=finished,
            duration_s=round(finished - started, 6) if started and finished else None,
            error=row["error"], outputs=outputs))
    return out


def _public(row: dict[str, Any], tasks: list[TaskPublic] | None = None) -> RunPublic:
    counts = None
    if tasks is not None:
        counts = {}
        for task in tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
    return RunPublic(run_id=row["id"], workflow_id=row["workflow_id"], workflow_name=row["workflow_name"],
                     state=row["state"], priority=row["priority"], tags=row["tags"],
                     inputs=redact_run_inputs(row.get("inputs") or {}),
                     created_at=row["created_at"], started_at=row["started_at"],
                     finished_at=row["finished_at"], failed_task=row["failed_task"], error=row["error"],
                     tasks=tasks, task_counts=counts)


@router.get("", response_model=RunList)
async def list_runs(store: StoreDep, caller: Caller, state: RunState | None = None, workflow_id: str | None = None,
                    q: str | None = Query(None, max_length=200,
                                          description="a substring of the run id, workflow name or tags"),
                    limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=INT64_MAX)) -> RunList:
    """Newest first, filtered and paged in the store, each run with its tasks counted by state; ``total``
    counts every run the filters match."""
    tenant = None if caller.is_admin else caller.name
    rows = store.list_runs(state=state, workflow_id=workflow_id, limit=limit, offset=offset, tenant=tenant, search=q)
    total = store.count_runs(state=state, workflow_id=workflow_id, tenant=tenant, search=q)
    counts = store.task_counts([row["id"] for row in rows])
    runs = [_public(row).model_copy(update={"task_counts": counts.get(row["id"], {})}) for row in rows]
    return RunList(runs=runs, total=total)


ResultsLimit = Annotated[int | None, Query(
    ge=1, le=MAX_RESULTS_PAGE,
    description="page the outputs: at most this many sink tasks' outputs per run (default: all in one)")]


@router.post("/results:batch", response_model=ResultsBatch, responses={**_errors, 503: {"model": ErrorResponse}})
async def get_results_batch(body: ResultsBatchQuery, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller,
                            request: Request, limit: ResultsLimit = None) -> ResultsBatch:
    """The results of many runs in one request; with ``wait``, a long poll until every one has ended.

    Each run is answered as ``GET /runs/{id}/results`` answers it. An id that names no run, or another
    tenant's, is listed in ``not_found`` (as the single route's 404) instead of failing the others. A head
    that starts shutting down ends the wait at once with ``503 shutting_down``.

    One answer carries at most :data:`MAX_RESULTS_PAGE` sinks' outputs in all. With ``limit``, each run's
    entry is the first page of at most ``limit`` of its sinks (``next_after``: where
    ``GET /runs/{id}/results`` goes on); once the answer is full, the later runs' entries carry none yet
    (``outputs`` empty, ``next_after`` 0). Without ``limit``, a batch whose runs have more sinks than that
    in all is a 422 ``too_many_results``.
    """
    asked = list(dict.fromkeys(body.run_ids))
    rows = store.get_runs(asked)
    found = [run_id for run_id in asked if run_id in rows and owns(caller, rows[run_id].get("tenant"))]
    not_found = [run_id for run_id in asked if run_id not in found]
    if body.wait > 0 and found:
        await unless_draining(request, orchestrator.wait_runs(found, body.wait))
        rows = store.get_runs(found)
    pages: dict[str, ResultsPage] = {}  # per succeeded run: the sinks its entry carries
    entries: dict[str, WorkflowEntry] = {}
    room = MAX_RESULTS_PAGE
    for run_id in found:
        row = rows[run_id]
        if row["state"] != RunState.SUCCEEDED:
            continue
        entry = entries.get(row["workflow_id"])
        if entry is None:
            entry = entries[row["workflow_id"]] = await orchestrator.load_workflow(row["workflow_id"])
        sinks = entry.graph.sinks
        page = results_page(sinks, entry.shared_outputs, 0, len(sinks) if limit is None else min(limit, room))
        room -= len(page.sinks)
        if room < 0:
            raise HTTPError(422, "too_many_results",
                            f"these runs' results hold more than the {MAX_RESULTS_PAGE} sinks' outputs one answer "
                            "carries", "run_ids",
                            "ask with ?limit= (each run's first page, then GET /runs/{id}/results; the SDK does) "
                            "or for fewer runs at once")
        pages[run_id] = page
    blobs = _blobs_of_pages(store, pages)
    results = []
    for run_id in found:
        row = rows[run_id]
        state = RunState(row["state"])
        page = pages.get(run_id)
        if page is None:
            results.append(RunResults(run_id=run_id, state=state, done=state.terminal,
                                      failed_task=row["failed_task"], error=row["error"]))
            continue
        outputs = merge_sink_outputs(page.sinks, blobs.get(run_id, {}), None if limit is None else page.shared)
        paged = {} if limit is None else {"next_after": page.next_after,
                                          "sinks": len(entries[row["workflow_id"]].graph.sinks)}
        results.append(RunResults(run_id=run_id, state=state, done=True, outputs=outputs, **paged))
    return ResultsBatch(results=results, not_found=not_found)


def _blobs_of_pages(store: Store, pages: dict[str, ResultsPage]) -> dict[str, Blobs]:
    """The blobs of each run's page of sinks, one store read per distinct page (runs of one workflow share it)."""
    runs_of: dict[tuple[str, ...], list[str]] = {}
    for run_id, page in pages.items():
        if page.sinks:
            runs_of.setdefault(page.sinks, []).append(run_id)
    blobs: dict[str, Blobs] = {}
    for sinks, run_ids in runs_of.items():
        blobs.update(store.get_blobs_of_runs(run_ids, sinks))
    return blobs


@router.get("/{run_id}", response_model=RunPublic, responses=_errors)
async def get_run(run_id: str, store: StoreDep, caller: Caller, include_outputs: bool = False) -> RunPublic:
    row = _run_row(store, run_id, caller)
    return _public(row, _tasks(store, run_id, include_outputs))


@router.get("/{run_id}/tasks", response_model=list[TaskPublic], responses=_errors)
async def get_tasks(run_id: str, store: StoreDep, caller: Caller, include_outputs: bool = True) -> list[TaskPublic]:
    _run_row(store, run_id, caller)
    return _tasks(store, run_id, include_outputs)


@router.get("/{run_id}/results", response_model=RunResults, responses={**_errors, 503: {"model": ErrorResponse}})
async def get_results(run_id: str, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller, request: Request,
                      wait: float = Query(0.0, ge=0, le=MAX_WAIT_S,
                                          description="seconds to wait for the run to finish"),
                      limit: ResultsLimit = None,
                      after: int = Query(0, ge=0, le=INT64_MAX,
                                         description="with `limit`: the page starts at this sink (`next_after` "
                                                     "of the page before)")) -> RunResults:
    """The merged outputs of the run's sink tasks; with ``wait``, a long poll until the run ends.

    With ``limit``, a succeeded run's outputs come a page of sinks at a time (``next_after`` says where the
    next page starts, ``sinks`` how many there are): answering a 20,000-sink run in one response holds the
    head's loop for about half a second of CPU, a page of 1,000 for a few tens of ms. A head that starts
    shutting down ends the wait at once with ``503 shutting_down``.
    """
    _run_row(store, run_id, caller)
    return await wait_for_results(request, orchestrator, store, run_id, wait, limit, after)


async def wait_for_results(request: Request, orchestrator: Orchestrator, store: Store, run_id: str,
                           wait: float, limit: int | None = None, after: int = 0) -> RunResults:
    """The run's results once it ended, or after ``wait`` s (``done`` false); shared by the results long poll
    and a run started with ``wait`` (its submit and result in one request). With ``limit``: one page of
    at most that many sinks' outputs from the ``after``-th sink on."""
    row, kept = await unless_draining(request, orchestrator.wait_result(run_id, wait))
    state = RunState(row["state"])
    if state is not RunState.SUCCEEDED:
        return RunResults(run_id=run_id, state=state, done=state.terminal, failed_task=row["failed_task"],
                          error=row["error"])
    entry = await orchestrator.load_workflow(row["workflow_id"])
    sinks = entry.graph.sinks
    if limit is None:
        blobs = kept if kept is not None else store.get_blobs(run_id, sinks)  # kept: a run that just succeeded
        return RunResults(run_id=run_id, state=state, done=True, outputs=merge_sink_outputs(sinks, blobs))
    page = results_page(sinks, entry.shared_outputs, after, limit)
    blobs = kept if kept is not None else store.get_blobs(run_id, page.sinks)
    return RunResults(run_id=run_id, state=state, done=True, outputs=merge_sink_outputs(page.sinks, blobs, page.shared),
                      next_after=page.next_after, sinks=len(sinks))


def merge_sink_outputs(sinks: tuple[str, ...], blobs: dict[str, dict[str, tuple[str, bytes]]],
                       shared: frozenset[str] | None = None) -> dict[str, Any]:
    """The sinks' outputs in one dict; a name two sinks share is kept once per sink as ``task.output``.

    Each value also names its ``task``: a client that refuses to decode one (a sandboxed task's pickle
    of an untrusted type) can then say which task produced it. ``shared``: the names two sinks share,
    when ``sinks`` is one page of them (worked out from every sink's declared outputs, so each page names
    its outputs as the whole answer would).
    """
    if shared is None:
        seen: dict[str, int] = {}
        for sink in sinks:
            for name in blobs.get(sink, {}):
                seen[name] = seen.get(name, 0) + 1
        shared = frozenset(name for name, count in seen.items() if count > 1)
    outputs: dict[str, dict[str, Any]] = {}
    for sink in sinks:
        for name, value in blobs.get(sink, {}).items():
            outputs[f"{sink}.{name}" if name in shared else name] = {**to_wire(*value), "task": sink}
    return outputs


@router.get("/{run_id}/events", response_model=EventList, responses=_errors)
async def get_events(run_id: str, store: StoreDep, caller: Caller, after: int = Query(0, ge=0, le=INT64_MAX),
                     limit: int = Query(1000, ge=1, le=10_000)) -> EventList:
    _run_row(store, run_id, caller)
    events = store.get_events(run_id, after, limit)
    return EventList(run_id=run_id, events=[Event(**e) for e in events],
                     last_seq=events[-1]["seq"] if events else after)


class CustomEvent(BaseModel):
    task: str | None = Field(None, description="the task that sends it")
    data: dict[str, Any] = Field(default_factory=dict, description="any JSON object")


@router.post("/{run_id}/events", status_code=201, response_model=Event, responses={409: {"model": ErrorResponse}})
async def post_event(run_id: str, body: CustomEvent, orchestrator: OrchestratorDep, store: StoreDep,
                     caller: Caller) -> Event:
    """Add a ``custom`` event to a running run (a task's progress, a LangGraph stream write).

    It is stored and streamed like every other event; a finished run answers 409.
    """
    _run_row(store, run_id, caller)
    require_submit(caller)
    seq = orchestrator.emit_custom_event(run_id, body.task, body.data)
    await orchestrator.flush()
    return Event(seq=seq, ts=time.time(), type="custom", task=body.task, data=body.data)


@router.get("/{run_id}/logs", response_model=LogList, responses=_errors)
async def get_logs(run_id: str, store: StoreDep, caller: Caller, task: str | None = None) -> LogList:
    _run_row(store, run_id, caller)
    attempts = [
        AttemptLog(task=a["task"], attempt=a["number"], attempt_id=a["id"], state=a["state"],
                   node_id=a["node_id"], worker_pid=a["worker_pid"], started_at=a["started_at"],
                   finished_at=a["finished_at"], stdout=a["stdout"] or "", stderr=a["stderr"] or "",
                   error=a["error"])
        for a in store.get_attempts(run_id, task)
    ]
    return LogList(run_id=run_id, attempts=attempts)


@router.post("/{run_id}/cancel", response_model=RunPublic, responses=_errors)
async def cancel_run(run_id: str, orchestrator: OrchestratorDep, store: StoreDep, caller: Caller) -> RunPublic:
    """Cancel a run: queued tasks never start, running ones are stopped. A finished run is unchanged."""
    _run_row(store, run_id, caller)
    require_submit(caller)
    orchestrator.cancel_run(run_id)
    await orchestrator.flush()
    return _public(_run_row(store, run_id, caller), _tasks(store, run_id, False))
