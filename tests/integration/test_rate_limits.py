"""Vendors' call budgets kept in the database: scoped as the vendor scopes them (DrChrono: per API
application), shared exactly by every process, counted per HTTP call, refilled on the vendor's
window, and never touched by EMRs that document no limit."""

import asyncio
import dataclasses
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from emrtasks.domain import outcomes
from emrtasks.domain import tasks as domain_tasks
from emrtasks.emr import drchrono, eclinicalworks
from emrtasks.queue import jobs
from emrtasks.service import admin, create_task, tasks
from emrtasks.storage import connections, db, rate_limits, tables
from tests.conftest import SUBJECT_TASK, drain, make_tenant
from tests.contract import harness
from tests.contract.cases import drchrono as drchrono_case
from tests.contract.cases import elation as elation_case
from tests.contract.fakes import drchrono as fake_drchrono

HALF_PAST = datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC)
APP_KEY = f"drchrono:client_id:{fake_drchrono.CLIENT_ID}"


async def _take(engine, now, key=APP_KEY):
    limit = drchrono.RATE_LIMIT
    return await rate_limits.take(engine, key, calls=limit.calls, per_seconds=limit.per_seconds, now=now)


async def _spend(engine, now, count):
    return [await _take(engine, now) for _ in range(count)]


# --- the budget itself, on SQLite and PostgreSQL ---


async def test_the_501st_drchrono_call_in_an_hour_is_refused_until_the_top_of_the_hour(runtime):
    granted = await _spend(runtime.engine, HALF_PAST, 501)
    assert granted[:500] == [None] * 500
    assert granted[500] == 29 * 60 + 55  # 14:30:05 -> 15:00:00


async def test_the_budget_refills_at_the_top_of_the_hour_and_not_before(runtime):
    await _spend(runtime.engine, HALF_PAST, 500)
    assert await _take(runtime.engine, datetime(2026, 3, 2, 14, 59, 59, 500000, tzinfo=UTC)) == 0.5
    on_the_hour = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)
    assert await _spend(runtime.engine, on_the_hour, 500) == [None] * 500
    assert await _take(runtime.engine, on_the_hour) == 3600


async def test_two_processes_on_one_database_share_the_budget_exactly(runtime, settings):
    other = db.create_engine(settings.database_url)  # a second process's engine and pool
    try:
        takes = [_take(engine, HALF_PAST) for _ in range(300) for engine in (runtime.engine, other)]
        granted = await asyncio.gather(*takes)
    finally:
        await db.dispose(other)
    assert granted.count(None) == 500
    assert await _take(runtime.engine, HALF_PAST) is not None


async def test_each_scope_has_a_budget_of_its_own(runtime):
    await _spend(runtime.engine, HALF_PAST, 500)
    assert await _take(runtime.engine, HALF_PAST, key="drchrono:client_id:another-app") is None


async def test_the_251st_eclinicalworks_call_in_a_minute_waits_for_the_next_minute(runtime):
    limit = eclinicalworks.RATE_LIMIT
    practice = limit.key(eclinicalworks.NAME, "conn_1", {"base_url": "https://fhir4.example/fhir/r4/ABCD"})
    granted = [
        await rate_limits.take(
            runtime.engine, practice, calls=limit.calls, per_seconds=limit.per_seconds, now=HALF_PAST
        )
        for _ in range(251)
    ]
    assert granted == [None] * 250 + [55]  # 14:30:05 -> 14:31:00


def test_eclinicalworks_budgets_are_250_calls_a_minute_per_practice_base_url():
    limit = eclinicalworks.RATE_LIMIT
    assert limit is not None and (limit.calls, limit.per_seconds) == (250, 60)
    practice = "https://fhir4.eclinicalworks.com/fhir/r4/ABCD"
    same = limit.key(eclinicalworks.NAME, "conn_1", {"base_url": practice})
    assert same == limit.key(eclinicalworks.NAME, "conn_2", {"base_url": f"{practice}/"})
    assert same != limit.key(eclinicalworks.NAME, "conn_1", {"base_url": practice.replace("ABCD", "EFGH")})
    # a connection without the setting (none can be saved so, but never fail a build on it): its own
    assert limit.key(eclinicalworks.NAME, "conn_1", {}) != limit.key(eclinicalworks.NAME, "conn_2", {})


# --- adapters count every call against the scope's budget ---


@pytest.fixture
def fake(runtime, clock):
    """A DrChrono fake behind the runtime's adapters, the clock at half past two."""
    found = fake_drchrono.FakeDrChrono()
    http = httpx.AsyncClient(transport=harness.FakeTransport(found))
    clock.now = HALF_PAST
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http, clock=clock)
    return found


async def _drchrono_connection(rt, tenant, **config):
    settings = {**drchrono_case.CASE.config(harness.BASE_URL), **config}
    created = await admin.create_connection(
        rt.ctx, client_id=tenant.client_id, emr="drchrono", rules=None, reference_id=None, settings=settings
    )
    async with db.read(rt.engine) as conn:
        return created, await connections.get_connection(conn, created.connection_id)


async def test_two_connections_of_one_drchrono_app_share_one_budget(runtime, fake, monkeypatch):
    monkeypatch.setattr(drchrono, "RATE_LIMIT", dataclasses.replace(drchrono.RATE_LIMIT, calls=4))
    tenant = await make_tenant(runtime)
    _, first = await _drchrono_connection(runtime, tenant)
    _, second = await _drchrono_connection(runtime, tenant, access_token=fake.issue_token())
    one = runtime.ctx.adapters.for_connection(first)
    other = runtime.ctx.adapters.for_connection(second)

    await one.search_patients("MRN-1001")  # the token refresh and the search: two calls
    await one.search_patients("MRN-1001")
    await other.search_patients("MRN-1001")
    with pytest.raises(outcomes.AdapterError) as refused:
        await other.search_patients("MRN-1001")

    assert refused.value.outcome.code == outcomes.EMR_RATE_LIMITED
    assert refused.value.outcome.retry_after == 29 * 60 + 55
    assert len(fake.requests) == 4  # the refused call never left


async def test_a_connection_of_another_drchrono_app_keeps_its_own_budget(runtime, fake, monkeypatch):
    monkeypatch.setattr(drchrono, "RATE_LIMIT", dataclasses.replace(drchrono.RATE_LIMIT, calls=1))
    tenant = await make_tenant(runtime)
    _, first = await _drchrono_connection(runtime, tenant, access_token=fake.issue_token())
    _, second = await _drchrono_connection(
        runtime, tenant, access_token=fake.issue_token(), client_id="another-app"
    )
    await runtime.ctx.adapters.for_connection(first).search_patients("MRN-1001")
    await runtime.ctx.adapters.for_connection(second).search_patients("MRN-1001")
    assert len(fake.requests) == 2


async def _leave_calls(rt, count, now=HALF_PAST):
    """The app's budget for this hour, with `count` calls left (other processes spent the rest)."""
    window = rate_limits.window_start(now, drchrono.RATE_LIMIT.per_seconds)
    await _take(rt.engine, now)
    async with db.write(rt.engine) as conn:
        await conn.execute(
            update(tables.rate_limits)
            .where(tables.rate_limits.c.scope_key == APP_KEY)
            .values(used=drchrono.RATE_LIMIT.calls - count, window_start=window)
        )


async def _job_row(rt, job_id):
    async with db.read(rt.engine) as conn:
        query = select(tables.jobs).where(tables.jobs.c.id == job_id)
        return (await conn.execute(query)).mappings().one()


async def _accept_drchrono_task(rt, fake):
    tenant = await make_tenant(rt)
    _, connection = await _drchrono_connection(rt, tenant, access_token=fake.issue_token())
    request = drchrono_case.CASE.request
    body = {k: v for k, v in dataclasses.asdict(request).items() if v not in (None, ())}
    return connection, await tasks.accept_task(rt.ctx, connection, body)


async def test_a_write_refused_for_budget_is_not_sent_and_its_job_waits_for_the_next_hour(runtime, fake):
    connection, accepted = await _accept_drchrono_task(runtime, fake)
    await _leave_calls(runtime, 1)  # enough to find the patient, not to write

    await drain(runtime)

    assert [r.method for r in fake.api_requests()][-1] == "GET"  # the POST was never sent
    assert fake.created == []
    job = await _job_row(runtime, accepted.job_id)
    assert job["state"] == jobs.QUEUED and job["last_error_code"] == outcomes.EMR_RATE_LIMITED
    assert job["run_at"] == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # when the budget refills
    assert job["reconcile"] is False  # nothing was sent, so nothing to look up before writing
    assert job["attempts"] == 0  # the EMR never saw the attempt
    task = await tasks.get_task(runtime.ctx, connection, accepted.task_id)
    assert task["status"] == domain_tasks.PROCESSING


async def test_a_task_waits_for_the_budget_past_its_attempts_and_is_then_written_once(runtime, fake, clock):
    connection, accepted = await _accept_drchrono_task(runtime, fake)
    for _ in range(runtime.ctx.policy.task_max_attempts + 2):  # other systems spend every hour's budget
        await _leave_calls(runtime, 1, clock.now)
        await drain(runtime)
        clock.now = (await _job_row(runtime, accepted.job_id))["run_at"]
    assert fake.created == []

    await drain(runtime)  # a fresh hour's budget

    task = await tasks.get_task(runtime.ctx, connection, accepted.task_id)
    assert task["status"] == domain_tasks.CREATED
    assert [str(t["id"]) for t in fake.created] == [task["emr_task_id"]]


async def test_a_read_refused_for_budget_answers_503_with_the_time_to_wait(runtime, fake, api):
    tenant = await make_tenant(runtime)
    created, _ = await _drchrono_connection(runtime, tenant, access_token=fake.issue_token())
    await _leave_calls(runtime, 0)

    answer = await api.get(
        "/v1/patients", params={"mrn": "MRN-1001"}, headers=tenant.headers(created.access_token)
    )

    assert answer.status_code == 503
    assert answer.json()["error"] == "emr_rate_limited"
    assert answer.headers["retry-after"] == str(29 * 60 + 55)
    assert fake.api_requests() == []


# --- EMRs without a documented limit pay nothing for it ---


async def test_an_emr_without_a_limit_makes_no_rate_limit_statements(runtime, monkeypatch):
    taken = []

    async def spy(*args, **kwargs):
        taken.append(args)
        return None

    monkeypatch.setattr(rate_limits, "take", spy)
    tenant = await make_tenant(runtime)
    elation = elation_case.CASE.make_fake()
    http = httpx.AsyncClient(transport=harness.FakeTransport(elation))
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    created = await admin.create_connection(
        runtime.ctx,
        client_id=tenant.client_id,
        emr="elation",
        rules=None,
        reference_id=None,
        settings=elation_case.CASE.config(harness.BASE_URL),
    )
    connection = await _connection(runtime, created.connection_id)
    await create_task.resolve_patient(runtime.ctx.adapters.for_connection(connection), "MRN-1001")
    await tasks.accept_task(runtime.ctx, await _connection(runtime, tenant.connection_a), dict(SUBJECT_TASK))
    await drain(runtime)

    assert elation.api_requests()  # the EMR was called...
    assert taken == []  # ...and no budget was consulted
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(select(func.count()).select_from(tables.rate_limits))).scalar() == 0


async def _connection(rt, connection_id):
    async with db.read(rt.engine) as conn:
        return await connections.get_connection(conn, connection_id)
