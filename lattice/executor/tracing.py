"""Activating an attempt's trace context around the task's function, in the Ray worker.

The head puts the attempt span's W3C context into the payload (``AttemptPayload.trace``); here it becomes
the current context while the function runs, so a span the task starts (``tracer.start_as_current_span``
around an LLM call) is a child of the attempt span, in the run's trace. The worker's own exporter comes
from its environment (:func:`lattice.utils.otel.tracer_provider`), as the head's does. A sandboxed task
gets the context as ``TRACEPARENT`` only and hands its spans back in its result frame
(:mod:`lattice.executor.sandbox.spans`); the worker exports them here.

An empty carrier, or OpenTelemetry not installed, is a no-op: nothing is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lattice.utils import otel
from lattice.utils.otel import tracer_provider

log = logging.getLogger("lattice.tracing")


@contextmanager
def trace_context(carrier: Mapping[str, str]) -> Iterator[None]:
    """The attempt's context as the current one for the block (a no-op without a carrier or OTel)."""
    if not carrier:
        yield
        return
    try:
        from opentelemetry import context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        yield
        return
    # The batch processor exports in the background (OTEL_BSP_SCHEDULE_DELAY) and at the worker's exit; no
    # flush per task, so a slow or absent collector never delays a task.
    tracer_provider("lattice-worker")
    token = context.attach(TraceContextTextMapPropagator().extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)


def sandbox_trace_env(carrier: Mapping[str, str]) -> dict[str, str]:
    """What a sandboxed child gets of the attempt's context: ``TRACEPARENT``/``TRACESTATE`` only (never the
    worker's ``OTEL_*``, which may hold the collector's credentials); empty when tracing is off."""
    env = {"TRACEPARENT": carrier["traceparent"]} if carrier.get("traceparent") else {}
    if env and carrier.get("tracestate"):
        env["TRACESTATE"] = carrier["tracestate"]
    return env


def export_sandbox_spans(spans: list[dict[str, Any]], carrier: Mapping[str, str]) -> None:
    """Hand the spans a sandboxed task recorded (already checked) to this worker's exporters."""
    if not spans or not carrier:
        return
    from lattice.executor.sandbox.spans import export

    try:
        export(spans, carrier, tracer_provider("lattice-worker"), otel.span_processors())
    except Exception:
        log.exception("could not export the spans of a sandboxed task")
