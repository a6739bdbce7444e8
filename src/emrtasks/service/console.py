"""What the operator console shows: the overview (the last 24 hours), tasks by filter, a task's
timeline, connections, clients and webhook endpoints. A task's timeline shows its content, so each
view of it is a `task.read` row on the audit trail, committed before the page is answered."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import audit
from emrtasks.service.context import Context
from emrtasks.storage import audit as stored_audit
from emrtasks.storage import connections, db
from emrtasks.storage import console as stored_console
from emrtasks.storage import tasks as stored_tasks
from emrtasks.storage import webhooks as stored_webhooks

DAY = timedelta(hours=24)
STATUSES = (domain_tasks.PROCESSING, domain_tasks.CREATED, domain_tasks.FAILED, domain_tasks.UNKNOWN)
RETRY_ACTION = "task.retry"
TASK_LIMIT = 200


@dataclass(frozen=True)
class Hour:
    start: datetime
    counts: dict[str, int]

    @property
    def accepted(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Queue:
    kind: str
    depth: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class Overview:
    now: datetime
    hours: list[Hour]
    queues: list[Queue]
    attempts_ok: int
    attempts_total: int
    login_required: list[stored_console.BrokenLogin]
    troubled_endpoints: list[stored_console.ListedEndpoint]

    @property
    def totals(self) -> dict[str, int]:
        return {s: sum(h.counts.get(s, 0) for h in self.hours) for s in STATUSES}

    @property
    def success_rate(self) -> float | None:
        return self.attempts_ok / self.attempts_total if self.attempts_total else None


async def overview(ctx: Context) -> Overview:
    now = ctx.clock()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    async with db.read(ctx.engine) as conn:
        counted = await stored_console.tasks_by_hour(conn, first)
        queued = await stored_console.queued_jobs(conn)
        ok, total = await stored_console.attempt_counts(conn, now - DAY)
        login_required = await stored_console.connections_needing_login(conn)
        troubled = await stored_console.troubled_endpoints(conn)
    return Overview(
        now=now,
        hours=_hours(first, counted),
        queues=[Queue(kind, n, max((now - oldest).total_seconds(), 0.0)) for kind, n, oldest in queued],
        attempts_ok=ok,
        attempts_total=total,
        login_required=login_required,
        troubled_endpoints=troubled,
    )


def _hours(first: datetime, counted: list[tuple[str, str, int]]) -> list[Hour]:
    starts = [first + timedelta(hours=i) for i in range(24)]
    by_label: dict[str, dict[str, int]] = {s.strftime(stored_console.HOUR_FORMAT): {} for s in starts}
    for label, status, n in counted:
        if label in by_label:
            by_label[label][status] = by_label[label].get(status, 0) + n
    return [Hour(s, by_label[s.strftime(stored_console.HOUR_FORMAT)]) for s in starts]


@dataclass(frozen=True)
class TaskFilter:
    client_id: str | None = None
    connection_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def find_tasks(ctx: Context, wanted: TaskFilter) -> list[stored_console.TaskSummary]:
    """Newest first, at most TASK_LIMIT; ids, statuses and times only."""
    for name in ("client_id", "connection_id"):
        value = getattr(wanted, name)
        if value is not None and not ids.plausible(value):
            raise errors.Problem(400, "invalid_filter", f"Invalid {name}: not an id of ours.")
    if wanted.status is not None and wanted.status not in STATUSES:
        raise errors.Problem(400, "invalid_filter", f"Invalid status: use one of {', '.join(STATUSES)}.")
    async with db.read(ctx.engine) as conn:
        return await stored_console.search_tasks(
            conn,
            client_id=wanted.client_id,
            connection_id=wanted.connection_id,
            status=wanted.status,
            since=wanted.since,
            until=wanted.until,
            limit=TASK_LIMIT,
        )


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of an event, with its endpoint's URL (None once deleted) and every attempt."""

    endpoint_id: str
    url: str | None
    status: str
    created_at: datetime
    attempts: list[stored_webhooks.AttemptRow]


@dataclass
class EventView:
    event: stored_console.EventSummary
    deliveries: list[DeliveryView] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    task: stored_tasks.TaskRow
    jobs: list[stored_console.JobSummary]
    events: list[EventView]
    retries: list[stored_audit.AuditRow]
    finds_by_marker: bool
    """Whether the task's EMR can find a task by our marker: a retry then looks before it writes."""


async def timeline(ctx: Context, origin: audit.Origin, task_id: str) -> Timeline:
    """The task with its content, its jobs, its events and their deliveries; on the audit trail."""
    async with audit.recorded(ctx, origin, "task.read", {"task_id": audit.safe_id(task_id)}):
        if not ids.plausible(task_id):
            raise errors.not_found("Task")
        async with db.read(ctx.engine) as conn:
            task = await stored_tasks.get_task(conn, task_id)
            if task is None:
                raise errors.not_found("Task")
            found = Timeline(
                task=task,
                jobs=await stored_console.jobs_of_task(conn, task_id),
                events=await _events(conn, task_id),
                retries=await _retries(conn, task),
                finds_by_marker=await _finds_by_marker(ctx, conn, task.connection_id),
            )
    return found


async def _events(conn: db.DbConnection, task_id: str) -> list[EventView]:
    views = [EventView(e) for e in await stored_console.events_of_task(conn, task_id)]
    event_ids = [v.event.id for v in views]
    deliveries = await stored_webhooks.delivery_summaries(conn, event_ids)
    attempts = await stored_webhooks.attempts_of(conn, event_ids)
    endpoint_ids = sorted({d.endpoint_id for rows in deliveries.values() for d in rows})
    urls = await stored_console.endpoint_urls(conn, endpoint_ids)
    for view in views:
        for delivery in sorted(deliveries.get(view.event.id, []), key=lambda d: d.created_at):
            tried = [a for a in attempts.get(view.event.id, []) if a.endpoint_id == delivery.endpoint_id]
            view.deliveries.append(
                DeliveryView(
                    delivery.endpoint_id,
                    urls.get(delivery.endpoint_id),
                    delivery.status,
                    delivery.created_at,
                    tried,
                )
            )
    return views


async def _finds_by_marker(ctx: Context, conn: db.DbConnection, connection_id: str) -> bool:
    connection = await connections.get_connection(conn, connection_id)
    return connection is not None and ctx.adapters.for_connection(connection).rules.finds_by_marker


async def _retries(conn: db.DbConnection, task: stored_tasks.TaskRow) -> list[stored_audit.AuditRow]:
    rows = await stored_console.audit_rows_for(conn, (RETRY_ACTION,), task.connection_id)
    return [r for r in rows if (r.targets or {}).get("task_id") == task.id]


async def list_connections(ctx: Context) -> list[stored_console.ListedConnection]:
    async with db.read(ctx.engine) as conn:
        return await stored_console.list_connections(conn)


async def list_endpoints(ctx: Context) -> list[stored_console.ListedEndpoint]:
    async with db.read(ctx.engine) as conn:
        return await stored_console.list_endpoints(conn)
