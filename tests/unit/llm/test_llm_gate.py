"""The pool gate on its own: the cap across callers, the queue bound, fair turns by tokens, timeouts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from lattice.core.cluster import Node, ResourceManager
from lattice.llm.engines import gpu_memory_utilization
from lattice.llm.gate import Gate, GateClosed, QueueFull, QueueTimeout, RateLimit
from lattice.llm.keys import PoolKeys
from lattice.wire.llm import PoolSpec
from lattice.wire.resources import Resources


@dataclass(eq=False)
class FakeReplica:  # the gate's view of a replica: a counter and a cap (no engine involved here)
    cap: int
    in_flight: int = 0
    ready: bool = True


def gate_with(replicas: list[FakeReplica], cap: int, queue: int, timeout: float = 5.0) -> Gate:
    return Gate(cap, queue, timeout, lambda: replicas)


async def test_cap_holds_across_callers_and_replicas() -> None:
    replicas = [FakeReplica(cap=2), FakeReplica(cap=2)]
    gate = gate_with(replicas, cap=3, queue=100)
    grants = [await gate.acquire(f"run{i}") for i in range(3)]
    waiter = asyncio.create_task(gate.acquire("run9"))
    await asyncio.sleep(0.01)
    assert not waiter.done() and gate.in_flight == 3 and gate.queued == 1
    assert sorted(r.in_flight for r in replicas) == [1, 2]  # least in flight first
    gate.release(grants[0], tokens=10)
    grant = await asyncio.wait_for(waiter, 1)
    assert gate.in_flight == 3 and grant.slot.in_flight <= 2


async def test_queue_bound_refuses_with_retry_after() -> None:
    gate = gate_with([FakeReplica(cap=1)], cap=1, queue=2)
    first = await gate.acquire("a")
    waiting = [asyncio.create_task(gate.acquire("a")) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as refused:
        await gate.acquire("b")
    assert refused.value.retry_after >= 1
    gate.release(first, tokens=1)
    second = await asyncio.wait_for(waiting[0], 1)
    gate.release(second, tokens=1)
    gate.release(await asyncio.wait_for(waiting[1], 1), tokens=1)
    assert gate.in_flight == 0 and gate.queued == 0


async def test_a_readmitted_request_is_not_refused_for_a_full_queue() -> None:
    gate = gate_with([FakeReplica(cap=1)], cap=1, queue=1)
    held = await gate.acquire("a")
    queued = asyncio.create_task(gate.acquire("a"))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await gate.acquire("b")
    gate.requeue(held)  # its replica failed under it: it comes back, past the bound
    grant = await asyncio.wait_for(queued, 1)
    again = asyncio.create_task(gate.acquire("a", readmit=True))
    await asyncio.sleep(0.01)
    assert gate.queued == 1
    gate.release(grant, tokens=1)
    gate.release(await asyncio.wait_for(again, 1), tokens=1)


async def test_a_light_run_overtakes_a_flooder() -> None:
    gate = gate_with([FakeReplica(cap=1)], cap=1, queue=100)
    running = await gate.acquire("flood", estimate=100)
    order: list[str] = []

    async def one(run: str) -> None:
        grant = await gate.acquire(run, estimate=100)
        order.append(run)
        await asyncio.sleep(0)
        gate.release(grant, tokens=100)

    floods = [asyncio.create_task(one("flood")) for _ in range(10)]
    await asyncio.sleep(0.01)
    light = asyncio.create_task(one("light"))
    await asyncio.sleep(0.01)
    gate.release(running, tokens=100)
    await asyncio.gather(light, *floods)
    assert order.index("light") == 0  # the next slot went to the run with the fewest tokens served


async def test_an_idle_run_earns_no_credit() -> None:
    gate = gate_with([FakeReplica(cap=1)], cap=1, queue=100)
    for _ in range(5):
        gate.release(await gate.acquire("busy", estimate=50), tokens=50)
    first = await gate.acquire("busy", estimate=50)
    late = asyncio.create_task(gate.acquire("late", estimate=50))
    again = asyncio.create_task(gate.acquire("busy", estimate=50))
    await asyncio.sleep(0.01)
    # "late" joins at the lowest clock of the active runs ("busy": 250 served + 50 in flight), not at 0
    assert gate._clock_of["late"] == pytest.approx(gate._clock_of["busy"]) == 300
    gate.release(first, tokens=50)
    grant = await asyncio.wait_for(late, 1)
    gate.release(grant, tokens=50)
    gate.release(await asyncio.wait_for(again, 1), tokens=50)


async def test_queue_timeout_and_close_answer_every_waiter() -> None:
    gate = gate_with([FakeReplica(cap=1, ready=False)], cap=1, queue=10, timeout=0.05)
    with pytest.raises(QueueTimeout):
        await gate.acquire("a")
    assert gate.queued == 0
    slow = gate_with([FakeReplica(cap=1, ready=False)], cap=1, queue=10, timeout=10)
    waiter = asyncio.create_task(slow.acquire("a"))
    await asyncio.sleep(0.01)
    slow.close("stopped")
    with pytest.raises(GateClosed, match="stopped"):
        await waiter


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = gate_with([FakeReplica(cap=1)], cap=1, queue=10)
    held = await gate.acquire("a")
    waiter = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.sleep(0.01)
    assert gate.queued == 0
    gate.release(held, tokens=1)
    assert gate.in_flight == 0


def test_rate_limit_window() -> None:
    rate = RateLimit(requests_per_minute=2, tokens_per_minute=100)
    rate.record_request(0.0)
    rate.record_request(1.0)
    assert rate.wait_s(2.0, 1) == pytest.approx(58.0)
    assert rate.wait_s(61.0, 1) == 0.0
    rate.record_tokens(61.0, 90)
    assert rate.wait_s(62.0, 20) == pytest.approx(59.0)


def test_pool_keys_are_scoped_and_expire() -> None:
    keys = PoolKeys()
    key = keys.mint("tiny", "run-1", ttl_s=60, now=1000.0)
    assert keys.check(key, "tiny", now=1010.0).run == "run-1"  # type: ignore[union-attr]
    assert keys.check(key, "other", now=1010.0) is None
    assert keys.check(key, "tiny", now=2000.0) is None
    assert keys.check(key[:-2] + "00", "tiny", now=1010.0) is None
    assert PoolKeys().check(key, "tiny", now=1010.0) is None  # another head's secret


def test_vllm_memory_fraction_follows_the_lease() -> None:
    assert gpu_memory_utilization(20_000, 143_771) == 0.13  # floored: never more than leased
    assert gpu_memory_utilization(0, 80_000) == 0.9


def test_leases_hold_until_ended_and_never_overfill_a_card() -> None:
    rm = ResourceManager()
    rm.update_nodes([Node("n1", "127.0.0.1", cpu=4, gpu=1, memory_mb=1000, gpus=[]),
                     Node("n2", "127.0.0.2", cpu=4, gpu=1, memory_mb=1000)])
    for node in rm.nodes.values():
        from lattice.core.cluster import GPUInfo
        node.gpus = [GPUInfo(0, "H200", 100_000)]
    need = Resources(cpu=0, gpu_memory=60_000)
    assert rm.lease("a", need) is not None and rm.lease("b", need) is not None
    assert rm.lease("c", need) is None  # 60 GB + 60 GB does not fit a 100 GB card
    rm.end_lease("a")
    assert rm.lease("c", need) is not None


def test_pool_spec_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="base_url"):
        PoolSpec(alias="x", engine="external", model="m")
    with pytest.raises(ValueError, match="reserved"):
        PoolSpec(alias="pools", engine="transformers", model="m")
    with pytest.raises(ValueError, match="min_replicas"):
        PoolSpec(alias="x", engine="transformers", model="m", min_replicas=3, max_replicas=1)
