"""The FHIR adapter's exact requests, and the fake's R4 rules."""

import json

from emrtasks.domain import outcomes
from tests.contract import harness
from tests.contract.cases.fhir import CASE
from tests.contract.fakes.fhir import MRN_SYSTEM, FakeFhir


async def _wired():
    fake = FakeFhir()
    adapter, http = harness.build_adapter(CASE, fake)
    return adapter, fake, http


async def test_the_token_request_is_client_credentials_with_basic_auth():
    adapter, fake, http = await _wired()
    await adapter.search_patients("MRN-1001")
    [token] = fake.token_requests()
    assert (token.method, str(token.url)) == ("POST", "http://emr.test/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token.headers["authorization"].startswith("Basic ")
    assert token.content == b"grant_type=client_credentials"
    await http.aclose()


async def test_patients_are_searched_by_the_connections_mrn_system():
    adapter, fake, http = await _wired()
    await adapter.search_patients("MRN-1001")
    [search] = fake.api_requests()
    assert search.method == "GET"
    assert search.url.path == "/Patient"
    assert search.url.params["identifier"] == f"{MRN_SYSTEM}|MRN-1001"
    assert search.headers["authorization"] == "Bearer token-1"
    await http.aclose()


async def test_the_create_is_a_conditional_task_post_carrying_every_field():
    adapter, fake, http = await _wired()
    [patient] = await adapter.search_patients("MRN-1001")
    outcome = await adapter.create_task(CASE.request, patient, marker="task_01abc")
    create = fake.api_requests()[-1]
    assert (create.method, create.url.path) == ("POST", "/Task")
    assert create.headers["content-type"] == "application/fhir+json"
    assert create.headers["if-none-exist"] == "identifier=urn:emrtasks:task|task_01abc"
    sent = json.loads(create.content)
    assert sent["identifier"] == [{"system": "urn:emrtasks:task", "value": "task_01abc"}]
    assert (sent["status"], sent["intent"]) == ("requested", "order")
    assert sent["description"] == CASE.request.description
    assert sent["for"] == {"reference": "Patient/p1"}
    assert sent["code"] == {
        "text": "Lab follow-up",
        "coding": [{"system": "urn:emrtasks:task-type", "code": "refill", "display": "Prescription refill"}],
    }
    assert sent["owner"] == {"reference": "Practitioner/prac-1"}
    assert sent["restriction"] == {"recipient": [{"reference": "Practitioner/prac-2"}]}
    assert outcome == outcomes.Created(fake.created[0]["id"])
    await http.aclose()


async def test_a_repeated_create_with_the_same_marker_returns_the_first_task():
    adapter, fake, http = await _wired()
    [patient] = await adapter.search_patients("MRN-1001")
    first = await adapter.create_task(CASE.request, patient, marker="task_same")
    again = await adapter.create_task(CASE.request, patient, marker="task_same")
    assert first == again
    assert len(fake.created) == 1
    await http.aclose()


async def test_the_fake_refuses_a_task_without_status_or_intent():
    fake = FakeFhir()
    fake.tokens.add("t")
    async with harness.httpx.AsyncClient(
        transport=harness.FakeTransport(fake), base_url="http://emr.test"
    ) as http:
        for missing in ("status", "intent"):
            task = {"resourceType": "Task", "status": "requested", "intent": "order"}
            del task[missing]
            answer = await http.post(
                "/Task",
                json=task,
                headers={"authorization": "Bearer t", "content-type": "application/fhir+json"},
            )
            assert answer.status_code == 400
            assert missing in answer.json()["issue"][0]["diagnostics"]


async def test_the_fake_validates_each_task_with_the_fhir_model_naming_the_field():
    fake = FakeFhir()
    fake.tokens.add("t")
    valid = {"resourceType": "Task", "status": "requested", "intent": "order"}
    broken = [
        ({**valid, "authoredOn": "yesterday"}, "Task.authoredOn"),
        (
            {**valid, "restriction": {"recipient": {"reference": "Practitioner/prac-1"}}},
            "Task.restriction.recipient",
        ),
        ({**valid, "subject_line": "x"}, "Task.subject_line"),
        ({**valid, "code": {"coding": [{"code": 7}]}}, "Task.code.coding.0.code"),
    ]
    async with harness.httpx.AsyncClient(
        transport=harness.FakeTransport(fake), base_url="http://emr.test"
    ) as http:
        headers = {"authorization": "Bearer t", "content-type": "application/fhir+json"}
        for task, field in broken:
            answer = await http.post("/Task", json=task, headers=headers)
            assert answer.status_code == 400, task
            assert answer.json()["issue"][0]["diagnostics"].startswith(field), answer.text
        assert (await http.post("/Task", json=valid, headers=headers)).status_code == 201
