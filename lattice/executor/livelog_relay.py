"""The head's end of live logs: a relay actor that workers push batches to, and the thread that reads it.

Workers cannot call the head's loop, and the head should not be called by hundreds of workers directly,
so batches meet in one small async actor on the head's node (:class:`LogRelay`, named
``lattice-live-logs`` in the head's Ray namespace). Why not ``ray.util.queue.Queue``: it bounds items, not
bytes, and its ``put`` does not say whether the item was refused; the relay holds at most ``max_bytes``
and answers each push with whether it took it (a refused batch is counted by the worker and dropped).

:class:`LiveLogReader` is a thread of the head process: it long-polls the relay (``take`` waits up to a
second for batches) and hands each batch, still raw JSON bytes, to ``deliver`` (the head's
``lattice.core.livelogs.LiveLogSink``, which parses and bounds it). A batch is plain bytes all the way, so
the head never unpickles anything a task produced.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from lattice.executor.livelog import RELAY_NAME
from lattice.wire.livelog import MAX_BATCH_BYTES

log = logging.getLogger("lattice.livelog")

RELAY_MAX_BYTES = 32 * 1024 * 1024
TAKE_WAIT_S = 1.0


class LogRelay:
    """An async actor: ``push`` from workers, ``take`` from the head; at most ``max_bytes`` held."""

    def __init__(self, max_bytes: int = RELAY_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._arrived = asyncio.Event()
        self.refused = 0

    async def push(self, data: bytes) -> bool:
        if not isinstance(data, bytes) or len(data) > MAX_BATCH_BYTES or self._bytes + len(data) > self.max_bytes:
            self.refused += 1
            return False
        self._items.append(data)
        self._bytes += len(data)
        self._arrived.set()
        return True

    async def take(self, wait_s: float = TAKE_WAIT_S) -> list[bytes]:
        if not self._items and wait_s > 0:
            try:
                await asyncio.wait_for(self._arrived.wait(), wait_s)
            except TimeoutError:
                pass
        self._arrived.clear()
        items, self._items, self._bytes = list(self._items), deque(), 0
        return items

    async def stats(self) -> dict[str, int]:
        return {"held_bytes": self._bytes, "refused": self.refused}


class LiveLogReader:
    """Starts the relay on the head's node and feeds every batch to ``deliver`` from a thread of its own."""

    def __init__(self, deliver: Callable[[bytes], None], max_bytes: int = RELAY_MAX_BYTES) -> None:
        self._deliver = deliver
        self._max_bytes = max_bytes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.actor: Any = None

    def start(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node_id = ray.get_runtime_context().get_node_id()
        self.actor = ray.remote(LogRelay).options(
            name=RELAY_NAME, get_if_exists=True, num_cpus=0, max_restarts=-1, max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self._max_bytes)
        ray.get(self.actor.take.remote(0), timeout=60)  # up before the first task looks it up
        self._thread = threading.Thread(target=self._run, name="lattice-live-log-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import ray

        while not self._stop.is_set():
            try:
                batches = ray.get(self.actor.take.remote(TAKE_WAIT_S), timeout=TAKE_WAIT_S + 15)
            except Exception as exc:  # noqa: BLE001 - a restarting actor, a shutting-down Ray: try again
                if self._stop.is_set():
                    return
                log.warning("reading live logs failed (%s); retrying", exc)
                self._stop.wait(1.0)
                continue
            for raw in batches:
                try:
                    self._deliver(raw)
                except Exception:
                    log.exception("a live log batch could not be delivered")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TAKE_WAIT_S + 2)
        if self.actor is not None:
            try:
                import ray

                ray.kill(self.actor)
            except Exception:  # noqa: BLE001 - the cluster may be gone already
                pass


__all__ = ["LiveLogReader", "LogRelay"]
