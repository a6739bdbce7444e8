"""Accept a Create Task request (validate; task + job in one transaction); read tasks and jobs back."""

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

import orjson

from emrtasks.domain import errors, ids, outcomes, validation
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import adapters as service_adapters
from emrtasks.service import admin, audit
from emrtasks.service.context import Context
from emrtasks.storage import db, idempotency
from emrtasks.storage import steps as stored_steps
from emrtasks.storage import tasks as stored_tasks
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import events

CREATE_TASK = "create_task"
ACCEPTED_MESSAGE = "Task processing. A webhook event will be sent upon completion."


class AcceptedBody(TypedDict):
    """`POST /v1/tasks`'s 202 answer (and what an Idempotency-Key replays)."""

    success: bool
    message: str
    task_id: str
    job_id: str


class TaskBody(TypedDict):
    """`GET /v1/tasks/{task_id}`'s task."""

    task_id: str
    job_id: str
    status: str
    subject: str | None
    description: str
    patient_mrn: str
    assignee_user_id: str | None
    phone_call_type_id: str | None
    notify_list: list[str]
    emr_task_id: str | None
    failure_reason: str | None
    reasons: list[dict[str, str]]
    created: str
    updated: str


class JobBody(TypedDict):
    """`GET /v1/jobs/{job_id}`'s job."""

    job_id: str
    kind: str
    task_id: str | None
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: str | None
    last_error_code: str | None
    last_error: str | None
    created: str
    updated: str
    finished: str | None


@dataclass(frozen=True)
class Accepted:
    task_id: str
    job_id: str
    replayed: bool = False

    def as_public(self) -> AcceptedBody:
        return {
            "success": True,
            "message": ACCEPTED_MESSAGE,
            "task_id": self.task_id,
            "job_id": self.job_id,
        }


async def accept_task(
    ctx: Context,
    connection: domain_tasks.Connection,
    body: object,
    idempotency_key: str | None = None,
    origin: audit.Origin | None = None,
) -> Accepted:
    """`origin`: who the audit row names (the API passes the request's; else the connection)."""
    origin = origin or audit.Origin(audit.CONNECTION, connection.id, connection.client_id, connection.id)
    if idempotency_key is None:
        return await _accept(ctx, connection, body, origin)
    return await _accept_once(ctx, connection, body, _parse_key(idempotency_key), origin)


async def _accept(
    ctx: Context,
    connection: domain_tasks.Connection,
    body: object,
    origin: audit.Origin,
    idempotency_record: str | None = None,
) -> Accepted:
    """Validate, then the task, its job, its audit row and (with a key) the stored answer in one
    transaction (one group commit): an accepted task is never without its row, a failed one has none."""
    request = await _validate(ctx, connection, body)
    accepted = Accepted(ids.new_id("task"), ids.new_id("job"))
    now = ctx.clock()
    audit_row = audit.row(
        origin, "task.accept", now, targets={"task_id": accepted.task_id, "job_id": accepted.job_id}
    )
    trace_context = ctx.telemetry.trace_context()  # the request's span: the job's attempts continue it

    task = stored_tasks.task_row(
        task_id=accepted.task_id, job_id=accepted.job_id, connection=connection, request=request, now=now
    )
    job = jobs.job_row(
        job_id=accepted.job_id,
        kind=CREATE_TASK,
        now=now,
        max_attempts=ctx.policy.task_max_attempts,
        connection_id=connection.id,
        task_id=accepted.task_id,
        group_key=connection.id,
        group_limit=service_adapters.max_concurrency(connection),
        trace_context=trace_context,
    )
    audit_values = audit_row.values()
    answer = None
    if idempotency_record is not None:
        answer = (idempotency_record, 202, orjson.dumps(accepted.as_public()).decode())

    async def work(conn: DbConnection) -> None:
        await stored_steps.accept(conn, task, job, audit_values, answer)

    # One statement on PostgreSQL (storage/steps.py); not with a key, whose lost claim undoes it all.
    await ctx.writer.run(work, one_statement=answer is None)
    ctx.wake()
    return accepted


async def _accept_once(
    ctx: Context, connection: domain_tasks.Connection, body: object, key: str, origin: audit.Origin
) -> Accepted:
    """Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the first answer, once."""
    try:
        fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError as exc:  # nested deeper than any valid request
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.") from exc
    record_id = ids.new_id("idem")
    for _ in range(2):
        now = ctx.clock()
        held = await idempotency.claim(
            ctx.engine,
            record_id=record_id,
            client_id=connection.client_id,
            connection_id=connection.id,
            key=key,
            fingerprint=fingerprint,
            now=now,
            expires_at=now + timedelta(seconds=ctx.policy.idempotency_ttl_seconds),
        )
        if held is None:
            break
        if held.fingerprint != fingerprint:
            raise errors.Problem(422, "idempotency_key_reused", _REUSED)
        if held.state == idempotency.COMPLETED and held.response is not None:
            stored = orjson.loads(held.response)
            return Accepted(stored["task_id"], stored["job_id"], replayed=True)
        abandoned_before = now - timedelta(seconds=_ABANDONED_AFTER_SECONDS)
        if not await idempotency.take_over(ctx.engine, held.id, abandoned_before=abandoned_before):
            raise errors.Problem(
                409, "idempotency_key_in_flight", _IN_FLIGHT, headers=(("Retry-After", "1"),)
            )
    try:
        return await _accept(ctx, connection, body, origin, record_id)
    except idempotency.ClaimLost as exc:
        raise errors.Problem(
            409, "idempotency_key_in_flight", _IN_FLIGHT, headers=(("Retry-After", "1"),)
        ) from exc
    except BaseException:
        # Refusals are not remembered. If the database is down too, keep trying in the background,
        # so the client's retry is not held off (409) until the claim counts as abandoned.
        try:
            await idempotency.release(ctx.engine, record_id)
        except Exception:
            ctx.background(_release(ctx, record_id))
        raise


async def _release(ctx: Context, record_id: str) -> None:
    for _ in range(_ABANDONED_AFTER_SECONDS):
        try:
            await idempotency.release(ctx.engine, record_id)
            return
        except Exception:
            await asyncio.sleep(1)


def _parse_key(header: str) -> str:
    """An RFC 8941 string (quoted) or, leniently, the bare value; printable ASCII, 1 to 255 characters."""
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= 255 or not all(" " <= c <= "~" for c in key):
        raise errors.Problem(
            400,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key header: use 1 to 255 printable characters.",
        )
    return key


_REUSED = "Idempotency-Key reused with a different request body."
_IN_FLIGHT = "A request with this Idempotency-Key is still being processed. Retry shortly."
# A claim older than this belongs to a process that died before answering.
_ABANDONED_AFTER_SECONDS = 60


async def _validate(
    ctx: Context, connection: domain_tasks.Connection, body: object
) -> domain_tasks.TaskRequest:
    """The rules first; the EMR's directory only when the request names users or call types. When
    the directory cannot be read, the other problems are still reported (400) before any 503."""
    parsed = validation.parse(body, ctx.adapters.for_connection(connection).rules)
    if not parsed.names_directory_entries:
        return validation.finish(parsed)
    try:
        known = await _directory(ctx, connection)
    except errors.Problem:
        if parsed.problems:
            return validation.finish(parsed)
        raise
    return validation.finish(parsed, validation.check_directory(parsed, known.users, known.call_types))


async def _directory(ctx: Context, connection: domain_tasks.Connection) -> service_adapters.Directory:
    try:
        return await ctx.adapters.directory(connection)
    except outcomes.AdapterError as exc:
        raise await admin.read_failed(
            ctx, connection, exc, "The EMR's user directory could not be read"
        ) from exc


async def get_task(ctx: Context, connection: domain_tasks.Connection, task_id: str) -> TaskBody:
    if not ids.plausible(task_id):
        raise errors.not_found("Task")
    async with db.read(ctx.engine) as conn:
        row = await stored_tasks.get_task(conn, task_id, connection.id)
    if row is None:
        raise errors.not_found("Task")
    return {
        "task_id": row.id,
        "job_id": row.job_id,
        "status": row.status,
        "subject": row.subject,
        "description": row.description,
        "patient_mrn": row.patient_mrn,
        "assignee_user_id": row.assignee_user_id,
        "phone_call_type_id": row.phone_call_type_id,
        "notify_list": list(row.notify_list or []),
        "emr_task_id": row.emr_task_id,
        "failure_reason": row.failure_reason,
        "reasons": list(row.reasons or []),
        "created": events.iso(row.created_at),
        "updated": events.iso(row.updated_at),
    }


async def get_job(ctx: Context, connection: domain_tasks.Connection, job_id: str) -> JobBody:
    if not ids.plausible(job_id):
        raise errors.not_found("Job")
    async with db.read(ctx.engine) as conn:
        row = await jobs.get_job(conn, job_id)
    if row is None or row["connection_id"] != connection.id:
        raise errors.not_found("Job")
    queued = row["state"] == jobs.QUEUED
    return {
        "job_id": row["id"],
        "kind": row["kind"],
        "task_id": row["task_id"],
        "state": row["state"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "next_attempt_at": events.iso(row["run_at"]) if queued else None,
        "last_error_code": row["last_error_code"],
        "last_error": row["last_error"],
        "created": events.iso(row["created_at"]),
        "updated": events.iso(row["updated_at"]),
        "finished": events.iso(row["finished_at"]) if row["finished_at"] else None,
    }


async def prune_idempotency_keys(ctx: Context) -> None:
    """Housekeeping: forget Idempotency-Keys past their time (24 hours by default)."""
    await idempotency.prune(ctx.engine, now=ctx.clock())
