"""Healthie: the exact GraphQL requests the adapter sends, how it reads Healthie's answers (HTTP 200 with
`messages` or `errors`), and that the fake holds the adapter to Healthie's documented contract."""

import dataclasses
import json

import graphql
import httpx
import pytest
from graphql.execution.values import get_variable_values

from emrtasks.domain import directory, outcomes
from emrtasks.emr import healthie
from tests.contract import harness
from tests.contract.cases.healthie import CASE
from tests.contract.fakes import healthie as fake_healthie
from tests.contract.fakes.healthie import API_KEY, API_USER_ID, FakeHealthie

PATIENT = directory.Patient("1001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "Female", "555-0100")


wired = harness.wired_fixture(CASE)


async def _adapter_with(fake, **config):
    case = dataclasses.replace(CASE, config=lambda base_url: {**CASE.config(base_url), **config})
    return harness.build_adapter(case, fake)


def _body(request: httpx.Request) -> dict:
    return json.loads(request.content)


# --- every operation the adapter sends, against Healthie's own schema ---


async def test_every_operation_the_adapter_sends_is_valid_in_healthies_published_schema(wired):
    adapter, fake = wired
    await adapter.create_task(CASE.request, PATIENT, marker="task_s1")
    await adapter.search_patients("MRN-1001")
    await adapter.search_patients(None)
    await adapter.list_users()
    await adapter.find_task("task_s1")
    sent = [_body(r) for r in fake.api_requests()]
    assert {b["operationName"] for b in sent} == {
        "emrtasksCreateTask",
        "emrtasksPatients",
        "emrtasksMembers",
        "emrtasksFindTask",
    }
    for body in sent:  # checked here as well as by the fake: the document, then the variables
        document = graphql.parse(body["query"])
        assert graphql.validate(fake_healthie.schema(), document) == [], body["operationName"]
        [operation] = document.definitions
        assert isinstance(operation, graphql.OperationDefinitionNode)
        coerced = get_variable_values(
            fake_healthie.schema(), operation.variable_definitions, body["variables"]
        )
        assert isinstance(coerced, dict), (body["operationName"], coerced)
    assert fake.schema_errors == []


@pytest.mark.parametrize("query", [healthie.PATIENTS_QUERY, healthie.MEMBERS_QUERY, healthie.FIND_QUERY])
def test_a_full_page_of_each_list_query_stays_within_healthies_complexity_limit(query):
    document = graphql.parse(query)
    assert fake_healthie._limit_exceeded(document, {"first": healthie.PAGE_SIZE}) is None
    too_big = {"first": 50 * healthie.PAGE_SIZE}
    assert "exceeds max complexity of 2000" in str(fake_healthie._limit_exceeded(document, too_big))


async def test_a_query_healthie_refuses_before_running_it_is_rejected_not_unknown(wired, monkeypatch):
    adapter, fake = wired
    wrong = healthie.CREATE_MUTATION.replace("task { id }", "task { id title }")
    monkeypatch.setattr(healthie, "CREATE_MUTATION", wrong)
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_s2")
    # nothing ran (no `data` in the answer, GraphQL spec 7.1.2), so nothing can have been written
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.EMR_REJECTED, outcome
    assert "'title'" in outcome.description
    [refused] = fake.schema_errors
    assert refused.startswith("emrtasksCreateTask: Cannot query field 'title' on type 'Task'.")
    assert fake.created == []


@pytest.mark.parametrize(
    ("query", "variables", "said"),
    [
        (  # the offset pagination of Healthie's older versions
            "query q { users(offset: 0, page_size: 10) { id } }",
            {},
            "Unknown argument 'offset' on field 'Query.users'.",
        ),
        ("query q { users(first: 10) { id } }", {}, "Cannot query field 'id' on type 'UserConnection'."),
        (
            "query q($first: Int) { tasks(first: $first) { nodes { id title } } }",
            {"first": 10},
            "Cannot query field 'title' on type 'Task'.",
        ),
        (
            healthie.PATIENTS_QUERY,
            {"keywords": "MRN-1001", "first": "all"},
            "Variable '$first' got invalid value 'all'; Int cannot represent non-integer value: 'all'",
        ),
        (
            healthie.CREATE_MUTATION,
            {"input": {"content": "x", "title": "Refill"}},
            "Field 'title' is not defined by type 'createTaskInput'.",
        ),
        (
            healthie.FIND_QUERY,
            {"orderBy": "NEWEST"},
            "Value 'NEWEST' does not exist in 'TaskOrderKeys'",
        ),
    ],
    ids=["offset-pagination", "list-shape", "task-field", "variable-type", "input-field", "enum-value"],
)
async def test_the_fake_refuses_what_healthies_schema_refuses_and_names_it(query, variables, said):
    fake = FakeHealthie()
    answer = await _post(fake, {"query": query, "variables": variables})
    assert answer.status_code == 200
    assert "data" not in answer.json() or answer.json()["data"] is None
    assert any(said in e for e in fake.schema_errors), fake.schema_errors
    assert fake.created == []


async def test_the_fake_answers_only_what_was_selected_with_documented_sunset_warnings():
    fake = FakeHealthie()
    query = 'query { users(keywords: "Thompson", first: 5) { nodes { id dob } total_count } }'
    answer = (await _post(fake, {"query": query})).json()
    assert answer["data"] == {"users": {"nodes": [{"id": "1001", "dob": "1984-03-12"}], "total_count": 1}}
    [warning] = answer["extensions"]["warnings"]
    assert (warning["code"], warning["sunset_date"]) == ("API_VERSION_SUNSET_WARNING", "2027-01-31")
    too_deep = "query { user(id: 1) { " + "dietitian { " * 25 + "id" + " }" * 26 + " }"
    answer = (await _post(fake, {"query": too_deep})).json()
    assert answer["errors"][0]["message"] == "Query has depth of 27, which exceeds max depth of 25"


async def test_a_create_is_one_createTask_mutation_with_content_patient_assignees_and_the_marker(wired):
    adapter, fake = wired
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h1")
    assert outcome == outcomes.Created("9001")
    [sent] = fake.api_requests()
    assert (sent.method, str(sent.url)) == ("POST", "http://emr.test/graphql")
    assert sent.headers["authorization"] == f"Basic {API_KEY}"
    assert sent.headers["authorizationsource"] == "API"
    assert sent.headers["healthie-graphql-api-version"] == healthie.DEFAULT_API_VERSION
    assert sent.headers["content-type"] == "application/json"
    body = _body(sent)
    assert body["operationName"] == "emrtasksCreateTask"
    assert "createTask(input: $input)" in body["query"] and "messages { field message }" in body["query"]
    assert body["variables"] == {
        "input": {
            "content": "Refill request\n\nPatient asks for a refill of lisinopril 10 mg; pharmacy on file.",
            "client_id": "1001",
            "assignee_ids": ["501", "502"],  # the assignee first, then the notify list as co-assignees
            "metadata": '{"emrtasks_task_id":"task_h1"}',
        }
    }
    [task] = fake.created
    assert (task["client_id"], task["assignee_ids"], task["created_by_id"]) == (
        "1001",
        ["501", "502"],
        API_USER_ID,
    )
    assert json.loads(task["metadata"]) == {"emrtasks_task_id": "task_h1"}


async def test_without_subject_or_assignee_the_content_is_the_description_and_no_assignees_are_sent(wired):
    adapter, fake = wired
    request = dataclasses.replace(CASE.request, subject=None, assignee_user_id=None, notify_list=())
    assert isinstance(await adapter.create_task(request, PATIENT, marker="task_h2"), outcomes.Created)
    task_input = _body(fake.api_requests()[0])["variables"]["input"]
    assert task_input["content"] == CASE.request.description
    assert "assignee_ids" not in task_input
    assert fake.created[0]["assignee_ids"] == [API_USER_ID]  # Healthie assigns the key's user


async def test_patients_are_searched_by_keywords_and_kept_only_on_an_exact_record_identifier(wired):
    adapter, fake = wired
    found = await adapter.search_patients("MRN-1001")
    assert [(p.emr_patient_id, p.mrn) for p in found] == [("1001", "MRN-1001")]  # not MRN-10010
    assert found[0] == PATIENT
    [sent] = fake.api_requests()
    body = _body(sent)
    assert body["operationName"] == "emrtasksPatients"
    assert body["variables"] == {"keywords": "MRN-1001", "first": 100, "after": None}
    assert "users(keywords: $keywords, first: $first, after: $after)" in body["query"]


async def test_the_healthie_id_can_be_the_mrn_when_the_connection_says_so():
    fake = FakeHealthie()
    adapter, http = await _adapter_with(fake, mrn_field="id")
    assert [p.emr_patient_id for p in await adapter.search_patients("2001")] == ["2001"]
    await http.aclose()


async def test_an_api_key_vendor_never_asks_for_a_token_and_sends_the_shard_when_configured():
    fake = FakeHealthie()
    adapter, http = await _adapter_with(fake, authorization_shard="shard-7", api_version="2026-01-01")
    await adapter.list_users()
    await adapter.search_patients("MRN-2000")
    assert fake.token_requests() == []
    for sent in fake.api_requests():
        assert sent.headers["authorization"] == f"Basic {API_KEY}"
        assert sent.headers["authorizationshard"] == "shard-7"
        assert sent.headers["healthie-graphql-api-version"] == "2026-01-01"
    await http.aclose()


async def test_staff_come_from_organization_members_and_there_are_no_call_types(wired):
    adapter, fake = wired
    users = await adapter.list_users()
    assert directory.User("501", "Dana Reyes", "staff") in users
    assert _body(fake.api_requests()[0])["operationName"] == "emrtasksMembers"
    assert await adapter.list_call_types() == []
    assert "phone_call_type_id" in adapter.rules.unsupported


async def test_find_task_reads_the_key_users_newest_tasks_and_matches_the_marker_in_metadata(wired):
    adapter, fake = wired
    created = await adapter.create_task(CASE.request, PATIENT, marker="task_h3")
    before = len(fake.api_requests())
    assert await adapter.find_task("task_h3") == created
    assert await adapter.find_task("task_old") == outcomes.Created("8002")  # made by an earlier run
    assert await adapter.find_task("task_elsewhere") == outcomes.Absent()
    body = _body(fake.api_requests()[before])
    assert body["operationName"] == "emrtasksFindTask"
    assert body["variables"] == {
        "type": "all",
        "createdBySelf": True,
        "showHidden": True,
        "orderBy": "CREATED_DESC",
        "first": 100,
        "after": None,
    }


async def test_find_task_is_unknown_for_a_marker_beyond_its_window_or_held_twice(wired):
    adapter, fake = wired
    older = fake.existing[1]
    fake.existing += [
        fake._task(str(10_000 + i), "Bulk", "1001", ["501"], '{"emrtasks_task_id":"x"}') for i in range(500)
    ]
    beyond = await adapter.find_task("task_old")  # task 8002 is now the 501st newest
    assert isinstance(beyond, outcomes.Unknown) and "500 newest" in beyond.description
    fake.existing = [older, dict(older, id="8003")]
    assert isinstance(await adapter.find_task("task_old"), outcomes.Unknown)


async def test_messages_on_the_payload_with_http_200_are_refusals_by_field(wired):
    adapter, fake = wired
    unknown_patient = dataclasses.replace(PATIENT, emr_patient_id="424242")
    outcome = await adapter.create_task(CASE.request, unknown_patient, marker="task_h4")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.PATIENT_NOT_FOUND
    request = dataclasses.replace(CASE.request, notify_list=("999",))
    outcome = await adapter.create_task(request, PATIENT, marker="task_h5")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.USER_NOT_FOUND
    messages = {
        "data": {"createTask": {"task": None, "messages": [{"field": "due_date", "message": "invalid"}]}}
    }
    fake.fail_next(200, body=json.dumps(messages).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h6")
    assert outcome == outcomes.Rejected(outcomes.EMR_REJECTED, "Healthie refused the task: due_date: invalid")
    assert fake.created == []


@pytest.mark.parametrize(
    "error",
    [  # the bodies of https://docs.gethealthie.com/guides/api-concepts/versioning, after enforcement
        {
            "message": "API version '2025-10-15' is no longer supported. "
            "Please upgrade to a supported version.",
            "extensions": {
                "code": "UNSUPPORTED_API_VERSION",
                "requested_version": "2025-10-15",
                "minimum_supported_version": "2026-07-01",
                "latest_version": "2026-07-01",
            },
        },
        {
            "message": "Missing required header: Healthie-GraphQL-API-Version. All API requests must include "
            "a version header.",
            "extensions": {"code": "MISSING_API_VERSION_HEADER", "latest_version": "2026-07-01"},
        },
    ],
    ids=["sunset-version", "missing-header"],
)
async def test_healthies_documented_version_errors_are_refusals_naming_the_setting(wired, error):
    adapter, fake = wired
    fake.fail_next(200, body=json.dumps({"errors": [error]}).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_v1")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.EMR_REJECTED
    assert "api_version" in outcome.description


async def test_a_page_over_healthies_complexity_limit_is_a_refusal_not_a_retry(wired, monkeypatch):
    adapter, _fake = wired
    monkeypatch.setattr(healthie, "PAGE_SIZE", 1000)
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.search_patients("MRN-1001")
    assert caught.value.outcome.code == outcomes.EMR_REJECTED
    assert "exceeds max complexity of 2000" in caught.value.outcome.description


async def test_a_rate_limit_error_inside_http_200_is_retried_later(wired):
    adapter, fake = wired
    limited = {"errors": [{"message": "Too many requests.", "extensions": {"code": "TOO_MANY_REQUESTS"}}]}
    fake.fail_next(200, body=json.dumps(limited).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h7")
    assert isinstance(outcome, outcomes.RetryLater) and outcome.code == outcomes.EMR_RATE_LIMITED
    fake.fail_next(200, body=json.dumps(limited).encode())
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.search_patients("MRN-1001")
    assert caught.value.outcome.code == outcomes.EMR_RATE_LIMITED


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "Internal server error"}, outcomes.Unknown),  # may have written before failing
        (
            {"message": "Query has complexity of 2274, which exceeds max complexity of 2000"},
            outcomes.Rejected,
        ),
        ({"message": "Field 'x' doesn't exist", "extensions": {"code": "undefinedField"}}, outcomes.Rejected),
    ],
)
async def test_graphql_errors_on_a_create_are_unknown_unless_the_query_never_ran(wired, error, expected):
    adapter, fake = wired
    fake.fail_next(200, body=json.dumps({"data": {"createTask": None}, "errors": [error]}).encode())
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h8")
    assert isinstance(outcome, expected), outcome


async def test_an_unsupported_api_version_is_rejected_and_names_the_setting():
    fake = FakeHealthie()
    adapter, http = await _adapter_with(fake, api_version="2026-06-15")  # not a Healthie release
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h9")
    assert isinstance(outcome, outcomes.Rejected) and "api_version" in outcome.description
    assert fake.created == []
    await http.aclose()


async def test_a_refused_key_is_login_required_after_a_single_request(wired):
    adapter, fake = wired
    fake.expire_tokens()
    outcome = await adapter.create_task(CASE.request, PATIENT, marker="task_h10")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("2025-11-30", "api_version must be 2026-01-01 or later"),
        ("2024-06-01", "api_version must be 2026-01-01 or later"),
        ("latest", "api_version must be a Healthie release date (YYYY-MM-DD)"),
    ],
)
def test_an_api_version_without_the_adapters_queries_is_refused_naming_the_setting(version, problem):
    problems = healthie.check_config({"api_key": "k", "api_version": version})
    assert any(p.startswith(problem) for p in problems), problems
    assert healthie.check_config({"api_key": "k", "api_version": "2026-01-01"}) == []
    assert healthie.check_config({"api_key": "k", "api_version": "2026-07-01"}) == []


def test_a_connection_must_name_a_known_mrn_field_and_an_https_host():
    problems = healthie.check_config(
        {"api_key": "k", "mrn_field": "email", "base_url": "api.gethealthie.com"}
    )
    assert "mrn_field must be one of: record_identifier, id" in problems
    assert "base_url must start with https://" in problems
    assert healthie.check_config({"api_key": "k"}) == []


# --- the fake enforces Healthie's contract ---


async def _post(fake: FakeHealthie, body: object, **headers: str) -> httpx.Response:
    sent = {
        "content-type": "application/json",
        "authorization": f"Basic {API_KEY}",
        "authorizationsource": "API",
        "healthie-graphql-api-version": "2026-01-01",
        **headers,
    }
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://emr.test"
    ) as client:
        return await client.post("/graphql", content=content, headers={k: v for k, v in sent.items() if v})


def _create(task_input: dict) -> dict:
    return {"query": healthie.CREATE_MUTATION, "variables": {"input": task_input}}


async def test_the_fake_creates_a_valid_task():
    fake = FakeHealthie()
    answer = await _post(fake, _create({"content": "Call back", "client_id": "1001"}))
    assert answer.json()["data"]["createTask"]["task"] == {"id": "9001"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "said"),
    [
        (_create({"client_id": "1001"}), {}, 200, "can't be blank"),  # content
        ({"variables": {}}, {}, 200, "No query string was present"),
        (_create({"content": "x"}), {"authorization": ""}, 401, "API key is invalid"),
        (_create({"content": "x"}), {"authorizationsource": ""}, 401, "API key is invalid"),
        (b"query=createTask", {"content-type": "application/x-www-form-urlencoded"}, 400, "application/json"),
        (_create({"content": "x", "metadata": json.dumps({"k": "v" * 2000})}), {}, 200, "2000 characters"),
    ],
    ids=["content", "query", "authorization", "authorization-source", "form-body", "long-metadata"],
)
async def test_the_fake_refuses_what_healthie_refuses(body, headers, status, said):
    fake = FakeHealthie()
    answer = await _post(fake, body, **headers)
    assert answer.status_code == status
    assert said in answer.text
    assert fake.created == []


async def test_the_fake_warns_without_a_version_header_and_refuses_an_unknown_version():
    fake = FakeHealthie()
    answer = await _post(fake, _create({"content": "x"}), **{"healthie-graphql-api-version": ""})
    assert answer.json()["extensions"]["warnings"][0]["code"] == "MISSING_API_VERSION_HEADER"
    answer = await _post(fake, _create({"content": "x"}), **{"healthie-graphql-api-version": "2025-06-15"})
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_API_VERSION"
