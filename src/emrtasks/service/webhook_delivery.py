"""The `deliver_webhook` job: sign the stored event bytes, POST them to one endpoint, and record the attempt.

The attempt row, the delivery's status, the endpoint's health and the job's next step are written in
one transaction, fenced on the job's attempt. Retries follow the policy's schedule with ±20 % jitter;
a `Retry-After` on 429, 502, 503 or 504 is honoured between that step's delay and twice it.
"""

import dataclasses
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from emrtasks.domain import ids, states
from emrtasks.queue import jobs, lease
from emrtasks.service import webhooks
from emrtasks.service.context import Context
from emrtasks.storage import attempts as stored_attempts
from emrtasks.storage import db
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import delivery, signing

log = logging.getLogger("emrtasks.webhooks")


@dataclass(frozen=True)
class _Decision:
    delivery_status: states.DeliveryStatus
    job_state: states.JobState | None = None  # None: retry at `retry_at`
    retry_at: datetime | None = None
    endpoint_changes: dict[str, Any] | None = None
    error_code: str | None = None
    # The endpoint's failing period the changes were decided on (stored_webhooks.ANY: whatever it is now).
    if_failing_since: Any = stored_webhooks.ANY


async def run_delivery(ctx: Context, job: jobs.Job) -> None:
    async with db.read(ctx.engine) as conn:
        context = await stored_webhooks.delivery_context(conn, str(job.payload.get("delivery_id", "")))
    if context is None:
        await _finish_only(ctx, job, "MISSING_DELIVERY")
        return
    found, event, endpoint = context
    if lease.crashed_out(job.attempts, job.max_attempts):  # every attempt crashed before recording
        await _give_up(ctx, job, found, "DELIVERY_CRASHED")
        return
    if endpoint is None or endpoint.status != stored_webhooks.ACTIVE:
        await _give_up(ctx, job, found, "ENDPOINT_DISABLED")
        return
    now = ctx.clock()
    attempt_number = found.attempts + 1
    body = event.body.encode()
    headers = signing.headers(
        secrets=_active_secrets(ctx, endpoint, now),
        msg_id=event.id,
        timestamp=int(now.timestamp()),
        body=body,
        attempt=attempt_number,
        user_agent=ctx.webhooks.user_agent,
    )
    with ctx.telemetry.span("webhook attempt", {"webhook.attempt": attempt_number}) as note:
        result = await delivery.post(
            ctx.webhook_client,
            endpoint.url,
            body,
            headers,
            timeout_seconds=ctx.webhooks.timeout_seconds,
            resolver=ctx.resolver,
            allow_private=ctx.webhooks.allow_private,
        )
        note("webhook.outcome", attempt_outcome(result))
    ctx.telemetry.webhook_attempt(attempt_outcome(result), result.duration_ms / 1000)
    decision = _decide(ctx, job, endpoint, result, now)
    try:
        await _record(ctx, job, found, attempt_number, result, decision, now)
    except lease.LeaseLost:
        log.warning("delivery job %s lost its lease; attempt not recorded", job.id)


def attempt_outcome(result: delivery.Result) -> str:
    """`delivered` (2xx), `failed` (another answer) or `error` (no answer: refused, timed out, cut)."""
    if result.delivered:
        return "delivered"
    return "error" if result.status_code is None else "failed"


def _active_secrets(ctx: Context, endpoint: stored_webhooks.Endpoint, now: datetime) -> list[str]:
    """The current secret, then the previous one while its overlap lasts (newest first)."""
    secrets = [ctx.cipher.decrypt(endpoint.secret, webhooks.secret_at(endpoint.id, "secret"))]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > now:
        secrets.append(
            ctx.cipher.decrypt(endpoint.previous_secret, webhooks.secret_at(endpoint.id, "previous_secret"))
        )
    return secrets


def _decide(
    ctx: Context, job: jobs.Job, endpoint: stored_webhooks.Endpoint, result: delivery.Result, now: datetime
) -> _Decision:
    if result.delivered:
        healed: dict[str, Any] | None = {"failing_since": None} if endpoint.failing_since else None
        return _Decision(stored_webhooks.SUCCESS, jobs.SUCCEEDED, endpoint_changes=healed)
    if result.status_code == 410:
        return _disable(endpoint, "The endpoint answered 410 Gone.", "ENDPOINT_GONE")
    seen = endpoint.failing_since
    failing_since = seen or now
    if (now - failing_since).total_seconds() >= ctx.webhooks.disable_after_seconds:
        days = ctx.webhooks.disable_after_seconds / 86400
        decision = _disable(endpoint, f"Every attempt failed for {days:g} days.", "ENDPOINT_FAILING")
        return dataclasses.replace(decision, if_failing_since=seen)  # not if enabled since
    changes: dict[str, Any] | None = None if seen else {"failing_since": now}
    schedule = ctx.webhooks.schedule
    if job.attempts >= len(schedule):
        return _Decision(
            stored_webhooks.FAILED,
            jobs.FAILED,
            endpoint_changes=changes,
            error_code="EXHAUSTED",
            if_failing_since=seen,
        )
    delay = retry_delay(schedule[job.attempts], result, ctx.rng)
    return _Decision(
        stored_webhooks.PENDING, None, now + timedelta(seconds=delay), changes, if_failing_since=seen
    )


# Standard Webhooks: 429, 502 and 504 throttle; 503 says when to come back too.
_THROTTLED = frozenset({429, 502, 503, 504})


def retry_delay(step: float, result: delivery.Result, rng: random.Random | None = None) -> float:
    delay = step * (rng or random).uniform(0.8, 1.2)
    if result.status_code in _THROTTLED and result.retry_after is not None:
        delay = min(max(result.retry_after, delay), 2 * step)
    return delay


_DISABLING = frozenset({"ENDPOINT_GONE", "ENDPOINT_FAILING"})


def _disable(endpoint: stored_webhooks.Endpoint, reason: str, code: str) -> _Decision:
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
    changes = {"status": stored_webhooks.DISABLED, "disabled_reason": reason}
    return _Decision(stored_webhooks.FAILED, jobs.FAILED, endpoint_changes=changes, error_code=code)


async def _record(
    ctx: Context,
    job: jobs.Job,
    found: stored_webhooks.DeliveryRow,
    attempt_number: int,
    result: delivery.Result,
    decision: _Decision,
    now: datetime,
) -> None:
    if decision.job_state is None:
        assert decision.retry_at is not None
        job_values: dict[str, Any] = {"state": jobs.QUEUED, "run_at": decision.retry_at, "reconcile": False}
        job_values |= {"last_error_code": "DELIVERY_FAILED", "last_error": result.error}
    else:
        job_values = {"state": decision.job_state, "finished_at": now}
        job_values |= {"last_error_code": decision.error_code, "last_error": None}
    delivery_values = {"status": decision.delivery_status, "attempts": attempt_number, "last_attempt_at": now}
    attempt = {
        "id": ids.new_id("att"),
        "delivery_id": found.id,
        "event_id": found.event_id,
        "endpoint_id": found.endpoint_id,
        "attempt": attempt_number,
        "trigger": str(job.payload.get("trigger", "scheduled")),
        "attempted_at": now,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "response_body": result.response_body,
        "error": result.error,
    }

    async def work(conn: DbConnection) -> None:
        # One statement on PostgreSQL: the job moved (fenced), the resend request taken (read once
        # the job's row is ours, so a request racing this is either seen here or finds the job no
        # longer running), the attempt's row and the delivery's status (storage/attempts.py).
        moved, resend = await stored_attempts.record(
            conn,
            job_id=job.id,
            attempts=job.attempts,
            job_values=job_values,
            delivery_id=found.id,
            delivery_values=delivery_values,
            attempt=attempt,
            now=now,
        )
        if not moved:
            raise lease.LeaseLost
        if resend and decision.job_state is None:  # the next attempt is due now
            await jobs.expedite(conn, job.id, now=now)
        if decision.endpoint_changes:
            await stored_webhooks.update_endpoint(
                conn,
                found.endpoint_id,
                now,
                if_failing_since=decision.if_failing_since,
                **decision.endpoint_changes,
            )
        if resend and decision.job_state is not None and decision.error_code not in _DISABLING:
            await webhooks.schedule_delivery(
                ctx, conn, found.event_id, found.endpoint_id, found.client_id, now, "manual"
            )

    # One statement on PostgreSQL, unless the endpoint changes too or a resend comes to light (then
    # the group commit runs it again in a transaction: storage/attempts.py).
    await ctx.relaxed_writer.run(work, one_statement=not decision.endpoint_changes)


async def _give_up(ctx: Context, job: jobs.Job, found: stored_webhooks.DeliveryRow, code: str) -> None:
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        if await jobs.finish(conn, job, jobs.FAILED, now=now, error_code=code):
            # Given up: a resend asked for meanwhile is not carried out (the endpoint is disabled,
            # or every attempt crashed); the delivery stays resendable.
            await stored_webhooks.update_delivery(
                conn, found.id, now, status=stored_webhooks.FAILED, resend_requested=False
            )


async def _finish_only(ctx: Context, job: jobs.Job, code: str) -> None:
    async with db.write(ctx.engine) as conn:
        await jobs.finish(conn, job, jobs.FAILED, now=ctx.clock(), error_code=code)
