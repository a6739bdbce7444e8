"""`GET /v1/webhook-events`: the events recorded for the client, for polling (no endpoint needed)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from emrtasks.api import deps, query, schemas
from emrtasks.api.deps import ClientDep, Ctx, OptionalConnectionDep
from emrtasks.api.responses import JSON
from emrtasks.service import audit, event_log
from emrtasks.webhooks import events

router = APIRouter(prefix="/v1", tags=["events"])


def _day_query(description: str) -> Any:
    """A day written YYYY-MM-DD (in UTC); the calendar itself is checked by the service."""
    extra = {"format": "date"}
    return Query(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description=f"{description} (YYYY-MM-DD, UTC).",
        json_schema_extra=extra,
    )


@router.get(
    "/webhook-events",
    summary="Events for this client; with an access_token, only that connection's",
    responses={200: {"model": schemas.EventsResponse}, **schemas.errors(400, 401, 403)},
    openapi_extra=deps.OPTIONAL_CONNECTION_SECURITY,
)
async def list_events(
    request: Request,
    ctx: Ctx,
    client: ClientDep,
    connection: OptionalConnectionDep,
    _query: query.Checked,
    job_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    event_type: events.EventType | None = None,
    delivery_status: Literal["pending", "success", "failed"] | None = None,
    start_date: Annotated[str | None, _day_query("The first day, included")] = None,
    end_date: Annotated[str | None, _day_query("The last day, included")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
    sort: Literal["created_at", "-created_at"] = "-created_at",
) -> JSON:
    origin = deps.origin(request, client=client, connection=connection)
    filters = event_log.Filters(job_id, event_type, delivery_status, start_date, end_date)
    async with audit.recorded(ctx, origin, "events.read", {"job_id": audit.safe_id(job_id)}):
        found, pagination = await event_log.list_events(
            ctx,
            client,
            connection,
            filters,
            page=page,
            page_size=page_size,
            newest_first=sort == "-created_at",
        )
    listed = [event.as_public() for event in found]
    return JSON({"success": True, "webhook_events": listed, "pagination": pagination})
