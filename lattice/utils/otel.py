"""Setting up OpenTelemetry tracing from the standard ``OTEL_*`` environment, when it is installed.

OpenTelemetry is optional (``pip install 'lattice-agent[otel]'``). :func:`tracer_provider` answers
``None``, and nothing is imported, unless the SDK is installed *and* the environment asks for traces:
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set (``lattice start --otel URL``
sets the first), or ``OTEL_TRACES_EXPORTER`` naming ``otlp`` or ``console``; ``OTEL_SDK_DISABLED=true``
turns it all off. The exporter reads the rest of the standard variables itself (headers, timeouts,
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``, the default here, or ``grpc`` with
``opentelemetry-exporter-otlp-proto-grpc`` installed), and the batch processor its ``OTEL_BSP_*``.

The head and every Ray worker call it once per process; the first call sets the global provider, so
spans a task makes with ``opentelemetry.trace.get_tracer(...)`` go to the same exporter.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger("lattice.otel")

_lock = threading.Lock()
_provider: Any | None = None
_processors: list[Any] = []
_configured = False


def tracing_requested(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (without importing anything)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    return bool(exporters & {"otlp", "console"} or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer_provider(service_name: str) -> Any | None:
    """This process's tracer provider, set up on the first call; ``None`` when tracing is off or the
    SDK is not installed (then a warning says how to install it, once)."""
    global _provider, _configured
    with _lock:
        if _configured:
            return _provider
        _configured = True
        if not tracing_requested():
            return None
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("OTEL_* asks for traces but OpenTelemetry is not installed; install "
                        "'lattice-agent[otel]' (tracing stays off)")
            return None
        from lattice import __version__

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name),
                                    "service.version": __version__})
        provider = TracerProvider(resource=resource)
        for exporter in _exporters():
            processor = BatchSpanProcessor(exporter)
            provider.add_span_processor(processor)
            _processors.append(processor)
        trace.set_tracer_provider(provider)
        _provider = trace.get_tracer_provider()  # the global one (a provider set earlier stays)
        return _provider


def _exporters() -> list[Any]:
    names = {e.strip().lower() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip()}
    exporters: list[Any] = []
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
    if "otlp" in names:
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        exporters.append(OTLPSpanExporter())
    return exporters


def span_processors() -> list[Any]:
    """The processors this module added (to hand on spans recorded elsewhere: a sandboxed task's)."""
    return list(_processors)


def shutdown() -> None:
    """Flush and stop this process's exporters (the head, when it stops)."""
    provider = _provider
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()


__all__ = ["shutdown", "span_processors", "tracer_provider", "tracing_requested"]
