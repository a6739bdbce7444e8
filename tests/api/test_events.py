"""GET /v1/webhook-events: the envelope, which client and connection sees what, filters, sort, pagination."""

import pytest

from tests.api.helpers import parse_iso_utc, server_client
from tests.conftest import PHONE_TASK, SUBJECT_TASK, drain, make_tenant

ENVELOPE_KEYS = {"id", "access_token_reference_id", "object", "created", "type", "job_id", "data"}
# What polling may add to each envelope: its delivery state to the client's webhook URLs (if any).
DELIVERY_KEYS = {"delivery_status", "attempts"}


def _envelope(event):
    """The Cobalt envelope of a polled event, after checking nothing else but delivery state is added."""
    assert set(event) >= ENVELOPE_KEYS
    assert set(event) - ENVELOPE_KEYS <= DELIVERY_KEYS
    return {k: event[k] for k in ENVELOPE_KEYS}


async def _accept(api, headers, body):
    answer = await api.post("/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def _events(api, headers, query=""):
    answer = await api.get(f"/v1/webhook-events{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"success", "webhook_events", "pagination"}
    assert body["success"] is True
    return body


def _pagination(current_page, total_pages, total_count, page_size):
    return {
        "current_page": current_page,
        "total_pages": total_pages,
        "total_count": total_count,
        "page_size": page_size,
    }


# --- envelope ---------------------------------------------------------------------------------------


async def test_a_created_task_yields_one_task_created_event_in_the_cobalt_envelope(
    api, runtime, tenant, clock
):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "notify_list": ["usr_1003"]})
    clock.advance(3)
    await drain(runtime)
    task = (await api.get(f"/v1/tasks/{accepted['task_id']}", headers=tenant.a)).json()["task"]
    [polled] = (await _events(api, tenant.a))["webhook_events"]
    event = _envelope(polled)
    # No webhook URL is registered, so nothing was delivered or tried.
    assert polled.get("delivery_status") is None
    assert polled.get("attempts", []) == []
    assert event["id"].startswith("evt_")
    assert event["access_token_reference_id"] == "ref-a"
    assert event["object"] == "event"
    assert event["type"] == "task.created"
    assert event["job_id"] == accepted["job_id"]
    assert parse_iso_utc(event["created"]) == parse_iso_utc(task["updated"])
    assert abs((parse_iso_utc(event["created"]) - clock.now).total_seconds()) < 0.001
    assert event["data"] == {
        "task_id": accepted["task_id"],
        "emr_task_id": task["emr_task_id"],
        "subject": "Follow-up appointment needed",
        "description": "Review recent lab results.",
        "patient_mrn": "MRN-1001",
        "assignee_user_id": "usr_1001",
        "phone_call_type_id": None,
        "notify_list": ["usr_1003"],
    }


async def test_a_failed_task_yields_a_task_failed_event_with_failure_reason_and_reasons(api, runtime, tenant):
    accepted = await _accept(api, tenant.b, {**PHONE_TASK, "patient_mrn": "MRN-7777"})
    await drain(runtime)
    [polled] = (await _events(api, tenant.b))["webhook_events"]
    event = _envelope(polled)
    description = "Patient not found for MRN MRN-7777. Please check the patient MRN and try again."
    assert event["type"] == "task.failed"
    assert event["access_token_reference_id"] == "ref-b"
    assert event["job_id"] == accepted["job_id"]
    assert event["data"] == {
        "task_id": accepted["task_id"],
        "patient_mrn": "MRN-7777",
        "failure_reason": description,
        "reasons": [{"code": "PATIENT_NOT_FOUND", "description": description}],
    }


async def test_no_event_exists_before_the_job_runs(api, tenant):
    await _accept(api, tenant.a, SUBJECT_TASK)
    body = await _events(api, tenant.headers())
    assert body == {"success": True, "webhook_events": [], "pagination": _pagination(1, 1, 0, 50)}


async def test_running_the_queue_again_adds_no_second_event(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    await drain(runtime)
    assert await drain(runtime) == 0
    body = await _events(api, tenant.a, f"?job_id={accepted['job_id']}")
    assert len(body["webhook_events"]) == 1


# --- who sees what ----------------------------------------------------------------------------------


async def test_client_credentials_alone_see_every_connections_events(api, runtime, tenant):
    a = await _accept(api, tenant.a, SUBJECT_TASK)
    b = await _accept(api, tenant.b, PHONE_TASK)
    await drain(runtime)
    body = await _events(api, tenant.headers())
    assert {e["job_id"] for e in body["webhook_events"]} == {a["job_id"], b["job_id"]}
    assert body["pagination"]["total_count"] == 2


async def test_an_access_token_limits_events_to_its_connection(api, runtime, tenant):
    a = await _accept(api, tenant.a, SUBJECT_TASK)
    b = await _accept(api, tenant.b, PHONE_TASK)
    await drain(runtime)
    only_a = await _events(api, tenant.a)
    assert [e["job_id"] for e in only_a["webhook_events"]] == [a["job_id"]]
    assert only_a["pagination"]["total_count"] == 1
    only_b = await _events(api, tenant.b)
    assert [e["job_id"] for e in only_b["webhook_events"]] == [b["job_id"]]


async def test_another_clients_events_never_appear(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    mine = await _accept(api, tenant.a, SUBJECT_TASK)
    theirs = await _accept(api, other.a, SUBJECT_TASK)
    await drain(runtime)
    for headers in (tenant.headers(), tenant.a, tenant.b):
        body = await _events(api, headers)
        assert theirs["job_id"] not in {e["job_id"] for e in body["webhook_events"]}
        filtered = await _events(api, headers, f"?job_id={theirs['job_id']}")
        assert filtered["webhook_events"] == []
        assert filtered["pagination"]["total_count"] == 0
    mine_seen = (await _events(api, tenant.headers()))["webhook_events"]
    assert [e["job_id"] for e in mine_seen] == [mine["job_id"]]
    theirs_seen = (await _events(api, other.headers()))["webhook_events"]
    assert [e["job_id"] for e in theirs_seen] == [theirs["job_id"]]


async def test_a_job_of_the_other_connection_is_not_visible_through_this_token(api, runtime, tenant):
    b = await _accept(api, tenant.b, PHONE_TASK)
    await drain(runtime)
    body = await _events(api, tenant.a, f"?job_id={b['job_id']}")
    assert body["webhook_events"] == []


# --- filters, sort, pages ---------------------------------------------------------------------------


async def test_job_id_filters_to_that_jobs_event(api, runtime, tenant):
    first = await _accept(api, tenant.a, SUBJECT_TASK)
    second = await _accept(api, tenant.a, SUBJECT_TASK)
    await drain(runtime)
    body = await _events(api, tenant.headers(), f"?job_id={second['job_id']}")
    assert [e["job_id"] for e in body["webhook_events"]] == [second["job_id"]]
    assert body["webhook_events"][0]["data"]["task_id"] == second["task_id"]
    assert first["job_id"] != second["job_id"]


async def test_event_type_filters_by_type(api, runtime, tenant):
    created = await _accept(api, tenant.a, SUBJECT_TASK)
    failed = await _accept(api, tenant.a, {**SUBJECT_TASK, "patient_mrn": "MRN-2000"})
    await drain(runtime)
    only_failed = await _events(api, tenant.a, "?event_type=task.failed")
    assert [e["job_id"] for e in only_failed["webhook_events"]] == [failed["job_id"]]
    only_created = await _events(api, tenant.a, "?event_type=task.created")
    assert [e["job_id"] for e in only_created["webhook_events"]] == [created["job_id"]]
    none = await _events(api, tenant.a, "?event_type=login_required")
    assert none["webhook_events"] == []


async def _three_events_a_second_apart(api, runtime, tenant, clock):
    jobs = []
    for _ in range(3):
        jobs.append((await _accept(api, tenant.a, SUBJECT_TASK))["job_id"])
        await drain(runtime)
        clock.advance(1)
    return jobs


async def test_events_are_newest_first_by_default(api, runtime, tenant, clock):
    jobs = await _three_events_a_second_apart(api, runtime, tenant, clock)
    body = await _events(api, tenant.a)
    assert [e["job_id"] for e in body["webhook_events"]] == list(reversed(jobs))
    explicit = await _events(api, tenant.a, "?sort=-created_at")
    assert [e["job_id"] for e in explicit["webhook_events"]] == list(reversed(jobs))


async def test_sort_created_at_lists_oldest_first(api, runtime, tenant, clock):
    jobs = await _three_events_a_second_apart(api, runtime, tenant, clock)
    body = await _events(api, tenant.a, "?sort=created_at")
    assert [e["job_id"] for e in body["webhook_events"]] == jobs
    created = [parse_iso_utc(e["created"]) for e in body["webhook_events"]]
    assert created == sorted(created)


async def test_events_are_paginated(api, runtime, tenant, clock):
    jobs = await _three_events_a_second_apart(api, runtime, tenant, clock)
    pages = [await _events(api, tenant.a, f"?sort=created_at&page_size=2&page={n}") for n in (1, 2, 3)]
    assert [[e["job_id"] for e in p["webhook_events"]] for p in pages] == [jobs[:2], jobs[2:], []]
    assert [p["pagination"] for p in pages] == [_pagination(n, 2, 3, 2) for n in (1, 2, 3)]


async def test_filters_and_paging_combine(api, runtime, tenant, clock):
    jobs = await _three_events_a_second_apart(api, runtime, tenant, clock)
    body = await _events(api, tenant.headers(), f"?job_id={jobs[1]}&event_type=task.created&page_size=1")
    assert [e["job_id"] for e in body["webhook_events"]] == [jobs[1]]
    assert body["pagination"] == _pagination(1, 1, 1, 1)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("page=0", "page"),
        ("page=x", "page"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("sort=newest", "sort"),
        ("job_id=" + "j" * 65, "job_id"),
        ("job_id=", "job_id"),
        ("event_type=" + "t" * 65, "event_type"),
        ("event_type=bogus", "event_type"),
        ("event_type=", "event_type"),
        ("event_type=appointment.created", "event_type"),  # a Cobalt type that no task ever makes
        ("page=1&page=2", "page"),
    ],
)
async def test_bad_query_parameters_are_400_naming_the_parameter(api, tenant, query, name):
    answer = await api.get(f"/v1/webhook-events?{query}", headers=tenant.headers())
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False
    assert body["error"] == "invalid_parameter"
    assert body["message"].startswith(f"Invalid parameter {name}: ")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(name, "invalid_query")]


async def test_sort_names_its_allowed_values(api, tenant):
    answer = await api.get("/v1/webhook-events?sort=newest", headers=tenant.headers())
    expected = "Invalid parameter sort: Input should be 'created_at' or '-created_at'."
    assert answer.json()["message"] == expected


async def test_event_type_names_every_type_there_is(api, tenant):
    answer = await api.get("/v1/webhook-events?event_type=bogus", headers=tenant.headers())
    expected = (
        "Invalid parameter event_type: Input should be "
        "'task.created', 'task.failed', 'task.unknown' or 'login_required'."
    )
    assert answer.json()["message"] == expected


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=failed", ["status"]),  # Cobalt's older name for delivery_status
        ("cursor=abc&limit=10", ["cursor", "limit"]),
        ("status=pending&page=1", ["status"]),
        ("JOB_ID=job_1", ["JOB_ID"]),
    ],
)
async def test_a_parameter_the_route_does_not_take_is_400_naming_it(api, tenant, query, names):
    answer = await api.get(f"/v1/webhook-events?{query}", headers=tenant.headers())
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_parameter"
    takes = (
        "this route takes job_id, event_type, delivery_status, start_date, end_date, page, page_size, sort"
    )
    assert body["message"] == f"Unexpected query parameter: {', '.join(names)} ({takes})."
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(n, "unexpected_query") for n in names]


async def test_a_bad_query_without_credentials_is_401_first(api):
    answer = await api.get("/v1/webhook-events?status=failed")
    assert answer.status_code == 401


@pytest.mark.parametrize("page", ["999999999999999999", "99999999999999999999"])
async def test_a_page_number_too_large_for_the_database_is_400_naming_page(runtime, tenant, page):
    async with server_client(runtime) as client:
        answer = await client.get(f"/v1/webhook-events?page={page}", headers=tenant.headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["message"].startswith("Invalid parameter page: ")


async def test_a_job_id_filter_with_a_nul_character_finds_nothing(runtime, tenant):
    async with server_client(runtime) as client:
        answer = await client.get("/v1/webhook-events?job_id=job%00x", headers=tenant.headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["webhook_events"] == []
