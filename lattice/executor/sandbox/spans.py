"""Spans a sandboxed task makes: recorded inside the sandbox, carried out in the result frame, exported by
the worker.

The sandboxed child must not export them itself: it gets a scrubbed environment (no ``OTEL_*``, whose
headers may hold the collector's credentials) and, at ``seccomp``/``docker``, no network. So the worker
passes only the attempt's W3C context (``TRACEPARENT``/``TRACESTATE`` in the child's environment); the
child records the task's spans in memory under it (:func:`start_recording`), and writes them as plain JSON
into its result frame (:func:`finish_recording`). The worker checks them like every other byte the task
wrote (:func:`parse_spans`: bounded count and sizes, primitive attributes, hex ids) and hands them to its
own exporter, under the attempt's trace id whatever the child claimed (:func:`export`), so a task can
add spans to its own attempt only.

Nothing here imports OpenTelemetry unless a context is given and the SDK is installed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

MAX_SPANS = 256
MAX_NAME = 256
MAX_ATTRIBUTES = 64
MAX_EVENTS = 32
MAX_VALUE_CHARS = 4096
_HEX16 = re.compile(r"[0-9a-f]{16}")
_KINDS = ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")


class SpanError(ValueError):
    """A span list from a sandboxed task that does not check."""


class Recording:
    """The child's in-memory provider and the attached attempt context."""

    def __init__(self, exporter: Any, token: Any) -> None:
        self.exporter = exporter
        self.token = token


def start_recording(environ: Mapping[str, str]) -> Recording | None:
    """In the child, before the task's function runs: record its spans under the attempt's context."""
    traceparent = environ.get("TRACEPARENT")
    if not traceparent:
        return None
    try:
        from opentelemetry import context, trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    carrier = {"traceparent": traceparent}
    if environ.get("TRACESTATE"):
        carrier["tracestate"] = environ["TRACESTATE"]
    token = context.attach(TraceContextTextMapPropagator().extract(carrier))
    return Recording(exporter, token)


def finish_recording(recording: Recording | None) -> list[dict[str, Any]]:
    """In the child, after the function: the finished spans as plain JSON (at most :data:`MAX_SPANS`)."""
    if recording is None:
        return []
    from opentelemetry import context

    with contextlib.suppress(Exception):
        context.detach(recording.token)
    spans: list[dict[str, Any]] = []
    for span in recording.exporter.get_finished_spans()[:MAX_SPANS]:
        parent = span.parent
        spans.append({
            "name": span.name[:MAX_NAME],
            "span_id": f"{span.context.span_id:016x}",
            "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
            "kind": span.kind.name,
            "start": span.start_time or 0,
            "end": span.end_time or span.start_time or 0,
            "status": span.status.status_code.name,
            "description": (span.status.description or "")[:MAX_VALUE_CHARS],
            "attributes": _plain(span.attributes),
            "events": [{"name": e.name[:MAX_NAME], "time": e.timestamp, "attributes": _plain(e.attributes)}
                       for e in span.events[:MAX_EVENTS]],
            "scope": span.instrumentation_scope.name[:MAX_NAME] if span.instrumentation_scope else "",
        })
    return spans


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in list((attributes or {}).items())[:MAX_ATTRIBUTES]:
        if isinstance(value, str):
            out[str(key)[:MAX_NAME]] = value[:MAX_VALUE_CHARS]
        elif isinstance(value, bool | int | float):
            out[str(key)[:MAX_NAME]] = value
        elif isinstance(value, tuple | list):
            out[str(key)[:MAX_NAME]] = [v if not isinstance(v, str) else v[:MAX_VALUE_CHARS]
                                        for v in value[:MAX_ATTRIBUTES] if isinstance(v, str | bool | int | float)]
    return out


def _check_attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise SpanError("span attributes are not an object of at most 64 entries")
    for key, item in value.items():
        items = item if isinstance(item, list) else [item]
        if len(key) > MAX_NAME or len(items) > MAX_ATTRIBUTES or not all(
                isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= MAX_VALUE_CHARS)
                for v in items):
            raise SpanError(f"span attribute {key[:40]!r} is not a bounded primitive or list of them")
    return value


def _check_int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0 or value >= 2**63:
        raise SpanError(f"span {what} is not a timestamp in ns")
    return value


def parse_spans(value: Any) -> list[dict[str, Any]]:
    """In the worker: the child's span list, checked (it was written by the task's process)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SPANS:
        raise SpanError(f"spans are not a list of at most {MAX_SPANS}")
    checked: list[dict[str, Any]] = []
    for span in value:
        if not isinstance(span, dict):
            raise SpanError("a span is not an object")
        name, scope, description = span.get("name"), span.get("scope", ""), span.get("description", "")
        if not all(isinstance(s, str) for s in (name, scope, description)) or len(name) > MAX_NAME \
                or len(scope) > MAX_NAME or len(description) > MAX_VALUE_CHARS:
            raise SpanError("a span's name, scope or description is not a bounded string")
        span_id, parent_id = span.get("span_id"), span.get("parent_id")
        if not (isinstance(span_id, str) and _HEX16.fullmatch(span_id)) or not (
                parent_id is None or (isinstance(parent_id, str) and _HEX16.fullmatch(parent_id))):
            raise SpanError("a span's ids are not 16 hex digits")
        if span.get("kind") not in _KINDS or span.get("status") not in _STATUS:
            raise SpanError("a span's kind or status is unknown")
        events = span.get("events", [])
        if not isinstance(events, list) or len(events) > MAX_EVENTS:
            raise SpanError("span events are not a bounded list")
        checked_events = []
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("name"), str) or len(event["name"]) > MAX_NAME:
                raise SpanError("a span event is malformed")
            checked_events.append({"name": event["name"], "time": _check_int(event.get("time"), "event time"),
                                   "attributes": _check_attributes(event.get("attributes", {}))})
        checked.append({
            "name": name, "scope": scope, "description": description, "span_id": span_id, "parent_id": parent_id,
            "kind": span["kind"], "status": span["status"], "start": _check_int(span.get("start"), "start"),
            "end": _check_int(span.get("end"), "end"), "attributes": _check_attributes(span.get("attributes", {})),
            "events": checked_events})
    return checked


def export(spans: list[dict[str, Any]], carrier: Mapping[str, str], provider: Any, processors: list[Any]) -> int:
    """In the worker: hand checked spans to ``processors`` (the worker's exporters), in the attempt's trace; a
    parent the task did not make is replaced by the attempt span. Returns how many were handed on."""
    if not spans or provider is None or not processors:
        return 0
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attempt = get_current_span(TraceContextTextMapPropagator().extract(dict(carrier))).get_span_context()
    if not attempt.is_valid:
        return 0
    trace_id, flags = attempt.trace_id, TraceFlags(TraceFlags.SAMPLED)
    own = {span["span_id"] for span in spans}
    resource = getattr(provider, "resource", None)
    for span in spans:
        parent_id = int(span["parent_id"], 16) if span["parent_id"] in own else attempt.span_id
        readable = ReadableSpan(
            span["name"], context=SpanContext(trace_id, int(span["span_id"], 16), False, flags),
            parent=SpanContext(trace_id, parent_id, False, flags), resource=resource,
            attributes={**_tuples(span["attributes"]), "lattice.sandboxed": True},
            events=[Event(e["name"], _tuples(e["attributes"]), e["time"]) for e in span["events"]],
            kind=SpanKind[span["kind"]], status=Status(StatusCode[span["status"]], span["description"] or None),
            start_time=span["start"], end_time=span["end"], instrumentation_scope=InstrumentationScope(span["scope"]))
        for processor in processors:
            processor.on_end(readable)
    return len(spans)


def _tuples(attributes: dict[str, Any]) -> dict[str, Any]:
    """Sequences as tuples, as the SDK keeps them for spans it makes itself."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attributes.items()}


@contextlib.contextmanager
def recording(environ: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
    """``with recording(os.environ) as spans:`` — ``spans`` is filled when the block ends."""
    rec = start_recording(environ)
    spans: list[dict[str, Any]] = []
    try:
        yield spans
    finally:
        spans.extend(finish_recording(rec))
