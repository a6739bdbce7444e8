"""Link's records: link tokens (a Link session), public tokens (what Link hands back), the deployment's
app config per EMR, and each client's allowed origins. Tokens are found by their hash only."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from emrtasks.storage import rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import client_origins, clients, deployment_apps, link_tokens, public_tokens


@dataclass(frozen=True)
class LinkToken:
    """A Link session, with the name of the client it was made for."""

    id: str
    client_id: str
    client_name: str
    user_id: str
    org_id: str
    emr: str | None
    instance_domain: str | None
    reference_id: str | None
    callback_url: str | None
    connection_id: str | None
    """Update mode: the connection to repair."""
    access_token: str | None
    """Update mode: that connection's access token, encrypted."""
    tries: int
    oauth_session: str | None
    """An OAuth round trip under way: its PKCE verifier and the clinic's values, encrypted JSON."""
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class PublicToken:
    """What Link hands back, exchanged once for the connection's access token (encrypted until then)."""

    id: str
    link_token_id: str
    client_id: str
    connection_id: str
    access_token: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


async def insert_link_token(conn: DbConnection, **values: Any) -> None:
    await conn.execute(insert(link_tokens).values(**values))


async def get_link_token(conn: DbConnection, token_hash: str) -> LinkToken | None:
    query = (
        select(link_tokens, clients.c.name.label("client_name"))
        .join(clients, clients.c.id == link_tokens.c.client_id)
        .where(link_tokens.c.token_hash == token_hash)
    )
    return rows.first(LinkToken, (await conn.execute(query)).mappings().first())


async def get_link_token_by_state(conn: DbConnection, state_hash: str) -> LinkToken | None:
    query = select(link_tokens.c.token_hash).where(link_tokens.c.oauth_state_hash == state_hash)
    found = (await conn.execute(query)).scalar()
    return await get_link_token(conn, found) if found else None


async def take_oauth_state(conn: DbConnection, link_id: str, state_hash: str) -> bool:
    """Forget an OAuth round trip's state and session; False when another callback took it first."""
    query = (
        update(link_tokens)
        .where(link_tokens.c.id == link_id, link_tokens.c.oauth_state_hash == state_hash)
        .values(oauth_state_hash=None, oauth_session=None)
    )
    return bool((await conn.execute(query)).rowcount == 1)


async def update_link_token(conn: DbConnection, link_id: str, **values: Any) -> None:
    await conn.execute(update(link_tokens).where(link_tokens.c.id == link_id).values(**values))


async def spend_try(conn: DbConnection, link_id: str, max_tries: int) -> int | None:
    """One more refused try, counted atomically; None when the link token had none left (or is used)."""
    query = (
        update(link_tokens)
        .where(link_tokens.c.id == link_id, link_tokens.c.used_at.is_(None), link_tokens.c.tries < max_tries)
        .values(tries=link_tokens.c.tries + 1)
    )
    if (await conn.execute(query)).rowcount != 1:
        return None
    found = (await conn.execute(select(link_tokens.c.tries).where(link_tokens.c.id == link_id))).scalar()
    return int(found or 0)


async def use_link_token(conn: DbConnection, link_id: str, now: datetime) -> bool:
    """Mark the link token used; False when another request used it first."""
    query = (
        update(link_tokens)
        .where(link_tokens.c.id == link_id, link_tokens.c.used_at.is_(None))
        .values(used_at=now, access_token=None, oauth_session=None, oauth_state_hash=None)
    )
    return bool((await conn.execute(query)).rowcount == 1)


async def insert_public_token(conn: DbConnection, **values: Any) -> None:
    await conn.execute(insert(public_tokens).values(**values))


async def get_public_token(conn: DbConnection, token_hash: str) -> PublicToken | None:
    query = select(public_tokens).where(public_tokens.c.token_hash == token_hash)
    return rows.first(PublicToken, (await conn.execute(query)).mappings().first())


async def use_public_token(conn: DbConnection, public_id: str, now: datetime) -> bool:
    """Mark it exchanged and wipe the access token it held; False when another exchange came first."""
    query = (
        update(public_tokens)
        .where(public_tokens.c.id == public_id, public_tokens.c.used_at.is_(None))
        .values(used_at=now, access_token=None)
    )
    return bool((await conn.execute(query)).rowcount == 1)


async def get_app(conn: DbConnection, emr: str) -> str | None:
    """The deployment's app config for an EMR, as stored (encrypted)."""
    query = select(deployment_apps.c.config).where(deployment_apps.c.emr == emr)
    found = (await conn.execute(query)).scalar()
    return str(found) if found is not None else None


async def list_apps(conn: DbConnection) -> dict[str, tuple[str, datetime]]:
    rows = (await conn.execute(select(deployment_apps).order_by(deployment_apps.c.emr))).all()
    return {row.emr: (row.config, row.updated_at) for row in rows}


async def set_app(conn: DbConnection, emr: str, config: str, now: datetime) -> None:
    await conn.execute(delete(deployment_apps).where(deployment_apps.c.emr == emr))
    await conn.execute(insert(deployment_apps).values(emr=emr, config=config, updated_at=now))


async def get_origins(conn: DbConnection, client_id: str) -> tuple[str, ...]:
    query = select(client_origins.c.origin).where(client_origins.c.client_id == client_id)
    return tuple(str(o) for o in (await conn.execute(query.order_by(client_origins.c.origin))).scalars())


async def set_origins(conn: DbConnection, client_id: str, origins: tuple[str, ...], now: datetime) -> None:
    await conn.execute(delete(client_origins).where(client_origins.c.client_id == client_id))
    for origin in origins:
        await conn.execute(insert(client_origins).values(client_id=client_id, origin=origin, created_at=now))
