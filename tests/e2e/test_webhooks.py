"""Webhooks from a real `emrtasks serve` to a real receiver on loopback, verified with standardwebhooks."""

import json
import time

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.receiver import Receiver

# Delivery is the same code on both databases (PostgreSQL is covered by the integration tests and
# the chaos run); one database keeps the suite quick.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

TASK = {
    "subject": "Follow-up appointment needed",
    "description": "Review recent lab results.",
    "assignee_user_id": "usr_1001",
    "patient_mrn": "MRN-1001",
}


@pytest.fixture
def hooks(service):
    service.env.update(
        {
            "EMRTASKS_WEBHOOK_ALLOW_INSECURE": "true",
            "EMRTASKS_WEBHOOK_ALLOW_PRIVATE": "true",
            "EMRTASKS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2,0.5,0.5,1,1,1,1,1,1,1,1,1",
            "EMRTASKS_WEBHOOK_SECRET_OVERLAP_SECONDS": "3600",
            "EMRTASKS_WORKER_POLL_SECONDS": "0.1",
        }
    )
    service.start()
    client = service.cli("clients", "create", "--name", "hooks")
    connection = service.cli(
        "connections", "create", "--client-id", client["client_id"], "--reference-id", "clinic-9"
    )
    headers = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    with httpx.Client(base_url=service.url, timeout=10) as http:
        yield http, headers, {**headers, "access_token": connection["access_token"]}


def _register(http, headers, receiver_or_url):
    url = receiver_or_url if isinstance(receiver_or_url, str) else receiver_or_url.url
    answer = http.post("/v1/webhook", json={"webhook_url": url}, headers=headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["webhook_secret"].startswith("whsec_") and body["webhook_id"].startswith("wh_")
    if not isinstance(receiver_or_url, str):
        receiver_or_url.secrets.append(body["webhook_secret"])
    return body


def test_created_and_failed_outcomes_arrive_verified_after_two_500s(hooks):
    http, client_headers, headers = hooks
    with Receiver() as receiver:
        receiver.answers = [500, 500]
        _register(http, client_headers, receiver)
        created = http.post("/v1/tasks", json=TASK, headers=headers).json()
        receiver.wait_for(lambda r: len(r.verified()) == 1)
        failed = http.post("/v1/tasks", json={**TASK, "patient_mrn": "MRN-0404"}, headers=headers).json()
        receiver.wait_for(lambda r: len(r.verified()) == 2)
    first, second = receiver.verified()
    assert [d.status for d in receiver.deliveries[:3]] == [500, 500, 200]
    assert [d.headers["webhook-attempt"] for d in receiver.deliveries[:3]] == ["1", "2", "3"]
    assert len({d.body for d in receiver.deliveries[:3]}) == 1
    assert all(d.cobalt_verified_by == receiver.secrets for d in receiver.deliveries)
    assert (first.event["type"], first.event["data"]["task_id"]) == ("task.created", created["task_id"])
    assert first.event["access_token_reference_id"] == "clinic-9"
    assert (second.event["type"], second.event["data"]["task_id"]) == ("task.failed", failed["task_id"])
    assert second.event["data"]["reasons"][0]["code"] == "PATIENT_NOT_FOUND"


def test_a_410_disables_the_endpoint(hooks):
    http, client_headers, headers = hooks
    with Receiver() as receiver:
        receiver.answers = [410]
        webhook = _register(http, client_headers, receiver)
        http.post("/v1/tasks", json=TASK, headers=headers)
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            [listed] = http.get("/v1/webhook", headers=client_headers).json()["webhook_urls"]
            if listed["status"] == "disabled":
                break
            time.sleep(0.05)
        assert (listed["id"], listed["status"]) == (webhook["webhook_id"], "disabled")
        assert "410" in listed["disabled_reason"]


def test_after_rotation_both_secrets_verify_a_delivery_of_the_served_process(hooks):
    """Where the overlap ends is tested on an injected clock (tests/integration/test_webhook_delivery.py);
    a separate process keeps real time, so here only the overlap's start is checked."""
    http, client_headers, headers = hooks
    with Receiver() as receiver:
        webhook = _register(http, client_headers, receiver)
        old = receiver.secrets[0]
        new = http.post(f"/v1/webhook/{webhook['webhook_id']}/rotate-secret", headers=client_headers).json()
        receiver.secrets.append(new["webhook"]["secret"])
        http.post("/v1/tasks", json=TASK, headers=headers)
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
    [during] = receiver.deliveries
    assert sorted(during.verified_by) == sorted([old, new["webhook"]["secret"]])
    # Cobalt's single header is signed with the newest secret from the moment of the rotation.
    assert during.cobalt_verified_by == [new["webhook"]["secret"]]


def test_recover_resends_every_event_since_a_time(hooks):
    http, client_headers, headers = hooks
    with Receiver() as receiver:
        webhook = _register(http, client_headers, receiver)
        for _ in range(3):
            http.post("/v1/tasks", json=TASK, headers=headers)
        receiver.wait_for(lambda r: len(r.verified()) == 3)
        since = http.get("/v1/webhook-events", params={"sort": "created_at"}, headers=headers).json()
        second_created = since["webhook_events"][1]["created"]
        answer = http.post(
            f"/v1/webhook/{webhook['webhook_id']}/recover",
            json={"since": second_created},
            headers=client_headers,
        )
        assert (answer.status_code, answer.json()["scheduled"]) == (202, 2)
        receiver.wait_for(lambda r: len(r.verified()) == 5)
    resent = [d.headers["webhook-id"] for d in receiver.verified()[3:]]
    assert sorted(resent) == sorted(e["id"] for e in since["webhook_events"][1:])


def test_a_receiver_down_while_100_tasks_complete_gets_all_100_once_back(hooks):
    http, client_headers, headers = hooks
    port = free_port()
    receiver = Receiver(port=port)  # bound but not answering: its port refuses until started
    receiver._server.server_close()
    secret = _register(http, client_headers, f"http://127.0.0.1:{port}/hook")["webhook_secret"]
    task_ids = [http.post("/v1/tasks", json=TASK, headers=headers).json()["task_id"] for _ in range(100)]

    def all_tried(page):
        found = page["webhook_events"]
        return len(found) == 100 and all(e["attempts"] for e in found)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = http.get("/v1/webhook-events", params={"page_size": 100}, headers=headers).json()
        if all_tried(page):
            break
        time.sleep(0.1)
    # Every event was written and tried while the receiver was down; none got through.
    assert all_tried(page)
    assert all(e["delivery_status"] == "pending" for e in page["webhook_events"])
    assert all(a["status_code"] is None for e in page["webhook_events"] for a in e["attempts"])
    with Receiver(port=port) as receiver:
        receiver.secrets.append(secret)
        receiver.wait_for(lambda r: len({d.event["data"]["task_id"] for d in r.verified()}) == 100, 60)
    delivered = {d.event["data"]["task_id"] for d in receiver.verified()}
    assert delivered == set(task_ids)
    assert all(json.loads(d.body)["type"] == "task.created" for d in receiver.verified())
