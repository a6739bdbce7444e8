"""Reading the events recorded for a client: Cobalt's polling mechanism, `GET /v1/webhook-events`."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypedDict

import orjson

from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import directory
from emrtasks.service.context import Context
from emrtasks.storage import db
from emrtasks.storage import events as stored_events
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.webhooks import events


@dataclass(frozen=True)
class Filters:
    """What `GET /v1/webhook-events` narrows the list by; dates are `YYYY-MM-DD`, whole UTC days."""

    job_id: str | None = None
    event_type: str | None = None
    delivery_status: str | None = None
    start_date: str | None = None
    end_date: str | None = None


class Attempt(TypedDict):
    """One attempt as the events listing answers it."""

    webhook_id: str
    attempt: int
    trigger: str
    time: str
    status_code: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True)
class ListedEvent:
    """An event as `GET /v1/webhook-events` lists it: its delivered body, how its deliveries stand and
    every attempt."""

    body: str
    delivery_status: str | None
    attempts: list[Attempt]

    def as_public(self) -> dict[str, object]:
        """The event's own JSON object with `delivery_status` and `attempts` added."""
        found: dict[str, object] = orjson.loads(self.body)
        return found | {"delivery_status": self.delivery_status, "attempts": self.attempts}


async def list_events(
    ctx: Context,
    client: domain_tasks.Client,
    connection: domain_tasks.Connection | None,
    filters: Filters,
    *,
    page: int,
    page_size: int,
    newest_first: bool,
) -> tuple[list[ListedEvent], dict[str, int]]:
    since, before = _days(filters.start_date, filters.end_date)
    if filters.job_id is not None and not ids.plausible(filters.job_id):
        return [], directory.pagination(0, page, page_size)  # no event can have such a job id
    async with db.read(ctx.engine) as conn:
        rows, total = await stored_events.list_events(
            conn,
            client_id=client.id,
            connection_id=connection.id if connection else None,
            job_id=filters.job_id,
            event_type=filters.event_type,
            offset=(page - 1) * page_size,
            limit=page_size,
            newest_first=newest_first,
            since=since,
            before=before,
            delivery_status=filters.delivery_status,
        )
        event_ids = [row.id for row in rows]
        deliveries = await stored_webhooks.delivery_summaries(conn, event_ids)
        attempts = await stored_webhooks.attempts_of(conn, event_ids)
    found = [
        ListedEvent(
            row.body,
            delivery_status(deliveries.get(row.id, [])),
            [_attempt(a) for a in attempts.get(row.id, [])],
        )
        for row in rows
    ]
    return found, directory.pagination(total, page, page_size)


def _days(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """From the start of `start` to the end of `end` (both days included), in UTC."""
    first, last = _day("start_date", start), _day("end_date", end)
    if first and last and last < first:
        message = "Invalid parameter end_date: must not be before start_date."
        raise errors.Problem(
            400, "invalid_parameter", message, (errors.FieldError("end_date", "invalid_query", message),)
        )
    since = datetime.combine(first, time.min, UTC) if first else None
    before = datetime.combine(last + timedelta(days=1), time.min, UTC) if last else None
    return since, before


def _day(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:  # the route checked the shape: here a day that is not in the calendar
        message = f"Invalid parameter {name}: {errors.echo(value)} is not a date (YYYY-MM-DD)."
        raise errors.Problem(
            400, "invalid_parameter", message, (errors.FieldError(name, "invalid_query", message),)
        ) from exc


def delivery_status(deliveries: list[stored_webhooks.DeliveryRow]) -> str | None:
    """pending while any endpoint is still being tried, failed if any gave up, else success."""
    statuses = {d.status for d in deliveries}
    for status in (stored_webhooks.PENDING, stored_webhooks.FAILED, stored_webhooks.SUCCESS):
        if status in statuses:
            return status
    return None


def _attempt(row: stored_webhooks.AttemptRow) -> Attempt:
    return {
        "webhook_id": row.endpoint_id,
        "attempt": row.attempt,
        "trigger": row.trigger,
        "time": events.iso(row.attempted_at),
        "status_code": row.status_code,
        "duration_ms": row.duration_ms,
        "error": row.error,
    }
