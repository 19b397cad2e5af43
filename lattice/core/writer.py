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
#: seconds between attempts to commit what a store that refused writes (a full disk) still owes
RETRY_S = 1.0


def _transient(exc: BaseException) -> bool:
    """A refusal the store may get over by itself (disk full, database locked or unreachable), as opposed
    to a batch that can never commit (a bug): the former is retried, the latter fails its runs."""
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError | OSError)


class StoreWriter:
    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="lattice-store-writer", daemon=True)
        self.commits = 0
        #: why the store refuses writes now (None while it takes them): new runs get 503 meanwhile
        self.refusing: str | None = None
        self._thread.start()

    def submit(self, batch: Batch, callback: Callback) -> None:
        self._queue.put((batch, callback))

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        owed: list[tuple[Batch, Callback]] = []  # refused by the store: retried, in order, before anything new
        while True:
            try:
                item = self._queue.get(timeout=RETRY_S) if owed else self._queue.get()
            except queue.Empty:
                item = None
            stop = item is _STOP
            items = [*owed] + ([] if stop or item is None else [item])
            while not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    items.append(more)
            owed = self._commit(items, give_up=stop) if items else []  # type: ignore[arg-type]
            if stop:
                return

    def _commit(self, items: list[tuple[Batch, Callback]], give_up: bool = False) -> list[tuple[Batch, Callback]]:
        """Commit the batches as one transaction; returns them when the store refused for now (kept, in
        order, to retry), else [] once each callback is called (with the error of a batch that never can)."""
        merged = Batch()
        for batch, _ in items:
            merged.merge(batch)
        error: BaseException | None = None
        try:
            self.store.commit(merged)
            self.commits += 1
            if self.refusing is not None:
                log.warning("the store takes writes again; committed what it owed (%d batch(es))", len(items))
                self.refusing = None
        except Exception as exc:
            if _transient(exc) and not give_up:
                if self.refusing is None:
                    log.error("the store refuses writes (%s); keeping %d batch(es) to commit when it recovers",
                              exc, len(items))
                self.refusing = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return items
            log.exception("committing a batch of %d event(s) failed", len(merged.event_rows))
            error = exc
        for _, callback in items:
            try:
                self.loop.call_soon_threadsafe(callback, error)
            except RuntimeError:  # the loop is closed: the head is shutting down
                return []
        return []
