"""Results a ``run(wait=True)`` brought back with its answer, kept for the ``get_results`` that follows.

``run(wait=True)`` asks the head to hold its answer until the run ends and to put the results in it (one
request instead of a submit and a long poll: most of a short run's round trip). ``run`` still returns the
id, so the usual ``get_results(run(...))`` works unchanged and, here, takes the results without a request.
Each kept body is handed out once (a second ``get_results`` asks the head, as always) and only while at
most :data:`KEEP` are kept: a caller that never asks for them does not grow the client's memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

#: most result bodies kept; past it the oldest go (their get_results asks the head, as without wait)
KEEP = 1024


class FinishedRuns:
    """Results bodies by run id; thread-safe, since one client may be shared by threads."""

    def __init__(self, keep: int = KEEP) -> None:
        self._bodies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def keep(self, run_id: str, results: dict[str, Any] | None) -> None:
        """Keep a finished run's results body (one not done yet, or none, is not kept: it is polled)."""
        if not results or not results.get("done"):
            return
        with self._lock:
            self._bodies[run_id] = results
            while len(self._bodies) > self._keep:
                self._bodies.popitem(last=False)

    def take(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._bodies.pop(run_id, None)
