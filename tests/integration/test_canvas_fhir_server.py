"""The Canvas adapter against an independent FHIR server (Medplum's FHIR router, `tests/fhir_node/`):
the Task Canvas's profile asks for is valid FHIR R4 and is stored as sent, patients resolve by MRN,
and a Task whose reply was lost is found again by its marker label. Medplum does not know Canvas's own
search parameters; `label` is given to it from Canvas's docs (tests/fhir_node/canvas-search-parameters.json).
Skips, naming why, where node or `npm ci` in tests/fhir_node is missing (never in CI: `.ci/run`)."""

import dataclasses

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, canvas
from emrtasks.service import create_task
from tests.fhir_node import serve
from tests.integration.test_fhir_server import MRN_SYSTEM, TOKEN, Recorder, post, seed_patients, stored

TASK_GROUP = "http://schemas.canvasmedical.com/fhir/extensions/task-group"


@pytest.fixture(scope="module")
def server():
    with serve.medplum(token=TOKEN, search_parameters=(serve.CANVAS_SEARCH_PARAMETERS,)) as url:
        seed_patients(url)
        ids = {
            family: post(url, {"resourceType": "Practitioner", "name": [{"family": family}]})["id"]
            for family in ("Requester", "Owner")
        }
        team = post(
            url, {"resourceType": "Group", "type": "practitioner", "actual": True, "name": "Front desk"}
        )
        yield url, ids, team["id"]


@pytest.fixture
async def wired(server):
    url, ids, _team = server
    recorder = Recorder()
    hooks = {"request": [recorder.request], "response": [recorder.response]}
    async with httpx.AsyncClient(timeout=10, event_hooks=hooks) as http:
        connection = tasks.Connection("conn_c", "ci_c", "canvas", "canvas", None, "active", {})
        config = base.with_defaults(
            canvas.SETTINGS,
            {
                "base_url": url,
                "token_url": f"{url}/oauth2/token",
                "client_id": "emrtasks",
                "client_secret": "s3cret",
                "mrn_system": MRN_SYSTEM,
                "requester_practitioner_id": ids["Requester"],
                "labels": ["Refill"],
            },
        )
        assert not canvas.check_config(config)
        yield canvas.build(connection, config, base.AdapterDeps(sandbox_store=None, http=http)), recorder


def _request(assignee: str) -> tasks.TaskRequest:
    return tasks.TaskRequest(
        "Ask the patient for new insurance information.",
        "MRN-1001",
        assignee_user_id=assignee,
        phone_call_type_id="Refill",
    )


async def test_canvas_shaped_tasks_are_valid_r4_and_stored_as_sent(wired, server):
    emr, recorder = wired
    url, ids, team = server
    [patient] = await emr.search_patients("MRN-1001")
    for marker, assignee in [("task_cv_owner", ids["Owner"]), ("task_cv_team", f"team:{team}")]:
        created = await emr.create_task(_request(assignee), patient, marker=marker)
        assert isinstance(created, outcomes.Created), created
        sent = recorder.last_task()
        task = stored(url, f"Task/{created.emr_task_id}")
        assert {k: v for k, v in task.items() if k not in ("id", "meta")} == sent
        assert task["intent"] == "unknown"
        assert {"type": {"text": "label"}, "valueString": f"emrtasks:{marker}"} in task["input"]
    assert task["extension"] == [{"url": TASK_GROUP, "valueReference": {"reference": f"Group/{team}"}}]


async def test_patients_resolve_by_mrn_none_one_or_several(wired):
    emr, _ = wired
    assert [p.mrn for p in await emr.search_patients("MRN-1001")] == ["MRN-1001"]
    missing = await create_task.resolve_patient(emr, "MRN-9999")
    shared = await create_task.resolve_patient(emr, "MRN-2000")
    assert isinstance(missing, outcomes.Rejected) and missing.code == outcomes.PATIENT_NOT_FOUND
    assert isinstance(shared, outcomes.Rejected) and shared.code == outcomes.PATIENT_AMBIGUOUS


async def test_a_lost_reply_is_found_by_its_label_even_where_search_matches_by_prefix(wired, server):
    emr, _ = wired
    _url, ids, _team = server
    [patient] = await emr.search_patients("MRN-1001")
    first = await emr.create_task(_request(ids["Owner"]), patient, marker="task_cv_1")
    longer = await emr.create_task(_request(ids["Owner"]), patient, marker="task_cv_10")
    assert isinstance(first, outcomes.Created) and isinstance(longer, outcomes.Created)
    # FHIR string search matches by prefix: label=emrtasks:task_cv_1 finds task_cv_10 too.
    assert await emr.find_task("task_cv_1") == first
    assert await emr.find_task("task_cv_10") == longer
    assert isinstance(await emr.find_task("task_cv_never"), outcomes.Absent)


async def test_teams_come_from_the_servers_groups(wired, server):
    emr, _ = wired
    _url, _ids, team = server
    users = {u.id: u for u in await emr.list_users()}
    assert dataclasses.asdict(users[f"team:{team}"])["kind"] == "group"
