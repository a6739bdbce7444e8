"""The OpenAPI document: FastAPI's generation, completed where it cannot say the truth by itself.

- Security: FastAPI lists each credential header as an alternative; the server needs them together,
  so each operation gets one requirement naming all it reads (two where `access_token` is optional).
- Statuses every route of a kind can answer (docs/api.md, docs/security.md): a body's 400, 413 and
  415; an authenticated route's 401, 429 and 503 (the database cannot be reached), with the headers
  that say when to retry.
- Bad parameters answer 400 with the error body, not FastAPI's 422 `HTTPValidationError`.
- Links from the answers that create a task or a webhook endpoint to the operations that read or act
  on them, so a client (or a stateful test) can follow them.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from emrtasks.api import schemas

_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def operation_id(route: APIRoute) -> str:
    """Operation ids are the routes' function names (`create_task`, `get_task`): short, stable, and
    the names generated clients give their calls."""
    return route.name


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            _merge_security(operation)
            _document_statuses(operation)
    _add_links(schema.get("paths", {}))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    for model in schemas.REQUEST_BODIES:
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema


def _merge_security(operation: dict[str, Any]) -> None:
    """Requirements a route declares itself (several names in one object) stand; otherwise FastAPI's
    one-name alternatives become one requirement naming them all."""
    found: list[dict[str, list[str]]] = operation.get("security", [])
    if not found:
        return
    declared = [requirement for requirement in found if len(requirement) > 1]
    if declared:
        operation["security"] = [dict(r) for r in {tuple(r): r for r in declared}.values()]
    else:
        operation["security"] = [{name: [] for requirement in found for name in requirement}]


def _document_statuses(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if _ref(responses.get("422")) == _FASTAPI_422:
        del responses["422"]  # a path parameter is any string: only a query parameter can be refused
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            responses.setdefault("400", _error("A query parameter is invalid"))
    if "requestBody" in operation:
        responses.setdefault("400", _error("The body is not a JSON object, or a field is invalid"))
        responses.setdefault("413", _error("The body is larger than EMRTASKS_MAX_BODY_BYTES"))
        responses.setdefault("415", _error("The body is not declared Content-Type: application/json"))
    if operation.get("security"):
        responses.setdefault("401", _error("Missing or invalid credentials"))
        responses.setdefault("429", _error(_RATE_LIMITED))
        responses.setdefault("503", _error("The database cannot be reached, or the EMR asks us to slow down"))
    _document_headers(responses)


_RATE_LIMITED = (
    "Past the client's or the connection's rate limit: Retry-After, RateLimit-Policy and "
    "RateLimit (draft-ietf-httpapi-ratelimit-headers-10) say when to retry"
)


def _document_headers(responses: dict[str, Any]) -> None:
    if "429" in responses:
        responses["429"]["headers"] = {
            "Retry-After": _header("Seconds until a request is allowed again", "integer", required=True),
            "RateLimit-Policy": _header(
                "The policy: client or connection, its quota and window", required=True
            ),
            "RateLimit": _header("What is left of the quota and when it is full again", required=True),
        }
    if "503" in responses:
        responses["503"]["headers"] = {"Retry-After": _header("Seconds to wait before retrying", "integer")}
    if "409" in responses:
        responses["409"]["headers"] = {
            "Retry-After": _header("Seconds to wait, when a retry can succeed", "integer")
        }


def _add_links(paths: dict[str, Any]) -> None:
    task = {"task_id": "$response.body#/task_id"}
    job = {"job_id": "$response.body#/job_id"}
    webhook = {"webhook_id": "$response.body#/webhook_id"}
    _link(paths, ("/v1/tasks", "post", "202"), {"GetTask": ("get_task", task), "GetJob": ("get_job", job)})
    endpoint_operations = {
        "RotateWebhookSecret": ("rotate_webhook_secret", webhook),
        "EnableWebhook": ("enable_webhook", webhook),
        "RecoverWebhook": ("recover_webhook", webhook),
        "DeleteWebhook": ("delete_webhook", webhook),
    }
    _link(paths, ("/v1/webhook", "post", "201"), endpoint_operations)
    first_event = {"event_id": "$response.body#/webhook_events/0/id"}
    _link(paths, ("/v1/webhook-events", "get", "200"), {"ResendEvent": ("resend_event", first_event)})


def _link(
    paths: dict[str, Any], where: tuple[str, str, str], links: dict[str, tuple[str, dict[str, str]]]
) -> None:
    path, method, status = where
    response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
    if response is not None:
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
        }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR_BODY}


def _header(description: str, kind: str = "string", *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": kind}}


def _ref(response: dict[str, Any] | None) -> str | None:
    if response is None:
        return None
    found: str | None = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return found
