"""Webhook endpoints of a client (register, list, delete, rotate, enable) and scheduling deliveries:
the fan-out of a new event, a resend of one event, and the recovery of every event since a time."""

from datetime import UTC, datetime, timedelta
from typing import NotRequired, TypedDict

from sqlalchemy.exc import IntegrityError

from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import audit
from emrtasks.service.context import Context
from emrtasks.storage import crypto, db
from emrtasks.storage import events as stored_events
from emrtasks.storage import settle as stored_settle
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import events, signing, ssrf

DELIVER_WEBHOOK = "deliver_webhook"
_URL_FIELD = "webhook_url"


class Registered(TypedDict):
    """`POST /v1/webhook`'s answer: Cobalt documents three shapes; the flat one, with the guide's
    names beside it."""

    success: bool
    message: str
    webhook_id: str
    webhook_url: str
    webhook_secret: str
    webhook_secret_key: str


class PublicEndpoint(TypedDict):
    """An endpoint as the API and the console show it: never its secrets."""

    id: str
    url: str
    status: str
    disabled_reason: str | None
    created: str


class Configuration(TypedDict):
    """`GET /v1/webhook`: every URL (oldest first) and, as Cobalt answers, the first one alone."""

    success: bool
    webhook_url: str | None
    webhook_urls: list[PublicEndpoint]


class RotatedSecret(TypedDict):
    id: str
    secret: str


class RecoverFrom(TypedDict):
    since: str
    after_event_id: str


class Recovered(TypedDict):
    """`POST /v1/webhook/{id}/recover`'s answer; `next` and `message` only past the cap."""

    success: bool
    webhook_id: str
    since: str
    scheduled: int
    complete: bool
    next: NotRequired[RecoverFrom]
    message: NotRequired[str]


class Resent(TypedDict):
    success: bool
    event_id: str
    webhook_ids: list[str]


async def register(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, body: object
) -> Registered:
    async with audit.changing(ctx, origin, "webhook.create") as change:
        url = await _checked_url(ctx, _single_field(body, _URL_FIELD))
        secret, endpoint_id = signing.new_secret(), ids.new_id("wh")
        change.targets["webhook_id"] = endpoint_id
        await _insert_endpoint(ctx, change, client, endpoint_id, url, secret)
    return {
        "success": True,
        "message": "Webhook registered successfully",
        "webhook_id": endpoint_id,
        "webhook_url": url,
        "webhook_secret": secret,
        "webhook_secret_key": secret,
    }


async def _insert_endpoint(
    ctx: Context, change: audit.Change, client: domain_tasks.Client, endpoint_id: str, url: str, secret: str
) -> None:
    try:
        async with db.write(ctx.engine) as conn:
            await stored_webhooks.lock_client(
                conn, client.id
            )  # two registrations at once count one after the other
            registered = await stored_webhooks.list_endpoints(conn, client.id)
            if any(e.url == url for e in registered):
                raise _already_registered()
            if len(registered) >= ctx.webhooks.max_endpoints:
                raise _too_many_endpoints(ctx.webhooks.max_endpoints)
            await stored_webhooks.insert_endpoint(
                conn,
                endpoint_id=endpoint_id,
                client_id=client.id,
                url=url,
                secret=ctx.cipher.encrypt(secret, secret_at(endpoint_id, "secret")),
                now=ctx.clock(),
            )
            await change.write(conn, ctx.clock())
    except IntegrityError as exc:  # another process registered it in the meantime
        raise _already_registered() from exc


def _too_many_endpoints(limit: int) -> errors.Problem:
    message = (
        f"Too many webhook URLs: a client may register at most {limit}. "
        "Delete one (DELETE /v1/webhook/{webhook_id}) before registering another."
    )
    return errors.Problem(409, "webhook_limit_reached", message)


def _already_registered() -> errors.Problem:
    return errors.Problem(409, "already_registered", "This webhook URL is already registered.")


async def configuration(ctx: Context, client: domain_tasks.Client) -> Configuration:
    listed = await list_endpoints(ctx, client)
    return {"success": True, "webhook_url": listed[0]["url"] if listed else None, "webhook_urls": listed}


async def list_endpoints(ctx: Context, client: domain_tasks.Client) -> list[PublicEndpoint]:
    async with db.read(ctx.engine) as conn:
        rows = await stored_webhooks.list_endpoints(conn, client.id)
    return [_public(row) for row in rows]


async def delete(ctx: Context, origin: audit.Origin, client: domain_tasks.Client, endpoint_id: str) -> None:
    targets = {"webhook_id": audit.safe_id(endpoint_id)}
    async with audit.changing(ctx, origin, "webhook.delete", targets) as change, db.write(ctx.engine) as conn:
        await _owned(conn, client, endpoint_id)
        await change.write(conn, ctx.clock())
        # The secrets go with it: a deleted endpoint signs nothing, and nothing is kept to leak.
        await stored_webhooks.update_endpoint(
            conn,
            endpoint_id,
            ctx.clock(),
            status=stored_webhooks.DELETED,
            secret="",
            previous_secret=None,
            previous_secret_expires_at=None,
        )


async def rotate_secret(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, endpoint_id: str
) -> RotatedSecret:
    """A new secret; the old one keeps signing alongside it for the overlap, then stops."""
    secret = signing.new_secret()
    now = ctx.clock()
    overlap = timedelta(seconds=ctx.webhooks.rotation_overlap_seconds)
    targets = {"webhook_id": audit.safe_id(endpoint_id)}
    async with (
        audit.changing(ctx, origin, "webhook.rotate_secret", targets) as change,
        db.write(ctx.engine) as conn,
    ):
        endpoint = await _owned(conn, client, endpoint_id)
        await change.write(conn, now)
        await stored_webhooks.update_endpoint(
            conn,
            endpoint_id,
            now,
            secret=ctx.cipher.encrypt(secret, secret_at(endpoint_id, "secret")),
            # Sealed again for its new column: a ciphertext is bound to where it lives.
            previous_secret=ctx.cipher.encrypt(
                ctx.cipher.decrypt(endpoint.secret, secret_at(endpoint_id, "secret")),
                secret_at(endpoint_id, "previous_secret"),
            ),
            previous_secret_expires_at=now + overlap,
        )
    return {"id": endpoint_id, "secret": secret}


async def enable(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, endpoint_id: str
) -> PublicEndpoint:
    targets = {"webhook_id": audit.safe_id(endpoint_id)}
    async with audit.changing(ctx, origin, "webhook.enable", targets) as change, db.write(ctx.engine) as conn:
        await _owned(conn, client, endpoint_id)
        await change.write(conn, ctx.clock())
        await stored_webhooks.update_endpoint(
            conn,
            endpoint_id,
            ctx.clock(),
            status=stored_webhooks.ACTIVE,
            disabled_reason=None,
            failing_since=None,
        )
        endpoint = await stored_webhooks.get_endpoint(conn, endpoint_id)
    assert endpoint is not None
    return _public(endpoint)


async def recover(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, endpoint_id: str, body: object
) -> Recovered:
    targets = {"webhook_id": audit.safe_id(endpoint_id)}
    async with audit.changing(ctx, origin, "webhook.recover", targets) as change:
        # Many deliveries' rows in one transaction, against workers recording attempts in theirs:
        # PostgreSQL may pick it as a deadlock's victim, and then it is simply run again.
        return await db.retry_contention(lambda: _recover(ctx, change, client, endpoint_id, body))


async def _recover(
    ctx: Context, change: audit.Change, client: domain_tasks.Client, endpoint_id: str, body: object
) -> Recovered:
    since_value, after_event_id = _recover_fields(body)
    since = _parse_since(since_value)
    now = ctx.clock()
    most = ctx.webhooks.recover_max_events
    async with db.write(ctx.engine) as conn:
        endpoint = await _owned(conn, client, endpoint_id)
        if endpoint.status != stored_webhooks.ACTIVE:
            raise errors.Problem(
                400, "endpoint_disabled", "This webhook endpoint is disabled; enable it first."
            )
        after = await _after_event(conn, client, after_event_id)
        found = await stored_webhooks.events_since(conn, client.id, since, after=after, limit=most + 1)
        scheduled = 0
        for event_id, _created in found[:most]:
            scheduled += await schedule_delivery(ctx, conn, event_id, endpoint_id, client.id, now, "recover")
        await change.write(conn, now)
    ctx.wake()
    answer: Recovered = {
        "success": True,
        "webhook_id": endpoint_id,
        "since": events.iso(since),
        "scheduled": scheduled,
        "complete": len(found) <= most,
    }
    if len(found) > most:  # past the cap: the next call goes on after the last event scheduled
        answer["next"] = {"since": events.iso(since), "after_event_id": found[most - 1][0]}
        answer["message"] = (
            f"Scheduled the first {most} events, the most one recover call schedules. "
            "Send the `next` object as the body of another recover call for the rest."
        )
    return answer


_RECOVER_FIELDS = ("since", "after_event_id")


def _recover_fields(body: object) -> tuple[object, str | None]:
    if not isinstance(body, dict):
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.")
    extra = [str(k) for k in body if k not in _RECOVER_FIELDS]
    if extra:
        raise errors.unexpected_fields(extra)
    since = body.get("since")
    if since is None or (isinstance(since, str) and not since.strip()):
        raise _field_problem("since", "missing_field", "Missing required field: since")
    after = body.get("after_event_id")
    if after is not None and (not isinstance(after, str) or not ids.plausible(after)):
        message = "Invalid field: after_event_id must be the id of one of your events."
        raise _field_problem("after_event_id", "invalid_field", message)
    return since, after


async def _after_event(
    conn: DbConnection, client: domain_tasks.Client, event_id: str | None
) -> tuple[datetime, str] | None:
    if event_id is None:
        return None
    event = await stored_events.get_event(conn, event_id)
    if event is None or event.client_id != client.id:
        message = "Invalid field: after_event_id must be the id of one of your events."
        raise _field_problem("after_event_id", "invalid_field", message)
    return event.created_at, event_id


async def resend_event(
    ctx: Context, origin: audit.Origin, client: domain_tasks.Client, event_id: str
) -> Resent:
    now = ctx.clock()
    targets = {"event_id": audit.safe_id(event_id)}
    async with audit.changing(ctx, origin, "event.resend", targets) as change:

        async def transaction() -> list[stored_webhooks.Endpoint]:
            async with db.write(ctx.engine) as conn:
                if not ids.plausible(event_id) or not await stored_events.event_belongs_to(
                    conn, event_id, client.id
                ):
                    raise errors.not_found("Event")
                endpoints = await stored_webhooks.list_endpoints(conn, client.id, active_only=True)
                if not endpoints:
                    raise errors.Problem(400, "no_webhook_endpoint", "No active webhook endpoint to send to.")
                for endpoint in endpoints:
                    await schedule_delivery(ctx, conn, event_id, endpoint.id, client.id, now, "manual")
                await change.write(conn, now)
                return endpoints

        endpoints = await db.retry_contention(transaction)
    ctx.wake()
    return {"success": True, "event_id": event_id, "webhook_ids": [e.id for e in endpoints]}


async def fan_out(
    ctx: Context,
    conn: DbConnection,
    client_id: str,
    event_id: str,
    now: datetime,
    *,
    trace_context: str | None = None,
) -> int:
    """Inside the transaction that writes an event: one delivery per active endpoint (the outbox).
    `trace_context`: the trace the deliveries continue (the caller's: the work runs in a batch)."""
    return await stored_settle.fan_out(conn, client_id, event_id, deliveries(ctx, now, trace_context), now)


def deliveries(ctx: Context, now: datetime, trace_context: str | None = None) -> stored_settle.Deliveries:
    """How an event's new deliveries are queued: their jobs, due after the schedule's first step."""
    return stored_settle.Deliveries(
        kind=DELIVER_WEBHOOK,
        max_attempts=len(ctx.webhooks.schedule),
        group_limit=ctx.webhooks.endpoint_concurrency,
        run_at=now + timedelta(seconds=ctx.webhooks.schedule[0]),
        trace_context=trace_context,
    )


async def schedule_delivery(
    ctx: Context,
    conn: DbConnection,
    event_id: str,
    endpoint_id: str,
    client_id: str,
    now: datetime,
    trigger: str,
    *,
    new: bool = False,
    trace_context: str | None = None,
) -> int:
    """Queue a delivery of the event to the endpoint, due now (`new`: the event was written in this
    transaction, so it has no delivery yet).

    A delivery whose next retry is already queued is made due now instead of queued twice. One
    whose attempt is running right now is marked, and its job sends once more right after that
    attempt: the running attempt may fail, or may have been sent before whatever the client is
    recovering from, so a resend asked for now never folds into it."""
    existing = None if new else await stored_webhooks.find_delivery(conn, event_id, endpoint_id)
    if existing and existing.job_id:
        if await jobs.expedite(conn, existing.job_id, now=now):
            await stored_webhooks.update_delivery(conn, existing.id, now, status=stored_webhooks.PENDING)
            return 1
        # Locked: a worker recording this job's attempt now either finished first (then the job
        # is not running, and a new one is queued below) or reads the mark after we commit.
        job = await jobs.get_job(conn, existing.job_id, lock=True)
        if job and job["state"] == jobs.RUNNING:
            await stored_webhooks.update_delivery(
                conn, existing.id, now, status=stored_webhooks.PENDING, resend_requested=True
            )
            return 1
    delivery_id = existing.id if existing else ids.new_id("dlv")
    job_id = ids.new_id("job")
    await jobs.enqueue(
        conn,
        job_id=job_id,
        kind=DELIVER_WEBHOOK,
        now=now,
        max_attempts=len(ctx.webhooks.schedule),
        payload={"delivery_id": delivery_id, "trigger": trigger},
        group_key=endpoint_id,
        group_limit=ctx.webhooks.endpoint_concurrency,
        run_at=now + timedelta(seconds=ctx.webhooks.schedule[0]),
        trace_context=trace_context,
    )
    if existing:  # a new job for it: any older resend mark is answered by this job
        await stored_webhooks.update_delivery(
            conn, delivery_id, now, status=stored_webhooks.PENDING, job_id=job_id, resend_requested=False
        )
    else:
        await stored_webhooks.insert_delivery(
            conn,
            delivery_id=delivery_id,
            event_id=event_id,
            endpoint_id=endpoint_id,
            client_id=client_id,
            job_id=job_id,
            now=now,
        )
    return 1


async def _owned(
    conn: DbConnection, client: domain_tasks.Client, endpoint_id: str
) -> stored_webhooks.Endpoint:
    endpoint = (
        await stored_webhooks.get_endpoint(conn, endpoint_id, client.id)
        if ids.plausible(endpoint_id)
        else None
    )
    if endpoint is None:
        raise errors.not_found("Webhook")
    return endpoint


def _public(row: stored_webhooks.Endpoint) -> PublicEndpoint:
    return {
        "id": row.id,
        "url": row.url,
        "status": row.status,
        "disabled_reason": row.disabled_reason,
        "created": events.iso(row.created_at),
    }


async def _checked_url(ctx: Context, value: object) -> str:
    if not isinstance(value, str):
        raise _field_problem(_URL_FIELD, "invalid_field", f"Invalid field: {_URL_FIELD} must be a string.")
    url = value.strip()
    if len(url) > 2048:
        raise _field_problem(
            _URL_FIELD, "limit_exceeded", f"Invalid field: {_URL_FIELD} must be at most 2048 characters."
        )
    try:
        scheme, host, port = ssrf.split_url(url)
        url = ssrf.ascii_url(url)  # an international host is stored in its ASCII (IDNA) form
        if scheme != "https" and not ctx.webhooks.allow_insecure:
            raise ssrf.Refused("HTTPS is required")
        if not ctx.webhooks.allow_private:
            await ssrf.safe_addresses(host, port, ctx.resolver)
    except ssrf.Refused as exc:
        raise _field_problem(_URL_FIELD, "invalid_webhook_url", f"Invalid webhook_url: {exc}.") from exc
    return url


def _single_field(body: object, name: str) -> object:
    if not isinstance(body, dict):
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.")
    extra = [str(k) for k in body if k != name]
    if extra:
        raise errors.unexpected_fields(extra)
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _field_problem(name, "missing_field", f"Missing required field: {name}")
    return value


def _parse_since(value: object) -> datetime:
    message = "Invalid field: since must be an ISO 8601 time with a time zone, e.g. 2026-11-30T10:00:00Z."
    if not isinstance(value, str):
        raise _field_problem("since", "invalid_field", message)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _field_problem("since", "invalid_field", message) from exc


def _field_problem(name: str, code: str, message: str) -> errors.Problem:
    return errors.Problem(400, code, message, (errors.FieldError(name, code, message),))


def secret_at(endpoint_id: str, column: str) -> crypto.Where:
    """Where an endpoint's encrypted signing secret lives (`secret` or `previous_secret`)."""
    return crypto.Where("webhook_endpoints", endpoint_id, column)
