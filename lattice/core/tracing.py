"""OpenTelemetry spans for runs and attempts, made by the head; a no-op when tracing is off.

A run is one trace: its root span lasts from submission (or, after a restart, from resumption) to its
end. Each attempt is a child span from dispatch to the attempt's end, carrying its node, resources and
outcome. The attempt span's context travels to the executor in the attempt's payload (W3C
``traceparent``/``tracestate``, see :attr:`lattice.wire.attempt.AttemptPayload.trace`), which activates it
around the task's function, so spans the task makes (around its LLM calls, say) nest under its attempt.

OpenTelemetry is optional (the ``otel`` extra): this module imports it only when it is given a tracer,
and the orchestrator holds :data:`NO_TRACING` otherwise, so a head without it does nothing extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lattice.wire.resources import Resources


class RunTracing:
    """Spans for runs and attempts, made with ``tracer`` (an ``opentelemetry.trace.Tracer``); with
    ``None``, every call returns at once and no span exists."""

    def __init__(self, tracer: Any | None = None) -> None:
        self.tracer = tracer
        self._runs: dict[str, Any] = {}  # run id -> its root span
        self._attempts: dict[str, Any] = {}  # attempt id -> its span
        if tracer is not None:
            from opentelemetry import trace
            from opentelemetry.context import Context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            self._trace = trace
            self._propagator = TraceContextTextMapPropagator()
            self._root = Context  # an empty context: a run's span is a root, whatever is current

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def run_started(self, run_id: str, workflow_name: str, tasks: int, resumed: bool = False) -> None:
        if self.tracer is None:
            return
        self._runs[run_id] = self.tracer.start_span(
            f"run {workflow_name}", context=self._root(),
            kind=self._trace.SpanKind.INTERNAL,
            attributes={"lattice.run.id": run_id, "lattice.workflow.name": workflow_name,
                        "lattice.run.tasks": tasks, "lattice.run.resumed": resumed})

    def run_finished(self, run_id: str, state: str, error: Mapping[str, Any] | None = None) -> None:
        span = self._runs.pop(run_id, None)
        if span is None:
            return
        span.set_attribute("lattice.run.state", str(state))
        if str(state) == "failed":
            message = str(error.get("message", "")) if error else ""
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message[:512]))
        span.end()

    def attempt_started(self, run_id: str, task: str, attempt_id: str, number: int, node_id: str,
                        resources: Resources, sandbox: str) -> dict[str, str]:
        """Start the attempt's span under its run's; returns the carrier the executor activates (empty
        when tracing is off)."""
        if self.tracer is None:
            return {}
        trace = self._trace
        parent = self._runs.get(run_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            f"task {task}", context=context, kind=trace.SpanKind.INTERNAL,
            attributes={"lattice.run.id": run_id, "lattice.task.name": task, "lattice.attempt.id": attempt_id,
                        "lattice.attempt.number": number, "lattice.node.id": node_id,
                        "lattice.sandbox.level": sandbox,
                        "lattice.resources.cpu": resources.cpu, "lattice.resources.gpu": resources.gpu,
                        "lattice.resources.memory_bytes": int(resources.memory or 0) * 1024 * 1024})
        self._attempts[attempt_id] = span
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def attempt_ended(self, row: Mapping[str, Any]) -> None:
        """The attempt's row as recorded (``state``, ``node_id``, ``worker_pid``, ``error``)."""
        span = self._attempts.pop(row["id"], None)
        if span is None:
            return
        outcome = str(row["state"])
        span.set_attribute("lattice.attempt.outcome", outcome)
        if row.get("node_id"):
            span.set_attribute("lattice.node.id", row["node_id"])
        if row.get("worker_pid") is not None:
            span.set_attribute("process.pid", row["worker_pid"])
        error = row.get("error")
        if isinstance(error, Mapping):
            span.set_attribute("lattice.error.kind", str(error.get("kind", "")))
            span.set_attribute("error.type", str(error.get("type", "")))
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error.get("message", ""))[:512]))
        span.end()

    def close(self) -> None:
        """The head stops: end what is still open, marked so, so no span is lost."""
        for span in (*self._attempts.values(), *self._runs.values()):
            span.set_attribute("lattice.head.stopped", True)
            span.end()
        self._attempts.clear()
        self._runs.clear()


NO_TRACING = RunTracing()

__all__ = ["NO_TRACING", "RunTracing"]
