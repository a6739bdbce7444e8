"""Connections: one clinic's EMR link of a client, found by the hash of its access token."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update

from emrtasks.domain import states
from emrtasks.domain import tasks as domain_tasks
from emrtasks.storage import db, rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import connections, emr_directories, tasks
from emrtasks.storage.tasks import TaskRow


async def insert_connection(
    conn: DbConnection,
    *,
    connection: domain_tasks.Connection,
    token_hash: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(connections).values(
            id=connection.id,
            client_id=connection.client_id,
            emr=connection.emr,
            rules=connection.rules,
            reference_id=connection.reference_id,
            token_hash=token_hash,
            status=connection.status,
            settings=dict(connection.settings),
            credentials=connection.credentials,
            created_at=now,
            updated_at=now,
        )
    )


async def get_by_token_hash(conn: DbConnection, token_hash: str) -> domain_tasks.Connection | None:
    """The connection of this current token, if it is neither disabled nor deleted."""
    live = (connections.c.disabled_at.is_(None), connections.c.deleted_at.is_(None))
    row = (await conn.execute(_select().where(connections.c.token_hash == token_hash, *live))).first()
    return _to_connection(row) if row else None


async def get_connection(conn: DbConnection, connection_id: str) -> domain_tasks.Connection | None:
    row = (await conn.execute(_select().where(connections.c.id == connection_id))).first()
    return _to_connection(row) if row else None


async def update_connection(conn: DbConnection, connection_id: str, now: datetime, **values: Any) -> None:
    query = update(connections).where(connections.c.id == connection_id)
    await conn.execute(query.values(updated_at=now, **values))


async def break_login(conn: DbConnection, connection_id: str, now: datetime) -> bool:
    """active -> login_required, atomically: True only for the one caller that made the change."""
    query = update(connections).where(
        connections.c.id == connection_id, connections.c.status == domain_tasks.CONNECTION_ACTIVE
    )
    result = await conn.execute(query.values(status=domain_tasks.CONNECTION_LOGIN_REQUIRED, updated_at=now))
    return bool(result.rowcount == 1)


def _select() -> Any:
    c = connections.c
    return select(c.id, c.client_id, c.emr, c.rules, c.reference_id, c.status, c.settings, c.credentials)


def _to_connection(row: Row[Any]) -> domain_tasks.Connection:
    settings: Mapping[str, Any] = row.settings or {}
    return domain_tasks.Connection(
        id=row.id,
        client_id=row.client_id,
        emr=row.emr,
        rules=row.rules,
        reference_id=row.reference_id,
        status=states.ConnectionStatus(row.status),
        settings=settings,
        credentials=row.credentials,
    )


@dataclass(frozen=True)
class StoredDirectory:
    """A connection's EMR users (`id`, `name`, `kind`) and call types (`id`, `name`), as last fetched."""

    connection_id: str
    users: list[dict[str, str]]
    call_types: list[dict[str, str]]
    fetched_at: datetime


async def get_directory(conn: DbConnection, connection_id: str) -> StoredDirectory | None:
    query = select(emr_directories).where(emr_directories.c.connection_id == connection_id)
    return rows.first(StoredDirectory, (await conn.execute(query)).mappings().first())


async def save_directory(
    conn: DbConnection,
    connection_id: str,
    users: list[dict[str, str]],
    call_types: list[dict[str, str]],
    now: datetime,
) -> None:
    await conn.execute(delete(emr_directories).where(emr_directories.c.connection_id == connection_id))
    await conn.execute(
        insert(emr_directories).values(
            connection_id=connection_id, users=users, call_types=call_types, fetched_at=now
        )
    )


async def list_connections(conn: DbConnection, client_id: str | None = None) -> list[domain_tasks.Connection]:
    query = _select().order_by(connections.c.created_at)
    if client_id is not None:
        query = query.where(connections.c.client_id == client_id)
    return [_to_connection(row) for row in (await conn.execute(query)).all()]


async def get_task_and_connection(
    conn: DbConnection, task_id: str
) -> tuple[TaskRow, domain_tasks.Connection] | None:
    """A task and its connection in one query: what a create_task job starts from."""
    row = (await conn.execute(_TASK_AND_CONNECTION, {"b_id": task_id})).first()
    if row is None:
        return None
    task = rows.from_values(TaskRow, tuple(row)[-len(_TASK_NAMES) :])
    return task, _to_connection(row)


_TASK_NAMES = tuple(c.name for c in tasks.c)
# Built once (every create_task job runs it; see queue/jobs.py).
_TASK_AND_CONNECTION = db.hot(
    _select()
    .add_columns(*(c.label(f"t_{c.name}") for c in tasks.c))
    .join(tasks, tasks.c.connection_id == connections.c.id)
    .where(tasks.c.id == bindparam("b_id"))
)
