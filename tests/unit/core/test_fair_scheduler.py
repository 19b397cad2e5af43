"""The fair-share policy of the pure scheduler: between tenants, then runs; weights, priority, quotas.

Everything here is the scheduler alone with a tiny placer (no Ray, no loop): a round of ``schedule`` is
what one orchestrator step asks for, and ``release`` is an attempt ending.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from lattice.core.scheduler import QueuedTask, Scheduler, SchedulingPolicy, run_weight
from lattice.wire.resources import ResourceClass, Resources
from lattice.wire.tenants import TenantPolicy, TenantQuota, WaitReason


def q(run, name, cpu=1.0, gpu=0.0, priority=0, t=0.0, gpu_memory=0):
    return QueuedTask(key=(run, name), resources=Resources(cpu=cpu, gpu=gpu, gpu_memory=gpu_memory),
                      priority=priority, enqueued_at=t, run=run)


class Slots:
    """A cluster of ``cpu`` cores and ``gpu`` GPUs; placements hold them until ``free``."""

    def __init__(self, cpu, gpu=0.0):
        self.cpu, self.gpu = cpu, gpu
        self.holding = {}

    def __call__(self, task):
        r = task.resources
        if r.cpu <= self.cpu + 1e-9 and r.gpu <= self.gpu + 1e-9:
            self.cpu -= r.cpu
            self.gpu -= r.gpu
            self.holding[task.key] = r
            return "n1"
        return None

    def free(self, key):
        r = self.holding.pop(key)
        self.cpu += r.cpu
        self.gpu += r.gpu


def flood(s, run, n, tenant="admin", weight=1.0, priority=0, cpu=1.0, t=0.0):
    s.add_run(run, tenant, weight, priority)
    for i in range(n):
        s.push(q(run, f"t{i}", cpu=cpu, t=t, priority=priority))


def simulate(s, slots, steps, finish_per_step=None):
    """Run ``steps`` rounds: each round places what fits, then the oldest placement of each slot ends.

    Returns the order in which runs got placements."""
    order = []
    running = []
    for _ in range(steps):
        for p in s.schedule(slots):
            order.append(p.task.run)
            running.append(p.task.key)
        ending = running[: finish_per_step or len(running)]
        running = running[len(ending):]
        for key in ending:
            slots.free(key)
            s.release(key)
    return order


def test_a_small_run_behind_a_flood_is_served_at_once():
    s = Scheduler()
    slots = Slots(cpu=2)
    flood(s, "big", 100)
    simulate(s, slots, 5, finish_per_step=2)  # the big run has been going for a while
    flood(s, "small", 2, t=1.0)
    order = simulate(s, slots, 2, finish_per_step=2)
    assert order[:4].count("small") == 2, order


def test_fifo_keeps_the_old_strict_order():
    s = Scheduler(policy="fifo")
    slots = Slots(cpu=2)
    flood(s, "big", 20)
    flood(s, "small", 2, t=1.0)  # younger: under fifo it waits for the whole flood
    order = simulate(s, slots, 20, finish_per_step=2)
    assert order.index("small") == 20
    assert s.policy is SchedulingPolicy.FIFO


@pytest.mark.parametrize("runs", [2, 3, 5])
def test_equal_runs_share_equally(runs):
    s = Scheduler()
    slots = Slots(cpu=2)
    for r in range(runs):
        flood(s, f"r{r}", 200)
    order = simulate(s, slots, 60, finish_per_step=2)
    counts = Counter(order)
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_run_weights_set_the_shares():
    s = Scheduler()
    slots = Slots(cpu=4)
    flood(s, "heavy", 500, weight=3.0)
    flood(s, "light", 500, weight=1.0)
    counts = Counter(simulate(s, slots, 100, finish_per_step=4))
    assert counts["heavy"] / counts["light"] == pytest.approx(3.0, rel=0.05)


def test_priority_is_a_weight_not_an_absolute_order():
    s = Scheduler()
    slots = Slots(cpu=2)
    flood(s, "urgent", 300, priority=10)  # twice the share
    flood(s, "normal", 300, priority=0)
    counts = Counter(simulate(s, slots, 90, finish_per_step=2))
    assert counts["normal"] > 0  # never starved
    assert counts["urgent"] / counts["normal"] == pytest.approx(2.0, rel=0.05)
    assert run_weight(1.0, 10) == pytest.approx(2.0) and run_weight(1.0, -10) == pytest.approx(0.5)


def test_fair_share_is_between_tenants_first_then_their_runs():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="a"))
    s.set_tenant(TenantPolicy(name="b"))
    slots = Slots(cpu=2)
    for r in range(4):  # tenant a has four runs, tenant b one: each tenant still gets half
        flood(s, f"a{r}", 100, tenant="a")
    flood(s, "b0", 100, tenant="b")
    counts = Counter(simulate(s, slots, 80, finish_per_step=2))
    a = sum(v for k, v in counts.items() if k.startswith("a"))
    assert a == counts["b0"]
    assert max(counts[f"a{r}"] for r in range(4)) - min(counts[f"a{r}"] for r in range(4)) <= 1


def test_tenant_weights():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="gold", weight=4))
    s.set_tenant(TenantPolicy(name="basic", weight=1))
    slots = Slots(cpu=5)
    flood(s, "g", 1000, tenant="gold")
    flood(s, "b", 1000, tenant="basic")
    counts = Counter(simulate(s, slots, 100, finish_per_step=5))
    assert counts["g"] / counts["b"] == pytest.approx(4.0, rel=0.05)


def test_cost_counts_how_long_a_run_s_tasks_take():
    """A run whose tasks take 4x longer gets a quarter as many placements: equal core-seconds."""
    s = Scheduler()
    slots = Slots(cpu=2)
    flood(s, "long", 400)
    flood(s, "short", 400)
    s.observe("long", 4.0)
    s.observe("short", 1.0)
    counts = Counter(simulate(s, slots, 100, finish_per_step=2))
    assert counts["short"] / counts["long"] == pytest.approx(4.0, rel=0.1)


def test_an_idle_run_banks_no_credit():
    """A run that waited idle does not get to monopolise the cluster when it comes back."""
    s = Scheduler()
    slots = Slots(cpu=2)
    flood(s, "steady", 1000)
    s.add_run("late")
    simulate(s, slots, 50, finish_per_step=2)
    for i in range(100):
        s.push(q("late", f"t{i}", t=50))
    order = simulate(s, slots, 10, finish_per_step=2)
    assert Counter(order)["late"] == pytest.approx(10, abs=1)


def _share(s, run_id):
    """The run's weighted share of placements among everything backlogged now (tenant share x run share)."""
    backlogged = [t for t in s._tenants.values() if t.queued[ResourceClass.CPU] > 0]
    run = s._runs[run_id]
    tenant_share = run.tenant.policy.weight / sum(t.policy.weight for t in backlogged)
    runs = [r for r in run.tenant.runs.values() if r.queued[ResourceClass.CPU] > 0]
    return tenant_share * run.weight / sum(r.weight for r in runs), len(runs) + len(backlogged)


def test_starvation_freedom_under_random_arrivals():
    """Every run with ready tasks is served within a bound set by its weighted share, whatever arrives."""
    rng = random.Random(7)
    s = Scheduler()
    for name in ("t0", "t1", "t2"):
        s.set_tenant(TenantPolicy(name=name, weight=rng.choice([0.5, 1, 3])))
    slots = Slots(cpu=3)
    names = itertools.count()
    running = []
    waiting_since: dict[str, tuple[int, float, int]] = {}  # run -> (placements then, least share, most flows)
    placed_total = 0
    checked = 0
    for step in range(600):
        if rng.random() < 0.3:
            run = f"run{next(names)}"
            s.add_run(run, rng.choice(["t0", "t1", "t2"]), rng.choice([0.5, 1, 2]), rng.choice([-10, 0, 10]))
            for i in range(rng.randint(1, 30)):
                s.push(q(run, f"x{i}", t=step))
            waiting_since[run] = (placed_total, 1.0, 0)
        for p in s.schedule(slots):
            placed_total += 1
            running.append(p.task.key)
            waiting_since[p.task.run] = (placed_total, 1.0, 0)
        rng.shuffle(running)
        for key in running[: rng.randint(0, len(running))]:
            running.remove(key)
            slots.free(key)
            s.release(key)
        live_runs = {key[0] for key in running}
        for run, (since, least, flows) in list(waiting_since.items()):
            if not sum(s._runs[run].queued.values()):
                if run not in live_runs:
                    s.end_run(run)
                    del waiting_since[run]
                continue
            share, now_flows = _share(s, run)
            least, flows = min(least, share), max(flows, now_flows)
            waiting_since[run] = (since, least, flows)
            assert placed_total - since <= 2 / least + 2 * flows, f"{run} starved since placement {since}"
            checked += 1
    assert placed_total > 400 and checked > 1000


def test_cpu_quota_caps_what_a_tenant_holds_even_alone():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="capped", quota=TenantQuota(max_cpu=1)))
    slots = Slots(cpu=4)
    flood(s, "r", 10, tenant="capped")
    placed = s.schedule(slots)
    assert len(placed) == 1 and slots.cpu == 3
    [queue] = [t for t in s.queues() if t.tenant == "capped"]
    assert queue.held.cpu == 1 and queue.runs[0].waiting is WaitReason.QUOTA
    assert "max_cpu" in queue.runs[0].waiting_detail
    [change] = s.take_wait_changes()
    assert change.reason is WaitReason.QUOTA and change.run_id == "r"
    s.release(placed[0].task.key)
    slots.free(placed[0].task.key)
    assert len(s.schedule(slots)) == 1
    assert s.take_wait_changes() == []  # the same wait is reported once


def test_a_capped_tenant_leaves_the_rest_to_others():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="capped", quota=TenantQuota(max_cpu=1)))
    s.set_tenant(TenantPolicy(name="free"))
    slots = Slots(cpu=4)
    flood(s, "c", 10, tenant="capped")
    flood(s, "f", 10, tenant="free")
    assert Counter(p.task.run for p in s.schedule(slots)) == {"c": 1, "f": 3}


def test_gpu_and_gpu_memory_quotas():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="g", quota=TenantQuota(max_gpu=1, max_gpu_memory_mb=1000)))
    slots = Slots(cpu=8, gpu=4)
    s.add_run("r", "g")
    for i in range(3):
        s.push(q("r", f"g{i}", cpu=1, gpu=1))
    assert len(s.schedule(slots)) == 1
    s2 = Scheduler()
    s2.set_tenant(TenantPolicy(name="m", quota=TenantQuota(max_gpu_memory_mb=1000)))
    s2.add_run("r", "m")
    for i in range(3):
        s2.push(q("r", f"m{i}", cpu=1, gpu=0.1, gpu_memory=600))
    assert len(s2.schedule(Slots(cpu=8, gpu=4))) == 1
    assert "max_gpu_memory" in s2.queues("m")[0].runs[0].waiting_detail


def test_max_running_runs_admits_the_next_run_when_one_ends():
    s = Scheduler()
    s.set_tenant(TenantPolicy(name="t", quota=TenantQuota(max_running_runs=2)))
    slots = Slots(cpu=8)
    for r in ("r1", "r2", "r3"):
        flood(s, r, 2, tenant="t")
    placed = s.schedule(slots)
    assert {p.task.run for p in placed} == {"r1", "r2"}
    [tenant] = s.queues("t")
    third = next(r for r in tenant.runs if r.run_id == "r3")
    assert not third.admitted and third.waiting is WaitReason.QUOTA and "max_running_runs" in third.waiting_detail
    for p in placed:
        s.release(p.task.key)
        slots.free(p.task.key)
    assert s.schedule(slots) == []  # r1 and r2 are still running runs (between their tasks)
    s.end_run("r1")
    assert {p.task.run for p in s.schedule(slots)} == {"r3"}


def test_quotas_hold_under_fifo_too():
    s = Scheduler(policy="fifo")
    s.set_tenant(TenantPolicy(name="capped", quota=TenantQuota(max_cpu=2)))
    flood(s, "r", 10, tenant="capped")
    assert len(s.schedule(Slots(cpu=8))) == 2
    assert s.queues("capped")[0].runs[0].waiting is WaitReason.QUOTA


def test_backfill_still_works_inside_and_across_runs():
    s = Scheduler()
    slots = Slots(cpu=2)
    s.add_run("a")
    s.push(q("a", "big", cpu=4, priority=10))
    s.push(q("a", "small", cpu=1))
    s.add_run("b")
    s.push(q("b", "small", cpu=1))
    placed = {p.task.key for p in s.schedule(slots)}
    assert placed == {("a", "small"), ("b", "small")}
    assert ("a", "big") in s
    assert s.queues()[0].runs[0].waiting is WaitReason.NO_FITTING_NODE


def test_a_gpu_task_that_cannot_fit_never_blocks_cpu_tasks_of_any_run():
    s = Scheduler()
    s.add_run("g")
    s.push(q("g", "gpu", cpu=1, gpu=1))
    flood(s, "c", 3)
    assert [p.task.run for p in s.schedule(Slots(cpu=2))] == ["c", "c"]


def test_waiting_reasons_fair_share_and_events_once():
    s = Scheduler(max_skips_per_class=1)
    slots = Slots(cpu=1)
    flood(s, "a", 5)
    flood(s, "b", 5)
    s.schedule(slots)  # a gets the core; b's task is the one refused (the only skip), a's next is untried
    reasons = {r.run_id: r.waiting for r in s.queues()[0].runs}
    assert reasons["a"] is None or reasons["a"] in (WaitReason.FAIR_SHARE, WaitReason.NO_FITTING_NODE)
    assert reasons["b"] is WaitReason.NO_FITTING_NODE
    first = s.take_wait_changes()
    s.schedule(slots)
    assert all(c not in s.take_wait_changes() for c in first)


def test_ending_a_run_drops_its_queued_tasks():
    s = Scheduler()
    flood(s, "r", 5)
    s.end_run("r")
    assert len(s) == 0 and s.schedule(Slots(cpu=4)) == []
    assert s.queued() == {"gpu": 0, "cpu": 0, "io": 0}


def test_release_of_an_unknown_key_is_harmless():
    s = Scheduler()
    s.release(("nope", "x"))
    flood(s, "r", 1)
    [p] = s.schedule(Slots(cpu=1))
    s.end_run("r")
    s.release(p.task.key)  # the run ended first: its tenant still gives the core back
    assert s.queues()[0].held.cpu == 0
