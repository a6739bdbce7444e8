"""Each EMR family through the whole service: `emrtasks serve` as a process, a connection made with the
CLI and pointed at the vendor's fake on loopback, tasks over real HTTP, outcomes read back."""

import httpx
import pytest

from tests.contract import harness
from tests.contract.cases import all_cases
from tests.e2e.conftest import wait_for_task

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
CASES = all_cases()


def _body(case: harness.Case, **changes: object) -> dict[str, object]:
    request = case.request
    body = {
        "description": request.description,
        "patient_mrn": request.patient_mrn,
        "subject": request.subject,
        "assignee_user_id": request.assignee_user_id,
        "phone_call_type_id": request.phone_call_type_id,
        "notify_list": list(request.notify_list) or None,
    }
    return {k: v for k, v in {**body, **changes}.items() if v is not None}


@pytest.mark.parametrize("case", CASES, ids=[c.emr for c in CASES])
def test_a_task_reaches_the_emr_and_its_outcome_comes_back(case, service):
    fake = case.make_fake()
    with harness.serve_fake(fake) as emr_url:
        service.start()
        if "signer" in case.extra:  # SMART Backend Services: the deployment's key, registered by JWKS URL
            service.cli("keys", "create")
            fake.register_jwks(f"{service.url}/.well-known/jwks.json")
        headers = service.connect(case.emr, case.config(emr_url), name=f"e2e-{case.emr}")
        with httpx.Client(base_url=service.url, timeout=30) as http:
            rules = http.get("/v1/tasks/requirements", headers=headers).json()["requirements"]
            assert rules["emr"] == case.emr
            for field in rules["required"]:
                refused = http.post("/v1/tasks", json=_body(case, **{field: None}), headers=headers)
                assert (refused.status_code, refused.json()["message"]) == (
                    400,
                    f"Missing required field: {field}",
                )
            created = http.post("/v1/tasks", json=_body(case), headers=headers).json()
            failed = http.post("/v1/tasks", json=_body(case, patient_mrn="MRN-9999"), headers=headers).json()
            done, missing = (
                wait_for_task(http, headers, created["task_id"]),
                wait_for_task(http, headers, failed["task_id"]),
            )
            events = http.get(
                "/v1/webhook-events", params={"job_id": created["job_id"]}, headers=headers
            ).json()
    assert done["status"] == "created", done
    assert done["emr_task_id"]
    assert len(fake.created) == 1
    assert missing["status"] == "failed"
    assert [r["code"] for r in missing["reasons"]] == ["PATIENT_NOT_FOUND"]
    [event] = events["webhook_events"]
    assert (event["type"], event["data"]["emr_task_id"]) == ("task.created", done["emr_task_id"])


def test_a_drchrono_note_that_fails_is_added_on_the_retry_to_the_one_task(service):
    from tests.contract.cases.drchrono import CASE

    fake = CASE.make_fake()
    fake.failing_notes = [503]  # the task is written, its note is not
    with harness.serve_fake(fake) as emr_url:
        service.start()
        headers = service.connect(CASE.emr, CASE.config(emr_url), name="e2e-drchrono-note")
        with httpx.Client(base_url=service.url, timeout=30) as http:
            created = http.post("/v1/tasks", json=_body(CASE), headers=headers).json()
            done = wait_for_task(http, headers, created["task_id"])
    assert done["status"] == "created", done
    [task] = fake.created
    assert done["emr_task_id"] == str(task["id"])
    [note] = fake.notes_of(task["id"])
    assert note["text"].startswith(CASE.request.description)
    assert fake.spec_violations == []
