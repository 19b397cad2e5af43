"""The head's side of Ray: connect, read the cluster, submit attempts pinned to a node, cancel them.

This is the only module of the head that calls Ray; :class:`RayBackend` implements the orchestrator's
:class:`~lattice.core.backend.Backend` protocol. It reports each attempt's end through a callback so the
orchestrator can stay an event-driven asyncio loop (no polling of Ray), with the attempt's
:class:`~lattice.wire.attempt.Envelope` or, when Ray raised instead, an
:class:`~lattice.wire.failures.ErrorInfo` (``lattice.executor.failures``): what Ray's exceptions mean is
decided here, so the orchestrator never sees one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import pickle
from functools import partial
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lattice.core.backend import Attempt, DoneCallback
from lattice.core.cluster import GPUInfo, Node
from lattice.executor.failures import error_from_ray_exception
from lattice.executor.gpu import probe_gpus
from lattice.executor.runner import IOExecutor, run_task
from lattice.wire.attempt import AttemptPayload
from lattice.wire.failures import ErrorInfo, ErrorKind
from lattice.wire.resources import ResourceClass

__all__ = ["Attempt", "RayBackend"]

log = logging.getLogger("lattice.dispatch")

_MB = 1024 * 1024
#: resources Ray itself defines; every other one a node offers is a custom resource (``--resources``)
_RAY_OWN = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


def _error_info(exc: BaseException) -> ErrorInfo:
    """What Ray raised for an attempt, as data. Never raises: this runs on a Ray thread, where an exception
    would lose the completion and leave the task running forever in the head's eyes."""
    try:
        return error_from_ray_exception(exc)
    except Exception as mapping_error:  # noqa: BLE001 - str() of an exception may raise anything
        return ErrorInfo(ErrorKind.INTERNAL, type(exc).__name__, f"(could not describe it: {mapping_error!r})")


def _when_done(ref: Any, on_done: DoneCallback) -> None:
    """Call ``on_done`` with the attempt's envelope, or with what Ray raised for it (as an ErrorInfo).

    ``ObjectRef._on_completed`` hands over the value directly; ``future()`` wraps the same callback in a
    ``concurrent.futures.Future`` (a lock and a condition per task), used only where the former is absent.
    """
    on_completed = getattr(ref, "_on_completed", None)
    if on_completed is not None:
        def deliver(result: Any) -> None:
            if isinstance(result, BaseException):
                on_done(None, _error_info(result))
            else:
                on_done(result, None)

        on_completed(deliver)
        return

    def from_future(future: concurrent.futures.Future) -> None:
        error = future.exception()
        if error is not None:
            on_done(None, _error_info(error))
        else:
            on_done(future.result(), None)

    ref.future().add_done_callback(from_future)


def _shared(on_done: DoneCallback, envelope: Any, error: ErrorInfo | None) -> None:
    """An attempt of a node's shared I/O executor: if its worker died, every attempt in it died with it and
    which one crashed it is unknown, so the error says so (the run algorithm re-runs each isolated)."""
    if error is not None and error.kind is ErrorKind.WORKER_DIED:
        error = dataclasses.replace(error, detail={**error.detail, "shared_executor": True})
    on_done(envelope, error)


class RayBackend:
    def __init__(self, address: str, namespace: str = "lattice", io_slots: int = 256) -> None:
        self.address = address
        self.namespace = namespace
        self.io_slots = io_slots
        self._remote_run = None
        self._io_executors: dict[str, Any] = {}
        self._remotes: dict[tuple[str, float, float, int, tuple[tuple[str, float], ...]], Any] = {}
        self._gpu_info: dict[str, list[GPUInfo]] = {}

    def connect(self) -> None:
        # Ray puts its driver's working directory first on every worker's sys.path; the head's is
        # often $HOME or a checkout, which no task should be able to import or read from. "/" adds
        # nothing a worker does not already see (and the sandboxes never read sys.path: paths.py).
        previous = os.getcwd()
        os.chdir("/")
        try:
            ray.init(address=self.address, namespace=self.namespace, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            cause = str(exc.__cause__ or exc)
            hint = ("; the cluster uses token auth: give the head its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
                    "or ~/.ray/auth_token)") if "AuthToken" in cause or "Authentication" in cause else ""
            raise ConnectionError(f"cannot connect to the Ray cluster at {self.address} ({cause}){hint}") from exc
        finally:
            os.chdir(previous)
        self._remote_run = ray.remote(max_retries=0)(run_task)

    def shutdown(self) -> None:
        for actor in self._io_executors.values():
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - the cluster may already be gone
                pass
        self._io_executors.clear()
        if ray.is_initialized():
            ray.shutdown()

    # --- cluster view -------------------------------------------------------------------------------

    def nodes(self) -> list[Node]:
        out = []
        for info in ray.nodes():
            resources = info.get("Resources", {})
            node_id = info["NodeID"]
            alive = bool(info.get("Alive"))
            gpu = float(resources.get("GPU", 0))
            if alive and gpu > 0 and node_id not in self._gpu_info:
                self._gpu_info[node_id] = self._probe_gpus(node_id)
            labels = {k: str(v) for k, v in (info.get("Labels") or {}).items()}
            custom = {k: float(v) for k, v in resources.items() if k not in _RAY_OWN
                      and not k.startswith(("node:", "accelerator_type:"))}
            accel = [k for k in resources if k.startswith("accelerator_type:")]
            if accel:
                labels["accelerator_type"] = accel[0].split(":", 1)[1]
            out.append(Node(
                node_id=node_id,
                address=str(info.get("NodeManagerAddress", "")),
                cpu=float(resources.get("CPU", 0)),
                gpu=gpu,
                memory_mb=int(resources.get("memory", 0) // _MB),
                gpus=self._gpu_info.get(node_id, []),
                labels=labels,
                custom=custom,
                alive=alive,
                io_slots=self.io_slots,
            ))
        return out

    def _probe_gpus(self, node_id: str) -> list[GPUInfo]:
        try:
            probe = ray.remote(probe_gpus).options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
            found = ray.get(probe.remote(), timeout=30)
        except Exception as exc:  # noqa: BLE001 - a node without NVML still runs GPU tasks
            log.warning("GPU probe on node %s failed: %s", node_id, exc)
            return []
        return [GPUInfo(g["index"], g["name"], g["memory_total_mb"]) for g in found]

    # --- submission ---------------------------------------------------------------------------------

    def put(self, value: Any) -> Any:
        return ray.put(value)

    def submit(self, attempt: Attempt, on_done: DoneCallback) -> Any:
        """Submit an attempt; ``on_done(envelope, error)`` is called on a Ray thread when it ends."""
        r = attempt.resources
        # Plain data (str, bytes, numbers, dicts in a slotted dataclass), pickled here in C: cheaper than
        # letting Ray walk the argument, which is most of the cost of a submit after Ray's own bookkeeping.
        payload = pickle.dumps(attempt.payload, protocol=5)
        if r.resource_class is ResourceClass.IO and not attempt.killable and not attempt.isolated:
            actor = self._io_executor(attempt.node_id)
            ref = actor.run.remote(payload, attempt.fn_ref, *attempt.upstream)
            _when_done(ref, partial(_shared, on_done))
            return ref
        else:
            remote = self._remote_for(attempt.node_id, r.cpu, attempt.gpu_fraction, r.memory,
                                      tuple(sorted(r.custom.items())))
            ref = remote.remote(payload, attempt.fn_ref, *attempt.upstream)
        _when_done(ref, on_done)
        return ref

    def _remote_for(self, node_id: str, cpu: float, gpu: float, memory_mb: int,
                    custom: tuple[tuple[str, float], ...] = ()) -> Any:
        """The remote function with these options, built once: ``.options()`` costs as much as a submit."""
        key = (node_id, cpu, gpu, memory_mb, custom)
        remote = self._remotes.get(key)
        if remote is None:
            options: dict[str, Any] = {
                "num_cpus": cpu,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
            }
            if gpu:
                options["num_gpus"] = gpu
            if memory_mb:
                options["memory"] = memory_mb * _MB
            if custom:
                options["resources"] = dict(custom)
            assert self._remote_run is not None, "connect() first"
            remote = self._remote_run.options(**options)
            if len(self._remotes) > 4096:
                self._remotes.clear()
            self._remotes[key] = remote
        return remote

    def _io_executor(self, node_id: str) -> Any:
        actor = self._io_executors.get(node_id)
        if actor is None:
            actor = ray.remote(IOExecutor).options(
                num_cpus=0,
                max_concurrency=self.io_slots,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                max_restarts=-1,
                max_task_retries=0,
            ).remote()
            self._io_executors[node_id] = actor
        return actor

    def sample_usage(self, node_id: str) -> Any:
        """A ref to one utilization sample taken on the node (``node_usage``), by its I/O executor: one long-lived
        process, so its CPU % is over the time since the last sample. Called from the sampling thread, so it
        never creates an executor (the loop does); a node without one yet gets a one-off task instead."""
        actor = self._io_executors.get(node_id)
        if actor is not None:
            return actor.usage.remote()
        from lattice.executor.node_usage import sample_usage

        return ray.remote(sample_usage).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()

    def warm_up(self, nodes: list[Node]) -> None:
        """Start each node's I/O executor and one worker per core now (importing Lattice in a fresh
        worker takes a second or more), so the first tasks do not pay for it."""
        refs = [self._io_executor(n.node_id).ping.remote() for n in nodes]
        noop = pickle.dumps(AttemptPayload(builtin="noop"), protocol=5)
        for node in nodes:
            remote = self._remote_for(node.node_id, 1.0 if node.cpu >= 1 else node.cpu, 0.0, 0)
            refs += [remote.remote(noop, None) for _ in range(max(1, int(node.cpu)))]
        try:
            ray.get(refs, timeout=60)
        except Exception as exc:  # noqa: BLE001 - tasks still run; only the first is slower
            log.warning("warming up the I/O executors failed: %s", exc)

    def cancel(self, ref: Any, force: bool) -> None:
        try:
            ray.cancel(ref, force=force)
        except Exception as exc:  # noqa: BLE001 - already finished, or an actor task (not forcible)
            log.debug("cancel of %s: %s", ref, exc)
            if force:
                try:
                    ray.cancel(ref, force=False)
                except Exception:  # noqa: BLE001
                    pass
