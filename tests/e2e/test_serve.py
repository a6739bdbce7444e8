"""`emrtasks serve` as a real process on loopback, configured with the real CLI, driven over real HTTP."""

import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}


def _tenant(service, **knobs):
    return service.connect("sandbox", knobs, rules="subject_assignee", reference_id="clinic-1")


def _wait_terminal(http, headers, task_ids, timeout=60.0):
    deadline = time.monotonic() + timeout
    pending, done = set(task_ids), {}
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            answer = http.get(f"/v1/tasks/{task_id}", headers=headers)
            if answer.status_code == 200 and answer.json()["task"]["status"] != "processing":
                done[task_id] = answer.json()["task"]
                pending.discard(task_id)
        time.sleep(0.05)
    assert not pending, f"{len(pending)} task(s) never finished"
    return done


def test_the_contract_over_real_http(service):
    service.start()
    headers = _tenant(service)
    with httpx.Client(base_url=service.url, timeout=10) as http:
        accepted = http.post("/v1/tasks", json=TASK, headers=headers)
        refused = http.post("/v1/tasks", json={**TASK, "subject": " "}, headers=headers)
        unknown_user = http.post("/v1/tasks", json={**TASK, "assignee_user_id": "nobody"}, headers=headers)
        bad_client = http.post("/v1/tasks", json=TASK, headers={**headers, "client_secret": "cs_wrong"})
        too_big = http.post(
            "/v1/tasks",
            content=b'{"description": "' + b"x" * 1_100_000 + b'"}',
            headers={**headers, "content-type": "application/json"},
        )
        assert accepted.status_code == 202
        assert accepted.json()["message"] == "Task processing. A webhook event will be sent upon completion."
        assert (refused.status_code, refused.json()["message"]) == (400, "Missing required field: subject")
        assert (unknown_user.status_code, unknown_user.json()["message"]) == (400, "User not found.")
        assert (bad_client.status_code, bad_client.json()["message"]) == (401, "Invalid client credentials.")
        assert too_big.status_code == 413
        task_id, job_id = accepted.json()["task_id"], accepted.json()["job_id"]
        task = _wait_terminal(http, headers, [task_id])[task_id]
        assert task["status"] == "created"
        events = http.get("/v1/webhook-events", params={"job_id": job_id}, headers=headers).json()
        [event] = events["webhook_events"]
        assert (event["type"], event["access_token_reference_id"]) == ("task.created", "clinic-1")
        assert event["data"]["emr_task_id"] == task["emr_task_id"]
        held = http.get("/v1/sandbox/emr-tasks", params={"marker": task_id}, headers=headers).json()
        assert [t["emr_task_id"] for t in held["emr_tasks"]] == [task["emr_task_id"]]
        assert http.get("/readyz").status_code == 200
    assert service.stop() == 0


def test_sigkill_mid_flight_loses_no_task_and_writes_none_twice(service):
    service.start()
    headers = _tenant(service, latency_ms=150, unknown_rate=0.2)
    with httpx.Client(base_url=service.url, timeout=10) as http:
        accepted = []
        for i in range(60):
            answer = http.post("/v1/tasks", json={**TASK, "subject": f"task {i}"}, headers=headers)
            assert answer.status_code == 202
            accepted.append(answer.json()["task_id"])
        time.sleep(0.2)  # some writes are now in flight in the sandbox EMR
        statuses = [http.get(f"/v1/tasks/{t}", headers=headers).json()["task"]["status"] for t in accepted]
        service.kill()
        assert "processing" in statuses  # the kill really lands mid-flight
        service.start()
        done = _wait_terminal(http, headers, accepted)
        held = http.get("/v1/sandbox/emr-tasks", headers=headers).json()["emr_tasks"]
    per_marker: dict[str, list[str]] = {}
    for item in held:
        per_marker.setdefault(item["marker"], []).append(item["emr_task_id"])
    assert set(done) == set(accepted)
    for task_id, task in done.items():
        assert task["status"] == "created", task
        assert per_marker.get(task_id) == [task["emr_task_id"]]
    assert set(per_marker) == set(accepted)
