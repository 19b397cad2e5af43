"""The client-side rules of a remote LangGraph node that need no head: which node orchestrates a subgraph,
the resources refused for it, the bare-resume peek, closure rebinding, and the callback relay's round trip."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from langgraph.pregel._algo import _scratchpad
from langgraph.pregel._messages import StreamMessagesHandler

from lattice.client.langgraph.callbacks import decode_callback, relay_spec, replay, worker_callbacks
from lattice.client.langgraph.node import _closure_values, _same_objects, peek_null_resume
from lattice.client.langgraph.orchestration import holds_graph, refuse_remote_policy
from lattice.client.langgraph.remote import langgraph_trust
from lattice.client.task import _ship_module_by_value
from lattice.errors import TaskDefinitionError


class S(TypedDict):
    n: int


def _compiled() -> Any:
    g = StateGraph(S)
    g.add_node("a", lambda state: {"n": state["n"] + 1})
    g.add_edge(START, "a")
    return g.compile()


SUBGRAPH = _compiled()


def _helper(state: S) -> Any:
    return SUBGRAPH.invoke(state)


def test_a_node_reaching_a_compiled_graph_by_closure_global_or_helper_holds_it() -> None:
    inner = _compiled()

    def by_closure(state: S) -> Any:
        return inner.invoke(state)

    def by_helper(state: S) -> Any:
        return _helper(state)

    def plain(state: S) -> Any:
        return {"n": state["n"] * 2}

    _ship_module_by_value(by_helper)  # as make_node does: this module travels by value, so its helpers do
    assert holds_graph(by_closure) and holds_graph(by_helper)
    assert not holds_graph(plain)


def test_resources_for_an_orchestrating_node_are_refused_but_cpu0_is_not() -> None:
    refuse_remote_policy("n", {"cpu": 0, "gpu": None, "priority": 0, "retries": 0, "sandbox": None})
    with pytest.raises(TaskDefinitionError, match=r"sandbox='seccomp'.*subgraph's own nodes"):
        refuse_remote_policy("n", {"cpu": None, "sandbox": "seccomp"})


def test_the_bare_resume_peek_sees_a_value_consumed_by_another_task() -> None:
    writes: list[Any] = [("00000000-0000-0000-0000-000000000000", "__resume__", "yes")]
    parent = _scratchpad(None, writes, "parent", "", None, 0, 10)
    first = _scratchpad(parent, [], "t1", "ns", None, 0, 10)
    second = _scratchpad(parent, [], "t2", "ns", None, 1, 10)
    assert peek_null_resume(first) == "yes"
    assert first.get_null_resume(True) == "yes"  # the first task's interrupt() took it
    assert second.get_null_resume(False) == "yes"  # LangGraph's own peek still says it is there
    assert peek_null_resume(second) is None  # it is not: a remote node must not be sent it


def test_closure_rebinding_is_seen_and_in_place_change_is_not() -> None:
    value = [1]

    def node(state: S) -> Any:
        return value

    before = _closure_values(node)
    value.append(2)
    assert _same_objects(_closure_values(node), before)
    value = [3]
    assert not _same_objects(_closure_values(node), before)


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.seen.append(("token", token, kwargs["run_id"], kwargs["parent_run_id"]))


def test_callbacks_round_trip_through_the_relay_to_the_callers_handlers() -> None:
    from langchain_core.callbacks.manager import CallbackManager

    recorder, streamed = _Recorder(), []
    messages = StreamMessagesHandler(streamed.append, subgraphs=False)
    parent = uuid.uuid4()
    caller = CallbackManager(handlers=[recorder, messages], parent_run_id=parent,
                             inheritable_metadata={"langgraph_node": "chat", "langgraph_checkpoint_ns": "chat:1"})
    spec = relay_spec(caller, lambda value: True)
    assert spec is not None and spec["messages"] and spec["streaming"] and spec["parent_run_id"] == parent
    posted: list[dict[str, Any]] = []
    manager = worker_callbacks(spec, posted.append)
    run = manager.on_llm_start({}, ["hi"])[0]
    run.on_llm_new_token("he")
    relay = manager.handlers[0]
    assert isinstance(relay, StreamMessagesHandler)  # push_message finds it by type
    relay._emit(((), {"langgraph_node": "chat"}), AIMessage("pushed", id="p1"), dedupe=False)
    trust = langgraph_trust()
    for body in posted:
        decoded = decode_callback(body, trust, "chat")
        assert decoded is not None
        replay(caller, *decoded)
    assert recorder.seen == [("token", "he", run.run_id, parent)]
    assert [chunk[2][0].content for chunk in streamed] == ["pushed"]
    assert decode_callback({"langgraph_custom": 1}, trust) is None
