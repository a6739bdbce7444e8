"""Settling a task: its job finished (fenced on the attempt), its outcome, its event, and a delivery
with its job for each of the client's active endpoints; on PostgreSQL one statement.

On PostgreSQL the step is one statement of data-modifying CTEs, each part gated on the fenced job
update having matched, with `pg_notify` in it; the new deliveries' and jobs' ids are minted in SQL,
shaped as ids.new_id mints them. SQLite writes the same rows statement by statement, in the caller's
transaction. tests/integration/test_steps.py reads back every row on both.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, bindparam, insert, select, text, update

from emrtasks.domain import ids, states
from emrtasks.storage import db
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.db import DbConnection
from emrtasks.storage.steps import INSERT_JOB, JOBS_CHANNEL, fenced_update, is_pg, job_row
from emrtasks.storage.tables import UTCDateTime, events, tasks, webhook_endpoints

QUEUED = states.JobState.QUEUED
RUNNING = states.JobState.RUNNING
ACTIVE = states.EndpointStatus.ACTIVE
PENDING = states.DeliveryStatus.PENDING
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"  # ids.new_id's alphabet


@dataclass(frozen=True)
class Deliveries:
    """What fanning an event out queues: one delivery per active endpoint of the client, each with
    its job (`kind`, due at `run_at`, grouped by endpoint), continuing the trace `trace_context`."""

    kind: str
    max_attempts: int
    group_limit: int
    run_at: datetime
    trace_context: str | None = None


@dataclass(frozen=True)
class Settled:
    """A task's final outcome, written with its job's end, its event and the event's deliveries."""

    job_id: str
    attempts: int
    job_state: str
    error_code: str | None
    task_id: str
    status: str
    emr_task_id: str | None
    failure_reason: str | None
    reasons: list[dict[str, str]] | None
    event: Mapping[str, Any]
    """The event's row (`events` columns)."""


async def settle(conn: DbConnection, settled: Settled, deliveries: Deliveries, now: datetime) -> bool:
    """The job finished (fenced on its attempt), the task's outcome, its event, and a delivery with
    its job for each of the client's active endpoints; False, and nothing written, when the attempt
    no longer holds the job."""
    if is_pg(conn):
        found = (await conn.execute(_SETTLE, _settle_parameters(settled, deliveries, now))).first()
        if found is None or found[0] != 1:
            return False
        conn.notified = conn.notified or bool(found[1])
        return True
    if not await fenced_update(conn, settled.job_id, settled.attempts, now, _finished(settled, now)):
        return False
    task: dict[str, Any] = {
        "b_id": settled.task_id,
        "status": settled.status,
        "reasons": settled.reasons or [],
    }
    task |= {"emr_task_id": settled.emr_task_id, "failure_reason": settled.failure_reason, "updated_at": now}
    await conn.execute(_FINISH_TASK, task)
    await conn.execute(_INSERT_EVENT, dict(settled.event))
    await fan_out(conn, settled.event["client_id"], settled.event["id"], deliveries, now)
    return True


async def fan_out(
    conn: DbConnection, client_id: str, event_id: str, deliveries: Deliveries, now: datetime
) -> int:
    """One delivery and its job per active endpoint of the client, for an event written in this
    transaction; how many."""
    found = await conn.execute(_ACTIVE_ENDPOINTS, {"b_client": client_id, "b_status": ACTIVE})
    endpoints = [row[0] for row in found.all()]
    for endpoint_id in endpoints:
        delivery_id, job_id = ids.new_id("dlv"), ids.new_id("job")
        payload = {"delivery_id": delivery_id, "trigger": "scheduled"}
        job = job_row(
            job_id=job_id,
            kind=deliveries.kind,
            now=now,
            max_attempts=deliveries.max_attempts,
            payload=payload,
            group_key=endpoint_id,
            group_limit=deliveries.group_limit,
            run_at=deliveries.run_at,
            trace_context=deliveries.trace_context,
        )
        await conn.execute(INSERT_JOB, job)
        await stored_webhooks.insert_delivery(
            conn,
            delivery_id=delivery_id,
            event_id=event_id,
            endpoint_id=endpoint_id,
            client_id=client_id,
            job_id=job_id,
            now=now,
        )
    if endpoints and is_pg(conn) and not conn.notified:
        conn.notified = True
        await conn.execute(_NOTIFY)
    return len(endpoints)


def _finished(settled: Settled, now: datetime) -> dict[str, Any]:
    return {
        "state": settled.job_state,
        "finished_at": now,
        "last_error_code": settled.error_code,
        "last_error": None,
    }


_FINISH_TASK = db.hot(update(tasks).where(tasks.c.id == bindparam("b_id")))
_INSERT_EVENT = db.hot(insert(events))
_ACTIVE_ENDPOINTS = db.hot(
    select(webhook_endpoints.c.id)
    .where(
        webhook_endpoints.c.client_id == bindparam("b_client"),
        webhook_endpoints.c.status == bindparam("b_status"),
    )
    .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
)
_NOTIFY = db.hot(text(f"SELECT pg_notify('{JOBS_CHANNEL}', '')"))


def _settle_parameters(settled: Settled, deliveries: Deliveries, now: datetime) -> dict[str, Any]:
    event = settled.event
    return {
        "now": now,
        "job_id": settled.job_id,
        "attempts": settled.attempts,
        "job_state": settled.job_state,
        "error_code": settled.error_code,
        "task_id": settled.task_id,
        "status": settled.status,
        "emr_task_id": settled.emr_task_id,
        "failure_reason": settled.failure_reason,
        "reasons": settled.reasons or [],
        "event_id": event["id"],
        "client_id": event["client_id"],
        "connection_id": event["connection_id"],
        "event_type": event["type"],
        "event_job_id": event["job_id"],
        "event_task_id": event["task_id"],
        "body": event["body"],
        "event_at": event["created_at"],
        "d_kind": deliveries.kind,
        "d_max_attempts": deliveries.max_attempts,
        "d_group_limit": deliveries.group_limit,
        "d_run_at": deliveries.run_at,
        "d_trace_context": deliveries.trace_context,
    }


def _crockford(value: str, length: int) -> str:
    """SQL for `value` (a bigint expression) in `length` Crockford base32 characters, as ids.new_id
    writes them (most significant first)."""
    digit = f"((({value}) >> (5 * ({length - 1} - i))) & 31)::int + 1"
    return (  # constants of this module only: nothing from outside goes into the SQL
        f"(SELECT string_agg(substr('{CROCKFORD}', {digit}, 1), '' ORDER BY i)"  # noqa: S608
        f" FROM generate_series(0, {length - 1}) AS i)"
    )


def _new_id(prefix: str, random_hex: str) -> str:
    """SQL for an id shaped as ids.new_id mints them: 48 bits of the clock's milliseconds, then 80
    random bits, taken from `random_hex` (32 hex digits of a version 4 UUID, whose fixed version and
    variant digits, the 13th and 17th, are left out)."""
    millis = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    high = f"('x' || substr({random_hex}, 1, 10))::bit(40)::bigint"
    low = f"('x' || substr({random_hex}, 21, 10))::bit(40)::bigint"
    return f"'{prefix}_' || {_crockford(millis, 10)} || {_crockford(high, 8)} || {_crockford(low, 8)}"


_SETTLE_STRINGS = (
    "job_id",
    "job_state",
    "error_code",
    "task_id",
    "status",
    "emr_task_id",
    "failure_reason",
    "event_id",
    "client_id",
    "connection_id",
    "event_type",
    "event_job_id",
    "event_task_id",
    "d_kind",
    "d_trace_context",
)

# Settle, on PostgreSQL: every write of the step in one statement. Each part runs only if the fenced
# job update matched (EXISTS (SELECT FROM j)); `ep` is materialised (two parts read it), so each
# endpoint's new ids are drawn once. Foreign keys are checked at the end of the statement.
_SETTLE = db.hot(
    text(  # constants of this module only; every value is a bound parameter
        f"""
WITH j AS (
    UPDATE jobs SET state = :job_state, finished_at = :now, last_error_code = :error_code,
        last_error = NULL, lease_expires_at = NULL, locked_by = NULL, updated_at = :now
    WHERE id = :job_id AND attempts = :attempts AND state = '{RUNNING}'
    RETURNING id
), t AS (
    UPDATE tasks SET status = :status, emr_task_id = :emr_task_id, failure_reason = :failure_reason,
        reasons = :reasons, updated_at = :now
    WHERE id = :task_id AND EXISTS (SELECT FROM j)
), e AS (
    INSERT INTO events (id, client_id, connection_id, type, job_id, task_id, body, created_at)
    SELECT :event_id, :client_id, :connection_id, :event_type, :event_job_id, :event_task_id, :body, :event_at
    FROM j
), drawn AS (
    SELECT w.id AS endpoint_id, replace(gen_random_uuid()::text, '-', '') AS d_hex,
        replace(gen_random_uuid()::text, '-', '') AS j_hex
    FROM webhook_endpoints AS w
    WHERE w.client_id = :client_id AND w.status = '{ACTIVE}' AND EXISTS (SELECT FROM j)
), ep AS MATERIALIZED (
    SELECT endpoint_id, {_new_id("dlv", "d_hex")} AS delivery_id, {_new_id("job", "j_hex")} AS job_id
    FROM drawn
), d AS (
    INSERT INTO deliveries (id, event_id, endpoint_id, client_id, status, attempts, job_id,
        resend_requested, created_at, updated_at)
    SELECT delivery_id, :event_id, endpoint_id, :client_id, '{PENDING}', 0, job_id, false, :now, :now
    FROM ep
), dj AS (
    INSERT INTO jobs (id, kind, state, connection_id, task_id, payload, attempts, max_attempts, run_at,
        reconcile, group_key, group_limit, trace_context, created_at, updated_at)
    SELECT job_id, :d_kind, '{QUEUED}', NULL, NULL,
        json_build_object('delivery_id', delivery_id, 'trigger', 'scheduled'), 0, :d_max_attempts,
        :d_run_at, false, endpoint_id, :d_group_limit, :d_trace_context, :now, :now
    FROM ep
)
SELECT (SELECT count(*) FROM j) AS moved, (SELECT count(*) FROM ep) AS queued,
    CASE WHEN EXISTS (SELECT FROM ep) THEN pg_notify('{JOBS_CHANNEL}', '') END AS woken
"""  # noqa: S608
    ).bindparams(
        *(bindparam(name, type_=UTCDateTime) for name in ("now", "event_at", "d_run_at")),
        *(bindparam(name, type_=Integer) for name in ("attempts", "d_max_attempts", "d_group_limit")),
        bindparam("reasons", type_=JSON),
        *(bindparam(name, type_=String) for name in _SETTLE_STRINGS),
        bindparam("body", type_=Text),
    )
)
