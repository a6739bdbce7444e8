"""Credential lifecycle in the database: rotation with an overlap, disable, delete, and the generation
every process polls to drop its cached credentials (service/auth.py)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update

from emrtasks.domain import states
from emrtasks.domain import tasks as domain_tasks
from emrtasks.storage import db
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import clients, connections, credential_changes, deliveries, events, jobs, tasks
from emrtasks.storage.tables import webhook_endpoints as endpoints

CHANNEL = "emrtasks_credentials"
ACTIVE = "active"
DISABLED = "disabled"
DELETED = "deleted"
_ROW = 1


@dataclass(frozen=True)
class ClientCredentials:
    client: domain_tasks.Client
    secret_hash: str
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None
    state: str


@dataclass(frozen=True)
class ConnectionCredentials:
    connection: domain_tasks.Connection
    token_hash: str
    previous_token_hash: str | None
    previous_token_expires_at: datetime | None
    state: str


@dataclass(frozen=True)
class ClientListing:
    """A client as operators list them: never its secret's hash."""

    client_id: str
    name: str
    state: str
    created_at: datetime
    previous_secret_expires_at: datetime | None


def state_of(row: Any) -> str:
    if row.deleted_at is not None:
        return DELETED
    return DISABLED if row.disabled_at is not None else ACTIVE


async def generation(conn: DbConnection) -> int:
    row = (await conn.execute(_GENERATION)).first()
    return int(row[0]) if row else 0


_GENERATION = db.hot(select(credential_changes.c.generation).where(credential_changes.c.id == _ROW))


async def announce(conn: DbConnection, now: datetime) -> None:
    """Inside the changing transaction: bump the generation (every process polls it) and, on
    PostgreSQL, NOTIFY the listeners, who hear it only if this commits."""
    bumped = await conn.execute(
        update(credential_changes)
        .where(credential_changes.c.id == _ROW)
        .values(generation=credential_changes.c.generation + 1, changed_at=now)
    )
    if bumped.rowcount == 0:
        await conn.execute(insert(credential_changes).values(id=_ROW, generation=1, changed_at=now))
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_notify('{CHANNEL}', '')"))


async def client_credentials(conn: DbConnection, client_id: str) -> ClientCredentials | None:
    c = clients.c
    query = select(
        c.id,
        c.name,
        c.secret_hash,
        c.previous_secret_hash,
        c.previous_secret_expires_at,
        c.disabled_at,
        c.deleted_at,
    ).where(c.id == client_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return ClientCredentials(
        client=domain_tasks.Client(id=row.id, name=row.name),
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=row.previous_secret_expires_at,
        state=state_of(row),
    )


async def list_clients(conn: DbConnection) -> list[ClientListing]:
    c = clients.c
    query = select(
        c.id, c.name, c.created_at, c.previous_secret_expires_at, c.disabled_at, c.deleted_at
    ).order_by(c.created_at)
    return [
        ClientListing(row.id, row.name, state_of(row), row.created_at, row.previous_secret_expires_at)
        for row in (await conn.execute(query)).all()
    ]


async def update_client(conn: DbConnection, client_id: str, **values: Any) -> None:
    await conn.execute(update(clients).where(clients.c.id == client_id).values(**values))


async def update_connection(conn: DbConnection, connection_id: str, now: datetime, **values: Any) -> None:
    query = update(connections).where(connections.c.id == connection_id)
    await conn.execute(query.values(updated_at=now, **values))


async def connection_states(conn: DbConnection, connection_ids: list[str]) -> dict[str, str]:
    c = connections.c
    query = select(c.id, c.disabled_at, c.deleted_at).where(c.id.in_(connection_ids))
    return {row.id: state_of(row) for row in (await conn.execute(query)).all()}


async def connection_ids_of(conn: DbConnection, client_id: str) -> list[str]:
    query = select(connections.c.id).where(connections.c.client_id == client_id)
    return [row.id for row in (await conn.execute(query)).all()]


async def connection_by_token_hash(conn: DbConnection, token_hash: str) -> ConnectionCredentials | None:
    """The connection whose current token, or previous one (still within its overlap or not: the
    caller checks), has this hash."""
    c = connections.c
    query = select(
        c.id,
        c.client_id,
        c.emr,
        c.rules,
        c.reference_id,
        c.status,
        c.settings,
        c.credentials,
        c.token_hash,
        c.previous_token_hash,
        c.previous_token_expires_at,
        c.disabled_at,
        c.deleted_at,
    ).where((c.token_hash == token_hash) | (c.previous_token_hash == token_hash))
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return ConnectionCredentials(
        connection=domain_tasks.Connection(
            id=row.id,
            client_id=row.client_id,
            emr=row.emr,
            rules=row.rules,
            reference_id=row.reference_id,
            status=states.ConnectionStatus(row.status),
            settings=row.settings or {},
            credentials=row.credentials,
        ),
        token_hash=row.token_hash,
        previous_token_hash=row.previous_token_hash,
        previous_token_expires_at=row.previous_token_expires_at,
        state=state_of(row),
    )


async def end_pending_work(
    conn: DbConnection, connection_ids: list[str], endpoint_ids: list[str], now: datetime
) -> int:
    """A deleted connection's (or client's) queued work ends: its create_task jobs fail with their tasks,
    and the pending deliveries of its events (or to its endpoints) stop. A running job is left to
    record its result (its update is fenced on the running state, not on the connection)."""
    ended = 0
    if connection_ids:
        task_jobs = select(jobs.c.id).where(
            jobs.c.connection_id.in_(connection_ids), jobs.c.state == states.JobState.QUEUED
        )
        job_ids = [row.id for row in (await conn.execute(task_jobs)).all()]
        ended += await _end_jobs(conn, job_ids, now, "CONNECTION_DELETED")
        if job_ids:
            await conn.execute(
                update(tasks)
                .where(tasks.c.job_id.in_(job_ids), tasks.c.status == domain_tasks.PROCESSING)
                .values(
                    status=domain_tasks.FAILED,
                    failure_reason="The connection was deleted before the task was written.",
                    updated_at=now,
                )
            )
    pending = select(deliveries.c.id, deliveries.c.job_id).where(
        deliveries.c.status == states.DeliveryStatus.PENDING
    )
    if connection_ids and endpoint_ids:
        pending = pending.where(
            deliveries.c.endpoint_id.in_(endpoint_ids)
            | deliveries.c.event_id.in_(select(events.c.id).where(events.c.connection_id.in_(connection_ids)))
        )
    elif connection_ids:
        pending = pending.where(
            deliveries.c.event_id.in_(select(events.c.id).where(events.c.connection_id.in_(connection_ids)))
        )
    elif endpoint_ids:
        pending = pending.where(deliveries.c.endpoint_id.in_(endpoint_ids))
    else:
        return ended
    found = (await conn.execute(pending)).all()
    ended += await _end_jobs(conn, [row.job_id for row in found if row.job_id], now, "CREDENTIAL_DELETED")
    if found:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_([row.id for row in found]))
            .values(status=states.DeliveryStatus.FAILED, resend_requested=False, updated_at=now)
        )
    return ended


async def _end_jobs(conn: DbConnection, job_ids: list[str], now: datetime, code: str) -> int:
    if not job_ids:
        return 0
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id.in_(job_ids), jobs.c.state == states.JobState.QUEUED)
        .values(
            state=states.JobState.FAILED,
            finished_at=now,
            updated_at=now,
            last_error_code=code,
            last_error="Its credential was deleted before it ran.",
        )
    )
    return int(result.rowcount or 0)


async def delete_endpoints(conn: DbConnection, client_id: str, now: datetime) -> list[str]:
    """A deleted client's webhook endpoints: deleted too (their deliveries stop)."""
    query = select(endpoints.c.id).where(
        endpoints.c.client_id == client_id, endpoints.c.status != states.EndpointStatus.DELETED
    )
    found = [row.id for row in (await conn.execute(query)).all()]
    if found:
        await conn.execute(
            update(endpoints)
            .where(endpoints.c.id.in_(found))
            # A deleted endpoint signs nothing: its secrets go with it, as when one endpoint is deleted.
            .values(
                status=states.EndpointStatus.DELETED,
                secret="",
                previous_secret=None,
                previous_secret_expires_at=None,
                updated_at=now,
            )
        )
    return found


async def token_hash_of(conn: DbConnection, connection_id: str) -> str | None:
    row = (
        await conn.execute(select(connections.c.token_hash).where(connections.c.id == connection_id))
    ).first()
    return str(row.token_hash) if row else None
