"""Every failure becomes the contract's error body: refusals, bad query strings, unknown routes, a lost
database (storage raises it as the domain's `errors.Outage`), a transaction lost to a concurrent one
(`errors.Contention`, answered 503 like an outage: nothing was written, a retry succeeds).
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from emrtasks.api.responses import JSON
from emrtasks.domain import errors

log = logging.getLogger("emrtasks.api")

_DB_DOWN = "The service is temporarily unavailable: its database cannot be reached. Please retry."
_CONTENTION = "The service was busy with a conflicting change and wrote nothing. Please retry."
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def render(problem: errors.Problem) -> JSON:
    body: dict[str, object] = {
        "success": False,
        "error": problem.error,
        "message": problem.message,
    }
    if problem.errors:
        body["errors"] = [e.as_dict() for e in problem.errors]
    return JSON(body, status_code=problem.status, headers=dict(problem.headers))


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.Problem, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(errors.Outage, _on_database_down)
    app.add_exception_handler(errors.Contention, _on_contention)
    app.add_exception_handler(Exception, _on_crash)


async def _on_problem(_request: Request, problem: errors.Problem) -> JSON:
    return render(problem)


async def _on_bad_request(_request: Request, exc: RequestValidationError) -> JSON:
    found = []
    for error in exc.errors():
        name = str(error["loc"][-1]) if error.get("loc") else None
        found.append(errors.FieldError(name, "invalid_query", f"Invalid parameter {name}: {error['msg']}."))
    message = found[0].message if found else "Invalid request."
    return render(errors.Problem(400, "invalid_parameter", message, tuple(found)))


async def _on_http(request: Request, exc: HTTPException) -> JSON:
    code = _HTTP_ERRORS.get(exc.status_code, "http_error")
    message = "Not found." if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return render(errors.Problem(exc.status_code, code, message, headers=tuple(headers.items())))


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route at this path (RFC 9110 section 15.5.6): Starlette names only those of
    the first route that matched, and `/v1/settings` has one route for GET and another for POST."""
    found: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            found.update(getattr(route, "methods", None) or ())
    return sorted(found)


async def _on_database_down(_request: Request, exc: Exception) -> JSON:
    cause = exc.__cause__ or exc
    log.error("database unavailable: %s", type(cause).__name__)
    return render(errors.unavailable(_DB_DOWN, 2))


async def _on_contention(_request: Request, exc: Exception) -> JSON:
    """A transaction that lost to concurrent ones more often than the service runs it again: nothing
    was written, and the same request succeeds in a moment."""
    log.warning("database contention: %s", exc)
    return render(errors.unavailable(_CONTENTION, 1))


async def _on_crash(_request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error: %s", type(exc).__name__)
    return render(errors.Problem(500, "internal_error", "Internal server error."))
