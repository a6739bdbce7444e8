"""Jobs in the database: enqueue inside the caller's transaction, claim with a lease, finish fenced on the
attempt.

A claim is one transaction for both dialects: count running jobs per group, `SELECT ... FOR UPDATE
SKIP LOCKED` the oldest due candidates, keep those that fit their group, `UPDATE ... RETURNING` them.
SQLite renders no FOR UPDATE and serialises writers with BEGIN IMMEDIATE instead.
A finish or reschedule carries the attempt number it was claimed with, so a worker whose lease was
taken over cannot overwrite the newer attempt's result.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.domain import states
from emrtasks.queue import notify
from emrtasks.storage import db
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


async def enqueue(conn: DbConnection, **values: Any) -> None:
    """A job queued in the caller's transaction (the keywords of `job_row`); wakes the workers on commit."""
    await conn.execute(_INSERT, job_row(**values))
    await notify.notify(conn)


def job_row(
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
    trace_context: str | None = None,
) -> dict[str, Any]:
    """A queued job's row."""
    return {
        "id": job_id,
        "kind": kind,
        "state": QUEUED,
        "connection_id": connection_id,
        "task_id": task_id,
        "payload": dict(payload or {}),
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": run_at or now,
        "reconcile": False,
        "group_key": group_key,
        "group_limit": group_limit,
        "trace_context": trace_context,
        "created_at": now,
        "updated_at": now,
    }


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
    # could write the EMR again without looking first.
    async with db.write(engine) as conn:
        running = await _running_per_group(conn)
        full = [g for g, (count, room) in running.items() if count >= room]
        parameters: dict[str, Any] = {"b_now": now, "b_scan": limit * _SCAN_FACTOR}
        if full:
            found = await conn.execute(_CANDIDATES_SKIPPING, parameters | {"b_full": full})
        else:
            found = await conn.execute(_CANDIDATES, parameters)
        chosen = _fit(list(found.all()), running, limit)
        if not chosen:
            return []
        lease = now + timedelta(seconds=lease_seconds)
        taken = {"b_ids": chosen, "b_lease": lease, "b_worker": worker_id, "b_now": now}
        rows = (await conn.execute(_TAKE, taken)).all()
    claimed = sorted((_to_job(row._mapping) for row in rows), key=lambda j: chosen.index(j.id))
    return claimed


# How many candidates a claim looks at per job it wants, so capped groups cannot hide the rest.
_SCAN_FACTOR = 4

_CANDIDATES = db.hot(
    select(jobs.c.id, jobs.c.group_key, jobs.c.group_limit)
    .where(jobs.c.state == QUEUED, jobs.c.run_at <= bindparam("b_now"))
    .order_by(jobs.c.run_at)
    .limit(bindparam("b_scan"))
    .with_for_update(skip_locked=True)
)
_CANDIDATES_SKIPPING = db.hot(
    _CANDIDATES.where(
        or_(jobs.c.group_key.is_(None), jobs.c.group_key.not_in(bindparam("b_full", expanding=True)))
    )
)
_RUNNING_PER_GROUP = db.hot(
    select(jobs.c.group_key, func.count(), func.min(jobs.c.group_limit))
    .where(jobs.c.state == RUNNING, jobs.c.group_key.is_not(None))
    .group_by(jobs.c.group_key)
)


async def _running_per_group(conn: DbConnection) -> dict[str, tuple[int, int]]:
    rows = (await conn.execute(_RUNNING_PER_GROUP)).all()
    return {key: (count, room or 1) for key, count, room in rows}


def _fit(candidates: list[Any], running: dict[str, tuple[int, int]], limit: int) -> list[str]:
    """Oldest first, up to `limit`, never past a group's room."""
    taken = {key: count for key, (count, _room) in running.items()}
    chosen: list[str] = []
    for job_id, group, room in candidates:
        if len(chosen) == limit:
            break
        if group is not None and room:
            if taken.get(group, 0) >= room:
                continue
            taken[group] = taken.get(group, 0) + 1
        chosen.append(job_id)
    return chosen


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
    parameters = {"b_id": job.id, "b_attempts": job.attempts, "lease_expires_at": None, "locked_by": None}
    result = await conn.execute(_FENCED, parameters | {"updated_at": now, **values})
    return bool(result.rowcount == 1)


_FENCED = db.hot(
    update(jobs).where(
        jobs.c.id == bindparam("b_id"), jobs.c.attempts == bindparam("b_attempts"), jobs.c.state == RUNNING
    )
)


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
    jobs.c.trace_context,
)


_TAKE = db.hot(
    update(jobs)
    .where(jobs.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(
        state=RUNNING,
        attempts=jobs.c.attempts + 1,
        lease_expires_at=bindparam("b_lease"),
        locked_by=bindparam("b_worker"),
        updated_at=bindparam("b_now"),
    )
    .returning(*_JOB_COLUMNS)
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
        trace_context=row["trace_context"],
    )
