"""What the operator console reads: the overview's counts, tasks by filter (ids and statuses, never
their content), a task's jobs and events, connections with their last directory sync, endpoints."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update

from emrtasks.domain import states
from emrtasks.storage import rows
from emrtasks.storage.audit import AuditRow
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import (
    audit_events,
    clients,
    connections,
    delivery_attempts,
    emr_directories,
    events,
    jobs,
    tasks,
    webhook_endpoints,
)


@dataclass(frozen=True)
class BrokenLogin:
    """A connection whose EMR login broke (`login_required`), since `updated_at`."""

    id: str
    client_id: str
    emr: str
    reference_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class ListedEndpoint:
    """An endpoint as the console lists it: never its secrets."""

    id: str
    client_id: str
    url: str
    status: states.EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class TaskSummary:
    """A task in a list: ids, status and times, never its content."""

    id: str
    client_id: str
    connection_id: str
    job_id: str
    status: states.TaskStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class JobSummary:
    """A task's job as its timeline shows it."""

    id: str
    kind: str
    state: states.JobState
    attempts: int
    max_attempts: int
    reconcile: bool
    run_at: datetime
    last_error_code: str | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class EventSummary:
    id: str
    client_id: str
    type: str
    job_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class ListedConnection:
    """A connection with its client's name and when its directory was last fetched (None: never)."""

    id: str
    client_id: str
    client_name: str
    emr: str
    rules: str
    reference_id: str | None
    status: states.ConnectionStatus
    disabled_at: datetime | None
    updated_at: datetime
    fetched_at: datetime | None


HOUR_FORMAT = "%Y-%m-%d %H"
"""How `tasks_by_hour` names an hour (UTC), as `datetime.strftime` writes it."""


def _hour_of(conn: DbConnection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime(HOUR_FORMAT, column)  # SQLite keeps UTC as naive text


async def tasks_by_hour(conn: DbConnection, since: datetime) -> list[tuple[str, str, int]]:
    """(hour, status, count) of the tasks accepted since `since`."""
    hour = _hour_of(conn, tasks.c.created_at).label("hour")
    query = (
        select(hour, tasks.c.status, func.count())
        .where(tasks.c.created_at >= since)
        .group_by(hour, tasks.c.status)
    )
    return [(str(h), str(s), int(n)) for h, s, n in (await conn.execute(query)).all()]


async def queued_jobs(conn: DbConnection) -> list[tuple[str, int, datetime]]:
    """(kind, how many are queued, when the oldest of them was enqueued)."""
    query = (
        select(jobs.c.kind, func.count(), func.min(jobs.c.created_at))
        .where(jobs.c.state == states.JobState.QUEUED)
        .group_by(jobs.c.kind)
        .order_by(jobs.c.kind)
    )
    return [(str(k), int(n), _utc(oldest)) for k, n, oldest in (await conn.execute(query)).all()]


def _utc(value: Any) -> datetime:
    """An aggregate's time: SQLite hands it back as naive text, without its column's type."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def attempt_counts(conn: DbConnection, since: datetime) -> tuple[int, int]:
    """(attempts answered 2xx, all attempts) since `since`."""
    a = delivery_attempts.c
    ok = func.sum(case((and_(a.status_code >= 200, a.status_code < 300), 1), else_=0))
    query = select(ok, func.count()).where(a.attempted_at >= since)
    good, total = (await conn.execute(query)).one()
    return int(good or 0), int(total or 0)


async def connections_needing_login(conn: DbConnection) -> list[BrokenLogin]:
    c = connections.c
    query = (
        select(c.id, c.client_id, c.emr, c.reference_id, c.updated_at)
        .where(c.status == states.ConnectionStatus.LOGIN_REQUIRED, c.deleted_at.is_(None))
        .order_by(c.updated_at)
    )
    return rows.build_all(BrokenLogin, (await conn.execute(query)).mappings())


async def troubled_endpoints(conn: DbConnection) -> list[ListedEndpoint]:
    """Endpoints disabled, or active but failing (every attempt since `failing_since` failed)."""
    w = webhook_endpoints.c
    query = (
        select(w.id, w.client_id, w.url, w.status, w.disabled_reason, w.failing_since, w.created_at)
        .where(
            or_(
                w.status == states.EndpointStatus.DISABLED,
                and_(w.status == states.EndpointStatus.ACTIVE, w.failing_since.is_not(None)),
            )
        )
        .order_by(w.client_id, w.id)
    )
    return rows.build_all(ListedEndpoint, (await conn.execute(query)).mappings())


async def search_tasks(
    conn: DbConnection,
    *,
    client_id: str | None,
    connection_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[TaskSummary]:
    """Newest first; ids, statuses and times only (no patient data leaves for a list)."""
    t = tasks.c
    query = select(t.id, t.client_id, t.connection_id, t.job_id, t.status, t.created_at, t.updated_at)
    for column, value in ((t.client_id, client_id), (t.connection_id, connection_id), (t.status, status)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(t.created_at >= since)
    if until is not None:
        query = query.where(t.created_at < until)
    query = query.order_by(t.created_at.desc(), t.id.desc()).limit(limit)
    return rows.build_all(TaskSummary, (await conn.execute(query)).mappings())


async def jobs_of_task(conn: DbConnection, task_id: str) -> list[JobSummary]:
    query = select(jobs).where(jobs.c.task_id == task_id).order_by(jobs.c.created_at, jobs.c.id)
    return rows.build_all(JobSummary, (await conn.execute(query)).mappings())


async def events_of_task(conn: DbConnection, task_id: str) -> list[EventSummary]:
    e = events.c
    query = (
        select(e.id, e.client_id, e.type, e.job_id, e.created_at)
        .where(e.task_id == task_id)
        .order_by(e.created_at, e.id)
    )
    return rows.build_all(EventSummary, (await conn.execute(query)).mappings())


async def endpoint_urls(conn: DbConnection, endpoint_ids: list[str]) -> dict[str, str]:
    if not endpoint_ids:
        return {}
    query = select(webhook_endpoints.c.id, webhook_endpoints.c.url).where(
        webhook_endpoints.c.id.in_(endpoint_ids)
    )
    return {str(i): str(u) for i, u in (await conn.execute(query)).all()}


async def audit_rows_for(conn: DbConnection, actions: tuple[str, ...], connection_id: str) -> list[AuditRow]:
    """Audit rows of these actions on one connection (the caller picks its task's out of them)."""
    query = (
        select(audit_events)
        .where(audit_events.c.action.in_(actions), audit_events.c.connection_id == connection_id)
        .order_by(audit_events.c.at, audit_events.c.id)
    )
    return rows.build_all(AuditRow, (await conn.execute(query)).mappings())


async def list_connections(conn: DbConnection) -> list[ListedConnection]:
    """Every connection not deleted, with its client's name and its directory's last fetch."""
    c = connections.c
    query = (
        select(
            c.id,
            c.client_id,
            clients.c.name.label("client_name"),
            c.emr,
            c.rules,
            c.reference_id,
            c.status,
            c.disabled_at,
            c.updated_at,
            emr_directories.c.fetched_at,
        )
        .join(clients, clients.c.id == c.client_id)
        .outerjoin(emr_directories, emr_directories.c.connection_id == c.id)
        .where(c.deleted_at.is_(None))
        .order_by(c.created_at, c.id)
    )
    return rows.build_all(ListedConnection, (await conn.execute(query)).mappings())


async def list_endpoints(conn: DbConnection) -> list[ListedEndpoint]:
    """Every endpoint not deleted, without its secrets."""
    w = webhook_endpoints.c
    query = (
        select(w.id, w.client_id, w.url, w.status, w.disabled_reason, w.failing_since, w.created_at)
        .where(w.status != states.EndpointStatus.DELETED)
        .order_by(w.client_id, w.created_at, w.id)
    )
    return rows.build_all(ListedEndpoint, (await conn.execute(query)).mappings())


async def reopen_unknown_task(conn: DbConnection, task_id: str, now: datetime) -> bool:
    """An `unknown` task back to `processing`; False if it is not `unknown` (another operator was first)."""
    moved = await conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.status == states.TaskStatus.UNKNOWN)
        .values(
            status=states.TaskStatus.PROCESSING,
            failure_reason=None,
            reasons=[],
            emr_task_id=None,
            updated_at=now,
        )
    )
    return bool(moved.rowcount == 1)
