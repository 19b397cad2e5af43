"""A sandboxed task's outputs and exceptions reach the client without running its code (real head, real Ray).

A task above sandbox level ``none`` is untrusted, and so is what it returns. Its pickles come back
labelled ``sandboxed-pickle``; the client decodes them with the restricted decoder, so a value whose
``__reduce__`` would run code raises :class:`UntrustedOutputError` instead; the marker file it would
create proves nothing ran (and, with ``trust_outputs=True``, that the opt-in really decodes in full).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from headproc import HeadProcess

from lattice import LatticeClient, TaskFailed, UntrustedOutputError, task
from lattice.client.langgraph import LangGraphClient


class WritesMarker:
    """Unpickling it opens (creates) ``path``: stands in for any code a sandboxed task would smuggle out."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return open, (self.path, "w")


class EvilError(Exception):
    """An exception whose pickle creates the marker named by its argument."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return open, (self.args[0], "w")


@task(inputs=["marker"], outputs=["result"], sandbox="subprocess")
def evil_output(params: dict[str, Any]) -> dict[str, Any]:
    return {"result": WritesMarker(params["marker"])}


@task(outputs=["ns"], sandbox="subprocess")
def namespace_output(params: dict[str, Any]) -> dict[str, Any]:
    return {"ns": argparse.Namespace(a=1)}


@task(outputs=["tags", "when"], sandbox="subprocess")
def plain_data(params: dict[str, Any]) -> dict[str, Any]:
    return {"tags": {"a", "b"}, "when": datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.UTC)}


@task(sandbox="subprocess")
def raises_value_error(params: dict[str, Any]) -> None:
    raise ValueError("x")


@task(inputs=["marker"], sandbox="subprocess")
def raises_evil(params: dict[str, Any]) -> None:
    raise EvilError(params["marker"])


@pytest.fixture(scope="module")
def sandboxed_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    """One head whose tasks default to (and may not go below) ``subprocess``, shared by this module.

    The same :class:`HeadProcess` that ``head_factory`` starts, module-scoped: a head per test would
    spend most of the module's time starting Ray.
    """
    proc = HeadProcess(tmp_path_factory.mktemp("sandboxed-head"),
                       extra_args=["--num-cpus", "2", "--sandbox", "subprocess"]).start()
    yield proc
    proc.stop()


@pytest.fixture
def sandboxed(sandboxed_head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(sandboxed_head.url, token=sandboxed_head.token, progress=False) as c:
        yield c


def run_one(client: LatticeClient, fn: Any, **inputs: Any) -> str:
    workflow = client.create_workflow(fn.name)
    workflow.add_task(fn, inputs=inputs)
    return workflow.run()


def test_an_output_that_would_run_code_is_refused_and_nothing_runs(sandboxed: LatticeClient, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_id = run_one(sandboxed, evil_output, marker=str(marker))
    with pytest.raises(UntrustedOutputError) as info:
        sandboxed.get_results(run_id, timeout=120)
    assert (info.value.task, info.value.output) == ("evil_output", "result")
    assert info.value.type_name == "io.open"
    assert "'evil_output'" in str(info.value) and "trust_outputs=True" in str(info.value)
    with pytest.raises(UntrustedOutputError) as info:
        sandboxed.get_task_results(run_id)
    assert (info.value.task, info.value.output, info.value.type_name) == ("evil_output", "result", "io.open")
    assert not marker.exists()

    # the opt-in is real: the very same output, trusted, is unpickled in full (and so runs)
    sandboxed.get_results(run_id, trust_outputs=True)["result"].close()
    assert marker.exists()
    marker.unlink()
    sandboxed.get_task_results(run_id, trust_outputs=True)["evil_output"].outputs["result"].close()
    assert marker.exists()


def test_a_user_type_needs_trusted_types(sandboxed_head: HeadProcess) -> None:
    with LatticeClient(sandboxed_head.url, token=sandboxed_head.token, progress=False) as client:
        run_id = run_one(client, namespace_output)
        with pytest.raises(UntrustedOutputError) as info:
            client.get_results(run_id, timeout=120)
        assert info.value.type_name == "argparse.Namespace" and info.value.task == "namespace_output"
    with LatticeClient(sandboxed_head.url, token=sandboxed_head.token, progress=False,
                       trusted_types=[argparse.Namespace]) as trusting:
        assert trusting.get_results(run_id) == {"ns": argparse.Namespace(a=1)}
        assert trusting.get_task_results(run_id)["namespace_output"].outputs == {"ns": argparse.Namespace(a=1)}


def test_plain_data_decodes_by_default(sandboxed: LatticeClient) -> None:
    run_id = run_one(sandboxed, plain_data)
    assert sandboxed.get_results(run_id, timeout=120) == {
        "tags": {"a", "b"}, "when": datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.UTC)}


def test_a_sandboxed_builtin_exception_comes_back_as_itself(sandboxed: LatticeClient) -> None:
    run_id = run_one(sandboxed, raises_value_error)
    with pytest.raises(TaskFailed) as info:
        sandboxed.get_results(run_id, timeout=120)
    assert info.value.sandbox_level == "subprocess"
    original = info.value.original_exception()
    assert type(original) is ValueError and original.args == ("x",)


def test_a_sandboxed_exception_that_would_run_code_is_not_rebuilt(sandboxed: LatticeClient, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_id = run_one(sandboxed, raises_evil, marker=str(marker))
    with pytest.raises(TaskFailed) as info:
        sandboxed.get_results(run_id, timeout=120)
    failed = info.value
    assert failed.original_exception() is None
    assert not marker.exists()
    assert failed.task == "raises_evil" and failed.error.type.endswith("EvilError")
    assert failed.error.message == str(marker)
    assert "in raises_evil" in failed.traceback and "EvilError" in failed.traceback


# --- level none: trusted code, unchanged -----------------------------------------------------------

@task(inputs=["marker"], outputs=["result", "cls"])
def trusted_output(params: dict[str, Any]) -> dict[str, Any]:
    class Local:
        """Defined in the task: cloudpickle ships the class by value."""

        value = 42

    return {"result": WritesMarker(params["marker"]), "cls": Local()}


def test_a_level_none_tasks_pickles_are_decoded_in_full(client: LatticeClient, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    results = client.get_results(run_one(client, trusted_output, marker=str(marker)), timeout=120)
    results["result"].close()
    assert marker.exists() and results["cls"].value == 42


# --- a LangGraph node in a sandbox: its messages and interrupts are in the safe set ---------------

class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_a_sandboxed_langgraph_node_returns_messages_and_interrupts(sandboxed_head: HeadProcess) -> None:
    with LangGraphClient(sandboxed_head.url, token=sandboxed_head.token, graph="sandboxed") as lg:
        @lg.task(cpu=0, sandbox="subprocess")
        def reply(state: Chat) -> dict[str, Any]:
            answer = interrupt({"question": "send it?"})
            return {"messages": [AIMessage(f"sent: {answer}", id="a1")]}

        g = StateGraph(Chat)
        g.add_node(reply)
        g.add_edge(START, "reply")
        graph = g.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t1"}}
        first = graph.invoke({"messages": [HumanMessage("hi", id="h1")]}, config)
        assert [i.value for i in first["__interrupt__"]] == [{"question": "send it?"}]
        final = graph.invoke(Command(resume="yes"), config)
        assert [m.content for m in final["messages"]] == ["hi", "sent: yes"]
        assert type(final["messages"][1]) is AIMessage
