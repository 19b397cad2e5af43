"""The LangGraph node wrapper without a head: what LangGraph sees of a decorated node, and the wire helpers."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from lattice import TaskDefinitionError
from lattice.client.langgraph import LangGraphClient
from lattice.client.langgraph.node import portable_config
from lattice.client.langgraph.remote import decode_chunk, encode_chunk


@pytest.fixture
def lg() -> LangGraphClient:
    return LangGraphClient("http://127.0.0.1:9", token="t")  # never contacted by these tests


def test_decorated_node_keeps_name_signature_docstring_and_kind(lg: LangGraphClient) -> None:
    @lg.task(cpu=2, memory=4096)
    def process_data(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        """Doc of the node."""
        return {"processed": True}

    @lg.task
    async def fetch(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    assert process_data.__name__ == "process_data"
    assert process_data.__doc__ == "Doc of the node."
    assert list(inspect.signature(process_data).parameters) == ["state", "config"]
    assert not inspect.iscoroutinefunction(process_data)
    assert inspect.iscoroutinefunction(fetch)
    definition = process_data.lattice_node.definition
    assert definition.resources.cpu == 2 and definition.resources.memory == 4096
    assert process_data.lattice_node.options.kwargs == ("config",)


def test_bad_declarations_fail_at_decoration(lg: LangGraphClient) -> None:
    with pytest.raises(TaskDefinitionError, match="sandbox"):
        lg.task(sandbox="vm")(lambda state: {})
    with pytest.raises(TaskDefinitionError, match="store"):
        @lg.task
        def uses_store(state: dict[str, Any], store: Any) -> dict[str, Any]:
            return {}


def test_portable_config_drops_pregel_internals_and_unpicklable_values() -> None:
    import threading

    config = {"tags": ["a"], "metadata": {"langgraph_node": "n"}, "callbacks": object(),
              "configurable": {"thread_id": "t", "__pregel_send": print, "checkpoint_map": {},
                               "model": "m", "lock": threading.Lock()}}
    assert portable_config(config) == {"tags": ["a"], "metadata": {"langgraph_node": "n"},
                                       "configurable": {"thread_id": "t", "model": "m"}}


def test_stream_chunks_round_trip() -> None:
    assert encode_chunk({"a": 1}) == {"langgraph_custom": {"a": 1}}
    for chunk in ({"a": 1}, ("tuple", 1), {1: "int key"}, b"bytes"):
        assert decode_chunk(encode_chunk(chunk)) == (True, chunk)
    assert decode_chunk({"other": 1}) == (False, None)


def test_custom_stream_detection_follows_the_stream_mode() -> None:
    from typing import TypedDict

    from langgraph.config import get_stream_writer
    from langgraph.graph import START, StateGraph
    from langgraph.runtime import _no_op_stream_writer

    from lattice.client.langgraph.node import _writer_is_live

    class S(TypedDict):
        live: bool

    def probe(state: S) -> dict[str, Any]:
        return {"live": _writer_is_live(get_stream_writer(), _no_op_stream_writer)}

    g = StateGraph(S)
    g.add_node(probe)
    g.add_edge(START, "probe")
    graph = g.compile()
    assert graph.invoke({"live": None}) == {"live": False}
    assert list(graph.stream({"live": None}, stream_mode="custom")) == []
    assert [c for m, c in graph.stream({"live": None}, stream_mode=["custom", "values"]) if m == "values"][-1] == {
        "live": True}


def test_a_pool_call_lets_go_of_its_arguments_once_it_has_run() -> None:
    """The executor's work item outlives the awaited result: what it holds must not keep the task's
    context (and through it LangGraph's loop) alive after ``ainvoke`` returned."""
    import weakref

    from lattice.client.langgraph.node import _LetGo

    class Context:
        pass

    context = Context()
    alive = weakref.ref(context)
    call = _LetGo(lambda ctx, x: (type(ctx).__name__, x + 1), context, 1)
    del context
    assert alive() is not None
    assert call() == ("Context", 2)
    assert alive() is None  # freed by reference counting, while the work item (here: ``call``) still exists
    with pytest.raises(RuntimeError, match="runs once"):
        call()
