"""The scheduler with many runs: picking the run furthest behind is a heap pop, and each round looks only at
the runs whose wait may have changed; both decide what a walk over every run decides.

A scan per placement made ``map`` of 1,000 runs quadratic (half of the head's time went to it), and giving
every waiting run its reason each round took another tenth; neither shortcut may change a decision, a
wait reason or the order of the wait events. :class:`ScanScheduler` is the scheduler with both replaced by
those walks (the code before), and random workloads (pushes, removals, runs ending, rounds with little
room, quotas, both policies) are run through both.
"""

from __future__ import annotations

import random

from lattice.core.scheduler import QueuedTask, Scheduler, WaitChange, _Run, _Tenant
from lattice.wire.resources import ResourceClass, Resources
from lattice.wire.tenants import TenantPolicy, TenantQuota, WaitReason


class ScanScheduler(Scheduler):
    """The reference: the run with the least (virtual time, arrival) among those still in the round."""

    def _pop_least_run(self, tenant: _Tenant, cls: ResourceClass) -> _Run | None:
        best = None
        for run in tenant.runs.values():
            if run.queued[cls] > 0 and run.heaped[cls] is not None and (
                    best is None or (run.vt[cls], run.arrival) < (best.vt[cls], best.arrival)):
                best = run
        if best is not None:
            best.heaped[cls] = None
        return best

    def _note_waiting(self, cls: ResourceClass, placed: set[str], blocked: dict[str, str], refused: set[str],
                      untried: WaitReason) -> None:
        for tenant in self._tenants.values():
            if tenant.queued[cls] <= 0:
                continue
            for run in tenant.runs.values():
                if run.queued[cls] <= 0:
                    continue
                if run.run_id in placed and run.run_id not in blocked and run.run_id not in refused:
                    continue
                if run.run_id in blocked:
                    reason, detail = WaitReason.QUOTA, blocked[run.run_id]
                    kind = f"quota:{detail.split(':', 1)[0]}"
                elif run.run_id in refused:
                    reason, kind = WaitReason.NO_FITTING_NODE, str(WaitReason.NO_FITTING_NODE)
                    detail = f"no node has room for its next {cls} task now"
                else:
                    reason, kind = untried, str(untried)
                    detail = (f"other runs are further behind their fair share of {cls}"
                              if untried is WaitReason.FAIR_SHARE else f"no node has room for its {cls} tasks now")
                run.waiting, run.waiting_detail = reason, detail
                if kind not in run.reported:
                    run.reported.add(kind)
                    self._changes.append(WaitChange(run.run_id, reason, detail))


def task(run: str, name: str, cpu: float, t: float) -> QueuedTask:
    return QueuedTask(key=(run, name), resources=Resources(cpu=cpu), priority=0, enqueued_at=t, run=run)


def waits(s: Scheduler) -> list[tuple[str, str | None, str | None]]:
    return [(run.run_id, run.waiting, run.waiting_detail) for t in s.queues() for run in t.runs]


def test_a_thousand_runs_are_served_round_robin() -> None:
    s = Scheduler()
    for r in range(1000):
        s.add_run(f"r{r}")
        for i in range(3):
            s.push(task(f"r{r}", f"t{i}", 1.0, 0.0))
    order = [p.task.key[0] for p in s.schedule(lambda _: "n1")]
    assert len(order) == 3000
    assert order[:1000] == [f"r{r}" for r in range(1000)]  # every run once before any run twice
    assert sorted(order[1000:2000]) == sorted(f"r{r}" for r in range(1000))


def test_the_heap_decides_as_a_scan_of_every_run_would() -> None:
    for seed in range(80):
        rng = random.Random(seed)
        policy = "fifo" if seed % 4 == 3 else "fair"
        real, ref = Scheduler(max_skips_per_class=4, policy=policy), ScanScheduler(max_skips_per_class=4, policy=policy)
        for s in (real, ref):  # a capped tenant: quota waits too
            s.set_tenant(TenantPolicy(name="b", quota=TenantQuota(max_cpu=2.0, max_running_runs=2)))
        free = {"real": 0.0, "ref": 0.0}
        held: dict[str, list[tuple[tuple[str, str], float]]] = {"real": [], "ref": []}
        tenants = ["admin", "a", "b"]
        runs: list[str] = []
        queued: list[tuple[str, str]] = []
        made = 0
        for step in range(150):
            op = rng.random()
            if op < 0.15 or not runs:
                run = f"r{len(runs)}"
                tenant, weight, priority = rng.choice(tenants), rng.choice([0.5, 1.0, 2.0]), rng.choice([0, 10])
                for s in (real, ref):
                    s.add_run(run, tenant, weight, priority)
                runs.append(run)
            elif op < 0.55:
                run = rng.choice(runs)
                name, cpu = f"t{made}", rng.choice([0.0, 0.5, 1.0, 2.0])
                made += 1
                for s in (real, ref):
                    s.push(task(run, name, cpu, step * 0.01))
                queued.append((run, name))
            elif op < 0.65 and queued:
                key = queued.pop(rng.randrange(len(queued)))
                assert real.remove(key) == ref.remove(key)
            elif op < 0.7 and runs:
                run = runs.pop(rng.randrange(len(runs)))
                for key in [key for key in queued if key[0] == run]:  # as the loop does: dequeued, then ended
                    queued.remove(key)
                    assert real.remove(key) == ref.remove(key)
                for s in (real, ref):
                    s.end_run(run)
            else:
                room = rng.choice([0.0, 1.0, 2.0, 4.0])
                decided = []
                for label, s in (("real", real), ("ref", ref)):
                    free[label] += room

                    def place(item: QueuedTask, label: str = label, free: dict[str, float] = free) -> str | None:
                        if item.resources.cpu <= free[label] + 1e-9:
                            free[label] -= item.resources.cpu
                            return "n1"
                        return None

                    placements = s.schedule(place)
                    for p in placements:
                        held[label].append((p.task.key, p.task.resources.cpu))
                        s.observe(p.task.run, random.Random(str(p.task.key)).choice([0.1, 1.0]))
                    decided.append([p.task.key for p in placements])
                assert decided[0] == decided[1], (seed, step)
                assert real.take_wait_changes() == ref.take_wait_changes(), (seed, step)
                assert waits(real) == waits(ref), (seed, step)
                for key in decided[0]:
                    if key in queued:
                        queued.remove(key)
                if held["real"] and rng.random() < 0.7:  # an attempt ends
                    index = rng.randrange(len(held["real"]))
                    for label, s in (("real", real), ("ref", ref)):
                        key, cpu = held[label].pop(index)
                        free[label] += cpu
                        s.release(key)
            assert real.queued() == ref.queued()
