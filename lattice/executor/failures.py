"""Turns what Ray raises for an attempt into an :class:`~lattice.wire.failures.ErrorInfo`.

The runner never lets a user exception escape, so anything Ray raises here is about the attempt's
process or the cluster (a worker killed, out of memory, a node lost), never a user object. This belongs to
the Ray backend (``lattice.executor.dispatch`` calls it on Ray's completion thread): the orchestrator only
ever receives the ErrorInfo.
"""

from __future__ import annotations

from ray import exceptions as rex

from lattice.wire.failures import ErrorInfo, ErrorKind


def error_from_ray_exception(exc: BaseException) -> ErrorInfo:
    name = type(exc).__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if isinstance(exc, rex.OutOfMemoryError):
        return ErrorInfo(ErrorKind.MEMORY_EXCEEDED, name,
                         "the node ran low on memory and Ray killed the task's worker: " + message)
    if isinstance(exc, rex.TaskCancelledError):
        return ErrorInfo(ErrorKind.CANCELLED, name, "the task was cancelled")
    if isinstance(exc, rex.NodeDiedError | rex.TaskUnschedulableError | rex.ActorUnschedulableError):
        # an attempt pinned to a node (NodeAffinity, soft=False) that died before or while it ran
        return ErrorInfo(ErrorKind.NODE_LOST, name, "the node running the task died: " + message)
    if isinstance(exc, rex.WorkerCrashedError | rex.ActorDiedError | rex.ActorUnavailableError):
        return ErrorInfo(ErrorKind.WORKER_DIED, name,
                         "the worker process running the task died (killed by a signal, or it "
                         "exited abruptly): " + message)
    if isinstance(exc, rex.ObjectLostError | rex.RaySystemError):
        return ErrorInfo(ErrorKind.WORKER_DIED, name, "a node or an object it held was lost: " + message)
    return ErrorInfo(ErrorKind.INTERNAL, name, message, traceback=str(exc))
