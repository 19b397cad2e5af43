"""A run's events over WebSocket, in order, resumable: connect with ``?after=SEQ`` to continue."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from lattice.api.deps import websocket_authorized
from lattice.api.state import HeadState

router = APIRouter(tags=["runs"])
_IDLE_PING_S = 15.0


@router.websocket("/runs/{run_id}/events/ws")
async def run_events(websocket: WebSocket, run_id: str, after: int = 0) -> None:
    """Sends each event as JSON ``{seq, ts, type, task, data}``; closes after ``run_finished``.

    Authenticate with ``Authorization: Bearer`` or ``?token=``. Close codes: 4401 bad token,
    4404 unknown run.
    """
    state: HeadState = websocket.app.state.head
    # Accept first, then close with a specific code: a refused handshake would only say "403".
    await websocket.accept()
    if not websocket_authorized(websocket):
        await websocket.close(code=4401, reason="invalid or missing token")
        return
    if state.store.get_run(run_id) is None:
        await websocket.close(code=4404, reason=f"run {run_id!r} not found")
        return
    queue = state.bus.subscribe(run_id)
    last = after
    try:
        # Subscribe first, then replay from the store: nothing committed in between is missed.
        while True:
            backlog = state.store.get_events(run_id, last, 5000)
            for event in backlog:
                await websocket.send_json(event)
                last = event["seq"]
                if event["type"] == "run_finished":
                    return
            if len(backlog) < 5000:
                break
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), _IDLE_PING_S)
            except TimeoutError:
                await websocket.send_json({"type": "ping", "seq": last})
                continue
            if event["type"] == "overflow":
                for missed in state.store.get_events(run_id, last, 100_000):
                    await websocket.send_json(missed)
                    last = missed["seq"]
                continue
            if event["seq"] <= last:
                continue
            event = {k: v for k, v in event.items() if k != "run_id"}
            await websocket.send_json(event)
            last = event["seq"]
            if event["type"] == "run_finished":
                return
    except WebSocketDisconnect:
        pass
    finally:
        state.bus.unsubscribe(queue, run_id)
        with contextlib.suppress(Exception):
            await websocket.close()
