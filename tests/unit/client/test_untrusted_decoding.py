"""How the client decodes what tasks return and raise, by who wrote it; no head needed.

``pickle`` (trusted code) is unpickled in full, ``sandboxed-pickle`` (a sandboxed task) only through the
restricted decoder unless the user opts in. The clients' HTTP calls are replaced by canned answers in
the head's wire format, so each path (sync, async, workflow, per-task, errors, LangGraph nodes) is
exercised exactly as it decodes a real head's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from lattice import AsyncLatticeClient, LatticeClient, TaskFailed, UntrustedOutputError
from lattice.client.base import TaskResult, decode_outputs, decode_task_value, decode_wire_value, results_or_raise
from lattice.errors import ErrorInfo, ErrorKind, LatticeError, RunFailed, exception_from_error_info
from lattice.wire.restricted_pickle import PickleTrust


class WritesMarker:
    """Unpickling it opens (creates) ``path``: stands in for any code an attacker would run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return open, (str(self.path), "w")


class EvilError(Exception):
    """An exception whose pickle runs code (creates the marker named by its first argument)."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return open, (self.args[0], "w")


def wire(value: Any, encoding: str = "sandboxed-pickle", task: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"encoding": encoding, "data": base64.b64encode(cloudpickle.dumps(value)).decode()}
    if task is not None:
        item["task"] = task
    return item


def succeeded(outputs: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": "r1", "state": "succeeded", "done": True, "outputs": outputs, "failed_task": None,
            "error": None}


def failed_body(exc: BaseException, level: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"exception": base64.b64encode(cloudpickle.dumps(exc)).decode()}
    if level is not None:
        detail["sandbox_level"] = level
    error = {"kind": "exception", "type": type(exc).__qualname__, "message": str(exc),
             "traceback": f"Traceback (most recent call last):\n{type(exc).__qualname__}: {exc}\n", "detail": detail}
    return {"run_id": "r1", "state": "failed", "done": True, "outputs": None, "failed_task": "t", "error": error}


def close(value: Any) -> None:
    if hasattr(value, "close"):
        value.close()


# --- the one decode function ------------------------------------------------------------------------

def test_encodings_decode_by_who_wrote_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    assert decode_task_value("json", b'{"a": [1]}') == {"a": [1]}
    assert decode_task_value("pickle", cloudpickle.dumps({1, 2})) == {1, 2}
    assert decode_task_value("sandboxed-pickle", cloudpickle.dumps({1, 2})) == {1, 2}
    with pytest.raises(UntrustedOutputError) as info:
        decode_task_value("sandboxed-pickle", cloudpickle.dumps(WritesMarker(marker)), task="evil", output="result")
    assert not marker.exists()
    error = info.value
    assert (error.task, error.output, error.type_name) == ("evil", "result", "io.open")
    for part in ("'evil'", "'result'", "'io.open'", "trust_outputs=True", "not a class"):
        assert part in str(error)
    # a callable is the payload of a malicious pickle: the message must not suggest trusting it by name
    assert "trusted_types=['io.open']" not in str(error)
    close(decode_task_value("sandboxed-pickle", cloudpickle.dumps(WritesMarker(marker)), PickleTrust(trust_all=True)))
    assert marker.exists()  # the opt-in is real
    marker.unlink()
    close(decode_task_value("pickle", cloudpickle.dumps(WritesMarker(marker))))
    assert marker.exists()  # trusted code's pickle: unchanged, decoded in full


def test_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(LatticeError, match=r"unknown encoding 'zstd-pickle'.*json, pickle and sandboxed-pickle"):
        decode_task_value("zstd-pickle", b"", task="t", output="o")
    with pytest.raises(LatticeError, match="'o' of task 't'"):
        decode_wire_value({"encoding": "zstd-pickle", "data": ""}, task="t", output="o")


def test_untrusted_output_error_without_task_or_output() -> None:
    error = UntrustedOutputError(None, None, "pkg.Thing")
    assert error.task is None and error.output is None and error.type_name == "pkg.Thing"
    assert "an output of a sandboxed task" in str(error) and "trusted_types=['pkg.Thing']" in str(error)


def test_wire_values_and_trusted_types() -> None:
    namespace = argparse.Namespace(a=1)
    assert decode_wire_value({"encoding": "json", "value": [1]}) == [1]
    with pytest.raises(UntrustedOutputError, match=r"argparse\.Namespace"):
        decode_wire_value(wire(namespace), task="t", output="ns")
    assert decode_wire_value(wire(namespace), PickleTrust.of([argparse.Namespace])) == namespace
    assert decode_wire_value(wire(namespace), PickleTrust.of(["argparse.Namespace"])) == namespace
    assert decode_wire_value(wire(namespace, "pickle")) == namespace


def test_merged_outputs_name_their_task_and_plain_output() -> None:
    outputs = {"a.result": wire(1, task="a"), "b.result": wire(argparse.Namespace(), task="b"),
               "other": {"encoding": "json", "value": "o", "task": "b"}}
    with pytest.raises(UntrustedOutputError) as info:
        decode_outputs(outputs)
    assert (info.value.task, info.value.output) == ("b", "result")
    decoded = decode_outputs(outputs, PickleTrust.of([argparse.Namespace]))
    assert decoded == {"a.result": 1, "b.result": argparse.Namespace(), "other": "o"}
    with pytest.raises(UntrustedOutputError) as info:
        decode_outputs({"x": wire(argparse.Namespace())}, task="producer")
    assert (info.value.task, info.value.output) == ("producer", "x")


def test_safe_values_decode_by_default() -> None:
    value = {"when": datetime.datetime(2024, 1, 2, 3, 4), "tags": {"a", "b"}, "err": ValueError("x")}
    out = results_or_raise(succeeded({"result": wire(value, task="t")}))["result"]
    assert out["when"] == value["when"] and out["tags"] == value["tags"] and type(out["err"]) is ValueError


# --- original_exception() ---------------------------------------------------------------------------

def raised(body: dict[str, Any], trust: PickleTrust | None = None) -> RunFailed:
    with pytest.raises(RunFailed) as info:
        results_or_raise(body, trust or PickleTrust())
    return info.value


def test_original_exception_of_a_level_none_task_is_unpickled_in_full(tmp_path: Path) -> None:
    exc = raised(failed_body(json.JSONDecodeError("bad", "doc", 1), None))
    assert type(exc.original_exception()) is json.JSONDecodeError
    exc = raised(failed_body(json.JSONDecodeError("bad", "doc", 1), "none"))
    assert type(exc.original_exception()) is json.JSONDecodeError


def test_original_exception_of_a_sandboxed_task_follows_the_trust(tmp_path: Path) -> None:
    exc = raised(failed_body(ValueError("x"), "seccomp"))
    assert exc.sandbox_level == "seccomp"
    original = exc.original_exception()
    assert type(original) is ValueError and original.args == ("x",)

    user = raised(failed_body(json.JSONDecodeError("bad", "doc", 1), "subprocess"))
    assert user.original_exception() is None  # refused: not a builtin, not trusted
    assert user.error.type == "JSONDecodeError" and "bad" in user.error.message and user.traceback
    assert type(user.original_exception(trusted_types=[json.JSONDecodeError])) is json.JSONDecodeError
    assert type(user.original_exception(trust_outputs=True)) is json.JSONDecodeError
    trusted_client = raised(failed_body(json.JSONDecodeError("bad", "doc", 1), "subprocess"),
                            PickleTrust.of(["json.decoder.JSONDecodeError"]))
    assert type(trusted_client.original_exception()) is json.JSONDecodeError  # the raising client's trust
    trusting_client = raised(failed_body(json.JSONDecodeError("bad", "doc", 1), "docker"), PickleTrust(True))
    assert type(trusting_client.original_exception()) is json.JSONDecodeError
    assert trusting_client.original_exception(trust_outputs=False) is None


def test_original_exception_never_runs_a_sandboxed_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exc = raised(failed_body(EvilError(str(marker)), "subprocess"))
    assert isinstance(exc, TaskFailed)
    assert exc.original_exception() is None
    assert not marker.exists()
    assert exc.error.type == "EvilError" and exc.error.message == str(marker) and "EvilError" in exc.traceback
    assert exc.original_exception(trust_outputs=True) is None  # decoded (it ran), but it is no exception
    assert marker.exists()


def test_a_run_failed_built_by_hand_defaults_to_no_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    body = failed_body(EvilError(str(marker)), "seccomp")
    exc = exception_from_error_info("r1", "t", ErrorInfo.from_dict(body["error"]))
    assert exc.trust is None and exc.original_exception() is None and not marker.exists()
    assert RunFailed("r1", "t", ErrorInfo(ErrorKind.INTERNAL, "X", "m")).original_exception() is None


# --- the clients ------------------------------------------------------------------------------------

def fake_head(answers: dict[str, Any]) -> Any:
    def request(method: str, path: str, **kwargs: Any) -> Any:
        return answers[path.rsplit("/", 1)[-1]]
    return request


def test_sync_client_and_workflow_pass_their_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    answers = {"results": succeeded({"result": wire(WritesMarker(marker), task="t")}),
               "tasks": [{"name": "t", "state": "succeeded", "outputs": {"result": wire(WritesMarker(marker))}}]}
    with LatticeClient("http://127.0.0.1:9", token="x", progress=False) as client:
        client._request = fake_head(answers)
        workflow = client.create_workflow()
        for call in (client.get_results, workflow.get_results, client.get_task_results, workflow.get_task_results):
            with pytest.raises(UntrustedOutputError) as info:
                call("r1")
            assert (info.value.task, info.value.output) == ("t", "result")
        assert not marker.exists()
        close(workflow.get_results("r1", trust_outputs=True)["result"])
        assert marker.exists()
        marker.unlink()
        close(client.get_task_results("r1", trust_outputs=True)["t"].outputs["result"])
        assert marker.exists()

    answers = {"results": succeeded({"ns": wire(argparse.Namespace(a=1), task="t")})}
    with LatticeClient("http://127.0.0.1:9", token="x", progress=False, trusted_types=[argparse.Namespace]) as client:
        client._request = fake_head(answers)
        assert client.get_results("r1") == {"ns": argparse.Namespace(a=1)}
    with LatticeClient("http://127.0.0.1:9", token="x", progress=False, trust_outputs=True) as client:
        client._request = fake_head(answers)
        assert client.get_results("r1") == {"ns": argparse.Namespace(a=1)}
        with pytest.raises(UntrustedOutputError):
            client.get_results("r1", trust_outputs=False)


def test_failed_run_carries_the_calls_trust() -> None:
    answers = {"results": failed_body(json.JSONDecodeError("bad", "doc", 1), "seccomp")}
    with LatticeClient("http://127.0.0.1:9", token="x", progress=False) as client:
        client._request = fake_head(answers)
        with pytest.raises(TaskFailed) as info:
            client.get_results("r1")
        assert info.value.original_exception() is None
        with pytest.raises(TaskFailed) as info:
            client.get_results("r1", trust_outputs=True)
        assert type(info.value.original_exception()) is json.JSONDecodeError


def test_async_client_and_workflow_pass_their_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    answers = {"results": succeeded({"result": wire(WritesMarker(marker), task="t")}),
               "tasks": [{"name": "t", "state": "succeeded", "outputs": {"result": wire(WritesMarker(marker))}}]}

    async def main() -> None:
        async with AsyncLatticeClient("http://127.0.0.1:9", token="x") as client:
            sync_fake = fake_head(answers)

            async def request(method: str, path: str, **kwargs: Any) -> Any:
                return sync_fake(method, path, **kwargs)

            client._request = request
            workflow = client.create_workflow()
            for call in (client.get_results, workflow.get_results, client.get_task_results,
                         workflow.get_task_results):
                with pytest.raises(UntrustedOutputError):
                    await call("r1")
            assert not marker.exists()
            close((await workflow.get_results("r1", trust_outputs=True))["result"])
            assert marker.exists()
        async with AsyncLatticeClient("http://127.0.0.1:9", token="x", trusted_types=["argparse.Namespace"]) as client:
            assert ("argparse", "Namespace") in client.trust.types and not client.trust.trust_all

    asyncio.run(main())


def test_task_result_from_api_decodes_under_the_trust() -> None:
    item = {"name": "t", "state": "succeeded", "outputs": {"ns": wire(argparse.Namespace(a=2))}}
    with pytest.raises(UntrustedOutputError):
        TaskResult.from_api(item)
    assert TaskResult.from_api(item, PickleTrust.of([argparse.Namespace])).outputs == {"ns": argparse.Namespace(a=2)}


# --- LangGraph: the remote node's outcome, its nested exception, stream chunks ---------------------

class _FakeWorkflow:
    def run(self, **kwargs: Any) -> str:
        return "r1"


def remote_node(body: dict[str, Any], **client_kwargs: Any) -> Any:
    from lattice.client.langgraph import LangGraphClient

    lg = LangGraphClient("http://127.0.0.1:9", token="t", **client_kwargs)

    @lg.task(cpu=0, sandbox="subprocess")
    def node(state: dict[str, Any]) -> dict[str, Any]:
        return state

    node.lattice_node._registered = _FakeWorkflow()
    lg.lattice.wait = lambda run_id, timeout=None, progress=None: body  # type: ignore[method-assign]
    return node


def outcome(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "sends": [], "null_resume_consumed": False, **fields}


def test_langgraph_types_come_back_from_a_sandboxed_node() -> None:
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.types import Command, Send

    value = {"messages": [AIMessage("hi", tool_calls=[{"name": "f", "args": {}, "id": "1"}]),
                          ToolMessage("done", tool_call_id="1")],
             "next": Command(goto=[Send("b", {"x": 1})])}
    node = remote_node(succeeded({"result": wire(outcome("return", value=value), task="node")}))
    assert node({"x": 1}) == value


def test_a_sandboxed_nodes_interrupt_is_raised_and_an_untrusted_nested_exception_is_refused(tmp_path: Path) -> None:
    from langgraph.errors import GraphInterrupt
    from langgraph.types import Interrupt

    interrupt = GraphInterrupt([Interrupt(value={"question": "ok?"}, id="i1")])
    node = remote_node(succeeded({"result": wire(outcome("raise", exc=cloudpickle.dumps(interrupt)), task="node")}))
    with pytest.raises(GraphInterrupt) as info:
        node({})
    assert info.value.args[0][0].value == {"question": "ok?"}

    marker = tmp_path / "pwned"
    evil = outcome("raise", exc=cloudpickle.dumps(EvilError(str(marker))))
    with pytest.raises(UntrustedOutputError) as refused:
        remote_node(succeeded({"result": wire(evil, task="node")}))({})
    assert refused.value.task == "node" and refused.value.type_name == "io.open"
    assert not marker.exists()


def test_nested_exceptions_follow_the_outcomes_label_and_the_opt_ins() -> None:
    class Local(Exception):
        """Defined here, so cloudpickle ships the class by value: never trusted by name."""

    nested = outcome("raise", exc=cloudpickle.dumps(Local("x")))
    with pytest.raises(Local):  # a level-none node: trusted code, decoded in full as before
        remote_node(succeeded({"result": wire(nested, "pickle", task="node")}))({})
    with pytest.raises(UntrustedOutputError, match="cloudpickle"):
        remote_node(succeeded({"result": wire(nested, task="node")}))({})
    with pytest.raises(Local):
        remote_node(succeeded({"result": wire(nested, task="node")}), trust_outputs=True)({})


def test_a_sandboxed_nodes_own_exception_is_raised_only_when_trusted() -> None:
    with pytest.raises(ValueError, match="x"):
        remote_node(failed_body(ValueError("x"), "subprocess"))({})
    body = failed_body(json.JSONDecodeError("bad", "doc", 1), "subprocess")
    with pytest.raises(TaskFailed) as info:  # refused: Lattice's typed error, same type name and message
        remote_node(body)({})
    assert info.value.error.type == "JSONDecodeError"
    with pytest.raises(json.JSONDecodeError):
        remote_node(body, trusted_types=[json.JSONDecodeError])({})


def test_custom_stream_chunks_are_always_read_restricted(tmp_path: Path) -> None:
    from langchain_core.messages import AIMessageChunk

    from lattice.client.langgraph.remote import decode_chunk, encode_chunk, langgraph_trust

    chunk = {"token": AIMessageChunk("he"), "at": datetime.date(2024, 1, 1)}
    assert decode_chunk(encode_chunk(chunk)) == (True, chunk)
    marker = tmp_path / "pwned"
    evil = encode_chunk(WritesMarker(marker))
    with pytest.raises(UntrustedOutputError) as info:
        decode_chunk(evil, PickleTrust(), task="node")
    assert info.value.task == "node" and not marker.exists()
    assert decode_chunk(encode_chunk(argparse.Namespace(a=1)), PickleTrust.of([argparse.Namespace]))[1].a == 1
    is_chunk, opened = decode_chunk(evil, langgraph_trust(PickleTrust(trust_all=True)))
    close(opened)
    assert is_chunk and marker.exists()


def test_langgraph_safe_set_holds_types_only() -> None:
    from lattice.client.langgraph import LangGraphClient
    from lattice.client.langgraph.remote import langgraph_safe_types

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        types = langgraph_safe_types()
    assert all(isinstance(cls, type) for cls in types)
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in types}
    assert {"langgraph.types.Send", "langgraph.types.Command", "langgraph.types.Interrupt",
            "langgraph.errors.GraphInterrupt"} <= names
    assert {"AIMessage", "AIMessageChunk", "HumanMessage", "ToolMessage", "RemoveMessage"} <= {
        cls.__name__ for cls in types}
    lg = LangGraphClient("http://127.0.0.1:9", token="t", trusted_types=[argparse.Namespace])
    assert ("argparse", "Namespace") in lg.lattice.trust.types
    assert ("langgraph.types", "Send") not in lg.lattice.trust.types  # the plain client keeps the user's set
    assert {("argparse", "Namespace"), ("langgraph.types", "Send")} <= lg.trust.types
    assert LangGraphClient("http://127.0.0.1:9", token="t", trust_outputs=True).trust.trust_all
