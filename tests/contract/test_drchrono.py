"""DrChrono specifics: the exact requests the adapter sends, refresh-token rotation, and a fake that
enforces DrChrono's task contract."""

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from emrtasks.domain import directory, outcomes, tasks
from emrtasks.emr import base, drchrono
from tests.contract import harness
from tests.contract.cases.drchrono import CASE
from tests.contract.fakes import drchrono as fake_drchrono

NOW = datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC)


@pytest.fixture
async def wired():
    fake = fake_drchrono.FakeDrChrono()
    http = httpx.AsyncClient(transport=harness.FakeTransport(fake))
    yield _adapter(fake, http), fake, http
    await http.aclose()


def _adapter(fake, http, **changes):
    config = base.with_defaults(drchrono.SETTINGS, {**CASE.config(harness.BASE_URL), **changes})
    assert drchrono.check_config(config) == []
    connection = tasks.Connection("conn_drchrono", "ci_drchrono", "drchrono", "drchrono", None, "active", {})
    return drchrono.build(
        connection, config, base.AdapterDeps(sandbox_store=None, http=http, clock=lambda: NOW)
    )


_patient = harness.patient


def _posts(fake):
    return [r for r in fake.api_requests() if r.method == "POST"]


async def test_a_task_is_posted_as_json_with_title_status_category_assignee_and_patient(wired):
    adapter, fake, _ = wired
    outcome = await adapter.create_task(CASE.request, await _patient(adapter), marker="task_dc_1")

    assert outcome == outcomes.Created(str(fake.created[0]["id"]))
    sent = _posts(fake)[0]
    assert sent.url == f"{harness.BASE_URL}/api/tasks"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["authorization"] == "Bearer token-1"
    assert json.loads(sent.content) == {
        "title": "Refill request [task_dc_1]",
        "status": fake_drchrono.OPEN_STATUS,
        "category": 401,
        "assignee_user": "201",
        "associated_items": [{"type": "Patient", "value": 100001}],
    }


async def test_a_group_assignee_goes_in_assignee_group_and_the_title_falls_back_to_the_description(wired):
    _, fake, http = wired
    adapter = _adapter(fake, http, default_category_id=402)
    request = dataclasses.replace(
        CASE.request, subject=None, assignee_user_id="group:301", phone_call_type_id=None
    )
    assert isinstance(
        await adapter.create_task(request, await _patient(adapter), "task_dc_2"), outcomes.Created
    )
    body = json.loads(_posts(fake)[0].content)
    assert body["assignee_group"] == 301 and "assignee_user" not in body
    assert body["category"] == 402
    assert body["title"] == f"{CASE.request.description} [task_dc_2]"


async def test_patients_are_searched_by_chart_id(wired):
    adapter, fake, _ = wired
    [found] = await adapter.search_patients("MRN-1001")
    [sent] = fake.api_requests()
    assert (sent.method, sent.url.path, dict(sent.url.params)) == (
        "GET",
        "/api/patients",
        {"chart_id": "MRN-1001"},
    )
    assert found == directory.Patient(
        "100001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "F", "(555) 010-0100"
    )


async def test_the_first_call_refreshes_form_encoded_with_the_client_credentials_in_the_body(wired):
    adapter, fake, _ = wired
    await adapter.search_patients("MRN-1001")
    [token] = fake.token_requests()
    assert token.url == f"{harness.BASE_URL}/o/token/"
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [fake_drchrono.FIRST_REFRESH_TOKEN],
        "client_id": [fake_drchrono.CLIENT_ID],
        "client_secret": [fake_drchrono.CLIENT_SECRET],
    }


async def test_a_refused_token_is_refreshed_with_the_rotated_refresh_token(wired):
    adapter, fake, _ = wired
    await adapter.search_patients("MRN-1001")
    fake.expire_tokens()
    assert len(await adapter.search_patients("MRN-1001")) == 1
    second = fake.token_requests()[1]
    assert parse_qs(second.content.decode())["refresh_token"] == ["refresh-1"]
    assert adapter.token.credentials() == {"access_token": "token-2", "refresh_token": "refresh-2"}


async def test_a_linked_access_token_is_used_until_refused(wired):
    _, fake, http = wired
    fake.tokens.add("linked-access")
    adapter = _adapter(fake, http, access_token="linked-access")
    await adapter.search_patients("MRN-1001")
    assert fake.token_requests() == []
    assert fake.api_requests()[0].headers["authorization"] == "Bearer linked-access"


async def test_concurrent_calls_refresh_once(wired):
    adapter, fake, _ = wired
    await asyncio.gather(*(adapter.search_patients("MRN-1001") for _ in range(5)))
    assert len(fake.token_requests()) == 1


async def test_users_groups_and_unarchived_task_categories_are_listed_across_pages(wired):
    adapter, _, _ = wired
    users = {u.id: u for u in await adapter.list_users()}
    assert users["201"] == directory.User("201", "drreyes", "provider")
    assert users["202"].kind == "staff"
    assert users["group:301"] == directory.User("group:301", "Nurses", "group")
    call_types = await adapter.list_call_types()
    assert [c.id for c in call_types] == ["401", "402", "403"]


async def test_the_marker_is_found_by_its_title_suffix_not_by_a_longer_marker(wired):
    adapter, fake, _ = wired
    patient = await _patient(adapter)
    for marker in ("task_dc_10", "task_dc_1", "task_dc_100"):
        await adapter.create_task(CASE.request, patient, marker=marker)
    assert await adapter.find_task("task_dc_1") == outcomes.Created(str(fake.created[1]["id"]))
    lists = [r for r in fake.api_requests() if r.method == "GET" and r.url.path == "/api/tasks"]
    assert lists[-1].url.params["since"] == "2026-02-22"  # no time in this marker: 8 days
    assert isinstance(await adapter.find_task("task_dc_2"), outcomes.Absent)


async def test_unknown_patient_and_category_are_refused_with_their_reasons(wired):
    adapter, fake, _ = wired
    patient = await _patient(adapter)
    ghost = dataclasses.replace(patient, emr_patient_id="5")
    unknown_patient = await adapter.create_task(CASE.request, ghost, "task_dc_3")
    bad_category = dataclasses.replace(CASE.request, phone_call_type_id="999")
    unknown_category = await adapter.create_task(bad_category, patient, "task_dc_4")
    assert (
        isinstance(unknown_patient, outcomes.Rejected) and unknown_patient.code == outcomes.PATIENT_NOT_FOUND
    )
    assert isinstance(unknown_category, outcomes.Rejected) and unknown_category.code == outcomes.EMR_REJECTED
    assert fake.created == []


async def test_a_429_without_retry_after_is_retried_later(wired):
    adapter, fake, _ = wired
    patient = await _patient(adapter)
    fake.fail_next(429, body=b'{"detail": "Request was throttled."}')
    outcome = await adapter.create_task(CASE.request, patient, "task_dc_5")
    assert outcome == outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, outcome.description, None)


class _NoteFaults(harness.FakeTransport):
    """The fake behind a transport that fails the next note write: with a status, or by losing the
    reply after DrChrono wrote the note."""

    def __init__(self, fake, status=None, lose_reply=False):
        super().__init__(fake)
        self.status, self.lose_reply = status, lose_reply

    async def handle_async_request(self, request):
        if request.method == "POST" and request.url.path == "/api/task_notes":
            if self.status is not None:
                status, self.status = self.status, None
                await request.aread()
                self.fake.requests.append(request)
                return httpx.Response(status, json={"detail": "Server Error"}, request=request)
            if self.lose_reply:
                self.lose_reply = False
                await super().handle_async_request(request)
                raise httpx.ReadTimeout("the reply was lost", request=request)
        return await super().handle_async_request(request)


async def test_the_description_is_written_as_a_task_note_on_the_new_task(wired):
    adapter, fake, _ = wired
    outcome = await adapter.create_task(CASE.request, await _patient(adapter), marker="task_dc_n1")
    [task] = fake.created
    assert outcome == outcomes.Created(str(task["id"]))
    [note] = fake.notes_of(task["id"])
    assert note["text"] == f"{CASE.request.description}\n\n[task_dc_n1]"
    posts = _posts(fake)
    assert [p.url.path for p in posts] == ["/api/tasks", "/api/task_notes"]
    assert "notes" not in json.loads(posts[0].content)
    assert json.loads(posts[1].content) == {"task": task["id"], "text": note["text"]}
    assert fake.spec_violations == []


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 500}, {"lose_reply": True}])
async def test_a_failed_note_is_added_on_the_retry_without_writing_the_task_twice(fault):
    fake = fake_drchrono.FakeDrChrono()
    http = httpx.AsyncClient(transport=_NoteFaults(fake, **fault))
    first = _adapter(fake, http)
    patient = await _patient(first)
    outcome = await first.create_task(CASE.request, patient, marker="task_dc_n2")
    assert isinstance(outcome, outcomes.Unknown), outcome  # the job retries, looking up first
    assert len(fake.created) == 1

    # The retry, as service/create_task runs it: look up by marker; create only if absent.
    retry = _adapter(fake, http, **first.token.credentials())  # the rotated tokens, as stored
    found = await retry.find_task("task_dc_n2")
    if isinstance(found, outcomes.Absent):
        found = await retry.create_task(CASE.request, await _patient(retry), marker="task_dc_n2")
    [task] = fake.created
    assert found == outcomes.Created(str(task["id"]))
    assert len(fake.notes_of(task["id"])) == 1
    assert await retry.find_task("task_dc_n2") == found  # settled: nothing more to add
    assert len(fake.created) == 1 and len(fake.notes) == 1
    assert fake.spec_violations == []
    await http.aclose()


def test_the_budget_is_500_calls_an_hour_shared_by_every_practice_of_one_api_application():
    assert base.RateLimit(500, 3600, scope="client_id") == drchrono.RATE_LIMIT
    key = drchrono.RATE_LIMIT.key
    assert key("drchrono", "conn_1", {"client_id": "app"}) == key("drchrono", "conn_2", {"client_id": "app"})
    assert key("drchrono", "conn_1", {"client_id": "app"}) != key("drchrono", "conn_1", {"client_id": "app2"})


# --- the fake enforces DrChrono's contract ---


def _valid_task() -> dict:
    return {
        "title": "Refill",
        "status": fake_drchrono.OPEN_STATUS,
        "assignee_user": "201",
        "associated_items": [{"type": "Patient", "value": 100001}],
    }


async def _post(fake, body=None, **kwargs):
    return await harness.post_to_fake(fake, "/api/tasks", json=body, **kwargs)


async def test_the_fake_accepts_a_complete_task():
    assert (await _post(fake_drchrono.FakeDrChrono(), _valid_task())).status_code == 201


@pytest.mark.parametrize("field", ["title", "status"])
async def test_drchronos_spec_refuses_a_task_missing_a_required_field_naming_it(field):
    fake = fake_drchrono.FakeDrChrono()
    answer = await _post(fake, {k: v for k, v in _valid_task().items() if k != field})
    assert answer.status_code == 400
    assert f"'{field}' is a required property" in answer.json()["spec_violations"][0]
    assert fake.created == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"status": "open"}, "status"),
        ({"assignee_user": 201}, "assignee_user"),
        ({"associated_items": [{"type": "Chart", "value": 100001}]}, "associated_items.0.type"),
        ({"id": 5}, "id"),  # readOnly
    ],
)
async def test_drchronos_spec_refuses_fields_of_the_wrong_type_or_read_only(change, named):
    fake = fake_drchrono.FakeDrChrono()
    answer = await _post(fake, {**_valid_task(), **change})
    assert answer.status_code == 400 and named in answer.json()["spec_violations"][0]
    assert fake.spec_violations and fake.created == []


async def test_a_task_create_stores_no_nested_notes_and_a_note_needs_its_task():
    fake = fake_drchrono.FakeDrChrono()
    created = await _post(fake, {**_valid_task(), "notes": [{"text": "inline"}]})
    assert created.status_code == 201 and fake.created[0]["notes"] == [] and fake.notes == []
    token = fake.issue_token()
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL) as http:
        headers = {"authorization": f"Bearer {token}"}
        no_task = await http.post("/api/task_notes", headers=headers, json={"text": "hi"})
        ghost = await http.post("/api/task_notes", headers=headers, json={"task": 1, "text": "hi"})
        good = await http.post(
            "/api/task_notes", headers=headers, json={"task": created.json()["id"], "text": "hi"}
        )
    assert no_task.status_code == 400 and "'task' is a required property" in no_task.text
    assert ghost.status_code == 400 and "task" in ghost.json()
    assert good.status_code == 201 and fake.notes_of(created.json()["id"])[0]["text"] == "hi"


@pytest.mark.parametrize(
    "assignee", [{}, {"assignee_user": "201", "assignee_group": 301}, {"assignee_user": 201}]
)
async def test_the_fake_refuses_anything_but_one_assignee_as_documented(assignee):
    fake = fake_drchrono.FakeDrChrono()
    body = {k: v for k, v in _valid_task().items() if k != "assignee_user"} | assignee
    assert (await _post(fake, body)).status_code == 400


async def test_the_fake_refuses_a_form_body_a_missing_token_and_a_spent_refresh_token():
    fake = fake_drchrono.FakeDrChrono()
    form = {"title": "Refill", "status": str(fake_drchrono.OPEN_STATUS), "assignee_user": "201"}
    assert (await _post(fake, data=form)).status_code == 415
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL) as http:
        assert (await http.post("/api/tasks", json=_valid_task())).status_code == 401
        form = {
            "grant_type": "refresh_token",
            "refresh_token": fake_drchrono.FIRST_REFRESH_TOKEN,
            "client_id": fake_drchrono.CLIENT_ID,
            "client_secret": fake_drchrono.CLIENT_SECRET,
        }
        assert (await http.post("/o/token/", data=form)).status_code == 200
        spent = await http.post("/o/token/", data=form)
    assert (spent.status_code, spent.json()) == (400, {"error": "invalid_grant"})
    assert fake.created == []
