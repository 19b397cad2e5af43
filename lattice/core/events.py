"""In-process fan-out of a run's events to its live listeners (WebSockets).

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

    def subscribe(self, run_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_LIMIT)
        self._by_run[run_id].add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]], run_id: str) -> None:
        listeners = self._by_run.get(run_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._by_run[run_id]

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        for queue in tuple(self._by_run.get(run_id, ())):
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
