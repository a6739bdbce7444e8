"""GET /v1/sandbox/emr-tasks (what the sandbox EMR holds, by marker), GET /healthz and GET /readyz."""

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from emrtasks.api.app import create_app
from emrtasks.storage import db
from tests.api.helpers import parse_iso_utc, server_client
from tests.conftest import PHONE_TASK, SUBJECT_TASK, drain, make_tenant


async def _accept(api, headers, body):
    answer = await api.post("/v1/tasks", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def _emr_tasks(api, headers, marker=None):
    params = {"marker": marker} if marker is not None else {}
    answer = await api.get("/v1/sandbox/emr-tasks", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"success", "emr_tasks"}
    assert body["success"] is True
    return body["emr_tasks"]


# --- sandbox ----------------------------------------------------------------------------------------


async def test_the_sandbox_holds_nothing_before_the_job_runs(api, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    assert await _emr_tasks(api, tenant.a, accepted["task_id"]) == []
    assert await _emr_tasks(api, tenant.a) == []


async def test_a_created_task_is_in_the_sandbox_exactly_once_with_our_task_id_as_marker(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "notify_list": ["usr_1004"]})
    await drain(runtime)
    task = (await api.get(f"/v1/tasks/{accepted['task_id']}", headers=tenant.a)).json()["task"]
    [held] = await _emr_tasks(api, tenant.a, accepted["task_id"])
    parse_iso_utc(held.pop("created"))
    assert held == {
        "emr_task_id": task["emr_task_id"],
        "marker": accepted["task_id"],
        "patient_id": "pat_1001",
        "patient_mrn": "MRN-1001",
        "subject": "Follow-up appointment needed",
        "description": "Review recent lab results.",
        "assignee_user_id": "usr_1001",
        "phone_call_type_id": None,
        "notify_list": ["usr_1004"],
    }


async def test_a_phone_call_task_is_held_with_its_call_type(api, runtime, tenant):
    accepted = await _accept(api, tenant.b, PHONE_TASK)
    await drain(runtime)
    [held] = await _emr_tasks(api, tenant.b, accepted["task_id"])
    assert held["patient_id"] == "pat_1002"
    assert held["phone_call_type_id"] == "pct_01"
    assert held["notify_list"] == ["usr_1003"]
    assert held["subject"] is None


async def test_several_tasks_give_exactly_one_emr_task_each(api, runtime, tenant):
    accepted = [await _accept(api, tenant.a, {**SUBJECT_TASK, "subject": f"n{i}"}) for i in range(5)]
    await drain(runtime)
    for item in accepted:
        assert len(await _emr_tasks(api, tenant.a, item["task_id"])) == 1
    held = await _emr_tasks(api, tenant.a)
    assert sorted(h["marker"] for h in held) == sorted(a["task_id"] for a in accepted)


async def test_a_failed_task_leaves_nothing_in_the_sandbox(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, {**SUBJECT_TASK, "patient_mrn": "MRN-404"})
    await drain(runtime)
    assert await _emr_tasks(api, tenant.a, accepted["task_id"]) == []


async def test_the_other_connection_does_not_see_this_connections_emr_tasks(api, runtime, tenant):
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    await drain(runtime)
    assert await _emr_tasks(api, tenant.b, accepted["task_id"]) == []
    assert await _emr_tasks(api, tenant.b) == []


async def test_another_client_does_not_see_this_clients_emr_tasks(api, runtime, tenant):
    other = await make_tenant(runtime, "other")
    accepted = await _accept(api, tenant.a, SUBJECT_TASK)
    await drain(runtime)
    assert await _emr_tasks(api, other.a, accepted["task_id"]) == []
    assert await _emr_tasks(api, other.a) == []


async def test_a_marker_over_64_characters_is_400_naming_marker(api, tenant):
    answer = await api.get("/v1/sandbox/emr-tasks", params={"marker": "m" * 65}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["message"].startswith("Invalid parameter marker: ")


async def test_a_marker_with_a_nul_character_finds_nothing(runtime, tenant):
    async with server_client(runtime) as client:
        answer = await client.get("/v1/sandbox/emr-tasks?marker=task%00x", headers=tenant.a)
    assert answer.status_code == 200, answer.text
    assert answer.json()["emr_tasks"] == []


# --- health -----------------------------------------------------------------------------------------


async def test_healthz_answers_ok_without_credentials(api):
    answer = await api.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "status": "ok"}


async def test_readyz_answers_ready_when_the_database_answers(api):
    answer = await api.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "status": "ready"}


@pytest.fixture
async def unreachable(runtime, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a database that cannot be opened (its directory does not exist)."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'emrtasks.db'}")
    app = create_app(dataclasses.replace(runtime.ctx, engine=engine))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await engine.dispose()


async def test_readyz_is_503_when_the_database_cannot_be_reached(unreachable):
    answer = await unreachable.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json() == {
        "success": False,
        "error": "service_unavailable",
        "message": "The database cannot be reached.",
    }


async def test_healthz_still_answers_when_the_database_cannot_be_reached(unreachable):
    answer = await unreachable.get("/healthz")
    assert answer.status_code == 200


async def test_an_api_call_is_503_with_the_contract_body_when_the_database_is_down(unreachable):
    headers = {"client_id": "ci_x", "client_secret": "cs_x", "access_token": "at_x"}
    answer = await unreachable.get("/v1/settings", headers=headers)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json() == {
        "success": False,
        "error": "service_unavailable",
        "message": "The service is temporarily unavailable: its database cannot be reached. Please retry.",
    }
