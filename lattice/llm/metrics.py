"""The pools' Prometheus metrics, one collector read at scrape time (label ``pool``).

Registered on the head's ``/metrics`` registry by one line in ``api/routes/system.py``; nothing here is
updated per request except the plain counters in :class:`~lattice.llm.stats.PoolStats`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lattice.llm.manager import PoolManager
from lattice.llm.stats import TTFT_BUCKETS


class LLMCollector(Collector):
    def __init__(self, manager: PoolManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        pools = list(self.manager.pools.values())
        in_flight = GaugeMetricFamily("lattice_llm_in_flight", "requests in flight at the pool's engines",
                                      labels=["pool"])
        queued = GaugeMetricFamily("lattice_llm_queue_length", "requests waiting for a slot", labels=["pool"])
        replicas = GaugeMetricFamily("lattice_llm_replicas", "replicas by state", labels=["pool", "state"])
        tokens = CounterMetricFamily("lattice_llm_tokens", "tokens served (engine usage)",
                                     labels=["pool", "direction"])
        requests = CounterMetricFamily("lattice_llm_requests", "requests answered", labels=["pool"])
        rejected = CounterMetricFamily("lattice_llm_rejected", "requests refused (429) or timed out in the queue",
                                       labels=["pool"])
        leased = GaugeMetricFamily("lattice_llm_gpu_memory_leased_bytes", "GPU memory leased by the pool's replicas",
                                   labels=["pool"])
        used = GaugeMetricFamily("lattice_llm_gpu_memory_bytes", "GPU memory NVML sees the pool's engines use",
                                 labels=["pool"])
        ttft = HistogramMetricFamily("lattice_llm_time_to_first_token_seconds",
                                     "time from admission to the engine's first byte (streams) or answer",
                                     labels=["pool"])
        for pool in pools:
            alias = pool.alias
            in_flight.add_metric([alias], pool.gate.in_flight)
            queued.add_metric([alias], pool.gate.queued)
            states: dict[str, int] = {}
            for replica in pool.replicas:
                states[replica.state] = states.get(replica.state, 0) + 1
            for state, count in states.items():
                replicas.add_metric([alias, state], count)
            tokens.add_metric([alias, "in"], pool.stats.tokens_in)
            tokens.add_metric([alias, "out"], pool.stats.tokens_out)
            requests.add_metric([alias], pool.stats.requests)
            rejected.add_metric([alias], pool.stats.rejected)
            leased.add_metric([alias], sum((r.leased.gpu_memory if r.leased else 0) for r in pool.replicas) * 2**20)
            used.add_metric([alias], sum(r.gpu_memory_used_mb or 0 for r in pool.replicas) * 2**20)
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, TTFT_BUCKETS), "+Inf"], pool.stats.ttft_counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            ttft.add_metric([alias], buckets, pool.stats.ttft_sum)
        yield from (in_flight, queued, replicas, tokens, requests, rejected, leased, used, ttft)
