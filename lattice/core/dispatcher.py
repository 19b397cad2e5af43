"""The dispatcher: hands placed tasks to the backend as attempts and follows each until it ends.

This is the loop's runner (LangGraph's ``_runner.py`` to the orchestrator's ``_loop.py``): it builds an
attempt's payload, submits it, tells the resource manager the attempt was handed over (does it hold its
cores now, or wait in its node's queue for one?), arms its timer, and when the attempt ends or must be
stopped, frees its capacity and tells the run algorithm. It keeps what only the head's process may hold
for an attempt in flight: the backend's handle, the timer, the reservation. It decides nothing about a
run; every transition is the algorithm's, into the orchestrator's :class:`~lattice.core.algorithm.Effects`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from lattice.core import algorithm
from lattice.core.algorithm import Effects
from lattice.core.backend import Attempt, Backend
from lattice.core.cluster import ResourceManager
from lattice.core.runs import RunExec, attempt_payload
from lattice.core.tracing import NO_TRACING, RunTracing
from lattice.core.workflows import WorkflowEntry
from lattice.wire.attempt import Envelope
from lattice.wire.failures import ErrorInfo, ErrorKind
from lattice.wire.resources import Resources
from lattice.wire.spec import TaskSpec

log = logging.getLogger("lattice.dispatcher")

if TYPE_CHECKING:
    from lattice.core.orchestrator import OrchestratorSettings

#: how long a worker-died error waits for the node's death to be known before it counts as the task's own
#: (Ray's health checks, as Lattice configures them, declare a killed node dead within about 5 s)
SUSPECT_GRACE_S = 12.0

#: a task's function pickle up to this size travels by value in each attempt (inside Ray's own inline limit,
#: 100 KiB); a bigger one is put in the object store once and passed by ref
INLINE_FN_BYTES = 64 * 1024

#: errors that may mean the attempt's node died, which the cluster view confirms (then a ``node_lost`` event)
_MAYBE_NODE_LOSS = (ErrorKind.WORKER_DIED, ErrorKind.NODE_LOST)

#: how the backend's report of an attempt's end reaches the orchestrator: (attempt id, envelope, error)
Report = Callable[[str, Envelope | None, ErrorInfo | None], None]


@dataclass(slots=True, eq=False)
class Inflight:
    """An attempt handed to the backend and not ended yet: what it takes to finish or stop it."""

    run: RunExec
    name: str
    node_id: str
    resources: Resources
    ref: Any
    killable: bool
    timer: asyncio.TimerHandle | None = None
    #: a worker-died error held back while the head finds out whether the attempt's node is dying (then it
    #: is a node loss, not the task's failure): applied when :data:`SUSPECT_GRACE_S` pass with the node alive
    suspect: ErrorInfo | None = None


class Dispatcher:
    def __init__(self, backend: Backend, resources: ResourceManager, settings: OrchestratorSettings, fx: Effects,
                 report: Report, on_timeout: Callable[[str], None],
                 released: Callable[[Hashable], None] = lambda _key: None,
                 observe: Callable[[str, float], None] = lambda _run, _s: None) -> None:
        """``released`` hears of every attempt's end by its scheduler key ``(run_id, task)`` (what its tenant
        holds goes down); ``observe`` of how long a run's task took (what its next ones should cost)."""
        self.backend = backend
        self.resources = resources
        self.settings = settings
        self.fx = fx
        self._report = report
        self._on_timeout = on_timeout
        self._released = released
        self._observe = observe
        self.loop: asyncio.AbstractEventLoop | None = None  # set by the orchestrator when it starts
        self.suspect_grace_s = getattr(settings, "node_loss_grace_s", SUSPECT_GRACE_S)
        #: told the node of an attempt whose worker died (the orchestrator looks at the cluster at once)
        self._suspected: Callable[[str], None] = lambda _node: None
        #: attempts in flight, by attempt id
        self.inflight: dict[str, Inflight] = {}
        #: spans for attempts (the orchestrator's; a no-op unless tracing is configured)
        self.tracing: RunTracing = NO_TRACING

    def dispatch(self, run: RunExec, name: str, node_id: str) -> None:
        """Start a new attempt of a ready task on the node the resource manager reserved it on."""
        spec = run.tasks[name].spec
        fx = self.fx
        attempt_id = algorithm.dispatch(run, name, node_id, fx)
        entry = run.workflow
        level = entry.levels[name]
        killable = spec.timeout is not None and not level.sandboxed  # no sandbox to stop it: kill the worker
        upstream_names = sorted(run.graph.upstream[name])
        r = spec.resources
        refs = run.refs
        payload = attempt_payload(run, name, attempt_id, upstream_names, level, self.settings)
        if self.tracing.enabled:
            payload = dataclasses.replace(payload, trace=self.tracing.attempt_started(
                run.run_id, name, attempt_id, run.tasks[name].attempt, node_id, r, str(level)))
        attempt = Attempt(
            payload=payload,
            fn_ref=self._fn_ref(entry, spec), upstream=[refs[u] for u in upstream_names], resources=r,
            node_id=node_id, gpu_fraction=self.resources.gpu_fraction(node_id, r), killable=killable,
            isolated=run.tasks[name].isolate)
        try:
            ref = self.backend.submit(attempt, partial(self._report, attempt_id))
        except BaseException:
            self.resources.release(node_id, r)
            self._released((run.run_id, name))
            raise
        refs[name] = ref
        inflight = self.inflight[attempt_id] = Inflight(run, name, node_id, r, ref, killable)
        if self.resources.start(node_id, attempt_id, r):
            algorithm.attempt_started(run, name, attempt_id, time.time(), fx)
        else:
            algorithm.attempt_waiting(run, name, fx)
        if spec.timeout is not None:
            grace = self.settings.sandbox_timeout_grace_s if level.sandboxed else 0.0
            inflight.timer = self.loop.call_later(  # type: ignore[union-attr]
                spec.timeout + grace, self._on_timeout, attempt_id)

    def complete(self, inflight: Inflight, attempt_id: str, envelope: Envelope | None,
                 error: ErrorInfo | None) -> None:
        """An attempt (already taken out of :attr:`inflight`) ended: free its cores first, since a waiting
        attempt may take them, then tell the algorithm.

        A worker that died may have died with its node, which Ray declares dead only seconds later: such an
        error is held back (the attempt stays in flight, its capacity held) until the node is known dead
        (:meth:`lose_node`) or :data:`SUSPECT_GRACE_S` pass (:meth:`_resolve_suspect`)."""
        if (error is not None and error.kind in _MAYBE_NODE_LOSS and inflight.suspect is None
                and not error.detail.get("shared_executor") and self.loop is not None):
            inflight.suspect = error
            self.inflight[attempt_id] = inflight
            self.loop.call_later(self.suspect_grace_s, self._resolve_suspect, attempt_id)
            self._suspected(inflight.node_id)
            return
        if inflight.timer is not None:
            inflight.timer.cancel()
        self.started(self.resources.release(inflight.node_id, inflight.resources, attempt_id))
        self._released((inflight.run.run_id, inflight.name))
        finished = algorithm.attempt_finished(inflight.run, inflight.name, attempt_id, envelope, error, time.time(),
                                              self.fx)
        if finished and envelope is not None and not envelope.error and inflight.resources.cpu > 0:
            started_at, finished_at = envelope.started_at, envelope.finished_at
            if started_at and finished_at:
                self.resources.observe(inflight.node_id, finished_at - started_at)
                self._observe(inflight.run.run_id, finished_at - started_at)

    def _resolve_suspect(self, attempt_id: str) -> None:
        """The grace of a held-back worker-died error ran out and the node still lives: the task's failure."""
        inflight = self.inflight.get(attempt_id)
        if inflight is None or inflight.suspect is None:
            return  # its node was lost meanwhile, or the run ended
        self._report(attempt_id, None, inflight.suspect)

    def lose_node(self, node_id: str, address: str, reason: str = "dead") -> dict[str, list[str]]:
        """The node died or left: every attempt in flight there becomes a new attempt elsewhere (the run
        algorithm decides, :func:`~lattice.core.algorithm.node_lost`). Returns run id -> tasks moved."""
        by_run: dict[str, tuple[RunExec, list[tuple[str, str]]]] = {}
        for attempt_id, inflight in list(self.inflight.items()):
            if inflight.node_id != node_id:
                continue
            # nothing to cancel on a lost node (and a frozen one would hang it); and the cores freed there start
            # nothing: an attempt that waited in its queue never ran, so it must not be shown started now
            self.stop(attempt_id, cancel=False, start_waiting=False)
            entry = by_run.setdefault(inflight.run.run_id, (inflight.run, []))
            entry[1].append((inflight.name, attempt_id))
        moved: dict[str, list[str]] = {}
        now = time.time()
        for run_id, (run, attempts) in by_run.items():
            recorded = len(self.fx.attempts)
            try:
                names = algorithm.node_lost(run, node_id, address, attempts, now, self.fx, reason)
            except Exception as exc:  # one run's bug must not leave the other runs' attempts on a dead node
                log.exception("run %s: handling the loss of node %s failed", run_id, node_id)
                if not run.state.terminal:
                    algorithm.fail_internal(run, f"handling the loss of node {node_id} ({address}) failed: "
                                            f"{type(exc).__name__}: {exc}", now, self.fx)
                _record_once(self.fx.attempts, recorded)
                continue
            if names:
                moved[run_id] = names
        return moved

    def time_out(self, attempt_id: str) -> None:
        """The attempt's timer fired while it ran: stop it, then tell the algorithm."""
        inflight = self.inflight[attempt_id]
        self.stop(attempt_id)
        algorithm.attempt_timed_out(inflight.run, inflight.name, attempt_id, time.time(), self.fx)

    def stop(self, attempt_id: str, cancel: bool = True, start_waiting: bool = True) -> None:
        """Stop a live attempt in the backend and free its reservation now; its late result is ignored.
        ``cancel=False``: only forget it (its node is gone); ``start_waiting=False``: the attempts that wait
        on its node for the cores it frees are not shown started (that node is gone too)."""
        inflight = self.inflight.pop(attempt_id, None)
        if inflight is None:
            return
        if inflight.timer is not None:
            inflight.timer.cancel()
            inflight.timer = None
        if inflight.ref is not None and cancel:
            self.backend.cancel(inflight.ref, force=inflight.killable)
        got_cores = self.resources.release(inflight.node_id, inflight.resources, attempt_id)
        if start_waiting:
            self.started(got_cores)
        self._released((inflight.run.run_id, inflight.name))

    def started(self, attempt_ids: Sequence[Hashable]) -> None:
        """Attempts that waited in their node's queue now hold a core (the resource manager's keys are the
        attempt ids given to it in :meth:`dispatch`)."""
        if not attempt_ids:
            return
        now = time.time()
        for attempt_id in cast("Sequence[str]", attempt_ids):
            inflight = self.inflight.get(attempt_id)
            if inflight is not None:
                algorithm.attempt_started(inflight.run, inflight.name, attempt_id, now, self.fx)

    def _fn_ref(self, entry: WorkflowEntry, spec: TaskSpec) -> Any:
        """The function's bytes for the backend, worked out once per distinct function of a workflow.

        A small function (:data:`INLINE_FN_BYTES`, nearly all of them) goes by value: Ray inlines a small
        argument in the task's spec, where a ref to an object put in the store makes every attempt wait
        for that object to be located and read from shared memory before the worker starts it (the worker
        keeps the unpickled function by ``fn_key`` anyway, so the bytes are only read on its first attempt).
        A big one is put in the backend once and passed by ref."""
        function = entry.spec.code_of(spec)
        if function is None:
            return None
        key = entry.code_keys[spec.name]
        ref = entry.fn_refs.get(key)
        if ref is None:
            code = base64.b64decode(function.pickle)
            ref = code if len(code) <= INLINE_FN_BYTES else self.backend.put(code)
            entry.fn_refs[key] = ref
        return ref


def _record_once(rows: list[dict[str, Any]], since: int) -> None:
    """Keep one row per attempt among those recorded from ``since`` on: a run that failed half-way through
    recording its attempts, then was failed whole, records some twice, and a repeated attempt id would make
    the store refuse the whole batch (every run's changes in it), not only this run's."""
    seen: set[Any] = set()
    kept = []
    for row in rows[since:]:
        if row["id"] not in seen:
            seen.add(row["id"])
            kept.append(row)
    rows[since:] = kept
