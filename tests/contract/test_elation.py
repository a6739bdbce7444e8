"""Elation specifics: the exact requests the adapter sends, and a fake that enforces Elation's contract."""

import dataclasses
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from emrtasks.domain import directory, ids, outcomes
from emrtasks.emr import base, elation
from tests.contract import harness, openapi_check
from tests.contract.cases.elation import CASE
from tests.contract.fakes import elation as fake_elation

NOW = datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC)
PATIENT_ID = 140754786975745


@pytest.fixture
async def wired():
    fake = fake_elation.FakeElation()
    http = httpx.AsyncClient(transport=harness.FakeTransport(fake))
    adapter = _adapter(fake, http)
    yield adapter, fake, http
    await http.aclose()


def _adapter(fake, http, clock=lambda: NOW, **changes):
    config = base.with_defaults(elation.SETTINGS, {**CASE.config(harness.BASE_URL), **changes})
    assert elation.check_config(config) == []
    deps = base.AdapterDeps(sandbox_store=None, http=http, clock=clock)
    return elation.build(None, config, deps)


_patient = harness.patient


def _posts(fake):
    return [r for r in fake.api_requests() if r.method == "POST"]


async def test_a_task_is_posted_as_json_thread_with_the_assignee_and_notify_list_requiring_action(wired):
    adapter, fake, _ = wired
    outcome = await adapter.create_task(CASE.request, await _patient(adapter), marker="task_el_1")

    assert outcome == outcomes.Created(str(fake.created[0]["id"]))
    [sent] = _posts(fake)
    assert sent.url == f"{harness.BASE_URL}/api/2.0/message_threads/"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["authorization"] == "Bearer token-1"
    now = "2026-03-02T14:30:05Z"
    assert json.loads(sent.content) == {
        "patient": PATIENT_ID,
        "practice": fake_elation.PRACTICE,
        "document_date": now,
        "chart_date": now,
        "is_urgent": False,
        "messages": [
            {
                "body": "Refill request\n\n"
                "Patient asks for a refill of lisinopril 10 mg; pharmacy on file.\n\n"
                "Ref: task_el_1",
                "send_date": now,
                "sender": fake_elation.SENDER,
            }
        ],
        "members": [
            {"user": 131074, "status": "Requiring Action"},
            {"user": 262150, "status": "Requiring Action"},
            {"group": 851981, "status": "Requiring Action"},
            {"user": fake_elation.SENDER, "status": "Addressed"},
        ],
    }


async def test_the_thread_sends_only_fields_elations_message_thread_declares(wired):
    adapter, fake, _ = wired
    await adapter.create_task(CASE.request, await _patient(adapter), marker="task_el_f")
    schemas = openapi_check.load("elation/messaging.json")["components"]["schemas"]
    body = json.loads(_posts(fake)[0].content)
    assert set(body) <= set(schemas["MessageThread"]["properties"]), set(body)
    for message in body["messages"]:
        assert set(message) <= set(schemas["ThreadMessage"]["properties"])
    for member in body["members"]:
        assert set(member) <= set(schemas["ThreadMember"]["properties"])


async def test_a_thread_without_subject_starts_with_the_description_and_the_sender_is_not_doubled(wired):
    adapter, fake, _ = wired
    request = dataclasses.replace(
        CASE.request, subject=None, assignee_user_id=str(fake_elation.SENDER), notify_list=()
    )
    await adapter.create_task(request, await _patient(adapter), marker="task_el_2")
    body = json.loads(_posts(fake)[0].content)
    assert body["messages"][0]["body"] == f"{CASE.request.description}\n\nRef: task_el_2"
    assert body["members"] == [{"user": fake_elation.SENDER, "status": "Requiring Action"}]


async def test_the_token_is_asked_for_form_encoded_with_the_client_credentials_in_the_body(wired):
    adapter, fake, _ = wired
    await adapter.search_patients("MRN-1001")
    [token] = fake.token_requests()
    assert token.method == "POST"
    assert token.url == f"{harness.BASE_URL}/api/2.0/oauth2/token/"
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in token.headers
    assert parse_qs(token.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [fake_elation.CLIENT_ID],
        "client_secret": [fake_elation.CLIENT_SECRET],
    }


async def test_patients_are_searched_on_the_fhir_api_by_identifier_system_and_value(wired):
    adapter, fake, _ = wired
    [found] = await adapter.search_patients("MRN-1001")
    [sent] = fake.api_requests()
    assert sent.method == "GET"
    assert sent.url.path == "/fhir/r4/Patient"
    assert sent.url.params["identifier"] == f"{fake_elation.MRN_SYSTEM}|MRN-1001"
    assert sent.headers["authorization"] == "Bearer token-1"
    assert found == directory.Patient(str(PATIENT_ID), "MRN-1001", "Ava", "Thompson", "1984-03-12", "F", "")


async def test_by_default_the_mrn_is_the_elation_chart_id_read_directly(wired):
    _, fake, http = wired
    adapter = _adapter(fake, http, mrn_source="chart_id", fhir_base_url=None, mrn_system=None)
    [found] = await adapter.search_patients(str(PATIENT_ID))
    assert found.emr_patient_id == found.mrn == str(PATIENT_ID)
    assert fake.api_requests()[-1].url.path == f"/api/2.0/patients/{PATIENT_ID}/"
    assert await adapter.search_patients("140754786975799") == []  # Elation answers 404
    calls = len(fake.requests)
    assert await adapter.search_patients("MRN-1001") == []  # not a chart ID: nothing asked
    assert len(fake.requests) == calls


async def test_users_and_staff_groups_are_listed_across_pages_groups_prefixed(wired):
    adapter, fake, _ = wired
    users = {u.id: u for u in await adapter.list_users()}
    assert users["131074"] == directory.User("131074", "Dana Reyes", "provider")
    assert users["262150"].kind == "staff"
    assert users["group:851981"] == directory.User("group:851981", "Nursing pool", "group")
    assert len(users) == len(fake_elation.USERS) + len(fake_elation.GROUPS)
    assert await adapter.list_call_types() == []
    for sent in fake.api_requests():  # Elation's spec gives users no practice filter; staff groups one
        wanted = str(fake_elation.PRACTICE) if sent.url.path.endswith("/staff_groups/") else None
        assert sent.url.params.get("practice") == wanted, sent.url
    assert fake.spec_violations == []


async def test_users_of_another_practice_are_left_out(wired):
    adapter, fake, _ = wired
    fake.other_practice_users = {999001: ("Pat", "Elsewhere", "physician")}
    users = {u.id for u in await adapter.list_users()}
    assert "131074" in users and "999001" not in users


async def test_the_marker_is_found_by_its_ref_line_not_by_a_longer_marker(wired):
    adapter, fake, _ = wired
    patient = await _patient(adapter)
    for marker in ("task_el_10", "task_el_1", "task_el_100"):
        await adapter.create_task(CASE.request, patient, marker=marker)
    assert await adapter.find_task("task_el_1") == outcomes.Created(str(fake.created[1]["id"]))
    assert isinstance(await adapter.find_task("task_el_2"), outcomes.Absent)


async def test_the_lookup_starts_a_day_before_the_time_inside_our_task_id(wired):
    _, fake, http = wired
    adapter = _adapter(fake, http, clock=lambda: datetime.now(UTC))
    marker = ids.new_id("task")
    minted = ids.created_at(marker)
    assert minted is not None and abs((datetime.now(UTC) - minted).total_seconds()) < 5
    await adapter.find_task(marker)
    sent = fake.api_requests()[-1]
    assert sent.url.path == "/api/2.0/message_threads/"
    since = datetime.fromisoformat(sent.url.params["document_date__gte"].replace("Z", "+00:00"))
    assert 86_399 <= (minted - since).total_seconds() <= 86_401


async def test_a_marker_without_a_time_is_looked_up_over_the_last_eight_days(wired):
    adapter, fake, _ = wired
    await adapter.find_task("task_el_1")
    assert fake.api_requests()[-1].url.params["document_date__gte"] == "2026-02-22T14:30:05Z"


async def test_two_threads_with_one_marker_leave_the_outcome_unknown(wired):
    adapter, _, _ = wired
    patient = await _patient(adapter)
    for _ in range(2):
        await adapter.create_task(CASE.request, patient, marker="task_el_dup")
    assert isinstance(await adapter.find_task("task_el_dup"), outcomes.Unknown)


async def test_a_patient_elation_does_not_know_is_patient_not_found(wired):
    adapter, fake, _ = wired
    ghost = dataclasses.replace(await _patient(adapter), emr_patient_id="1")
    outcome = await adapter.create_task(CASE.request, ghost, marker="task_el_3")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.PATIENT_NOT_FOUND
    assert fake.created == []


async def test_an_assignee_that_is_not_an_elation_id_is_refused_without_calling(wired):
    adapter, fake, _ = wired
    patient = await _patient(adapter)
    request = dataclasses.replace(CASE.request, assignee_user_id="dr.reyes")
    outcome = await adapter.create_task(request, patient, marker="task_el_4")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.USER_NOT_FOUND
    assert _posts(fake) == []


def test_fhir_identifier_mode_needs_its_base_url_and_mrn_system():
    config = {**CASE.config(harness.BASE_URL), "fhir_base_url": None, "mrn_system": None}
    problems = elation.check_config(config)
    assert any("fhir_base_url" in p for p in problems) and any("mrn_system" in p for p in problems)
    assert "mrn_source must be chart_id or fhir_identifier" in elation.check_config(
        {**config, "mrn_source": "ssn"}
    )


# --- the fake enforces Elation's contract ---


def _valid_thread() -> dict:
    return {
        "patient": PATIENT_ID,
        "practice": fake_elation.PRACTICE,
        "document_date": "2026-03-02T14:30:05Z",
        "chart_date": "2026-03-02T14:30:05Z",
        "messages": [{"body": "hi", "send_date": "2026-03-02T14:30:05Z", "sender": fake_elation.SENDER}],
        "members": [{"user": 131074, "status": "Requiring Action"}],
    }


async def _post(fake, body=None, **kwargs):
    return await harness.post_to_fake(fake, "/api/2.0/message_threads/", json=body, **kwargs)


async def test_the_fake_accepts_a_complete_thread():
    fake = fake_elation.FakeElation()
    assert (await _post(fake, _valid_thread())).status_code == 201


@pytest.mark.parametrize("field", fake_elation.REQUIRED)
async def test_elations_spec_refuses_a_thread_missing_a_required_field_naming_it(field):
    fake = fake_elation.FakeElation()
    body = {k: v for k, v in _valid_thread().items() if k != field}
    answer = await _post(fake, body)
    assert answer.status_code == 400
    assert f"'{field}' is a required property" in answer.json()["spec_violations"][0]
    assert fake.created == []


@pytest.mark.parametrize("field", fake_elation.MESSAGE_REQUIRED)
async def test_elations_spec_refuses_a_message_missing_a_required_field_naming_it(field):
    fake = fake_elation.FakeElation()
    body = _valid_thread()
    del body["messages"][0][field]
    answer = await _post(fake, body)
    assert answer.status_code == 400
    assert f"messages.0: '{field}' is a required property" in answer.json()["spec_violations"][0]


@pytest.mark.parametrize(
    ("member", "named"),
    [
        ({"user": 131074, "status": "Open"}, "members.0.status"),  # the spec's enum
        ({"user": 131074}, "'status' is a required property"),  # the spec's required
        ({"status": "Requiring Action"}, "members"),  # the fake: a user or a group
        ({"user": 5, "status": "Addressed"}, "members"),  # the fake: an id Elation knows
    ],
)
async def test_a_bad_member_is_refused_naming_it(member, named):
    fake = fake_elation.FakeElation()
    answer = await _post(fake, {**_valid_thread(), "members": [member]})
    assert answer.status_code == 400 and named in answer.text
    assert fake.created == []


async def test_the_users_list_takes_no_practice_filter_in_elations_spec():
    fake = fake_elation.FakeElation()
    token = fake.issue_token()
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL) as http:
        headers = {"authorization": f"Bearer {token}"}
        refused = await http.get(
            "/api/2.0/users/", params={"practice": fake_elation.PRACTICE}, headers=headers
        )
        groups = await http.get("/api/2.0/staff_groups/", params={"practice": "65540,7"}, headers=headers)
    assert refused.status_code == 400 and "'practice' is not in the spec" in refused.text
    assert groups.status_code == 200  # staff groups do take it (an array, comma-separated)


async def test_the_fake_refuses_a_form_body_and_a_missing_token():
    fake = fake_elation.FakeElation()
    form = await _post(fake, data={"patient": str(PATIENT_ID)})
    assert form.status_code == 400 and "is not accepted (spec: application/json)" in form.text
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL) as http:
        answer = await http.post("/api/2.0/message_threads/", json=_valid_thread())
    assert answer.status_code == 401
    assert fake.created == []
