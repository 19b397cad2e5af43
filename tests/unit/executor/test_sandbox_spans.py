"""Spans a sandboxed task hands back are checked like every other byte it wrote, and land in the attempt's
trace whatever the task claims."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lattice.executor.invoke import InvocationResult
from lattice.executor.sandbox.protocol import ProtocolError, pack_result, parse_result
from lattice.executor.sandbox.spans import MAX_SPANS, export, finish_recording, parse_spans, start_recording

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ATTEMPT_SPAN = "00f067aa0ba902b7"
CARRIER = {"traceparent": f"00-{TRACE_ID}-{ATTEMPT_SPAN}-01"}


def _recorded() -> list[dict[str, Any]]:
    """Record as the child does (in this process: the global provider is set once, so in a subprocess)."""
    code = (
        "import json, sys\n"
        "from lattice.executor.sandbox.spans import start_recording, finish_recording\n"
        f"rec = start_recording({{'TRACEPARENT': {CARRIER['traceparent']!r}}})\n"
        "from opentelemetry import trace\n"
        "with trace.get_tracer('t').start_as_current_span('outer') as s:\n"
        "    s.set_attribute('k', 'v'); s.add_event('token', {'n': 1})\n"
        "    with trace.get_tracer('t').start_as_current_span('inner'): pass\n"
        "print(json.dumps(finish_recording(rec)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_recorded_spans_round_trip_through_the_result_frame() -> None:
    spans = _recorded()
    assert [s["name"] for s in spans] == ["inner", "outer"]
    frame = pack_result(InvocationResult(outputs={"y": ("json", b"1")}, spans=spans))
    parsed = parse_result(frame, ["y"])
    assert parsed.spans == parse_spans(spans) and parsed.outputs == {"y": ("json", b"1")}
    outer = next(s for s in parsed.spans if s["name"] == "outer")
    assert outer["parent_id"] == ATTEMPT_SPAN and outer["attributes"] == {"k": "v"}
    assert outer["events"][0]["name"] == "token"


@pytest.mark.parametrize("bad", [
    "not a list",
    [{"name": "x"}],
    [{"name": "x", "span_id": "zz", "parent_id": None, "kind": "INTERNAL", "status": "OK", "start": 0, "end": 1}],
    [{"name": "x", "span_id": "0" * 16, "parent_id": None, "kind": "EVIL", "status": "OK", "start": 0, "end": 1}],
    [{"name": "x", "span_id": "0" * 16, "parent_id": None, "kind": "INTERNAL", "status": "OK", "start": -1,
      "end": 1}],
    [{"name": "x", "span_id": "0" * 16, "parent_id": None, "kind": "INTERNAL", "status": "OK", "start": 0,
      "end": 1, "attributes": {"k": {"nested": "object"}}}],
    [{"name": "x" * 10_000, "span_id": "0" * 16, "parent_id": None, "kind": "INTERNAL", "status": "OK",
      "start": 0, "end": 1}],
])
def test_a_forged_span_list_is_a_protocol_error(bad: Any) -> None:
    frame = pack_result(InvocationResult(outputs={"y": ("json", b"1")}, spans=bad))
    with pytest.raises(ProtocolError, match="result spans"):
        parse_result(frame, ["y"])


def test_too_many_spans_are_refused() -> None:
    span = {"name": "x", "span_id": "0" * 16, "parent_id": None, "kind": "INTERNAL", "status": "OK",
            "start": 0, "end": 1}
    with pytest.raises(ValueError, match="at most"):
        parse_spans([span] * (MAX_SPANS + 1))


def test_export_puts_spans_in_the_attempts_trace_and_reparents_strangers() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider()
    spans = parse_spans([
        {"name": "mine", "span_id": "1" * 16, "parent_id": "9" * 16, "kind": "CLIENT", "status": "ERROR",
         "description": "boom", "start": 10, "end": 20, "attributes": {"a": [1, 2]}},
        {"name": "child", "span_id": "2" * 16, "parent_id": "1" * 16, "kind": "INTERNAL", "status": "UNSET",
         "start": 11, "end": 12},
    ])
    assert export(spans, CARRIER, provider, [processor]) == 2
    got = {s.name: s for s in exporter.get_finished_spans()}
    assert {s.context.trace_id for s in got.values()} == {int(TRACE_ID, 16)}
    assert got["mine"].parent.span_id == int(ATTEMPT_SPAN, 16)  # "9999..." is not the task's: the attempt
    assert got["child"].parent.span_id == int("1" * 16, 16)
    assert got["mine"].attributes["a"] == (1, 2) and got["mine"].attributes["lattice.sandboxed"] is True
    assert got["mine"].status.description == "boom"
    assert export(spans, {}, provider, [processor]) == 0  # no attempt context: nothing


def test_without_a_context_nothing_is_recorded() -> None:
    assert start_recording({}) is None and finish_recording(None) == []
