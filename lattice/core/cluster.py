"""The resource manager: each node's capacity (from Ray) and what Lattice has reserved on it.

It owns capacity and nothing else, and it is the only owner: nobody else changes a :class:`Node`'s counts.
The scheduler asks :meth:`ResourceManager.try_place` for a node where a task fits (a *reservation*);
the orchestrator says when the attempt was handed to the backend (:meth:`ResourceManager.start`) and when
it ended (:meth:`ResourceManager.release`). Because every dispatch is admitted here first, Ray's own
queues stay short (backpressure), and an impossible request is known at once (:meth:`fits_anywhere`)
instead of waiting forever.

Reserved is not executing: a CPU task without a timeout may be admitted into a node's *prefetch slots*
beyond its free cores, where it waits in Ray's queue on that node. So the manager also counts, per node,
the cores it believes are executing and keeps the attempts that wait for one in arrival order;
:meth:`start` says whether an attempt holds its cores at once, and :meth:`release` says which waiting
attempts got the cores it freed, so the orchestrator can show them ``running``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lattice.wire.resources import ResourceClass, Resources

_EPS = 1e-9
# CPU tasks without a timeout may wait in Ray's queue on a node, up to this many per core, so its cores
# never idle while the head turns a finished task around. How many depends on how long the node's
# tasks take: about PREFETCH_HORIZON_S of work per core, so short tasks get deep queues (throughput)
# and long ones none (a later, higher-priority task never waits behind them).
PREFETCH_PER_CORE = 7
PREFETCH_HORIZON_S = 0.05
_EWMA_WEIGHT = 0.2


@dataclass
class GPUInfo:
    index: int
    name: str = "GPU"
    memory_total_mb: int = 0


@dataclass
class Node:
    node_id: str
    address: str
    cpu: float
    gpu: float
    memory_mb: int
    gpus: list[GPUInfo] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    #: custom resources the node offers (``--resources``) and how much of each is reserved
    custom: dict[str, float] = field(default_factory=dict)
    used_custom: dict[str, float] = field(default_factory=dict)
    alive: bool = True
    #: no new attempts go here (``lattice drain``); once it is gone it has *left*, not died
    draining: bool = False
    io_slots: int = 256
    used_cpu: float = 0.0
    used_gpu: float = 0.0
    used_memory_mb: int = 0
    used_gpu_memory_mb: int = 0
    used_io: int = 0
    running: int = 0
    task_seconds: float | None = None  # moving average of how long this node's CPU tasks take

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        previous = self.task_seconds
        self.task_seconds = seconds if previous is None else previous + _EWMA_WEIGHT * (seconds - previous)

    def prefetch_per_core(self) -> int:
        if self.task_seconds is None:
            return 3  # nothing learnt yet: a shallow queue
        return min(PREFETCH_PER_CORE, int(PREFETCH_HORIZON_S / max(self.task_seconds, 1e-4)))

    @property
    def state(self) -> str:
        """``alive``, ``draining`` (takes no new attempts), ``dead`` (lost) or ``left`` (gone after a drain)."""
        if not self.alive:
            return "left" if self.draining else "dead"
        return "draining" if self.draining else "alive"

    @property
    def gpu_memory_mb(self) -> int:
        return sum(g.memory_total_mb for g in self.gpus)

    def has_labels_and_kinds(self, r: Resources) -> bool:
        """The node has every label the task asks for and every custom resource in the amount asked."""
        labels, custom = self.labels, self.custom
        return (all(labels.get(k) == v for k, v in r.node_labels.items())
                and all(amount <= custom.get(name, 0.0) + _EPS for name, amount in r.custom.items()))

    def fits_total(self, r: Resources) -> bool:
        if (r.custom or r.node_labels) and not self.has_labels_and_kinds(r):
            return False
        return (
            r.cpu <= self.cpu + _EPS
            and r.gpu <= self.gpu + _EPS
            and r.memory <= self.memory_mb
            and (r.gpu_memory == 0 or (self.gpu > 0 and r.gpu_memory <= self.max_gpu_memory_mb()))
        )

    def max_gpu_memory_mb(self) -> int:
        """GPU memory one task can get: one GPU's, or a whole GPU's worth when sizes are unknown."""
        if self.gpus and any(g.memory_total_mb for g in self.gpus):
            return max(g.memory_total_mb for g in self.gpus)
        return 0

    def fits_now(self, r: Resources, prefetch: bool = False) -> bool:
        """Fits in what is free now; with ``prefetch`` a CPU task may also take one of the node's
        prefetch slots (see :meth:`prefetch_per_core`), waiting in Ray's local queue for a core."""
        if not self.alive or self.draining:
            return False
        if r.resource_class is ResourceClass.IO and self.used_io >= self.io_slots:
            return False
        if r.custom or r.node_labels:
            if not self.has_labels_and_kinds(r):
                return False
            used = self.used_custom
            if any(used.get(k, 0.0) + v > self.custom.get(k, 0.0) + _EPS for k, v in r.custom.items()):
                return False
        cpu_limit = self.cpu * (1 + self.prefetch_per_core()) if prefetch and r.resource_class is ResourceClass.CPU \
            else self.cpu
        # Only what the task asks for is checked: a cpu=0 task fits even while prefetch over-books cores.
        return (
            (r.cpu == 0 or self.used_cpu + r.cpu <= cpu_limit + _EPS)
            and ((r.gpu == 0 and r.gpu_memory == 0) or self.used_gpu + self.gpu_fraction(r) <= self.gpu + _EPS)
            and (r.memory == 0 or self.used_memory_mb + r.memory <= self.memory_mb)
            and (r.gpu_memory == 0 or self.used_gpu_memory_mb + r.gpu_memory <= self.gpu_memory_mb)
        )

    def gpu_fraction(self, r: Resources) -> float:
        """GPUs to ask Ray for: what was declared, or the share of a GPU that ``gpu_memory`` implies."""
        if r.gpu > 0 or r.gpu_memory == 0:
            return r.gpu
        per_gpu = self.max_gpu_memory_mb()
        if per_gpu <= 0:
            return 1.0
        return min(1.0, max(0.0001, round(r.gpu_memory / per_gpu + 0.00005, 4)))

    def reserve(self, r: Resources) -> None:
        self.used_cpu += r.cpu
        self.used_gpu += self.gpu_fraction(r)
        self.used_memory_mb += r.memory
        self.used_gpu_memory_mb += r.gpu_memory
        self.used_io += 1 if r.resource_class is ResourceClass.IO else 0
        self.running += 1
        for name, amount in r.custom.items():
            self.used_custom[name] = self.used_custom.get(name, 0.0) + amount

    def release(self, r: Resources) -> None:
        self.used_cpu = max(0.0, self.used_cpu - r.cpu)
        self.used_gpu = max(0.0, self.used_gpu - self.gpu_fraction(r))
        self.used_memory_mb = max(0, self.used_memory_mb - r.memory)
        self.used_gpu_memory_mb = max(0, self.used_gpu_memory_mb - r.gpu_memory)
        self.used_io = max(0, self.used_io - (1 if r.resource_class is ResourceClass.IO else 0))
        self.running = max(0, self.running - 1)
        for name, amount in r.custom.items():
            self.used_custom[name] = max(0.0, self.used_custom.get(name, 0.0) - amount)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "alive": self.alive,
            "state": self.state,
            "labels": self.labels,
            "total": {"cpu": self.cpu, "gpu": self.gpu, "memory_mb": self.memory_mb,
                      "gpu_memory_mb": self.gpu_memory_mb, **self.custom},
            "used": {"cpu": round(self.used_cpu, 4), "gpu": round(self.used_gpu, 4),
                     "memory_mb": self.used_memory_mb, "gpu_memory_mb": self.used_gpu_memory_mb,
                     **{k: round(self.used_custom.get(k, 0.0), 4) for k in self.custom}},
            "gpus": [{"index": g.index, "name": g.name, "memory_total_mb": g.memory_total_mb}
                     for g in self.gpus],
            "running_tasks": self.running,
        }


@dataclass(slots=True)
class _Cores:
    """One node's cores as the manager believes them used: executing, and attempts waiting for one."""

    busy: float = 0.0  # cores of started attempts (the rest of ``Node.used_cpu`` waits in Ray's queue)
    #: started attempt -> cores it holds
    executing: dict[Hashable, float] = field(default_factory=dict)
    #: attempt -> cores it needs, in the order the attempts started waiting (a dict: FIFO with O(1) removal)
    waiting: dict[Hashable, float] = field(default_factory=dict)


_NOTHING: Sequence[Hashable] = ()


class ResourceManager:
    def __init__(self, io_slots_per_node: int = 256) -> None:
        self.io_slots_per_node = io_slots_per_node
        self.nodes: dict[str, Node] = {}
        self._cores: dict[str, _Cores] = {}
        #: long-lived reservations (model pools' replicas): key -> (node, resources)
        self.leases: dict[Hashable, tuple[str, Resources]] = {}

    def update_nodes(self, nodes: list[Node]) -> None:
        """Merge a fresh view of the cluster, keeping the reservations of nodes that stay."""
        seen = set()
        for fresh in nodes:
            seen.add(fresh.node_id)
            fresh.io_slots = self.io_slots_per_node
            current = self.nodes.get(fresh.node_id)
            if current is None:
                self.nodes[fresh.node_id] = fresh
                continue
            current.address, current.cpu, current.gpu = fresh.address, fresh.cpu, fresh.gpu
            current.memory_mb, current.alive, current.labels = fresh.memory_mb, fresh.alive, fresh.labels
            current.draining = current.draining or fresh.draining
            current.custom = fresh.custom
            if fresh.gpus:
                current.gpus = fresh.gpus
        for node_id, node in self.nodes.items():
            if node_id not in seen:
                node.alive = False

    def fits_anywhere(self, r: Resources) -> bool:
        """Some node could ever hold it. A node that is draining or dead counts (it may come back, or its
        replacement joins), so such a task waits with a reason instead of failing; a node that left after a
        drain does not; none at all: it fails at once."""
        return any(node.fits_total(r) for node in self.nodes.values() if node.state != "left")

    def why_never_fits(self, r: Resources) -> str:
        """What a user must read when :meth:`fits_anywhere` is False: the labels or custom resources no node
        has (with what the nodes do have), else the largest node's capacity."""
        nodes = [n for n in self.nodes.values() if n.state != "left"]
        if (r.node_labels or r.custom) and not any(n.has_labels_and_kinds(r) for n in nodes):
            wanted = ", ".join([f"label {k}={v}" for k, v in sorted(r.node_labels.items())]
                               + [f"{amount:g} of {name!r}" for name, amount in sorted(r.custom.items())])
            # Ray's own labels (ray.io/node-id=<56 hex digits>, one per node) say nothing a user can ask for
            seen_labels = sorted({f"{k}={v}" for n in nodes for k, v in n.labels.items()
                                  if not k.startswith("ray.io/")})
            seen_kinds = sorted({f"{name!r} (up to {n.custom[name]:g})" for n in nodes for name in n.custom})
            return (f"no node has {wanted} (labels in the cluster: {', '.join(seen_labels) or 'none'}; custom "
                    f"resources: {', '.join(seen_kinds) or 'none'})")
        return f"the largest node has {self.largest_node()}"

    def largest_node(self) -> dict[str, float]:
        alive = [n for n in self.nodes.values() if n.alive]
        return {
            "cpu": max((n.cpu for n in alive), default=0),
            "gpu": max((n.gpu for n in alive), default=0),
            "memory_mb": max((n.memory_mb for n in alive), default=0),
            "gpu_memory_mb": max((n.max_gpu_memory_mb() for n in alive), default=0),
        }

    def try_place(self, r: Resources, prefetch: bool = False) -> str | None:
        """Reserve ``r`` on the node with the most free CPU where it fits; None when none fits now."""
        best: Node | None = None
        for node in self.nodes.values():
            if node.fits_now(r, prefetch) and (best is None or _headroom(node) > _headroom(best)):
                best = node
        if best is None:
            return None
        best.reserve(r)
        return best.node_id

    def start(self, node_id: str, attempt: Hashable, r: Resources) -> bool:
        """An attempt reserved on ``node_id`` was handed to the backend: True when it holds its cores now,
        False when it waits in the node's queue for a free core (first come, first served).

        A ``cpu=0`` task needs no core, so it always starts. Which waiting task Ray actually starts is
        Ray's choice; the count of cores is what matters, so "running" is approximate for prefetched tasks.
        """
        cpu = r.cpu
        if cpu == 0:
            return True
        cores = self._cores.get(node_id)
        if cores is None:
            cores = self._cores[node_id] = _Cores()
        node = self.nodes.get(node_id)
        if node is not None and cores.busy + cpu <= node.cpu + _EPS:
            cores.busy += cpu
            cores.executing[attempt] = cpu
            return True
        cores.waiting[attempt] = cpu
        return False

    def release(self, node_id: str, r: Resources, attempt: Hashable | None = None) -> Sequence[Hashable]:
        """Give back a reservation; with ``attempt`` (one passed to :meth:`start`), also its cores, or its
        place in the node's queue. Returns the waiting attempts that now hold the cores it freed, in the
        order they started waiting."""
        node = self.nodes.get(node_id)
        if node is None:
            return _NOTHING
        node.release(r)
        if attempt is None or r.cpu == 0:
            return _NOTHING
        cores = self._cores.get(node_id)
        if cores is None:
            return _NOTHING
        waiting = cores.waiting
        cpu = cores.executing.pop(attempt, None)
        if cpu is not None:
            cores.busy = max(0.0, cores.busy - cpu)
        else:
            waiting.pop(attempt, None)  # it never got a core
        if not waiting:
            return _NOTHING
        started: list[Hashable] = []
        limit = node.cpu + _EPS
        while waiting:
            first, need = next(iter(waiting.items()))
            if cores.busy + need > limit:
                break
            del waiting[first]
            cores.busy += need
            cores.executing[first] = need
            started.append(first)
        return started

    def lease(self, key: Hashable, r: Resources) -> str | None:
        """A long-lived reservation (a model pool's replica) on the node with the most free CPU where ``r``
        fits now; None when none does. It holds until :meth:`end_lease`, so tasks and other leases see it."""
        if key in self.leases:
            return self.leases[key][0]
        node_id = self.try_place(r)
        if node_id is not None:
            self.leases[key] = (node_id, r)
        return node_id

    def end_lease(self, key: Hashable) -> None:
        held = self.leases.pop(key, None)
        if held is not None:
            self.release(held[0], held[1])

    def gpu_fraction(self, node_id: str, r: Resources) -> float:
        """GPUs to ask the backend for on that node (see :meth:`Node.gpu_fraction`)."""
        return self.nodes[node_id].gpu_fraction(r)

    def observe(self, node_id: str | None, seconds: float) -> None:
        """A CPU task ran ``seconds`` on the node: this sets how deep its prefetch queue is."""
        node = self.nodes.get(node_id or "")
        if node is not None:
            node.observe(seconds)

    def drain(self, node_id: str) -> Node:
        """Take no new attempts on the node (those running there finish); KeyError for an unknown node."""
        node = self.nodes[node_id]
        node.draining = True
        return node

    def find(self, node: str) -> Node | None:
        """A node by its id (or a unique prefix of it) or its IP address."""
        exact = self.nodes.get(node)
        if exact is not None:
            return exact
        matches = [n for n in self.nodes.values() if n.address == node or n.node_id.startswith(node)]
        alive = [n for n in matches if n.alive]
        return (alive or matches)[0] if len(alive or matches) == 1 else None

    def alive_node_ids(self) -> set[str]:
        return {node_id for node_id, node in self.nodes.items() if node.alive}

    def busy_cpu(self, node_id: str) -> float:
        """Cores the manager believes executing on the node (for views and tests)."""
        cores = self._cores.get(node_id)
        return cores.busy if cores is not None else 0.0

    def waiting(self, node_id: str) -> list[Hashable]:
        """Attempts waiting for a core on the node, first come first."""
        cores = self._cores.get(node_id)
        return list(cores.waiting) if cores is not None else []

    def totals(self) -> dict[str, float]:
        alive = [n for n in self.nodes.values() if n.alive]
        return {
            "nodes": len(alive),
            "cpu": sum(n.cpu for n in alive),
            "gpu": sum(n.gpu for n in alive),
            "memory_mb": sum(n.memory_mb for n in alive),
            "gpu_memory_mb": sum(n.gpu_memory_mb for n in alive),
            "used_cpu": round(sum(n.used_cpu for n in alive), 4),
            "used_gpu": round(sum(n.used_gpu for n in alive), 4),
            "used_memory_mb": sum(n.used_memory_mb for n in alive),
            "running_tasks": sum(n.running for n in alive),
        }


def _headroom(node: Node) -> tuple[float, int]:
    return (node.cpu - node.used_cpu, -node.running)
