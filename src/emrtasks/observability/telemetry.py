"""What bootstrap builds from the settings: the process's metrics and tracing, seen by the use cases as
`service.telemetry.Telemetry` hooks."""

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from emrtasks.service import telemetry as service_telemetry

if TYPE_CHECKING:  # the tracing module loads OpenTelemetry: only when traces are on
    from emrtasks.observability import metrics, traces


class Telemetry(service_telemetry.Telemetry):
    def __init__(self, metrics: "metrics.Metrics | None", tracing: "traces.Tracing | None") -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.enabled = metrics is not None or tracing is not None

    def emr_call(self, emr: str, operation: str, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.emr_call(emr, operation, outcome, seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.webhook_attempt(outcome, seconds)

    @contextlib.contextmanager
    def span(
        self, name: str, attributes: Mapping[str, str | int] | None = None
    ) -> Iterator[service_telemetry.Note]:
        if self.tracing is None:
            with super().span(name, attributes) as note:
                yield note
            return
        with self.tracing.span(name, attributes) as note:
            yield note

    def trace_context(self) -> str | None:
        return self.tracing.trace_context() if self.tracing is not None else None
