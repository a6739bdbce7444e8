"""Who is calling: client credentials, then the connection behind an access token; briefly cached.

Only hashes are stored and compared; a cached entry is keyed by the hash, never the secret.
"""

import time

from emrtasks.domain import errors, ids, tasks
from emrtasks.service.context import Context
from emrtasks.storage import clients, connections, db


async def authenticate_client(ctx: Context, client_id: str | None, secret: str | None) -> tasks.Client:
    if not client_id or not secret:
        raise errors.unauthorized(errors.INVALID_CLIENT)
    key = ("client", f"{client_id}:{ids.hash_secret(secret)}")
    cached = _cached(ctx, key)
    if isinstance(cached, tasks.Client):
        return cached
    async with db.read(ctx.engine) as conn:
        found = await clients.get_client_with_hash(conn, client_id)
    if found is None or not ids.secret_matches(secret, found[1]):
        raise errors.unauthorized(errors.INVALID_CLIENT)
    _remember(ctx, key, found[0])
    return found[0]


async def authenticate_connection(ctx: Context, client: tasks.Client, token: str | None) -> tasks.Connection:
    if not token:
        raise errors.unauthorized(errors.INVALID_TOKEN)
    key = ("connection", ids.hash_secret(token))
    connection = _cached(ctx, key)
    if not isinstance(connection, tasks.Connection):
        async with db.read(ctx.engine) as conn:
            connection = await connections.get_by_token_hash(conn, key[1])
        if connection is None:
            raise errors.unauthorized(errors.INVALID_TOKEN)
        _remember(ctx, key, connection)
    if connection.client_id != client.id:
        raise errors.unauthorized(errors.INVALID_TOKEN)
    if connection.status == tasks.CONNECTION_LOGIN_REQUIRED:
        raise errors.login_required()
    return connection


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


def _remember(ctx: Context, key: tuple[str, str], value: object) -> None:
    seconds = ctx.policy.auth_cache_seconds
    if seconds > 0:
        if len(ctx.auth_cache) > 10_000:
            ctx.auth_cache.clear()
        ctx.auth_cache[key] = (time.monotonic() + seconds, value)
