"""Holes a review found: each stays closed."""

import asyncio

import pytest
from sqlalchemy import delete, func, select

from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import create_task, tasks
from emrtasks.storage import connections, db, tables
from emrtasks.webhooks import ssrf
from tests.conftest import SUBJECT_TASK


async def _connection(rt, connection_id):
    async with db.read(rt.engine) as conn:
        return await connections.get_connection(conn, connection_id)


async def _count(rt, table):
    async with db.read(rt.engine) as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar()


async def test_an_idempotency_claim_taken_over_mid_request_makes_no_second_task(runtime, tenant):
    connection = await _connection(runtime, tenant.connection_a)
    original = runtime.ctx.adapters.directory

    async def slow_then_taken_over(conn, **kwargs):
        async with db.write(runtime.engine) as c:  # another request took the key over meanwhile
            await c.execute(delete(tables.idempotency_keys))
        return await original(conn, **kwargs)

    runtime.ctx.adapters.directory = slow_then_taken_over
    with pytest.raises(Exception) as caught:
        await tasks.accept_task(runtime.ctx, connection, dict(SUBJECT_TASK), "key-taken")
    assert getattr(caught.value, "status", None) == 409
    assert await _count(runtime, tables.tasks) == 0


async def test_a_body_nested_too_deep_to_fingerprint_is_400(api, tenant):
    body = b'{"description": ' + b"[" * 300 + b"]" * 300 + b"}"
    answer = await api.post(
        "/v1/tasks",
        content=body,
        headers={**tenant.a, "Idempotency-Key": "deep", "content-type": "application/json"},
    )
    assert answer.status_code == 400


async def test_a_create_task_job_that_keeps_crashing_ends_unknown(runtime, tenant, clock):
    connection = await _connection(runtime, tenant.connection_a)
    accepted = await tasks.accept_task(runtime.ctx, connection, dict(SUBJECT_TASK))
    async with db.write(runtime.engine) as conn:
        await conn.execute(tables.jobs.update().values(attempts=runtime.ctx.policy.task_max_attempts + 3))
    [job] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=clock())
    await create_task.run_create_task(runtime.ctx, job)
    task = await tasks.get_task(runtime.ctx, connection, accepted.task_id)
    assert task["status"] == domain_tasks.UNKNOWN
    assert await _count(runtime, tables.sandbox_emr_tasks) == 0


async def test_a_worker_that_lost_its_lease_does_not_write_the_emr(runtime, tenant, clock):
    connection = await _connection(runtime, tenant.connection_a)
    await tasks.accept_task(runtime.ctx, connection, dict(SUBJECT_TASK))
    [stale] = await jobs.claim(runtime.engine, worker_id="slow", limit=1, lease_seconds=30, now=clock())
    clock.advance(31)
    await jobs.reap(runtime.engine, now=clock())
    await create_task.run_create_task(runtime.ctx, stale)
    assert await _count(runtime, tables.sandbox_emr_tasks) == 0


def test_webhook_urls_with_control_characters_are_refused_and_international_hosts_kept_ascii():
    with pytest.raises(ssrf.Refused):
        ssrf.split_url("https://hooks.example/a\x01b")
    assert ssrf.ascii_url("https://bücher.example/hook") == "https://xn--bcher-kva.example/hook"


async def test_a_group_commit_writer_that_is_cancelled_answers_every_caller(runtime):
    writer = db.GroupCommitter(runtime.engine)
    gate = asyncio.Event()

    async def stuck(conn):
        await gate.wait()

    first = asyncio.create_task(writer.run(stuck))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(writer.run(stuck))
    await asyncio.sleep(0.05)
    writer._writer.cancel()
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=5)
    assert all(isinstance(r, BaseException) for r in results)


async def _public_address(host, port):
    return ["93.184.215.14"]  # what a public name resolves to, without asking this machine's DNS


async def test_recover_with_a_time_out_of_range_is_400_naming_since(api, runtime, tenant):
    """0001-01-01 at +01:00 is before the first UTC instant Python can hold: converting it overflows."""
    runtime.ctx.resolver = _public_address
    registered = await api.post(
        "/v1/webhook", json={"webhook_url": "https://hooks.example/x"}, headers=tenant.headers()
    )
    assert registered.status_code == 201, registered.text
    answer = await api.post(
        f"/v1/webhook/{registered.json()['webhook_id']}/recover",
        json={"since": "0001-01-01T00:00:00+01:00"},
        headers=tenant.headers(),
    )
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["since"]
