"""The Canvas adapter's exact Task, teams as assignees, and the fake's Canvas rules."""

import dataclasses
import json

from emrtasks.domain import outcomes
from tests.contract import harness
from tests.contract.cases.canvas import CASE
from tests.contract.fakes.canvas import TASK_GROUP, FakeCanvas


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
        "input": [{"type": {"text": "label"}, "valueString": "Refill"}],
    }
    assert outcome == outcomes.Created(fake.created[0]["id"])
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


async def test_canvas_cannot_find_a_task_by_marker_so_a_lost_reply_stays_unknown():
    adapter, _fake, http = await _wired()
    assert not adapter.rules.finds_by_marker
    assert isinstance(await adapter.find_task("task_01abc"), outcomes.Unknown)
    await http.aclose()


async def test_the_fake_refuses_a_task_without_a_requester_or_with_another_intent():
    fake = FakeCanvas()
    fake.tokens.add("t")
    base = {"resourceType": "Task", "status": "requested", "intent": "unknown", "description": "x"}
    async with harness.httpx.AsyncClient(
        transport=harness.FakeTransport(fake), base_url="http://emr.test"
    ) as http:
        headers = {"authorization": "Bearer t", "content-type": "application/fhir+json"}
        no_requester = await http.post("/Task", json=base, headers=headers)
        order = await http.post(
            "/Task",
            json={**base, "intent": "order", "requester": {"reference": "Practitioner/prac-3"}},
            headers=headers,
        )
    assert no_requester.status_code == 400 and "requester" in no_requester.text
    assert order.status_code == 400 and "intent" in order.text
