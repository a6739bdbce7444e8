"""Accept a Create Task request (validate; task + job in one transaction); read tasks and jobs back."""

from dataclasses import dataclass
from typing import Any

from emrtasks.domain import errors, ids, outcomes, validation
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service.context import Context
from emrtasks.storage import db
from emrtasks.storage import tasks as stored_tasks
from emrtasks.webhooks import events

CREATE_TASK = "create_task"
ACCEPTED_MESSAGE = "Task processing. A webhook event will be sent upon completion."


@dataclass(frozen=True)
class Accepted:
    task_id: str
    job_id: str

    def as_public(self) -> dict[str, Any]:
        return {
            "success": True,
            "message": ACCEPTED_MESSAGE,
            "task_id": self.task_id,
            "job_id": self.job_id,
        }


async def accept_task(ctx: Context, connection: domain_tasks.Connection, body: object) -> Accepted:
    adapter = ctx.adapters.for_connection(connection)
    users: dict[str, object] = {}
    call_types: dict[str, object] = {}
    if isinstance(body, dict):
        known = await _directory(ctx, connection)
        users, call_types = dict(known.users), dict(known.call_types)
    request = validation.validate_task_request(body, adapter.rules, users, call_types)
    accepted = Accepted(ids.new_id("task"), ids.new_id("job"))
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        await stored_tasks.insert_task(
            conn,
            task_id=accepted.task_id,
            job_id=accepted.job_id,
            connection=connection,
            request=request,
            now=now,
        )
        await jobs.enqueue(
            conn,
            job_id=accepted.job_id,
            kind=CREATE_TASK,
            now=now,
            max_attempts=ctx.policy.task_max_attempts,
            connection_id=connection.id,
            task_id=accepted.task_id,
        )
    ctx.wake()
    return accepted


async def _directory(ctx: Context, connection: domain_tasks.Connection) -> Any:
    try:
        return await ctx.adapters.directory(connection)
    except outcomes.AdapterError as exc:
        raise errors.unavailable(
            f"The EMR's user directory could not be read: {exc.outcome.description}", 5
        ) from exc


async def get_task(ctx: Context, connection: domain_tasks.Connection, task_id: str) -> dict[str, Any]:
    async with db.read(ctx.engine) as conn:
        row = await stored_tasks.get_task(conn, task_id, connection.id)
    if row is None:
        raise errors.not_found("Task")
    return {
        "task_id": row["id"],
        "job_id": row["job_id"],
        "status": row["status"],
        "subject": row["subject"],
        "description": row["description"],
        "patient_mrn": row["patient_mrn"],
        "assignee_user_id": row["assignee_user_id"],
        "phone_call_type_id": row["phone_call_type_id"],
        "notify_list": list(row["notify_list"] or []),
        "emr_task_id": row["emr_task_id"],
        "failure_reason": row["failure_reason"],
        "reasons": list(row["reasons"] or []),
        "created": events.iso(row["created_at"]),
        "updated": events.iso(row["updated_at"]),
    }


async def get_job(ctx: Context, connection: domain_tasks.Connection, job_id: str) -> dict[str, Any]:
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
