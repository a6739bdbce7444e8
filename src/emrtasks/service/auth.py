"""Who is calling: client credentials, then the connection behind an access token; briefly cached.

Only hashes are stored and compared; a cached entry is keyed by the hash, never the secret. A
rotated secret or token still works until its overlap ends. A disabled or deleted credential is
refused by every process within a second: each change bumps a generation in the database (and on
PostgreSQL is announced with NOTIFY, heard by `forget_all`); each process reads the generation at
most every `GENERATION_POLL_SECONDS` while it serves and drops its whole cache when it moved.
"""

import time
from datetime import datetime

from emrtasks.domain import errors, ids, tasks
from emrtasks.service.context import Context
from emrtasks.storage import credentials, db

GENERATION_POLL_SECONDS = 0.5
"""Under the 1-second bound with room for the read itself; one small read per process per interval."""


async def authenticate_client(ctx: Context, client_id: str | None, secret: str | None) -> tasks.Client:
    if not client_id or not secret:
        missing = errors.missing_headers(client_id=client_id, client_secret=secret)
        raise errors.unauthorized(errors.INVALID_CLIENT, *missing)
    await _follow_changes(ctx)
    key = ("client", f"{client_id}:{ids.hash_secret(secret)}")
    cached = _cached(ctx, key)
    if isinstance(cached, tasks.Client):
        return cached
    async with db.read(ctx.engine) as conn:
        found = await credentials.client_credentials(conn, client_id)
    if found is None or found.state != credentials.ACTIVE:
        raise errors.unauthorized(errors.INVALID_CLIENT, errors.UNKNOWN_CLIENT)
    now = ctx.clock()
    if ids.secret_matches(secret, found.secret_hash):
        _remember(ctx, key, found.client)
    elif _previous_matches(secret, found.previous_secret_hash, found.previous_secret_expires_at, now):
        _remember(ctx, key, found.client, until=found.previous_secret_expires_at, now=now)
    else:
        raise errors.unauthorized(errors.INVALID_CLIENT, errors.WRONG_SECRET)
    return found.client


async def authenticate_connection(ctx: Context, client: tasks.Client, token: str | None) -> tasks.Connection:
    if not token:
        raise errors.unauthorized(errors.INVALID_TOKEN, *errors.missing_headers(access_token=token))
    await _follow_changes(ctx)
    key = ("connection", ids.hash_secret(token))
    connection = _cached(ctx, key)
    if not isinstance(connection, tasks.Connection):
        connection = await _load_connection(ctx, key)
    if connection.client_id != client.id:
        raise errors.unauthorized(errors.INVALID_TOKEN, errors.WRONG_TOKEN)
    if connection.status == tasks.CONNECTION_LOGIN_REQUIRED:
        raise errors.login_required()
    return connection


async def _load_connection(ctx: Context, key: tuple[str, str]) -> tasks.Connection:
    async with db.read(ctx.engine) as conn:
        found = await credentials.connection_by_token_hash(conn, key[1])
    if found is None or found.state != credentials.ACTIVE:
        raise errors.unauthorized(errors.INVALID_TOKEN, errors.WRONG_TOKEN)
    now = ctx.clock()
    if found.token_hash == key[1]:
        _remember(ctx, key, found.connection)
    elif found.previous_token_expires_at is not None and now < found.previous_token_expires_at:
        _remember(ctx, key, found.connection, until=found.previous_token_expires_at, now=now)
    else:
        raise errors.unauthorized(errors.INVALID_TOKEN, errors.WRONG_TOKEN)
    return found.connection


def _previous_matches(
    secret: str, stored_hash: str | None, expires_at: datetime | None, now: datetime
) -> bool:
    if stored_hash is None or expires_at is None or now >= expires_at:
        return False
    return ids.secret_matches(secret, stored_hash)


async def _follow_changes(ctx: Context) -> None:
    """Drop every cached credential when another process (or this one) changed any: the poll that
    bounds how long a revoked credential can still be served from the cache."""
    if ctx.policy.auth_cache_seconds <= 0:
        return  # nothing is cached
    moment = time.monotonic()
    if moment < ctx.auth_generation_checked_until:
        return
    ctx.auth_generation_checked_until = moment + GENERATION_POLL_SECONDS
    async with db.read(ctx.engine) as conn:
        generation = await credentials.generation(conn)
    if generation != ctx.auth_generation:
        ctx.auth_cache.clear()
        ctx.auth_generation = generation


def forget_all(ctx: Context) -> None:
    """A credential changed somewhere (NOTIFY, or this process): nothing cached is trusted any more."""
    ctx.auth_cache.clear()
    ctx.auth_generation_checked_until = 0.0


def forget_connection(ctx: Context, connection_id: str) -> None:
    """Drop cached copies after a change, so this process sees it at once."""
    for key, (_expiry, value) in list(ctx.auth_cache.items()):
        if isinstance(value, tasks.Connection) and value.id == connection_id:
            ctx.auth_cache.pop(key, None)


def _cached(ctx: Context, key: tuple[str, str]) -> object | None:
    entry = ctx.auth_cache.get(key)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _remember(
    ctx: Context,
    key: tuple[str, str],
    value: object,
    *,
    until: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Cache for `auth_cache_seconds`, never past `until` (a rotated-out credential's overlap end)."""
    seconds = ctx.policy.auth_cache_seconds
    if until is not None and now is not None:
        seconds = min(seconds, (until - now).total_seconds())
    if seconds > 0:
        if len(ctx.auth_cache) > 10_000:
            ctx.auth_cache.clear()
        ctx.auth_cache[key] = (time.monotonic() + seconds, value)
