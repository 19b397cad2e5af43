"""What runs on a Lattice worker for one LangGraph node call.

A compiled graph does not survive cloudpickle, and the worker has no Pregel loop, so the node runs
without one: :func:`execute_node` rebuilds just enough of LangGraph's per-task context for the
functions a node may call (``get_config()``, ``interrupt()``, ``get_stream_writer()``, and the
``config``/``writer``/``runtime`` parameters), calls the node, and hands back what happened as data:

- ``{"kind": "return", "value": ..., "sends": [...], "null_resume_consumed": bool}``
- ``{"kind": "raise", "exc": <cloudpickled exception>, "type": ..., "message": ..., ...}``

A node's own exception (and ``GraphInterrupt``, LangGraph's pause signal) is *returned*, cloudpickled,
so the client can re-raise the very same exception type into the graph: LangGraph's ``RetryPolicy``
and interrupt handling depend on the class and its attributes, and only the type *name* of an
exception crosses Lattice's wire. Failures Lattice itself decides (timeout, memory, sandbox, a killed
worker) still fail the run and reach the graph as Lattice's typed errors.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import inspect
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cloudpickle

from lattice.client import endpoints
from lattice.client.base import ClientConfig
from lattice.client.langgraph.pickling import install as _trim_pickled_namespaces

if TYPE_CHECKING:
    from lattice.wire.restricted_pickle import PickleTrust

# Keys of the call payload the client builds (see node.py); kept here, the module both sides import.
STATE, CONFIG, RESUME_VALUES, NULL_RESUME, CHECKPOINT_NS, CONTEXT, STREAM = (
    "state", "config", "resume", "null_resume", "checkpoint_ns", "context", "stream")
#: the ``Runtime`` fields a node may read: ``execution_info``, ``server_info`` and the run control's drain
#: reason (a drain the node requests goes back to the caller's ``RunControl`` as the outcome's ``drain``)
EXECUTION_INFO, SERVER_INFO, DRAIN = "execution_info", "server_info", "drain"
#: how to relay the node's LangChain callbacks to the caller's handlers (``callbacks.relay_spec``)
CALLBACKS = "callbacks"
_NO_VALUE = {"__lattice_no_value__": True}
_trim_pickled_namespaces()  # the worker ships the node's outcome back by the same rules


@dataclass(frozen=True)
class NodeOptions:
    """How the node function is called; fixed at decoration time and shipped with it."""

    name: str
    is_async: bool
    kwargs: tuple[str, ...]  # which of config / writer / runtime the function declares


def encode_chunk(chunk: Any) -> dict[str, Any]:
    """A custom stream chunk as a JSON event body: inline when JSON allows it, cloudpickle otherwise."""
    try:
        if json.loads(json.dumps(chunk)) == chunk:
            return {"langgraph_custom": chunk}
    except (TypeError, ValueError):
        pass
    return {"langgraph_custom_pickle": base64.b64encode(cloudpickle.dumps(chunk)).decode()}


_MESSAGE_CLASSES = ("AIMessage", "HumanMessage", "SystemMessage", "ToolMessage", "FunctionMessage", "ChatMessage",
                    "RemoveMessage")


@functools.cache
def langgraph_safe_types() -> tuple[type, ...]:
    """The LangGraph and LangChain data types a node's outcome or stream chunk may hold, trusted by default.

    Plain data only (no functions): what a node returns or raises as control flow (``Send``,
    ``Command``, ``Overwrite``, ``Interrupt`` and the ``GraphBubbleUp`` family behind ``interrupt()``
    and ``Command(graph=PARENT)``) and LangChain's message classes with their chunks. They are the
    classes themselves, so a pickle names them by their real module whatever LangGraph re-exports.
    """
    import langchain_core.messages as messages
    from langgraph import errors
    from langgraph.types import Command, Interrupt, Overwrite, Send

    found: list[type] = [Send, Command, Overwrite, Interrupt, errors.GraphBubbleUp, errors.GraphInterrupt,
                         errors.ParentCommand]
    for name in ("NodeInterrupt", "GraphDrained"):  # NodeInterrupt is deprecated, GraphDrained is new
        if isinstance(getattr(errors, name, None), type):
            found.append(getattr(errors, name))
    for name in _MESSAGE_CLASSES:
        for variant in (name, f"{name}Chunk"):
            cls = getattr(messages, variant, None)
            if isinstance(cls, type):
                found.append(cls)
    from langchain_core.messages import base

    if isinstance(accessor := getattr(base, "TextAccessor", None), type):  # a str subclass a message may hold
        found.append(accessor)
    return tuple(found)


def langgraph_trust(trust: PickleTrust | None = None) -> PickleTrust:
    """``trust`` (default: nothing trusted) with :func:`langgraph_safe_types` added."""
    from lattice.wire.restricted_pickle import PickleTrust

    return (trust or PickleTrust()).but(trusted_types=langgraph_safe_types())


def decode_chunk(data: dict[str, Any], trust: PickleTrust | None = None, task: str | None = None) -> tuple[bool, Any]:
    """``(True, chunk)`` for an event made by :func:`encode_chunk`, ``(False, None)`` otherwise.

    A pickled chunk was posted by the task itself (any code that can reach the head could post one),
    so it is always read as a sandboxed task's pickle: the restricted decoder with ``trust``'s types
    and the LangGraph safe set, or in full when ``trust`` trusts outputs. ``task`` names the sender in
    an :class:`~lattice.UntrustedOutputError`.
    """
    if "langgraph_custom" in data:
        return True, data["langgraph_custom"]
    if "langgraph_custom_pickle" in data:
        from lattice.wire.encoding import Encoding, decode_task_value

        raw = base64.b64decode(data["langgraph_custom_pickle"])
        return True, decode_task_value(Encoding.SANDBOXED_PICKLE, raw, langgraph_trust(trust), task=task,
                                       output="custom stream chunk")
    return False, None


class RemoteStreamWriter:
    """``get_stream_writer()`` on a worker: each chunk is POSTed to the head as a ``custom`` run event.

    The writer posts to the run it executes in (``lattice.current_task()``); only a runtime without
    that context falls back to finding the run by the unique ``call`` tag the client gave it. This
    needs the network from the worker to the head: at sandbox levels ``seccomp``/``docker`` pass
    ``network=True``. The requests are the client core's (:mod:`lattice.client.endpoints`), sent with
    the standard library (:class:`~lattice.client.worker_http.WorkerHTTP`), so a node that streams
    does not load httpx into the task's process; the token is the one the client handed over, never
    one found on the worker.
    """

    def __init__(self, url: str, token: str | None, call_id: str, task: str) -> None:
        from lattice.client.worker_http import WorkerHTTP  # urllib.request: only for a node that streams

        self.call_id, self.task = call_id, task
        self._http = WorkerHTTP(ClientConfig(url.rstrip("/"), token, timeout=30.0))
        self._run_id: str | None = None

    def _find_run(self) -> str:
        import time

        for delay in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0):
            time.sleep(delay)
            for run in self._http.send(endpoints.list_runs(state="running", limit=1000)):
                if (run.get("tags") or {}).get("call") == self.call_id:
                    return run["run_id"]
        raise RuntimeError(f"lattice: cannot find the run of node call {self.call_id} to stream to")

    def __call__(self, chunk: Any) -> None:
        self.post(encode_chunk(chunk))

    def post(self, body: dict[str, Any]) -> None:
        """One ``custom`` run event (a stream chunk, or a relayed callback: :mod:`.callbacks`)."""
        import time

        if self._run_id is None:
            from lattice.wire.context import current_task

            context = current_task()
            self._run_id = context.run_id if context is not None else self._find_run()
        from lattice.wire.errors import NotFoundError

        for delay in (0.05, 0.1, 0.2, 0.5, 1.0, None):
            try:
                self._http.send(endpoints.post_event(self._run_id, body, task=self.task))
                return
            except NotFoundError:
                # the run is this task's own, so it exists: under load the head's store may not have
                # written its row yet when the task already runs (seen once in the conformance run)
                if delay is None:
                    raise
                time.sleep(delay)


def _remote_config(call: dict[str, Any], sends: list[Any], null_state: dict[str, Any],
                   writer: Any, callbacks: Any = None) -> tuple[dict[str, Any], Any]:
    """A RunnableConfig carrying the scratchpad (interrupt/resume), send hook and runtime."""
    from langgraph._internal._constants import (
        CONFIG_KEY_CALL,
        CONFIG_KEY_CHECKPOINT_NS,
        CONFIG_KEY_RUNTIME,
        CONFIG_KEY_SCRATCHPAD,
        CONFIG_KEY_SEND,
    )
    from langgraph._internal._scratchpad import PregelScratchpad
    from langgraph.pregel._algo import LazyAtomicCounter
    from langgraph.runtime import RunControl, Runtime

    def get_null_resume(consume: bool = False) -> Any:
        if null_state["value"] is _NO_VALUE or null_state["consumed"]:
            return None
        if consume:
            null_state["consumed"] = True
        return null_state["value"]

    scratchpad = PregelScratchpad(
        step=0, stop=0, call_counter=LazyAtomicCounter(), interrupt_counter=LazyAtomicCounter(),
        get_null_resume=get_null_resume, resume=list(call.get(RESUME_VALUES) or []),
        subgraph_counter=LazyAtomicCounter())
    control = RunControl()
    if call.get(DRAIN) is not None:
        control.request_drain(call[DRAIN])
    runtime = Runtime(context=call.get(CONTEXT), store=None, stream_writer=writer,
                      execution_info=call.get(EXECUTION_INFO), server_info=call.get(SERVER_INFO), control=control)
    config = dict(call.get(CONFIG) or {})
    # the caller's handlers stay in its process; a relay stands in for them when it has any (.callbacks)
    config["callbacks"] = callbacks
    config["configurable"] = {
        **(config.get("configurable") or {}),
        CONFIG_KEY_SCRATCHPAD: scratchpad,
        CONFIG_KEY_SEND: sends.append,
        CONFIG_KEY_CHECKPOINT_NS: call.get(CHECKPOINT_NS, ""),
        CONFIG_KEY_RUNTIME: runtime,
        CONFIG_KEY_CALL: _call_in_process,
    }
    return config, runtime


class _DoneFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A finished future a sync node reads with ``.result()`` and an async one awaits."""

    def __await__(self) -> Any:
        return self.result()
        yield  # unreachable: makes this a generator, which ``await`` needs


def _call_in_process(func: Any, input: tuple[tuple[Any, ...], dict[str, Any]], *, retry_policy: Any = None,
                     cache_policy: Any = None, callbacks: Any = None, timeout: Any = None) -> Any:
    """LangGraph's call hook for a functional-API ``@task`` called inside a remote node.

    In a graph the call becomes a task of the Pregel loop; on the worker there is no loop, so it runs
    here, inside the node, at once (no separate checkpoint write: the node is the unit LangGraph
    records, and it records the node's result).
    """
    args, kwargs = input
    future = _DoneFuture()
    try:
        value = func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - raised where the node reads the future, as in a graph
        future.set_exception(exc)
        return future
    if inspect.isawaitable(value):
        return asyncio.ensure_future(value)
    future.set_result(value)
    return future


def execute_node(fn: Any, options: NodeOptions, params: dict[str, Any]) -> dict[str, Any]:
    """The Lattice task behind a remote node: ``params["call"]`` in, ``{"result": outcome}`` out."""
    from langchain_core.runnables.config import var_child_runnable_config

    call = params["call"]
    stream = call.get(STREAM)
    poster = (RemoteStreamWriter(stream["url"], stream.get("token"), stream["call_id"], stream["task"])
              if stream else None)
    # the writer is live only when the caller reads ``custom`` chunks; the poster may be there for callbacks
    writer: Any = poster if poster is not None and stream.get("custom", True) else (lambda _chunk: None)
    callbacks = None
    if poster is not None and call.get(CALLBACKS) is not None:
        from lattice.client.langgraph.callbacks import worker_callbacks

        callbacks = worker_callbacks(call[CALLBACKS], poster.post)
    sends: list[Any] = []
    null_state = {"value": call.get(NULL_RESUME, _NO_VALUE), "consumed": False}
    config, runtime = _remote_config(call, sends, null_state, writer, callbacks)
    kwargs = {"config": config, "writer": writer, "runtime": runtime}
    kwargs = {k: v for k, v in kwargs.items() if k in options.kwargs}
    token = var_child_runnable_config.set(config)
    try:
        value = fn(call[STATE], **kwargs)
        if options.is_async or inspect.isawaitable(value):
            value = asyncio.run(_await(value))
    except Exception as exc:  # noqa: BLE001 - any node exception goes back to the graph as itself
        return {"result": {**_raised(exc, sends, null_state), "drain": _drain(call, runtime)}}
    finally:
        var_child_runnable_config.reset(token)
    return {"result": {"kind": "return", "value": value, "sends": sends,
                       "null_resume_consumed": null_state["consumed"], "drain": _drain(call, runtime)}}


def _drain(call: dict[str, Any], runtime: Any) -> str | None:
    """The drain the node requested, if it did (one requested before the call is not news)."""
    control = runtime.control
    if control is None or not control.drain_requested or call.get(DRAIN) is not None:
        return None
    return control.drain_reason


async def _await(value: Any) -> Any:
    return await value


def _raised(exc: Exception, sends: list[Any], null_state: dict[str, Any]) -> dict[str, Any]:
    """An interrupt (GraphBubbleUp) is control flow: it is the call's result. Any other exception fails
    the run (type, message and traceback on the head) and travels pickled in the error's detail, so the
    client raises the node's own exception object into the graph."""
    from langgraph.errors import GraphBubbleUp

    if not isinstance(exc, GraphBubbleUp):
        raise exc
    return {"kind": "raise", "exc": cloudpickle.dumps(exc), "type": type(exc).__qualname__, "message": str(exc),
            "sends": sends, "null_resume_consumed": null_state["consumed"]}
