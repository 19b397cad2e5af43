"""Engine processes on the node the resource manager chose: one small Ray actor per replica.

The actor is pinned to the node (hard node affinity) and asks Ray for no CPU (the lease in Lattice's
resource manager is the reservation; the actor is only the hand on that node) and for the GPU fraction of
the lease, so Ray sets ``CUDA_VISIBLE_DEVICES`` for it and the engine inherits it. It starts the engine in
a new session (its own process group) with ``PR_SET_PDEATHSIG``, so the group is killed when the pool
stops the replica, and the engine dies with the actor when the head (the actor's owner) or the node goes.

This module imports Ray; the API layer never imports it (``cli/server.py`` hands it to the manager).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class EngineHost:
    """Lives on one node; starts, watches and stops one engine process group there."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def free_port(self, host: str) -> int:
        with socket.socket() as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])

    def start(self, argv: list[str], env: dict[str, str], log_path: str) -> int:
        full_env = {**os.environ, **env}
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()
        return self.proc.pid

    def returncode(self) -> int | None:
        """None while the engine runs, else its exit status (negative: killed by that signal)."""
        return None if self.proc is None else self.proc.poll()

    def gpu_memory_mb(self) -> int | None:
        """GPU memory NVML sees the engine's process group use on this node; None without NVML or a GPU."""
        if self.proc is None:
            return None
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return None
        try:
            group = {pid for pid in _pids() if _pgid(pid) == self.proc.pid}
            used = 0
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if p.pid in group and p.usedGpuMemory:
                        used += int(p.usedGpuMemory)
            return used // 2**20
        except pynvml.NVMLError:
            return None
        finally:
            pynvml.nvmlShutdown()

    def stop(self, grace_s: float = 5.0) -> None:
        proc = self.proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            if proc.poll() is not None:
                break
        try:  # the rest of the group (the engine's own children)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@dataclass
class RayEngineHandle:
    actor: Any
    pid: int
    port: int


class RayLauncher:
    """Implements ``manager.Launcher`` with :class:`EngineHost` actors."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self._remote = ray.remote(EngineHost)

    def start(self, replica_id: str, node_id: str, host: str, gpu_fraction: float,
              argv_for_port: Any, env: dict[str, str]) -> RayEngineHandle:
        actor = self._remote.options(
            num_cpus=0, num_gpus=gpu_fraction, name=None, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
        try:
            port = ray.get(actor.free_port.remote(host), timeout=120)
            argv, extra_env = argv_for_port(port)
            pid = ray.get(actor.start.remote(argv, {**env, **extra_env},
                                             os.path.join(self.log_dir, f"{replica_id}.log")), timeout=60)
        except BaseException:
            ray.kill(actor)
            raise
        return RayEngineHandle(actor, pid, port)

    def returncode(self, handle: RayEngineHandle) -> int | None:
        try:
            return ray.get(handle.actor.returncode.remote(), timeout=30)
        except ray.exceptions.RayActorError:
            return -9  # the actor (and with it the engine) is gone: the node died
        except ray.exceptions.GetTimeoutError:
            return None

    def gpu_memory_mb(self, handle: RayEngineHandle) -> int | None:
        try:
            return ray.get(handle.actor.gpu_memory_mb.remote(), timeout=30)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return None

    def stop(self, handle: RayEngineHandle) -> None:
        try:
            ray.get(handle.actor.stop.remote(), timeout=30)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        finally:
            ray.kill(handle.actor)
