"""What the head keeps of runs that just succeeded, so their results are answered without a store read.

A client that submits a short run with ``wait`` (or long-polls its results) asks for them the moment the
run ends; answering from the store cost two SQLAlchemy queries (the run's row, its sinks' blobs) on the
loop's thread, about a third of the head's CPU per round trip. The loop already holds both: the run's
final state and, as each sink task succeeds, its encoded outputs.

Durability is unchanged: a run enters this table only in the callback that says its final batch (state
and sink outputs, written in the same batch) is committed, the same moment its waiters are woken; an
entry is never the only copy, and a result the table does not have is read from the store as before.

Bounded both ways (runs and bytes), least recently finished out first, and only small results are kept
(:data:`MAX_RUN_BYTES`): a 20,000-sink fan-out's answer is read from the store, not copied into memory.
Only succeeded runs are kept: a failed run's answer carries its stored error, and failures are not the
path whose latency matters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from lattice.wire.attempt import Encoded

#: a run's sink outputs above this many bytes are not kept (read from the store instead)
MAX_RUN_BYTES = 256 * 1024
#: at most this many sink tasks per run are kept: a wide fan-out's results come from the store
MAX_SINKS = 64
#: the table's bounds: this many runs, this many bytes of outputs in all
MAX_RUNS = 2048
MAX_BYTES = 32 * 1024 * 1024

#: task -> output -> (encoding, bytes), as ``Store.get_blobs`` answers
Blobs = dict[str, dict[str, Encoded]]


class SinkOutputs:
    """A running run's sink outputs as its sink tasks succeed (the loop's side); ``None`` once too big."""

    __slots__ = ("_sinks", "blobs", "size")

    def __init__(self, sinks: tuple[str, ...]) -> None:
        self._sinks = frozenset(sinks)
        self.blobs: Blobs | None = {} if len(sinks) <= MAX_SINKS else None
        self.size = 0

    def add(self, task: str, outputs: dict[str, Encoded]) -> None:
        if self.blobs is None or task not in self._sinks:
            return
        self.size += sum(len(data) for _, data in outputs.values())
        if self.size > MAX_RUN_BYTES:
            self.blobs = None
        else:
            self.blobs[task] = {name: (encoding, bytes(data)) for name, (encoding, data) in outputs.items()}


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A succeeded run's answer: the row fields the results route reads, and its sinks' outputs."""

    row: dict[str, object]
    blobs: Blobs
    size: int


class FinishedRuns:
    """The table itself (only the loop's thread touches it)."""

    def __init__(self, max_runs: int = MAX_RUNS, max_bytes: int = MAX_BYTES) -> None:
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._runs: OrderedDict[str, FinishedRun] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run_id: str, workflow_id: str, state: str, sinks: SinkOutputs | None) -> None:
        """Keep a run whose end is committed; call it from the commit callback, never before."""
        if sinks is None or sinks.blobs is None:
            return
        entry = FinishedRun(row={"id": run_id, "workflow_id": workflow_id, "state": state, "failed_task": None,
                                 "error": None}, blobs=sinks.blobs, size=sinks.size)
        old = self._runs.pop(run_id, None)
        if old is not None:
            self._bytes -= old.size
        self._runs[run_id] = entry
        self._bytes += entry.size
        while self._runs and (len(self._runs) > self.max_runs or self._bytes > self.max_bytes):
            _, dropped = self._runs.popitem(last=False)
            self._bytes -= dropped.size

    def get(self, run_id: str) -> FinishedRun | None:
        return self._runs.get(run_id)
