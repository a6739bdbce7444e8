"""Credential lifecycle through the service and the API: rotation with an overlap, disable, enable,
delete (pending work ends, history stays), `DELETE /v1/access-token`, and a change made by another
process reaching this one's credential cache within the poll bound."""

import asyncio
import dataclasses
import time

import httpx
from sqlalchemy import select

from emrtasks import bootstrap
from emrtasks.service import audit, credentials
from emrtasks.storage import db, tables
from tests.api.helpers import INVALID_CLIENT, INVALID_TOKEN, WRONG_SECRET, WRONG_TOKEN, unauthorized
from tests.conftest import SUBJECT_TASK, FakeClock, Tenant

OPERATOR = audit.operator()


async def _status(api: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await api.get("/v1/tasks/requirements", headers=headers)).status_code


async def test_rotated_secret_without_overlap_is_refused_at_once(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    rotated = await credentials.rotate_client_secret(runtime.ctx, OPERATOR, tenant.client_id)
    answer = await api.get("/v1/tasks/requirements", headers=tenant.a)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_CLIENT, WRONG_SECRET)
    fresh = {**tenant.a, "client_secret": rotated.secret}
    assert await _status(api, fresh) == 200


async def test_rotated_secret_works_until_its_overlap_ends(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    rotated = await credentials.rotate_client_secret(runtime.ctx, OPERATOR, tenant.client_id, 60)
    assert rotated.previous_expires_at is not None
    assert await _status(api, tenant.a) == 200
    assert await _status(api, {**tenant.a, "client_secret": rotated.secret}) == 200
    clock.advance(61)
    assert await _status(api, tenant.a) == 401
    assert await _status(api, {**tenant.a, "client_secret": rotated.secret}) == 200


async def test_rotated_token_works_until_its_overlap_ends(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    rotated = await credentials.rotate_connection_token(runtime.ctx, OPERATOR, tenant.connection_a, 30)
    new = tenant.headers(rotated.secret)
    assert await _status(api, tenant.a) == 200
    assert await _status(api, new) == 200
    clock.advance(31)
    answer = await api.get("/v1/tasks/requirements", headers=tenant.a)
    assert answer.status_code == 401
    assert answer.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)
    assert await _status(api, new) == 200


async def test_disabled_client_and_connection_are_refused_until_enabled(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    await credentials.set_client_disabled(runtime.ctx, OPERATOR, tenant.client_id, True)
    assert await _status(api, tenant.a) == 401
    await credentials.set_client_disabled(runtime.ctx, OPERATOR, tenant.client_id, False)
    assert await _status(api, tenant.a) == 200
    await credentials.set_connection_disabled(runtime.ctx, OPERATOR, tenant.connection_a, True)
    assert await _status(api, tenant.a) == 401
    assert await _status(api, tenant.b) == 200
    await credentials.set_connection_disabled(runtime.ctx, OPERATOR, tenant.connection_a, False)
    assert await _status(api, tenant.a) == 200


async def test_deleting_a_connection_ends_its_queued_work_and_keeps_the_history(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    accepted = (await api.post("/v1/tasks", headers=tenant.a, json=SUBJECT_TASK)).json()
    deleted = await credentials.delete_connection(runtime.ctx, OPERATOR, tenant.connection_a)
    assert deleted["jobs_ended"] == 1
    assert await _status(api, tenant.a) == 401
    async with db.read(runtime.engine) as conn:
        job = (await conn.execute(select(tables.jobs).where(tables.jobs.c.id == accepted["job_id"]))).one()
        task = (
            await conn.execute(select(tables.tasks).where(tables.tasks.c.id == accepted["task_id"]))
        ).one()
        connection = (
            await conn.execute(
                select(tables.connections).where(tables.connections.c.id == tenant.connection_a)
            )
        ).one()
    assert (job.state, job.last_error_code) == ("failed", "CONNECTION_DELETED")
    assert task.status == "failed"
    assert connection.deleted_at is not None
    assert connection.credentials is None
    assert await _status(api, tenant.b) == 200  # the client's other connection is untouched


async def test_deleting_a_client_refuses_all_its_credentials(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    await api.post("/v1/tasks", headers=tenant.b, json=SUBJECT_TASK)
    deleted = await credentials.delete_client(runtime.ctx, OPERATOR, tenant.client_id)
    assert deleted["state"] == "deleted"
    assert await _status(api, tenant.a) == 401
    assert await _status(api, tenant.b) == 401
    listed = {row["client_id"]: row["state"] for row in await credentials.list_clients(runtime.ctx)}
    assert listed[tenant.client_id] == "deleted"


async def test_deleting_a_client_wipes_its_webhook_endpoints_secrets(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    # A loopback receiver address (never connected to here), as the tests' deployments allow.
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)
    registered = await api.post(
        "/v1/webhook", headers=tenant.headers(), json={"webhook_url": "http://127.0.0.1:9/hook"}
    )
    assert registered.status_code == 201, registered.text
    await credentials.delete_client(runtime.ctx, OPERATOR, tenant.client_id)
    async with db.read(runtime.engine) as conn:
        rows = (await conn.execute(select(tables.webhook_endpoints))).all()
    assert [(r.status, r.secret, r.previous_secret) for r in rows] == [("deleted", "", None)]


async def test_a_client_app_revokes_its_own_access_token(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    answer = await api.delete("/v1/access-token", headers=tenant.a)
    assert answer.status_code == 200, answer.text
    assert answer.json()["connection_id"] == tenant.connection_a
    assert await _status(api, tenant.a) == 401
    again = await api.delete("/v1/access-token", headers=tenant.a)
    assert again.status_code == 401
    assert again.json() == unauthorized(INVALID_TOKEN, WRONG_TOKEN)


async def test_a_client_cannot_revoke_another_clients_token(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    from tests.conftest import make_tenant

    other = await make_tenant(runtime, "other")
    answer = await api.delete("/v1/access-token", headers={**other.headers(), "access_token": tenant.token_a})
    assert answer.status_code == 401
    assert await _status(api, tenant.a) == 200
    assert (await api.delete("/v1/access-token", headers=tenant.headers())).status_code == 401


async def test_overlap_out_of_range_is_refused(runtime: bootstrap.Runtime, tenant: Tenant) -> None:
    import pytest

    from emrtasks.domain import errors

    with pytest.raises(errors.Problem) as refused:
        await credentials.rotate_client_secret(runtime.ctx, OPERATOR, tenant.client_id, -1)
    assert refused.value.status == 400


async def test_another_process_disabling_a_cached_credential_is_seen_within_the_poll_bound(
    api: httpx.AsyncClient, runtime: bootstrap.Runtime, tenant: Tenant
) -> None:
    """This process caches credentials (5 s); a second runtime on the same database stands for
    another process (no NOTIFY on SQLite): the generation poll must drop the cache."""
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, auth_cache_seconds=5)
    assert await _status(api, tenant.a) == 200  # cached now
    async with bootstrap.runtime(runtime.settings, run_worker=False) as other:
        await credentials.set_connection_disabled(other.ctx, OPERATOR, tenant.connection_a, True)
    deadline = time.monotonic() + 1.0
    while await _status(api, tenant.a) != 401:
        assert time.monotonic() < deadline, "still accepted past the bound"
        await asyncio.sleep(0.05)


async def test_an_unknown_connection_is_named_a_connection_in_the_answer(runtime: bootstrap.Runtime) -> None:
    import pytest

    from emrtasks.domain import errors

    for change in (
        credentials.delete_connection(runtime.ctx, OPERATOR, "con_missing"),
        credentials.set_connection_disabled(runtime.ctx, OPERATOR, "con_missing", True),
    ):
        with pytest.raises(errors.Problem) as refused:
            await change
        assert (refused.value.status, refused.value.message) == (404, "Connection not found.")
