"""Health (no token) and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lattice import __version__
from lattice.api.deps import token_required
from lattice.api.state import HeadState
from lattice.wire.http import Health

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    """Needs no token. ``version`` is the head's Lattice version (clients compare it with theirs)."""
    state: HeadState = request.app.state.head
    return Health(status="ok", version=__version__, uptime_s=round(time.time() - state.started_at, 3))


@router.get("/metrics", dependencies=[Depends(token_required)], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format, from the registry the head built once (``lattice.api.metrics``): every
    number is kept in memory, so a scrape does not touch the store."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
