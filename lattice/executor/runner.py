"""What runs inside a Ray worker for one task attempt.

At sandbox level ``none`` (trusted code) it decodes the task's inputs (literals from the spec,
upstream outputs that Ray resolved from the object store) and calls the function in this process.
Above ``none`` it decodes *nothing*: the function's bytes and every input go into the sandbox still
encoded, and only the sandboxed child unpickles them — a pickle runs code when it is loaded, and the
worker holds Ray's token, the network and other runs' tasks. Either way it returns an
:class:`~lattice.wire.attempt.Envelope`: plain data with the encoded outputs, or the error, plus logs and
timings. The envelope is what the head stores and what downstream tasks receive as their upstream argument.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections import OrderedDict
from typing import Any

import cloudpickle

from lattice.executor.builtins import BUILTINS
from lattice.executor.invoke import InvocationResult, invoke
from lattice.executor.livelog import live_attempt
from lattice.executor.logcapture import capture_output
from lattice.executor.tracing import export_sandbox_spans, sandbox_trace_env, trace_context
from lattice.wire.attempt import AttemptPayload, Encoded, Envelope
from lattice.wire.context import TaskContext, task_context
from lattice.wire.encoding import decode_value
from lattice.wire.failures import ErrorInfo, ErrorKind, error_info_from_exception
from lattice.wire.sandbox import SandboxLevel

_FN_CACHE: OrderedDict[str, Any] = OrderedDict()
_FN_CACHE_SIZE = 256
_FN_CACHE_LOCK = threading.Lock()


def _load_function(payload: AttemptPayload, fn_blob: bytes | None) -> Any:
    builtin = payload.builtin
    if builtin is not None:
        return BUILTINS[builtin]
    key = payload.fn_key
    with _FN_CACHE_LOCK:
        fn = _FN_CACHE.get(key) if key else None
        if fn is not None:
            _FN_CACHE.move_to_end(key)
            return fn
    fn = cloudpickle.loads(fn_blob)
    if key:
        with _FN_CACHE_LOCK:
            _FN_CACHE[key] = fn
            while len(_FN_CACHE) > _FN_CACHE_SIZE:
                _FN_CACHE.popitem(last=False)
    return fn


def _encoded_inputs(payload: AttemptPayload, upstream: tuple[Envelope, ...]) -> dict[str, Encoded]:
    """The task's inputs as (encoding, bytes), literals and upstream outputs alike; nothing decoded."""
    inputs: dict[str, Encoded] = dict(payload.literals)
    for name, (index, output) in payload.refs.items():
        inputs[name] = tuple(upstream[index].outputs[output])  # type: ignore[assignment]
    return inputs


def _decode_inputs(inputs: dict[str, Encoded]) -> dict[str, Any]:
    """Level ``none``: decode in this process; a sandboxed task's pickle only through the restricted decoder."""
    from lattice.wire.errors import UntrustedOutputError

    params: dict[str, Any] = {}
    for name, (encoding, data) in inputs.items():
        try:
            params[name] = decode_value(encoding, data)
        except UntrustedOutputError as exc:
            raise UntrustedInputError(
                f"input {name!r} comes from a task that ran in a sandbox and holds {exc.type_name!r}, which a "
                "task at sandbox level 'none' decodes only as plain data; run this task in a sandbox too, or "
                "return JSON or plain values upstream") from None
    return params


class UntrustedInputError(ValueError):
    """A level-``none`` task was given a sandboxed task's output that is not plain data."""


_NODE_ID: list[str] = []  # this worker's node, once known: a worker never moves, and asking Ray per task costs


def _node_id() -> str | None:
    if _NODE_ID:
        return _NODE_ID[0]
    try:
        import ray

        # is_initialized first: the runtime context outside Ray would start a local Ray instance
        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - outside Ray (tests, sandbox children)
        return None
    if node_id:
        _NODE_ID.append(node_id)
    return node_id


def run_task(payload: AttemptPayload | bytes, fn_blob: bytes | None, *upstream: Envelope) -> Envelope:
    """Run one attempt; never raises, so a user exception never crosses into the head as an object.

    ``payload`` comes pickled by the head: plain data only (names, encoded literals, limits).
    """
    started = time.time()
    if isinstance(payload, bytes):
        payload = pickle.loads(payload)  # written by the head, not by a task
    stdout = stderr = ""
    try:
        inputs = _encoded_inputs(payload, upstream)
        sandbox = payload.sandbox
        # Exactly a level's name (the head sends nothing else): an unknown one raises and fails the
        # attempt here, before anything is decoded, instead of falling through to the in-process path.
        if sandbox and SandboxLevel(sandbox.get("level", SandboxLevel.NONE)).sandboxed:
            with live_attempt(payload.run_id, payload.task, payload.attempt_id, payload.log_limit):
                result, stdout, stderr = _run_sandboxed(fn_blob, inputs, payload, sandbox)
        else:
            params = _decode_inputs(inputs)
            fn = _load_function(payload, fn_blob)
            context = TaskContext(payload.run_id, payload.task, payload.attempt_id) if payload.run_id else None
            with live_attempt(payload.run_id, payload.task, payload.attempt_id, payload.log_limit) as live, \
                    capture_output(payload.log_limit, live.write if live else None) as (out, err), \
                    task_context(context), trace_context(payload.trace):
                result = invoke(fn, params, list(payload.outputs), payload.max_output_bytes)
            stdout, stderr = out.text(), err.text()
    except BaseException as exc:  # noqa: BLE001 - decoding inputs can raise anything user types raise
        info = error_info_from_exception(exc)
        info = ErrorInfo(ErrorKind.EXCEPTION, info.type, f"while preparing the task: {info.message}",
                         info.traceback)
        result = InvocationResult(error=info.to_dict())
    return Envelope(outputs=result.outputs, error=result.error, stdout=stdout, stderr=stderr, started_at=started,
                    finished_at=time.time(), node_id=_node_id(), pid=os.getpid())


def _run_sandboxed(fn_blob: bytes | None, inputs: dict[str, Encoded], payload: AttemptPayload,
                   sandbox: dict[str, Any]) -> tuple[InvocationResult, str, str]:
    """Hand the still-encoded function and inputs to the sandbox (a builtin is pickled by reference)."""
    from lattice.executor.sandbox import SandboxConfig, execute_encoded

    if fn_blob is None:
        fn_blob = cloudpickle.dumps(BUILTINS[payload.builtin])  # type: ignore[index]
    config = SandboxConfig.from_dict({"max_result_bytes": payload.max_output_bytes, **sandbox})
    workspace = payload.env.get("LATTICE_WORKSPACE")
    if workspace and workspace in config.extra_write_paths:  # the sandbox opens it before the task runs
        os.makedirs(workspace, mode=0o700, exist_ok=True)
    env = dict(payload.env)
    gpu_ids = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu_ids is not None:
        env.setdefault("CUDA_VISIBLE_DEVICES", gpu_ids)
    env.update(sandbox_trace_env(payload.trace))
    with contextlib.ExitStack() as stack:
        if payload.pools and not config.network:  # a network-off task's only way out: its declared pools
            from lattice.executor.pool_gateway import PoolGateway, PoolRoute

            gateway = stack.enter_context(PoolGateway({alias: PoolRoute(url=r["url"], key=r["key"])
                                                       for alias, r in payload.pools.items()}))
            config = config.merged(pool_socket=gateway.path)
        outcome = execute_encoded(fn_blob, inputs, list(payload.outputs), config, env=env)
    export_sandbox_spans(outcome.result.spans, payload.trace)
    return outcome.result, outcome.stdout, outcome.stderr


class IOExecutor:
    """A threaded executor per node for I/O-bound tasks (``cpu=0``).

    Such tasks hold no core, so running them as threads of one long-lived worker avoids starting a
    Ray worker process per concurrent task (about a second each on a small machine).
    """

    def ping(self) -> str | None:
        return _node_id()

    def run(self, payload: AttemptPayload | bytes, fn_blob: bytes | None, *upstream: Envelope) -> Envelope:
        return run_task(payload, fn_blob, *upstream)

    def usage(self) -> dict[str, Any]:
        """This node's live utilization (``lattice.executor.node_usage``), asked for by the head every 2 s."""
        from lattice.executor.node_usage import sample_usage

        return sample_usage()
