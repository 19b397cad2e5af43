"""Metrics and spans the orchestrator keeps, through the real loop on the in-memory :class:`FakeBackend`,
and the Prometheus collector that serves them (parsed back with ``prometheus_client.parser``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_backend import FakeBackend
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_orchestrator import Head, make_head, t, until

from lattice.api.metrics import build_registry
from lattice.core.metrics import Histogram
from lattice.core.tracing import RunTracing


def test_histogram_buckets_are_cumulative_with_inf_last() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0, -1.0):  # a clock step backwards counts as 0, never negative
        h.observe(value)
    assert h.cumulative() == [(0.1, 3), (1.0, 4), (float("inf"), 5)]
    assert h.count == 5 and h.sum == pytest.approx(3.65)


def _families(head: Head) -> dict[str, Any]:
    registry = build_registry(head.orchestrator, head.orchestrator.resources, "9.9.9")
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, **labels: str) -> float:
    for sample in (sample for family in families.values() for sample in family.samples):
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


async def test_the_collector_reports_what_the_loop_counted(tmp_path: Path) -> None:
    head = make_head(tmp_path)
    await head.orchestrator.start()
    try:
        before = _families(head)
        assert _value(before, "lattice_task_attempts_total", outcome="succeeded") == 0
        assert before["lattice_task_attempts"].type == "counter"
        assert before["lattice_task_queue_wait_seconds"].type == "histogram"
        assert _value(before, "lattice_build_info", ray_version="9.9.9") == 1
        assert _value(before, "lattice_cluster_cpus") == 2
        assert _value(before, "lattice_cluster_memory_bytes") == 4096 * 1024 * 1024
        assert "process_cpu_seconds" in before and "python_info" in before

        fake = head.backend
        run_id = head.run(t("a"), t("flaky", retries=1))
        await until(lambda: fake.live_tasks() == ["a", "flaky"])
        mid = _families(head)
        assert _value(mid, "lattice_runs", state="running") == 1
        assert _value(mid, "lattice_active_runs") == 1
        assert _value(mid, "lattice_cluster_cpus_reserved") == 2
        assert _value(mid, "lattice_task_dispatches_total") == 2
        fake.raise_in_task(fake.attempt_of("flaky"), "once", kind=fake_kind("timeout"))
        await until(lambda: fake.live_tasks() == ["a", "flaky"])
        fake.succeed(fake.attempt_of("flaky"), started_at=10.0, finished_at=12.0)
        fake.succeed(fake.attempt_of("a"), started_at=10.0, finished_at=10.5)
        await head.finished(run_id)

        after = _families(head)
        assert _value(after, "lattice_runs", state="running") == 0
        assert _value(after, "lattice_runs", state="succeeded") == 1
        assert _value(after, "lattice_task_attempts_total", outcome="succeeded") == 2
        assert _value(after, "lattice_task_attempts_total", outcome="failed") == 1
        assert _value(after, "lattice_task_failures_total", kind="timeout") == 1
        assert _value(after, "lattice_tasks_finished_total", state="succeeded") == 2
        assert _value(after, "lattice_task_dispatches_total") == 3
        assert _value(after, "lattice_task_queue_wait_seconds_count") == 3
        assert _value(after, "lattice_task_duration_seconds_count", outcome="succeeded") == 2
        assert _value(after, "lattice_task_duration_seconds_sum", outcome="succeeded") == pytest.approx(2.5)
        assert _value(after, "lattice_task_duration_seconds_bucket", outcome="succeeded", le="1.0") == 1
        assert _value(after, "lattice_task_duration_seconds_bucket", outcome="succeeded", le="+Inf") == 2
    finally:
        await head.orchestrator.stop()
        head.store.close()

    # a new head starts its run counts from the store, once
    again = make_head(tmp_path)
    await again.orchestrator.start()
    try:
        assert _value(_families(again), "lattice_runs", state="succeeded") == 1
        assert _value(_families(again), "lattice_task_attempts_total", outcome="succeeded") == 0
    finally:
        await again.orchestrator.stop()
        again.store.close()


def fake_kind(name: str) -> Any:
    from lattice.wire.failures import ErrorKind

    return ErrorKind(name)


async def test_without_tracing_the_payload_carries_no_context(tmp_path: Path) -> None:
    head = make_head(tmp_path)
    await head.orchestrator.start()
    try:
        head.run(t("a"))
        await until(lambda: head.backend.live_tasks() == ["a"])
        assert head.backend.submitted[head.backend.attempt_of("a")].attempt.payload.trace == {}
        assert not head.orchestrator.tracing.enabled
    finally:
        await head.orchestrator.stop()
        head.store.close()


# --- traces -------------------------------------------------------------------------------------------

otel = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")


@pytest.fixture
def spans() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_a_run_is_a_trace_and_each_attempt_a_child_span_whose_context_rides_the_payload(
        tmp_path: Path, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    provider, exporter = spans
    head = make_head(tmp_path)
    head.orchestrator.tracing = head.orchestrator._dispatcher.tracing = RunTracing(provider.get_tracer("test"))
    await head.orchestrator.start()
    try:
        fake = head.backend
        run_id = head.run(t("a"), t("b", "a", retries=1))
        await until(lambda: fake.live_tasks() == ["a"])
        payload = fake.submitted[fake.attempt_of("a")].attempt.payload
        assert set(payload.trace) >= {"traceparent"}
        fake.succeed(fake.attempt_of("a"))
        await until(lambda: fake.live_tasks() == ["b"])
        fake.raise_in_task(fake.attempt_of("b"), "once")
        await until(lambda: fake.live_tasks() == ["b"])
        fake.succeed(fake.attempt_of("b"))
        await head.finished(run_id)
    finally:
        await head.orchestrator.stop()
        head.store.close()

    (run_span,) = [span for span in exporter.get_finished_spans() if span.name.startswith("run ")]
    attempts = [span for span in exporter.get_finished_spans() if span.name.startswith("task ")]
    assert run_span.parent is None and run_span.attributes["lattice.run.id"] == run_id
    assert run_span.attributes["lattice.run.state"] == "succeeded"
    assert [(s.name, s.attributes["lattice.attempt.number"], s.attributes["lattice.attempt.outcome"])
            for s in attempts] == [("task a", 1, "succeeded"), ("task b", 1, "failed"), ("task b", 2, "succeeded")]
    for span in attempts:
        assert span.context.trace_id == run_span.context.trace_id
        assert span.parent.span_id == run_span.context.span_id
        assert span.attributes["lattice.node.id"] == "n1" and span.attributes["lattice.resources.cpu"] == 1.0
    assert attempts[1].status.status_code is StatusCode.ERROR
    assert attempts[1].attributes["lattice.error.kind"] == "exception"
    # the payload carried the attempt span's own context: the executor's spans nest under it
    trace_id, span_id = payload.trace["traceparent"].split("-")[1:3]
    assert int(trace_id, 16) == attempts[0].context.trace_id and int(span_id, 16) == attempts[0].context.span_id


async def test_stopping_the_head_ends_open_spans(tmp_path: Path, spans: Any) -> None:
    provider, exporter = spans
    head = make_head(tmp_path, FakeBackend())
    head.orchestrator.tracing = head.orchestrator._dispatcher.tracing = RunTracing(provider.get_tracer("test"))
    await head.orchestrator.start()
    head.run(t("a"))
    await until(lambda: head.backend.live_tasks() == ["a"])
    await head.orchestrator.stop()
    head.store.close()
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names[-1] == "task a" and names[0].startswith("run")
    assert all(span.attributes["lattice.head.stopped"] for span in exporter.get_finished_spans())


async def test_a_resumed_run_gets_a_new_trace_and_counts_once(tmp_path: Path, spans: Any) -> None:
    provider, exporter = spans
    first = make_head(tmp_path)
    await first.orchestrator.start()
    run_id = first.run(t("a"), t("b", "a"))
    await until(lambda: first.backend.live_tasks() == ["a"])
    await first.orchestrator.flush()
    await first.orchestrator.stop()  # the head goes away while a runs
    first.store.close()

    second = make_head(tmp_path)
    second.orchestrator.tracing = second.orchestrator._dispatcher.tracing = RunTracing(provider.get_tracer("t"))
    await second.orchestrator.start()
    try:
        assert _value(_families(second), "lattice_runs", state="running") == 1  # seeded from the store
        fake = second.backend
        await until(lambda: fake.live_tasks() == ["a"])
        fake.succeed(fake.attempt_of("a"))
        await until(lambda: fake.live_tasks() == ["b"])
        fake.succeed(fake.attempt_of("b"))
        await second.finished(run_id)
        families = _families(second)
        assert _value(families, "lattice_runs", state="running") == 0
        assert _value(families, "lattice_runs", state="succeeded") == 1
    finally:
        await second.orchestrator.stop()
        second.store.close()
    (run_span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("run ")]
    assert run_span.attributes["lattice.run.resumed"] is True and run_span.attributes["lattice.run.id"] == run_id
    attempts = [s for s in exporter.get_finished_spans() if s.name.startswith("task ")]
    assert [s.attributes["lattice.attempt.id"] for s in attempts] == [f"{run_id}:a:2", f"{run_id}:b:1"]
    assert all(s.parent.span_id == run_span.context.span_id for s in attempts)
