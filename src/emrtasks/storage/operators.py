"""Console operators and their sessions: rows only; hashing and expiry rules live in service/operators.py."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from emrtasks.storage import rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import console_sessions, operators


@dataclass(frozen=True)
class Operator:
    id: str
    email: str
    password_hash: str
    role: str
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None


@dataclass(frozen=True)
class OperatorSession:
    """A console session with its operator's email, role and disabled_at."""

    id: str
    operator_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    email: str
    role: str
    disabled_at: datetime | None


async def insert_operator(conn: DbConnection, **values: Any) -> None:
    await conn.execute(insert(operators).values(**values))


async def get_by_email(conn: DbConnection, email: str) -> Operator | None:
    row = (await conn.execute(select(operators).where(operators.c.email == email))).mappings().first()
    return rows.first(Operator, row)


async def get_operator(conn: DbConnection, operator_id: str) -> Operator | None:
    row = (await conn.execute(select(operators).where(operators.c.id == operator_id))).mappings().first()
    return rows.first(Operator, row)


async def list_operators(conn: DbConnection) -> list[Operator]:
    query = select(operators).order_by(operators.c.created_at, operators.c.id)
    return rows.build_all(Operator, (await conn.execute(query)).mappings())


async def update_operator(conn: DbConnection, operator_id: str, **values: Any) -> None:
    await conn.execute(update(operators).where(operators.c.id == operator_id).values(**values))


async def insert_session(conn: DbConnection, **values: Any) -> None:
    await conn.execute(insert(console_sessions).values(**values))


async def session_by_token_hash(conn: DbConnection, token_hash: str) -> OperatorSession | None:
    """The session and its operator's email, role and disabled_at, in one row."""
    query = (
        select(
            console_sessions,
            operators.c.email,
            operators.c.role,
            operators.c.disabled_at,
        )
        .join(operators, operators.c.id == console_sessions.c.operator_id)
        .where(console_sessions.c.token_hash == token_hash)
    )
    return rows.first(OperatorSession, (await conn.execute(query)).mappings().first())


async def touch_session(conn: DbConnection, session_id: str, now: datetime) -> None:
    query = update(console_sessions).where(console_sessions.c.id == session_id).values(last_seen_at=now)
    await conn.execute(query)


async def end_session(conn: DbConnection, session_id: str, now: datetime) -> None:
    query = (
        update(console_sessions)
        .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    await conn.execute(query)


async def end_sessions_of(conn: DbConnection, operator_id: str, now: datetime) -> None:
    query = (
        update(console_sessions)
        .where(console_sessions.c.operator_id == operator_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    await conn.execute(query)
