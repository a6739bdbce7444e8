"""What an admin does from the operator console, each on the audit trail as `operator:<id>`: resend an
event, retry a task that ended `unknown`, sync or disable a connection, create a client or rotate its
secret, enable a webhook endpoint or rotate its secret. Each reuses the service the CLI and API use."""

import dataclasses
from typing import TypedDict

from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import admin, audit, credentials, webhooks
from emrtasks.service.context import Context
from emrtasks.storage import clients, connections, db
from emrtasks.storage import console as stored_console
from emrtasks.storage import events as stored_events
from emrtasks.storage import tasks as stored_tasks
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.db import DbConnection

RETRY_ACTION = "task.retry"
MAX_REASON = 500


async def resend_event(ctx: Context, origin: audit.Origin, event_id: str) -> webhooks.Resent:
    """The event again to every active endpoint of its client (`webhooks.resend_event`)."""
    async with db.read(ctx.engine) as conn:
        event = await stored_events.get_event(conn, event_id) if ids.plausible(event_id) else None
        client = await _client(conn, event.client_id) if event else None
    if event is None or client is None:
        await audit.record(
            ctx,
            origin,
            "event.resend",
            targets={"event_id": audit.safe_id(event_id)},
            outcome=audit.NOT_FOUND,
        )
        raise errors.not_found("Event")
    origin = dataclasses.replace(origin, client_id=client.id)
    return await webhooks.resend_event(ctx, origin, client, event_id)


async def _client(conn: DbConnection, client_id: str) -> domain_tasks.Client | None:
    found = await clients.get_client_with_hash(conn, client_id)
    return found[0] if found else None


def checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise errors.Problem(400, "missing_reason", "Give a reason: what you checked in the EMR.")
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise errors.Problem(400, "invalid_reason", f"The reason must be at most {MAX_REASON} characters.")
    return reason


class Retried(TypedDict):
    task_id: str
    job_id: str
    looks_up_first: bool
    """Whether the first attempt looks the task up by its marker before writing it again."""


async def retry_unknown(ctx: Context, origin: audit.Origin, task_id: str, reason: str) -> Retried:
    """An `unknown` task's create job queued again with the same marker (the task id). Where the EMR
    can find a task by marker, the first attempt looks it up and writes only if it is absent; where it
    cannot, the operator's check in the EMR is what stands between this and a second write."""
    targets = {"task_id": audit.safe_id(task_id), "reason": checked_reason(reason)}
    async with audit.changing(ctx, origin, RETRY_ACTION, targets) as change, db.write(ctx.engine) as conn:
        task = await _unknown_task(conn, task_id)
        connection = await connections.get_connection(conn, task.connection_id)
        assert connection is not None  # a task's connection row is never removed
        looks_first = ctx.adapters.for_connection(connection).rules.finds_by_marker
        now = ctx.clock()
        if not await stored_console.reopen_unknown_task(conn, task_id, now) or not await jobs.requeue(
            conn,
            task.job_id,
            now=now,
            reconcile=looks_first,
            more_attempts=ctx.policy.task_max_attempts,
        ):
            raise _not_unknown("processing")
        await change.write(conn, now, client_id=task.client_id, connection_id=task.connection_id)
    ctx.wake()
    return {"task_id": task_id, "job_id": task.job_id, "looks_up_first": looks_first}


async def _unknown_task(conn: DbConnection, task_id: str) -> stored_tasks.TaskRow:
    task = await stored_tasks.get_task(conn, task_id) if ids.plausible(task_id) else None
    if task is None:
        raise errors.not_found("Task")
    if task.status != domain_tasks.UNKNOWN:
        raise _not_unknown(task.status)
    return task


def _not_unknown(status: str) -> errors.Problem:
    message = f"Only a task that ended unknown can be retried; this one is {status}."
    return errors.Problem(409, "not_unknown", message)


async def sync_connection(ctx: Context, origin: audit.Origin, connection_id: str) -> admin.DirectoryCounts:
    targets = {"connection_id": audit.safe_id(connection_id)}
    async with audit.recorded(ctx, origin, "connection.sync", targets):
        if not ids.plausible(connection_id):
            raise errors.not_found("Connection")
        return await admin.sync_directory(ctx, connection_id)


async def set_connection_disabled(
    ctx: Context, origin: audit.Origin, connection_id: str, disabled: bool
) -> str:
    return await credentials.set_connection_disabled(
        ctx, origin, _plausible(connection_id, "Connection"), disabled
    )


async def create_client(ctx: Context, origin: audit.Origin, name: str) -> admin.NewClient:
    async with audit.recorded(ctx, origin, "client.create") as targets:
        created = await admin.create_client(ctx, name)
        targets["client_id"] = created.client_id
    return created


async def rotate_client_secret(ctx: Context, origin: audit.Origin, client_id: str) -> credentials.Rotated:
    return await credentials.rotate_client_secret(ctx, origin, _plausible(client_id, "Client"))


async def set_client_disabled(ctx: Context, origin: audit.Origin, client_id: str, disabled: bool) -> str:
    return await credentials.set_client_disabled(ctx, origin, _plausible(client_id, "Client"), disabled)


async def enable_endpoint(ctx: Context, origin: audit.Origin, endpoint_id: str) -> webhooks.PublicEndpoint:
    client = await _endpoint_client(ctx, origin, endpoint_id, "webhook.enable")
    return await webhooks.enable(ctx, origin, client, endpoint_id)


async def rotate_endpoint_secret(
    ctx: Context, origin: audit.Origin, endpoint_id: str
) -> webhooks.RotatedSecret:
    client = await _endpoint_client(ctx, origin, endpoint_id, "webhook.rotate_secret")
    return await webhooks.rotate_secret(ctx, origin, client, endpoint_id)


async def _endpoint_client(
    ctx: Context, origin: audit.Origin, endpoint_id: str, action: str
) -> domain_tasks.Client:
    async with db.read(ctx.engine) as conn:
        endpoint = (
            await stored_webhooks.get_endpoint(conn, endpoint_id) if ids.plausible(endpoint_id) else None
        )
        client = await _client(conn, endpoint.client_id) if endpoint else None
    if client is None:
        targets = {"webhook_id": audit.safe_id(endpoint_id)}
        await audit.record(ctx, origin, action, targets=targets, outcome=audit.NOT_FOUND)
        raise errors.not_found("Webhook")
    return client


def _plausible(value: str, what: str) -> str:
    if not ids.plausible(value):
        raise errors.not_found(what)
    return value
