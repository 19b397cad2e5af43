"""The cluster: nodes with their capacity and reservations, totals, and what a joining worker needs."""

from __future__ import annotations

from fastapi import APIRouter

from lattice.api.deps import State
from lattice.wire.http import ClusterResources, JoinInfo, NodeList, NodePublic

router = APIRouter(prefix="/cluster", tags=["cluster"])


@router.get("/nodes", response_model=NodeList)
async def nodes(state: State) -> NodeList:
    return NodeList(nodes=[NodePublic(**n.to_dict()) for n in state.resources.nodes.values()])


@router.get("/resources", response_model=ClusterResources)
async def resources(state: State) -> ClusterResources:
    return ClusterResources(**state.resources.totals(), queued_tasks=state.orchestrator.scheduler.queued())


@router.get("/join", response_model=JoinInfo)
async def join(state: State) -> JoinInfo:
    """What ``lattice start --worker`` needs to join this head's Ray cluster (token-protected)."""
    return JoinInfo(ray_address=state.ray_address, ray_token=state.ray_token, ray_version=state.ray_version)
