"""SMART Backend Services through the real processes: `keys create` with the CLI, a `fhir` connection
with `auth: smart_backend`, and a token endpoint on loopback that verifies each assertion against the
running service's GET /.well-known/jwks.json before the task is written."""

import httpx
import pytest

from tests.contract import harness
from tests.contract.cases.fhir import CASE
from tests.contract.fakes import smart
from tests.e2e.conftest import wait_for_task

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_a_smart_backend_fhir_task_is_created_with_a_token_from_our_jwks(service):
    service.start()
    key = service.cli("keys", "create", "--alg", "ES384")
    fake = smart.SmartFhir(f"{service.url}/.well-known/jwks.json")
    with harness.serve_fake(fake) as emr_url:
        headers = service.connect("fhir", smart.config(emr_url), name="e2e-smart")
        body = {
            "description": CASE.request.description,
            "patient_mrn": "MRN-1001",
            "subject": CASE.request.subject,
            "assignee_user_id": CASE.request.assignee_user_id,
        }
        with httpx.Client(base_url=service.url, timeout=30) as http:
            created = http.post("/v1/tasks", json=body, headers=headers).json()
            done = wait_for_task(http, headers, created["task_id"])
    assert fake.endpoint.refusals == []
    assert done["status"] == "created", done
    assert len(fake.created) == 1 and done["emr_task_id"] == fake.created[0]["id"]
    assert fake.endpoint.kids and set(fake.endpoint.kids) == {key["kid"]}
