"""Webhook endpoints (secrets encrypted), deliveries (one per event and endpoint) and their attempts."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update

from emrtasks.domain import states
from emrtasks.storage import db, rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import clients, deliveries, delivery_attempts, events, webhook_endpoints

ACTIVE = states.EndpointStatus.ACTIVE
DISABLED = states.EndpointStatus.DISABLED
DELETED = states.EndpointStatus.DELETED
PENDING = states.DeliveryStatus.PENDING
SUCCESS = states.DeliveryStatus.SUCCESS
FAILED = states.DeliveryStatus.FAILED


@dataclass(frozen=True)
class Endpoint:
    """A client's webhook endpoint; `secret` and `previous_secret` are still encrypted."""

    id: str
    client_id: str
    url: str
    status: states.EndpointStatus
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    """When its current run of failures began (None while it answers)."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeliveryRow:
    """One event's delivery to one endpoint, as listings read it."""

    id: str
    event_id: str
    endpoint_id: str
    client_id: str
    status: states.DeliveryStatus
    attempts: int
    job_id: str | None
    resend_requested: bool
    last_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeliveryEvent:
    """The event a delivery sends: its id (the `webhook-id`) and its exact stored JSON text."""

    id: str
    body: str


@dataclass(frozen=True)
class AttemptRow:
    """One HTTP try at one endpoint."""

    event_id: str
    endpoint_id: str
    attempt: int
    trigger: str
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


async def insert_endpoint(
    conn: DbConnection, *, endpoint_id: str, client_id: str, url: str, secret: str, now: datetime
) -> None:
    await conn.execute(
        insert(webhook_endpoints).values(
            id=endpoint_id,
            client_id=client_id,
            url=url,
            status=ACTIVE,
            secret=secret,
            created_at=now,
            updated_at=now,
        )
    )


async def get_endpoint(conn: DbConnection, endpoint_id: str, client_id: str | None = None) -> Endpoint | None:
    query = select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.status != DELETED
    )
    if client_id is not None:
        query = query.where(webhook_endpoints.c.client_id == client_id)
    return rows.first(Endpoint, (await conn.execute(query)).mappings().first())


async def list_endpoints(conn: DbConnection, client_id: str, *, active_only: bool = False) -> list[Endpoint]:
    wanted = [ACTIVE] if active_only else [ACTIVE, DISABLED]
    found = await conn.execute(_ENDPOINTS, {"b_client": client_id, "b_wanted": wanted})
    return rows.build_all(Endpoint, found.mappings())


# The statements of the hot path (every event, every attempt) are built once and bound at each
# execution; see queue/jobs.py.
_ENDPOINTS = db.hot(
    select(webhook_endpoints)
    .where(
        webhook_endpoints.c.client_id == bindparam("b_client"),
        webhook_endpoints.c.status.in_(bindparam("b_wanted", expanding=True)),
    )
    .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
)


ANY: Any = object()


async def update_endpoint(
    conn: DbConnection, endpoint_id: str, now: datetime, *, if_failing_since: Any = ANY, **values: Any
) -> bool:
    """Change an endpoint; with `if_failing_since`, only while its failing period is still the one
    seen (a delivery's decision made before an `enable` must not undo it). True if it changed."""
    query = update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    if if_failing_since is None:
        query = query.where(webhook_endpoints.c.failing_since.is_(None))
    elif if_failing_since is not ANY:
        query = query.where(webhook_endpoints.c.failing_since == if_failing_since)
    return bool((await conn.execute(query.values(updated_at=now, **values))).rowcount == 1)


async def find_delivery(conn: DbConnection, event_id: str, endpoint_id: str) -> DeliveryRow | None:
    query = select(deliveries).where(
        deliveries.c.event_id == event_id, deliveries.c.endpoint_id == endpoint_id
    )
    return rows.first(DeliveryRow, (await conn.execute(query)).mappings().first())


async def insert_delivery(
    conn: DbConnection,
    *,
    delivery_id: str,
    event_id: str,
    endpoint_id: str,
    client_id: str,
    job_id: str,
    now: datetime,
) -> None:
    await conn.execute(
        _INSERT_DELIVERY,
        {
            "id": delivery_id,
            "event_id": event_id,
            "endpoint_id": endpoint_id,
            "client_id": client_id,
            "status": PENDING,
            "attempts": 0,
            "job_id": job_id,
            "resend_requested": False,
            "created_at": now,
            "updated_at": now,
        },
    )


async def update_delivery(conn: DbConnection, delivery_id: str, now: datetime, **values: Any) -> None:
    await conn.execute(_UPDATE_DELIVERY, {"b_id": delivery_id, "updated_at": now, **values})


_INSERT_DELIVERY = db.hot(insert(deliveries))
_UPDATE_DELIVERY = db.hot(update(deliveries).where(deliveries.c.id == bindparam("b_id")))


async def events_since(
    conn: DbConnection,
    client_id: str,
    since: datetime,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[tuple[str, datetime]]:
    """The client's events from `since` on (and past the event `after`, by time then id), oldest
    first: (id, created_at), at most `limit`."""
    e = events.c
    query = (
        select(e.id, e.created_at)
        .where(e.client_id == client_id, e.created_at >= since)
        .order_by(e.created_at, e.id)
        .limit(limit)
    )
    if after is not None:
        moment, event_id = after
        query = query.where(or_(e.created_at > moment, and_(e.created_at == moment, e.id > event_id)))
    return [(row.id, row.created_at) for row in await conn.execute(query)]


async def lock_client(conn: DbConnection, client_id: str) -> None:
    """Hold the client's row until the transaction ends, so counts of its endpoints taken under it
    stay true (PostgreSQL; a SQLite write transaction already excludes every other writer)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(clients.c.id).where(clients.c.id == client_id).with_for_update())


async def delivery_summaries(conn: DbConnection, event_ids: Sequence[str]) -> dict[str, list[DeliveryRow]]:
    """Each event's deliveries, for the events listing."""
    if not event_ids:
        return {}
    query = select(deliveries).where(deliveries.c.event_id.in_(event_ids))
    found: dict[str, list[DeliveryRow]] = {}
    for row in (await conn.execute(query)).mappings():
        found.setdefault(row["event_id"], []).append(rows.build(DeliveryRow, row))
    return found


async def attempts_of(conn: DbConnection, event_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
    if not event_ids:
        return {}
    a = delivery_attempts.c
    query = (
        select(
            a.event_id,
            a.endpoint_id,
            a.attempt,
            a.trigger,
            a.attempted_at,
            a.status_code,
            a.duration_ms,
            a.error,
        )
        .where(a.event_id.in_(event_ids))
        .order_by(a.attempted_at, a.id)
    )
    found: dict[str, list[AttemptRow]] = {}
    for row in (await conn.execute(query)).mappings():
        found.setdefault(row["event_id"], []).append(rows.build(AttemptRow, row))
    return found


async def delivery_context(
    conn: DbConnection, delivery_id: str
) -> tuple[DeliveryRow, DeliveryEvent, Endpoint | None] | None:
    """A delivery, its event and its endpoint (None if deleted), in one query."""
    row = (await conn.execute(_DELIVERY_CONTEXT, {"b_id": delivery_id})).first()
    if row is None:
        return None
    values = tuple(row)
    delivery = rows.from_values(DeliveryRow, values[: len(_D_NAMES)])
    event = DeliveryEvent(values[len(_D_NAMES)], values[len(_D_NAMES) + 1])
    endpoint_values = values[len(_D_NAMES) + 2 :]
    return delivery, event, rows.from_values(Endpoint, endpoint_values) if endpoint_values[0] else None


_D_NAMES = tuple(c.name for c in deliveries.c)
_W_NAMES = tuple(c.name for c in webhook_endpoints.c)
_DELIVERY_CONTEXT = db.hot(
    select(*deliveries.c, events.c.id, events.c.body, *webhook_endpoints.c)
    .join(events, events.c.id == deliveries.c.event_id)
    .outerjoin(
        webhook_endpoints,
        (webhook_endpoints.c.id == deliveries.c.endpoint_id) & (webhook_endpoints.c.status != DELETED),
    )
    .where(deliveries.c.id == bindparam("b_id"))
)
