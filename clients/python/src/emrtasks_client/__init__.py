"""emrtasks-client: create tasks in a clinic's EMR through the emrtasks HTTP API, follow them, and
verify their webhooks. `Client` (sync) and `AsyncClient` (async) on httpx; typed, frozen results; the
exception tree is documented in `emrtasks_client._exceptions` (every error is an `EmrTasksError`)."""

from emrtasks_client._async_client import AsyncClient
from emrtasks_client._base import VERSION as __version__
from emrtasks_client._client import Client
from emrtasks_client._exceptions import (
    ApiError,
    AuthenticationError,
    ConflictError,
    EmrTasksError,
    FieldError,
    LoginRequiredError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailable,
    Timeout,
    TransportError,
    ValidationError,
    WebhookVerificationError,
)
from emrtasks_client._models import (
    CallType,
    DeliveryAttempt,
    Event,
    Job,
    Page,
    Patient,
    Reason,
    Requirements,
    Task,
    TaskAccepted,
    User,
    WebhookEndpoint,
)
from emrtasks_client._retry import RetryPolicy
from emrtasks_client._webhooks import cobalt_signature, verify_webhook

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "CallType",
    "Client",
    "ConflictError",
    "DeliveryAttempt",
    "EmrTasksError",
    "Event",
    "FieldError",
    "Job",
    "LoginRequiredError",
    "NotFoundError",
    "Page",
    "Patient",
    "RateLimitError",
    "Reason",
    "Requirements",
    "RetryPolicy",
    "ServiceUnavailable",
    "Task",
    "TaskAccepted",
    "Timeout",
    "TransportError",
    "User",
    "ValidationError",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "__version__",
    "cobalt_signature",
    "verify_webhook",
]
