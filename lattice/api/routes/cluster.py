"""The cluster: nodes with their capacity and reservations, totals, and what a joining worker needs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from lattice.api.deps import Caller, State, require_admin
from lattice.wire.http import ClusterResources, JoinInfo, MetricsHistory, NodeList, NodePublic
from lattice.wire.llm import PoolView
from lattice.wire.tenants import ClusterQueues

router = APIRouter(prefix="/cluster", tags=["cluster"])


@router.get("/nodes", response_model=NodeList)
async def nodes(state: State) -> NodeList:
    """Every node: capacity, what Lattice reserved, state, and ``usage``, its live utilization (CPU, memory,
    GPUs) sampled on the node every 2 s (a request reads the latest sample; it never triggers one)."""
    usage = state.node_usage() if state.node_usage is not None else {}
    return NodeList(nodes=[NodePublic(**n.to_dict(), usage=usage.get(n.node_id))
                           for n in state.resources.nodes.values()])


@router.get("/resources", response_model=ClusterResources)
async def resources(state: State) -> ClusterResources:
    return ClusterResources(**state.resources.totals(), queued_tasks=state.orchestrator.scheduler.queued())


@router.get("/queues", response_model=ClusterQueues)
async def queues(state: State, caller: Caller) -> ClusterQueues:
    """Per tenant and per run: what is held, what is queued and why it waits (a tenant sees only its own)."""
    return state.orchestrator.queues(None if caller.is_admin else caller.name)


@router.get("/metrics/history", response_model=MetricsHistory)
async def metrics_history(request: Request) -> MetricsHistory:
    """The last half hour of tasks/s, running tasks, ready tasks per resource class and reserved CPUs,
    sampled by the head every few seconds (in memory: a restarted head starts empty)."""
    return request.app.state.metrics_ring.history()


@router.get("/pools")
async def pools(state: State) -> dict[str, list[PoolView]]:
    """Model pools on the cluster: replicas, nodes, GPU memory leased vs used, load (see ``/llm/pools``)."""
    return {"pools": state.llm.views() if state.llm is not None else []}


@router.get("/join", response_model=JoinInfo)
async def join(state: State, caller: Caller) -> JoinInfo:
    """What ``lattice start --worker`` needs to join this head's Ray cluster (admin only: Ray's token lets
    a machine run anything on the cluster, past every tenant's isolation)."""
    require_admin(caller)
    return JoinInfo(ray_address=state.ray_address, ray_token=state.ray_token, ray_version=state.ray_version)


class DrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(None, ge=0, description="after this, what still runs there moves elsewhere")


@router.post("/nodes/{node}/drain", response_model=NodePublic)
async def drain(node: str, state: State, caller: Caller, body: DrainRequest | None = None) -> NodePublic:
    """Stop placing tasks on a node (its id, a unique prefix, or its IP); admin only."""
    require_admin(caller)
    return NodePublic(**state.orchestrator.drain(node, (body or DrainRequest()).timeout_s).to_dict())
