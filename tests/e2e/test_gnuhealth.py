"""GNU Health through the whole service: `emrtasks serve` as a process, a `gnuhealth` connection made
with the CLI against a real GNU Health (trytond on loopback), tasks over `POST /v1/tasks`, and the
appointments read back through JSON-RPC as the professional they are assigned to."""

from typing import Any

import httpx
import pytest

from emrtasks.emr import gnuhealth
from tests.e2e.conftest import wait_for_task
from tests.gnuhealth import proxy, rpc, seed

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
BODY = {
    "description": "Asked for a call back about her thyroid results; prefers mornings.",
    "patient_mrn": "GH-1001",
    "subject": "Thyroid results call-back",
    "assignee_user_id": "dreyes",
    "phone_call_type_id": "followup",
}


def _config(server: Any, url: str | None = None, login: tuple[str, ...] = seed.FRONT_DESK) -> dict[str, str]:
    return {"url": url or server.url, "database": server.database, "username": login[0], "password": login[1]}


def _appointment(server: Any, marker: str) -> list[dict[str, Any]]:
    """The appointments holding this marker, as Dr. Reyes sees her own (`healthprof.party.internal_user`)."""
    doctor = rpc.Session.login(server.url, server.database, "dreyes", seed.DOCTORS[0][1])
    uid = doctor.call("model.res.user.search", [("login", "=", "dreyes")], 0, None, None, {})[0]
    fields = ["comments", "state", "visit_type", "patient.puid", "healthprof.party.internal_user.login"]
    mine = doctor.call(
        "model.gnuhealth.appointment.search_read",
        [("healthprof.party.internal_user", "=", uid)],
        0,
        None,
        None,
        fields,
        {},
    )
    return [a for a in mine if gnuhealth.marker_text(marker) in (a["comments"] or "")]


def _post(http: httpx.Client, headers: dict[str, str], **changes: str) -> dict[str, Any]:
    answer = http.post("/v1/tasks", json={**BODY, **changes}, headers=headers)
    assert answer.status_code == 202, answer.text
    return wait_for_task(http, headers, answer.json()["task_id"])


def test_a_task_becomes_an_appointment_the_assigned_professional_reads_back(service, gnuhealth_server):
    service.start()
    headers = service.connect("gnuhealth", _config(gnuhealth_server), name="e2e-gnuhealth")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        done = _post(http, headers)
        missing = _post(http, headers, patient_mrn="GH-9999")
        shared = _post(http, headers, patient_mrn="MR-2000")
    assert done["status"] == "created", done
    [appointment] = _appointment(gnuhealth_server, str(done["task_id"]))
    assert str(appointment["id"]) == done["emr_task_id"]
    assert appointment["patient."]["puid"] == "GH-1001"
    assert appointment["healthprof."]["party."]["internal_user."]["login"] == "dreyes"
    assert BODY["subject"] in appointment["comments"] and BODY["description"] in appointment["comments"]
    assert (appointment["state"], appointment["visit_type"]) == ("confirmed", "followup")
    assert (missing["status"], [r["code"] for r in missing["reasons"]]) == ("failed", ["PATIENT_NOT_FOUND"])
    assert (shared["status"], [r["code"] for r in shared["reasons"]]) == ("failed", ["PATIENT_AMBIGUOUS"])


def test_a_reply_cut_after_the_write_is_looked_up_and_never_written_twice(service, gnuhealth_server):
    with proxy.serve(gnuhealth_server.url) as (url, counts):
        counts.cut["model.gnuhealth.appointment.create"] = 1
        service.start()
        headers = service.connect("gnuhealth", _config(gnuhealth_server, url), name="e2e-gnuhealth-cut")
        with httpx.Client(base_url=service.url, timeout=30) as http:
            done = _post(http, headers, subject="Cut after the write")
    assert done["status"] == "created", done
    [appointment] = _appointment(gnuhealth_server, str(done["task_id"]))
    assert str(appointment["id"]) == done["emr_task_id"]
    assert counts.calls["model.gnuhealth.appointment.create"] == 1
    assert counts.cut["model.gnuhealth.appointment.create"] == 0  # the cut did happen


def test_a_wrong_password_ends_login_required_and_is_never_tried_again(service, gnuhealth_server):
    """The first request's directory read (the assignee is checked against GNU Health's professionals)
    meets the refused login: the connection is `login_required` and every later request is refused
    without another login, which GNU Health would count as one more failure of that name."""
    with proxy.serve(gnuhealth_server.url) as (url, counts):
        service.start()
        config = _config(gnuhealth_server, url, (seed.REFUSED[0], "not-the-password"))
        headers = service.connect("gnuhealth", config, name="e2e-gnuhealth-refused")
        with httpx.Client(base_url=service.url, timeout=30) as http:
            answers = [http.post("/v1/tasks", json=BODY, headers=headers) for _ in range(3)]
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]) == (403, "login_required"), answer.text
    assert counts.calls["common.db.login"] == 1
    assert counts.calls["model.gnuhealth.appointment.create"] == 0
