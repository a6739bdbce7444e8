"""The fused steps (storage/steps.py): the same rows on both databases, whichever way they are written.

On PostgreSQL each step is one statement of data-modifying CTEs; on SQLite the same rows statement by
statement. These tests read back every row a step writes, so the two paths cannot drift apart.
"""

import asyncio
from datetime import timedelta

from sqlalchemy import select

from emrtasks.domain import ids
from emrtasks.queue import jobs
from emrtasks.service import tasks
from emrtasks.storage import attempts as stored_attempts
from emrtasks.storage import connections, db, settle, tables
from emrtasks.storage import webhooks as stored_webhooks
from tests.conftest import SUBJECT_TASK


async def _endpoints(rt, client_id, *, active, disabled):
    now = rt.ctx.clock()
    made = []
    async with db.write(rt.engine) as conn:
        for n in range(active + disabled):
            endpoint_id = ids.new_id("whe")
            await stored_webhooks.insert_endpoint(
                conn,
                endpoint_id=endpoint_id,
                client_id=client_id,
                url=f"https://hooks.example/{n}",
                secret="sealed",
                now=now,
            )
            if n >= active:
                await stored_webhooks.update_endpoint(conn, endpoint_id, now, status=stored_webhooks.DISABLED)
            else:
                made.append(endpoint_id)
    return made


async def _accepted_and_claimed(rt, tenant):
    async with db.read(rt.engine) as conn:
        connection = await connections.get_connection(conn, tenant.connection_a)
    accepted = await tasks.accept_task(rt.ctx, connection, dict(SUBJECT_TASK))
    now = rt.ctx.clock()
    claimed = await jobs.claim(rt.engine, worker_id="w", limit=10, lease_seconds=30, now=now)
    assert [job.id for job in claimed] == [accepted.job_id]
    return accepted, claimed[0]


def _settled(job, accepted, client_id, connection_id, now, *, attempts=None):
    event_id = ids.new_id("evt")
    return settle.Settled(
        job_id=job.id,
        attempts=job.attempts if attempts is None else attempts,
        job_state=jobs.SUCCEEDED,
        error_code=None,
        task_id=accepted.task_id,
        status="created",
        emr_task_id="emr-1",
        failure_reason=None,
        reasons=None,
        event={
            "id": event_id,
            "client_id": client_id,
            "connection_id": connection_id,
            "type": "task.created",
            "job_id": job.id,
            "task_id": accepted.task_id,
            "body": '{"a": 1}',
            "created_at": now,
        },
    )


def _deliveries(now):
    return settle.Deliveries(
        kind="deliver_webhook",
        max_attempts=5,
        group_limit=2,
        run_at=now + timedelta(seconds=1),
        trace_context="tp",
    )


async def _rows(rt, table, **where):
    query = select(table).where(*(table.c[key] == value for key, value in where.items()))
    async with db.read(rt.engine) as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def test_accept_writes_the_task_its_job_and_its_audit_row(runtime, tenant):
    accepted, _job = await _accepted_and_claimed(runtime, tenant)
    [task] = await _rows(runtime, tables.tasks, id=accepted.task_id)
    [job] = await _rows(runtime, tables.jobs, id=accepted.job_id)
    audit = await _rows(runtime, tables.audit_events, action="task.accept")
    assert task["job_id"] == accepted.job_id and task["status"] == "processing"
    assert job["task_id"] == accepted.task_id and job["group_key"] == tenant.connection_a
    assert [row["targets"] for row in audit] == [{"task_id": accepted.task_id, "job_id": accepted.job_id}]


async def test_settle_writes_outcome_event_and_one_delivery_per_active_endpoint(runtime, tenant):
    active = await _endpoints(runtime, tenant.client_id, active=2, disabled=1)
    accepted, job = await _accepted_and_claimed(runtime, tenant)
    now = runtime.ctx.clock()
    settled = _settled(job, accepted, tenant.client_id, tenant.connection_a, now)
    minted = ids.created_at(ids.new_id("x"))
    async with db.write(runtime.engine) as conn:
        assert await settle.settle(conn, settled, _deliveries(now), now)
    minted_after = ids.created_at(ids.new_id("x"))

    [task] = await _rows(runtime, tables.tasks, id=accepted.task_id)
    [finished] = await _rows(runtime, tables.jobs, id=job.id)
    [event] = await _rows(runtime, tables.events, id=settled.event["id"])
    found = await _rows(runtime, tables.deliveries, event_id=event["id"])
    assert (task["status"], task["emr_task_id"], task["reasons"]) == ("created", "emr-1", [])
    assert (finished["state"], finished["locked_by"], finished["finished_at"]) == (jobs.SUCCEEDED, None, now)
    assert (event["type"], event["body"], event["task_id"]) == ("task.created", '{"a": 1}', accepted.task_id)
    assert sorted(d["endpoint_id"] for d in found) == sorted(active)
    for delivery in found:
        assert (delivery["status"], delivery["attempts"], delivery["resend_requested"]) == (
            "pending",
            0,
            False,
        )
        assert delivery["id"].startswith("dlv_") and len(delivery["id"]) == 30
        assert minted <= ids.created_at(delivery["id"]) <= minted_after  # ids.new_id's shape
        [queued] = await _rows(runtime, tables.jobs, id=delivery["job_id"])
        assert queued["payload"] == {"delivery_id": delivery["id"], "trigger": "scheduled"}
        assert (queued["kind"], queued["state"], queued["attempts"], queued["max_attempts"]) == (
            "deliver_webhook",
            jobs.QUEUED,
            0,
            5,
        )
        assert (queued["group_key"], queued["group_limit"]) == (delivery["endpoint_id"], 2)
        assert (queued["run_at"], queued["trace_context"]) == (now + timedelta(seconds=1), "tp")
        assert queued["id"].startswith("job_") and ids.plausible(queued["id"])
    assert len({d["id"] for d in found} | {d["job_id"] for d in found}) == 4


async def test_settle_by_an_attempt_that_lost_the_job_writes_nothing(runtime, tenant):
    await _endpoints(runtime, tenant.client_id, active=1, disabled=0)
    accepted, job = await _accepted_and_claimed(runtime, tenant)
    now = runtime.ctx.clock()
    stale = _settled(job, accepted, tenant.client_id, tenant.connection_a, now, attempts=job.attempts - 1)
    async with db.write(runtime.engine) as conn:
        assert not await settle.settle(conn, stale, _deliveries(now), now)

    [task] = await _rows(runtime, tables.tasks, id=accepted.task_id)
    [running] = await _rows(runtime, tables.jobs, id=job.id)
    assert task["status"] == "processing" and running["state"] == jobs.RUNNING
    assert await _rows(runtime, tables.events, task_id=accepted.task_id) == []
    assert await _rows(runtime, tables.deliveries, client_id=tenant.client_id) == []


async def test_one_statement_work_runs_without_a_transaction_and_refuses_a_second(runtime, tenant):
    writer = db.GroupCommitter(runtime.engine)

    async def two(conn):
        await conn.execute(select(tables.jobs.c.id).limit(1))
        await conn.execute(select(tables.jobs.c.id).limit(1))

    if runtime.engine.dialect.name == "postgresql":
        try:
            await writer.run(two, one_statement=True)
        except RuntimeError as error:
            assert "second statement" in str(error)
        else:
            raise AssertionError("a second statement ran outside a transaction")
    else:  # SQLite: a transaction as ever, whatever the work announces
        await writer.run(two, one_statement=True)


async def test_a_resend_marked_while_an_attempt_record_waits_for_its_job_is_taken(runtime, tenant):
    """The resend's transaction locks the job, then marks the delivery; a record that waited for the
    job's row must see that mark, though it was committed after the record's statement began."""
    await _endpoints(runtime, tenant.client_id, active=1, disabled=0)
    accepted, job = await _accepted_and_claimed(runtime, tenant)
    now = runtime.ctx.clock()
    settled = _settled(job, accepted, tenant.client_id, tenant.connection_a, now)
    due_now = settle.Deliveries(kind="deliver_webhook", max_attempts=5, group_limit=2, run_at=now)
    async with db.write(runtime.engine) as conn:
        assert await settle.settle(conn, settled, due_now, now)
    [delivery] = await _rows(runtime, tables.deliveries, event_id=settled.event["id"])
    [sending] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=now)

    async def record():
        async with db.write(runtime.engine) as conn:
            return await stored_attempts.record(
                conn,
                job_id=sending.id,
                attempts=sending.attempts,
                job_values={
                    "state": jobs.SUCCEEDED,
                    "finished_at": now,
                    "last_error_code": None,
                    "last_error": None,
                },
                delivery_id=delivery["id"],
                delivery_values={"status": "success", "attempts": 1, "last_attempt_at": now},
                attempt=_attempt_row(delivery, now),
                now=now,
            )

    async with db.write(runtime.engine) as holder:
        assert (await jobs.get_job(holder, sending.id, lock=True))["state"] == jobs.RUNNING
        recording = asyncio.create_task(record())
        await asyncio.sleep(0.2)  # the record's statement is waiting for the job's row now
        await stored_webhooks.update_delivery(holder, delivery["id"], now, resend_requested=True)
    assert await recording == (True, True)
    [after] = await _rows(runtime, tables.deliveries, id=delivery["id"])
    assert (after["status"], after["attempts"], after["resend_requested"]) == ("success", 1, False)
    assert len(await _rows(runtime, tables.delivery_attempts, delivery_id=delivery["id"])) == 1


def _attempt_row(delivery, now):
    return {
        "id": ids.new_id("att"),
        "delivery_id": delivery["id"],
        "event_id": delivery["event_id"],
        "endpoint_id": delivery["endpoint_id"],
        "attempt": 1,
        "trigger": "scheduled",
        "attempted_at": now,
        "status_code": 200,
        "duration_ms": 3,
        "response_body": "ok",
        "error": None,
    }


async def test_a_record_alone_that_finds_a_resend_runs_again_in_a_transaction(runtime, tenant):
    """Outside a transaction (PostgreSQL's one-statement write) a record that finds a resend asked
    for writes nothing and is run again in a transaction, where what follows from the resend can be
    written with it: one attempt row, the request taken."""
    await _endpoints(runtime, tenant.client_id, active=1, disabled=0)
    accepted, job = await _accepted_and_claimed(runtime, tenant)
    now = runtime.ctx.clock()
    settled = _settled(job, accepted, tenant.client_id, tenant.connection_a, now)
    due_now = settle.Deliveries(kind="deliver_webhook", max_attempts=5, group_limit=2, run_at=now)
    async with db.write(runtime.engine) as conn:
        assert await settle.settle(conn, settled, due_now, now)
    [delivery] = await _rows(runtime, tables.deliveries, event_id=settled.event["id"])
    [sending] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=now)
    async with db.write(runtime.engine) as conn:
        await stored_webhooks.update_delivery(conn, delivery["id"], now, resend_requested=True)
    runs = []

    async def work(conn):
        runs.append(db.outside_transaction(conn))
        return await stored_attempts.record(
            conn,
            job_id=sending.id,
            attempts=sending.attempts,
            job_values={
                "state": jobs.SUCCEEDED,
                "finished_at": now,
                "last_error_code": None,
                "last_error": None,
            },
            delivery_id=delivery["id"],
            delivery_values={"status": "success", "attempts": 1, "last_attempt_at": now},
            attempt=_attempt_row(delivery, now),
            now=now,
        )

    assert await db.GroupCommitter(runtime.engine).run(work, one_statement=True) == (True, True)
    assert runs == ([True, False] if runtime.engine.dialect.name == "postgresql" else [False])
    [after] = await _rows(runtime, tables.deliveries, id=delivery["id"])
    assert (after["status"], after["resend_requested"]) == ("success", False)
    assert len(await _rows(runtime, tables.delivery_attempts, delivery_id=delivery["id"])) == 1
    [finished] = await _rows(runtime, tables.jobs, id=sending.id)
    assert finished["state"] == jobs.SUCCEEDED
