"""`create_app`: the FastAPI application over a ready service context (no import-time globals)."""

import logging
from typing import Any

import emrtasks
from emrtasks.api import docs, errors, front, openapi
from emrtasks.api.responses import JSON
from emrtasks.api.routes import (
    access_token,
    bench,
    directory,
    events,
    health,
    jwks,
    link,
    sandbox,
    settings,
    tasks,
    webhooks,
)
from emrtasks.observability import asgi as observed
from emrtasks.observability import telemetry as observability_telemetry
from emrtasks.service.context import Context

DESCRIPTION = """Create tasks in any clinic's EMR through one API (compatible with Cobalt's Create Task).

Authenticate with the headers `client_id` and `client_secret` (the client app) and `access_token`
(one clinic's EMR connection). Every error body is
`{"success": false, "error": "<code>", "message": "<text>", "errors": [...]}`.
"""


def create_app(
    ctx: Context,
    *,
    max_body_bytes: int = 1_048_576,
    bench_routes: bool = False,
    telemetry: observability_telemetry.Telemetry | None = None,
) -> front.App:
    """The app; its front (api/front.py) gives every request its id, `no-store` and telemetry."""
    app = front.App(
        title="emrtasks",
        version=emrtasks.__version__,
        description=DESCRIPTION,
        default_response_class=JSON,
        docs_url=None,  # api/docs.py serves /docs and /redoc from our own origin
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.ctx = ctx
    app.state.max_body_bytes = max_body_bytes
    for module in (tasks, directory, settings, events, webhooks, access_token, jwks, link, sandbox, health):
        app.include_router(module.router)
    app.include_router(docs.router)
    if bench_routes:
        app.include_router(bench.router)
    errors.install(app)
    if telemetry is not None:  # around everything: the time and status the client saw
        app.observer = observed.Observe(None, metrics=telemetry.metrics, tracing=telemetry.tracing)
    app.open_hot_routes()
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: front.App) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = openapi.document(app)
    return app.openapi_schema


class StripQuery(logging.Filter):
    """Access log lines keep the path, never the query string (it can carry an MRN)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True
