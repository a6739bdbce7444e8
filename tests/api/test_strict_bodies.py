"""Strict bodies through the API: JSON declared as JSON (415 otherwise), no key given twice, no invisible
format characters in ids, and error answers that stay small whatever was sent."""

import orjson
import pytest

from tests.api.helpers import NOTHING_STORED, stored_counts
from tests.conftest import SUBJECT_TASK

UNSUPPORTED = {
    "success": False,
    "error": "unsupported_media_type",
    "message": "Unsupported Content-Type: send the body as JSON, with Content-Type: application/json.",
}
FORMAT = "invisible format characters (Unicode category Cf)"


def _json_routes(tenant):
    """Every route that reads a JSON body, with a body it accepts and the headers it needs."""
    return [
        ("/v1/tasks", SUBJECT_TASK, tenant.a),
        ("/v1/settings", {"access_token_reference_id": "ref-new"}, tenant.a),
        ("/v1/webhook", {"webhook_url": "http://127.0.0.1:9/hook"}, tenant.headers()),
        ("/v1/webhook/wh_unknown/recover", {"since": "2026-01-01T00:00:00Z"}, tenant.headers()),
        ("/v1/link/token/create", {"user_id": "user-42", "org_id": "org-7"}, tenant.headers()),
    ]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=iso-8859-1", "application/jsonx", "application/json; version=2"],
)  # fmt: skip
async def test_a_body_not_declared_as_json_is_415_on_every_json_route(api, runtime, tenant, content_type):
    for path, body, headers in _json_routes(tenant):
        sent = {**headers, **({"content-type": content_type} if content_type else {})}
        answer = await api.post(path, content=orjson.dumps(body), headers=sent)
        assert answer.status_code == 415, path
        assert answer.json() == UNSUPPORTED, path
    assert await stored_counts(runtime) == NOTHING_STORED


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'Application/JSON;Charset="UTF-8"', "application/json"],
)
async def test_json_with_or_without_a_utf8_charset_is_accepted(api, tenant, content_type):
    headers = {**tenant.a, "content-type": content_type}
    answer = await api.post("/v1/tasks", content=orjson.dumps(SUBJECT_TASK), headers=headers)
    assert answer.status_code == 202


async def test_a_duplicate_key_is_400_naming_it(api, runtime, tenant):
    content = b'{"subject": "s", "description": "d", "assignee_user_id": "usr_1001", ' \
        b'"patient_mrn": "MRN-1001", "patient_mrn": "MRN-9999"}'  # fmt: skip
    answer = await api.post(
        "/v1/tasks", content=content, headers={**tenant.a, "content-type": "application/json"}
    )
    assert answer.status_code == 400
    message = "Duplicate field in request body: patient_mrn"
    assert answer.json() == {
        "success": False,
        "error": "duplicate_field",
        "message": message,
        "errors": [{"field": "patient_mrn", "code": "duplicate_field", "message": message}],
    }
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_a_duplicate_key_is_400_on_the_other_routes_too(api, tenant):
    content = b'{"access_token_reference_id": "a", "access_token_reference_id": "b"}'
    answer = await api.post(
        "/v1/settings", content=content, headers={**tenant.a, "content-type": "application/json"}
    )
    assert (answer.status_code, answer.json()["message"]) == (
        400,
        "Duplicate field in request body: access_token_reference_id",
    )
    assert (await api.get("/v1/settings", headers=tenant.a)).json()["data"][
        "access_token_reference_id"
    ] == "ref-a"


async def test_colons_in_values_are_not_mistaken_for_duplicates(api, tenant):
    body = {**SUBJECT_TASK, "description": "Call at 10:30: results ready", "subject": "a:b:c"}
    assert (await api.post("/v1/tasks", json=body, headers=tenant.a)).status_code == 202


@pytest.mark.parametrize("character", ["\u202e", "\u200b", "\ufeff", "\u2060", "\u00ad"])
async def test_format_characters_in_an_mrn_or_user_id_are_400(api, runtime, tenant, character):
    for field, value in (
        ("patient_mrn", f"MRN{character}1001"),
        ("assignee_user_id", f"{character}usr_1001"),
    ):
        answer = await api.post("/v1/tasks", json={**SUBJECT_TASK, field: value}, headers=tenant.a)
        assert answer.status_code == 400
        assert answer.json()["message"] == f"Invalid field: {field} must not contain {FORMAT}."
    listed = await api.post(
        "/v1/tasks", json={**SUBJECT_TASK, "notify_list": [f"usr_1001{character}"]}, headers=tenant.a
    )
    assert listed.json()["message"] == f"Invalid field: notify_list must not contain {FORMAT}."
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_control_characters_keep_their_message(api, tenant):
    for value in ("MRN\n1001", "MRN\x851001"):  # C0 and C1 controls
        answer = await api.post("/v1/tasks", json={**SUBJECT_TASK, "patient_mrn": value}, headers=tenant.a)
        assert answer.json()["message"] == "Invalid field: patient_mrn must not contain control characters."


async def test_format_characters_in_reference_ids_are_400(api, tenant):
    field = "access_token_reference_id"
    answer = await api.post("/v1/settings", json={field: "clinic\u202e1"}, headers=tenant.a)
    assert (answer.status_code, answer.json()["message"]) == (
        400,
        f"Invalid field: {field} must not contain {FORMAT}.",
    )
    linked = await api.post(
        "/v1/link/token/create",
        json={"user_id": "user-42", "org_id": "org-7", "reference_id": "\u200bclinic"},
        headers=tenant.headers(),
    )
    assert (linked.status_code, linked.json()["message"]) == (
        400,
        f"Invalid field: reference_id must not contain {FORMAT}.",
    )


async def test_50000_unknown_keys_get_a_small_answer(api, runtime, tenant):
    body = {**SUBJECT_TASK, **{f"k{i}": 1 for i in range(50_000)}}
    answer = await api.post("/v1/tasks", json=body, headers=tenant.a)
    assert answer.status_code == 400
    assert len(answer.content) < 16_384
    found = answer.json()
    assert found["error"] == "unexpected_fields"
    assert len(found["errors"]) == 50
    assert found["message"] == (
        "Unexpected fields in request body: k0, k1, k2, k3, k4, k5, k6, k7, k8, k9 and 49990 more"
    )
    assert await stored_counts(runtime) == NOTHING_STORED


async def test_an_answer_echoes_no_value_longer_than_64_characters(api, tenant):
    key = "k" * 10_000
    answer = await api.post("/v1/tasks", json={**SUBJECT_TASK, key: 1}, headers=tenant.a)
    found = answer.json()
    assert found["message"] == f"Unexpected fields in request body: {'k' * 61}..."
    assert found["errors"] == [
        {
            "field": f"{'k' * 61}...",
            "code": "unexpected_field",
            "message": f"Unexpected field: {'k' * 61}....",
        }
    ]
    unknown = await api.post(
        "/v1/tasks", json={**SUBJECT_TASK, "notify_list": ["u" * 5000]}, headers=tenant.a
    )
    assert all(len(e["field"]) <= 64 for e in unknown.json()["errors"])
    assert "u" * 65 not in unknown.text
    duplicate = b'{"' + b"d" * 200 + b'": 1, "' + b"d" * 200 + b'": 2}'
    twice = await api.post(
        "/v1/settings", content=duplicate, headers={**tenant.a, "content-type": "application/json"}
    )
    assert twice.json()["message"] == f"Duplicate field in request body: {'d' * 61}..."
