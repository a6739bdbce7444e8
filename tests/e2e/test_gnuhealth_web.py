"""GNU Health through its web client, through the whole service: `emrtasks serve` as a process, a
`gnuhealth_web` connection against a real GNU Health whose web client (SAO) is driven in headless
Chromium, and the appointment read back through JSON-RPC as the professional it is assigned to."""

from typing import Any

import httpx
import pytest

from emrtasks.emr import screens
from tests.e2e import test_gnuhealth as api_e2e
from tests.gnuhealth import seed

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def sao(gnuhealth_server: Any) -> Any:
    missing = screens.missing()
    if missing is not None:
        pytest.skip(missing)
    if not gnuhealth_server.web:
        pytest.skip("SAO, GNU Health's web client, was not assembled (node and npm are needed)")
    return gnuhealth_server


def test_a_task_written_through_the_web_client_is_an_appointment_the_professional_reads_back(service, sao):
    service.start()
    headers = service.connect("gnuhealth_web", api_e2e._config(sao), name="e2e-gnuhealth-web")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        done = api_e2e._post(http, headers)
    assert done["status"] == "created", done
    [appointment] = api_e2e._appointment(sao, str(done["task_id"]))
    assert str(appointment["id"]) == done["emr_task_id"]
    assert appointment["patient."]["puid"] == "GH-1001"
    assert appointment["healthprof."]["party."]["internal_user."]["login"] == "dreyes"
    body = api_e2e.BODY
    assert body["subject"] in appointment["comments"] and body["description"] in appointment["comments"]
    assert (appointment["state"], appointment["visit_type"]) == ("confirmed", "followup")


def test_a_wrong_password_ends_login_required(service, sao):
    service.start()
    config = api_e2e._config(sao, login=(seed.REFUSED[0], "not-the-password"))
    headers = service.connect("gnuhealth_web", config, name="e2e-gnuhealth-web-refused")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        answer = http.post("/v1/tasks", json=api_e2e.BODY, headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (403, "login_required"), answer.text
