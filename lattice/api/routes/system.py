"""Health (no token) and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from lattice import __version__
from lattice.api.deps import require_token
from lattice.api.state import HeadState
from lattice.llm.metrics import LLMCollector
from lattice.wire.http import Health

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    state: HeadState = request.app.state.head
    return Health(status="ok", version=__version__, uptime_s=round(time.time() - state.started_at, 3))


@router.get("/metrics", dependencies=[Depends(require_token)], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format: runs by state, tasks dispatched/succeeded/failed, queue and capacity."""
    state: HeadState = request.app.state.head
    registry = CollectorRegistry()
    runs = Gauge("lattice_runs", "runs in the store by state", ["state"], registry=registry)
    for run_state, count in state.store.count_runs_by_state().items():
        runs.labels(run_state).set(count)
    tasks = Gauge("lattice_task_attempts", "task attempts since the head started", ["outcome"], registry=registry)
    for key in ("tasks_dispatched", "tasks_succeeded", "tasks_failed"):
        tasks.labels(key.removeprefix("tasks_")).set(state.orchestrator.stats[key])
    queued = Gauge("lattice_queued_tasks", "ready tasks waiting for capacity", ["resource_class"],
                   registry=registry)
    for cls, count in state.orchestrator.scheduler.queued().items():
        queued.labels(cls).set(count)
    totals = state.resources.totals()
    capacity = Gauge("lattice_cluster_capacity", "cluster capacity", ["resource"], registry=registry)
    used = Gauge("lattice_cluster_used", "capacity reserved by running tasks", ["resource"], registry=registry)
    for resource in ("cpu", "gpu", "memory_mb"):
        capacity.labels(resource).set(totals[resource])
        used.labels(resource).set(totals[f"used_{resource}"])
    Gauge("lattice_active_runs", "runs in progress", registry=registry).set(len(state.orchestrator.runs))
    if state.llm is not None:
        registry.register(LLMCollector(state.llm))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
