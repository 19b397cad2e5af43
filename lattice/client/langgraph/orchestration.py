"""A decorated node that invokes a compiled graph runs in the caller's process, as orchestration.

Why not ship the subgraph to the worker? A subgraph called inside a node is not a separate graph in
LangGraph: it is *part of the parent's run*. Its checkpoints live in the parent's checkpointer under
the node's namespace (``checkpointer=None``/``True``), its ``interrupt()`` pauses the parent and is
resumed through the parent's ``Command(resume=...)``, ``get_state(subgraphs=True)`` and the state
history show its steps, ``Command(graph=PARENT)`` jumps in the parent, and ``stream(subgraphs=True)``
and the callbacks see its nodes. All of that hangs off objects of the parent's Pregel loop in the
caller's process (the checkpointer, the task's scratchpad, the stream queue, the callback manager).
A worker would need all of them relayed call by call (the head has checkpoint routes, but a resume, a
parent command or a nested stream is loop state, not stored state), and every relayed piece would be
a place where the remote subgraph differs from LangGraph's.

So the node that invokes the subgraph stays where the parent's loop is, and only the subgraph's own
nodes run remotely: each of those that is decorated is a Lattice run, one per call, exactly as in a
top-level graph. That is LangGraph's own code path, so its semantics are LangGraph's, by construction;
the work (the subgraph's nodes) is still placed on the cluster, and the orchestrating node holds no
worker while its subgraph runs.

What the node holds is found by pickling it (as it would be pickled to travel) and stopping at the first
compiled graph (``Pregel``: a ``StateGraph``'s compiled graph or an ``@entrypoint``), wherever it is
reachable from: the closure, the globals it names, a callable object's attributes, a helper it calls
from a module that travels by value (a script, a test, a package that is not installed). A graph kept in
an *installed* module travels by reference, so it is not seen here: the node would import it on the
worker and run it there, without the parent's checkpointer; invoke such a graph from a node you leave
undecorated, or from a module of your project.
Resources declared for such a node would not be honoured in the caller's process, so they are refused
at decoration (the message says where to put them instead), never silently dropped.
"""

from __future__ import annotations

import io
from typing import Any

import cloudpickle

from lattice.errors import TaskDefinitionError

# what ``LangGraphClient.task`` accepts that still means the same in the caller's process: no core held
# (``cpu=0``/unset), no priority or Lattice retries asked for
_LOCAL_POLICY = {"cpu": (None, 0), "priority": (0,), "retries": (0,)}


class _FoundGraph(Exception):
    """Raised out of the pickler at the first compiled graph: nothing more needs pickling."""


class _GraphFinder(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, graph_type: type) -> None:
        super().__init__(file)
        self._graph_type = graph_type

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, self._graph_type):
            raise _FoundGraph
        return super().reducer_override(obj)


def holds_graph(fn: Any) -> bool:
    """Whether ``fn`` reaches a compiled LangGraph graph (it would invoke a subgraph inside the node).

    A node that cannot be pickled at all answers ``False`` here: :func:`~lattice.client.langgraph.node.
    check_portable` then names what it captures.
    """
    from langgraph.pregel import Pregel

    try:
        _GraphFinder(io.BytesIO(), Pregel).dump(fn)
    except _FoundGraph:
        return True
    except (Exception, RecursionError):  # noqa: BLE001 - unpicklable: check_portable reports it
        return False
    return False


def refuse_remote_policy(name: str, policy: dict[str, Any]) -> None:
    """A node that orchestrates a subgraph runs in the caller's process: resources for it cannot hold."""
    declared = {key: value for key, value in policy.items()
                if value is not None and value not in _LOCAL_POLICY.get(key, (None,))}
    if declared:
        shown = ", ".join(f"{key}={value!r}" for key, value in declared.items())
        raise TaskDefinitionError(
            f"LangGraph node {name!r} invokes a compiled graph, so it runs in the caller's process as "
            f"orchestration (its subgraph keeps the parent's checkpointer, interrupts, streams and "
            f"Command(graph=PARENT)); {shown} cannot apply there. Decorate the subgraph's own nodes with "
            "these resources (they run on Lattice), or move the work into a node of its own")
