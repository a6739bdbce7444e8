"""The hot steps of a task's life, each written at once: on PostgreSQL one statement, one round trip.

Accepting a task writes its row, its job, its audit row (and an Idempotency-Key's answer) and wakes
the workers. On PostgreSQL that is one statement of data-modifying CTEs (`pg_notify` in it), so the
step costs one round trip instead of one per row; its rows commit together, so its semantics are the
transaction's (docs/performance.md, "Third round"). SQLite has no data-modifying CTEs: there the same
rows are written statement by statement, in the caller's transaction. Callers do not branch on the
database; these functions do. The other steps: storage/settle.py (a task's outcome),
storage/attempts.py (a webhook attempt's record), storage/claims.py (a claim). Here too: the queued
job's row and the update fenced on a job's attempt that they share.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update

from emrtasks.domain import states
from emrtasks.storage import db
from emrtasks.storage.db import DbConnection
from emrtasks.storage.idempotency import COMPLETED, IN_FLIGHT, ClaimLost
from emrtasks.storage.tables import (
    audit_events,
    idempotency_keys,
    jobs,
    tasks,
)

QUEUED = states.JobState.QUEUED
RUNNING = states.JobState.RUNNING

JOBS_CHANNEL = "emrtasks_jobs"
"""The channel that wakes workers (queue/notify.py listens on it)."""

TASK_COLUMNS = (
    "id",
    "client_id",
    "connection_id",
    "job_id",
    "status",
    "description",
    "patient_mrn",
    "subject",
    "assignee_user_id",
    "phone_call_type_id",
    "notify_list",
    "reasons",
    "created_at",
    "updated_at",
)
JOB_COLUMNS = (
    "id",
    "kind",
    "state",
    "connection_id",
    "task_id",
    "payload",
    "attempts",
    "max_attempts",
    "run_at",
    "reconcile",
    "group_key",
    "group_limit",
    "trace_context",
    "created_at",
    "updated_at",
)
AUDIT_COLUMNS = (
    "id",
    "at",
    "actor_type",
    "actor_id",
    "client_id",
    "connection_id",
    "action",
    "targets",
    "source_address",
    "request_id",
    "outcome",
)


def is_pg(conn: DbConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def accept(
    conn: DbConnection,
    task: Mapping[str, Any],
    job: Mapping[str, Any],
    audit_row: Mapping[str, Any],
    answer: tuple[str, int, str] | None = None,
) -> None:
    """A task, its job and its audit row; with `answer` (the Idempotency-Key record, its status and
    body) that key's answer too. Raises `ClaimLost` (nothing kept once the transaction rolls back)
    when the key's claim is no longer ours."""
    if not is_pg(conn):
        await conn.execute(_INSERT_TASK, dict(task))
        await conn.execute(INSERT_JOB, dict(job))
        await conn.execute(_INSERT_AUDIT, dict(audit_row))
        if answer is not None and (await conn.execute(_COMPLETE, _answer(answer))).rowcount != 1:
            raise ClaimLost(answer[0])
        return
    parameters = _prefixed("t_", task) | _prefixed("j_", job) | _prefixed("a_", audit_row)
    conn.notified = True
    if answer is None:
        await conn.execute(_ACCEPT, parameters)
        return
    found = (await conn.execute(_ACCEPT_ONCE, parameters | _answer(answer))).first()
    if found is None or found[1] != 1:
        raise ClaimLost(answer[0])


def _answer(answer: tuple[str, int, str]) -> dict[str, Any]:
    record_id, status_code, response = answer
    return {"i_id": record_id, "i_status_code": status_code, "i_response": response}


def _prefixed(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {prefix + key: value for key, value in row.items()}


def _values(table: Table, prefix: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in names}


_INSERT_TASK = db.hot(insert(tasks))
INSERT_JOB = db.hot(insert(jobs))
_INSERT_AUDIT = db.hot(insert(audit_events))
_COMPLETE = db.hot(
    update(idempotency_keys)
    .where(idempotency_keys.c.id == bindparam("i_id"), idempotency_keys.c.state == IN_FLIGHT)
    .values(state=COMPLETED, status_code=bindparam("i_status_code"), response=bindparam("i_response"))
)


def _accept_statement(*, with_answer: bool) -> Any:
    ctes = [
        insert(tasks).values(_values(tasks, "t_", TASK_COLUMNS)).cte("t"),
        insert(jobs).values(_values(jobs, "j_", JOB_COLUMNS)).cte("j"),
        insert(audit_events).values(_values(audit_events, "a_", AUDIT_COLUMNS)).cte("a"),
    ]
    columns: list[Any] = [func.pg_notify(JOBS_CHANNEL, "")]
    if with_answer:
        answered = _COMPLETE.returning(idempotency_keys.c.id).cte("i")
        ctes.append(answered)
        columns.append(select(func.count()).select_from(answered).scalar_subquery())
    return select(*columns).add_cte(*ctes)


# Accept, on PostgreSQL: every row and the wake-up in one statement.
_ACCEPT = db.hot(_accept_statement(with_answer=False))
_ACCEPT_ONCE = db.hot(_accept_statement(with_answer=True))


async def fenced_update(
    conn: DbConnection, job_id: str, attempts: int, now: datetime, values: Mapping[str, Any]
) -> bool:
    """Change a running job only while this attempt holds it; False (nothing written) if it does not."""
    parameters = {"b_id": job_id, "b_attempts": attempts, "lease_expires_at": None, "locked_by": None}
    result = await conn.execute(FENCED, parameters | {"updated_at": now, **values})
    return bool(result.rowcount == 1)


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


FENCED = db.hot(
    update(jobs).where(
        jobs.c.id == bindparam("b_id"), jobs.c.attempts == bindparam("b_attempts"), jobs.c.state == RUNNING
    )
)
