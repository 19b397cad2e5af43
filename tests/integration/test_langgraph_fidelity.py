"""Where a remote LangGraph node must behave as the in-process one (issue 15), on a real head and Ray.

Each test names a gap LangGraph's own suite found (``tests/langgraph_conformance``): node names the graph
chose, ``Runtime`` fields, pydantic models defined in a function, cancellation of ``ainvoke``, and
identical closures of separate graphs on one worker.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.errors import GraphDrained
from langgraph.graph import START, StateGraph
from langgraph.runtime import RunControl, Runtime
from pydantic import BaseModel

from lattice.client.langgraph import LangGraphClient


@pytest.fixture(scope="module")
def lg(head: Any) -> Iterator[LangGraphClient]:
    with LangGraphClient(head.url, token=head.token, graph="fidelity") as client:
        yield client


class Count(TypedDict):
    n: int


class AddOne:
    """A callable object: no ``__name__``, LangGraph names the node after the class."""

    def __call__(self, state: Count) -> dict[str, int]:
        return {"n": state["n"] + 1}


def test_callable_object_keeps_its_class_name(lg: LangGraphClient) -> None:
    g = StateGraph(Count)
    g.add_node(lg.task(cpu=0)(AddOne()))
    g.add_edge(START, "AddOne")
    assert g.compile().invoke({"n": 1}) == {"n": 2}


def test_node_named_with_a_leading_digit_and_spaces(lg: LangGraphClient) -> None:
    def one(state: Count) -> dict[str, int]:
        return {"n": state["n"] + 1}

    one.__name__ = "1"  # LangGraph takes the node's name from it; Lattice task names cannot start so
    g = StateGraph(Count)
    g.add_node(lg.task(cpu=0)(one))
    g.add_node("two words", lg.task(cpu=0)(AddOne()))
    g.add_edge(START, "1")
    g.add_edge("1", "two words")
    assert g.compile().invoke({"n": 0}) == {"n": 2}


def test_runtime_fields_reach_the_worker_and_drain_comes_back(lg: LangGraphClient) -> None:
    seen: dict[str, Any] = {}

    def first(state: Count, runtime: Runtime) -> dict[str, Any]:
        info = runtime.execution_info
        assert info is not None and info.node_attempt == 1 and info.task_id
        runtime.control.request_drain("test")  # the caller's RunControl must see it
        return {"n": state["n"] + 1}

    def second(state: Count) -> dict[str, Any]:
        seen["second"] = True
        return {"n": state["n"] + 100}

    g = StateGraph(Count)
    g.add_node("first", lg.task(cpu=0)(first))
    g.add_node("second", lg.task(cpu=0)(second))
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    control = RunControl()
    with pytest.raises(GraphDrained, match="test"):  # drained before the next step, as in process
        g.compile().invoke({"n": 0}, control=control)
    assert control.drain_requested and control.drain_reason == "test"
    assert "second" not in seen


def test_pydantic_model_defined_beside_a_sqlite_connection(lg: LangGraphClient) -> None:
    connection = sqlite3.connect(":memory:")  # a local of the function that defines the model

    class State(BaseModel):
        n: int

    def bump(state: State) -> dict[str, int]:
        return {"n": state.n + 1}

    g = StateGraph(State)
    g.add_node("bump", lg.task(cpu=0)(bump))
    g.add_edge(START, "bump")
    assert g.compile().invoke(State(n=1)) == {"n": 2}
    assert State.__pydantic_parent_namespace__ is not None  # the user's class is untouched
    connection.close()


def _counter_graph(lg: LangGraphClient) -> Any:
    """A graph whose node counts its own calls in its closure: each graph pickles identically."""
    calls: list[int] = []

    def count(state: Count) -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    g = StateGraph(Count)
    g.add_node("count", lg.task(cpu=0)(count))
    g.add_edge(START, "count")
    return g.compile()


def test_identical_closures_of_two_graphs_do_not_share_state(lg: LangGraphClient) -> None:
    first = _counter_graph(lg)
    assert first.invoke({"n": 0}) == {"n": 1}
    assert first.invoke({"n": 0})["n"] >= 1
    second = _counter_graph(lg)
    assert second.invoke({"n": 0}) == {"n": 1}  # a fresh graph starts from its own, empty, closure


async def test_cancelling_ainvoke_cancels_the_remote_run(lg: LangGraphClient) -> None:
    async def slow(state: Count) -> dict[str, int]:
        await asyncio.sleep(30)
        return {"n": 1}

    g = StateGraph(Count)
    g.add_node("slow", lg.task(cpu=0)(slow))
    g.add_edge(START, "slow")
    graph = g.compile()
    invocation = asyncio.ensure_future(graph.ainvoke({"n": 0}))
    run_id = None
    for _ in range(300):  # wait for the node's run to be running
        runs = [r for r in lg.lattice.list_runs(state="running", limit=1000)
                if (r.get("tags") or {}).get("node") == "slow"]
        if runs:
            run_id = runs[0]["run_id"]
            break
        await asyncio.sleep(0.1)
    assert run_id is not None, "the node's run never started"
    invocation.cancel()
    with pytest.raises(asyncio.CancelledError):
        await invocation
    deadline = time.monotonic() + 1.0
    state = None
    while time.monotonic() < deadline:
        state = lg.lattice.get_run(run_id)["state"]
        if state == "cancelled":
            break
        await asyncio.sleep(0.05)
    assert state == "cancelled"


def test_node_invoking_a_compiled_subgraph(lg: LangGraphClient) -> None:
    """The subgraph travels as its builder and is compiled again on the worker; its own decorated nodes
    run there, inside the remote node."""
    def double(state: Count) -> dict[str, int]:
        return {"n": state["n"] * 2}

    inner = StateGraph(Count)
    inner.add_node("double", lg.task(cpu=0)(double))
    inner.add_edge(START, "double")
    subgraph = inner.compile()

    def outer_node(state: Count) -> dict[str, int]:
        return {"n": subgraph.invoke({"n": state["n"] + 1})["n"]}

    g = StateGraph(Count)
    g.add_node("outer", lg.task(cpu=0)(outer_node))
    g.add_edge(START, "outer")
    assert g.compile().invoke({"n": 2}) == {"n": 6}


def test_functional_task_called_inside_a_node(lg: LangGraphClient) -> None:
    from langgraph.func import task as lg_task

    @lg_task
    def triple(x: int) -> int:
        return x * 3

    def node(state: Count) -> dict[str, int]:
        return {"n": triple(state["n"]).result() + 1}

    g = StateGraph(Count)
    g.add_node("node", lg.task(cpu=0)(node))
    g.add_edge(START, "node")
    assert g.compile().invoke({"n": 2}) == {"n": 7}


def test_validation_error_keeps_its_attributes() -> None:
    """LangGraph marks the pydantic error of an invalid resume with an attribute; pickling keeps it."""
    import cloudpickle

    from lattice.client.langgraph import pickling

    pickling.install()

    class M(BaseModel):
        x: int

    with pytest.raises(Exception) as info:
        M(x="not a number")
    info.value._langgraph_invalid_resume = True  # type: ignore[attr-defined]
    back = cloudpickle.loads(cloudpickle.dumps(info.value))
    assert type(back) is type(info.value) and back._langgraph_invalid_resume is True
    assert back.errors() == info.value.errors()


def test_entrypoint_invoked_inside_a_node(lg: LangGraphClient) -> None:
    """An ``@entrypoint`` graph travels by value; LangGraph's sentinels inside it keep their identity."""
    from langgraph.func import entrypoint

    @entrypoint()
    def add(inputs: tuple[int, int]) -> int:
        a, b = inputs
        return a + b

    def call_add(state: Count) -> dict[str, int]:
        return {"n": add.invoke([add.invoke([state["n"], 3]), 10])}

    g = StateGraph(Count)
    g.add_node("call_add", lg.task(cpu=0)(call_add))
    g.add_edge(START, "call_add")
    assert g.compile().invoke({"n": 2}) == {"n": 15}


def test_sentinels_survive_pickling() -> None:
    import dataclasses

    import cloudpickle
    from langgraph.pregel._write import SKIP_WRITE

    from lattice.client.langgraph import pickling

    pickling.install()
    back = cloudpickle.loads(cloudpickle.dumps([dataclasses.MISSING, SKIP_WRITE, object()]))
    assert back[0] is dataclasses.MISSING and back[1] is SKIP_WRITE and type(back[2]) is object


def test_subgraph_compiled_with_checkpointer_true_inside_a_node(lg: LangGraphClient) -> None:
    def double(state: Count) -> dict[str, int]:
        return {"n": state["n"] * 2}

    inner = StateGraph(Count)
    inner.add_node("double", double)
    inner.add_edge(START, "double")
    subgraph = inner.compile(checkpointer=True)  # "the parent's saver": there is none on the worker

    def outer_node(state: Count) -> dict[str, int]:
        return subgraph.invoke(state)

    g = StateGraph(Count)
    g.add_node("outer", lg.task(cpu=0)(outer_node))
    g.add_edge(START, "outer")
    assert g.compile().invoke({"n": 4}) == {"n": 8}


class Typed(TypedDict):
    n: int
    extra: str


class NeedsExtra:
    """A callable object whose input schema (from ``__call__``'s hints) is wider than the graph's state."""

    def __call__(self, state: Typed) -> dict[str, int]:
        return {"n": state["n"] + len(state["extra"])}


def test_callable_object_input_schema_from_its_call_hints(lg: LangGraphClient) -> None:
    def set_extra(state: Count) -> Typed:
        return {"n": state["n"], "extra": "abc"}

    g = StateGraph(Count)
    g.add_node("set_extra", lg.task(cpu=0)(set_extra))
    g.add_node(lg.task(cpu=0)(NeedsExtra()))
    g.add_edge(START, "set_extra")
    g.add_edge("set_extra", "NeedsExtra")
    assert g.compile().invoke({"n": 1}) == {"n": 4}
