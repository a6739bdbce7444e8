"""The Canvas adapter's exact Task, teams as assignees, pages and lookups, against a fake that checks
every request with Canvas's own documentation source (tests/contract/specs/canvas/)."""

import dataclasses
import json

import httpx
import pytest

from emrtasks.domain import outcomes
from emrtasks.emr import canvas
from tests.contract import harness
from tests.contract.cases.canvas import CASE
from tests.contract.fakes.canvas import FRONT_DESK, TASK_GROUP, FakeCanvas


async def _wired():
    fake = FakeCanvas()
    adapter, http = harness.build_adapter(CASE, fake)
    return adapter, fake, http


async def test_the_task_follows_canvas_profile():
    adapter, fake, http = await _wired()
    [patient] = await adapter.search_patients("MRN-1001")
    outcome = await adapter.create_task(CASE.request, patient, marker="task_01abc")
    create = fake.api_requests()[-1]
    sent = json.loads(create.content)
    assert "if-none-exist" not in create.headers
    assert sent == {
        "resourceType": "Task",
        "status": "requested",
        "intent": "unknown",
        "description": CASE.request.description,
        "for": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/prac-3"},
        "owner": {"reference": "Practitioner/prac-1"},
        "input": [
            {"type": {"text": "label"}, "valueString": "Refill"},
            {"type": {"text": "label"}, "valueString": "emrtasks:task_01abc"},
        ],
    }
    assert outcome == outcomes.Created(fake.created[0]["id"])
    await http.aclose()


async def test_a_create_answered_with_a_null_body_takes_the_id_from_the_location_header():
    adapter, fake, http = await _wired()
    [patient] = await adapter.search_patients("MRN-1001")
    outcome = await adapter.create_task(CASE.request, patient, marker="task_null_body")
    [answer_id] = [t["id"] for t in fake.created]
    assert outcome == outcomes.Created(answer_id)
    await http.aclose()


async def test_a_team_assignee_goes_in_the_task_group_extension():
    adapter, fake, http = await _wired()
    users = {u.id: u.kind for u in await adapter.list_users()}
    assert users["team:grp-1"] == "group"
    [patient] = await adapter.search_patients("MRN-1001")
    request = dataclasses.replace(CASE.request, assignee_user_id="team:grp-1")
    assert isinstance(await adapter.create_task(request, patient, marker="task_team"), outcomes.Created)
    sent = json.loads(fake.api_requests()[-1].content)
    assert sent["extension"] == [{"url": TASK_GROUP, "valueReference": {"reference": "Group/grp-1"}}]
    assert "owner" not in sent
    await http.aclose()


async def test_front_desk_staff_who_cannot_be_scheduled_are_assignees_too():
    adapter, fake, http = await _wired()
    users = {u.id for u in await adapter.list_users()}
    assert set(FRONT_DESK) <= users
    [search] = [r for r in fake.api_requests() if r.url.path == "/Practitioner"]
    assert search.url.params["include-non-schedulable-practitioners"] == "true"
    await http.aclose()


async def test_a_directory_of_more_than_a_page_follows_canvas_relative_next_links():
    adapter, fake, http = await _wired()
    staff = fake.add_staff(230)
    users = {u.id for u in await adapter.list_users()}
    assert set(staff) <= users
    pages = [r for r in fake.api_requests() if r.url.path == "/Practitioner"]
    assert len(pages) == 3  # 100 a page at most
    assert [r.url.params.get("_offset") for r in pages] == [None, "100", "200"]
    await http.aclose()


async def test_a_lost_reply_is_looked_up_by_the_marker_label():
    adapter, fake, http = await _wired()
    assert adapter.rules.finds_by_marker
    [patient] = await adapter.search_patients("MRN-1001")
    fake.timeout_after_next_write = True
    lost = await adapter.create_task(CASE.request, patient, marker="task_lost")
    assert isinstance(lost, outcomes.Unknown)
    assert await adapter.find_task("task_lost") == outcomes.Created(fake.created[0]["id"])
    assert isinstance(await adapter.find_task("task_never_sent"), outcomes.Absent)
    search = fake.api_requests()[-1]
    assert search.url.path == "/Task"
    assert search.url.params["label"] == "emrtasks:task_never_sent"
    await http.aclose()


async def test_a_next_link_to_another_host_is_not_followed():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token/":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        page = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        page["link"] = [{"relation": "next", "url": "https://elsewhere.example/Practitioner?_offset=100"}]
        return httpx.Response(200, json=page)

    adapter, http = harness.build_adapter(CASE, FakeCanvas(), transport=httpx.MockTransport(answer))
    with pytest.raises(outcomes.AdapterError) as caught:
        await adapter.list_users()
    assert "elsewhere.example" in caught.value.outcome.description
    await http.aclose()


# --- the fake keeps Canvas's documented contract ---

HEADERS = {"authorization": "Bearer t", "content-type": "application/json"}
VALID = {
    "resourceType": "Task",
    "status": "requested",
    "intent": "unknown",
    "description": "x",
    "requester": {"reference": "Practitioner/prac-3"},
}


async def _post(task: dict) -> httpx.Response:
    return await harness.post_to_fake(FakeCanvas(), "/Task", json=task)


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({k: v for k, v in VALID.items() if k != "requester"}, "Task.requester"),
        ({k: v for k, v in VALID.items() if k != "description"}, "Task.description"),
        ({**VALID, "intent": "order"}, "Task.intent"),
        ({**VALID, "status": "in-progress"}, "Task.status"),
        ({**VALID, "identifier": [{"system": "urn:x", "value": "1"}]}, "Task.identifier"),
        ({**VALID, "for": {"reference": "Patient/p1", "type": "Patient"}}, "Task.for.type"),
        ({**VALID, "input": [{"type": {"text": "tag"}, "valueString": "x"}]}, "Task.input[0].type.text"),
        ({**VALID, "input": [{"type": {"text": "label"}}]}, "Task.input[0].valueString"),
    ],
)
async def test_the_fake_refuses_a_task_canvas_docs_refuse_naming_the_field(task, field):
    answer = await _post(task)
    assert answer.status_code == 400
    assert field in answer.json()["issue"][0]["diagnostics"]


async def test_the_fake_answers_a_create_with_a_null_body_and_a_location():
    answer = await _post(VALID)
    assert answer.status_code == 201
    assert answer.json() is None
    assert "/Task/" in answer.headers["location"]


async def test_the_fake_refuses_undocumented_search_parameters_and_pages_by_100_with_relative_links():
    fake = FakeCanvas()
    fake.tokens.add("t")
    fake.add_staff(150)
    async with httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url="http://emr.test") as http:
        by_identifier = await http.get("/Task", params={"identifier": "urn:x|1"}, headers=HEADERS)
        page = await http.get("/Practitioner", params={"_count": "500"}, headers=HEADERS)
    assert by_identifier.status_code == 400 and "identifier" in by_identifier.text
    bundle = page.json()
    assert len(bundle["entry"]) == 100
    [following] = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    assert following == "/Practitioner?_count=100&_offset=100"


def test_the_canvas_rules_say_a_task_can_be_found_by_marker():
    assert canvas.RULES.finds_by_marker
