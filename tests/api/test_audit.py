"""The audit trail: one row per accepted task (in the accept's own transaction), per read of patient
data, per credential change; the request id echoed and kept; never PHI in a row."""

import json
from typing import Any

import httpx

from emrtasks import bootstrap
from emrtasks.service import audit, credentials
from tests.api.helpers import count_rows
from tests.conftest import SUBJECT_TASK, Tenant


async def _rows(runtime: bootstrap.Runtime, action: str | None = None) -> list[dict[str, Any]]:
    return await audit.list_rows(runtime.ctx, since=None, client_id=None, action=action, limit=1000)


async def test_an_accepted_task_has_its_row_with_the_request_id(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    answer = await api.post("/v1/tasks", headers={**tenant.a, "X-Request-Id": "req-abc.1"}, json=SUBJECT_TASK)
    assert answer.status_code == 202
    assert answer.headers["x-request-id"] == "req-abc.1"
    [row] = await _rows(runtime, "task.accept")
    body = answer.json()
    assert row["targets"] == {"task_id": body["task_id"], "job_id": body["job_id"]}
    assert (row["actor_type"], row["actor_id"]) == ("connection", tenant.connection_a)
    assert (row["client_id"], row["connection_id"]) == (tenant.client_id, tenant.connection_a)
    assert row["request_id"] == "req-abc.1"
    assert row["outcome"] == "success"
    assert row["source_address"] == "127.0.0.1"


async def test_a_refused_task_has_no_row(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    answer = await api.post("/v1/tasks", headers=tenant.a, json={"patient_mrn": "MRN-1"})
    assert answer.status_code == 400
    assert await _rows(runtime, "task.accept") == []


async def test_an_unusable_request_id_is_replaced_by_ours(api: httpx.AsyncClient, tenant: Tenant) -> None:
    odd = "a b\u202e".encode()  # a space and a right-to-left override
    answer = await api.get("/v1/tasks/requirements", headers={**tenant.a, "X-Request-Id": odd})  # type: ignore[dict-item]
    given = answer.headers["x-request-id"]
    assert given.encode() != odd
    assert len(given) == 24
    plain = await api.get("/healthz")
    assert plain.headers["x-request-id"]


async def test_every_read_of_patient_data_has_its_row(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    accepted = (await api.post("/v1/tasks", headers=tenant.a, json=SUBJECT_TASK)).json()
    assert (await api.get(f"/v1/tasks/{accepted['task_id']}", headers=tenant.a)).status_code == 200
    assert (await api.get(f"/v1/jobs/{accepted['job_id']}", headers=tenant.a)).status_code == 200
    assert (await api.get("/v1/webhook-events", headers=tenant.headers())).status_code == 200
    patients = await api.get("/v1/patients", params={"mrn": "MRN-1001"}, headers=tenant.a)
    assert patients.status_code == 200
    assert (await api.get("/v1/tasks/task_unknown", headers=tenant.a)).status_code == 404
    reads = {
        (row["action"], row["outcome"]) for row in await _rows(runtime) if row["action"] != "task.accept"
    }
    assert reads == {
        ("task.read", "success"),
        ("job.read", "success"),
        ("events.read", "success"),
        ("patients.read", "success"),
        ("task.read", "not_found"),
    }
    [events_row] = await _rows(runtime, "events.read")
    assert (events_row["actor_type"], events_row["actor_id"]) == ("client", tenant.client_id)


async def test_no_row_holds_patient_data(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    accepted = (await api.post("/v1/tasks", headers=tenant.a, json=SUBJECT_TASK)).json()
    await api.get(f"/v1/tasks/{accepted['task_id']}", headers=tenant.a)
    await api.get("/v1/patients", params={"mrn": SUBJECT_TASK["patient_mrn"]}, headers=tenant.a)
    trail = json.dumps(await _rows(runtime), default=str)
    for phi in (SUBJECT_TASK["patient_mrn"], SUBJECT_TASK["description"], SUBJECT_TASK["subject"]):
        assert phi not in trail


async def test_credential_changes_have_their_rows(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    operator = audit.operator("req-op-1")
    await credentials.set_connection_disabled(runtime.ctx, operator, tenant.connection_b, True)
    await credentials.rotate_client_secret(runtime.ctx, operator, tenant.client_id, 10)
    revoked = await api.delete("/v1/access-token", headers=tenant.a)
    assert revoked.status_code == 200
    rows = [(r["action"], r["actor_type"], r["connection_id"]) for r in await _rows(runtime)]
    assert rows == [
        ("connection.disable", "operator", tenant.connection_b),
        ("client.rotate_secret", "operator", None),
        ("connection.delete", "client", tenant.connection_a),
    ]
    assert (await _rows(runtime, "connection.disable"))[0]["request_id"] == "req-op-1"


async def test_a_failed_change_leaves_no_row_claiming_success(
    runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    import pytest

    from emrtasks.domain import errors
    from emrtasks.storage import tables

    with pytest.raises(errors.Problem):
        await credentials.delete_connection(runtime.ctx, audit.operator(), "conn_missing")
    assert await count_rows(runtime, tables.audit_events) == 0
