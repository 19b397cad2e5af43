"""The head's pool manager: pools, their replicas, leases, readiness, restarts, scale-to-zero, eviction.

One :class:`PoolManager` per head, on the head's event loop. A replica is a real engine process that a
:class:`Launcher` starts on the node the :class:`~lattice.core.cluster.ResourceManager` leased for it
(CPU, GPU share, GPU memory: a long-lived lease, so tasks and other pools see that capacity taken). A
replica serves only after it is *ready*: the engine answers ``/v1/models``, then one warm-up completion.

What the supervisor loop (:meth:`PoolManager._tick`, every ``tick_s``) keeps true:

* a pool with demand (requests queued or in flight) has at least one replica, up to ``max_replicas`` while
  requests queue behind full replicas; ``min_replicas`` always (scale from zero on the first request);
* a replica whose process exited is taken out at once (the gate routes around it; requests it had not
  started go to another) and restarted with exponential backoff (1 s, 2 s, ... 30 s);
* a pool idle for ``idle_timeout_s`` with ``min_replicas == 0`` stops its replicas and gives back the leases;
* a replica that does not fit waits for capacity; when GPU memory is what is missing, the least recently
  used unpinned pool with nothing in flight is stopped to make room (never a pinned one).

Stopping a replica stops its engine's whole process group (``ray_launcher.EngineHost.stop``); stopping the
manager (the head's shutdown) stops every replica of every pool before the head exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from lattice.core.cluster import ResourceManager
from lattice.llm.engine_http import EngineHTTP
from lattice.llm.engines import command
from lattice.llm.gate import Gate, RateLimit
from lattice.llm.keys import PoolKeys
from lattice.llm.stats import PoolStats
from lattice.wire.llm import Engine, LLMAccess, PoolSpec, PoolView, ReplicaView
from lattice.wire.resources import Resources

log = logging.getLogger("lattice.llm")

BACKOFF_MAX_S = 30.0


class Launcher(Protocol):
    """Starts engine processes on a node (``ray_launcher.RayLauncher``); every call blocks (run in a thread)."""

    def start(self, replica_id: str, node_id: str, host: str, gpu_fraction: float,
              argv_for_port: Callable[[int], tuple[list[str], dict[str, str]]], env: dict[str, str]) -> Any: ...

    def returncode(self, handle: Any) -> int | None: ...

    def gpu_memory_mb(self, handle: Any) -> int | None: ...

    def stop(self, handle: Any) -> None: ...


class PoolError(Exception):
    """A request the manager refuses: HTTP status, error type, message, the field at fault and the fix."""

    def __init__(self, status: int, code: str, message: str, field: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.hint = status, code, message, field, hint


@dataclass(eq=False)
class Replica:
    replica_id: str
    cap: int
    state: str = "pending"  # pending -> starting -> ready; failed; stopped
    in_flight: int = 0
    node_id: str | None = None
    base_url: str | None = None
    handle: Any = None
    pid: int | None = None
    leased: Resources | None = None
    restarts: int = 0
    error: str | None = None
    retry_at: float = 0.0
    gpu_memory_used_mb: int | None = None
    nvml_at: float = 0.0
    task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def view(self) -> ReplicaView:
        return ReplicaView(replica_id=self.replica_id, state=self.state, node_id=self.node_id,
                           address=self.base_url, pid=self.pid,
                           gpu_memory_leased_mb=self.leased.gpu_memory if self.leased else 0,
                           gpu_memory_used_mb=self.gpu_memory_used_mb, in_flight=self.in_flight,
                           restarts=self.restarts, error=self.error)


@dataclass(eq=False)
class Pool:
    spec: PoolSpec
    gate: Gate
    replicas: list[Replica] = field(default_factory=list)
    stats: PoolStats = field(default_factory=PoolStats)
    last_used: float = field(default_factory=time.time)
    error: str | None = None
    stopped: bool = False
    #: external pools: the provider's base URL and key (never shown in views)
    api_key: str | None = None
    _seq: int = 0

    @property
    def alias(self) -> str:
        return self.spec.alias

    @property
    def external(self) -> bool:
        return self.spec.engine is Engine.EXTERNAL

    @property
    def served_model(self) -> str:
        return self.spec.model

    def next_replica_id(self) -> str:
        self._seq += 1
        return f"{self.alias}-{self._seq}"

    def state(self) -> str:
        if self.stopped:
            return "stopped"
        if self.external or any(r.ready for r in self.replicas):
            return "ready"
        if any(r.state in ("pending", "starting") for r in self.replicas):
            return "starting"
        if any(r.state == "failed" for r in self.replicas):
            return "failed"
        return "idle"

    def view(self) -> PoolView:
        return PoolView(alias=self.alias, engine=self.spec.engine, model=self.spec.model, state=self.state(),
                        replicas=[r.view() for r in self.replicas], in_flight=self.gate.in_flight,
                        queued=self.gate.queued, max_concurrency=self.spec.max_concurrency,
                        max_queue=self.spec.max_queue, tokens_in=int(self.stats.tokens_in),
                        tokens_out=int(self.stats.tokens_out), tokens_per_s=round(self.stats.tokens_per_s(), 2),
                        requests=self.stats.requests, rejected=self.stats.rejected, last_used=self.last_used,
                        error=self.error, spec=self.spec)


@dataclass
class _ExternalSlot:
    """An external provider is one "replica" that is always ready; the pool cap is its cap."""

    cap: int
    in_flight: int = 0
    replica_id: str = "external"

    @property
    def ready(self) -> bool:
        return True


class PoolSpecs(Protocol):
    """Where deployed pools are kept across head restarts (the head's store: ``Store.save_pool`` ...)."""

    def save_pool(self, alias: str, spec_json: str, when: float) -> None: ...

    def delete_pool(self, alias: str) -> bool: ...

    def list_pools(self) -> list[tuple[str, str]]: ...


class PoolManager:
    def __init__(self, resources: ResourceManager, launcher: Launcher | None, public_url: str,
                 keys: PoolKeys | None = None, tick_s: float = 0.5,
                 provider_keys: dict[str, str] | None = None,
                 on_request: Callable[[str, str, dict[str, Any]], None] | None = None,
                 specs: PoolSpecs | None = None) -> None:
        self.resources = resources
        #: deployed pools kept durably; ``start`` deploys them again (None: pools live as long as the head)
        self.specs = specs
        self.launcher = launcher
        self.public_url = public_url.rstrip("/")
        self.keys = keys or PoolKeys()
        self.tick_s = tick_s
        self.provider_keys = provider_keys or {}
        #: (run, pool, data): one event per finished request, into that run's events
        self.on_request = on_request
        self.pools: dict[str, Pool] = {}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=5.0),
                                      limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))
        #: the proxy's client to the engines (aiohttp: ``engine_http.py``); ``http`` serves the rest
        self.engine_http = EngineHTTP()
        self._loop_task: asyncio.Task[None] | None = None

    # --- lifecycle of the manager -------------------------------------------------------------------

    async def start(self) -> None:
        """Deploy again what a previous head of this store had deployed, then supervise."""
        await self._restore()
        self._loop_task = asyncio.create_task(self._supervise(), name="llm-pools")

    async def _restore(self) -> None:
        if self.specs is None:
            return
        for alias, spec_json in self.specs.list_pools():
            try:
                await self.deploy(PoolSpec.model_validate_json(spec_json), keep=False)
                log.info("pool %s deployed again from the store", alias)
            except (PoolError, ValueError) as exc:
                # kept: it comes back once what it needs is there (an env var, a node); `llm stop` removes it
                log.error("pool %s was deployed before this head started but cannot be now: %s", alias, exc)

    async def close(self) -> None:
        """The head stops: every replica's process group is stopped and its lease given back."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await asyncio.gather(*(self._stop_pool(pool, "the head is stopping") for pool in list(self.pools.values())),
                             return_exceptions=True)
        await self.http.aclose()
        await self.engine_http.close()

    # --- the API's side -----------------------------------------------------------------------------

    async def deploy(self, spec: PoolSpec, keep: bool = True) -> PoolView:
        """Start a pool (``keep``: and record it, so that a restarted head deploys it again)."""
        existing = self.pools.get(spec.alias)
        if existing is not None:
            if existing.spec == spec:
                return existing.view()
            raise PoolError(409, "conflict", f"a pool {spec.alias!r} already runs with another spec", "alias",
                            f"stop it first (lattice llm stop {spec.alias}) or pick another alias")
        api_key = None
        if spec.engine is Engine.EXTERNAL:
            if spec.api_key_env:
                api_key = self.provider_keys.get(spec.api_key_env) or os.environ.get(spec.api_key_env)
                if not api_key:
                    raise PoolError(422, "invalid", f"the head has no environment variable {spec.api_key_env!r}",
                                    "api_key_env", "set it in the head's environment (or its settings) and "
                                    "restart the head, or leave api_key_env out for a provider without a key")
        else:
            if self.launcher is None:
                raise PoolError(422, "invalid", "this head cannot start engines (no launcher)", "engine",
                                "use engine 'external', or a head started by 'lattice start --head'")
            need = _lease_of(spec)
            if not self.resources.fits_anywhere(need):
                raise PoolError(422, "invalid", f"no node can hold a replica of {need.model_dump()}", "gpu_memory_mb",
                                f"the largest node has {self.resources.largest_node()}; ask for less or add a node")
        if keep and self.specs is not None:  # before it starts: a pool the client was told of is never forgotten
            await asyncio.to_thread(self.specs.save_pool, spec.alias, spec.model_dump_json(), time.time())
        pool = self._new_pool(spec, api_key)
        self.pools[spec.alias] = pool
        for _ in range(spec.min_replicas):
            self._add_replica(pool)
        log.info("pool %s deployed (%s, %s)", spec.alias, spec.engine, spec.model)
        return pool.view()

    async def stop(self, alias: str) -> bool:
        """Stop a pool and forget it (also one kept in the store that could not be deployed again)."""
        forgotten = bool(self.specs is not None and await asyncio.to_thread(self.specs.delete_pool, alias))
        pool = self.pools.pop(alias, None)
        if pool is None:
            return forgotten
        await self._stop_pool(pool, f"the pool {alias!r} was stopped")
        return True

    def get(self, alias: str) -> Pool | None:
        return self.pools.get(alias)

    def views(self) -> list[PoolView]:
        return [pool.view() for pool in self.pools.values()]

    def access(self, run_id: str, aliases: tuple[str, ...]) -> dict[str, dict[str, str]]:
        """``params["llm"]`` of an attempt: a fresh key per pool, scoped to this run (the orchestrator asks).

        Asked when the attempt is dispatched, so a pool at zero starts its engine while the task's worker
        starts, before the task's first request."""
        out: dict[str, dict[str, str]] = {}
        for alias in aliases:
            pool = self.pools.get(alias)
            if pool is not None:
                self.demand(pool)
            out[alias] = LLMAccess(base_url=f"{self.public_url}/api/v1/llm/{alias}/v1",
                                   api_key=self.keys.mint(alias, run_id),
                                   model=pool.served_model if pool else alias).model_dump()
        return out

    def warm(self, aliases: frozenset[str]) -> None:
        """A run was submitted whose tasks call these pools: start a replica of each one at zero now, so
        the engine loads while the run's earlier tasks run (the orchestrator calls this at submit)."""
        for alias in sorted(aliases):
            pool = self.pools.get(alias)
            if pool is not None:
                self.demand(pool)

    def demand(self, pool: Pool) -> None:
        """A request arrived: note it, and start a replica now when none is up (scale from zero)."""
        pool.last_used = time.time()
        if pool.external or pool.stopped:
            return
        if not any(r.state in ("pending", "starting", "ready") for r in pool.replicas):
            self._add_replica(pool)

    def replica_failed(self, pool: Pool, replica: Any, error: str) -> None:
        """The proxy could not reach a replica: take it out now; the supervisor restarts it."""
        if isinstance(replica, Replica) and replica.state == "ready":
            replica.state, replica.error = "failed", error
            log.warning("pool %s: replica %s taken out: %s", pool.alias, replica.replica_id, error)
            replica.task = asyncio.get_running_loop().create_task(
                self._fail(pool, replica, f"{replica.replica_id} failed a request ({error}); restarting"))

    def target(self, pool: Pool, slot: Any) -> tuple[str, dict[str, str]]:
        """Base URL (ending in ``/v1``) and auth headers to reach what the gate granted."""
        if pool.external:
            headers = {"authorization": f"Bearer {pool.api_key}"} if pool.api_key else {}
            return pool.spec.base_url.rstrip("/"), headers  # type: ignore[union-attr]
        return f"{slot.base_url}/v1", {}

    # --- pools --------------------------------------------------------------------------------------

    def _new_pool(self, spec: PoolSpec, api_key: str | None) -> Pool:
        holder: list[Pool] = []
        external = _ExternalSlot(cap=spec.max_concurrency) if spec.engine is Engine.EXTERNAL else None

        def slots() -> list[Any]:
            return [external] if external is not None else holder[0].replicas

        rate = RateLimit(spec.requests_per_minute, spec.tokens_per_minute) \
            if spec.requests_per_minute or spec.tokens_per_minute else None
        gate = Gate(spec.max_concurrency, spec.max_queue, spec.queue_timeout_s, slots, rate=rate)
        pool = Pool(spec=spec, gate=gate, api_key=api_key)
        holder.append(pool)
        return pool

    async def _stop_pool(self, pool: Pool, reason: str) -> None:
        pool.stopped = True
        pool.gate.close(reason)
        await asyncio.gather(*(self._stop_replica(pool, r, "stopped") for r in list(pool.replicas)),
                             return_exceptions=True)
        pool.replicas.clear()
        log.info("pool %s stopped: %s", pool.alias, reason)

    def _add_replica(self, pool: Pool) -> Replica:
        replica = Replica(pool.next_replica_id(), cap=pool.spec.per_replica_cap)
        pool.replicas.append(replica)
        self._try_start(pool, replica)
        return replica

    # --- replicas -----------------------------------------------------------------------------------

    def _try_start(self, pool: Pool, replica: Replica) -> None:
        """Lease capacity (evicting an idle pool for GPU memory if need be) and start the engine."""
        need = _lease_of(pool.spec)
        node_id = self.resources.lease(replica.replica_id, need)
        if node_id is None and need.gpu_memory > 0 and self._evict_for(pool, need):
            node_id = self.resources.lease(replica.replica_id, need)
        if node_id is None:
            replica.state, replica.error = "pending", "waiting for capacity on the cluster"
            replica.retry_at = time.monotonic() + 1.0
            return
        replica.node_id, replica.leased = node_id, need
        replica.state, replica.error = "starting", None
        replica.task = asyncio.create_task(self._start_replica(pool, replica, node_id, need))

    async def _start_replica(self, pool: Pool, replica: Replica, node_id: str, need: Resources) -> None:
        node = self.resources.nodes[node_id]
        host = node.address or "127.0.0.1"
        card_mb = node.max_gpu_memory_mb()
        gpu_fraction = self.resources.gpu_fraction(node_id, need) if (need.gpu or need.gpu_memory) else 0.0

        def argv_for_port(port: int) -> tuple[list[str], dict[str, str]]:
            cmd = command(pool.spec, host, port, card_mb)
            return cmd.argv, cmd.env

        started = time.monotonic()
        try:
            assert self.launcher is not None
            launcher = self.launcher
            starting = asyncio.ensure_future(asyncio.to_thread(launcher.start, replica.replica_id, node_id, host,
                                                               gpu_fraction, argv_for_port, {}))
            try:
                replica.handle = await asyncio.shield(starting)
            except asyncio.CancelledError:
                # stopped while the engine was being started: stop what the start brings, once it has it
                loop = asyncio.get_running_loop()
                starting.add_done_callback(lambda f: None if f.cancelled() or f.exception() is not None
                                           else loop.run_in_executor(None, launcher.stop, f.result()))
                raise
            replica.pid = replica.handle.pid
            replica.base_url = f"http://{host}:{replica.handle.port}"
            await self._wait_ready(pool, replica, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported on the pool, never raised
            message = f"replica {replica.replica_id} did not start: {exc}"
            log.warning("pool %s: %s", pool.alias, message)
            await self._fail(pool, replica, message)
            return
        replica.state, replica.error = "ready", None
        pool.error = None
        pool.stats.last_start_s = time.monotonic() - started
        log.info("pool %s: replica %s ready at %s in %.1f s", pool.alias, replica.replica_id, replica.base_url,
                 pool.stats.last_start_s)
        pool.gate.wake()

    async def _wait_ready(self, pool: Pool, replica: Replica, started: float) -> None:
        """Health route, model list, then one warm-up completion, within ``start_timeout_s``."""
        deadline = started + pool.spec.start_timeout_s
        stage = "the model list (/v1/models)"
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready within {pool.spec.start_timeout_s:g} s (waiting for {stage}); "
                                   f"see the engine's log in the head's data dir (llm/{replica.replica_id}.log)")
            code = await asyncio.to_thread(self.launcher.returncode, replica.handle)  # type: ignore[union-attr]
            if code is not None:
                raise RuntimeError(f"the engine exited with {code} while starting; see its log "
                                   f"(llm/{replica.replica_id}.log in the head's data dir)")
            try:
                models = await self.http.get(f"{replica.base_url}/v1/models", timeout=2.0)
                if models.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
        stage = "the warm-up request"
        body = {"model": pool.served_model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        remaining = max(1.0, deadline - time.monotonic())
        answer = await self.http.post(f"{replica.base_url}/v1/chat/completions", json=body, timeout=remaining)
        if answer.status_code >= 400:
            raise RuntimeError(f"the warm-up request got {answer.status_code}: {answer.text[:300]}")

    async def _fail(self, pool: Pool, replica: Replica, message: str) -> None:
        await self._stop_replica(pool, replica, "failed")
        replica.error = message
        replica.restarts += 1
        replica.retry_at = time.monotonic() + min(BACKOFF_MAX_S, 2.0 ** (replica.restarts - 1))
        pool.error = message
        if _start_failure(message) and not any(r.ready for r in pool.replicas):
            # nothing will serve what waits: say why instead of letting it time out (a crash of a replica
            # that was ready keeps its queue: the restart answers it)
            pool.gate.fail_waiting(message)

    async def _stop_replica(self, pool: Pool, replica: Replica, state: str) -> None:
        task = replica.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        replica.state = state
        handle, replica.handle = replica.handle, None
        if handle is not None and self.launcher is not None:
            await asyncio.to_thread(self.launcher.stop, handle)
        if replica.leased is not None:
            self.resources.end_lease(replica.replica_id)
            replica.leased = None
        pool.gate.wake()

    def _evict_for(self, pool: Pool, need: Resources) -> bool:
        """Stop the least recently used unpinned, unused pool holding GPU memory; True if one was stopped."""
        candidates = [p for p in self.pools.values()
                      if p is not pool and not p.spec.pinned and not p.stopped and p.gate.in_flight == 0
                      and p.gate.queued == 0 and any(r.leased and r.leased.gpu_memory for r in p.replicas)]
        if not candidates:
            return False
        victim = min(candidates, key=lambda p: p.last_used)
        log.warning("pool %s: evicting idle pool %s (least recently used) for %d MB of GPU memory",
                    pool.alias, victim.alias, need.gpu_memory)
        for replica in list(victim.replicas):
            # synchronous part: give the lease back now; the process group is stopped in the background
            if replica.leased is not None:
                self.resources.end_lease(replica.replica_id)
                replica.leased = None
            asyncio.get_running_loop().create_task(self._stop_replica(victim, replica, "stopped"))
        victim.replicas.clear()
        victim.error = f"evicted for pool {pool.alias!r}"
        return True

    # --- the supervisor -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("llm supervisor tick failed")
            await asyncio.sleep(self.tick_s)

    async def _tick(self) -> None:
        now = time.monotonic()
        for pool in list(self.pools.values()):
            if pool.external or pool.stopped:
                continue
            await self._check_processes(pool)
            for replica in pool.replicas:
                stopping = replica.task is not None and not replica.task.done()
                if replica.state in ("pending", "failed") and now >= replica.retry_at and not stopping:
                    self._try_start(pool, replica)
            busy = pool.gate.in_flight or pool.gate.queued
            live = [r for r in pool.replicas if r.state in ("pending", "starting", "ready", "failed")]
            if pool.gate.queued and len(live) < pool.spec.max_replicas and all(
                    r.in_flight >= r.cap for r in live if r.ready) and not any(
                    r.state in ("pending", "starting") for r in live):
                self._add_replica(pool)  # requests queue behind full replicas: one more
            idle_s = time.time() - pool.last_used
            if not busy and live and idle_s > pool.spec.idle_timeout_s:
                extra = len(live) - pool.spec.min_replicas
                for replica in sorted(live, key=lambda r: r.ready)[:max(0, extra)]:
                    log.info("pool %s: replica %s idle for %.0f s, stopping", pool.alias, replica.replica_id, idle_s)
                    await self._stop_replica(pool, replica, "stopped")
                    pool.replicas.remove(replica)

    async def _check_processes(self, pool: Pool) -> None:
        for replica in pool.replicas:
            if replica.state != "ready" or replica.handle is None:
                continue
            code = await asyncio.to_thread(self.launcher.returncode, replica.handle)  # type: ignore[union-attr]
            if code is not None:
                message = f"the engine of {replica.replica_id} exited with {code}; restarting"
                log.warning("pool %s: %s", pool.alias, message)
                replica.state = "failed"
                await self._fail(pool, replica, message)
            elif replica.leased is not None and replica.leased.gpu_memory and time.monotonic() >= replica.nvml_at:
                await self._check_gpu_memory(pool, replica)

    async def _check_gpu_memory(self, pool: Pool, replica: Replica) -> None:
        """NVML's per-process count against the lease (every 5 s); over it is reported, and stopped if
        the pool says so (``stop_over_lease``)."""
        replica.nvml_at = time.monotonic() + 5.0
        used = await asyncio.to_thread(self.launcher.gpu_memory_mb, replica.handle)  # type: ignore[union-attr]
        replica.gpu_memory_used_mb = used
        leased = replica.leased.gpu_memory if replica.leased else 0
        if used is None or used <= leased:
            return
        message = f"{replica.replica_id} uses {used} MB of GPU memory, over its lease of {leased} MB"
        log.warning("pool %s: %s", pool.alias, message)
        pool.error = message
        if pool.spec.stop_over_lease:
            replica.state = "failed"
            await self._fail(pool, replica, message + "; stopped (stop_over_lease)")


def _lease_of(spec: PoolSpec) -> Resources:
    return Resources(cpu=spec.cpu, gpu=spec.gpu, memory=spec.memory_mb, gpu_memory=spec.gpu_memory_mb)


def _start_failure(message: str) -> bool:
    return "did not start" in message
