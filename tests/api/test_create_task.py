"""POST /v1/tasks: the 202 answer, what is committed before it, and every refusal (which stores nothing)."""

import orjson
import pytest

from tests.api.helpers import (
    ACCEPTED_MESSAGE,
    JSON_TYPE,
    NOT_JSON_OBJECT,
    NOTHING_STORED,
    ONE_MB,
    TOO_LARGE,
    server_client,
    stored_counts,
)
from tests.conftest import PHONE_TASK, SUBJECT_TASK


def _without(body, *names):
    return {k: v for k, v in body.items() if k not in names}


def _error(error, message, *errors):
    found = {"success": False, "error": error, "message": message}
    if errors:
        found["errors"] = [{"field": f, "code": c, "message": m} for f, c, m in errors]
    return found


async def _refused(api, runtime, headers, body, status=400):
    answer = await api.post("/v1/tasks", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert await stored_counts(runtime) == NOTHING_STORED
    return answer.json()


# --- accepted --------------------------------------------------------------------------------------


async def test_a_valid_subject_task_is_accepted_with_202_and_the_cobalt_body(api, tenant):
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    assert answer.status_code == 202
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"success", "message", "task_id", "job_id"}
    assert body["success"] is True
    assert body["message"] == ACCEPTED_MESSAGE
    assert body["task_id"].startswith("task_")
    assert body["job_id"].startswith("job_")


async def test_a_valid_phone_call_task_is_accepted_on_a_phone_call_connection(api, tenant):
    answer = await api.post("/v1/tasks", json=PHONE_TASK, headers=tenant.b)
    assert answer.status_code == 202
    assert answer.json()["message"] == ACCEPTED_MESSAGE


async def test_the_task_and_its_job_are_committed_before_the_answer(api, runtime, tenant):
    answer = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    assert await stored_counts(runtime) == {"tasks": 1, "jobs": 1, "events": 0, "sandbox_emr_tasks": 0}
    task = await api.get(f"/v1/tasks/{answer['task_id']}", headers=tenant.a)
    assert task.status_code == 200
    assert task.json()["task"]["status"] == "processing"
    assert task.json()["task"]["job_id"] == answer["job_id"]
    job = await api.get(f"/v1/jobs/{answer['job_id']}", headers=tenant.a)
    assert job.status_code == 200
    assert job.json()["job"]["state"] == "queued"
    assert job.json()["job"]["task_id"] == answer["task_id"]


async def test_every_accepted_request_gets_its_own_task_and_job(api, runtime, tenant):
    first = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    second = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    assert first["task_id"] != second["task_id"]
    assert first["job_id"] != second["job_id"]
    assert (await stored_counts(runtime))["tasks"] == 2


async def test_accepted_strings_are_trimmed_and_notify_list_kept_in_order(api, tenant):
    body = {
        "subject": "  Call back  ",
        "description": "\tLab results\n",
        "assignee_user_id": " usr_1002 ",
        "patient_mrn": " MRN-1003 ",
        "notify_list": ["usr_1004", " grp_2001 "],
    }
    answer = (await api.post("/v1/tasks", json=body, headers=tenant.a)).json()
    task = (await api.get(f"/v1/tasks/{answer['task_id']}", headers=tenant.a)).json()["task"]
    assert task["subject"] == "Call back"
    assert task["description"] == "Lab results"
    assert task["assignee_user_id"] == "usr_1002"
    assert task["patient_mrn"] == "MRN-1003"
    assert task["notify_list"] == ["usr_1004", "grp_2001"]


async def test_a_phone_call_task_may_omit_subject_and_assignee(api, tenant):
    answer = await api.post("/v1/tasks", json=_without(PHONE_TASK, "notify_list"), headers=tenant.b)
    assert answer.status_code == 202


async def test_a_streamed_body_without_content_length_is_accepted(api, tenant):
    payload = orjson.dumps(SUBJECT_TASK)

    async def chunks():
        for start in range(0, len(payload), 16):
            yield payload[start : start + 16]

    answer = await api.post("/v1/tasks", content=chunks(), headers={**tenant.a, **JSON_TYPE})
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 202


# --- not a JSON object ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"subject": "x",}', b"not json", b"[]", b"[{}]", b'"text"', b"42", b"null", b"true"],
    ids=["empty", "truncated", "trailing comma", "not json", "array", "array of object", "string",
         "number", "null", "boolean"],
)  # fmt: skip
async def test_a_body_that_is_not_a_json_object_is_400(api, runtime, tenant, content):
    headers = {**tenant.a, "content-type": "application/json"}
    answer = await api.post("/v1/tasks", content=content, headers=headers)
    assert answer.status_code == 400
    assert answer.json() == NOT_JSON_OBJECT
    assert await stored_counts(runtime) == NOTHING_STORED


# --- field problems --------------------------------------------------------------------------------


async def test_unexpected_fields_are_400_naming_each_in_order(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "a": 1, "b": "x"})
    assert body == _error(
        "unexpected_fields",
        "Unexpected fields in request body: a, b",
        ("a", "unexpected_field", "Unexpected field: a."),
        ("b", "unexpected_field", "Unexpected field: b."),
    )


async def test_a_single_unexpected_field_is_named(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "priority": "high"})
    assert body["message"] == "Unexpected fields in request body: priority"


@pytest.mark.parametrize("value", ["usr_1003", [1], ["usr_1003", None], {"a": "b"}, 7])
async def test_notify_list_that_is_not_an_array_of_strings_is_400(api, runtime, tenant, value):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "notify_list": value})
    message = "Invalid field: notify_list must be an array of strings."
    assert body == _error("invalid_field", message, ("notify_list", "invalid_type", message))


@pytest.mark.parametrize("field", ["subject", "description", "patient_mrn", "assignee_user_id"])
@pytest.mark.parametrize("value", [5, ["x"], {"x": 1}, True])
async def test_a_string_field_of_another_type_is_400(api, runtime, tenant, field, value):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, field: value})
    message = f"Invalid field: {field} must be a string."
    assert body == _error("invalid_field", message, (field, "invalid_type", message))


async def test_a_missing_subject_is_400_missing_required_field_subject(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, _without(SUBJECT_TASK, "subject"))
    message = "Missing required field: subject"
    assert body == _error("missing_field", message, ("subject", "missing_field", message))


@pytest.mark.parametrize("value", [None, "", "   "], ids=["null", "empty", "blank"])
async def test_a_null_or_blank_subject_counts_as_missing(api, runtime, tenant, value):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "subject": value})
    assert body["error"] == "missing_field"
    assert body["message"] == "Missing required field: subject"


@pytest.mark.parametrize(("headers_of", "field"), [("a", "description"), ("a", "patient_mrn"),
                                                    ("b", "description"), ("b", "patient_mrn")])  # fmt: skip
async def test_description_and_patient_mrn_are_always_required(api, runtime, tenant, headers_of, field):
    base = SUBJECT_TASK if headers_of == "a" else PHONE_TASK
    body = await _refused(api, runtime, getattr(tenant, headers_of), _without(base, field))
    message = f"Missing required field: {field}"
    assert body == _error("missing_field", message, (field, "missing_field", message))


async def test_a_missing_assignee_is_400_on_a_subject_assignee_connection(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, _without(SUBJECT_TASK, "assignee_user_id"))
    assert body["message"] == "Missing required field: assignee_user_id"


async def test_a_missing_phone_call_type_is_400_on_a_phone_call_connection(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.b, _without(PHONE_TASK, "phone_call_type_id"))
    message = "Missing required field: phone_call_type_id"
    assert body == _error("missing_field", message, ("phone_call_type_id", "missing_field", message))


async def test_an_empty_object_lists_every_missing_field_and_names_the_first(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {})
    assert body == _error(
        "missing_field",
        "Missing required field: description",
        *(
            (name, "missing_field", f"Missing required field: {name}")
            for name in ("description", "patient_mrn", "subject", "assignee_user_id")
        ),
    )


async def test_every_problem_is_listed_while_the_headline_is_the_most_important(api, runtime, tenant):
    request = {
        "description": "x",
        "patient_mrn": "MRN-1001",
        "assignee_user_id": "usr_nobody",
        "notify_list": ["usr_1003", "usr_ghost"],
    }
    body = await _refused(api, runtime, tenant.a, request)
    assert body == _error(
        "missing_field",
        "Missing required field: subject",
        ("subject", "missing_field", "Missing required field: subject"),
        ("assignee_user_id", "user_not_found", "User not found: usr_nobody."),
        ("notify_list[1]", "user_not_found", "User not found: usr_ghost."),
    )


async def test_unexpected_fields_head_the_list_before_type_and_missing_errors(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {"extra": 1, "description": 3})
    assert body["error"] == "unexpected_fields"
    assert body["message"] == "Unexpected fields in request body: extra"
    codes = [(e["field"], e["code"]) for e in body["errors"]]
    assert codes == [
        ("extra", "unexpected_field"),
        ("description", "invalid_type"),
        ("patient_mrn", "missing_field"),
        ("subject", "missing_field"),
        ("assignee_user_id", "missing_field"),
    ]


async def test_an_unknown_assignee_is_400_user_not_found(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "assignee_user_id": "usr_9999"})
    assert body == _error(
        "user_not_found",
        "User not found.",
        ("assignee_user_id", "user_not_found", "User not found: usr_9999."),
    )


async def test_an_unknown_user_in_notify_list_is_400_user_not_found(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.b, {**PHONE_TASK, "notify_list": ["usr_1001", "usr_0000"]})
    assert body == _error(
        "user_not_found",
        "User not found.",
        ("notify_list[1]", "user_not_found", "User not found: usr_0000."),
    )


async def test_user_ids_are_case_sensitive(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "assignee_user_id": "USR_1001"})
    assert body["message"] == "User not found."


async def test_a_group_is_a_valid_assignee(api, tenant):
    body = {**SUBJECT_TASK, "assignee_user_id": "grp_2001"}
    answer = await api.post("/v1/tasks", json=body, headers=tenant.a)
    assert answer.status_code == 202


async def test_an_unknown_phone_call_type_is_400_phone_call_type_not_found(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.b, {**PHONE_TASK, "phone_call_type_id": "pct_99"})
    assert body == _error(
        "phone_call_type_not_found",
        "Phone call type not found.",
        ("phone_call_type_id", "phone_call_type_not_found", "Phone call type not found: pct_99."),
    )


async def test_a_field_the_connections_emr_does_not_support_is_400(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "phone_call_type_id": "pct_01"})
    message = "Unsupported field: phone_call_type_id is not supported by this EMR (subject_assignee rules)."
    assert body == _error("unsupported_field", message, ("phone_call_type_id", "unsupported_field", message))


async def test_a_subject_over_255_characters_is_400(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "subject": "s" * 256})
    message = "Invalid field: subject must be at most 255 characters."
    assert body == _error("limit_exceeded", message, ("subject", "too_long", message))


async def test_a_subject_of_exactly_255_characters_is_accepted(api, tenant):
    answer = await api.post("/v1/tasks", json={**SUBJECT_TASK, "subject": "s" * 255}, headers=tenant.a)
    assert answer.status_code == 202


async def test_a_notify_list_over_10_entries_is_400(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "notify_list": ["usr_1001"] * 11})
    message = "Invalid field: notify_list must have at most 10 entries."
    assert body == _error("limit_exceeded", message, ("notify_list", "too_many", message))


async def test_a_blank_entry_in_notify_list_is_400(api, runtime, tenant):
    body = await _refused(api, runtime, tenant.a, {**SUBJECT_TASK, "notify_list": ["usr_1001", " "]})
    message = "Invalid field: notify_list must not contain blank entries."
    assert body == _error("invalid_field", message, ("notify_list", "invalid_type", message))


# --- size limit -------------------------------------------------------------------------------------


def _body_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes: SUBJECT_TASK with a padded description."""
    empty = orjson.dumps({**SUBJECT_TASK, "description": ""})
    return orjson.dumps({**SUBJECT_TASK, "description": "d" * (size - len(empty))})


async def test_a_body_over_1_mb_with_content_length_is_413(api, runtime, tenant):
    content = _body_of_size(ONE_MB + 1)
    answer = await api.post("/v1/tasks", content=content, headers={**tenant.a, **JSON_TYPE})
    assert answer.request.headers["content-length"] == str(ONE_MB + 1)
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_a_streamed_body_over_1_mb_without_content_length_is_413(api, runtime, tenant):
    async def chunks():
        for _ in range(40):
            yield b" " * 32_768  # 1.25 MB of JSON whitespace in total

    answer = await api.post("/v1/tasks", content=chunks(), headers={**tenant.a, **JSON_TYPE})
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_a_body_of_exactly_1_mb_is_read_and_validated_not_413(api, runtime, tenant):
    content = _body_of_size(ONE_MB)
    assert len(content) == ONE_MB
    body = await api.post("/v1/tasks", content=content, headers={**tenant.a, **JSON_TYPE})
    assert body.status_code == 400
    assert body.json()["message"] == "Invalid field: description must be at most 4000 characters."
    assert await stored_counts(runtime) == NOTHING_STORED


# --- database-specific input ------------------------------------------------------------------------


async def test_a_nul_character_in_a_field_is_400_naming_the_field_and_stores_nothing(runtime, tenant):
    """PostgreSQL cannot store NUL in text, so no database gets one: refused before any write."""
    async with server_client(runtime) as client:
        body = {**SUBJECT_TASK, "description": "a\u0000b"}
        answer = await client.post("/v1/tasks", json=body, headers=tenant.a)
    assert answer.status_code == 400, answer.text
    assert answer.json()["success"] is False
    assert answer.json()["message"] == "Invalid field: description must not contain NUL characters."
    assert [e["field"] for e in answer.json()["errors"]] == ["description"]
    assert await stored_counts(runtime) == NOTHING_STORED
