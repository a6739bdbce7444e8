"""GET and POST /v1/settings: the connection's access_token_reference_id, and that events carry it."""

import pytest

from tests.api.helpers import JSON_TYPE, NOT_JSON_OBJECT, ONE_MB, TOO_LARGE, server_client
from tests.conftest import PHONE_TASK, SUBJECT_TASK, drain

FIELD = "access_token_reference_id"


def _settings(reference, rules):
    return {
        "success": True,
        "data": {
            FIELD: reference,
            "emr": "sandbox",
            "rules": rules,
            "status": "active",
            "visit_types": [],
            "visit_statuses": [],
            "required_patient_fields": ["patient_mrn"],
            "timezone": "UTC",
        },
    }


async def test_get_settings_returns_the_connections_reference_id(api, tenant):
    answer = await api.get("/v1/settings", headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json() == _settings("ref-a", "subject_assignee")
    assert (await api.get("/v1/settings", headers=tenant.b)).json() == _settings("ref-b", "phone_call")


async def test_post_settings_sets_the_reference_id_and_answers_it(api, tenant):
    answer = await api.post("/v1/settings", json={FIELD: "at_ref_123456789"}, headers=tenant.a)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "data": {FIELD: "at_ref_123456789"}}
    assert (await api.get("/v1/settings", headers=tenant.a)).json() == _settings(
        "at_ref_123456789", "subject_assignee"
    )


async def test_changing_one_connections_reference_leaves_the_other_alone(api, tenant):
    await api.post("/v1/settings", json={FIELD: "changed"}, headers=tenant.a)
    assert (await api.get("/v1/settings", headers=tenant.b)).json()["data"][FIELD] == "ref-b"


async def test_the_reference_id_is_trimmed(api, tenant):
    answer = await api.post("/v1/settings", json={FIELD: "  spaced  "}, headers=tenant.a)
    assert answer.json() == {"success": True, "data": {FIELD: "spaced"}}


async def test_setting_the_reference_twice_keeps_the_last(api, tenant):
    await api.post("/v1/settings", json={FIELD: "first"}, headers=tenant.a)
    await api.post("/v1/settings", json={FIELD: "second"}, headers=tenant.a)
    assert (await api.get("/v1/settings", headers=tenant.a)).json()["data"][FIELD] == "second"


async def test_any_other_field_is_400_unexpected_fields(api, tenant):
    answer = await api.post("/v1/settings", json={FIELD: "x", "other": 1}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False,
        "error": "unexpected_fields",
        "message": "Unexpected fields in request body: other",
        "errors": [{"field": "other", "code": "unexpected_field", "message": "Unexpected field: other."}],
    }
    assert (await api.get("/v1/settings", headers=tenant.a)).json()["data"][FIELD] == "ref-a"


async def test_several_other_fields_are_named_in_order(api, tenant):
    answer = await api.post("/v1/settings", json={"timezone": "UTC", "emr": "x"}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["message"] == "Unexpected fields in request body: timezone, emr"


@pytest.mark.parametrize("body", [{}, {FIELD: None}, {FIELD: ""}, {FIELD: "   "}],
                         ids=["absent", "null", "empty", "blank"])  # fmt: skip
async def test_a_missing_reference_id_is_400_missing_required_field(api, tenant, body):
    answer = await api.post("/v1/settings", json=body, headers=tenant.a)
    assert answer.status_code == 400
    message = f"Missing required field: {FIELD}"
    assert answer.json() == {
        "success": False,
        "error": "missing_field",
        "message": message,
        "errors": [{"field": FIELD, "code": "missing_field", "message": message}],
    }
    assert (await api.get("/v1/settings", headers=tenant.a)).json()["data"][FIELD] == "ref-a"


@pytest.mark.parametrize("value", [1, ["x"], {"a": "b"}, True])
async def test_a_reference_id_that_is_not_a_string_is_400(api, tenant, value):
    answer = await api.post("/v1/settings", json={FIELD: value}, headers=tenant.a)
    assert answer.status_code == 400
    message = f"Invalid field: {FIELD} must be a string."
    assert answer.json() == {
        "success": False,
        "error": "invalid_field",
        "message": message,
        "errors": [{"field": FIELD, "code": "invalid_type", "message": message}],
    }


async def test_a_reference_id_over_255_characters_is_400(api, tenant):
    answer = await api.post("/v1/settings", json={FIELD: "r" * 256}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["error"] == "limit_exceeded"
    assert answer.json()["message"] == f"Invalid field: {FIELD} must be at most 255 characters."
    ok = await api.post("/v1/settings", json={FIELD: "r" * 255}, headers=tenant.a)
    assert ok.status_code == 200


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'"ref"', b"null"])
async def test_a_settings_body_that_is_not_a_json_object_is_400(api, tenant, content):
    answer = await api.post("/v1/settings", content=content, headers={**tenant.a, **JSON_TYPE})
    assert answer.status_code == 400
    assert answer.json() == NOT_JSON_OBJECT


async def test_a_settings_body_over_1_mb_is_413(api, tenant):
    content = b'{"access_token_reference_id": "x"' + b" " * ONE_MB + b"}"
    answer = await api.post("/v1/settings", content=content, headers={**tenant.a, **JSON_TYPE})
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE


async def test_a_streamed_settings_body_over_1_mb_is_413(api, tenant):
    async def chunks():
        yield b'{"access_token_reference_id": "x"'
        for _ in range(20):
            yield b" " * 65_536
        yield b"}"

    answer = await api.post("/v1/settings", content=chunks(), headers={**tenant.a, **JSON_TYPE})
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert (await api.get("/v1/settings", headers={**tenant.a, **JSON_TYPE})).json()["data"][FIELD] == "ref-a"


async def test_events_after_a_change_carry_the_new_reference_id(api, runtime, tenant):
    before = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    await drain(runtime)
    await api.post("/v1/settings", json={FIELD: "ref-new"}, headers=tenant.a)
    after = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    unknown_mrn = {**SUBJECT_TASK, "patient_mrn": "MRN-0"}
    failed = (await api.post("/v1/tasks", json=unknown_mrn, headers=tenant.a)).json()
    other = (await api.post("/v1/tasks", json=PHONE_TASK, headers=tenant.b)).json()
    await drain(runtime)
    events = (await api.get("/v1/webhook-events", headers=tenant.headers())).json()["webhook_events"]
    reference_by_job = {e["job_id"]: e[FIELD] for e in events}
    assert reference_by_job[before["job_id"]] == "ref-a"
    assert reference_by_job[after["job_id"]] == "ref-new"
    assert reference_by_job[failed["job_id"]] == "ref-new"
    assert reference_by_job[other["job_id"]] == "ref-b"


async def test_a_task_accepted_before_the_change_and_finished_after_it_carries_the_new_reference(
    api, runtime, tenant
):
    accepted = (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
    await api.post("/v1/settings", json={FIELD: "ref-new"}, headers=tenant.a)
    await drain(runtime)
    events = await api.get(f"/v1/webhook-events?job_id={accepted['job_id']}", headers=tenant.a)
    assert [e[FIELD] for e in events.json()["webhook_events"]] == ["ref-new"]


async def test_a_nul_character_in_the_reference_id_is_400_naming_it_and_keeps_the_old_one(runtime, tenant):
    async with server_client(runtime) as client:
        answer = await client.post("/v1/settings", json={FIELD: "a\u0000b"}, headers=tenant.a)
        kept = await client.get("/v1/settings", headers=tenant.a)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == f"Invalid field: {FIELD} must not contain NUL characters."
    assert [e["field"] for e in answer.json()["errors"]] == [FIELD]
    assert kept.json()["data"][FIELD] == "ref-a"
