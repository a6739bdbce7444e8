"""Reading the events recorded for a client: Cobalt's polling mechanism, `GET /v1/webhook-events`."""

from typing import Any

import orjson

from emrtasks.domain import ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import directory
from emrtasks.service.context import Context
from emrtasks.storage import db
from emrtasks.storage import events as stored_events
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.webhooks import events


async def list_events(
    ctx: Context,
    client: domain_tasks.Client,
    connection: domain_tasks.Connection | None,
    *,
    job_id: str | None,
    event_type: str | None,
    page: int,
    page_size: int,
    newest_first: bool,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    if job_id is not None and not ids.plausible(job_id):
        return [], directory.pagination(0, page, page_size)  # no event can have such a job id
    async with db.read(ctx.engine) as conn:
        rows, total = await stored_events.list_events(
            conn,
            client_id=client.id,
            connection_id=connection.id if connection else None,
            job_id=job_id,
            event_type=event_type,
            offset=(page - 1) * page_size,
            limit=page_size,
            newest_first=newest_first,
        )
        event_ids = [row["id"] for row in rows]
        deliveries = await stored_webhooks.delivery_summaries(conn, event_ids)
        attempts = await stored_webhooks.attempts_of(conn, event_ids)
    found = [
        orjson.loads(row["body"])
        | {
            "delivery_status": delivery_status(deliveries.get(row["id"], [])),
            "attempts": [_attempt(a) for a in attempts.get(row["id"], [])],
        }
        for row in rows
    ]
    return found, directory.pagination(total, page, page_size)


def delivery_status(deliveries: list[dict[str, Any]]) -> str | None:
    """pending while any endpoint is still being tried, failed if any gave up, else success."""
    statuses = {d["status"] for d in deliveries}
    for status in (stored_webhooks.PENDING, stored_webhooks.FAILED, stored_webhooks.SUCCESS):
        if status in statuses:
            return status
    return None


def _attempt(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "webhook_id": row["endpoint_id"],
        "attempt": row["attempt"],
        "trigger": row["trigger"],
        "time": events.iso(row["attempted_at"]),
        "status_code": row["status_code"],
        "duration_ms": row["duration_ms"],
        "error": row["error"],
    }
