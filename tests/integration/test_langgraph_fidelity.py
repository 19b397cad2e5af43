"""Where a remote LangGraph node must behave as the in-process one (issue 15), on a real head and Ray.

Each test names a gap LangGraph's own suite found (``tests/langgraph_conformance``): node names the graph
chose, ``Runtime`` fields, pydantic models defined in a function, cancellation of ``ainvoke``,
identical closures of separate graphs on one worker, subgraphs invoked inside a node (orchestrated in
the caller's process, their nodes remote) and callbacks relayed back (``stream_mode="messages"``,
``push_message``).
"""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphDrained
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages, push_message
from langgraph.runtime import RunControl, Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from lattice.client.langgraph import LangGraphClient
from lattice.client.langgraph.node import LocalNode
from lattice.errors import TaskDefinitionError


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


class PidState(TypedDict):
    n: int
    pids: Annotated[list[int], operator.add]


def test_node_invoking_a_compiled_subgraph_orchestrates_it_here(lg: LangGraphClient) -> None:
    """The node that invokes the subgraph runs in this process; the subgraph's decorated node runs on a
    worker (another process), one Lattice run per call."""
    def double(state: PidState) -> dict[str, Any]:
        return {"n": state["n"] * 2, "pids": [os.getpid()]}

    inner = StateGraph(PidState)
    inner.add_node("double", lg.task(cpu=0)(double))
    inner.add_edge(START, "double")
    subgraph = inner.compile()

    def outer_node(state: PidState) -> dict[str, Any]:
        out = subgraph.invoke({"n": state["n"] + 1, "pids": []})
        return {"n": out["n"], "pids": [os.getpid(), *out["pids"]]}

    node = lg.task(cpu=0)(outer_node)
    assert isinstance(node.lattice_node, LocalNode)
    g = StateGraph(PidState)
    g.add_node("outer", node)
    g.add_edge(START, "outer")
    out = g.compile().invoke({"n": 2, "pids": []})
    assert out["n"] == 6
    here, there = out["pids"]
    assert here == os.getpid() and there != os.getpid()


def test_subgraph_interrupt_inside_a_node_resumes_through_the_parents_checkpointer(lg: LangGraphClient) -> None:
    """The subgraph keeps its checkpoints in the parent's saver: its remote node's interrupt pauses the
    parent, ``Command(resume=...)`` resumes it, and the parent's state shows the subgraph's task."""
    def ask(state: Count) -> dict[str, int]:
        return {"n": state["n"] + int(interrupt("how many?"))}

    def then(state: Count) -> dict[str, int]:
        return {"n": state["n"] * int(interrupt("times?"))}

    inner = StateGraph(Count)
    inner.add_node("ask", lg.task(cpu=0)(ask))
    inner.add_node("then", lg.task(cpu=0)(then))
    inner.add_edge(START, "ask")
    inner.add_edge("ask", "then")
    subgraph = inner.compile()

    def call_subgraph(state: Count) -> dict[str, int]:
        return subgraph.invoke(state)

    g = StateGraph(Count)
    g.add_node("call_subgraph", lg.task(cpu=0)(call_subgraph))
    g.add_edge(START, "call_subgraph")
    graph = g.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t1"}}
    first = graph.invoke({"n": 1}, thread)
    assert [i.value for i in first["__interrupt__"]] == ["how many?"]
    assert graph.get_state(thread, subgraphs=True).tasks[0].state is not None  # the subgraph's own checkpoint
    second = graph.invoke(Command(resume=4), thread)  # one resume: the second interrupt must still pause
    assert [i.value for i in second["__interrupt__"]] == ["times?"]
    assert graph.invoke(Command(resume=3), thread) == {"n": 15}


def test_resources_for_a_node_that_orchestrates_a_subgraph_are_refused(lg: LangGraphClient) -> None:
    inner = StateGraph(Count)
    inner.add_node("noop", lambda state: {"n": state["n"]})
    inner.add_edge(START, "noop")
    subgraph = inner.compile()

    def call_subgraph(state: Count) -> dict[str, int]:
        return subgraph.invoke(state)

    with pytest.raises(TaskDefinitionError, match=r"invokes a compiled graph.*gpu=1"):
        lg.task(gpu=1)(call_subgraph)


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
    inner.add_node("double", lg.task(cpu=0)(double))
    inner.add_edge(START, "double")
    subgraph = inner.compile(checkpointer=True)  # the parent's saver, under the node's namespace

    def outer_node(state: Count) -> dict[str, int]:
        return subgraph.invoke(state)

    g = StateGraph(Count)
    g.add_node("outer", lg.task(cpu=0)(outer_node))
    g.add_edge(START, "outer")
    graph = g.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t2"}}
    assert graph.invoke({"n": 4}, thread) == {"n": 8}
    assert graph.invoke({"n": 5}, thread) == {"n": 10}


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_stream_mode_messages_relays_the_models_chunks_with_their_metadata(lg: LangGraphClient) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there world", id="m1")]))

    def chat(state: Chat) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    g = StateGraph(Chat)
    g.add_node("chat", lg.task(cpu=0)(chat))
    g.add_edge(START, "chat")
    streamed = list(g.compile().stream({"messages": [HumanMessage("hi", id="h1")]}, stream_mode="messages"))
    chunks = [message for message, _ in streamed]
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks) and len(chunks) > 1
    assert "".join(str(chunk.content) for chunk in chunks) == "hello there world"
    meta = streamed[0][1]
    assert meta["langgraph_node"] == "chat" and meta["ls_model_type"] == "chat"


def test_push_message_from_a_remote_node(lg: LangGraphClient) -> None:
    def chat(state: Chat) -> None:
        push_message(AIMessage(content="First", id="1"))
        push_message(AIMessage(content="Second", id="2"))

    g = StateGraph(Chat)
    g.add_node("chat", lg.task(cpu=0)(chat))
    g.add_edge(START, "chat")
    messages, values = [], None
    for mode, chunk in g.compile().stream({"messages": []}, stream_mode=["messages", "values"]):
        if mode == "values":
            values = chunk
        else:
            messages.append(chunk[0])
    assert values is not None and values["messages"] == messages
    assert [m.content for m in messages] == ["First", "Second"]


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
