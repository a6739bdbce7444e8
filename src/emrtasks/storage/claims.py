"""Claiming due jobs: on PostgreSQL one `UPDATE ... RETURNING`, on SQLite three statements.

A claim takes up to `limit` due jobs, oldest first, and never more of a group (an EMR connection, a
webhook endpoint) than its room: its `group_limit` less the jobs of it running now. On PostgreSQL the
running counts, the candidates (`FOR UPDATE SKIP LOCKED`), the cut to each group's room and the
update are one statement of CTEs, so a claim costs one round trip and no BEGIN or COMMIT. SQLite
(whose writers take turns anyway) counts, selects and updates in turn, and cuts in Python.
"""

from typing import Any

from sqlalchemy import bindparam, func, or_, select, text, update

from emrtasks.domain import states
from emrtasks.storage import db
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import jobs

QUEUED = states.JobState.QUEUED
RUNNING = states.JobState.RUNNING

# How many candidates a claim looks at per job it wants, so capped groups cannot hide the rest.
SCAN_FACTOR = 4

JOB_COLUMNS = (
    "id",
    "kind",
    "attempts",
    "max_attempts",
    "connection_id",
    "task_id",
    "reconcile",
    "last_error_code",
    "payload",
    "group_key",
    "group_limit",
    "trace_context",
)


async def claim(conn: DbConnection, *, worker_id: str, limit: int, lease: Any, now: Any) -> list[Any]:
    """The claimed jobs' rows (`JOB_COLUMNS`), oldest first; each now running under `worker_id` until
    `lease`, its attempt count raised."""
    taken = {"b_lease": lease, "b_worker": worker_id, "b_now": now}
    if conn.dialect.name == "postgresql":
        found = await conn.execute(_CLAIM, taken | {"b_scan": limit * SCAN_FACTOR, "b_limit": limit})
        return list(found.mappings())
    running = await _running_per_group(conn)
    full = [g for g, (count, room) in running.items() if count >= room]
    parameters: dict[str, Any] = {"b_now": now, "b_scan": limit * SCAN_FACTOR}
    if full:
        found = await conn.execute(_CANDIDATES_SKIPPING, parameters | {"b_full": full})
    else:
        found = await conn.execute(_CANDIDATES, parameters)
    chosen = _fit(list(found.all()), running, limit)
    if not chosen:
        return []
    rows = (await conn.execute(_TAKE, taken | {"b_ids": chosen})).mappings()
    return sorted(rows, key=lambda row: chosen.index(row["id"]))


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
    .returning(*(jobs.c[name] for name in JOB_COLUMNS))
)

# The same claim as one statement. `running`: each group's running jobs and its room (full groups'
# candidates are skipped, as above); `ranked`: each candidate's place among its group's candidates,
# oldest first; a candidate fits while its group's running jobs and those before it leave room under
# its own `group_limit` (as `_fit` counts, but counting every earlier candidate of the group, which
# differs only if one group's candidates carried different limits). Then the oldest `b_limit` fits.
_RETURNED = ", ".join(f"taken.{name}" for name in JOB_COLUMNS)
_CLAIM = db.hot(
    text(  # constants of this module only; every value is a bound parameter
        f"""
WITH running AS (
    SELECT group_key, count(*) AS n, coalesce(min(group_limit), 1) AS room
    FROM jobs WHERE state = '{RUNNING}' AND group_key IS NOT NULL GROUP BY group_key
), candidates AS (
    SELECT id, group_key, group_limit, run_at FROM jobs
    WHERE state = '{QUEUED}' AND run_at <= :b_now AND (group_key IS NULL OR group_key NOT IN (
        SELECT group_key FROM running WHERE n >= room))
    ORDER BY run_at, id LIMIT :b_scan
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT c.id, c.run_at, c.group_key, c.group_limit, coalesce(r.n, 0) AS n,
        row_number() OVER (PARTITION BY c.group_key ORDER BY c.run_at, c.id) AS k
    FROM candidates AS c LEFT JOIN running AS r ON r.group_key = c.group_key
), chosen AS (
    SELECT id FROM ranked
    WHERE group_key IS NULL OR coalesce(group_limit, 0) = 0 OR n + k <= group_limit
    ORDER BY run_at, id LIMIT :b_limit
), taken AS (
    UPDATE jobs SET state = '{RUNNING}', attempts = jobs.attempts + 1, lease_expires_at = :b_lease,
        locked_by = :b_worker, updated_at = :b_now
    FROM chosen WHERE jobs.id = chosen.id
    RETURNING jobs.*
)
SELECT {_RETURNED} FROM taken ORDER BY taken.run_at, taken.id
"""  # noqa: S608
    )
    .bindparams(
        bindparam("b_now", type_=jobs.c.run_at.type),
        bindparam("b_lease", type_=jobs.c.lease_expires_at.type),
        bindparam("b_worker", type_=jobs.c.locked_by.type),
        bindparam("b_scan", type_=jobs.c.attempts.type),
        bindparam("b_limit", type_=jobs.c.attempts.type),
    )
    .columns(*(jobs.c[name] for name in JOB_COLUMNS))
)
