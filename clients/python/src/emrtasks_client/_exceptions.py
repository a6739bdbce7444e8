"""Every error the client raises, one tree:

* EmrTasksError: the root; catch it to catch everything below.
  * ApiError: the server answered with an error body. Carries `status_code`, `error` (the machine
    code, e.g. `missing_field`), `message` (the human text), `errors` (every field at fault, as
    `FieldError`s) and `request_id` (the answer's `X-Request-Id`). A status without a class of its
    own below (413, 415, 502, ...) is raised as `ApiError` itself.
    * AuthenticationError: 401, wrong or missing client credentials or access token.
    * LoginRequiredError: 403 `login_required`, the clinic's EMR login broke: run Link again.
    * NotFoundError: 404, an unknown id, or one of another client or connection.
    * ValidationError: 400 or 422, the request was refused as it stands (fix it, then send it again).
    * ConflictError: 409, e.g. a webhook URL registered twice, or an `Idempotency-Key` in flight.
    * RateLimitError: 429; `retry_after` holds the server's `Retry-After` in seconds.
    * ServiceUnavailable: 503; `retry_after` likewise, where the server gave one.
  * TransportError: no answer came: the connection failed or timed out (the httpx error is its cause).
  * Timeout: `wait_for_task` gave up before the task reached a final status.
  * WebhookVerificationError: a webhook's signature, timestamp or body could not be verified.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One field at fault in a refused request (`errors[]` of an error body)."""

    field: str | None
    code: str
    message: str


class EmrTasksError(Exception):
    """The root of every error this client raises."""


class ApiError(EmrTasksError):
    """The server answered with an error status and body."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        errors: tuple[FieldError, ...] = (),
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.errors = errors
        self.request_id = request_id
        self.retry_after = retry_after


class AuthenticationError(ApiError):
    """401: the client credentials or the access token were refused."""


class LoginRequiredError(ApiError):
    """403 `login_required`: the connection's EMR login broke; link it again in update mode."""


class NotFoundError(ApiError):
    """404: no such task, job, webhook or event for these credentials."""


class ValidationError(ApiError):
    """400 or 422: the request was refused; `errors` names every field at fault."""


class ConflictError(ApiError):
    """409: the request conflicts with what exists or is in flight."""


class RateLimitError(ApiError):
    """429: too many requests; wait `retry_after` seconds."""


class ServiceUnavailable(ApiError):
    """503: the service (or the clinic's EMR) cannot answer now; wait `retry_after` seconds if set."""


class TransportError(EmrTasksError):
    """No answer: the connection could not be made, broke, or timed out."""


class Timeout(EmrTasksError):
    """`wait_for_task` ran out of time; the task may still finish later."""


class WebhookVerificationError(EmrTasksError):
    """A webhook delivery failed verification: refuse it (answer 401 or 400)."""


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailable,
}


def api_error(status_code: int, body: Any, *, request_id: str | None, retry_after: float | None) -> ApiError:
    """The exception for an error answer; a body not in the contract's shape still gives a clear error."""
    if not isinstance(body, Mapping):
        body = {}
    error = str(body.get("error") or "http_error")
    message = str(body.get("message") or f"HTTP {status_code}")
    found = tuple(_field_errors(body.get("errors")))
    kind: type[ApiError] = _BY_STATUS.get(status_code, ApiError)
    if status_code == 403 and error == "login_required":
        kind = LoginRequiredError
    return kind(status_code, error, message, found, request_id=request_id, retry_after=retry_after)


def _field_errors(raw: object) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    return [
        FieldError(item.get("field"), str(item.get("code", "")), str(item.get("message", "")))
        for item in raw
        if isinstance(item, Mapping)
    ]
