"""What the metrics read from the database at scrape time: jobs by kind and state, the oldest due job,
tasks and connections by status, webhook endpoints' health. Counts only; no row ever leaves."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.domain import states
from emrtasks.storage import db
from emrtasks.storage.tables import connections, jobs, tasks, webhook_endpoints

_QUEUED = states.JobState.QUEUED
_ACTIVE = states.EndpointStatus.ACTIVE


@dataclass(frozen=True)
class Snapshot:
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    """(kind, state) -> jobs."""
    oldest_due_seconds: dict[str, float] = field(default_factory=dict)
    """kind -> how long the oldest queued job that is due has waited past its run time."""
    tasks: dict[str, int] = field(default_factory=dict)
    connections: dict[tuple[str, str], int] = field(default_factory=dict)
    """(emr, status) -> connections in use (disabled and deleted ones left out)."""
    endpoints: dict[str, int] = field(default_factory=dict)
    failing_endpoint_seconds: float = 0.0
    """How long the active endpoint failing longest has failed (0: none fails)."""


async def read(engine: AsyncEngine, now: datetime) -> Snapshot:
    """One read transaction, a handful of grouped counts."""
    async with db.read(engine) as conn:
        job_rows = (await conn.execute(_JOBS)).all()
        due_rows = (await conn.execute(_OLDEST_DUE, {"b_now": now})).all()
        task_rows = (await conn.execute(_TASKS)).all()
        connection_rows = (await conn.execute(_CONNECTIONS)).all()
        endpoint_rows = (await conn.execute(_ENDPOINTS)).all()
        failing_since = (await conn.execute(_FAILING_SINCE)).scalar()
    return Snapshot(
        jobs={(kind, state): count for kind, state, count in job_rows},
        oldest_due_seconds={kind: max(0.0, (now - at).total_seconds()) for kind, at in due_rows if at},
        tasks={status: count for status, count in task_rows},
        connections={(emr, status): count for emr, status, count in connection_rows},
        endpoints={status: count for status, count in endpoint_rows},
        failing_endpoint_seconds=max(0.0, (now - failing_since).total_seconds()) if failing_since else 0.0,
    )


_JOBS = select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
_OLDEST_DUE = (
    select(jobs.c.kind, func.min(jobs.c.run_at))
    .where(jobs.c.state == _QUEUED, jobs.c.run_at <= bindparam("b_now"))
    .group_by(jobs.c.kind)
)
_TASKS = select(tasks.c.status, func.count()).group_by(tasks.c.status)
_CONNECTIONS = (
    select(connections.c.emr, connections.c.status, func.count())
    .where(connections.c.deleted_at.is_(None), connections.c.disabled_at.is_(None))
    .group_by(connections.c.emr, connections.c.status)
)
_ENDPOINTS = select(webhook_endpoints.c.status, func.count()).group_by(webhook_endpoints.c.status)
_FAILING_SINCE = select(func.min(webhook_endpoints.c.failing_since)).where(
    webhook_endpoints.c.status == _ACTIVE
)
