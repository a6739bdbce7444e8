"""The FHIR adapter against a real FHIR R4B server on loopback (fhirstarter, resources validated by
fhir.resources), in its own process: patients by MRN, practitioners, Tasks the server validates, and
no second Task for a repeated marker."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, fhir
from emrtasks.service import create_task
from tests.e2e.conftest import free_port

MRN_SYSTEM = "urn:oid:1.2.3.4.5"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fhirserver", "--port", str(port)],
        env={**os.environ, "FHIR_SEQUENCE": "R4B"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/Patient", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            time.sleep(0.1)
    _seed(url)
    yield url
    process.terminate()
    process.wait(timeout=10)


def _seed(url: str) -> None:
    people = [("MRN-1001", "Thompson"), ("MRN-2000", "Morgan"), ("MRN-2000", "Morgan")]
    for mrn, family in people:
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"family": family, "given": ["Pat"]}],
        }
        httpx.post(
            f"{url}/Patient", json=patient, headers={"content-type": "application/fhir+json"}
        ).raise_for_status()
    for family in ("Reyes", "Okafor"):
        practitioner = {"resourceType": "Practitioner", "name": [{"family": family, "prefix": ["Dr."]}]}
        httpx.post(
            f"{url}/Practitioner", json=practitioner, headers={"content-type": "application/fhir+json"}
        ).raise_for_status()


@pytest.fixture
async def adapter(server):
    async with httpx.AsyncClient(timeout=10) as http:
        connection = tasks.Connection("conn_f", "ci_f", "fhir", "fhir", None, "active", {})
        config = base.with_defaults(fhir.SETTINGS, {"base_url": server, "mrn_system": MRN_SYSTEM})
        yield fhir.build(connection, config, base.AdapterDeps(sandbox_store=None, http=http)), server


async def test_patients_resolve_by_mrn_on_a_real_server(adapter):
    emr, _url = adapter
    [one] = await emr.search_patients("MRN-1001")
    assert (one.mrn, one.last_name) == ("MRN-1001", "Thompson")
    missing = await create_task.resolve_patient(emr, "MRN-9999")
    shared = await create_task.resolve_patient(emr, "MRN-2000")
    assert isinstance(missing, outcomes.Rejected) and missing.code == outcomes.PATIENT_NOT_FOUND
    assert isinstance(shared, outcomes.Rejected) and shared.code == outcomes.PATIENT_AMBIGUOUS


async def test_practitioners_are_the_user_directory(adapter):
    emr, _url = adapter
    users = await emr.list_users()
    assert sorted(u.name for u in users) == ["Dr. Okafor", "Dr. Reyes"]


async def test_a_task_the_server_validates_is_created_once_per_marker(adapter):
    emr, url = adapter
    [patient] = await emr.search_patients("MRN-1001")
    owner = (await emr.list_users())[0].id
    request = tasks.TaskRequest("Call back about labs", "MRN-1001", subject="Labs", assignee_user_id=owner)
    first = await emr.create_task(request, patient, marker="task_fhir_1")
    again = await emr.create_task(request, patient, marker="task_fhir_1")
    assert isinstance(first, outcomes.Created)
    assert again == first
    stored = httpx.get(f"{url}/Task", params={"identifier": f"{fhir.MARKER_SYSTEM}|task_fhir_1"}).json()
    assert stored["total"] == 1
    task = stored["entry"][0]["resource"]
    assert (task["status"], task["intent"], task["for"]["reference"]) == (
        "requested",
        "order",
        f"Patient/{patient.emr_patient_id}",
    )
    assert task["owner"]["reference"] == f"Practitioner/{owner}"
    assert await emr.find_task("task_fhir_1") == first
    assert isinstance(await emr.find_task("task_fhir_never"), outcomes.Absent)


async def test_an_unknown_assignee_is_refused_by_the_server(adapter):
    emr, _url = adapter
    [patient] = await emr.search_patients("MRN-1001")
    request = tasks.TaskRequest("x", "MRN-1001", assignee_user_id="nobody")
    outcome = await emr.create_task(request, patient, marker="task_fhir_2")
    assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.USER_NOT_FOUND
