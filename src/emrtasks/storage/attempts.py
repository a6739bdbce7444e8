"""A webhook attempt's record: its job moved (fenced on the attempt), the delivery's resend request
taken, the attempt's row and the delivery's new status; on PostgreSQL one statement.

The order matters to a resend asked for while the attempt runs (service/webhooks.py locks the job,
then marks the delivery): the resend request is read only once the job's row is ours, so such a
request is either seen here or finds the job no longer running. On PostgreSQL the job is locked
`FOR UPDATE` first and the delivery read `FOR UPDATE` behind an `EXISTS (SELECT FROM held)` one-time
filter, so any wait for the job's lock comes first, and the delivery row read is the newest committed
one, as a statement of its own would have read it. What follows from a resend needs the caller's
transaction: a record run as a statement alone (`db.write(one_statement=True)`) that finds one writes
nothing and raises `db.NeedsTransaction`, and the group commit runs it again in a transaction.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String, Text, bindparam, insert, text, update

from emrtasks.domain import states
from emrtasks.storage import db, steps
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import UTCDateTime, deliveries, delivery_attempts

RUNNING = states.JobState.RUNNING


async def record(
    conn: DbConnection,
    *,
    job_id: str,
    attempts: int,
    job_values: Mapping[str, Any],
    delivery_id: str,
    delivery_values: Mapping[str, Any],
    attempt: Mapping[str, Any],
    now: datetime,
) -> tuple[bool, bool]:
    """Write an attempt: (whether this attempt still held its job, whether a resend was asked for
    meanwhile, now taken). Nothing is written if the job is no longer this attempt's.
    `job_values`: the job's `state`, `last_error_code`, `last_error`, and `finished_at` (an end) or
    `run_at` and `reconcile` (a retry); `delivery_values`: its `status`, `attempts`, `last_attempt_at`."""
    if not steps.is_pg(conn):
        if not await steps.fenced_update(conn, job_id, attempts, now, job_values):
            return False, False
        resend = (await conn.execute(_TAKE_RESEND, {"b_id": delivery_id})).rowcount == 1
        await conn.execute(_INSERT_ATTEMPT, dict(attempt))
        await conn.execute(_UPDATE_DELIVERY, {"b_id": delivery_id, "updated_at": now, **delivery_values})
        return True, resend
    parameters = {
        "now": now,
        "job_id": job_id,
        "attempts": attempts,
        "job_state": job_values["state"],
        "run_at": job_values.get("run_at"),
        "reconcile": job_values.get("reconcile"),
        "finished_at": job_values.get("finished_at"),
        "error_code": job_values.get("last_error_code"),
        "error": job_values.get("last_error"),
        "delivery_id": delivery_id,
        "d_status": delivery_values["status"],
        "d_attempts": delivery_values["attempts"],
        "d_last_attempt_at": delivery_values["last_attempt_at"],
        "alone": db.outside_transaction(conn),
    } | {f"a_{key}": value for key, value in attempt.items()}
    found = (await conn.execute(_RECORD, parameters)).first()
    if found is None or found[0] != 1:
        return False, False
    if found[1] and not found[2]:  # a resend to act on, outside a transaction: nothing written yet
        raise db.NeedsTransaction("a resend was asked for during the attempt")
    return True, bool(found[1])


_TAKE_RESEND = db.hot(
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.resend_requested)
    .values(resend_requested=False)
)
_INSERT_ATTEMPT = db.hot(insert(delivery_attempts))
_UPDATE_DELIVERY = db.hot(update(deliveries).where(deliveries.c.id == bindparam("b_id")))

_ATTEMPT_COLUMNS = tuple(c.name for c in delivery_attempts.c)
_TIMES = ("now", "run_at", "finished_at", "d_last_attempt_at")
_STRINGS = ("job_id", "job_state", "error_code", "delivery_id", "d_status")
_RECORD = db.hot(
    text(  # constants of this module only; every value is a bound parameter
        f"""
WITH held AS (
    SELECT id FROM jobs WHERE id = :job_id AND attempts = :attempts AND state = '{RUNNING}' FOR UPDATE
), seen AS (
    SELECT id, resend_requested FROM deliveries
    WHERE id = :delivery_id AND EXISTS (SELECT FROM held)
    FOR UPDATE
), go AS (
    SELECT FROM held WHERE NOT (:alone AND coalesce((SELECT bool_or(resend_requested) FROM seen), false))
), j AS (
    UPDATE jobs SET state = :job_state, run_at = coalesce(:run_at, run_at),
        reconcile = coalesce(:reconcile, reconcile), finished_at = coalesce(:finished_at, finished_at),
        last_error_code = :error_code, last_error = :error, lease_expires_at = NULL, locked_by = NULL,
        updated_at = :now
    WHERE jobs.id IN (SELECT id FROM held) AND EXISTS (SELECT FROM go)
    RETURNING jobs.id
), d AS (
    UPDATE deliveries SET status = :d_status, attempts = :d_attempts, last_attempt_at = :d_last_attempt_at,
        resend_requested = false, updated_at = :now
    FROM seen WHERE deliveries.id = seen.id AND EXISTS (SELECT FROM go)
), a AS (
    INSERT INTO delivery_attempts ({", ".join(_ATTEMPT_COLUMNS)})
    SELECT {", ".join(f":a_{name}" for name in _ATTEMPT_COLUMNS)} FROM j
)
SELECT (SELECT count(*) FROM held) AS held,
    coalesce((SELECT bool_or(resend_requested) FROM seen), false) AS resend,
    (SELECT count(*) FROM j) AS written
"""  # noqa: S608
    ).bindparams(
        *(
            bindparam(name, type_=UTCDateTime)
            for name in ("now", "run_at", "finished_at", "d_last_attempt_at")
        ),
        *(
            bindparam(name, type_=String)
            for name in ("job_id", "job_state", "error_code", "delivery_id", "d_status")
        ),
        *(bindparam(name, type_=Integer) for name in ("attempts", "d_attempts")),
        bindparam("reconcile", type_=Boolean),
        bindparam("alone", type_=Boolean),
        bindparam("error", type_=Text),
        *(bindparam(f"a_{c.name}", type_=c.type) for c in delivery_attempts.c),
    )
)
