"""The FHIR adapter against an independent FHIR server: Medplum's FHIR router with its in-memory
repository (`tests/fhir_node/`), in its own Node process on loopback, which validates every resource
against the FHIR R4 definitions. Patients and practitioners are seeded through the server's own API.
Skips, naming why, where node or `npm ci` in tests/fhir_node is missing (never in CI: `.ci/run`)."""

import json

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, fhir
from emrtasks.service import create_task
from tests.fhir_node import serve

TOKEN = "medplum-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/fhir+json"}
MRN_SYSTEM = "urn:oid:1.2.3.4.5"


def post(url: str, resource: dict) -> dict:
    """Create a resource through the server's own API."""
    answer = httpx.post(f"{url}/{resource['resourceType']}", json=resource, headers=AUTH)
    answer.raise_for_status()
    return answer.json()


def seed_patients(url: str) -> None:
    for mrn, family in [("MRN-1001", "Thompson"), ("MRN-2000", "Morgan"), ("MRN-2000", "Morgan")]:
        identifier = [{"system": MRN_SYSTEM, "value": mrn}, {"system": "urn:other", "value": "MRN-9999"}]
        post(url, {"resourceType": "Patient", "identifier": identifier, "name": [{"family": family}]})


@pytest.fixture(scope="module")
def server():
    with serve.medplum(token=TOKEN) as url:
        seed_patients(url)
        for family in ("Reyes", "Okafor"):
            post(url, {"resourceType": "Practitioner", "name": [{"family": family, "prefix": ["Dr."]}]})
        yield url


class Recorder:
    """The adapter's own requests and the server's answers, as they went over the wire."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        self.statuses: list[int] = []

    async def request(self, request: httpx.Request) -> None:
        self.sent.append(request)

    async def response(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)

    def last_task(self) -> dict:
        return json.loads([r for r in self.sent if r.method == "POST"][-1].content)


@pytest.fixture
async def wired(server):
    recorder = Recorder()
    hooks = {"request": [recorder.request], "response": [recorder.response]}
    async with httpx.AsyncClient(timeout=10, event_hooks=hooks) as http:
        connection = tasks.Connection("conn_f", "ci_f", "fhir", "fhir", None, "active", {})
        config = base.with_defaults(
            fhir.SETTINGS,
            {
                "base_url": server,
                "mrn_system": MRN_SYSTEM,
                "access_token": TOKEN,
                "task_types": [{"code": "refill", "display": "Prescription refill"}],
            },
        )
        yield fhir.build(connection, config, base.AdapterDeps(sandbox_store=None, http=http)), recorder


def stored(url: str, resource: str, **params: str) -> dict:
    answer = httpx.get(f"{url}/{resource}", params=params, headers=AUTH)
    answer.raise_for_status()
    return answer.json()


async def test_patients_resolve_by_mrn_none_one_or_several(wired):
    emr, _ = wired
    [one] = await emr.search_patients("MRN-1001")
    assert (one.mrn, one.last_name) == ("MRN-1001", "Thompson")
    missing = await create_task.resolve_patient(emr, "MRN-9999")  # only in another system
    shared = await create_task.resolve_patient(emr, "MRN-2000")
    assert isinstance(missing, outcomes.Rejected) and missing.code == outcomes.PATIENT_NOT_FOUND
    assert isinstance(shared, outcomes.Rejected) and shared.code == outcomes.PATIENT_AMBIGUOUS


async def test_practitioners_are_the_user_directory(wired):
    emr, _ = wired
    users = await emr.list_users()
    assert sorted(u.name for u in users) == ["Dr. Okafor", "Dr. Reyes"]


async def test_the_task_the_server_stores_is_the_task_we_wrote(wired, server):
    emr, recorder = wired
    [patient] = await emr.search_patients("MRN-1001")
    owner, other = [u.id for u in await emr.list_users()]
    request = tasks.TaskRequest(
        "Call back about labs",
        "MRN-1001",
        subject="Labs",
        assignee_user_id=owner,
        phone_call_type_id="refill",
        notify_list=(other,),
    )
    created = await emr.create_task(request, patient, marker="task_fhir_stored")
    assert isinstance(created, outcomes.Created), created
    sent = recorder.last_task()
    task = stored(server, f"Task/{created.emr_task_id}")
    assert {k: v for k, v in task.items() if k not in ("id", "meta")} == sent
    assert (task["status"], task["intent"], task["for"]) == (
        "requested",
        "order",
        {"reference": f"Patient/{patient.emr_patient_id}"},
    )
    assert task["owner"] == {"reference": f"Practitioner/{owner}"}
    assert task["restriction"] == {"recipient": [{"reference": f"Practitioner/{other}"}]}


async def test_a_conditional_create_with_the_same_marker_twice_gives_one_task(wired, server):
    emr, recorder = wired
    [patient] = await emr.search_patients("MRN-1001")
    request = tasks.TaskRequest("Call back about labs", "MRN-1001")
    first = await emr.create_task(request, patient, marker="task_fhir_twice")
    again = await emr.create_task(request, patient, marker="task_fhir_twice")
    assert isinstance(first, outcomes.Created) and again == first
    creates = [s for r, s in zip(recorder.sent, recorder.statuses, strict=True) if r.method == "POST"]
    assert creates == [201, 200]  # the second matched If-None-Exist: nothing new was written
    found = stored(server, "Task", identifier=f"{fhir.MARKER_SYSTEM}|task_fhir_twice")
    assert found["total"] == 1


async def test_a_task_is_found_by_its_marker_and_an_unsent_one_is_absent(wired):
    emr, _ = wired
    [patient] = await emr.search_patients("MRN-1001")
    request = tasks.TaskRequest("Call back about labs", "MRN-1001")
    created = await emr.create_task(request, patient, marker="task_fhir_found")
    assert await emr.find_task("task_fhir_found") == created
    assert isinstance(await emr.find_task("task_fhir_never"), outcomes.Absent)


async def test_a_token_the_server_refuses_is_login_required(server):
    async with httpx.AsyncClient(timeout=10) as http:
        connection = tasks.Connection("conn_f", "ci_f", "fhir", "fhir", None, "active", {})
        config = base.with_defaults(
            fhir.SETTINGS, {"base_url": server, "mrn_system": MRN_SYSTEM, "access_token": "wrong"}
        )
        emr = fhir.build(connection, config, base.AdapterDeps(sandbox_store=None, http=http))
        with pytest.raises(outcomes.AdapterError) as caught:
            await emr.search_patients("MRN-1001")
    assert caught.value.outcome.code == outcomes.LOGIN_REQUIRED


def test_the_server_validates_what_it_stores(server):
    """It is a real check: Medplum refuses an R4-invalid Task, naming the element."""
    answer = httpx.post(f"{server}/Task", json={"resourceType": "Task", "intent": "order"}, headers=AUTH)
    assert answer.status_code == 400
    assert "Task.status" in json.dumps(answer.json())
