"""Clients, connections and their settings: created from the CLI, changed from the API."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from emrtasks.domain import errors, ids, outcomes, validation
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import adapters, audit, auth, login_required
from emrtasks.service.context import Context
from emrtasks.storage import clients, connections, db

REFERENCE_FIELD: Final = "access_token_reference_id"


class Settings(TypedDict):
    """`GET /v1/settings` data, in Cobalt's shape; visit data is not part of a task EMR link."""

    access_token_reference_id: str | None
    emr: str
    rules: str
    status: str
    visit_types: list[str]
    visit_statuses: list[str]
    required_patient_fields: list[str]
    timezone: str


class UpdatedSettings(TypedDict):
    access_token_reference_id: str


class DirectoryCounts(TypedDict):
    users: int
    phone_call_types: int


class ListedConnection(TypedDict):
    """A connection as `emrtasks connections list` prints it: its settings without the secret ones."""

    connection_id: str
    client_id: str
    emr: str
    rules: str
    reference_id: str | None
    status: str
    settings: dict[str, object]


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class NewConnection:
    connection_id: str
    access_token: str


async def create_client(ctx: Context, name: str) -> NewClient:
    name = name.strip()
    if not name:
        raise errors.Problem(400, "missing_field", "Missing required field: name")
    created = NewClient(ids.new_id("ci"), ids.new_secret("cs"))
    async with db.write(ctx.engine) as conn:
        await clients.insert_client(
            conn,
            client_id=created.client_id,
            name=name,
            secret_hash=ids.hash_secret(created.client_secret),
            now=ctx.clock(),
        )
    return created


async def create_connection(
    ctx: Context,
    *,
    client_id: str,
    emr: str,
    rules: str | None,
    reference_id: str | None,
    settings: Mapping[str, Any],
) -> NewConnection:
    chosen = adapters.rules_for(emr, rules)
    created = NewConnection(ids.new_id("conn"), ids.new_secret("at"))
    public, credentials = split_config(ctx, emr, settings, created.connection_id)
    async with db.write(ctx.engine) as conn:
        if await clients.get_client_with_hash(conn, client_id) is None:
            raise errors.not_found("Client")
        connection = domain_tasks.Connection(
            id=created.connection_id,
            client_id=client_id,
            emr=emr,
            rules=chosen.name,
            reference_id=reference_id,
            status=domain_tasks.CONNECTION_ACTIVE,
            settings=public,
            credentials=credentials,
        )
        token_hash = ids.hash_secret(created.access_token)
        await connections.insert_connection(
            conn, connection=connection, token_hash=token_hash, now=ctx.clock()
        )
    return created


async def update_connection(
    ctx: Context, connection_id: str, *, settings: Mapping[str, Any] | None, reference_id: str | None
) -> domain_tasks.Connection:
    """New settings or credentials (merged over the old ones), and the connection active again: how a
    broken EMR login is repaired."""
    async with db.write(ctx.engine) as conn:
        found = await connections.get_connection(conn, connection_id)
        if found is None:
            raise errors.not_found("Connection")
        values: dict[str, Any] = {"status": domain_tasks.CONNECTION_ACTIVE}
        if settings is not None:
            merged = {**ctx.adapters.config_of(found), **settings}
            values["settings"], values["credentials"] = split_config(ctx, found.emr, merged, connection_id)
        if reference_id is not None:
            values["reference_id"] = reference_id
        await connections.update_connection(conn, connection_id, ctx.clock(), **values)
        updated = await connections.get_connection(conn, connection_id)
    auth.forget_connection(ctx, connection_id)
    assert updated is not None
    return updated


async def sync_directory(ctx: Context, connection_id: str) -> DirectoryCounts:
    """Fetch the EMR's users and call types now and store them for every process."""
    async with db.read(ctx.engine) as conn:
        found = await connections.get_connection(conn, connection_id)
    if found is None:
        raise errors.not_found("Connection")
    try:
        fetched = await ctx.adapters.directory(found, refresh=True)
    except outcomes.AdapterError as exc:
        raise await read_failed(ctx, found, exc, "The EMR's directory could not be read") from exc
    return {"users": len(fetched.users), "phone_call_types": len(fetched.call_types)}


def split_config(
    ctx: Context, emr: str, config: Mapping[str, Any], connection_id: str
) -> tuple[dict[str, Any], str | None]:
    """Check a connection's config against its EMR's settings; secrets apart, encrypted for its row."""
    module = adapters.module_for(emr)
    own = {k: v for k, v in config.items() if k not in adapters.CONNECTION_LIMITS}
    problems = adapters.check_limits(config) + module.check_config(own)
    if problems:
        raise errors.Problem(400, "invalid_settings", f"Invalid settings for {emr}: " + "; ".join(problems))
    secret_names = {s.name for s in module.SETTINGS if s.secret}
    public = {k: v for k, v in config.items() if k not in secret_names}
    secrets = {k: v for k, v in config.items() if k in secret_names}
    if not secrets:
        return public, None
    return public, ctx.cipher.encrypt(json.dumps(secrets), adapters.credentials_at(connection_id))


def settings_of(connection: domain_tasks.Connection) -> Settings:
    return {
        REFERENCE_FIELD: connection.reference_id,
        "emr": connection.emr,
        "rules": connection.rules,
        "status": connection.status,
        "visit_types": [],
        "visit_statuses": [],
        "required_patient_fields": ["patient_mrn"],
        "timezone": "UTC",
    }


async def update_settings(
    ctx: Context, origin: audit.Origin, connection: domain_tasks.Connection, body: object
) -> UpdatedSettings:
    targets = {"connection_id": connection.id}
    async with audit.changing(ctx, origin, "connection.update_settings", targets) as change:
        reference_id = _reference_from(body)
        async with db.write(ctx.engine) as conn:
            now = ctx.clock()
            await connections.update_connection(conn, connection.id, now, reference_id=reference_id)
            await change.write(conn, now)
    auth.forget_connection(ctx, connection.id)
    return {REFERENCE_FIELD: reference_id}


def _reference_from(body: object) -> str:
    if not isinstance(body, dict):
        raise errors.Problem(400, "invalid_body", "Request body must be a JSON object.")
    extra = [str(k) for k in body if k != REFERENCE_FIELD]
    if extra:
        raise errors.unexpected_fields(extra)
    value = body.get(REFERENCE_FIELD)
    if value is not None and not isinstance(value, str):
        message = f"Invalid field: {REFERENCE_FIELD} must be a string."
        field = errors.FieldError(REFERENCE_FIELD, "invalid_type", message)
        raise errors.Problem(400, "invalid_field", message, (field,))
    if value is not None and "\x00" in value:
        message = f"Invalid field: {REFERENCE_FIELD} must not contain NUL characters."
        field = errors.FieldError(REFERENCE_FIELD, "invalid_type", message)
        raise errors.Problem(400, "invalid_field", message, (field,))
    if value is None or not value.strip():
        message = f"Missing required field: {REFERENCE_FIELD}"
        field = errors.FieldError(REFERENCE_FIELD, "missing_field", message)
        raise errors.Problem(400, "missing_field", message, (field,))
    flaw = validation.identifier_flaw(value.strip())
    if flaw:
        message = f"Invalid field: {REFERENCE_FIELD} must not contain {flaw}."
        field = errors.FieldError(REFERENCE_FIELD, "invalid_type", message)
        raise errors.Problem(400, "invalid_field", message, (field,))
    if len(value.strip()) > 255:
        message = f"Invalid field: {REFERENCE_FIELD} must be at most 255 characters."
        field = errors.FieldError(REFERENCE_FIELD, "too_long", message)
        raise errors.Problem(400, "limit_exceeded", message, (field,))
    return value.strip()


async def mark_login_required(ctx: Context, connection: domain_tasks.Connection) -> None:
    """The EMR refused this connection's credentials: its requests get 403 until it is linked again
    (update mode) or updated; the client gets one `login_required` event per break."""
    async with db.write(ctx.engine) as conn:
        broke = await login_required.record(ctx, conn, connection.id, ctx.clock())
    auth.forget_connection(ctx, connection.id)
    if broke:
        ctx.wake()  # its webhook deliveries are due now


async def list_connections(ctx: Context, client_id: str | None) -> list[ListedConnection]:
    async with db.read(ctx.engine) as conn:
        found = await connections.list_connections(conn, client_id)
    return [
        {
            "connection_id": c.id,
            "client_id": c.client_id,
            "emr": c.emr,
            "rules": c.rules,
            "reference_id": c.reference_id,
            "status": c.status,
            "settings": dict(c.settings),
        }
        for c in found
    ]


async def read_failed(
    ctx: Context, connection: domain_tasks.Connection, exc: outcomes.AdapterError, what: str
) -> errors.Problem:
    """The answer to a request whose read of the EMR failed: a refused login marks the connection
    (403 login_required); a spent call budget or the EMR's own rate limit is 503 emr_rate_limited; anything
    else is the EMR's error (502 emr_error). Both carry the wait the EMR or the budget gave."""
    if exc.outcome.code == outcomes.LOGIN_REQUIRED:
        await mark_login_required(ctx, connection)
        return errors.login_required()
    retry_after = exc.outcome.retry_after if isinstance(exc.outcome, outcomes.RetryLater) else None
    message = f"{what}: {exc.outcome.description}"
    if exc.outcome.code == outcomes.EMR_RATE_LIMITED:
        return errors.emr_rate_limited(message, retry_after)
    return errors.emr_error(message, retry_after)
