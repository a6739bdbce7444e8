"""Reading the events recorded for a client: Cobalt's polling mechanism, `GET /v1/webhook-events`."""

from typing import Any

import orjson

from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import directory
from emrtasks.service.context import Context
from emrtasks.storage import db
from emrtasks.storage import events as stored_events


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
    return [orjson.loads(row["body"]) for row in rows], directory.pagination(total, page, page_size)
