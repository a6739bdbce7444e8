"""Per request: the metrics (count and duration by method, route template and status) and the server
span, only when metrics or traces are on. The application's front (api/front.py) calls `observed`
around each request and records the status it sends under `STATUS_KEY`; `Observe` is also a plain
ASGI middleware of its own, for any other app."""

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from emrtasks.observability import logs

if TYPE_CHECKING:  # the tracing module loads OpenTelemetry: only when traces are on
    from emrtasks.observability import metrics, traces

UNMATCHED = "unmatched"
"""The route label of a request no route took: its path is not a label (it has no bound)."""
_PROPAGATED = (b"traceparent", b"tracestate")
STATUS_KEY = "emrtasks.status"
"""Where the answer's status is kept in the request's scope, once it has started."""


def route_of(scope: Any) -> str:
    """The template of the route that took the request (`/v1/tasks/{task_id}`), set by the router."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class Observe:
    def __init__(
        self, app: Any, *, metrics: "metrics.Metrics | None" = None, tracing: "traces.Tracing | None" = None
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._tracing = tracing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                scope[STATUS_KEY] = message["status"]
            await send(message)

        await self.observed(scope, self.app(scope, receive, send_status))

    async def observed(self, scope: Any, answer: Awaitable[None]) -> None:
        """Await `answer` (the request's handling, which sets `scope[STATUS_KEY]`), measured."""
        if self._tracing is None:
            await self._measured(scope, answer)
            return
        headers = {
            name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in _PROPAGATED
        }
        with self._tracing.server_span(scope["method"], headers) as span:
            status = await self._measured(scope, answer)
            route = route_of(scope)
            span.update_name(f"{scope['method']} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            request_id = logs.REQUEST_ID.get()
            if request_id:
                span.set_attribute("request.id", request_id)
            if status >= 500:
                self._tracing.mark_error(span)

    async def _measured(self, scope: Any, answer: Awaitable[None]) -> int:
        started = time.perf_counter()
        try:
            await answer
        finally:
            if self._metrics is not None:
                status = scope.get(STATUS_KEY, 500)  # 500: what the client gets if nothing was answered
                self._metrics.request(scope["method"], route_of(scope), status, time.perf_counter() - started)
        status_sent: int = scope.get(STATUS_KEY, 500)
        return status_sent
