"""Waits in a handler end with ``503 shutting_down`` once shutdown begins (``lattice.api.draining``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi import FastAPI

from lattice.api.draining import begin_draining, unless_draining
from lattice.api.errors import HTTPError


def _connection(app: FastAPI) -> SimpleNamespace:
    return SimpleNamespace(app=app)  # what unless_draining reads of the request


async def test_a_wait_that_ends_first_gives_its_value() -> None:
    app = FastAPI()

    async def quick() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await unless_draining(_connection(app), quick()) == "done"


async def test_every_wait_in_progress_ends_with_503_when_shutdown_begins() -> None:
    app = FastAPI()
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    waits = [asyncio.ensure_future(unless_draining(_connection(app), forever())) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waits)
    begin_draining(app)
    for wait in waits:
        with pytest.raises(HTTPError) as caught:
            await asyncio.wait_for(wait, 1)
        assert caught.value.status == 503 and caught.value.type == "shutting_down"
    await asyncio.sleep(0)
    assert cancelled == [True, True, True]  # the waits themselves were stopped, not left running


async def test_a_wait_after_shutdown_began_is_refused_at_once() -> None:
    app = FastAPI()
    begin_draining(app)
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(HTTPError) as caught:
        await unless_draining(_connection(app), never)
    assert caught.value.status == 503
