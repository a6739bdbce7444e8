"""Signing keys of the deployment: their public JWK, their private key (encrypted by the caller), status."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from emrtasks.storage import rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import signing_keys

ACTIVE = "active"
RETIRED = "retired"


@dataclass(frozen=True)
class PublicKey:
    """A key as it is listed and published: never its private half."""

    kid: str
    alg: str
    status: str
    public_jwk: dict[str, Any]
    """The public JWK (RFC 7517), a JSON object published as stored."""
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class PrivateKey:
    """An active key with its private half, still encrypted: what signs."""

    kid: str
    alg: str
    private_key: str
    created_at: datetime


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    status: str


async def insert_key(
    conn: DbConnection,
    *,
    kid: str,
    alg: str,
    public_jwk: dict[str, Any],
    encrypted_private_key: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(signing_keys).values(
            kid=kid,
            alg=alg,
            status=ACTIVE,
            public_jwk=public_jwk,
            private_key=encrypted_private_key,
            created_at=now,
        )
    )


async def list_keys(conn: DbConnection, *, active_only: bool = False) -> list[PublicKey]:
    """Every key, oldest first, without its private key."""
    c = signing_keys.c
    query = select(c.kid, c.alg, c.status, c.public_jwk, c.created_at, c.retired_at).order_by(
        c.created_at, c.kid
    )
    if active_only:
        query = query.where(c.status == ACTIVE)
    return rows.build_all(PublicKey, (await conn.execute(query)).mappings().all())


async def active_private_keys(conn: DbConnection) -> list[PrivateKey]:
    """The active keys with their (encrypted) private key, oldest first: what signs."""
    c = signing_keys.c
    query = (
        select(c.kid, c.alg, c.private_key, c.created_at)
        .where(c.status == ACTIVE)
        .order_by(c.created_at, c.kid)
    )
    return rows.build_all(PrivateKey, (await conn.execute(query)).mappings().all())


async def retire_key(conn: DbConnection, kid: str, now: datetime) -> bool:
    """Retire an active key; False if there is no such active key."""
    c = signing_keys.c
    query = update(signing_keys).where(c.kid == kid, c.status == ACTIVE)
    result = await conn.execute(query.values(status=RETIRED, retired_at=now))
    return bool(result.rowcount)


async def get_key(conn: DbConnection, kid: str) -> KeyStatus | None:
    c = signing_keys.c
    return rows.first(
        KeyStatus, (await conn.execute(select(c.kid, c.status).where(c.kid == kid))).mappings().first()
    )
