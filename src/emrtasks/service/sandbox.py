"""What a sandbox connection's EMR holds: its tasks with their markers, for tests and demos."""

from typing import Any

from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service.context import Context
from emrtasks.webhooks import events


async def emr_tasks(
    ctx: Context, connection: domain_tasks.Connection, marker: str | None
) -> list[dict[str, Any]]:
    if connection.emr != "sandbox":
        raise errors.Problem(400, "not_sandbox", "This connection is not a sandbox connection.")
    if marker is not None and not ids.plausible(marker):
        return []  # markers are our task ids
    rows = await ctx.adapters.deps.sandbox_store.list_tasks(connection.id, marker=marker)
    return [
        {"emr_task_id": r["id"], "marker": r["marker"], "created": events.iso(r["created_at"])}
        | dict(r["record"])
        for r in rows
    ]
