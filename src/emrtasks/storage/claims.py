"""Claiming due jobs: one statement on either database.

A claim takes up to `limit` due jobs, oldest first, and never more of a group (an EMR connection, a
webhook endpoint) than its room: its `group_limit` less the jobs of it running now. The running
counts, the candidates, the cut to each group's room and the update are one statement of CTEs, so on
PostgreSQL a claim costs one round trip and no BEGIN or COMMIT; there the candidates are locked
`FOR UPDATE SKIP LOCKED`. SQLite renders no row locks (its writers take turns anyway).
"""

from typing import Any

from sqlalchemy import bindparam, text

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
    parameters = {"b_lease": lease, "b_worker": worker_id, "b_now": now}
    parameters |= {"b_scan": limit * SCAN_FACTOR, "b_limit": limit}
    if conn.dialect.name == "postgresql":
        return list((await conn.execute(_CLAIM, parameters)).mappings())
    rows = (await conn.execute(_CLAIM_SQLITE, parameters)).mappings()  # RETURNING has no ORDER BY
    return sorted(rows, key=lambda row: (row["run_at"], row["id"]))


# The claim as one statement. `running`: each group's running jobs and its room (the candidates of
# full groups are skipped); `ranked`: each candidate's place among its group's candidates, oldest
# first; a candidate fits while its group's running jobs and those before it leave room under its own
# `group_limit` (a group's jobs carry one limit; were two different, the earlier candidates count
# whether or not they fit theirs). Then the oldest `b_limit` that fit.
_CHOOSE = f"""
WITH running AS (
    SELECT group_key, count(*) AS n, coalesce(min(group_limit), 1) AS room
    FROM jobs WHERE state = '{RUNNING}' AND group_key IS NOT NULL GROUP BY group_key
), candidates AS (
    SELECT id, group_key, group_limit, run_at FROM jobs
    WHERE state = '{QUEUED}' AND run_at <= :b_now AND (group_key IS NULL OR group_key NOT IN (
        SELECT group_key FROM running WHERE n >= room))
    ORDER BY run_at, id LIMIT :b_scan{{lock}}
), ranked AS (
    SELECT c.id, c.run_at, c.group_key, c.group_limit, coalesce(r.n, 0) AS n,
        row_number() OVER (PARTITION BY c.group_key ORDER BY c.run_at, c.id) AS k
    FROM candidates AS c LEFT JOIN running AS r ON r.group_key = c.group_key
), chosen AS (
    SELECT id FROM ranked
    WHERE group_key IS NULL OR coalesce(group_limit, 0) = 0 OR n + k <= group_limit
    ORDER BY run_at, id LIMIT :b_limit
)"""  # noqa: S608
_SET = f"""
SET state = '{RUNNING}', attempts = jobs.attempts + 1, lease_expires_at = :b_lease, locked_by = :b_worker,
    updated_at = :b_now"""
_RETURNED = ", ".join(f"taken.{name}" for name in (*JOB_COLUMNS, "run_at"))

# PostgreSQL: the candidates locked `FOR UPDATE SKIP LOCKED`, the update in a CTE, the rows in order.
_CLAIM_PG = f"""{_CHOOSE.format(lock=" FOR UPDATE SKIP LOCKED")}, taken AS (
    UPDATE jobs {_SET}
    FROM chosen WHERE jobs.id = chosen.id
    RETURNING jobs.*
)
SELECT {_RETURNED} FROM taken ORDER BY taken.run_at, taken.id"""  # noqa: S608
# SQLite: no row locks (its writers take turns), UPDATE ... RETURNING, ordered by the caller.
_CLAIM_LITE = f"""{_CHOOSE.format(lock="")}
UPDATE jobs {_SET}
WHERE id IN (SELECT id FROM chosen)
RETURNING {", ".join((*JOB_COLUMNS, "run_at"))}"""  # noqa: S608


def _claim_statement(sql: str) -> Any:
    return (
        text(sql)
        .bindparams(
            bindparam("b_now", type_=jobs.c.run_at.type),
            bindparam("b_lease", type_=jobs.c.lease_expires_at.type),
            bindparam("b_worker", type_=jobs.c.locked_by.type),
            bindparam("b_scan", type_=jobs.c.attempts.type),
            bindparam("b_limit", type_=jobs.c.attempts.type),
        )
        .columns(*(jobs.c[name] for name in (*JOB_COLUMNS, "run_at")))
    )


_CLAIM = db.hot(_claim_statement(_CLAIM_PG))
_CLAIM_SQLITE = db.hot(_claim_statement(_CLAIM_LITE))
