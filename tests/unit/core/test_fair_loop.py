"""Fair share, quotas and tenants through the real orchestrator loop (fake backend, real SQLite store), and
the key ring on a real store: what the scheduler decides reaches dispatch, the store and the events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_backend import FakeBackend
from test_orchestrator import Head, make_head, t, until

from lattice.core.cluster import Node
from lattice.core.errors import Conflict, NotFound
from lattice.core.store import Store
from lattice.core.tenants import KeyRing, hash_key
from lattice.wire.spec import RunCreate, WorkflowSpec
from lattice.wire.tenants import KeyCreate, Role, TenantPolicy, TenantQuota


@pytest.fixture
async def head(tmp_path: Path) -> AsyncIterator[Head]:
    h = make_head(tmp_path, FakeBackend(cluster=[Node("n1", "127.0.0.1", cpu=2, gpu=0, memory_mb=4096)]))
    await h.orchestrator.start()
    yield h
    await h.orchestrator.stop()
    h.store.close()


def run_as(head: Head, tenant: str, n: int, **options: object) -> str:
    tasks = [t(f"t{i}", timeout=30) for i in range(n)]  # a timeout: no prefetch, one task per core
    workflow_id = head.orchestrator.register_workflow(WorkflowSpec(tasks=tasks), tenant)
    return head.orchestrator.create_run(workflow_id, RunCreate(**options), tenant)  # type: ignore[arg-type]


def live_runs(head: Head) -> list[str]:
    return sorted(head.backend.submitted[a].attempt.payload.run_id for a in head.backend.live())


async def test_a_second_run_gets_the_next_free_core(head: Head) -> None:
    big = run_as(head, "admin", 20)
    await until(lambda: len(head.backend.live()) == 2)
    small = run_as(head, "admin", 2)
    fake = head.backend
    fake.succeed(fake.live()[0])
    await until(lambda: small in live_runs(head))
    assert live_runs(head) == sorted([big, small])


async def test_a_cpu_quota_through_the_loop_and_its_event(head: Head) -> None:
    head.orchestrator.set_tenant(TenantPolicy(name="capped", quota=TenantQuota(max_cpu=1)))
    run_id = run_as(head, "capped", 4)
    await until(lambda: len(head.backend.live()) == 1)
    await head.orchestrator.flush()
    waits = [e for e in head.store.get_events(run_id) if e["type"] == "run_waiting"]
    assert waits and waits[0]["data"]["reason"] == "quota" and "max_cpu" in waits[0]["data"]["detail"]
    view = head.orchestrator.queues("capped")
    [tenant] = view.tenants
    assert tenant.held.cpu == 1 and tenant.runs[0].queued["cpu"] == 3 and view.scheduling == "fair"
    for _ in range(4):  # each end frees the tenant's one core for the next task
        await until(lambda: len(head.backend.live()) == 1)
        head.backend.succeed(head.backend.live()[0])
    row = await head.finished(run_id)
    assert row["state"] == "succeeded" and row["tenant"] == "capped"
    assert head.orchestrator.queues("capped").tenants[0].held.tasks == 0


async def test_max_running_runs_admits_the_next_when_one_ends(head: Head) -> None:
    head.orchestrator.set_tenant(TenantPolicy(name="two", quota=TenantQuota(max_running_runs=1)))
    first = run_as(head, "two", 1)
    second = run_as(head, "two", 1)
    await until(lambda: live_runs(head) == [first])
    await head.orchestrator.flush()
    [queue] = [r for r in head.orchestrator.queues("two").tenants[0].runs if r.run_id == second]
    assert not queue.admitted and queue.waiting == "quota"
    head.backend.succeed(head.backend.live()[0])
    await until(lambda: live_runs(head) == [second])


async def test_a_cancelled_run_gives_its_holdings_back(head: Head) -> None:
    head.orchestrator.set_tenant(TenantPolicy(name="c", quota=TenantQuota(max_cpu=2)))
    run_id = run_as(head, "c", 3)
    await until(lambda: len(head.backend.live()) == 2)
    head.orchestrator.cancel_run(run_id)
    await head.finished(run_id)
    assert head.orchestrator.queues("c").tenants[0].held.cpu == 0
    again = run_as(head, "c", 2)
    await until(lambda: live_runs(head).count(again) == 2)


async def test_the_store_keeps_tenant_and_weight(head: Head) -> None:
    run_id = run_as(head, "someone", 1, weight=2.5)
    await head.orchestrator.flush()
    row = head.store.get_run(run_id)
    assert row is not None and row["tenant"] == "someone" and row["weight"] == 2.5
    assert [r["id"] for r in head.store.list_runs(tenant="someone")] == [run_id]
    assert head.store.list_runs(tenant="other") == []


async def test_fifo_head_uses_the_strict_order(tmp_path: Path) -> None:
    h = make_head(tmp_path, scheduling="fifo")
    await h.orchestrator.start()
    try:
        big = run_as(h, "admin", 10)
        await until(lambda: len(h.backend.live()) == 2)
        run_as(h, "admin", 2)
        h.backend.succeed(h.backend.live()[0])
        await until(lambda: len(h.backend.live()) == 2)
        assert live_runs(h) == [big, big]
        assert h.orchestrator.queues().scheduling == "fifo"
    finally:
        await h.orchestrator.stop()
        h.store.close()


def test_the_key_ring_stores_only_a_hash_and_revokes_at_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'keys.db'}")
    heard: list[TenantPolicy] = []
    ring = KeyRing(store, heard.append)
    created = ring.create(KeyCreate(name="alice", role=Role.READ, weight=2, quota=TenantQuota(max_cpu=1)))
    assert created.key.startswith("lk_") and heard == [created.policy]
    [row] = store.list_keys()
    assert row["key_hash"] == hash_key(created.key) and created.key not in str(row)
    assert ring.authenticate(created.key) == created.policy
    assert ring.authenticate(created.key + "x") is None
    with pytest.raises(Conflict):
        ring.create(KeyCreate(name="alice"))
    with pytest.raises(Conflict):
        ring.create(KeyCreate(name="admin"))
    again = KeyRing(store, heard.append)  # a restarted head knows the key and tells the scheduler
    assert again.authenticate(created.key) == created.policy and len(heard) == 2
    event = again.revoked_event("alice")
    assert not event.is_set()
    revoked = again.revoke("alice")
    assert revoked.revoked_at is not None and event.is_set()
    assert again.authenticate(created.key) is None
    assert KeyRing(store).authenticate(created.key) is None
    with pytest.raises(NotFound):
        again.revoke("nobody")
    store.close()
