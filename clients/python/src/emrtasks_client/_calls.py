"""The HTTP contract as values: each API call is a `Call` (method, path, body, how to read the answer),
shared by `Client` and `AsyncClient`, which only send them. No I/O here."""

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from emrtasks_client import _exceptions, _models, _retry

T = TypeVar("T")
Params = Mapping[str, str | int]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Params = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry: bool = False  # only calls that are safe to send twice


def _segment(value: str) -> str:
    """An id as one path segment, so an id with `/` or `?` cannot reach another route."""
    if not isinstance(value, str) or not value:
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="")


def raise_for_answer(response: httpx.Response) -> Any:
    """The answer's JSON body; an `ApiError` of the right kind for an error status."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if response.status_code >= 400:
        raise _exceptions.api_error(
            response.status_code,
            body,
            request_id=response.headers.get("x-request-id"),
            retry_after=_retry.parse_retry_after(response.headers.get("retry-after")),
        )
    if not isinstance(body, Mapping):
        raise _exceptions.ApiError(
            response.status_code,
            "invalid_answer",
            "The server's answer is not a JSON object.",
            request_id=response.headers.get("x-request-id"),
        )
    return body


def error_code(response: httpx.Response) -> str | None:
    """The `error` of an error answer's body, when it has one (to tell a 409 in flight from others)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return str(body.get("error")) if isinstance(body, Mapping) else None


def idempotency_key(key: str | None) -> str:
    """The caller's key, checked, or a new uuid4; printable ASCII without quotes or backslashes, so it
    travels unchanged as an RFC 8941 string."""
    if key is None:
        return str(uuid.uuid4())
    if not 1 <= len(key) <= 255 or any(not " " <= c <= "~" or c in '"\\' for c in key):
        raise ValueError("idempotency_key: 1 to 255 printable ASCII characters, no quote or backslash")
    return key


def create_task(
    *,
    description: str,
    patient_mrn: str,
    subject: str | None,
    assignee_user_id: str | None,
    phone_call_type_id: str | None,
    notify_list: list[str] | None,
    key: str | None,
) -> Call[_models.TaskAccepted]:
    fields = {
        "description": description,
        "patient_mrn": patient_mrn,
        "subject": subject,
        "assignee_user_id": assignee_user_id,
        "phone_call_type_id": phone_call_type_id,
        "notify_list": notify_list,
    }
    chosen = idempotency_key(key)

    def read(response: httpx.Response) -> _models.TaskAccepted:
        body = raise_for_answer(response)
        return _models.TaskAccepted(
            task_id=body["task_id"],
            job_id=body["job_id"],
            message=str(body.get("message", "")),
            idempotency_key=chosen,
            replayed=response.headers.get("idempotent-replayed") == "true",
        )

    return Call(
        "POST",
        "/v1/tasks",
        read,
        body={name: value for name, value in fields.items() if value is not None},
        headers={"Idempotency-Key": f'"{chosen}"'},
        retry=True,
    )


def get_task(task_id: str) -> Call[_models.Task]:
    return Call("GET", f"/v1/tasks/{_segment(task_id)}", _field("task", _models.Task.from_json), retry=True)


def get_job(job_id: str) -> Call[_models.Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", _field("job", _models.Job.from_json), retry=True)


def get_requirements() -> Call[_models.Requirements]:
    read = _field("requirements", _models.Requirements.from_json)
    return Call("GET", "/v1/tasks/requirements", read, retry=True)


def list_users() -> Call[tuple[_models.User, ...]]:
    return Call("GET", "/v1/users", _items("users", _models.User.from_json), retry=True)


def list_call_types() -> Call[tuple[_models.CallType, ...]]:
    read = _items("phone_call_types", _models.CallType.from_json)
    return Call("GET", "/v1/phone-call-types", read, retry=True)


def list_patients(mrn: str | None, page: int, page_size: int) -> Call[_models.Page[_models.Patient]]:
    params: dict[str, str | int] = {"page": page, "page_size": page_size}
    if mrn is not None:
        params["mrn"] = mrn
    read = _page("patients", _models.Patient.from_json)
    return Call("GET", "/v1/patients", read, params=params, retry=True)


def list_events(
    *, job_id: str | None, event_type: str | None, page: int, page_size: int, sort: str
) -> Call[_models.Page[_models.Event]]:
    params: dict[str, str | int] = {"page": page, "page_size": page_size, "sort": sort}
    if job_id is not None:
        params["job_id"] = job_id
    if event_type is not None:
        params["event_type"] = event_type
    read = _page("webhook_events", _models.Event.from_json)
    return Call("GET", "/v1/webhook-events", read, params=params, retry=True)


def register_webhook(url: str) -> Call[_models.WebhookEndpoint]:
    def read(response: httpx.Response) -> _models.WebhookEndpoint:
        return _models.WebhookEndpoint.from_registration(raise_for_answer(response))

    return Call("POST", "/v1/webhook", read, body={"webhook_url": url})


def list_webhooks() -> Call[tuple[_models.WebhookEndpoint, ...]]:
    read = _items("webhook_urls", _models.WebhookEndpoint.from_json)
    return Call("GET", "/v1/webhook", read, retry=True)


def delete_webhook(webhook_id: str) -> Call[None]:
    def read(response: httpx.Response) -> None:
        raise_for_answer(response)

    return Call("DELETE", f"/v1/webhook/{_segment(webhook_id)}", read)


def _field(name: str, parse: Callable[[Mapping[str, Any]], T]) -> Callable[[httpx.Response], T]:
    return lambda response: parse(raise_for_answer(response)[name])


def _items(name: str, parse: Callable[[Mapping[str, Any]], T]) -> Callable[[httpx.Response], tuple[T, ...]]:
    return lambda response: tuple(parse(item) for item in raise_for_answer(response)[name])


def _page(name: str, parse: Callable[[Mapping[str, Any]], T]) -> Callable[[httpx.Response], _models.Page[T]]:
    def read(response: httpx.Response) -> _models.Page[T]:
        body = raise_for_answer(response)
        return _models.Page.from_json(body[name], body["pagination"], parse)

    return read
