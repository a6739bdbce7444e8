"""The gnuhealth adapter against a real GNU Health 5.0 (trytond on loopback, tests/gnuhealth/setup.py):
records are read back as the assigned professional, through the tests' own JSON-RPC client."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from emrtasks.domain import outcomes, tasks
from emrtasks.emr import base, gnuhealth
from emrtasks.service import create_task
from tests.gnuhealth import proxy, rpc, seed

FRONT_DESK, FRONT_DESK_PASSWORD, _ = seed.FRONT_DESK
REQUEST = tasks.TaskRequest(
    description="Patient asks for her lab results by phone; call back after 2 pm.",
    patient_mrn="GH-1001",
    subject="Lab results call-back",
    assignee_user_id="dreyes",
    phone_call_type_id="followup",
)


def config(server: Any, **changes: object) -> dict[str, object]:
    found = {
        "url": server.url,
        "database": server.database,
        "username": FRONT_DESK,
        "password": FRONT_DESK_PASSWORD,
    }
    return {**found, **changes}


def build(settings: dict[str, object], client: httpx.AsyncClient) -> base.Adapter:
    connection = tasks.Connection("con_gh", "cli_gh", "gnuhealth", "gnuhealth", None, "active", {})
    deps = base.AdapterDeps(sandbox_store=None, http=client)
    return base.guarded(gnuhealth.build(connection, base.with_defaults(gnuhealth.SETTINGS, settings), deps))


def as_doctor(server: Any, login: str = "dreyes") -> rpc.Session:
    password = next(p for name, p, *_ in seed.DOCTORS if name == login)
    return rpc.Session.login(server.url, server.database, login, password)


def appointments(session: rpc.Session, domain: list[Any]) -> list[dict[str, Any]]:
    fields = [
        "name",
        "comments",
        "state",
        "visit_type",
        "patient.puid",
        "healthprof.party.internal_user.login",
    ]
    found: list[dict[str, Any]] = session.call(
        "model.gnuhealth.appointment.search_read", domain, 0, None, None, fields, {}
    )
    return found


def with_marker(session: rpc.Session, marker: str) -> list[dict[str, Any]]:
    return [a for a in appointments(session, []) if gnuhealth.marker_text(marker) in (a["comments"] or "")]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as found:
        yield found


async def test_a_follow_up_appointment_is_assigned_to_the_professional_who_reads_it_back(
    gnuhealth_server, client
):
    adapter = build(config(gnuhealth_server), client)
    patient = await create_task.resolve_patient(adapter, "GH-1001")
    assert not isinstance(patient, outcomes.Rejected), patient
    outcome = await adapter.create_task(REQUEST, patient, marker="task_gh_adapter_1")
    assert isinstance(outcome, outcomes.Created), outcome
    doctor = as_doctor(gnuhealth_server)
    [appointment] = appointments(doctor, [("id", "=", int(outcome.emr_task_id))])
    assert appointment["patient."]["puid"] == "GH-1001"
    assert appointment["healthprof."]["party."]["internal_user."]["login"] == "dreyes"
    assert (appointment["state"], appointment["visit_type"]) == ("confirmed", "followup")
    assert REQUEST.subject in appointment["comments"] and REQUEST.description in appointment["comments"]
    assert "[emrtasks task_gh_adapter_1]" in appointment["comments"]
    assert appointment["name"].startswith("APP ")
    assert await adapter.find_task("task_gh_adapter_1") == outcome
    assert isinstance(await adapter.find_task("task_gh_never_sent"), outcomes.Absent)


async def test_an_unknown_puid_is_not_found_and_a_shared_record_number_is_ambiguous(gnuhealth_server, client):
    adapter = build(config(gnuhealth_server), client)
    missing = await create_task.resolve_patient(adapter, "GH-9999")
    shared = await create_task.resolve_patient(adapter, "MR-2000")
    by_record_number = await create_task.resolve_patient(adapter, "MR-1002")
    assert isinstance(missing, outcomes.Rejected) and missing.code == outcomes.PATIENT_NOT_FOUND
    assert isinstance(shared, outcomes.Rejected) and shared.code == outcomes.PATIENT_AMBIGUOUS
    assert not isinstance(by_record_number, outcomes.Rejected)
    assert (by_record_number.first_name, by_record_number.last_name) == ("Liam", "Garcia")


async def test_a_second_patient_with_the_same_puid_is_refused_by_gnu_health(gnuhealth_server):
    """Why a PUID alone can never be ambiguous: GNU Health keeps it unique (party.ref_uniq)."""
    admin = rpc.Session.login(gnuhealth_server.url, gnuhealth_server.database, "admin", _admin_password())
    person = {"name": "Ava", "lastname": "Again", "is_person": True, "is_patient": True}
    with pytest.raises(rpc.Refused, match="PUID"):
        admin.call("model.party.party.create", [{**person, "ref": "GH-1001", "fed_country": "XXX"}], {})


def _admin_password() -> str:
    from tests.gnuhealth import setup

    return setup.ADMIN_PASSWORD


async def test_professionals_are_the_users_and_visit_types_the_call_types(gnuhealth_server, client):
    adapter = build(config(gnuhealth_server, call_types=["followup", "new"]), client)
    users = {u.id: u.name for u in await adapter.list_users()}
    assert users == {"dreyes": "Reyes, Dana", "sokafor": "Okafor, Sam"}
    assert [c.id for c in await adapter.list_call_types()] == ["new", "followup"]


async def test_an_unknown_assignee_or_notified_login_writes_nothing(gnuhealth_server, client):
    adapter = build(config(gnuhealth_server), client)
    patient = await create_task.resolve_patient(adapter, "GH-1001")
    assert not isinstance(patient, outcomes.Rejected)
    for request in (
        tasks.TaskRequest("d", "GH-1001", "s", assignee_user_id="frontdesk"),
        tasks.TaskRequest("d", "GH-1001", "s", assignee_user_id="dreyes", notify_list=("nobody",)),
    ):
        outcome = await adapter.create_task(request, patient, marker="task_gh_nobody")
        assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.USER_NOT_FOUND
    assert with_marker(as_doctor(gnuhealth_server), "task_gh_nobody") == []


async def test_each_notified_professional_gets_a_note_on_the_appointment(gnuhealth_server, client):
    adapter = build(config(gnuhealth_server), client)
    patient = await create_task.resolve_patient(adapter, "GH-1001")
    assert not isinstance(patient, outcomes.Rejected)
    request = tasks.TaskRequest("d", "GH-1001", "Notify", assignee_user_id="dreyes", notify_list=("sokafor",))
    outcome = await adapter.create_task(request, patient, marker="task_gh_notify")
    assert isinstance(outcome, outcomes.Created), outcome
    notes = as_doctor(gnuhealth_server, "sokafor").call(
        "model.ir.note.search_read",
        [("resource", "=", f"gnuhealth.appointment,{outcome.emr_task_id}")],
        0,
        None,
        None,
        ["message"],
        {},
    )
    assert [n["message"] for n in notes] == ["For the attention of sokafor: Notify"]


async def test_a_reply_lost_after_the_write_is_found_by_marker_and_never_written_twice(
    gnuhealth_server, client
):
    with proxy.serve(gnuhealth_server.url) as (url, counts):
        adapter = build(config(gnuhealth_server, url=url), client)
        patient = await create_task.resolve_patient(adapter, "GH-1001")
        assert not isinstance(patient, outcomes.Rejected)
        counts.cut["model.gnuhealth.appointment.create"] = 1
        lost = await adapter.create_task(REQUEST, patient, marker="task_gh_lost")
        again = await adapter.create_task(REQUEST, patient, marker="task_gh_lost")
    assert isinstance(lost, outcomes.Unknown), lost
    [written] = with_marker(as_doctor(gnuhealth_server), "task_gh_lost")
    assert again == outcomes.Created(str(written["id"]))
    assert counts.calls["model.gnuhealth.appointment.create"] == 1


async def test_a_refused_password_is_login_required_and_never_tried_again(gnuhealth_server, client):
    with proxy.serve(gnuhealth_server.url) as (url, counts):
        refused = config(gnuhealth_server, url=url, username=seed.REFUSED[0], password="wrong")
        adapter = build(refused, client)
        first = await adapter.create_task(REQUEST, _patient(), marker="task_gh_refused")
        second = await adapter.create_task(REQUEST, _patient(), marker="task_gh_refused")
    for outcome in (first, second):
        assert isinstance(outcome, outcomes.Rejected) and outcome.code == outcomes.LOGIN_REQUIRED
    assert counts.calls["common.db.login"] == 1


def _patient() -> Any:
    from emrtasks.domain import directory

    return directory.Patient("1", "GH-1001", "Ava", "Thompson", "", "f", "")
