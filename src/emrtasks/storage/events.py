"""Events: the outbox of what each client is told. The body is stored as the exact bytes to deliver."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, insert, not_, select

from emrtasks.storage import db, rows
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import deliveries, events


@dataclass(frozen=True)
class StoredEvent:
    """An event as the event log and resends read it; `body` is the exact JSON text delivered."""

    id: str
    client_id: str
    connection_id: str
    type: str
    job_id: str | None
    task_id: str | None
    body: str
    created_at: datetime


async def insert_event(
    conn: DbConnection,
    *,
    event_id: str,
    client_id: str,
    connection_id: str,
    event_type: str,
    job_id: str | None,
    task_id: str | None,
    body: str,
    now: datetime,
) -> None:
    await conn.execute(
        _INSERT,
        {
            "id": event_id,
            "client_id": client_id,
            "connection_id": connection_id,
            "type": event_type,
            "job_id": job_id,
            "task_id": task_id,
            "body": body,
            "created_at": now,
        },
    )


_INSERT = db.hot(insert(events))  # built once (the hot path: see queue/jobs.py)


async def list_events(
    conn: DbConnection,
    *,
    client_id: str,
    connection_id: str | None,
    job_id: str | None,
    event_type: str | None,
    offset: int,
    limit: int,
    newest_first: bool,
    since: datetime | None = None,
    before: datetime | None = None,
    delivery_status: str | None = None,
) -> tuple[list[StoredEvent], int]:
    """`since` inclusive, `before` exclusive; `delivery_status` as `_delivered` defines it."""
    where: list[ColumnElement[bool]] = [events.c.client_id == client_id]
    if connection_id is not None:
        where.append(events.c.connection_id == connection_id)
    if job_id is not None:
        where.append(events.c.job_id == job_id)
    if event_type is not None:
        where.append(events.c.type == event_type)
    if since is not None:
        where.append(events.c.created_at >= since)
    if before is not None:
        where.append(events.c.created_at < before)
    if delivery_status is not None:
        where.append(_delivered(delivery_status))
    total = (await conn.execute(select(func.count()).select_from(events).where(*where))).scalar()
    order = (
        (events.c.created_at.desc(), events.c.id.desc())
        if newest_first
        else (events.c.created_at, events.c.id)
    )
    query = select(events).where(*where).order_by(*order).offset(offset).limit(limit)
    return rows.build_all(StoredEvent, (await conn.execute(query)).mappings().all()), int(total or 0)


def _any_delivery(status: str) -> ColumnElement[bool]:
    return exists().where(deliveries.c.event_id == events.c.id, deliveries.c.status == status)


def _delivered(status: str) -> ColumnElement[bool]:
    """An event's status across its deliveries: pending while any is pending, else failed if any
    failed, else success (as the listing shows it); an event with no delivery matches none."""
    pending, failed, success = (
        _any_delivery(s) for s in (stored_webhooks.PENDING, stored_webhooks.FAILED, stored_webhooks.SUCCESS)
    )
    if status == stored_webhooks.PENDING:
        return pending
    if status == stored_webhooks.FAILED:
        return failed & not_(pending)
    return success & not_(pending) & not_(failed)


async def event_belongs_to(conn: DbConnection, event_id: str, client_id: str) -> bool:
    query = select(events.c.id).where(events.c.id == event_id, events.c.client_id == client_id)
    return (await conn.execute(query)).first() is not None


async def get_event(conn: DbConnection, event_id: str) -> StoredEvent | None:
    row = (await conn.execute(select(events).where(events.c.id == event_id))).mappings().first()
    return rows.first(StoredEvent, row)
