"""Webhook event payloads: the Cobalt-compatible envelope and task.created / task.failed data."""

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from emrtasks.webhooks import events

CREATED_AT = datetime(2026, 11, 30, 10, 30, 0, 123456, tzinfo=UTC)
TASK: dict[str, Any] = {
    "id": "task_01hzzzzzzzzzzzzzzzzzzzzzzz",
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "patient_mrn": "MRN-1001",
    "assignee_user_id": "usr_1001",
    "phone_call_type_id": None,
    "notify_list": ["usr_1003", "usr_1004"],
    # Columns a stored task has that are not part of the event.
    "status": "created",
    "connection_id": "conn_1",
    "marker": "mk_123",
}
REASONS = [
    {"code": "PATIENT_NOT_FOUND", "description": "Patient not found."},
    {"code": "EMR_REJECTED", "description": "The EMR refused the task."},
]
ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def make_envelope(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "event_id": "evt_1",
        "event_type": events.TASK_CREATED,
        "reference_id": "ref-a",
        "job_id": "job_1",
        "created": CREATED_AT,
        "data": {"task_id": "task_1"},
        **overrides,
    }
    return events.envelope(**options)


def test_envelope_has_exactly_the_contract_keys_in_order() -> None:
    assert list(make_envelope()) == [
        "id",
        "access_token_reference_id",
        "object",
        "created",
        "type",
        "job_id",
        "data",
    ]


def test_envelope_values() -> None:
    assert make_envelope() == {
        "id": "evt_1",
        "access_token_reference_id": "ref-a",
        "object": "event",
        "created": "2026-11-30T10:30:00.123Z",
        "type": "task.created",
        "job_id": "job_1",
        "data": {"task_id": "task_1"},
    }


@pytest.mark.parametrize("event_type", events.TYPES)
def test_envelope_object_is_always_event(event_type: str) -> None:
    envelope = make_envelope(event_type=event_type)
    assert (envelope["object"], envelope["type"]) == ("event", event_type)


def test_envelope_keeps_null_reference_and_job_id() -> None:
    envelope = make_envelope(reference_id=None, job_id=None)
    assert envelope["access_token_reference_id"] is None
    assert envelope["job_id"] is None
    assert "access_token_reference_id" in envelope
    assert "job_id" in envelope


def test_envelope_data_is_a_copy() -> None:
    data = {"task_id": "task_1"}
    envelope = make_envelope(data=data)
    data["task_id"] = "changed"
    assert envelope["data"] == {"task_id": "task_1"}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(CREATED_AT, "2026-11-30T10:30:00.123Z", id="utc-microseconds-truncated"),
        pytest.param(
            datetime(2025, 10, 9, 10, 30, tzinfo=UTC), "2025-10-09T10:30:00.000Z", id="whole-second"
        ),
        pytest.param(
            datetime(2025, 10, 9, 12, 30, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
            "2025-10-09T10:30:00.005Z",
            id="converted-from-plus-two",
        ),
        pytest.param(
            datetime(2025, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2026-01-01T01:00:00.000Z",
            id="converted-across-new-year",
        ),
    ],
)
def test_created_is_iso_8601_utc_with_milliseconds_and_z(moment: datetime, expected: str) -> None:
    created = make_envelope(created=moment)["created"]
    assert created == expected
    assert ISO_Z.fullmatch(created)
    assert datetime.fromisoformat(created.replace("Z", "+00:00")) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )


def test_task_created_data_has_exactly_the_contract_keys() -> None:
    assert events.task_created_data(TASK, "emr_77") == {
        "task_id": "task_01hzzzzzzzzzzzzzzzzzzzzzzz",
        "emr_task_id": "emr_77",
        "subject": "Follow-up appointment needed",
        "description": "Review recent lab results.",
        "patient_mrn": "MRN-1001",
        "assignee_user_id": "usr_1001",
        "phone_call_type_id": None,
        "notify_list": ["usr_1003", "usr_1004"],
    }


def test_task_created_data_keys_are_in_contract_order() -> None:
    assert list(events.task_created_data(TASK, "emr_77")) == [
        "task_id",
        "emr_task_id",
        "subject",
        "description",
        "patient_mrn",
        "assignee_user_id",
        "phone_call_type_id",
        "notify_list",
    ]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(None, [], id="null"),
        pytest.param([], [], id="empty"),
        pytest.param(("usr_1001",), ["usr_1001"], id="tuple"),
    ],
)
def test_task_created_notify_list_is_always_a_list(stored: Any, expected: list[str]) -> None:
    data = events.task_created_data({**TASK, "notify_list": stored}, "emr_1")
    assert data["notify_list"] == expected
    assert type(data["notify_list"]) is list


def test_task_failed_data_has_exactly_the_contract_keys() -> None:
    assert events.task_failed_data(TASK, REASONS) == {
        "task_id": "task_01hzzzzzzzzzzzzzzzzzzzzzzz",
        "patient_mrn": "MRN-1001",
        "failure_reason": "Patient not found. The EMR refused the task.",
        "reasons": [
            {"code": "PATIENT_NOT_FOUND", "description": "Patient not found."},
            {"code": "EMR_REJECTED", "description": "The EMR refused the task."},
        ],
    }


def test_failure_reason_of_one_reason_is_its_description() -> None:
    assert events.failure_reason(REASONS[:1]) == "Patient not found."


def test_failure_reason_of_no_reasons_is_empty() -> None:
    assert events.failure_reason([]) == ""


def test_task_failed_reasons_are_copies() -> None:
    reasons = [dict(r) for r in REASONS]
    data = events.task_failed_data(TASK, reasons)
    reasons[0]["code"] = "CHANGED"
    assert data["reasons"][0]["code"] == "PATIENT_NOT_FOUND"


def test_event_types() -> None:
    assert events.TYPES == ("task.created", "task.failed", "task.unknown", "login_required")


def test_serialize_is_compact_json_in_key_order() -> None:
    body = make_envelope(data=events.task_failed_data(TASK, REASONS[:1]))
    text = events.serialize(body)
    assert text.startswith('{"id":"evt_1","access_token_reference_id":"ref-a","object":"event",')
    assert " " not in text.replace("Patient not found.", "")
    assert orjson.loads(text) == body
