"""The audit trail: one row per accepted task (in the accept's own transaction), per read of patient
data, per credential change; the request id echoed and kept; never PHI in a row."""

import dataclasses
import json

import httpx
import pytest

from emrtasks import bootstrap
from emrtasks.domain import errors
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import audit, credentials, link, webhooks
from emrtasks.storage import audit as stored_audit
from emrtasks.storage import tables
from tests.api.helpers import count_rows
from tests.conftest import SUBJECT_TASK, Tenant


def _allow_local_webhooks(runtime: bootstrap.Runtime) -> None:
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)


async def _rows(runtime: bootstrap.Runtime, action: str | None = None) -> list[dict[str, object]]:
    """The trail's rows, each as its columns."""
    found = await audit.list_rows(runtime.ctx, since=None, client_id=None, action=action, limit=1000)
    return [row.values() for row in found]


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
    with pytest.raises(errors.Problem):
        await credentials.delete_connection(runtime.ctx, audit.operator(), "conn_missing")
    assert await count_rows(runtime, tables.audit_events) == 0


async def test_webhook_settings_and_link_changes_have_their_rows(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    _allow_local_webhooks(runtime)
    client = tenant.headers()
    registered = await api.post("/v1/webhook", headers=client, json={"webhook_url": "http://127.0.0.1:9/a"})
    webhook_id = registered.json()["webhook_id"]
    assert (await api.post(f"/v1/webhook/{webhook_id}/rotate-secret", headers=client)).status_code == 200
    assert (await api.delete("/v1/webhook/wh_missing", headers=client)).status_code == 404
    settings = await api.post("/v1/settings", headers=tenant.a, json={"access_token_reference_id": "ref-1"})
    assert settings.status_code == 200
    token = (
        await api.post("/v1/link/token/create", headers=client, json={"user_id": "u-7", "org_id": "o"})
    ).json()
    linked = await link.submit_credentials(runtime.ctx, token["token"], "sandbox", None, {})
    assert (
        await api.get("/v1/link/token/exchange", params={"public_token": linked.public_token}, headers=client)
    ).status_code == 200
    rows = [(r["action"], r["outcome"], r["actor_type"], r["actor_id"]) for r in await _rows(runtime)]
    assert rows == [
        ("webhook.create", "success", "client", tenant.client_id),
        ("webhook.rotate_secret", "success", "client", tenant.client_id),
        ("webhook.delete", "not_found", "client", tenant.client_id),
        ("connection.update_settings", "success", "connection", tenant.connection_a),
        ("link_token.create", "success", "client", tenant.client_id),
        ("connection.link", "success", "link_user", "u-7"),
        ("link_token.exchange", "success", "client", tenant.client_id),
    ]
    [created, rotated] = await _rows(runtime, "webhook.create") + await _rows(
        runtime, "webhook.rotate_secret"
    )
    assert created["targets"] == rotated["targets"] == {"webhook_id": webhook_id}
    [linked_row] = await _rows(runtime, "connection.link")
    [exchanged] = await _rows(runtime, "link_token.exchange")
    assert linked_row["client_id"] == tenant.client_id
    assert linked_row["connection_id"] == exchanged["connection_id"] == exchanged["targets"]["connection_id"]


async def test_a_change_and_its_row_commit_together_or_not_at_all(
    runtime: bootstrap.Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_args: object) -> None:
        raise RuntimeError("the audit row could not be written")

    _allow_local_webhooks(runtime)
    monkeypatch.setattr(stored_audit, "insert_row", refuse)
    client = domain_tasks.Client(id=tenant.client_id, name="a")
    with pytest.raises(RuntimeError):
        await webhooks.register(
            runtime.ctx, audit.as_client(client.id), client, {"webhook_url": "http://127.0.0.1:9/b"}
        )
    assert await count_rows(runtime, tables.webhook_endpoints) == 0
