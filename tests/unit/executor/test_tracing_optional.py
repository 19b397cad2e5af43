"""Tracing is optional: without OpenTelemetry installed, a head and an executor asked for traces carry on
unchanged (a warning, no spans), and without the ``OTEL_*`` variables nothing is set up at all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Runs in a fresh interpreter where every ``opentelemetry`` import fails, as on an install without the
# otel extra (this environment has it, for the other tests).
NO_OTEL = textwrap.dedent("""
    import importlib.abc, sys

    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoOtel())
""")


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | env
    return subprocess.run([sys.executable, "-c", NO_OTEL + textwrap.dedent(code)], env=environ,
                          capture_output=True, text=True, timeout=60)


def test_asked_for_traces_without_the_sdk_the_head_and_executor_run_untraced() -> None:
    result = _run("""
        import logging
        logging.basicConfig(level=logging.WARNING)
        from lattice.utils import otel
        from lattice.core.tracing import RunTracing
        from lattice.executor.runner import run_task
        from lattice.wire.attempt import AttemptPayload

        assert otel.tracing_requested()
        assert otel.tracer_provider("lattice-head") is None
        assert not RunTracing().enabled
        payload = AttemptPayload(run_id="r", task="t", attempt_id="r:t:1", builtin="echo", outputs=("result",),
                                 literals={"value": ("json", b"7")},
                                 trace={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        envelope = run_task(payload, None)
        assert envelope.error is None, envelope.error
        print("ok", envelope.outputs)
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
    assert "OpenTelemetry is not installed; install 'lattice-agent[otel]'" in result.stderr


def test_without_otel_variables_nothing_is_set_up() -> None:
    result = _run("""
        from lattice.utils import otel
        assert not otel.tracing_requested()
        assert otel.tracer_provider("lattice-head") is None
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_which_variables_ask_for_traces() -> None:
    from lattice.utils.otel import tracing_requested

    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    assert not tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing_requested({})
