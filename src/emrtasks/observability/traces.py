"""OpenTelemetry traces, exported by OTLP/HTTP when an endpoint is configured (off otherwise: nothing
of this module is even imported then). One trace follows a task: the accept (a server span), each job
attempt (continued from the W3C traceparent stored with the job, in whatever process runs it), each
EMR operation and its HTTP requests, each webhook attempt.

Attributes name methods, routes, hosts, statuses, kinds and our ids; never a URL's path or query, a
body, or anything else that can carry patient data.
"""

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from emrtasks.webhooks import http1

_PROPAGATOR = TraceContextTextMapPropagator()
Handler = Callable[[Any], Awaitable[None]]


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL from a base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT is read."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Tracing:
    def __init__(self, endpoint: str, service_name: str = "emrtasks") -> None:
        """`service_name`: the OpenTelemetry service name unless OTEL_SERVICE_NAME gives another."""
        # The pid tells a trace's processes apart (the API and each worker); Resource.create adds
        # OTEL_RESOURCE_ATTRIBUTES.
        attributes: dict[str, str | int] = {"service.name": service_name, "process.pid": os.getpid()}
        self.provider = TracerProvider(resource=Resource.create(attributes))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
        self.tracer = self.provider.get_tracer("emrtasks")

    def shutdown(self) -> None:
        """Export what is left (a worker's last spans) and stop."""
        self.provider.shutdown()

    @contextlib.contextmanager
    def span(
        self, name: str, attributes: Mapping[str, str | int] | None = None
    ) -> Iterator[Callable[[str, str | int], None]]:
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span.set_attribute

    def trace_context(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    def server_span(self, method: str, headers: Mapping[str, str]) -> Any:
        """A span for one request, the caller's traceparent (if any) its parent; named once routed."""
        parent = _PROPAGATOR.extract(headers)
        return self.tracer.start_as_current_span(
            method, context=parent, kind=trace.SpanKind.SERVER, attributes={"http.request.method": method}
        )

    @staticmethod
    def mark_error(span: trace.Span) -> None:
        span.set_status(trace.StatusCode.ERROR)

    def traced_handler(self, kind: str, handler: Handler) -> Handler:
        """A job handler whose every attempt is a span in the trace the job was queued under."""

        async def run(job: Any) -> None:
            parent = _PROPAGATOR.extract({"traceparent": job.trace_context}) if job.trace_context else None
            attributes = {"job.kind": kind, "job.id": job.id, "job.attempt": job.attempts}
            if job.task_id:
                attributes["task.id"] = job.task_id
            with self.tracer.start_as_current_span(
                f"job {kind}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
            ):
                await handler(job)

        return run


class TracedTransport(httpx.AsyncBaseTransport):
    """The EMR client's transport, each request a client span: method, host, port and status only."""

    def __init__(self, inner: httpx.AsyncBaseTransport, tracing: Tracing) -> None:
        self._inner = inner
        self._tracer = tracing.tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        with self._tracer.start_as_current_span(
            request.method, kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = await self._inner.handle_async_request(request)
            _set_status(span, response.status_code)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class TracedWebhookClient(http1.Client):
    """The webhook client, each POST a client span: host, port and status only."""

    def __init__(self, tracing: Tracing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracer = tracing.tracer

    async def post(self, target: http1.Target, headers: Mapping[str, str], body: bytes) -> http1.Answer:
        attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": target.server_name or target.host,
            "server.port": target.port,
        }
        with self._tracer.start_as_current_span(
            "POST", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            answer = await super().post(target, headers, body)
            _set_status(span, answer.status)
            return answer


def _set_status(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_status(trace.StatusCode.ERROR)


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids in hex, for log lines (None outside a span)."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return format(found.trace_id, "032x"), format(found.span_id, "016x")
