"""Jobs in the database: enqueue inside the caller's transaction, claim with a lease, finish fenced on the
attempt.

A claim counts running jobs per group, takes the oldest due candidates (`FOR UPDATE SKIP LOCKED`),
keeps those that fit their group and `UPDATE ... RETURNING`s them, in one statement on either
database; SQLite renders no row locks and serialises writers with BEGIN IMMEDIATE (storage/claims.py).
A finish or reschedule carries the attempt number it was claimed with, so a worker whose lease was
taken over cannot overwrite the newer attempt's result.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.domain import states
from emrtasks.queue import notify
from emrtasks.storage import claims, db
from emrtasks.storage import steps as stored_steps
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import jobs

QUEUED = states.JobState.QUEUED
RUNNING = states.JobState.RUNNING
SUCCEEDED = states.JobState.SUCCEEDED
FAILED = states.JobState.FAILED
UNKNOWN = states.JobState.UNKNOWN
LEASE_EXPIRED = "LEASE_EXPIRED"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    attempts: int
    max_attempts: int
    connection_id: str | None = None
    task_id: str | None = None
    reconcile: bool = False
    last_error_code: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    group_key: str | None = None
    group_limit: int | None = None
    trace_context: str | None = None
    """The W3C traceparent of the span that queued it: its attempts continue that trace."""


async def enqueue(
    conn: DbConnection,
    *,
    job_id: str,
    kind: str,
    now: datetime,
    max_attempts: int,
    payload: Mapping[str, Any] | None = None,
    group_key: str | None = None,
    group_limit: int | None = None,
    run_at: datetime | None = None,
    trace_context: str | None = None,
) -> None:
    """A job queued in the caller's transaction; wakes the workers on commit. (A task's own job is
    written with the task: storage/steps.py.)"""
    row = job_row(
        job_id=job_id,
        kind=kind,
        now=now,
        max_attempts=max_attempts,
        payload=payload,
        group_key=group_key,
        group_limit=group_limit,
        run_at=run_at,
        trace_context=trace_context,
    )
    await conn.execute(_INSERT, row)
    await notify.notify(conn)


job_row = stored_steps.job_row  # a queued job's row (storage/steps.py writes it with its task)


# The statements of the hot path are built once, their values bound at each execution: building a
# statement cost several times what running it costs on SQLite (docs/performance.md).
_INSERT = db.hot(insert(jobs))


async def claim(
    engine: AsyncEngine, *, worker_id: str, limit: int, lease_seconds: float, now: datetime
) -> list[Job]:
    """Take up to `limit` due jobs, oldest first; each gets a lease and its attempt number raised.

    A group (an EMR connection, a webhook endpoint) gets no more than its `group_limit` running at
    once: full groups are skipped in SQL, and the batch is cut to each group's free room, so one
    group's backlog cannot fill the batch ahead of another group's single job. Across processes two
    concurrent claims may each fill the same room: the limit can overshoot by one batch there.
    """
    # Durable: a claim undone by a power loss would come back as a fresh job (reconcile false) and
    # could write the EMR again without looking first. One statement on PostgreSQL (storage/claims.py).
    lease = now + timedelta(seconds=lease_seconds)
    async with db.write(engine, one_statement=True) as conn:
        rows = await claims.claim(conn, worker_id=worker_id, limit=limit, lease=lease, now=now)
    return [_to_job(row) for row in rows]


async def defer_group(conn: DbConnection, group_key: str, until: datetime) -> None:
    """Hold a group's queued jobs until `until` (an EMR asked one connection to slow down)."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.group_key == group_key, jobs.c.state == QUEUED, jobs.c.run_at < until)
        .values(run_at=until)
    )


async def next_run_at(engine: AsyncEngine) -> datetime | None:
    query = select(func.min(jobs.c.run_at)).where(jobs.c.state == QUEUED)
    async with db.read(engine) as conn:
        value: datetime | None = (await conn.execute(query)).scalar()
    return value


async def extend_leases(
    engine: AsyncEngine,
    running: Sequence[Job],
    *,
    worker_id: str,
    lease_seconds: float,
    now: datetime,
) -> None:
    if not running:
        return
    # SKIP LOCKED: a row another transaction holds (the reaper, a settle) is renewed next time;
    # waiting on it could deadlock with that transaction's own row order.
    mine = (
        select(jobs.c.id)
        .where(jobs.c.id.in_([j.id for j in running]), jobs.c.locked_by == worker_id, jobs.c.state == RUNNING)
        .order_by(jobs.c.id)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(mine.scalar_subquery()))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    async with db.write(engine, durable=False) as conn:
        await conn.execute(statement)


async def expedite(conn: DbConnection, job_id: str, *, now: datetime) -> bool:
    """Make a queued job due now (a resend asked for while its next retry waits); False if it is
    no longer queued."""
    statement = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == QUEUED)
        .values(run_at=case((jobs.c.run_at > now, now), else_=jobs.c.run_at), updated_at=now)
    )
    result = await conn.execute(statement)
    if result.rowcount == 1:
        await notify.notify(conn)
    return bool(result.rowcount == 1)


async def requeue(
    conn: DbConnection, job_id: str, *, now: datetime, reconcile: bool, more_attempts: int
) -> bool:
    """A finished job queued again, due now, with `more_attempts` past the ones it has used (a person
    decided it should run again); `reconcile`: its first attempt looks before it writes. False if it
    is still queued or running."""
    statement = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state.not_in((QUEUED, RUNNING)))
        .values(
            state=QUEUED,
            run_at=now,
            reconcile=reconcile,
            max_attempts=jobs.c.attempts + more_attempts,
            lease_expires_at=None,
            locked_by=None,
            finished_at=None,
            updated_at=now,
        )
    )
    result = await conn.execute(statement)
    if result.rowcount == 1:
        await notify.notify(conn)
    return bool(result.rowcount == 1)


async def finish(
    conn: DbConnection,
    job: Job,
    state: states.JobState,
    *,
    now: datetime,
    error_code: str | None = None,
    error: str | None = None,
) -> bool:
    """Record a terminal state; False (and nothing written) if this attempt no longer holds the job."""
    values = {
        "state": state,
        "finished_at": now,
        "last_error_code": error_code,
        "last_error": error,
    }
    return await _fenced_update(conn, job, now, values)


async def reschedule(
    conn: DbConnection,
    job: Job,
    *,
    run_at: datetime,
    now: datetime,
    reconcile: bool,
    error_code: str | None,
    error: str | None,
    refund_attempt: bool = False,
) -> bool:
    """Queue the job again for `run_at`. `refund_attempt`: the attempt never reached the EMR (our
    count of its call budget stopped it), so it does not count towards `max_attempts`."""
    values = {
        "state": QUEUED,
        "run_at": run_at,
        "reconcile": reconcile,
        "last_error_code": error_code,
        "last_error": error,
        **({"attempts": job.attempts - 1} if refund_attempt else {}),
    }
    return await _fenced_update(conn, job, now, values)


async def _fenced_update(conn: DbConnection, job: Job, now: datetime, values: Mapping[str, Any]) -> bool:
    return await stored_steps.fenced_update(conn, job.id, job.attempts, now, values)


async def reap(engine: AsyncEngine, *, now: datetime) -> int:
    """Return jobs whose lease expired to the queue; their last attempt may have reached the EMR."""
    expired = (
        select(jobs.c.id)
        .where(jobs.c.state == RUNNING, jobs.c.lease_expires_at < now)
        .order_by(jobs.c.id)
        .with_for_update(skip_locked=True)  # a job being settled right now is not expired
    )
    statement = (
        update(jobs)
        .where(
            jobs.c.id.in_(expired.scalar_subquery()), jobs.c.state == RUNNING, jobs.c.lease_expires_at < now
        )
        .values(
            state=QUEUED,
            run_at=now,
            reconcile=True,
            locked_by=None,
            lease_expires_at=None,
            last_error_code=LEASE_EXPIRED,
            last_error="The worker running this job stopped answering.",
            updated_at=now,
        )
    )
    async with db.write(engine, durable=False) as conn:
        result = await conn.execute(statement)
    return int(result.rowcount)


async def still_held(engine: AsyncEngine, job: Job, *, now: datetime) -> bool:
    """Whether this attempt still holds the job with time left on its lease (checked before a write
    to an EMR, so a worker that lost its lease does not write after another took the job over)."""
    parameters = {"b_id": job.id, "b_attempts": job.attempts, "b_now": now}
    async with db.read(engine) as conn:
        return (await conn.execute(_HELD, parameters)).first() is not None


_HELD = db.hot(
    select(jobs.c.id).where(
        jobs.c.id == bindparam("b_id"),
        jobs.c.attempts == bindparam("b_attempts"),
        jobs.c.state == RUNNING,
        jobs.c.lease_expires_at > bindparam("b_now"),
    )
)


async def get_job(conn: DbConnection, job_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """A job's row; `lock`: and hold it until the transaction ends (PostgreSQL; SQLite's writers
    take turns anyway), so a worker settling it waits, or is waited for."""
    query = select(jobs).where(jobs.c.id == job_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


def _to_job(row: Any) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        connection_id=row["connection_id"],
        task_id=row["task_id"],
        reconcile=bool(row["reconcile"]),
        last_error_code=row["last_error_code"],
        payload=row["payload"] or {},
        group_key=row["group_key"],
        group_limit=row["group_limit"],
        trace_context=row["trace_context"],
    )
