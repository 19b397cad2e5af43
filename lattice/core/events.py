"""In-process fan-out of run events to live listeners (WebSockets, waiting clients, the Board).

Events are published only after the orchestrator committed them, so a listener that reconnects can
always fill a gap from the store (``GET .../events?after=SEQ``) and then continue live without loss.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

_QUEUE_LIMIT = 10_000


class EventBus:
    def __init__(self) -> None:
        self._by_run: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._all: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self, run_id: str | None = None) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_LIMIT)
        (self._by_run[run_id] if run_id else self._all).add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]], run_id: str | None = None) -> None:
        if run_id is None:
            self._all.discard(queue)
            return
        listeners = self._by_run.get(run_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._by_run[run_id]

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        for queue in (*self._by_run.get(run_id, ()), *self._all):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A listener this far behind is told so; it reads the gap from the store.
                self._overflowed(queue)

    @staticmethod
    def _overflowed(queue: asyncio.Queue[dict[str, Any]]) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait({"type": "overflow", "seq": -1, "data": {}})
