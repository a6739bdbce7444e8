"""SMART Backend Services through the real processes: `keys create` with the CLI, a `fhir` connection
with `auth: smart_backend`, and a token endpoint on loopback that verifies each assertion against the
running service's GET /.well-known/jwks.json before the task is written."""

import json
import time

import httpx
import pytest

from tests.contract import harness
from tests.contract.cases.fhir import CASE
from tests.contract.fakes import smart

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def _wait(http: httpx.Client, headers: dict[str, str], task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = http.get(f"/v1/tasks/{task_id}", headers=headers).json()["task"]
        if task["status"] != "processing":
            return task
        time.sleep(0.05)
    raise AssertionError("the task never finished")


def test_a_smart_backend_fhir_task_is_created_with_a_token_from_our_jwks(service):
    service.start()
    key = service.cli("keys", "create", "--alg", "ES384")
    fake = smart.SmartFhir(f"{service.url}/.well-known/jwks.json")
    with harness.serve_fake(fake) as emr_url:
        client = service.cli("clients", "create", "--name", "e2e-smart")
        connection = service.cli(
            "connections",
            "create",
            "--client-id",
            client["client_id"],
            "--emr",
            "fhir",
            "--config",
            json.dumps(smart.config(emr_url)),
        )
        headers = {**client, "access_token": connection["access_token"]}
        body = {
            "description": CASE.request.description,
            "patient_mrn": "MRN-1001",
            "subject": CASE.request.subject,
            "assignee_user_id": CASE.request.assignee_user_id,
        }
        with httpx.Client(base_url=service.url, timeout=30) as http:
            created = http.post("/v1/tasks", json=body, headers=headers).json()
            done = _wait(http, headers, created["task_id"])
    assert fake.endpoint.refusals == []
    assert done["status"] == "created", done
    assert len(fake.created) == 1 and done["emr_task_id"] == fake.created[0]["id"]
    assert fake.endpoint.kids and set(fake.endpoint.kids) == {key["kid"]}
