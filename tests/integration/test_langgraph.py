"""LangGraph graphs run plain and with their nodes on Lattice (real head, real Ray, real LangGraph).

Each graph follows a documented LangGraph pattern; the test builds it twice (``node`` = identity for
the plain graph, ``lg.task(...)`` for the Lattice-backed one) and asserts the same final state.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, RetryPolicy, Send, interrupt
from pydantic import BaseModel

from lattice import TaskTimeout
from lattice.client.langgraph import LangGraphClient, LatticeSaver

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


@pytest.fixture(scope="module")
def lg(head: Any) -> Iterator[LangGraphClient]:
    with LangGraphClient(head.url, token=head.token, graph="tests") as client:
        yield client


@pytest.fixture(scope="module")
def io(lg: LangGraphClient) -> Wrap:
    """Trivial nodes hold no core (cpu=0), so a 2-core head runs many at once."""
    return lg.task(cpu=0)


# --- fan-out / fan-in -----------------------------------------------------------------------------

class FanState(TypedDict):
    start: int
    parts: Annotated[list[str], operator.add]
    report: str


def build_fan(node: Wrap) -> Any:
    @node
    def begin(state: FanState) -> dict[str, Any]:
        return {"parts": [f"begin:{state['start']}"]}

    def branch(tag: str) -> Callable[[FanState], dict[str, Any]]:
        def fn(state: FanState) -> dict[str, Any]:
            return {"parts": [f"{tag}:{sum(range(state['start'] * 1000))}"]}
        fn.__name__ = tag
        return node(fn)

    @node
    def report(state: FanState) -> dict[str, Any]:
        """Fan-in: runs once, after all three branches."""
        return {"report": "|".join(state["parts"])}

    g = StateGraph(FanState)
    g.add_node(begin)
    for tag in ("market", "credit", "liquidity"):
        g.add_node(branch(tag))
        g.add_edge("begin", tag)
    g.add_node(report)
    g.add_edge(START, "begin")
    g.add_edge(["market", "credit", "liquidity"], "report")
    g.add_edge("report", END)
    return g.compile()


def test_fan_out_fan_in_three_branches(lg: LangGraphClient) -> None:
    expected = build_fan(plain).invoke({"start": 7, "parts": []})
    got = build_fan(lg.task(cpu=1)).invoke({"start": 7, "parts": []})
    assert got == expected
    assert got["report"].startswith("begin:7|")


# --- Send map-reduce ------------------------------------------------------------------------------

class MapState(TypedDict):
    items: list[int]
    squares: Annotated[list[int], operator.add]
    total: int


def build_map(node: Wrap) -> Any:
    @node
    def square(item: dict[str, int]) -> dict[str, Any]:
        return {"squares": [item["x"] * item["x"]]}

    @node
    def reduce(state: MapState) -> dict[str, Any]:
        return {"total": sum(state["squares"])}

    def fan(state: MapState) -> list[Send]:
        return [Send("square", {"x": x}) for x in state["items"]]

    g = StateGraph(MapState)
    g.add_node(square)
    g.add_node(reduce)
    g.add_conditional_edges(START, fan, ["square"])
    g.add_edge("square", "reduce")
    g.add_edge("reduce", END)
    return g.compile()


def test_send_map_reduce_over_20_items(lg: LangGraphClient, io: Wrap) -> None:
    state = {"items": list(range(20)), "squares": []}
    expected = build_map(plain).invoke(state)
    got = build_map(io).invoke(state, {"max_concurrency": 20})
    assert got == expected
    assert got["total"] == sum(x * x for x in range(20))
    nodes = [r for r in lg.lattice.list_runs(limit=200) if r["tags"].get("node") == "square"]
    assert len(nodes) >= 20  # each Send is its own run


# --- conditional loop (dataclass state) -------------------------------------------------------------

@dataclass
class LoopState:
    value: int = 1
    history: Annotated[list[int], operator.add] = field(default_factory=list)


def build_loop(node: Wrap) -> Any:
    @node
    def double(state: LoopState) -> dict[str, Any]:
        return {"value": state.value * 2, "history": [state.value]}

    def more(state: LoopState) -> str:
        return "double" if state.value < 100 else END

    g = StateGraph(LoopState)
    g.add_node(double)
    g.add_edge(START, "double")
    g.add_conditional_edges("double", more, ["double", END])
    return g.compile()


def test_conditional_loop_with_dataclass_state(io: Wrap) -> None:
    expected = build_loop(plain).invoke(LoopState(value=3))
    got = build_loop(io).invoke(LoopState(value=3))
    assert got == expected
    assert got["value"] == 192


# --- subgraph ---------------------------------------------------------------------------------------

class SubState(TypedDict):
    text: str
    steps: Annotated[list[str], operator.add]


def build_parent(node: Wrap) -> Any:
    @node
    def shout(state: SubState) -> dict[str, Any]:
        return {"text": state["text"].upper(), "steps": ["shout"]}

    @node
    def exclaim(state: SubState) -> dict[str, Any]:
        return {"text": state["text"] + "!", "steps": ["exclaim"]}

    sub = StateGraph(SubState)
    sub.add_node(shout)
    sub.add_node(exclaim)
    sub.add_edge(START, "shout")
    sub.add_edge("shout", "exclaim")

    @node
    def prepare(state: SubState) -> dict[str, Any]:
        return {"text": state["text"].strip(), "steps": ["prepare"]}

    parent = StateGraph(SubState)
    parent.add_node(prepare)
    parent.add_node("inner", sub.compile())
    parent.add_edge(START, "prepare")
    parent.add_edge("prepare", "inner")
    return parent.compile()


def test_subgraph(io: Wrap) -> None:
    expected = build_parent(plain).invoke({"text": "  hello ", "steps": []})
    got = build_parent(io).invoke({"text": "  hello ", "steps": []})
    assert got == expected
    assert got["text"] == "HELLO!"


# --- async graph ------------------------------------------------------------------------------------

def build_async(node: Wrap) -> Any:
    @node
    async def fetch(state: FanState) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"parts": [f"fetched:{state['start']}"]}

    @node
    async def summarize(state: FanState) -> dict[str, Any]:
        return {"report": ",".join(state["parts"])}

    g = StateGraph(FanState)
    g.add_node(fetch)
    g.add_node(summarize)
    g.add_edge(START, "fetch")
    g.add_edge("fetch", "summarize")
    return g.compile()


async def test_async_graph_ainvoke_and_astream(io: Wrap) -> None:
    expected = await build_async(plain).ainvoke({"start": 2, "parts": []})
    graph = build_async(io)
    assert await graph.ainvoke({"start": 2, "parts": []}) == expected
    updates = [chunk async for chunk in graph.astream({"start": 2, "parts": []}, stream_mode="updates")]
    assert [next(iter(u)) for u in updates] == ["fetch", "summarize"]


# --- pydantic state with add_messages ----------------------------------------------------------------

class ChatState(BaseModel):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int = 0


def build_chat(node: Wrap) -> Any:
    @node
    def bot(state: ChatState) -> dict[str, Any]:
        last = state.messages[-1].content
        return {"messages": [AIMessage(content=f"echo: {last}", id=f"ai-{state.turns}")],
                "turns": state.turns + 1}

    g = StateGraph(ChatState)
    g.add_node(bot)
    g.add_edge(START, "bot")
    return g.compile()


def test_pydantic_state_with_add_messages(io: Wrap) -> None:
    inp = {"messages": [HumanMessage(content="hi", id="h-0")]}
    expected = build_chat(plain).invoke(inp)
    got = build_chat(io).invoke(inp)
    assert got == expected
    assert [m.content for m in got["messages"]] == ["hi", "echo: hi"]


# --- a node that takes config -----------------------------------------------------------------------

def test_node_with_config(io: Wrap) -> None:
    def build(node: Wrap) -> Any:
        @node
        def greet(state: SubState, config: RunnableConfig) -> dict[str, Any]:
            return {"text": f"{config['configurable']['greeting']} {state['text']}", "steps": ["greet"]}

        g = StateGraph(SubState)
        g.add_node(greet)
        g.add_edge(START, "greet")
        return g.compile()

    config = {"configurable": {"greeting": "hola"}}
    expected = build(plain).invoke({"text": "mundo", "steps": []}, config)
    assert build(io).invoke({"text": "mundo", "steps": []}, config) == expected == {
        "text": "hola mundo", "steps": ["greet"]}


# --- RetryPolicy: the node's own exception type reaches LangGraph -----------------------------------

class Flaky(Exception):
    """Raised by the flaky node; RetryPolicy retries only this type."""


def build_flaky(node: Wrap, counter: Path) -> Any:
    @node
    def flaky(state: SubState) -> dict[str, Any]:
        calls = int(counter.read_text() or "0") + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        if calls <= 2:
            raise Flaky(f"attempt {calls} fails")
        return {"text": f"ok after {calls}", "steps": ["flaky"]}

    g = StateGraph(SubState)
    g.add_node(flaky, retry_policy=RetryPolicy(retry_on=Flaky, initial_interval=0.01, max_attempts=3))
    g.add_edge(START, "flaky")
    return g.compile()


def test_retry_policy_sees_the_original_exception(io: Wrap, tmp_path: Path) -> None:
    expected = build_flaky(plain, tmp_path / "plain").invoke({"text": "", "steps": []})
    got = build_flaky(io, tmp_path / "remote").invoke({"text": "", "steps": []})
    assert got == expected == {"text": "ok after 3", "steps": ["flaky"]}
    assert (tmp_path / "remote").read_text() == "3"


def test_node_exception_is_raised_as_its_own_type(io: Wrap, tmp_path: Path) -> None:
    counter = tmp_path / "c"
    counter.write_text("-100")  # always fails: with max_attempts=3 the graph raises Flaky itself
    with pytest.raises(Flaky, match="attempt -97 fails"):
        build_flaky(io, counter).invoke({"text": "", "steps": []})


# --- timeout: a blocking node is killed -----------------------------------------------------------

def test_timeout_kills_a_blocking_node(lg: LangGraphClient) -> None:
    @lg.task(cpu=1, timeout=1.5)
    def stuck(state: SubState) -> dict[str, Any]:
        time.sleep(60)  # LangGraph's own timeouts cannot stop this; Lattice kills the process
        return {"text": "never"}

    g = StateGraph(SubState)
    g.add_node(stuck)
    g.add_edge(START, "stuck")
    started = time.monotonic()
    with pytest.raises(TaskTimeout) as info:
        g.compile().invoke({"text": "", "steps": []})
    assert time.monotonic() - started < 20
    assert info.value.task == "stuck"
    assert info.value.error.kind == "timeout"


# --- interrupt and resume, with the head's checkpointer ---------------------------------------------

class Approval(TypedDict):
    draft: str
    decision: str
    steps: Annotated[list[str], operator.add]


def build_approval(node: Wrap, saver: Any) -> Any:
    @node
    def write(state: Approval) -> dict[str, Any]:
        return {"draft": f"draft of {state['draft']}", "steps": ["write"]}

    @node
    def review(state: Approval) -> dict[str, Any]:
        answer = interrupt({"question": "approve?", "draft": state["draft"]})
        return {"decision": answer, "steps": ["review"]}

    g = StateGraph(Approval)
    g.add_node(write)
    g.add_node(review)
    g.add_edge(START, "write")
    g.add_edge("write", "review")
    return g.compile(checkpointer=saver)


def run_approval(node: Wrap, saver: Any, saver_after: Any, thread: str) -> tuple[Any, Any]:
    config = {"configurable": {"thread_id": thread}}
    first = build_approval(node, saver).invoke({"draft": "memo", "steps": []}, config)
    # A fresh graph and checkpointer (as another process would have) resumes the thread.
    final = build_approval(node, saver_after).invoke(Command(resume="yes"), config)
    return first, final


def test_interrupt_in_remote_node_and_resume(lg: LangGraphClient, io: Wrap) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    memory = InMemorySaver()
    expected_first, expected = run_approval(plain, memory, memory, "plain")
    thread = f"approval-{time.time_ns()}"
    first, final = run_approval(io, lg.checkpointer(), LatticeSaver(lg.url, token=lg.token), thread)
    assert [i.value for i in first["__interrupt__"]] == [i.value for i in expected_first["__interrupt__"]]
    assert [i.id for i in first["__interrupt__"]] != []
    assert final == expected
    assert final["decision"] == "yes" and final["steps"] == ["write", "review"]
    history = list(LatticeSaver(lg.url, token=lg.token).list({"configurable": {"thread_id": thread}}))
    assert len(history) >= 4


# --- custom streaming reaches the client while the node still runs ---------------------------------

def test_custom_stream_is_live(io: Wrap) -> None:
    @io
    def progress(state: SubState) -> dict[str, Any]:
        writer = get_stream_writer()
        writer({"progress": "started"})
        time.sleep(2.0)
        writer({"progress": "done", "at": time.time()})
        return {"text": "finished", "steps": ["progress"]}

    g = StateGraph(SubState)
    g.add_node(progress)
    g.add_edge(START, "progress")
    seen: list[tuple[float, Any]] = []
    for mode, chunk in g.compile().stream({"text": "", "steps": []}, stream_mode=["custom", "updates"]):
        seen.append((time.time(), mode, chunk))
    customs = [(t, c) for t, m, c in seen if m == "custom"]
    assert [c["progress"] for _, c in customs] == ["started", "done"]
    # the first chunk arrived about 2 s before the second was even written
    assert customs[1][1]["at"] - customs[0][0] > 1.0
    assert seen[-1][1] == "updates"


# --- many threads invoke one graph at once; runs are tagged -----------------------------------------

def test_graph_invoked_from_ten_threads(lg: LangGraphClient, io: Wrap) -> None:
    graph = build_loop(io)
    expected = build_loop(plain)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = graph.invoke(LoopState(value=i + 10), {"configurable": {"thread_id": f"t{i}"}})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i in range(10):
        assert results[i] == expected.invoke(LoopState(value=i + 10))
    runs = lg.lattice.list_runs(limit=500)
    tagged = {r["tags"]["thread"] for r in runs if r["tags"].get("node") == "double" and r["tags"]["graph"] == "tests"}
    assert {f"t{i}" for i in range(10)} <= tagged


def test_stream_and_batch(io: Wrap) -> None:
    inputs = [{"start": n, "parts": []} for n in (1, 2, 3)]
    assert build_fan(io).batch(inputs) == build_fan(plain).batch(inputs)
    plain_updates = list(build_fan(plain).stream(inputs[0], stream_mode="updates"))
    remote_updates = list(build_fan(io).stream(inputs[0], stream_mode="updates"))
    key = lambda u: sorted(u)  # noqa: E731 - parallel branches may report in either order
    assert sorted(map(key, remote_updates)) == sorted(map(key, plain_updates))
