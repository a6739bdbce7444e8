"""The typed results: frozen dataclasses read from the API's JSON answers (unknown keys ignored)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

FINAL_STATUSES = frozenset({"created", "failed", "unknown"})


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time of the API (`2026-11-30T11:50:27.342Z`), timezone-aware; None when absent."""
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _required_time(value: object) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return parsed


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class TaskAccepted:
    """The 202 answer of `create_task`: the task is stored and will be created in the EMR."""

    task_id: str
    job_id: str
    message: str
    idempotency_key: str
    replayed: bool  # True when the server answered a retry with the first answer again


@dataclass(frozen=True)
class Reason:
    code: str
    description: str


@dataclass(frozen=True)
class Task:
    """A task and its outcome. `status`: processing, created, failed or unknown."""

    task_id: str
    job_id: str
    status: str
    subject: str | None
    description: str
    patient_mrn: str
    assignee_user_id: str | None
    phone_call_type_id: str | None
    notify_list: tuple[str, ...]
    emr_task_id: str | None
    failure_reason: str | None
    reasons: tuple[Reason, ...]
    created: datetime
    updated: datetime

    @property
    def is_final(self) -> bool:
        """True once the task will change no more (created, failed or unknown)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Task":
        reasons = tuple(Reason(str(r["code"]), str(r["description"])) for r in raw.get("reasons") or [])
        return cls(
            task_id=raw["task_id"],
            job_id=raw["job_id"],
            status=raw["status"],
            subject=raw.get("subject"),
            description=raw["description"],
            patient_mrn=raw["patient_mrn"],
            assignee_user_id=raw.get("assignee_user_id"),
            phone_call_type_id=raw.get("phone_call_type_id"),
            notify_list=_strings(raw.get("notify_list")),
            emr_task_id=raw.get("emr_task_id"),
            failure_reason=raw.get("failure_reason"),
            reasons=reasons,
            created=_required_time(raw["created"]),
            updated=_required_time(raw["updated"]),
        )


@dataclass(frozen=True)
class Job:
    """A background job. `state`: queued, running, succeeded, failed or unknown."""

    job_id: str
    kind: str
    task_id: str | None
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_error_code: str | None
    last_error: str | None
    created: datetime
    updated: datetime
    finished: datetime | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Job":
        return cls(
            job_id=raw["job_id"],
            kind=raw["kind"],
            task_id=raw.get("task_id"),
            state=raw["state"],
            attempts=int(raw["attempts"]),
            max_attempts=int(raw["max_attempts"]),
            next_attempt_at=parse_time(raw.get("next_attempt_at")),
            last_error_code=raw.get("last_error_code"),
            last_error=raw.get("last_error"),
            created=_required_time(raw["created"]),
            updated=_required_time(raw["updated"]),
            finished=parse_time(raw.get("finished")),
        )


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP try at delivering an event to one webhook URL."""

    webhook_id: str
    attempt: int
    trigger: str
    time: datetime
    status_code: int | None
    duration_ms: int
    error: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "DeliveryAttempt":
        return cls(
            webhook_id=raw["webhook_id"],
            attempt=int(raw["attempt"]),
            trigger=raw["trigger"],
            time=_required_time(raw["time"]),
            status_code=raw.get("status_code"),
            duration_ms=int(raw.get("duration_ms") or 0),
            error=raw.get("error"),
        )


@dataclass(frozen=True)
class Event:
    """What happened (`task.created`, `task.failed`, `task.unknown`, `login_required`). Polled events
    carry `delivery_status` and `attempts`; a webhook's body has neither (None and ())."""

    id: str
    type: str
    created: datetime
    job_id: str | None
    access_token_reference_id: str | None
    data: Mapping[str, Any]
    delivery_status: str | None = None
    attempts: tuple[DeliveryAttempt, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Event":
        return cls(
            id=raw["id"],
            type=raw["type"],
            created=_required_time(raw["created"]),
            job_id=raw.get("job_id"),
            access_token_reference_id=raw.get("access_token_reference_id"),
            data=dict(raw.get("data") or {}),
            delivery_status=raw.get("delivery_status"),
            attempts=tuple(DeliveryAttempt.from_json(a) for a in raw.get("attempts") or []),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a paginated list (events, patients)."""

    items: tuple[T, ...]
    current_page: int
    total_pages: int
    total_count: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.current_page < self.total_pages

    @classmethod
    def from_json(
        cls, items: list[Any], pagination: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], T]
    ) -> "Page[T]":
        return cls(
            items=tuple(parse(item) for item in items),
            current_page=int(pagination["current_page"]),
            total_pages=int(pagination["total_pages"]),
            total_count=int(pagination["total_count"]),
            page_size=int(pagination["page_size"]),
        )


@dataclass(frozen=True)
class Requirements:
    """The connection's EMR rules: which fields `create_task` needs, may take, or must not send."""

    emr: str
    rules: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    unsupported: tuple[str, ...]
    fields: Mapping[str, Mapping[str, Any]]
    assignee_identified_by: str | None
    patient_identified_by: str | None
    finds_by_marker: bool
    notes: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Requirements":
        return cls(
            emr=raw["emr"],
            rules=raw["rules"],
            required=_strings(raw.get("required")),
            optional=_strings(raw.get("optional")),
            unsupported=_strings(raw.get("unsupported")),
            fields={str(k): dict(v) for k, v in (raw.get("fields") or {}).items()},
            assignee_identified_by=raw.get("assignee_identified_by"),
            patient_identified_by=raw.get("patient_identified_by"),
            finds_by_marker=bool(raw.get("finds_by_marker")),
            notes=_strings(raw.get("notes")),
        )


@dataclass(frozen=True)
class User:
    """A user of the EMR's directory: a valid `assignee_user_id` or `notify_list` entry."""

    id: str
    name: str
    kind: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "User":
        return cls(id=raw["id"], name=raw["name"], kind=raw.get("kind"))


@dataclass(frozen=True)
class CallType:
    """A phone call type of the EMR: a valid `phone_call_type_id`."""

    id: str
    name: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "CallType":
        return cls(id=raw["id"], name=raw["name"])


@dataclass(frozen=True)
class Patient:
    first_name: str
    last_name: str
    dob: str
    sex: str
    phone: str
    mrn: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Patient":
        return cls(**{name: str(raw.get(name) or "") for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class WebhookEndpoint:
    """A registered webhook URL. `secret` is set only on the answer to `register_webhook` (shown once)."""

    id: str
    url: str
    status: str | None = None
    disabled_reason: str | None = None
    created: datetime | None = None
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "WebhookEndpoint":
        return cls(
            id=raw["id"],
            url=raw["url"],
            status=raw.get("status"),
            disabled_reason=raw.get("disabled_reason"),
            created=parse_time(raw.get("created")),
        )

    @classmethod
    def from_registration(cls, raw: Mapping[str, Any]) -> "WebhookEndpoint":
        return cls(
            id=raw["webhook_id"], url=raw["webhook_url"], status="active", secret=raw["webhook_secret"]
        )
