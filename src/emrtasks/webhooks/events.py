"""Event payloads: the Cobalt-compatible envelope and the data of `task.created`, `task.failed`,
`task.unknown` and `login_required` (a connection's EMR login broke).

The body is serialised once, when the event is written, and those bytes are what every attempt sends.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

TASK_CREATED = "task.created"
TASK_FAILED = "task.failed"
TASK_UNKNOWN = "task.unknown"
LOGIN_REQUIRED = "login_required"
EventType = Literal["task.created", "task.failed", "task.unknown", "login_required"]
TYPES: tuple[str, ...] = get_args(EventType)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z: `2026-11-30T10:30:00.123Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    *,
    event_id: str,
    event_type: str,
    reference_id: str | None,
    job_id: str | None,
    created: datetime,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "id": event_id,
        "access_token_reference_id": reference_id,
        "object": "event",
        "created": iso(created),
        "type": event_type,
        "job_id": job_id,
        "data": dict(data),
    }


def task_created_data(task: Mapping[str, Any], emr_task_id: str) -> dict[str, Any]:
    return {
        "task_id": task["id"],
        "emr_task_id": emr_task_id,
        "subject": task["subject"],
        "description": task["description"],
        "patient_mrn": task["patient_mrn"],
        "assignee_user_id": task["assignee_user_id"],
        "phone_call_type_id": task["phone_call_type_id"],
        "notify_list": list(task["notify_list"] or []),
    }


def task_failed_data(task: Mapping[str, Any], reasons: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Also the data of `task.unknown`: the reasons say why the outcome could not be settled."""
    return {
        "task_id": task["id"],
        "patient_mrn": task["patient_mrn"],
        "failure_reason": failure_reason(reasons),
        "reasons": [dict(r) for r in reasons],
    }


def login_required_data(connection_id: str, reference_id: str | None, emr: str) -> dict[str, Any]:
    """Once per break: re-link the connection through Link in update mode (`access_token` given)."""
    return {
        "connection_id": connection_id,
        "access_token_reference_id": reference_id,
        "emr": emr,
        "message": "The EMR refused this connection's login. Link it again in update mode.",
    }


def failure_reason(reasons: Sequence[Mapping[str, str]]) -> str:
    return " ".join(r["description"] for r in reasons)


def serialize(body: Mapping[str, Any]) -> str:
    """Compact, keys in order, non-ASCII as is: the text `JSON.stringify` gives back for it, so a
    Cobalt verifier that re-serialises the parsed body signs these very bytes."""
    return orjson.dumps(body).decode()
