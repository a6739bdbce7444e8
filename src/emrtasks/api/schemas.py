"""The public contract's shapes, for OpenAPI. Routes build their bodies directly; these document them.

Request bodies say what the service's validators enforce (`api/patterns.py`) and refuse unknown fields,
as the server does; answers are exactly what the routes return.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from emrtasks.api import patterns

_STRICT = ConfigDict(extra="forbid")
_Id = Annotated[str, WithJsonSchema({"type": "string", "pattern": patterns.ID})]


def _text(description: str, pattern: str, **kwargs: Any) -> Any:
    """A string field documented with the pattern the server enforces, length limits included (counted
    after trimming, as the server counts them). Not compiled here: the models only describe bodies that
    the service validates."""
    return Field(description=description, json_schema_extra={"pattern": pattern}, **kwargs)


class FieldErrorBody(BaseModel):
    field: str | None = Field(
        description="The field at fault, e.g. `subject` or `notify_list[1]`; on a 401, the header."
    )
    code: str = Field(description="missing_field, invalid_type, unexpected_field, too_long, ...")
    message: str


class ErrorBody(BaseModel):
    success: bool = False
    error: str = Field(description="Machine code, e.g. missing_field, user_not_found, unauthorized.")
    message: str = Field(description="Human text, e.g. `Missing required field: subject`.")
    errors: list[FieldErrorBody] | None = Field(default=None, description="Every field at fault.")


_PER_CONNECTION = (
    " Which fields the connection's EMR requires or refuses, and their lengths, are its own: "
    "`GET /v1/tasks/requirements`. A blank value counts as absent."
)


class CreateTaskRequest(BaseModel):
    model_config = _STRICT

    description: str = _text(
        "Task description/body content. Always required." + _PER_CONNECTION, patterns.TEXT
    )
    patient_mrn: str = _text("Medical Record Number of the patient. Always required.", patterns.ID)
    subject: str | None = _text(
        "Conditionally required." + _PER_CONNECTION, patterns.OPTIONAL_TEXT, default=None
    )
    assignee_user_id: str | None = _text(
        "Conditionally required: an id from `GET /v1/users`.", patterns.OPTIONAL_ID, default=None
    )
    phone_call_type_id: str | None = _text(
        "Conditionally required: an id from `GET /v1/phone-call-types`.", patterns.OPTIONAL_ID, default=None
    )
    notify_list: list[_Id] | None = Field(
        default=None,
        description="User ids to notify (from `GET /v1/users`); no blank entry.",
    )


class Accepted(BaseModel):
    success: bool = True
    message: str = "Task processing. A webhook event will be sent upon completion."
    task_id: str
    job_id: str


class Reason(BaseModel):
    code: str
    description: str


class Task(BaseModel):
    task_id: str
    job_id: str
    status: str = Field(description="processing, created, failed or unknown")
    subject: str | None
    description: str
    patient_mrn: str
    assignee_user_id: str | None
    phone_call_type_id: str | None
    notify_list: list[str]
    emr_task_id: str | None
    failure_reason: str | None
    reasons: list[Reason]
    created: str
    updated: str


class TaskResponse(BaseModel):
    success: bool = True
    task: Task


class Job(BaseModel):
    job_id: str
    kind: str
    task_id: str | None
    state: str = Field(description="queued, running, succeeded, failed or unknown")
    attempts: int
    max_attempts: int
    next_attempt_at: str | None
    last_error_code: str | None
    last_error: str | None
    created: str
    updated: str
    finished: str | None


class JobResponse(BaseModel):
    success: bool = True
    job: Job


class RequirementsResponse(BaseModel):
    success: bool = True
    requirements: dict[str, Any]


class User(BaseModel):
    id: str
    name: str
    kind: str = Field(description="provider, staff or group")


class UsersResponse(BaseModel):
    success: bool = True
    users: list[User]


class CallType(BaseModel):
    id: str
    name: str


class CallTypesResponse(BaseModel):
    success: bool = True
    phone_call_types: list[CallType]


class Pagination(BaseModel):
    current_page: int
    total_pages: int
    total_count: int
    page_size: int


class Patient(BaseModel):
    first_name: str
    last_name: str
    dob: str
    sex: str
    phone: str
    mrn: str


class PatientsResponse(BaseModel):
    success: bool = True
    patients: list[Patient]
    pagination: Pagination


class SettingsResponse(BaseModel):
    success: bool = True
    data: dict[str, Any]


class SettingsUpdate(BaseModel):
    model_config = _STRICT

    access_token_reference_id: str = _text(
        "Your id for the connection, echoed in its events (trimmed; at most 255 characters).",
        patterns.ID_255,
    )


class Attempt(BaseModel):
    webhook_id: str
    attempt: int
    trigger: str = Field(description="scheduled, manual (retry) or recover")
    time: str
    status_code: int | None
    duration_ms: int
    error: str | None


class Event(BaseModel):
    id: str
    access_token_reference_id: str | None
    object: str = "event"
    created: str
    type: str
    job_id: str | None
    data: dict[str, Any]
    delivery_status: str | None = Field(
        description="pending, success or failed across the client's webhook URLs; "
        "null when none was registered"
    )
    attempts: list[Attempt]


class EventsResponse(BaseModel):
    success: bool = True
    webhook_events: list[Event]
    pagination: Pagination


class EmrTasksResponse(BaseModel):
    success: bool = True
    emr_tasks: list[dict[str, Any]]


class WebhookRegistration(BaseModel):
    model_config = _STRICT

    webhook_url: str = _text(
        "https:// URL (http:// only with EMRTASKS_WEBHOOK_ALLOW_INSECURE) whose host resolves to public "
        "addresses only (unless EMRTASKS_WEBHOOK_ALLOW_PRIVATE)",
        patterns.WEBHOOK_URL,
    )


class WebhookCreated(BaseModel):
    success: bool = True
    message: str = "Webhook registered successfully"
    webhook_id: str
    webhook_url: str
    webhook_secret: str = Field(description="whsec_...; shown once, verify deliveries with it")
    webhook_secret_key: str = Field(description="The same secret, under the name Cobalt's guide uses")


class WebhookOut(BaseModel):
    id: str
    url: str
    status: str = Field(description="active or disabled")
    disabled_reason: str | None
    created: str


class WebhookList(BaseModel):
    success: bool = True
    webhook_url: str | None = Field(description="The first of webhook_urls (Cobalt's field); null when none")
    webhook_urls: list[WebhookOut] = Field(description="Oldest first; deleted URLs are not listed")


class Message(BaseModel):
    success: bool = True
    message: str


class AccessTokenRevoked(BaseModel):
    success: bool = True
    message: str
    connection_id: str
    jobs_ended: int = Field(description="Queued jobs of the connection that ended unrun")


class RotatedSecret(BaseModel):
    id: str
    secret: str


class WebhookRotated(BaseModel):
    success: bool = True
    webhook: RotatedSecret


class WebhookEnabled(BaseModel):
    success: bool = True
    webhook: WebhookOut


class WebhookRecover(BaseModel):
    model_config = _STRICT

    since: str = Field(
        description="ISO 8601 time with a zone, e.g. 2026-11-30T10:00:00Z",
        json_schema_extra={"format": "date-time"},
    )
    after_event_id: str | None = _text(
        "Go on after this event (from a previous answer's `next`).", patterns.OUR_ID, default=None
    )


class WebhookRecoverNext(BaseModel):
    since: str
    after_event_id: str


class WebhookRecovery(BaseModel):
    success: bool = True
    webhook_id: str
    since: str
    scheduled: int = Field(description="Events scheduled by this call (at most 10,000 by default).")
    complete: bool = Field(description="False when more events remain: send `next` to recover them.")
    next: WebhookRecoverNext | None = Field(
        default=None, description="Only when not complete: the body of the next recover call."
    )
    message: str | None = None


class EventResend(BaseModel):
    success: bool = True
    event_id: str
    webhook_ids: list[str]


class LinkTokenCreate(BaseModel):
    """Every field is trimmed; a blank optional one counts as absent."""

    model_config = _STRICT

    user_id: str = _text("Your id for the person linking (never PII). Required.", patterns.ID_255)
    org_id: str = _text("Your id for the clinic (never PII). Required.", patterns.ID_255)
    emr_name: str | None = _text(
        "Preselect the EMR, e.g. sandbox or drchrono.", patterns.OPTIONAL_TEXT_255, default=None
    )
    emr_instance_domain: str | None = _text(
        "Preselect the EMR instance.", patterns.OPTIONAL_TEXT_255, default=None
    )
    access_token: str | None = _text(
        "Update mode: repair this connection; the exchange answers its token again.",
        patterns.OPTIONAL_TEXT_255,
        default=None,
    )
    callback_url: str | None = _text(
        "New-window mode: Link redirects to callback_url?token=pt_... . https (http on "
        "loopback only); its origin must be one of the client's allowed origins.",
        patterns.OPTIONAL_TEXT_2048,
        default=None,
    )
    reference_id: str | None = _text(
        "The connection's access_token_reference_id.", patterns.OPTIONAL_ID_255, default=None
    )


class LinkTokenCreated(BaseModel):
    success: bool = True
    token: str = Field(description="lt_...: single-use, expires after 30 minutes.")
    expires_at: str
    link_url: str = Field(description="The Link page for this token: <public URL>/link?token=lt_...")


class Health(BaseModel):
    success: bool = True
    status: str = Field(description="ok (liveness) or ready (readiness)")


class JsonWebKeySet(BaseModel):
    """RFC 7517: `{"keys": [...]}`, each key a public JWK (kty, kid, alg, use and its public parameters)."""

    keys: list[dict[str, Any]]


class LinkTokenExchanged(BaseModel):
    success: bool = True
    token: str = Field(description="The connection's access token (the existing one in update mode).")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries with the error body for each status."""
    return {status: {"model": ErrorBody} for status in statuses}


REQUEST_BODIES: tuple[type[BaseModel], ...] = (
    CreateTaskRequest,
    SettingsUpdate,
    WebhookRegistration,
    WebhookRecover,
    LinkTokenCreate,
)
"""The bodies routes read themselves: `api/openapi.py` adds them to the document's components, so that
clients generated from it name them as we do."""


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself (to answer in the contract's words)."""
    if model not in REQUEST_BODIES:
        raise ValueError(f"add {model.__name__} to REQUEST_BODIES")
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
