"""Request dependencies: the service context, the caller's client and connection, and the JSON body."""

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from emrtasks.api import bodies, request_id
from emrtasks.domain import errors, tasks
from emrtasks.observability import logs
from emrtasks.service import audit, auth
from emrtasks.service.context import Context

# Cobalt's header names, underscores included (behind nginx: `underscores_in_headers on`).
_client_id = APIKeyHeader(name="client_id", auto_error=False, scheme_name="client_id")
_client_secret = APIKeyHeader(name="client_secret", auto_error=False, scheme_name="client_secret")
_access_token = APIKeyHeader(name="access_token", auto_error=False, scheme_name="access_token")
access_token_header = _access_token


async def get_context(request: Request) -> Context:  # async: a plain def would run in a thread pool
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_context)]


async def get_client(
    ctx: Ctx,
    client_id: Annotated[str | None, Security(_client_id)],
    client_secret: Annotated[str | None, Security(_client_secret)],
) -> tasks.Client:
    client = await auth.authenticate_client(ctx, client_id, client_secret)
    logs.CLIENT_ID.set(client.id)
    ctx.request_limits.client(client.id, ctx.clock)  # 429 past the client's rate limit
    return client


ClientDep = Annotated[tasks.Client, Depends(get_client)]


async def get_connection(
    ctx: Ctx,
    client: ClientDep,
    access_token: Annotated[str | None, Security(_access_token)],
) -> tasks.Connection:
    return await _connection(ctx, client, access_token)


async def _connection(ctx: Context, client: tasks.Client, access_token: str | None) -> tasks.Connection:
    connection = await auth.authenticate_connection(ctx, client, access_token)
    logs.CONNECTION_ID.set(connection.id)
    ctx.request_limits.connection(connection.id, ctx.clock)  # 429 past the connection's rate limit
    return connection


ConnectionDep = Annotated[tasks.Connection, Depends(get_connection)]


async def connection_of(request: Request) -> tasks.Connection:
    """What `ConnectionDep` resolves, read straight from the request: for the hot route, where
    FastAPI's resolution of the dependency tree cost more than the rest of the request."""
    ctx: Context = request.app.state.ctx
    headers = request.headers
    client = await auth.authenticate_client(ctx, headers.get("client_id"), headers.get("client_secret"))
    logs.CLIENT_ID.set(client.id)
    ctx.request_limits.client(client.id, ctx.clock)
    return await _connection(ctx, client, headers.get("access_token"))


# The OpenAPI description of what `connection_of` reads, for routes that call it directly.
CONNECTION_SECURITY: dict[str, Any] = {
    "security": [{"client_id": [], "client_secret": [], "access_token": []}]
}


# Without access_token, the client's own view; with one, that connection's.
OPTIONAL_CONNECTION_SECURITY: dict[str, Any] = {
    "security": [
        {"client_id": [], "client_secret": [], "access_token": []},
        {"client_id": [], "client_secret": []},
    ]
}


async def get_optional_connection(
    ctx: Ctx,
    client: ClientDep,
    access_token: Annotated[str | None, Security(_access_token)],
) -> tasks.Connection | None:
    if not access_token:
        return None
    return await _connection(ctx, client, access_token)


OptionalConnectionDep = Annotated[tasks.Connection | None, Depends(get_optional_connection)]


async def read_json(request: Request) -> object:
    """The parsed body, or None when it is not JSON; 415 unless it is declared JSON, 413 past the size
    limit (counted as it streams), 400 for a key given twice."""
    bodies.check_media_type(request.headers.get("content-type"))
    limit: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    data = b"".join(chunks)
    try:
        parsed: object = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    bodies.check_duplicates(data, parsed)
    return parsed


JsonBody = Annotated[object, Depends(read_json)]


def _too_large(limit: int) -> errors.Problem:
    size = f"{limit // 1_048_576} MB" if limit % 1_048_576 == 0 else f"{limit} bytes"
    return errors.Problem(413, "payload_too_large", f"Request body too large: the limit is {size}.")


def origin(
    request: Request, *, client: tasks.Client | None = None, connection: tasks.Connection | None = None
) -> audit.Origin:
    """Who the audit trail names for this request: the connection if it gave one, else the client."""
    source = request.client.host if request.client else None
    rid = request_id.request_id_of(request.scope)
    if connection is not None:
        return audit.Origin(audit.CONNECTION, connection.id, connection.client_id, connection.id, source, rid)
    return audit.as_client(client.id if client else None, source, rid)
