"""Client apps: their id, name and the hash of their secret."""

from datetime import datetime

from sqlalchemy import insert, select

from emrtasks.domain import tasks as domain_tasks
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import clients


async def insert_client(
    conn: DbConnection, *, client_id: str, name: str, secret_hash: str, now: datetime
) -> None:
    await conn.execute(
        insert(clients).values(id=client_id, name=name, secret_hash=secret_hash, created_at=now)
    )


async def get_client_with_hash(conn: DbConnection, client_id: str) -> tuple[domain_tasks.Client, str] | None:
    """A client not deleted (service/auth.py checks rotation and disabling itself)."""
    query = select(clients.c.id, clients.c.name, clients.c.secret_hash).where(
        clients.c.id == client_id, clients.c.deleted_at.is_(None)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return domain_tasks.Client(id=row.id, name=row.name), row.secret_hash
