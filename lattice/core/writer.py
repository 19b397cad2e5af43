"""Group commit: one thread writes the orchestrator's batches to the store, in order.

The orchestrator's loop hands over a :class:`~lattice.core.store.Batch` and goes on dispatching; the
writer merges every batch that queued up during its previous commit into one transaction (a group
commit), then calls each batch's callback on the loop, which is when the changes are announced.
So under load one commit serves many tasks, and the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

from lattice.core.store import Batch, Store

log = logging.getLogger("lattice.store")

Callback = Callable[[BaseException | None], None]
_STOP = object()


class StoreWriter:
    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="lattice-store-writer", daemon=True)
        self._thread.start()
        self.commits = 0

    def submit(self, batch: Batch, callback: Callback) -> None:
        self._queue.put((batch, callback))

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            stop = item is _STOP
            items = [] if stop else [item]
            while not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    items.append(more)
            if items:
                self._commit(items)  # type: ignore[arg-type]
            if stop:
                return

    def _commit(self, items: list[tuple[Batch, Callback]]) -> None:
        merged = Batch()
        for batch, _ in items:
            merged.merge(batch)
        error: BaseException | None = None
        try:
            self.store.commit(merged)
            self.commits += 1
        except Exception as exc:
            log.exception("committing a batch of %d event(s) failed", len(merged.event_rows))
            error = exc
        for _, callback in items:
            try:
                self.loop.call_soon_threadsafe(callback, error)
            except RuntimeError:  # the loop is closed: the head is shutting down
                return
