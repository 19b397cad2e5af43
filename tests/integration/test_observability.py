"""Metrics and traces of a real head on a real Ray cluster.

``/metrics`` is scraped and parsed with ``prometheus_client.parser``; traces go over real OTLP/HTTP
(the SDK's exporter, in the head and in the Ray workers) to a small receiver in this test on a loopback
port, which decodes the protobuf requests: a task's own span must nest under its attempt's span, in its
run's trace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lattice import LatticeClient, task
from tests.headproc import HeadProcess

trace_pb2 = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                                reason="the otel extra is not installed")


@task(inputs=["x"], outputs=["y"])
def traced_step(params):
    from opentelemetry import trace

    with trace.get_tracer("tests.llm").start_as_current_span("llm.chat") as span:
        span.set_attribute("llm.model", "test-model")
    return {"y": params["x"] + 1}


@task(inputs=["x"], outputs=["y"], sandbox="subprocess")
def traced_in_subprocess(params):
    from opentelemetry import trace

    with trace.get_tracer("tests.llm").start_as_current_span("llm.chat") as span:
        span.set_attribute("llm.model", "sandboxed")
        with trace.get_tracer("tests.llm").start_as_current_span("llm.tokenize"):
            pass
    return {"y": params["x"] + 1}


@task(inputs=["x"], outputs=["y"], sandbox="seccomp")
def traced_in_seccomp(params):
    from opentelemetry import trace

    with trace.get_tracer("tests.llm").start_as_current_span("llm.chat") as span:
        span.set_attribute("llm.model", "sandboxed")
        with trace.get_tracer("tests.llm").start_as_current_span("llm.tokenize"):
            pass
    return {"y": params["x"] + 1}


@task(inputs=["x"], outputs=["y"])
def fails(params):
    raise ValueError("no")


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, with its resource's service name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                reply = trace_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: Any) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: _value(a.value) for a in span.attributes}
                        self.spans.append({
                            "service": service, "name": span.name, "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                            "status": span.status.code, "attributes": attributes})

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.2)
        raise AssertionError(f"spans never arrived as expected; got {spans}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced_head(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[HeadProcess]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    head = HeadProcess(tmp_path_factory.mktemp("otel-head"), extra_args=["--num-cpus", "2"], env=env).start()
    yield head
    head.stop()


def _scrape(head: HeadProcess) -> dict[str, Any]:
    response = httpx.get(f"{head.url}/metrics", headers={"Authorization": f"Bearer {head.token}"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _sample(families: dict[str, Any], name: str, **labels: str) -> float:
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_metrics_follow_prometheus_conventions_and_move_after_a_run(traced_head: HeadProcess) -> None:
    before = _scrape(traced_head)
    types = {name: family.type for name, family in before.items()}
    assert types["lattice_task_attempts"] == "counter"  # exposed as lattice_task_attempts_total
    assert types["lattice_task_dispatches"] == types["lattice_tasks_finished"] == "counter"
    assert types["lattice_task_queue_wait_seconds"] == types["lattice_task_duration_seconds"] == "histogram"
    assert types["lattice_runs"] == types["lattice_cluster_memory_bytes"] == types["lattice_cluster_cpus"] == "gauge"
    assert types["lattice_build_info"] == "gauge"
    assert "process_resident_memory_bytes" in types and "process_cpu_seconds" in types
    assert not any(name.endswith("_mb") or "memory_mb" in name for name in types)  # base units only
    info = next(s for s in before["lattice_build_info"].samples)
    assert info.value == 1 and set(info.labels) == {"version", "python_version", "ray_version"}
    assert _sample(before, "lattice_cluster_cpus") == 2
    assert _sample(before, "lattice_cluster_memory_bytes") > 1024 * 1024 * 100  # bytes, not MB

    with LatticeClient(traced_head.url, token=traced_head.token, progress=False) as client:
        ok = client.create_workflow("metrics-ok")
        ok.add_task(traced_step, inputs={"x": 1})
        ok.get_results(ok.run())
        bad = client.create_workflow("metrics-bad")
        bad.add_task(fails, inputs={"x": 1})
        with pytest.raises(Exception, match="no"):
            bad.get_results(bad.run())

    after = _scrape(traced_head)
    for outcome in ("succeeded", "failed"):
        assert (_sample(after, "lattice_task_attempts_total", outcome=outcome)
                >= _sample(before, "lattice_task_attempts_total", outcome=outcome) + 1)
    assert _sample(after, "lattice_task_failures_total", kind="exception") >= 1
    assert _sample(after, "lattice_runs", state="failed") >= _sample(before, "lattice_runs", state="failed") + 1
    assert (_sample(after, "lattice_task_queue_wait_seconds_count")
            >= _sample(before, "lattice_task_queue_wait_seconds_count") + 2)
    assert _sample(after, "lattice_task_duration_seconds_count", outcome="succeeded") >= 1
    assert _sample(after, "lattice_task_duration_seconds_bucket", outcome="succeeded", le="+Inf") >= 1


def test_a_task_span_nests_under_its_attempt_span_in_the_run_trace(traced_head: HeadProcess,
                                                                   receiver: Receiver) -> None:
    with LatticeClient(traced_head.url, token=traced_head.token, progress=False) as client:
        wf = client.create_workflow("traced")
        first = wf.add_task(traced_step, inputs={"x": 1})
        wf.add_task(traced_step, inputs={"x": first.outputs["y"]})
        run_id = wf.run()
        assert wf.get_results(run_id) == {"y": 3}

    def complete(spans: list[dict[str, Any]]) -> bool:
        mine = [s for s in spans if s["attributes"].get("lattice.run.id") == run_id]
        trace_ids = {s["trace_id"] for s in mine}
        return (any(s["name"] == "run traced" for s in mine)
                and len([s for s in mine if s["name"].startswith("task ")]) == 2
                and len([s for s in spans if s["name"] == "llm.chat" and s["trace_id"] in trace_ids]) == 2)

    spans = receiver.wait_for(complete)
    (run_span,) = [s for s in spans if s["name"] == "run traced" and s["attributes"]["lattice.run.id"] == run_id]
    assert run_span["parent"] == "" and run_span["service"] == "lattice-head"
    assert run_span["attributes"]["lattice.run.state"] == "succeeded"
    attempts = {s["span_id"]: s for s in spans
                if s["trace_id"] == run_span["trace_id"] and s["name"].startswith("task ")}
    assert len(attempts) == 2
    for attempt in attempts.values():
        assert attempt["parent"] == run_span["span_id"]
        assert attempt["attributes"]["lattice.attempt.outcome"] == "succeeded"
        assert attempt["attributes"]["lattice.node.id"] and attempt["attributes"]["lattice.resources.cpu"] == 1.0
        assert attempt["attributes"]["lattice.sandbox.level"] == "none"
    children = [s for s in spans if s["name"] == "llm.chat" and s["trace_id"] == run_span["trace_id"]]
    assert sorted(c["parent"] for c in children) == sorted(attempts)  # one under each attempt
    assert all(c["service"] == "lattice-worker" and c["attributes"]["llm.model"] == "test-model" for c in children)


@pytest.mark.parametrize("fn", [traced_in_subprocess, traced_in_seccomp], ids=["subprocess", "seccomp"])
def test_spans_made_inside_a_sandbox_come_out_nested_under_the_attempt(traced_head: HeadProcess,
                                                                       receiver: Receiver, fn: Any) -> None:
    """The sandboxed child records its spans and returns them in its result frame; the worker exports them
    (the child has no OTEL_* and, at seccomp, no network)."""
    from lattice.executor.sandbox import capabilities

    if fn is traced_in_seccomp and not capabilities()["seccomp"]:
        pytest.skip("seccomp (libseccomp via pyseccomp) is not usable here")
    with LatticeClient(traced_head.url, token=traced_head.token, progress=False) as client:
        wf = client.create_workflow(f"sandboxed-{fn.name}")
        wf.add_task(fn, inputs={"x": 1})
        run_id = wf.run()
        assert wf.get_results(run_id) == {"y": 2}

    def complete(spans: list[dict[str, Any]]) -> bool:
        attempt = [s for s in spans if s["attributes"].get("lattice.run.id") == run_id and s["name"].startswith("task")]
        return bool(attempt) and len([s for s in spans if s["trace_id"] == attempt[0]["trace_id"]
                                      and s["name"].startswith("llm.")]) == 2

    spans = receiver.wait_for(complete)
    (attempt,) = [s for s in spans if s["attributes"].get("lattice.run.id") == run_id and s["name"].startswith("task")]
    assert attempt["attributes"]["lattice.sandbox.level"] in ("subprocess", "seccomp")
    mine = {s["name"]: s for s in spans if s["trace_id"] == attempt["trace_id"] and s["name"].startswith("llm.")}
    assert mine["llm.chat"]["parent"] == attempt["span_id"]
    assert mine["llm.tokenize"]["parent"] == mine["llm.chat"]["span_id"]
    assert mine["llm.chat"]["attributes"]["llm.model"] == "sandboxed"
    assert mine["llm.chat"]["attributes"]["lattice.sandboxed"] is True
    assert mine["llm.chat"]["service"] == "lattice-worker"


def test_a_head_without_otel_configuration_sends_no_context(head_factory: Any, tmp_path: Path) -> None:
    """The default: no OTEL_* variables, so tracing is off and tasks see no span context."""
    head = head_factory(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_EXPORTER": "none"})
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        wf = client.create_workflow("untraced")
        wf.add_task(current_trace_id, inputs={"x": 0})
        assert wf.get_results(wf.run()) == {"trace_id": 0}


@task(inputs=["x"], outputs=["trace_id"])
def current_trace_id(params):
    from opentelemetry import trace

    return {"trace_id": trace.get_current_span().get_span_context().trace_id}
