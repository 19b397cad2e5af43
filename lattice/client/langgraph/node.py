"""The client side of a remote LangGraph node: the wrapper LangGraph calls, and one Lattice run per call.

LangGraph calls the wrapper exactly as it would call the node (in its thread pool for a sync node,
on its event loop for an async one). The wrapper gathers what the node needs from LangGraph's
per-task context (state, a portable slice of the config, resume values for ``interrupt()``, the
runtime context, whether a ``custom`` stream is being read), starts a one-task Lattice run tagged
``{graph, thread, node}``, waits for it, and then replays on the client what the node did to the
task's context (resume writes) before returning its update or re-raising its exception.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import secrets
import threading
from typing import TYPE_CHECKING, Any

import cloudpickle

from lattice.client.decoding import results_or_raise
from lattice.client.langgraph.callbacks import decode_callback, relay_spec, replay
from lattice.client.langgraph.orchestration import holds_graph, refuse_remote_policy
from lattice.client.langgraph.pickling import install as _trim_pickled_namespaces
from lattice.client.langgraph.remote import (
    CALLBACKS,
    CHECKPOINT_NS,
    CONFIG,
    CONTEXT,
    DRAIN,
    EXECUTION_INFO,
    NULL_RESUME,
    RESUME_VALUES,
    SERVER_INFO,
    STATE,
    STREAM,
    NodeOptions,
    decode_chunk,
    execute_node,
)
from lattice.client.task import TaskDefinition, _ship_module_by_value, task
from lattice.client.workflow import LatticeWorkflow
from lattice.errors import ErrorKind, LatticeError, TaskFailed
from lattice.wire.encoding import Encoding, decode_task_value

if TYPE_CHECKING:
    from lattice.client.langgraph.client import LangGraphClient

_trim_pickled_namespaces()

_FORWARDED_KWARGS = ("config", "writer", "runtime")
_UNSUPPORTED_KWARGS = ("store", "previous")
_PORTABLE_CONFIG_KEYS = ("tags", "metadata", "run_name", "recursion_limit")


def node_name(fn: Any) -> str:
    """The name LangGraph gives a node added without one (``StateGraph._get_node_name``): its
    ``__name__``, else its class's name (a callable object)."""
    return str(getattr(fn, "__name__", None) or fn.__class__.__name__)


def lattice_task_name(name: str) -> str:
    """A node's name as a Lattice task name (letters, digits, ``_ . -``, a letter or ``_`` first).

    Only the Lattice run is named so: the graph keeps the node's own name, whatever characters it has.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:120]
    return cleaned if re.match(r"^[A-Za-z_]", cleaned) else f"node_{cleaned}"


def _accepted_kwargs(fn: Any, name: str) -> tuple[str, ...]:
    params = inspect.signature(fn).parameters
    bad = [param for param in _UNSUPPORTED_KWARGS if param in params]
    if bad:
        from lattice.errors import TaskDefinitionError

        raise TaskDefinitionError(
            f"node {name!r} takes {bad}: a remote node cannot reach the graph's store; "
            "read what it needs from the state or the config, or keep this node local")
    return tuple(name for name in _FORWARDED_KWARGS if name in params)


def _captured(fn: Any) -> dict[str, Any]:
    """What a node function refers to by name (its closure and globals) or a callable object holds."""
    target = getattr(fn, "__func__", fn)
    if inspect.isfunction(target):
        found = inspect.getclosurevars(target)
        return {**found.globals, **found.nonlocals}
    return dict(getattr(fn, "__dict__", {}) or {})


def check_portable(fn: Any, name: str) -> None:
    """Refuse, where the node is decorated, a node that cannot travel to a worker, naming what it captures.

    The code is pickled again when it is registered (on the first call); this catches what it already
    holds now (a connection, a lock, an open file) instead of failing deep inside a run.
    """
    try:
        cloudpickle.dumps(fn)
    except Exception as exc:  # cloudpickle raises TypeError, PicklingError, RecursionError...
        from lattice.errors import TaskDefinitionError

        culprit = next(((key, value) for key, value in _captured(fn).items() if not _picklable(value)), None)
        what = (f"captures {culprit[0]!r} (a {type(culprit[1]).__module__}.{type(culprit[1]).__qualname__})"
                if culprit else "holds something")
        raise TaskDefinitionError(
            f"LangGraph node {name!r} cannot run on Lattice: it {what} that cannot be sent to a worker "
            f"({type(exc).__name__}: {exc}). Create it inside the node, pass it in the config "
            "(config['configurable']), or keep this node local (do not decorate it)") from exc


def _picklable(value: Any) -> bool:
    """Whether ``value`` survives the trip: dumped *and* loaded (a proxy may dump and recurse on load)."""
    try:
        cloudpickle.loads(cloudpickle.dumps(value))
    except (Exception, RecursionError):  # noqa: BLE001 - anything that cannot travel stays on the client
        return False
    return True


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a RunnableConfig that means something on a worker: user keys, no Pregel internals."""
    out = {key: config[key] for key in _PORTABLE_CONFIG_KEYS if key in config and _picklable(config[key])}
    configurable = {
        key: value for key, value in (config.get("configurable") or {}).items()
        if not key.startswith("__") and key != "checkpoint_map" and _picklable(value)
    }
    out["configurable"] = configurable
    return out


def _writer_is_live(writer: Any, no_op: Any) -> bool:
    """Whether the graph is streaming ``custom`` chunks, i.e. whether relaying them is worth a WebSocket.

    Without ``stream_mode="custom"`` LangGraph hands nodes a writer whose body is ``pass`` (a new
    function per run, so it cannot be compared by identity): no names, no closure.
    """
    if writer is no_op:
        return False
    code = getattr(writer, "__code__", None)
    return code is None or bool(code.co_names or code.co_freevars)


class RemoteNode:
    """One decorated node: its Lattice task definition and how to call it remotely."""

    def __init__(self, client: LangGraphClient, fn: Any, policy: dict[str, Any]) -> None:
        self.client = client
        self.fn = fn
        from langgraph._internal._runnable import is_async_callable

        name = node_name(fn)
        self.options = NodeOptions(name=name, is_async=is_async_callable(fn), kwargs=_accepted_kwargs(fn, name))
        _ship_module_by_value(fn)  # the node's own module travels with it (tests, scripts)
        check_portable(fn, name)
        self._policy = policy
        self.definition: TaskDefinition = self._define()
        self._lock = threading.Lock()
        self._registered: LatticeWorkflow | None = None
        self._bound: tuple[Any, ...] = _closure_values(fn)

    def _define(self) -> TaskDefinition:
        return task(functools.partial(execute_node, self.fn, self.options), inputs=["call"], outputs=["result"],
                    name=lattice_task_name(self.options.name), **self._policy)

    def _workflow(self) -> LatticeWorkflow:
        """One registered workflow per node; each call is a run of it with the call as its input.

        The node's code travels once, with what its closure holds then. In-process, a variable the caller
        rebinds after defining the node (``expected = ...`` between two ``invoke``) is what the node reads
        next; so when a closure cell holds another object than at registration, the node is registered
        again and the next call runs the new version (a new workflow: the worker's cache is per workflow).
        An object changed in place is not seen: the worker has its own copy (docs/langgraph.md).
        """
        with self._lock:
            bound = _closure_values(self.fn)
            if self._registered is not None and not _same_objects(bound, self._bound):
                check_portable(self.fn, self.options.name)
                self.definition, self._registered = self._define(), None
            if self._registered is None:
                workflow = self.client.lattice.create_workflow(f"langgraph.{self.definition.name}")
                workflow.add_task(self.definition, inputs={"call": None})
                workflow.register()
                self._registered, self._bound = workflow, bound
            return self._registered

    def __reduce__(self) -> Any:
        """Pickled (another remote node calls this decorated function directly), it runs where it lands."""
        return LocalNode, (self.fn,)

    # --- the call -----------------------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        try:
            from langgraph.config import get_config

            return get_config()
        except RuntimeError:  # called outside a graph: no resume values, no stream
            return {}

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any], started: Any = None) -> Any:
        """Run the node on the cluster and return its update (or raise what it raised).

        ``started(run_id)`` is told the run's id as soon as it exists (so a cancelled ``ainvoke`` can
        cancel the run).
        """
        from langgraph._internal._constants import CONFIG_KEY_RUNTIME, CONFIG_KEY_SCRATCHPAD, CONFIG_KEY_SEND
        from langgraph.runtime import _no_op_stream_writer

        state = args[0] if args else kwargs.get("state")
        config = self._context()
        conf = config.get("configurable") or {}
        scratchpad = conf.get(CONFIG_KEY_SCRATCHPAD)
        runtime = conf.get(CONFIG_KEY_RUNTIME)
        call: dict[str, Any] = {
            STATE: state, CONFIG: portable_config(config),
            RESUME_VALUES: list(scratchpad.resume) if scratchpad is not None else [],
            CHECKPOINT_NS: conf.get("checkpoint_ns", ""),
            CONTEXT: runtime.context if runtime is not None else None,
        }
        control = getattr(runtime, "control", None)
        if runtime is not None:
            # frozen dataclasses of plain data; the run control travels as its state and comes back as it
            call[EXECUTION_INFO] = _portable(getattr(runtime, "execution_info", None))
            call[SERVER_INFO] = _portable(getattr(runtime, "server_info", None))
            call[DRAIN] = control.drain_reason if control is not None else None
        if scratchpad is not None and (null := peek_null_resume(scratchpad)) is not None:
            call[NULL_RESUME] = null
        writer = runtime.stream_writer if runtime is not None else _no_op_stream_writer
        streaming = _writer_is_live(writer, _no_op_stream_writer)
        callbacks = config.get("callbacks")
        relay = relay_spec(callbacks, _picklable)
        if relay is not None:
            call[CALLBACKS] = relay
        call_id = secrets.token_hex(16)  # not uuid4: the graph's own ids may come from a patched uuid4
        if streaming or relay is not None:
            call[STREAM] = {"url": self.client.worker_url, "token": self.client.token, "call_id": call_id,
                            "task": self.definition.name, "custom": streaming}
        metadata = config.get("metadata") or {}
        node = str(metadata.get("langgraph_node") or self.options.name)
        tags = {"graph": str(config.get("run_name") or self.client.graph), "node": node,
                "thread": str(conf.get("thread_id", "")), "call": call_id}
        lattice, trust = self.client.lattice, self.client.trust
        # one request when nothing needs the run's id before it ends: the head holds the answer until the
        # run is done and brings its results back (half of a trivial node's round trip). A stream to relay,
        # or an ``ainvoke`` that may cancel the run, needs the id at once: a submit, then a long poll.
        relayed = streaming or relay is not None
        run_id = self._workflow().run(tags=tags, inputs={self.definition.name: {"call": call}},
                                      wait=started is None and not relayed)
        if started is not None:
            started(run_id)
        if relayed:
            for event in lattice.stream(run_id):
                if event.get("type") != "custom":
                    continue
                data = event.get("data") or {}
                is_chunk, chunk = decode_chunk(data, trust, event.get("task"))
                if is_chunk:
                    writer(chunk)
                elif (callback := decode_callback(data, trust, event.get("task"))) is not None:
                    replay(callbacks, *callback)
        body = lattice.wait(run_id, progress=False)
        try:
            # a node that ran in a sandbox sent a sandboxed-pickle: decoded under the LangGraph trust, and
            # so is the exception a failed one carries (failed.trust)
            outcome = results_or_raise(body, trust)["result"]
        except TaskFailed as failed:
            original = failed.original_exception() if failed.error.kind == ErrorKind.EXCEPTION else None
            if original is None:
                raise
            original.add_note(f"(raised by LangGraph node {node!r} on Lattice, run {run_id})")
            raise original from None
        if (drain := outcome.get("drain")) is not None and control is not None and not control.drain_requested:
            control.request_drain(drain)
        if outcome.get("null_resume_consumed") and scratchpad is not None:
            scratchpad.get_null_resume(True)
        send = conf.get(CONFIG_KEY_SEND)
        if send is not None:
            for writes in outcome.get("sends") or []:
                send(writes)
        if outcome["kind"] == "raise":
            # the pickled interrupt inside the outcome is exactly as trusted as the outcome around it
            sandboxed = body["outputs"]["result"].get("encoding") == Encoding.SANDBOXED_PICKLE
            exc = decode_task_value(Encoding.SANDBOXED_PICKLE if sandboxed else Encoding.PICKLE, outcome["exc"],
                                    trust, task=self.definition.name, output="result")
            if not isinstance(exc, BaseException):
                raise LatticeError(f"LangGraph node {node!r} (run {run_id}) sent a 'raise' outcome without an "
                                   f"exception: {type(exc).__name__}")
            exc.add_note(f"(raised by LangGraph node {node!r} on Lattice, run {run_id})")
            raise exc
        return outcome["value"]

    async def acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The same call for an async node, in the client's pool so the event loop stays free."""
        import asyncio

        context = contextvars.copy_context()  # LangGraph's config lives in a context variable
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        run_ids: list[str] = []
        lock = threading.Lock()

        def started(run_id: str) -> None:
            with lock:
                run_ids.append(run_id)
                late = cancelled.is_set()
            if late:  # cancelled while the run was being created
                self._cancel(run_id)

        try:
            return await loop.run_in_executor(self.client.pool, _LetGo(context.run, self.call, args, kwargs, started))
        except asyncio.CancelledError:
            # the thread waiting on the run cannot be interrupted, but the run can: cancelling it ends that
            # wait too (the run ends cancelled), so neither the node nor the thread outlives the caller's task
            with lock:
                cancelled.set()
                known = list(run_ids)
            for run_id in known:
                self._cancel(run_id)
            raise

    def _cancel(self, run_id: str) -> None:
        try:
            self.client.lattice.cancel(run_id)
        except LatticeError:  # already finished: nothing left to stop
            pass


class LocalNode:
    """A decorated node that runs in the process it is in.

    In the caller's process: a node that invokes a compiled graph (see :mod:`.orchestration`). On a
    worker: a decorated node that another remote node reaches and calls directly (``__reduce__`` below).
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any], started: Any = None) -> Any:
        return self.fn(*args, **kwargs)

    async def acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = self.fn(*args, **kwargs)
        return await value if inspect.isawaitable(value) else value


class _LetGo:
    """A call for the client's pool that drops its arguments as soon as it has run.

    ``ThreadPoolExecutor`` keeps its work item, and so the function and arguments it was given, until
    its thread comes back from delivering the result, and by then the awaiting coroutine may already
    have resumed. Here the arguments are the task's copied context, which holds LangGraph's task config
    and through it the graph's ``AsyncPregelLoop`` and ``PregelRunner``: the run that ``ainvoke``
    just finished would stay alive a moment longer, in another thread, after ``ainvoke`` returned
    (LangGraph's ``test_pregel_loop_refcount`` counts them then). Emptied before it returns, the work
    item keeps only this empty shell.
    """

    __slots__ = ("_job",)

    def __init__(self, fn: Any, *args: Any) -> None:
        self._job: tuple[Any, tuple[Any, ...]] | None = (fn, args)

    def __call__(self) -> Any:
        job, self._job = self._job, None
        if job is None:
            raise RuntimeError("a pool call runs once")
        fn, args = job
        del job
        return fn(*args)


def _closure_values(fn: Any) -> tuple[Any, ...]:
    """What the node function's closure cells hold now (an empty cell as a marker)."""
    target = getattr(fn, "__func__", fn)
    values: list[Any] = []
    for cell in getattr(target, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell (a variable not bound yet)
            values.append(_EMPTY_CELL)
    return tuple(values)


_EMPTY_CELL = object()


def _same_objects(now: tuple[Any, ...], then: tuple[Any, ...]) -> bool:
    return len(now) == len(then) and all(a is b for a, b in zip(now, then, strict=True))


def peek_null_resume(scratchpad: Any) -> Any:
    """The resume value a bare ``Command(resume=...)`` left for the next ``interrupt()``, not consumed.

    LangGraph's ``get_null_resume(False)`` is no peek once the value was consumed elsewhere: the closure
    keeps the write it found when the task began, and only ``consume=True`` sees it gone from the pending
    writes (in a subgraph, the chain of parent scratchpads is asked the same way). A remote node must
    know before it starts whether the value is still there (its ``interrupt()`` consumes it on the
    worker, and the client then consumes it here), so this reads the chain as ``consume=True`` would,
    without consuming. A scratchpad not made by LangGraph's ``_scratchpad`` is asked with its own peek.
    """
    get = scratchpad.get_null_resume
    for _ in range(64):  # a chain of nested subgraphs; far deeper than any graph nests
        cells = _closure(get)
        if cells is None or not {"null_resume_write", "pending_writes", "parent_scratchpad"} <= cells.keys():
            return get(False)
        write = cells["null_resume_write"]
        if write is not None:
            return write[2] if write in cells["pending_writes"] else None
        parent = cells["parent_scratchpad"]
        if parent is None:
            return None
        get = parent.get_null_resume
    return get(False)


def _closure(fn: Any) -> dict[str, Any] | None:
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or cells is None:
        return None
    try:
        return {name: cell.cell_contents for name, cell in zip(code.co_freevars, cells, strict=True)}
    except ValueError:  # an empty cell
        return None


def _portable(value: Any) -> Any:
    return value if value is None or _picklable(value) else None


def _call_hints(fn: Any) -> dict[str, Any]:
    """The type hints of a callable object's ``__call__``, resolved where possible."""
    import typing

    call = getattr(fn, "__call__", None)  # noqa: B004 - the method itself, for its annotations
    try:
        return dict(typing.get_type_hints(call))
    except Exception:  # noqa: BLE001 - unresolvable forward references: the raw annotations then
        return dict(getattr(call, "__annotations__", {}) or {})


def make_node(client: LangGraphClient, fn: Any, policy: dict[str, Any]) -> Any:
    """The function handed to ``StateGraph.add_node``: same name, signature, docstring and sync/async kind.

    A node that invokes a compiled graph runs here, as orchestration, and its subgraph's decorated nodes
    run on Lattice (why: :mod:`lattice.client.langgraph.orchestration`); any other node runs remotely.
    """
    from langgraph._internal._runnable import is_async_callable

    name = node_name(fn)
    remote: RemoteNode | LocalNode
    _ship_module_by_value(fn)  # first: holds_graph must see the node as it would travel (helpers by value)
    if holds_graph(fn):
        refuse_remote_policy(name, policy)
        remote = LocalNode(fn)
    else:
        remote = RemoteNode(client, fn, policy)
    if is_async_callable(fn):
        @functools.wraps(fn)
        async def async_node(*args: Any, **kwargs: Any) -> Any:
            return await remote.acall(args, kwargs)

        node: Any = async_node
    else:
        @functools.wraps(fn)
        def sync_node(*args: Any, **kwargs: Any) -> Any:
            return remote.call(args, kwargs)

        node = sync_node
    # the graph's name for the node, not the wrapper's: functools.wraps copies no __name__ from a callable
    # object, and LangGraph names a node added without a name by its __name__
    node.__name__ = name
    node.__qualname__ = getattr(fn, "__qualname__", name)
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        # a callable object: LangGraph infers the node's input schema from the wrapper's type hints
        node.__annotations__ = _call_hints(fn)
    node.lattice_node = remote
    return node
