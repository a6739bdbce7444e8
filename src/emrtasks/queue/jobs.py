"""Jobs in the database: enqueue inside the caller's transaction, claim with a lease, finish fenced on the
attempt.

One claim statement serves both dialects: `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING`; SQLite renders no FOR UPDATE and serialises writers with BEGIN IMMEDIATE instead.
A finish or reschedule carries the attempt number it was claimed with, so a worker whose lease was
taken over cannot overwrite the newer attempt's result.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from emrtasks.storage import db
from emrtasks.storage.tables import jobs

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
UNKNOWN = "unknown"
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


async def enqueue(
    conn: AsyncConnection,
    *,
    job_id: str,
    kind: str,
    now: datetime,
    max_attempts: int,
    connection_id: str | None = None,
    task_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
    group_key: str | None = None,
    group_limit: int | None = None,
    run_at: datetime | None = None,
) -> None:
    await conn.execute(
        insert(jobs).values(
            id=job_id,
            kind=kind,
            state=QUEUED,
            connection_id=connection_id,
            task_id=task_id,
            payload=dict(payload or {}),
            attempts=0,
            max_attempts=max_attempts,
            run_at=run_at or now,
            reconcile=False,
            group_key=group_key,
            group_limit=group_limit,
            created_at=now,
            updated_at=now,
        )
    )


async def claim(
    engine: AsyncEngine, *, worker_id: str, limit: int, lease_seconds: float, now: datetime
) -> list[Job]:
    """Take up to `limit` due jobs, oldest first; each gets a lease and its attempt number raised.

    A job of a group that already runs `group_limit` jobs waits. The check is per statement, so one
    claim may overshoot a group by its batch; the worker's per-group semaphore holds the excess back.
    """
    running = jobs.alias("running")
    running_in_group = (
        select(func.count())
        .select_from(running)
        .where(running.c.group_key == jobs.c.group_key, running.c.state == RUNNING)
        .scalar_subquery()
    )
    due = (
        select(jobs.c.id)
        .where(jobs.c.state == QUEUED, jobs.c.run_at <= now)
        .where(or_(jobs.c.group_key.is_(None), running_in_group < jobs.c.group_limit))
        .order_by(jobs.c.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(due.scalar_subquery()))
        .values(
            state=RUNNING,
            attempts=jobs.c.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            locked_by=worker_id,
            updated_at=now,
        )
        .returning(*_JOB_COLUMNS)
    )
    async with db.write(engine) as conn:
        rows = (await conn.execute(statement)).all()
    return [_to_job(row._mapping) for row in rows]


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
    statement = (
        update(jobs)
        .where(jobs.c.id.in_([j.id for j in running]), jobs.c.locked_by == worker_id)
        .where(jobs.c.state == RUNNING)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    async with db.write(engine) as conn:
        await conn.execute(statement)


async def finish(
    conn: AsyncConnection,
    job: Job,
    state: str,
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
    conn: AsyncConnection,
    job: Job,
    *,
    run_at: datetime,
    now: datetime,
    reconcile: bool,
    error_code: str | None,
    error: str | None,
) -> bool:
    values = {
        "state": QUEUED,
        "run_at": run_at,
        "reconcile": reconcile,
        "last_error_code": error_code,
        "last_error": error,
    }
    return await _fenced_update(conn, job, now, values)


async def _fenced_update(conn: AsyncConnection, job: Job, now: datetime, values: Mapping[str, Any]) -> bool:
    statement = (
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.attempts == job.attempts, jobs.c.state == RUNNING)
        .values(lease_expires_at=None, locked_by=None, updated_at=now, **values)
    )
    result = await conn.execute(statement)
    return bool(result.rowcount == 1)


async def reap(engine: AsyncEngine, *, now: datetime) -> int:
    """Return jobs whose lease expired to the queue; their last attempt may have reached the EMR."""
    statement = (
        update(jobs)
        .where(jobs.c.state == RUNNING, jobs.c.lease_expires_at < now)
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
    async with db.write(engine) as conn:
        result = await conn.execute(statement)
    return int(result.rowcount)


async def get_job(conn: AsyncConnection, job_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).mappings().first()
    return dict(row) if row else None


_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.kind,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.connection_id,
    jobs.c.task_id,
    jobs.c.reconcile,
    jobs.c.last_error_code,
    jobs.c.payload,
    jobs.c.group_key,
    jobs.c.group_limit,
)


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
    )
