"""The athenahealth adapter's exact requests, its reading of athena's answers, and the fake's contract."""

import base64
import dataclasses
import json
from urllib.parse import parse_qs

import httpx
import pytest

from emrtasks.domain import directory, outcomes
from emrtasks.emr import athenahealth
from emrtasks.service import create_task
from tests.contract import harness
from tests.contract.cases.athenahealth import CASE
from tests.contract.fakes import athenahealth as fake_athena

PATIENT = directory.Patient("1001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "F", "5550100")


wired = harness.wired_fixture(CASE)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}


async def test_the_token_request_is_client_credentials_with_a_basic_header_and_athenas_scope(wired):
    adapter, fake = wired
    await adapter.search_patients("MRN-1001")
    [token] = fake.token_requests()
    assert (token.method, str(token.url)) == ("POST", "http://emr.test/oauth2/v1/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    basic = base64.b64encode(f"{fake_athena.CLIENT_ID}:{fake_athena.CLIENT_SECRET}".encode()).decode()
    assert token.headers["authorization"] == f"Basic {basic}"
    assert _form(token) == {"grant_type": "client_credentials", "scope": "athena/service/Athenanet.MDP.*"}


async def test_patients_are_found_by_the_practices_mrn_custom_field(wired):
    adapter, fake = wired
    [patient] = await adapter.search_patients("MRN-1001")
    [search] = fake.api_requests()
    assert (search.method, search.url.path) == ("GET", "/v1/195900/patients/customfields/41/MRN-1001")
    assert search.headers["authorization"] == "Bearer token-1"
    assert patient == directory.Patient("1001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "F", "5550100")


async def test_an_mrn_is_sent_as_one_escaped_path_segment(wired):
    adapter, fake = wired
    assert await adapter.search_patients("A/B 7") == []
    assert fake.api_requests()[0].url.raw_path == b"/v1/195900/patients/customfields/41/A%2FB%207"


async def test_without_a_custom_field_the_mrn_is_the_athena_patient_id():
    fake = fake_athena.FakeAthena()
    case = dataclasses.replace(
        CASE, config=lambda url: {k: v for k, v in CASE.config(url).items() if k != "mrn_custom_field_id"}
    )
    adapter, http = harness.build_adapter(case, fake)
    [patient] = await adapter.search_patients("1001")
    assert (patient.emr_patient_id, patient.mrn) == ("1001", "1001")
    assert fake.api_requests()[0].url.path == "/v1/195900/patients/1001"
    assert await adapter.search_patients("9999") == []  # athena answers 404
    assert await adapter.search_patients("MRN-1001") == []  # not an athena id: nothing is asked
    assert len(fake.api_requests()) == 2
    await http.aclose()


async def test_the_create_posts_a_form_encoded_patient_case_with_every_field(wired):
    adapter, fake = wired
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_01abc")
    [create] = fake.api_requests()
    assert (create.method, create.url.path) == ("POST", "/v1/195900/patients/1001/documents/patientcase")
    assert create.headers["content-type"] == "application/x-www-form-urlencoded"
    assert create.headers["authorization"] == "Bearer token-1"
    assert _form(create) == {
        "departmentid": "1",
        "documentsource": "PATIENT",
        "documentsubclass": "CLINICALQUESTION",
        "providerid": "71",
        "internalnote": f"{CASE.request.description}\n\nemrtasks ref: task_01abc",
        "subject": "Medication question",
    }
    assert outcome == outcomes.Created("491696")
    assert fake.created[0]["patientcaseid"] == 491696


async def test_a_case_without_a_subject_sends_none(wired):
    adapter, fake = wired
    request = dataclasses.replace(CASE.request, subject=None)
    assert isinstance(await adapter.create_task(request, PATIENT, marker="task_1"), outcomes.Created)
    assert "subject" not in _form(fake.api_requests()[0])


async def test_the_longest_description_with_a_real_marker_fits_athenas_internalnote(wired):
    adapter, fake = wired
    limit = athenahealth.RULES.rule("description").max_length
    request = dataclasses.replace(CASE.request, description="x" * limit)
    outcome = await adapter.create_task(request, PATIENT, marker="task_01jd7v4xqh8k2m3n4p5q6r7s8t")
    assert isinstance(outcome, outcomes.Created), outcome
    assert len(fake.created[0]["internalnote"]) <= 4000


async def test_providers_are_the_users_and_the_subclasses_are_the_call_types(wired):
    adapter, fake = wired
    users = await adapter.list_users()
    assert (users[0].id, users[0].name, users[0].kind) == ("71", "Reyes, Dana", "provider")
    assert fake.api_requests()[0].url.path == "/v1/195900/providers"
    assert [c.id for c in await adapter.list_call_types()] == list(fake_athena.SUBCLASSES)


async def test_an_unknown_patient_is_patient_not_found(wired):
    adapter, _fake = wired
    stranger = dataclasses.replace(PATIENT, emr_patient_id="5555")
    outcome = await adapter.create_task(CASE.request, stranger, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.PATIENT_NOT_FOUND


async def test_missing_fields_are_emr_rejected_even_when_the_provider_is_missing(wired):
    adapter, fake = wired
    body = {"error": "Additional fields are required.", "missingfields": ["providerid"]}
    fake.fail_next(400, body=json.dumps(body).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.EMR_REJECTED
    assert "providerid" in outcome.description


async def test_a_403_naming_a_rate_limit_is_retried_later_and_any_other_403_is_login_required(wired):
    adapter, fake = wired
    fake.fail_next(403, {"retry-after": "60"}, b'{"error": "User Rate Limit Exceeded"}')
    limited = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert limited == outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, limited.description, 60.0)
    fake.fail_next(403, body=b'{"error": "Not authorized."}')
    refused = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert isinstance(refused, outcomes.Rejected) and refused.code == outcomes.LOGIN_REQUIRED


async def test_a_success_false_answer_is_rejected(wired):
    adapter, fake = wired
    fake.fail_next(200, body=b'{"success": false, "errormessage": "Case could not be created."}')
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_1")
    assert isinstance(outcome, outcomes.Rejected) and "could not be created" in outcome.description


async def test_the_rules_say_a_case_is_found_by_marker_in_the_patients_chart():
    described = athenahealth.RULES.describe()
    assert described["finds_by_marker"] is True
    assert described["required"] == ["description", "patient_mrn", "assignee_user_id", "phone_call_type_id"]
    assert described["unsupported"] == ["notify_list"]


async def test_a_case_whose_reply_was_lost_is_found_in_the_patients_chart_and_not_written_twice(wired):
    adapter, fake = wired
    fake.timeout_after_next_write = True
    lost = await adapter.create_task(CASE.request, PATIENT, marker="task_01lost")
    assert isinstance(lost, outcomes.Unknown)
    job_task = harness.task_row("task_01lost", "MRN-1001")
    found = await create_task.find_written(adapter, job_task)
    assert found == outcomes.Created(str(fake.created[0]["patientcaseid"]))
    assert len(fake.created) == 1
    listing = fake.api_requests()[-1]
    assert (listing.method, listing.url.path) == ("GET", "/v1/195900/patients/1001/documents/patientcase")
    assert dict(listing.url.params) == {"departmentid": "1", "showdeleted": "true"}
    never = await create_task.find_written(adapter, harness.task_row("task_01never", "MRN-1001"))
    assert never == outcomes.Absent()


async def test_the_marker_must_be_a_whole_line_of_the_internal_note(wired):
    adapter, _fake = wired
    await adapter.create_task(CASE.request, PATIENT, marker="task_10")
    assert await adapter.find_task_in_chart("task_1", PATIENT) == outcomes.Absent()
    assert await adapter.find_task_in_chart("task_10", PATIENT) == outcomes.Created("491696")


async def test_a_deleted_case_still_counts_as_written_and_two_cases_with_one_marker_are_unknown(wired):
    adapter, fake = wired
    await adapter.create_task(CASE.request, PATIENT, marker="task_d")
    fake.delete_case(491696)
    assert await adapter.find_task_in_chart("task_d", PATIENT) == outcomes.Created("491696")
    await adapter.create_task(CASE.request, PATIENT, marker="task_d")
    assert isinstance(await adapter.find_task_in_chart("task_d", PATIENT), outcomes.Unknown)


async def test_a_lookup_without_the_patient_is_unknown_and_asks_nothing(wired):
    adapter, fake = wired
    found = await adapter.find_task("task_01abc")
    assert isinstance(found, outcomes.Unknown) and "emrtasks ref: task_01abc" in found.description
    assert fake.requests == []


async def test_a_lookup_reads_every_page_of_the_patients_cases(wired):
    adapter, fake = wired
    fake.page_size = 2
    for n in range(5):
        await adapter.create_task(CASE.request, PATIENT, marker=f"task_p{n}")
    assert await adapter.find_task_in_chart("task_p4", PATIENT) == outcomes.Created("491700")
    assert len([r for r in fake.api_requests() if r.method == "GET"]) == 3


async def test_a_case_list_that_is_not_a_list_is_unknown_never_absent(wired):
    adapter, fake = wired
    fake.fail_next(200, {"content-type": "text/html"}, b"<html>maintenance</html>")
    assert isinstance(await adapter.find_task_in_chart("task_x", PATIENT), outcomes.Unknown)
    fake.fail_next(200, body=b'{"patientcases": "none"}')
    assert isinstance(await adapter.find_task_in_chart("task_x", PATIENT), outcomes.Unknown)


async def test_a_lookup_for_a_patient_who_is_gone_is_unknown(wired):
    adapter, _fake = wired
    found = await create_task.find_written(adapter, harness.task_row("task_x", "MRN-9999"))
    assert isinstance(found, outcomes.Unknown)


def test_subclasses_and_sources_must_be_ones_athena_documents():
    config = {**CASE.config(harness.BASE_URL), "subclasses": [{"code": "PRESCRIPTIONRENEWAL"}]}
    assert any("PRESCRIPTIONRENEWAL" in p for p in athenahealth.check_config(config))
    source = {**CASE.config(harness.BASE_URL), "documentsource": "FAX"}
    assert any("FAX" in p for p in athenahealth.check_config(source))
    assert athenahealth.check_config(CASE.config(harness.BASE_URL)) == []


def test_subclasses_must_be_code_entries_and_not_empty():
    config = {**CASE.config(harness.BASE_URL), "subclasses": ["CLINICALQUESTION"]}
    assert any("subclasses entries" in p for p in athenahealth.check_config(config))
    empty = {**config, "subclasses": []}
    assert any("at least one" in p for p in athenahealth.check_config(empty))


# --- the fake enforces athena's contract ---


async def _post_case(form: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    path = "/v1/195900/patients/1001/documents/patientcase"
    return await harness.post_to_fake(fake_athena.FakeAthena(), path, data=form, **kwargs)


VALID = {"departmentid": "1", "documentsource": "PATIENT", "documentsubclass": "BILLING", "providerid": "72"}


@pytest.mark.parametrize("missing", fake_athena.REQUIRED)
async def test_the_fake_refuses_a_case_missing_a_required_field(missing):
    answer = await _post_case({k: v for k, v in VALID.items() if k != missing})
    assert answer.status_code == 400
    assert answer.json()["missingfields"] == [missing]


async def test_the_fake_refuses_json_bodies_long_notes_unknown_providers_and_foreign_tokens():
    assert (await _post_case(json=VALID)).json()["missingfields"] == list(fake_athena.REQUIRED)
    too_long = await _post_case({**VALID, "internalnote": "x" * 4001})
    assert too_long.status_code == 400
    assert (await _post_case({**VALID, "providerid": "999"})).json() == {"error": "Invalid provider ID."}
    stranger = await _post_case(VALID, token="forged")
    assert (stranger.status_code, stranger.text) == (401, "Developer Inactive")
    assert (await _post_case(VALID)).json() == {"success": True, "patientcaseid": 491696}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"documentsubclass": "PRESCRIPTIONRENEWAL"}, "documentsubclass"),
        ({"documentsource": "FAX"}, "documentsource"),
        ({"departmentid": "one"}, "departmentid"),
        ({"autoclose": "maybe"}, "autoclose"),
        ({"note": "a field athena does not have"}, "note"),
    ],
)
async def test_the_fake_refuses_a_case_athenas_spec_refuses_naming_the_field(change, field):
    answer = await _post_case({**VALID, **change})
    assert answer.status_code == 400
    assert answer.json()["fields"] == [field], answer.json()


async def test_the_fake_refuses_a_case_list_without_a_department_or_with_a_patient_id_not_a_number():
    fake = fake_athena.FakeAthena()
    fake.tokens.add("t")
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url="http://emr.test") as http:
        headers = {"authorization": "Bearer t"}
        no_department = await http.get("/v1/195900/patients/1001/documents/patientcase", headers=headers)
        assert (no_department.status_code, no_department.json()["fields"]) == (400, ["departmentid"])
        not_a_number = await http.get(
            "/v1/195900/patients/abc/documents/patientcase", params={"departmentid": "1"}, headers=headers
        )
        assert (not_a_number.status_code, not_a_number.json()["fields"]) == (400, ["patientid"])
