"""A run's events over WebSocket, in order, resumable: connect with ``?after=SEQ`` to continue.

How a stream ends says what the client should do (``lattice.client.base.EventCursor``):

* ``1000`` — the stream is over: after ``run_finished``, or after the replay of a run that had already
  finished (a client resuming at or past its last event gets the replay, possibly empty, then this);
* ``1011`` — the handler failed; ``1012`` — the head is shutting down: reconnect later, from the last seq;
* ``4401`` bad token (also the moment the caller's key is revoked), ``4404`` unknown run (or another
  tenant's), ``4422`` a bad ``after``: refusals, not to be retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from lattice.api.deps import owns, websocket_caller
from lattice.api.draining import draining_event
from lattice.api.state import HeadState
from lattice.core.states import RunState
from lattice.wire.http import INT64_MAX
from lattice.wire.tenants import ADMIN_TENANT

router = APIRouter(tags=["runs"])
log = logging.getLogger("lattice.api")
_IDLE_PING_S = 15.0
_PAGE = 5000
CLOSE_COMPLETE, CLOSE_ERROR, CLOSE_RESTART = 1000, 1011, 1012


def _after(raw: str | None) -> int | None:
    """``after`` as a sequence number, or None when it is not one (not an integer, negative, past int64)."""
    try:
        value = int(raw or "0")
    except ValueError:
        return None
    return value if 0 <= value <= INT64_MAX else None


@router.websocket("/runs/{run_id}/events/ws")
async def run_events(websocket: WebSocket, run_id: str) -> None:
    """Sends each event as JSON ``{seq, ts, type, task, data}``, then closes (see the module for the codes).

    Authenticate with ``Authorization: Bearer`` or ``?token=``.
    """
    state: HeadState = websocket.app.state.head
    # Accept first, then close with a specific code: a refused handshake would only say "403".
    await websocket.accept()
    caller = websocket_caller(websocket)
    if caller is None:
        await websocket.close(code=4401, reason="invalid or missing token")
        return
    after = _after(websocket.query_params.get("after"))
    if after is None:
        await websocket.close(code=4422, reason=f"after: must be an integer from 0 to {INT64_MAX}")
        return
    row = state.store.get_run(run_id)
    if row is None or not owns(caller, row.get("tenant")):
        await websocket.close(code=4404, reason=f"run {run_id!r} not found")
        return
    if draining_event(websocket.app).is_set():
        await websocket.close(code=CLOSE_RESTART, reason="the head is shutting down")
        return
    revoked = None
    if state.keys is not None and caller.name != ADMIN_TENANT:
        revoked = asyncio.ensure_future(state.keys.revoked_event(caller.name).wait())
    queue = state.bus.subscribe(run_id)
    code, reason = CLOSE_COMPLETE, "stream complete"
    try:
        await _serve(websocket, state, queue, run_id, after, revoked)
    except _ShuttingDown:
        code, reason = CLOSE_RESTART, "the head is shutting down"
    except _Revoked:
        code, reason = 4401, "the key was revoked"
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("event stream of run %s failed", run_id)
        code, reason = CLOSE_ERROR, "the event stream failed; reconnect from the last seq"
    finally:
        if revoked is not None:
            revoked.cancel()
        state.bus.unsubscribe(queue, run_id)
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


class _ShuttingDown(Exception):
    pass


class _Revoked(Exception):
    pass


async def _serve(websocket: WebSocket, state: HeadState, queue: asyncio.Queue[Any], run_id: str, last: int,
                 revoked: asyncio.Future[Any] | None) -> None:
    """Replay from the store, then follow live; returns when the stream is complete."""
    # Subscribe first (the caller did), then read the run's state, then replay: nothing committed in
    # between is missed, and a run that was over before the replay ends with it.
    row = state.store.get_run(run_id)
    finished = row is not None and RunState(row["state"]).terminal
    while True:
        backlog = state.store.get_events(run_id, last, _PAGE)
        for event in backlog:
            if revoked is not None and revoked.done():
                raise _Revoked
            await websocket.send_json(event)
            last = event["seq"]
            if event["type"] == "run_finished":
                return
        if len(backlog) < _PAGE:
            break
    if finished:
        return  # its run_finished was at or before ``after``: the replay was all there is
    draining = asyncio.ensure_future(draining_event(websocket.app).wait())
    getter: asyncio.Future[Any] | None = None
    try:
        while True:
            getter = getter or asyncio.ensure_future(queue.get())
            waits = {getter, draining} if revoked is None else {getter, draining, revoked}
            done, _ = await asyncio.wait(waits, timeout=_IDLE_PING_S, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                event, getter = getter.result(), None
            elif draining in done:
                raise _ShuttingDown
            elif revoked is not None and revoked in done:
                raise _Revoked
            else:
                await websocket.send_json({"type": "ping", "seq": last})
                continue
            if event["type"] == "overflow":
                for missed in state.store.get_events(run_id, last, 100_000):
                    await websocket.send_json(missed)
                    last = missed["seq"]
                    if missed["type"] == "run_finished":
                        return
                continue
            if event["seq"] <= last:
                continue
            event = {k: v for k, v in event.items() if k != "run_id"}
            await websocket.send_json(event)
            last = event["seq"]
            if event["type"] == "run_finished":
                return
    finally:
        draining.cancel()
        if getter is not None:
            getter.cancel()
