"""The create_task job against the sandbox EMR: retries, lost replies, crashes, and never a second write."""

import dataclasses

from sqlalchemy import func, select

from emrtasks.domain import outcomes
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import tasks
from emrtasks.storage import connections, db, tables
from tests.conftest import PHONE_TASK, SUBJECT_TASK, drain, make_tenant


async def _connection(rt, connection_id):
    async with db.read(rt.engine) as conn:
        return await connections.get_connection(conn, connection_id)


async def _set_knobs(rt, connection_id, **knobs):
    async with db.write(rt.engine) as conn:
        await connections.update_connection(conn, connection_id, rt.ctx.clock(), settings=knobs)


async def _accept(rt, connection_id, body=SUBJECT_TASK):
    return await tasks.accept_task(rt.ctx, await _connection(rt, connection_id), dict(body))


async def _task(rt, connection_id, task_id):
    return await tasks.get_task(rt.ctx, await _connection(rt, connection_id), task_id)


async def _job(rt, connection_id, job_id):
    return await tasks.get_job(rt.ctx, await _connection(rt, connection_id), job_id)


async def _emr_tasks(rt, connection_id, marker):
    return await rt.ctx.adapters.deps.sandbox_store.list_tasks(connection_id, marker=marker)


async def _events(rt, task_id):
    async with db.read(rt.engine) as conn:
        query = select(tables.events.c.type).where(tables.events.c.task_id == task_id)
        return list((await conn.execute(query)).scalars())


async def test_a_task_is_created_once_with_its_id_as_marker_and_one_event(runtime, tenant):
    accepted = await _accept(runtime, tenant.connection_a)
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    held = await _emr_tasks(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert [h["id"] for h in held] == [task["emr_task_id"]]
    assert held[0]["record"]["subject"] == SUBJECT_TASK["subject"]
    assert await _events(runtime, accepted.task_id) == ["task.created"]
    assert (await _job(runtime, tenant.connection_a, accepted.job_id))["state"] == jobs.SUCCEEDED


async def test_transient_failures_are_retried_until_the_emr_answers(runtime, tenant, clock):
    await _set_knobs(runtime, tenant.connection_a, transient_failure_rate=1.0)
    accepted = await _accept(runtime, tenant.connection_a)
    await drain(runtime)
    job = await _job(runtime, tenant.connection_a, accepted.job_id)
    assert (job["state"], job["attempts"], job["last_error_code"]) == ("queued", 1, "EMR_UNAVAILABLE")
    assert job["next_attempt_at"] is not None
    await _set_knobs(runtime, tenant.connection_a)
    clock.advance(60)
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert len(await _emr_tasks(runtime, tenant.connection_a, accepted.task_id)) == 1


async def test_a_task_fails_with_emr_unavailable_when_retries_run_out(runtime, tenant, clock):
    await _set_knobs(runtime, tenant.connection_a, transient_failure_rate=1.0)
    accepted = await _accept(runtime, tenant.connection_a)
    for _ in range(runtime.ctx.policy.task_max_attempts):
        await drain(runtime)
        clock.advance(3600)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    job = await _job(runtime, tenant.connection_a, accepted.job_id)
    assert task["status"] == domain_tasks.FAILED
    assert [r["code"] for r in task["reasons"]] == ["EMR_UNAVAILABLE"]
    assert job["attempts"] == runtime.ctx.policy.task_max_attempts
    assert job["state"] == jobs.FAILED
    assert await _events(runtime, accepted.task_id) == ["task.failed"]
    assert await _emr_tasks(runtime, tenant.connection_a, accepted.task_id) == []


async def test_a_lost_reply_is_looked_up_by_marker_and_never_written_twice(runtime, tenant, clock):
    await _set_knobs(runtime, tenant.connection_a, unknown_rate=1.0)
    accepted = await _accept(runtime, tenant.connection_a)
    await drain(runtime)
    assert (await _task(runtime, tenant.connection_a, accepted.task_id))["status"] == "processing"
    clock.advance(60)
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    held = await _emr_tasks(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert [h["id"] for h in held] == [task["emr_task_id"]]


async def test_a_worker_killed_after_the_emr_write_is_reconciled_not_repeated(runtime, tenant, clock):
    accepted = await _accept(runtime, tenant.connection_a)
    await jobs.claim(runtime.engine, worker_id="doomed", limit=1, lease_seconds=30, now=clock())
    connection = await _connection(runtime, tenant.connection_a)
    adapter = runtime.ctx.adapters.for_connection(connection)
    [patient] = await adapter.search_patients("MRN-1001")
    task_row = await _task(runtime, tenant.connection_a, accepted.task_id)
    request = domain_tasks.TaskRequest(
        description=task_row["description"],
        patient_mrn="MRN-1001",
        subject=task_row["subject"],
        assignee_user_id=task_row["assignee_user_id"],
    )
    written = await adapter.create_task(request, patient, marker=accepted.task_id)
    # ... and the worker dies here, before recording anything.
    clock.advance(31)
    assert await jobs.reap(runtime.engine, now=clock()) == 1
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert task["emr_task_id"] == written.emr_task_id
    assert len(await _emr_tasks(runtime, tenant.connection_a, accepted.task_id)) == 1
    assert (await _job(runtime, tenant.connection_a, accepted.job_id))["attempts"] == 2


async def test_a_worker_killed_before_the_emr_write_creates_the_task_once(runtime, tenant, clock):
    accepted = await _accept(runtime, tenant.connection_a)
    await jobs.claim(runtime.engine, worker_id="doomed", limit=1, lease_seconds=30, now=clock())
    clock.advance(31)
    await jobs.reap(runtime.engine, now=clock())
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert len(await _emr_tasks(runtime, tenant.connection_a, accepted.task_id)) == 1


async def test_two_tasks_under_one_marker_leave_the_outcome_unknown(runtime, tenant, clock):
    accepted = await _accept(runtime, tenant.connection_a)
    store = runtime.ctx.adapters.deps.sandbox_store
    for emr_id in ("emr_dup_1", "emr_dup_2"):
        await store.insert_task(tenant.connection_a, emr_id, accepted.task_id, {}, clock())
    await jobs.claim(runtime.engine, worker_id="doomed", limit=1, lease_seconds=30, now=clock())
    clock.advance(31)
    await jobs.reap(runtime.engine, now=clock())
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.UNKNOWN
    assert [r["code"] for r in task["reasons"]] == ["OUTCOME_UNKNOWN"]
    assert await _events(runtime, accepted.task_id) == ["task.unknown"]
    assert (await _job(runtime, tenant.connection_a, accepted.job_id))["state"] == jobs.UNKNOWN


async def test_an_unknown_mrn_fails_with_patient_not_found(runtime, tenant):
    accepted = await _accept(runtime, tenant.connection_a, {**SUBJECT_TASK, "patient_mrn": "MRN-0000"})
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert task["status"] == domain_tasks.FAILED
    assert [r["code"] for r in task["reasons"]] == ["PATIENT_NOT_FOUND"]
    assert "MRN-0000" in task["failure_reason"]
    assert await _emr_tasks(runtime, tenant.connection_a, accepted.task_id) == []


async def test_a_shared_mrn_fails_as_ambiguous_and_never_picks_the_first(runtime, tenant):
    accepted = await _accept(runtime, tenant.connection_b, {**PHONE_TASK, "patient_mrn": "MRN-2000"})
    await drain(runtime)
    task = await _task(runtime, tenant.connection_b, accepted.task_id)
    assert task["status"] == domain_tasks.FAILED
    assert [r["code"] for r in task["reasons"]] == ["PATIENT_AMBIGUOUS"]
    assert await _emr_tasks(runtime, tenant.connection_b, accepted.task_id) == []


async def test_a_broken_login_fails_the_task_with_login_required(runtime, tenant, clock):
    accepted = await _accept(runtime, tenant.connection_a)
    async with db.write(runtime.engine) as conn:
        await connections.update_connection(
            conn, tenant.connection_a, clock(), status=domain_tasks.CONNECTION_LOGIN_REQUIRED
        )
    await drain(runtime)
    task = await _task(runtime, tenant.connection_a, accepted.task_id)
    assert [r["code"] for r in task["reasons"]] == ["LOGIN_REQUIRED"]


async def test_every_terminal_task_has_exactly_one_event_and_no_other_does(runtime):
    tenant = await make_tenant(runtime, transient_failure_rate=0.3, unknown_rate=0.3)
    accepted = [await _accept(runtime, tenant.connection_a) for _ in range(30)]
    for _ in range(4):
        await drain(runtime)
        runtime.ctx.clock.advance(120)
    async with db.read(runtime.engine) as conn:
        per_task = dict(
            (
                await conn.execute(
                    select(tables.events.c.task_id, func.count()).group_by(tables.events.c.task_id)
                )
            ).all()
        )
    for item in accepted:
        task = await _task(runtime, tenant.connection_a, item.task_id)
        held = await _emr_tasks(runtime, tenant.connection_a, item.task_id)
        if task["status"] == "processing":
            assert item.task_id not in per_task
        else:
            assert per_task[item.task_id] == 1
        if task["status"] == "created":
            assert [h["id"] for h in held] == [task["emr_task_id"]]
        if task["status"] == "failed":
            assert held == []
        assert len(held) <= 1


async def test_an_emr_429_slows_that_connection_only(runtime, clock, monkeypatch):
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, retry_max_seconds=600)
    tenant = await make_tenant(runtime)
    other = await make_tenant(runtime, "other clinic")
    throttled = [await _accept(runtime, tenant.connection_a) for _ in range(3)]
    elsewhere = await _accept(runtime, other.connection_a)
    connection = await _connection(runtime, tenant.connection_a)
    adapter = runtime.ctx.adapters.for_connection(connection)

    async def rate_limited(request, patient, marker):
        return outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, "Too many requests.", retry_after=120)

    monkeypatch.setattr(adapter, "create_task", rate_limited)
    [first] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=clock())
    from emrtasks.service import create_task as handler

    await handler.run_create_task(runtime.ctx, first)
    monkeypatch.undo()
    await drain(runtime)
    assert (await _task(runtime, other.connection_a, elsewhere.task_id))["status"] == "created"
    states = [(await _task(runtime, tenant.connection_a, t.task_id))["status"] for t in throttled]
    assert states == ["processing"] * 3  # held back by the EMR's Retry-After
    clock.advance(125)
    await drain(runtime)
    states = [(await _task(runtime, tenant.connection_a, t.task_id))["status"] for t in throttled]
    assert states == ["created"] * 3
