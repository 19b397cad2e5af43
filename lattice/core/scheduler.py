"""The scheduler's pure core: ready queues per resource class, shared fairly between tenants and runs.

No Ray, no I/O: tasks go in, a placer says whether a task fits somewhere (and reserves it), and
placements come out. That keeps the policy small enough to test exhaustively (``tests/unit/core``).

Two policies (``--scheduling``):

``fair`` (the default) is start-time fair queuing in two levels, per resource class: first between the
tenants that have ready tasks in the class, then between each tenant's runs. Each tenant and each run has a
*virtual time* per class; the one furthest behind (smallest) goes next, and a placement charges it the
task's cost (the resources it holds times how long the run's tasks are expected to take) divided by its weight.
A tenant or run that starts waiting joins at the class's current virtual clock, so nobody banks credit
while idle and a small run submitted behind a flood gets every other slot at once instead of waiting for
the flood to drain. A run's weight is its own ``weight`` times ``2 ** (priority / 10)``: priority buys a
larger share, not an absolute order.

``fifo`` is the old strict order, for batch users: one queue per class, best score first.

Inside one run (and in ``fifo`` across all of them) tasks are ordered by their score ``priority +
aging_rate * seconds_waited + critical_path_weight * critical_path_length``. Every task ages at the same
rate, so a heap keyed on ``priority - aging_rate * enqueued_at`` is exact. A task that does not fit is set
aside for this round (backfill): it never blocks a task in another class, and a smaller task behind it may
go first.

Quotas (:class:`~lattice.wire.tenants.TenantQuota`) cap what a tenant holds at once, in both policies: a
task that would take its tenant over a cap waits, and so does a run beyond ``max_running_runs``. The
scheduler counts what each tenant and run holds from its own placements until the loop calls
:meth:`Scheduler.release`; every run that has ready tasks and got nothing in a round is given a
:class:`~lattice.wire.tenants.WaitReason`, shown by :meth:`Scheduler.queues` and reported once per kind
by :meth:`Scheduler.take_wait_changes` (the loop turns those into ``run_waiting`` events).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum

from lattice.wire.resources import ResourceClass, Resources
from lattice.wire.tenants import (
    ADMIN_TENANT,
    Held,
    RunQueue,
    TenantPolicy,
    TenantQueue,
    WaitReason,
)

Placer = Callable[["QueuedTask"], str | None]
_Entry = tuple[float, int, "QueuedTask"]
#: a run in its tenant's heap: (virtual time, arrival, a tie-break, the run); live only while ``run.heaped`` is it
_RunEntry = tuple[float, int, int, "_Run"]
_CLASSES = (ResourceClass.GPU, ResourceClass.CPU, ResourceClass.IO)
_EPS = 1e-9
#: the expected duration of a task before any of its run's tasks finished (seconds)
DEFAULT_EXPECTED_S = 1.0
_EWMA = 0.2


class SchedulingPolicy(StrEnum):
    FAIR = "fair"
    FIFO = "fifo"


@dataclass
class QueuedTask:
    key: Hashable
    resources: Resources
    priority: int
    enqueued_at: float
    critical_path: int = 1
    prefetch: bool = False
    #: the run the task belongs to: fair share is between runs (and their tenants); "" is one anonymous run
    run: str = ""


@dataclass(frozen=True)
class Placement:
    task: QueuedTask
    node_id: str


def run_weight(weight: float, priority: int) -> float:
    """A run's share weight: its own weight, doubled per 10 points of priority (clamped to ±100)."""
    return weight * 2.0 ** (max(-100, min(100, priority)) / 10.0)


def _cost_size(r: Resources, cls: ResourceClass) -> float:
    """How much of its class a task holds: GPUs, cores, or one I/O slot."""
    if cls is ResourceClass.GPU:
        return r.gpu if r.gpu > 0 else 0.5
    if cls is ResourceClass.CPU:
        return r.cpu
    return 1.0


@dataclass(slots=True, eq=False)
class _Held:
    tasks: int = 0
    cpu: float = 0.0
    gpu: float = 0.0
    gpu_memory_mb: int = 0

    def add(self, r: Resources, sign: int) -> None:
        self.tasks += sign
        self.cpu = max(0.0, self.cpu + sign * r.cpu)
        self.gpu = max(0.0, self.gpu + sign * r.gpu)
        self.gpu_memory_mb = max(0, self.gpu_memory_mb + sign * r.gpu_memory)

    def public(self) -> Held:
        return Held(tasks=self.tasks, cpu=round(self.cpu, 4), gpu=round(self.gpu, 4),
                    gpu_memory_mb=self.gpu_memory_mb)


@dataclass(slots=True, eq=False)
class _Run:
    run_id: str
    tenant: _Tenant
    weight: float
    arrival: int
    admitted: bool = False
    held: _Held = field(default_factory=_Held)
    expected_s: float | None = None
    queues: dict[ResourceClass, list[_Entry]] = field(default_factory=lambda: {c: [] for c in _CLASSES})
    queued: dict[ResourceClass, int] = field(default_factory=lambda: {c: 0 for c in _CLASSES})
    vt: dict[ResourceClass, float] = field(default_factory=lambda: {c: 0.0 for c in _CLASSES})
    waiting: WaitReason | None = None
    waiting_detail: str | None = None
    #: the kinds of wait already reported as events (each once per run)
    reported: set[str] = field(default_factory=set)
    #: the class whose "others' turn" reason the run's wait shows and that no change has touched since
    #: (None: another reason, or none): such a run is not visited again each round (see ``_note_waiting``)
    settled: ResourceClass | None = None
    #: per class, this run's one live entry in its tenant's heap of runs (None: not in it)
    heaped: dict[ResourceClass, _RunEntry | None] = field(default_factory=lambda: {c: None for c in _CLASSES})


@dataclass(slots=True, eq=False)
class _Tenant:
    policy: TenantPolicy
    arrival: int
    held: _Held = field(default_factory=_Held)
    runs: dict[str, _Run] = field(default_factory=dict)
    running_runs: int = 0
    queued: dict[ResourceClass, int] = field(default_factory=lambda: {c: 0 for c in _CLASSES})
    vt: dict[ResourceClass, float] = field(default_factory=lambda: {c: 0.0 for c in _CLASSES})
    #: the virtual clock of this tenant's runs, per class
    run_clock: dict[ResourceClass, float] = field(default_factory=lambda: {c: 0.0 for c in _CLASSES})
    #: per class, the runs with ready tasks by (virtual time, arrival): picking the run furthest behind is a
    #: heap pop, not a scan of every run (a scan per placement made 1,000 runs of a ``map`` quadratic)
    run_heap: dict[ResourceClass, list[_RunEntry]] = field(default_factory=lambda: {c: [] for c in _CLASSES})


@dataclass(frozen=True)
class WaitChange:
    """A run started waiting for a reason it had not waited for before (an event for the loop to record)."""

    run_id: str
    reason: WaitReason
    detail: str


class Scheduler:
    def __init__(self, aging_rate: float = 1.0, critical_path_weight: float = 0.01,
                 max_skips_per_class: int = 32, policy: SchedulingPolicy | str = SchedulingPolicy.FAIR) -> None:
        self.aging_rate = aging_rate
        self.critical_path_weight = critical_path_weight
        self.max_skips_per_class = max_skips_per_class
        self.policy = SchedulingPolicy(policy)
        # fifo: one heap per class. Entries are (-score, arrival, task): plain tuples compare fast.
        self._queues: dict[ResourceClass, list[_Entry]] = {cls: [] for cls in ResourceClass}
        self._live: dict[Hashable, _Entry] = {}
        self._counter = itertools.count()
        self._tenants: dict[str, _Tenant] = {}
        self._runs: dict[str, _Run] = {}
        #: placed and not released yet: key -> (run id, tenant name, resources)
        self._placed: dict[Hashable, tuple[str, str, Resources]] = {}
        #: the virtual clock of tenants, per class
        self._clock: dict[ResourceClass, float] = {cls: 0.0 for cls in ResourceClass}
        self._expected_s = DEFAULT_EXPECTED_S
        self._changes: list[WaitChange] = []
        #: per class, the runs whose wait reason the next round must look at (all others are settled)
        self._unsettled: dict[ResourceClass, dict[str, _Run]] = {cls: {} for cls in ResourceClass}

    # --- tenants and runs ---------------------------------------------------------------------------

    def set_tenant(self, policy: TenantPolicy) -> None:
        """Add a tenant or change its weight and quota (takes effect in the next round)."""
        tenant = self._tenants.get(policy.name)
        if tenant is None:
            self._tenants[policy.name] = _Tenant(policy, next(self._counter))
        else:
            tenant.policy = policy

    def add_run(self, run_id: str, tenant: str = ADMIN_TENANT, weight: float = 1.0, priority: int = 0) -> None:
        """Register a run before its tasks are pushed (an unregistered run belongs to ``admin``)."""
        owner = self._tenant(tenant)
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(run_id, owner, run_weight(weight, priority), next(self._counter))
            owner.runs[run_id] = run

    def end_run(self, run_id: str) -> None:
        """The run finished: forget it (it no longer counts against ``max_running_runs``)."""
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        for cls in _CLASSES:
            for entry in run.queues[cls]:
                if self._live.get(entry[2].key) is entry:
                    self.remove(entry[2].key)
        tenant = run.tenant
        tenant.runs.pop(run_id, None)
        for cls in _CLASSES:
            self._unsettled[cls].pop(run_id, None)
            run.heaped[cls] = None
            if tenant.queued[cls] == 0:  # every entry left in the heap is stale: let ended runs go
                tenant.run_heap[cls].clear()
        if run.admitted:
            tenant.running_runs = max(0, tenant.running_runs - 1)

    def observe(self, run_id: str, seconds: float) -> None:
        """A task of the run took ``seconds``: what its next tasks are expected to cost."""
        seconds = max(1e-3, seconds)
        self._expected_s += _EWMA * (seconds - self._expected_s)
        run = self._runs.get(run_id)
        if run is not None:
            run.expected_s = seconds if run.expected_s is None else run.expected_s + _EWMA * (seconds - run.expected_s)

    def release(self, key: Hashable) -> None:
        """A placed task's attempt ended (or never started): its tenant and run hold less."""
        placed = self._placed.pop(key, None)
        if placed is None:
            return
        run_id, tenant_name, r = placed
        tenant = self._tenants.get(tenant_name)
        if tenant is not None:
            tenant.held.add(r, -1)
        run = self._runs.get(run_id)
        if run is not None:
            run.held.add(r, -1)

    def _tenant(self, name: str) -> _Tenant:
        tenant = self._tenants.get(name)
        if tenant is None:
            policy = TenantPolicy(name=name) if name != ADMIN_TENANT else TenantPolicy(name=name, role="admin")
            tenant = self._tenants[name] = _Tenant(policy, next(self._counter))
        return tenant

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            self.add_run(run_id)
            run = self._runs[run_id]
        return run

    # --- the queue ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def queued(self) -> dict[str, int]:
        counts = {str(cls): 0 for cls in ResourceClass}
        for _, _, item in self._live.values():
            counts[str(item.resources.resource_class)] += 1
        return counts

    def push(self, task: QueuedTask) -> None:
        if task.key in self._live:
            raise ValueError(f"task {task.key!r} is already queued")
        score = (task.priority - self.aging_rate * task.enqueued_at
                 + self.critical_path_weight * task.critical_path)
        entry = (-score, next(self._counter), task)
        self._live[task.key] = entry
        cls = task.resources.resource_class
        run = self._run(task.run)
        tenant = run.tenant
        if tenant.queued[cls] == 0:  # the tenant starts waiting in this class: it joins at the clock
            tenant.vt[cls] = max(tenant.vt[cls], self._clock[cls])
        if run.queued[cls] == 0:
            run.vt[cls] = max(run.vt[cls], tenant.run_clock[cls])
        tenant.queued[cls] += 1
        run.queued[cls] += 1
        if run.queued[cls] == 1:
            self._unsettled[cls][run.run_id] = run
        if self.policy is SchedulingPolicy.FAIR:
            heapq.heappush(run.queues[cls], entry)
            if run.queued[cls] == 1 or run.heaped[cls] is None:  # it starts waiting: at its (new) virtual time
                self._heap_run(run, cls)
        else:
            heapq.heappush(self._queues[cls], entry)

    def remove(self, key: Hashable) -> bool:
        """Forget a queued task (lazy: its heap entry is dropped when it surfaces)."""
        entry = self._live.pop(key, None)
        if entry is None:
            return False
        self._unqueued(entry[2])
        return True

    def _unqueued(self, task: QueuedTask) -> None:
        run = self._runs.get(task.run)
        if run is None:
            return
        cls = task.resources.resource_class
        run.queued[cls] -= 1
        run.tenant.queued[cls] -= 1

    # --- scheduling ---------------------------------------------------------------------------------

    def schedule(self, place: Placer, limit: int | None = None) -> list[Placement]:
        """Place as many queued tasks as fit: GPU tasks first, then CPU, then I/O."""
        placements: list[Placement] = []
        for cls in _CLASSES:
            if limit is not None and len(placements) >= limit:
                break
            if self.policy is SchedulingPolicy.FAIR:
                self._schedule_fair(cls, place, limit, placements)
            else:
                self._schedule_fifo(cls, place, limit, placements)
        return placements

    def _schedule_fifo(self, cls: ResourceClass, place: Placer, limit: int | None,
                       placements: list[Placement]) -> None:
        queue = self._queues[cls]
        skipped: list[_Entry] = []
        blocked: dict[str, str] = {}
        refused: set[str] = set()
        placed: set[str] = set()
        while queue and len(skipped) < self.max_skips_per_class:
            if limit is not None and len(placements) >= limit:
                break
            entry = heapq.heappop(queue)
            item = entry[2]
            if self._live.get(item.key) is not entry:
                continue  # removed or re-queued since
            run = self._run(item.run)
            why = self._quota_block(run, item.resources)
            if why is not None:
                skipped.append(entry)
                blocked[run.run_id] = why
                continue
            node_id = place(item)
            if node_id is None:
                skipped.append(entry)
                refused.add(run.run_id)
                continue
            self._placed_one(run, entry, cls, node_id, placements, charge=False)
            placed.add(run.run_id)
        for entry in skipped:
            heapq.heappush(queue, entry)
        self._note_waiting(cls, placed, blocked, refused, untried=WaitReason.NO_FITTING_NODE)

    def _heap_run(self, run: _Run, cls: ResourceClass) -> None:
        """Put the run in its tenant's heap at its virtual time now (an older entry of it goes stale)."""
        entry = (run.vt[cls], run.arrival, next(self._counter), run)
        run.heaped[cls] = entry
        heapq.heappush(run.tenant.run_heap[cls], entry)

    def _pop_least_run(self, tenant: _Tenant, cls: ResourceClass) -> _Run | None:
        """Take the tenant's run with ready tasks furthest behind its share (earliest arrival on a tie) out of
        the heap; stale entries (a run that moved on, emptied or ended) are dropped on the way."""
        heap = tenant.run_heap[cls]
        while heap:
            entry = heapq.heappop(heap)
            run = entry[3]
            if run.heaped[cls] is not entry:
                continue
            run.heaped[cls] = None
            if run.queued[cls] > 0 and tenant.runs.get(run.run_id) is run:
                return run
        return None

    def _schedule_fair(self, cls: ResourceClass, place: Placer, limit: int | None,
                       placements: list[Placement]) -> None:
        tenants = [t for t in self._tenants.values() if t.queued[cls] > 0]
        if not tenants:
            return
        skipped: dict[str, list[_Entry]] = {}
        out_tenants: set[str] = set()
        blocked: dict[str, str] = {}
        refused: set[str] = set()
        placed: set[str] = set()
        skips = 0
        taken: list[_Run] = []  # out of their tenants' heaps this round; back in at its end
        run: _Run | None = None  # kept while its tasks are refused: its virtual time has not moved
        while skips < self.max_skips_per_class:
            if limit is not None and len(placements) >= limit:
                break
            if run is None:
                tenant = _least_tenant(tenants, cls, out_tenants)
                if tenant is None:
                    break
                run = self._pop_least_run(tenant, cls)
                if run is None:
                    out_tenants.add(tenant.policy.name)
                    continue
                taken.append(run)
            queue = run.queues[cls]
            entry = None
            while queue:
                candidate = heapq.heappop(queue)
                if self._live.get(candidate[2].key) is candidate:
                    entry = candidate
                    break
            if entry is None:  # what is left of the run was set aside this round (back in its heap at the end)
                run = None
                continue
            item = entry[2]
            why = self._quota_block(run, item.resources)
            if why is not None:
                skipped.setdefault(run.run_id, []).append(entry)
                blocked[run.run_id] = why
                skips += 1
                if not why.startswith("max_running_runs"):  # else only this run waits (for admission)
                    out_tenants.add(run.tenant.policy.name)  # the tenant is at a cap for this class
                run = None
                continue
            node_id = place(item)
            if node_id is None:  # backfill: the same run's next task may be smaller
                skipped.setdefault(run.run_id, []).append(entry)
                refused.add(run.run_id)
                skips += 1
                continue
            self._placed_one(run, entry, cls, node_id, placements, charge=True)
            placed.add(run.run_id)
            if run.queued[cls] > 0:
                self._heap_run(run, cls)  # at its new virtual time: it competes again this round
                taken.pop()
            run = None
        for run_id, entries in skipped.items():
            run = self._runs.get(run_id)
            if run is not None:
                for entry in entries:
                    heapq.heappush(run.queues[cls], entry)
        for run in taken:
            if run.heaped[cls] is None and run.queued[cls] > 0 and self._runs.get(run.run_id) is run:
                self._heap_run(run, cls)
        self._note_waiting(cls, placed, blocked, refused, untried=WaitReason.FAIR_SHARE)

    def _placed_one(self, run: _Run, entry: _Entry, cls: ResourceClass, node_id: str, placements: list[Placement],
                    charge: bool) -> None:
        item = entry[2]
        del self._live[item.key]
        tenant = run.tenant
        run.queued[cls] -= 1
        tenant.queued[cls] -= 1
        if charge:
            cost = _cost_size(item.resources, cls) * (run.expected_s or self._expected_s)
            tenant.run_clock[cls] = max(tenant.run_clock[cls], run.vt[cls])
            self._clock[cls] = max(self._clock[cls], tenant.vt[cls])
            run.vt[cls] += cost / run.weight
            tenant.vt[cls] += cost / tenant.policy.weight
        if not run.admitted:
            run.admitted = True
            tenant.running_runs += 1
        run.held.add(item.resources, 1)
        tenant.held.add(item.resources, 1)
        self._placed[item.key] = (run.run_id, tenant.policy.name, item.resources)
        self._set_waiting(run, None, None, None)
        placements.append(Placement(item, node_id))

    def _quota_block(self, run: _Run, r: Resources) -> str | None:
        """Why the tenant's quota keeps this task waiting now, or None."""
        tenant = run.tenant
        quota = tenant.policy.quota
        held = tenant.held
        name = tenant.policy.name
        if quota.max_running_runs is not None and not run.admitted and tenant.running_runs >= quota.max_running_runs:
            return (f"max_running_runs: tenant {name!r} has {tenant.running_runs} of {quota.max_running_runs} "
                    "runs running; this run starts when one ends")
        if quota.max_cpu is not None and r.cpu > 0 and held.cpu + r.cpu > quota.max_cpu + _EPS:
            return (f"max_cpu: tenant {name!r} holds {held.cpu:g} of {quota.max_cpu:g} CPU; the task needs "
                    f"{r.cpu:g}")
        if quota.max_gpu is not None and r.gpu > 0 and held.gpu + r.gpu > quota.max_gpu + _EPS:
            return (f"max_gpu: tenant {name!r} holds {held.gpu:g} of {quota.max_gpu:g} GPU; the task needs "
                    f"{r.gpu:g}")
        if (quota.max_gpu_memory_mb is not None and r.gpu_memory > 0
                and held.gpu_memory_mb + r.gpu_memory > quota.max_gpu_memory_mb):
            return (f"max_gpu_memory: tenant {name!r} holds {held.gpu_memory_mb} of {quota.max_gpu_memory_mb} MB "
                    f"of GPU memory; the task needs {r.gpu_memory}")
        return None

    def _set_waiting(self, run: _Run, reason: WaitReason | None, detail: str | None,
                     settled: ResourceClass | None) -> None:
        """Change the run's wait; a class whose settled reason this overwrites must look at the run again."""
        if run.settled is not None and run.settled is not settled:
            if run.queued[run.settled] > 0:
                self._unsettled[run.settled][run.run_id] = run
        run.waiting, run.waiting_detail, run.settled = reason, detail, settled

    def _note_waiting(self, cls: ResourceClass, placed: set[str], blocked: dict[str, str], refused: set[str],
                      untried: WaitReason) -> None:
        """Give every run that still has ready tasks in the class its reason: what stopped its tasks this round
        (quota, no node with room), else, if it got nothing, the others' fair share (``untried``).

        Only the runs this round touched and those not settled yet are visited: a run that already shows the
        others' turn for this class, untouched since, would only be given it again. (Visiting every run each
        round cost a tenth of the head's time with the 1,000 runs of a ``map``.) They are visited in the order
        of a walk over every tenant and run, so the wait events come in the same order as from that walk.
        """
        unsettled = self._unsettled[cls]
        for run_id in itertools.chain(placed, blocked, refused):
            run = self._runs.get(run_id)
            if run is not None:
                unsettled[run_id] = run
        if not unsettled:
            return
        for run in sorted(unsettled.values(), key=_walk_order):
            if run.queued[cls] <= 0:
                del unsettled[run.run_id]
                continue
            if run.run_id in placed and run.run_id not in blocked and run.run_id not in refused:
                continue  # served this round; what it still has queued waits its turn (looked at next round)
            settled = None
            if run.run_id in blocked:
                reason, detail = WaitReason.QUOTA, blocked[run.run_id]
                kind = f"quota:{detail.split(':', 1)[0]}"
            elif run.run_id in refused:
                reason, kind = WaitReason.NO_FITTING_NODE, str(WaitReason.NO_FITTING_NODE)
                detail = f"no node has room for its next {cls} task now"
            else:
                reason, kind, settled = untried, str(untried), cls
                detail = (f"other runs are further behind their fair share of {cls}"
                          if untried is WaitReason.FAIR_SHARE else f"no node has room for its {cls} tasks now")
                del unsettled[run.run_id]
            self._set_waiting(run, reason, detail, settled)
            if kind not in run.reported:
                run.reported.add(kind)
                self._changes.append(WaitChange(run.run_id, reason, detail))

    def take_wait_changes(self) -> list[WaitChange]:
        """Waits not reported yet (each kind once per run), for the loop to record as events."""
        changes, self._changes = self._changes, []
        return changes

    # --- views --------------------------------------------------------------------------------------

    def queues(self, tenant: str | None = None) -> list[TenantQueue]:
        """Per tenant and per run: what is held, what is queued and why it waits (``tenant``: only that one)."""
        out: list[TenantQueue] = []
        for t in self._tenants.values():
            if tenant is not None and t.policy.name != tenant:
                continue
            runs = []
            for run in t.runs.values():
                waiting = any(run.queued[c] > 0 for c in _CLASSES)
                runs.append(RunQueue(
                    run_id=run.run_id, weight=round(run.weight, 6), held=run.held.public(),
                    queued={str(c): run.queued[c] for c in _CLASSES}, admitted=run.admitted,
                    waiting=run.waiting if waiting else None, waiting_detail=run.waiting_detail if waiting else None))
            out.append(TenantQueue(
                tenant=t.policy.name, weight=t.policy.weight, quota=t.policy.quota, held=t.held.public(),
                running_runs=t.running_runs, queued={str(c): t.queued[c] for c in _CLASSES}, runs=runs))
        return out


def _walk_order(run: _Run) -> tuple[int, int]:
    """Where a walk over every tenant (in arrival order) and its runs (in arrival order) meets the run."""
    return run.tenant.arrival, run.arrival


def _least_tenant(tenants: list[_Tenant], cls: ResourceClass, out: set[str]) -> _Tenant | None:
    """The tenant with ready tasks furthest behind its share of the class (the earliest to arrive on a tie)."""
    if len(tenants) == 1:  # the common case: one tenant
        only = tenants[0]
        return only if only.queued[cls] > 0 and only.policy.name not in out else None
    best: _Tenant | None = None
    for t in tenants:
        if t.queued[cls] > 0 and t.policy.name not in out and (
                best is None or (t.vt[cls], t.arrival) < (best.vt[cls], best.arrival)):
            best = t
    return best

