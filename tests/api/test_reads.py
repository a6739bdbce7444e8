"""GET /v1/tasks/{task_id} and GET /v1/jobs/{job_id}: before and after the job runs, failures, retries, and
tenancy (another client's or connection's ids are 404, never data)."""

import pytest

from tests.api.helpers import expire_login, not_found, parse_iso_utc, server_client
from tests.conftest import PHONE_TASK, SUBJECT_TASK, drain, make_tenant

TASK_KEYS = {
    "task_id", "job_id", "status", "subject", "description", "patient_mrn", "assignee_user_id",
    "phone_call_type_id", "notify_list", "emr_task_id", "failure_reason", "reasons", "created", "updated",
}  # fmt: skip
JOB_KEYS = {
    "job_id", "kind", "task_id", "state", "attempts", "max_attempts", "next_attempt_at",
    "last_error_code", "last_error", "created", "updated", "finished",
}  # fmt: skip


async def _accept(api, headers, body):
    answer = await api.post("/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def _task(api, headers, task_id):
    answer = await api.get(f"/v1/tasks/{task_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    return answer.json()["task"]


async def _job(api, headers, job_id):
    answer = await api.get(f"/v1/jobs/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    return answer.json()["job"]


# --- tasks ------------------------------------------------------------------------------------------


async def test_a_task_reads_back_as_processing_with_its_request_before_the_job_runs(api, tenant, clock):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "notify_list": ["usr_1003"]})
    task = await _task(api, tenant.a, accepted["task_id"])
    assert set(task) == TASK_KEYS
    assert {k: v for k, v in task.items() if k not in ("created", "updated")} == {
        "task_id": accepted["task_id"],
        "job_id": accepted["job_id"],
        "status": "processing",
        "subject": "Follow-up appointment needed",
        "description": "Review recent lab results.",
        "patient_mrn": "MRN-1001",
        "assignee_user_id": "usr_1001",
        "phone_call_type_id": None,
        "notify_list": ["usr_1003"],
        "emr_task_id": None,
        "failure_reason": None,
        "reasons": [],
    }
    assert parse_iso_utc(task["created"]) == parse_iso_utc(task["updated"])
    assert abs((parse_iso_utc(task["created"]) - clock.now).total_seconds()) < 0.001


async def test_a_task_is_created_with_the_emr_task_id_after_the_job_runs(api, runtime, tenant, clock):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    clock.advance(5)
    await drain(runtime)
    task = await _task(api, tenant.a, accepted["task_id"])
    assert task["status"] == "created"
    assert task["emr_task_id"].startswith("emrtask_")
    assert task["failure_reason"] is None
    assert task["reasons"] == []
    assert (parse_iso_utc(task["updated"]) - parse_iso_utc(task["created"])).total_seconds() == 5
    emr = (await api.get(f"/v1/sandbox/emr-tasks?marker={accepted['task_id']}", headers=tenant.a)).json()
    assert [t["emr_task_id"] for t in emr["emr_tasks"]] == [task["emr_task_id"]]


async def test_a_phone_call_task_is_created_with_its_call_type_and_notify_list(api, runtime, tenant):
    accepted = await _accept(api, tenant.b, PHONE_TASK)
    await drain(runtime)
    task = await _task(api, tenant.b, accepted["task_id"])
    assert task["status"] == "created"
    assert task["subject"] is None
    assert task["assignee_user_id"] is None
    assert task["phone_call_type_id"] == "pct_01"
    assert task["notify_list"] == ["usr_1003"]
    assert task["emr_task_id"]


async def test_an_unknown_mrn_fails_the_task_with_patient_not_found(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "patient_mrn": "MRN-9999"})
    await drain(runtime)
    task = await _task(api, tenant.a, accepted["task_id"])
    description = "Patient not found for MRN MRN-9999. Please check the patient MRN and try again."
    assert task["status"] == "failed"
    assert task["emr_task_id"] is None
    assert task["reasons"] == [{"code": "PATIENT_NOT_FOUND", "description": description}]
    assert task["failure_reason"] == description
    job = await _job(api, tenant.a, accepted["job_id"])
    assert job["state"] == "failed"
    assert job["last_error_code"] == "PATIENT_NOT_FOUND"


async def test_an_mrn_shared_by_two_patients_fails_with_patient_ambiguous(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "patient_mrn": "MRN-2000"})
    await drain(runtime)
    task = await _task(api, tenant.a, accepted["task_id"])
    description = "2 patients share MRN MRN-2000. Please resolve the duplicate in the EMR."
    assert task["status"] == "failed"
    assert task["reasons"] == [{"code": "PATIENT_AMBIGUOUS", "description": description}]
    assert task["failure_reason"] == description
    emr = (await api.get(f"/v1/sandbox/emr-tasks?marker={accepted['task_id']}", headers=tenant.a)).json()
    assert emr["emr_tasks"] == []


async def test_a_task_accepted_before_the_login_expired_fails_with_login_required(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    await expire_login(runtime, tenant.connection_a)
    await drain(runtime)
    # The connection itself is refused now (403); the client's events still tell the outcome.
    query = f"/v1/webhook-events?job_id={accepted['job_id']}"
    [event] = (await api.get(query, headers=tenant.headers())).json()["webhook_events"]
    assert event["type"] == "task.failed"
    assert [r["code"] for r in event["data"]["reasons"]] == ["LOGIN_REQUIRED"]


# --- jobs -------------------------------------------------------------------------------------------


async def test_a_job_reads_back_as_queued_before_it_runs(api, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    job = await _job(api, tenant.a, accepted["job_id"])
    assert set(job) == JOB_KEYS
    assert job["job_id"] == accepted["job_id"]
    assert job["task_id"] == accepted["task_id"]
    assert job["kind"] == "create_task"
    assert job["state"] == "queued"
    assert job["attempts"] == 0
    assert job["max_attempts"] == 8
    assert job["next_attempt_at"] == job["created"]
    parse_iso_utc(job["next_attempt_at"])
    assert job["last_error_code"] is None
    assert job["finished"] is None


async def test_a_job_reads_back_as_succeeded_after_one_attempt(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    assert await drain(runtime) == 1
    job = await _job(api, tenant.a, accepted["job_id"])
    assert job["state"] == "succeeded"
    assert job["attempts"] == 1
    assert job["next_attempt_at"] is None
    assert job["last_error_code"] is None
    parse_iso_utc(job["finished"])


async def test_a_job_after_a_transient_emr_failure_is_queued_with_its_next_attempt_and_error(
    api, runtime, clock
):
    flaky = await make_tenant(runtime, "flaky", transient_failure_rate=1.0)
    accepted = await _accept(api, flaky.a, SUBJECT_TASK)
    assert await drain(runtime) == 1  # the retry is not due yet on the fake clock
    job = await _job(api, flaky.a, accepted["job_id"])
    assert job["state"] == "queued"
    assert job["attempts"] == 1
    assert job["last_error_code"] == "EMR_UNAVAILABLE"
    assert parse_iso_utc(job["next_attempt_at"]) > clock.now
    assert (await _task(api, flaky.a, accepted["task_id"]))["status"] == "processing"


async def test_a_lost_emr_reply_is_settled_by_lookup_without_a_second_emr_task(api, runtime, clock):
    lossy = await make_tenant(runtime, "lossy", unknown_rate=1.0)
    accepted = await _accept(api, lossy.a, SUBJECT_TASK)
    await drain(runtime)
    job = await _job(api, lossy.a, accepted["job_id"])
    assert (job["state"], job["last_error_code"]) == ("queued", "OUTCOME_UNKNOWN")
    clock.advance(1)
    await drain(runtime)
    job = await _job(api, lossy.a, accepted["job_id"])
    assert (job["state"], job["attempts"]) == ("succeeded", 2)
    task = await _task(api, lossy.a, accepted["task_id"])
    emr = (await api.get(f"/v1/sandbox/emr-tasks?marker={accepted['task_id']}", headers=lossy.a)).json()
    assert [t["emr_task_id"] for t in emr["emr_tasks"]] == [task["emr_task_id"]]


# --- not found and tenancy --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "what"), [("tasks", "Task"), ("jobs", "Job")])
async def test_an_unknown_id_is_404(api, tenant, kind, what):
    answer = await api.get(f"/v1/{kind}/{kind[:-1]}_01doesnotexist", headers=tenant.a)
    assert answer.status_code == 404
    assert answer.json() == not_found(what)


@pytest.mark.parametrize(("kind", "what"), [("tasks", "Task"), ("jobs", "Job")])
async def test_another_clients_id_is_404_like_an_unknown_id(api, runtime, tenant, kind, what):
    other = await make_tenant(runtime, "other")
    accepted = await _accept(api, other.a, SUBJECT_TASK)
    await drain(runtime)
    the_id = accepted["task_id" if kind == "tasks" else "job_id"]
    for headers in (tenant.a, tenant.b):
        answer = await api.get(f"/v1/{kind}/{the_id}", headers=headers)
        assert answer.status_code == 404
        assert answer.json() == not_found(what)
    assert (await api.get(f"/v1/{kind}/{the_id}", headers=other.a)).status_code == 200


@pytest.mark.parametrize(("kind", "what"), [("tasks", "Task"), ("jobs", "Job")])
@pytest.mark.parametrize("drained", [False, True], ids=["queued", "finished"])
async def test_another_connection_of_the_same_client_gets_404(api, runtime, tenant, kind, what, drained):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    if drained:
        await drain(runtime)
    the_id = accepted["task_id" if kind == "tasks" else "job_id"]
    answer = await api.get(f"/v1/{kind}/{the_id}", headers=tenant.b)
    assert answer.status_code == 404
    assert answer.json() == not_found(what)


async def test_a_job_id_is_not_a_task_id(api, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    assert (await api.get(f"/v1/tasks/{accepted['job_id']}", headers=tenant.a)).status_code == 404
    assert (await api.get(f"/v1/jobs/{accepted['task_id']}", headers=tenant.a)).status_code == 404


@pytest.mark.parametrize(("kind", "what"), [("tasks", "Task"), ("jobs", "Job")])
async def test_a_very_long_id_is_404(api, tenant, kind, what):
    answer = await api.get(f"/v1/{kind}/{'x' * 2000}", headers=tenant.a)
    assert answer.status_code == 404
    assert answer.json() == not_found(what)


@pytest.mark.parametrize(("kind", "what"), [("tasks", "Task"), ("jobs", "Job")])
async def test_an_id_with_a_nul_character_is_404(runtime, tenant, kind, what):
    async with server_client(runtime) as client:
        answer = await client.get(f"/v1/{kind}/x%00y", headers=tenant.a)
    assert answer.status_code == 404, answer.text
    assert answer.json() == not_found(what)
