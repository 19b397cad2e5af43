"""The task catalog: the builtin tasks a spec can name, with their inputs and outputs (the Playground's palette)."""

from __future__ import annotations

from fastapi import APIRouter

from lattice.wire.catalog import BUILTIN_CATALOG, TaskCatalog

router = APIRouter(prefix="/catalog", tags=["catalog"])


@router.get("/tasks", response_model=TaskCatalog)
async def tasks() -> TaskCatalog:
    """Every builtin task with its ports (name, JSON type, required, default) and what it does."""
    return TaskCatalog(tasks=list(BUILTIN_CATALOG))
