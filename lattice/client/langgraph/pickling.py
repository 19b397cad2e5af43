"""What cloudpickle must not drag along when a node's classes travel by value.

A pydantic model class defined inside a function keeps that function's locals in
``__pydantic_parent_namespace__`` (to resolve forward references if the model is rebuilt later). When
the class is pickled by value (a state schema defined in a test or a notebook cell) those locals go too:
fixtures, ``sqlite3`` connections, compiled graphs, whatever the function held, which then fails to
pickle or to load on the worker. A *complete* model (``__pydantic_complete__``) never reads that
namespace again unless rebuilt, so the copy shipped by value carries only the entries that are types or
modules (what a forward reference can name), and the user's class is left untouched.
"""

from __future__ import annotations

import types
from typing import Any

from cloudpickle import cloudpickle as _cloudpickle

_installed: dict[str, Any] = {}


def _namespace_entry_kept(value: Any) -> bool:
    return isinstance(value, (type, types.ModuleType)) or type(value).__module__ in ("typing", "typing_extensions")


def _class_getstate(obj: type) -> Any:
    clsdict, slotstate = _installed["original"](obj)
    namespace = clsdict.get("__pydantic_parent_namespace__")
    if isinstance(namespace, dict):
        clsdict["__pydantic_parent_namespace__"] = {
            key: value for key, value in namespace.items() if _namespace_entry_kept(value)}
    return clsdict, slotstate


def install() -> None:
    """Trim pydantic parent namespaces from classes cloudpickle ships by value (idempotent)."""
    if "original" in _installed or not hasattr(_cloudpickle, "_class_getstate"):
        return
    _installed["original"] = _cloudpickle._class_getstate
    _cloudpickle._class_getstate = _class_getstate
    install_graph_reducer()
    install_exception_reducers()


# --- compiled graphs ------------------------------------------------------------------------------------
# A compiled graph holds locks, its channels' live objects and a checkpointer's connections: it does not
# pickle. A node that invokes a subgraph (LangGraph's most common composition) therefore ships the
# subgraph's *builder* and compiles it again on the worker, with the same interrupts, name, debug flag,
# cache and config. A checkpointer object (a saver bound to this process's storage) is not shipped: the
# subgraph on the worker runs without one, as a subgraph compiled with ``checkpointer=None`` would when
# invoked from outside a checkpointed run. Nodes of the subgraph that were decorated to run on Lattice
# run in the worker's process (see ``RemoteNode.__reduce__``): the node around them already is remote.


def rebuild_compiled_graph(builder: Any, options: dict[str, Any], config: Any) -> Any:
    """A compiled graph from its builder on the worker (the inverse of :func:`_reduce_compiled_graph`)."""
    graph = builder.compile(**options)
    return graph.with_config(config) if config else graph


def _reduce_compiled_graph(graph: Any) -> Any:
    checkpointer = graph.checkpointer if graph.checkpointer in (None, True, False) else None
    options = {"checkpointer": checkpointer, "interrupt_before": list(graph.interrupt_before_nodes) or None,
               "interrupt_after": list(graph.interrupt_after_nodes) or None, "debug": graph.debug,
               "name": graph.name, "cache": graph.cache}
    if graph.interrupt_before_nodes == "*":
        options["interrupt_before"] = "*"
    if graph.interrupt_after_nodes == "*":
        options["interrupt_after"] = "*"
    return rebuild_compiled_graph, (graph.builder, options, graph.config)


def install_graph_reducer() -> None:
    """Pickle ``CompiledStateGraph`` as its builder (``copyreg``: cloudpickle and pickle both honour it)."""
    import copyreg

    from langgraph.graph.state import CompiledStateGraph

    if copyreg.dispatch_table.get(CompiledStateGraph) is not _reduce_compiled_graph:
        copyreg.pickle(CompiledStateGraph, _reduce_compiled_graph)


# --- exceptions that drop their attributes --------------------------------------------------------------
# ``BaseException.__reduce__`` keeps an exception's ``__dict__``; pydantic's ``ValidationError`` reduces
# to ``from_exception_data(...)`` and loses it, and LangGraph marks one it must recognise later with an
# attribute (``_langgraph_invalid_resume``). A raised node exception must reach the graph as itself.


def restore_exception_state(rebuild: Any, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """The exception ``rebuild(*args)`` made, with the attributes it had set on it again."""
    exc = rebuild(*args)
    exc.__dict__.update(state)
    return exc


def _reduce_validation_error(exc: Any) -> Any:
    rebuild, args = exc.__reduce__()[:2]
    state = dict(getattr(exc, "__dict__", {}) or {})
    return (restore_exception_state, (rebuild, args, state)) if state else (rebuild, args)


def install_exception_reducers() -> None:
    import copyreg

    from pydantic_core import ValidationError

    copyreg.pickle(ValidationError, _reduce_validation_error)
