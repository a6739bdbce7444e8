"""What the use cases tell an observer: EMR calls, webhook attempts, spans and the trace context to keep
with a job. The default observes nothing; bootstrap hands in observability's when it is switched on."""

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from emrtasks.domain import outcomes
from emrtasks.emr import base

Note = Callable[[str, str | int], None]
"""Sets one attribute on the span it was handed by (a reason code, a status; never patient data)."""


def _ignore(_key: str, _value: str | int) -> None:
    return None


class Telemetry:
    """Hooks with no effect. Labels and attributes passed here never carry patient data or ids."""

    enabled = False

    def emr_call(self, emr: str, operation: str, outcome: str, seconds: float) -> None:
        """One call of an adapter's operation finished with this outcome (a kind, never its text)."""

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        """One delivery attempt finished: `delivered`, `failed` (an answer, not 2xx) or `error`."""

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, str | int] | None = None) -> Iterator[Note]:
        """A span around the block, a child of the current one."""
        yield _ignore

    def trace_context(self) -> str | None:
        """The current span as a W3C traceparent, for a job to continue in another process."""
        return None


NONE = Telemetry()

# The adapter calls that reach an EMR; anything else an adapter has (rules, settings) passes through.
OPERATIONS = frozenset(
    {"search_patients", "list_users", "list_call_types", "create_task", "find_task", "find_task_in_chart"}
)


def observed(adapter: base.Adapter, emr: str, telemetry: Telemetry) -> base.Adapter:
    """The adapter, each EMR operation counted, timed and put in a span (the adapter as it was when
    nothing observes)."""
    if not telemetry.enabled:
        return adapter
    wrapped: Any = _Observed(adapter, emr, telemetry)
    return wrapped  # type: ignore[no-any-return]


class _Observed:
    def __init__(self, inner: base.Adapter, emr: str, telemetry: Telemetry) -> None:
        self._inner = inner
        self._emr = emr
        self._telemetry = telemetry
        self.rules = inner.rules

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)  # AttributeError as the inner adapter: FindsInChart stays honest
        return self._wrap(name, found) if name in OPERATIONS else found

    def _wrap(self, operation: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def observed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "error"
            attributes = {"emr.name": self._emr, "emr.operation": operation}
            with self._telemetry.span(f"emr {operation}", attributes) as note:
                try:
                    result = await call(*args, **kwargs)
                    outcome = outcome_of(result)
                    if isinstance(getattr(result, "code", None), str):
                        note("emr.reason", result.code)
                    return result
                except outcomes.AdapterError as exc:
                    outcome = outcome_of(exc.outcome)
                    note("emr.reason", exc.outcome.code)
                    raise
                finally:
                    note("emr.outcome", outcome)
                    self._telemetry.emr_call(self._emr, operation, outcome, time.perf_counter() - started)

        return observed_call


_KINDS: dict[type, str] = {
    outcomes.Created: "created",
    outcomes.Rejected: "rejected",
    outcomes.RetryLater: "retry_later",
    outcomes.Unknown: "unknown",
    outcomes.Absent: "absent",
}


def outcome_of(result: object) -> str:
    """A bounded label for what an EMR call returned: the outcome's kind, or `ok` for a read's answer."""
    return _KINDS.get(type(result), "ok")
