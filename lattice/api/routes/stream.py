"""A run's events over WebSocket, in order, resumable: connect with ``?after=SEQ`` to continue."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from lattice.api.deps import owns, websocket_caller
from lattice.api.state import HeadState
from lattice.wire.tenants import ADMIN_TENANT

router = APIRouter(tags=["runs"])
_IDLE_PING_S = 15.0


@router.websocket("/runs/{run_id}/events/ws")
async def run_events(websocket: WebSocket, run_id: str, after: int = 0) -> None:
    """Sends each event as JSON ``{seq, ts, type, task, data}``; closes after ``run_finished``.

    Authenticate with ``Authorization: Bearer`` or ``?token=``. Close codes: 4401 bad token (also the
    moment the key is revoked), 4404 unknown run (or another tenant's).
    """
    state: HeadState = websocket.app.state.head
    # Accept first, then close with a specific code: a refused handshake would only say "403".
    await websocket.accept()
    caller = websocket_caller(websocket)
    if caller is None:
        await websocket.close(code=4401, reason="invalid or missing token")
        return
    row = state.store.get_run(run_id)
    if row is None or not owns(caller, row.get("tenant")):
        await websocket.close(code=4404, reason=f"run {run_id!r} not found")
        return
    revoked = None
    if state.keys is not None and caller.name != ADMIN_TENANT:
        revoked = asyncio.ensure_future(state.keys.revoked_event(caller.name).wait())
    queue = state.bus.subscribe(run_id)
    last = after
    try:
        # Subscribe first, then replay from the store: nothing committed in between is missed.
        while True:
            backlog = state.store.get_events(run_id, last, 5000)
            for event in backlog:
                if revoked is not None and revoked.done():
                    await websocket.close(code=4401, reason="the key was revoked")
                    return
                await websocket.send_json(event)
                last = event["seq"]
                if event["type"] == "run_finished":
                    return
            if len(backlog) < 5000:
                break
        while True:
            getter = asyncio.ensure_future(queue.get())
            waits = {getter} if revoked is None else {getter, revoked}
            await asyncio.wait(waits, timeout=_IDLE_PING_S, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                if revoked is not None and revoked.done():
                    await websocket.close(code=4401, reason="the key was revoked")
                    return
                await websocket.send_json({"type": "ping", "seq": last})
                continue
            event = getter.result()
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
        if revoked is not None:
            revoked.cancel()
        state.bus.unsubscribe(queue, run_id)
        with contextlib.suppress(Exception):
            await websocket.close()
