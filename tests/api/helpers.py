"""Helpers shared by the API tests: contract error bodies, row counts, expiring a login, a client that
returns the app's 500 instead of raising it, and `db_url` parametrisations for database-specific bugs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.storage import connections, db, tables

INVALID_CLIENT = "Invalid client credentials."
INVALID_TOKEN = "Invalid access token."
LOGIN_REQUIRED_BODY = {
    "success": False,
    "error": "login_required",
    "message": "Account link expired. Please go through the integration setup again.",
}
ACCEPTED_MESSAGE = "Task processing. A webhook event will be sent upon completion."
NOT_JSON_OBJECT = {
    "success": False,
    "error": "invalid_body",
    "message": "Request body must be a JSON object.",
}
TOO_LARGE = {
    "success": False,
    "error": "payload_too_large",
    "message": "Request body too large: the limit is 1 MB.",
}
ONE_MB = 1_048_576
JSON_TYPE = {"content-type": "application/json"}


def unauthorized(message: str, *headers: dict[str, str]) -> dict[str, Any]:
    """Cobalt's 401 body, with an `errors` entry per header at fault (`missing`, `UNKNOWN_CLIENT`...)."""
    body: dict[str, Any] = {"success": False, "error": "unauthorized", "message": message}
    return {**body, "errors": list(headers)} if headers else body


def missing(header: str) -> dict[str, str]:
    return {"field": header, "code": "missing_header", "message": f"Missing header: {header}."}


def _rejected(header: str, message: str) -> dict[str, str]:
    return {"field": header, "code": "invalid_credential", "message": message}


UNKNOWN_CLIENT = _rejected("client_id", "client_id is not an active client.")
WRONG_SECRET = _rejected("client_secret", "client_secret does not match the client's secret.")
WRONG_TOKEN = _rejected("access_token", "access_token is not an active access token of this client.")


def not_found(what: str) -> dict[str, Any]:
    return {"success": False, "error": "not_found", "message": f"{what} not found."}


async def count_rows(runtime: bootstrap.Runtime, table: Any) -> int:
    async with db.read(runtime.engine) as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def stored_counts(runtime: bootstrap.Runtime) -> dict[str, int]:
    """How many tasks, jobs, events and sandbox EMR tasks the database holds."""
    return {
        "tasks": await count_rows(runtime, tables.tasks),
        "jobs": await count_rows(runtime, tables.jobs),
        "events": await count_rows(runtime, tables.events),
        "sandbox_emr_tasks": await count_rows(runtime, tables.sandbox_emr_tasks),
    }


NOTHING_STORED = {"tasks": 0, "jobs": 0, "events": 0, "sandbox_emr_tasks": 0}


async def expire_login(runtime: bootstrap.Runtime, connection_id: str) -> None:
    async with db.write(runtime.engine) as conn:
        await connections.update_connection(conn, connection_id, runtime.ctx.clock(), status="login_required")


@asynccontextmanager
async def server_client(runtime: bootstrap.Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """Like the `api` fixture, but an unhandled error comes back as the app's 500 answer, as a real server
    would send it, instead of being raised into the test."""
    app = create_app(runtime.ctx, max_body_bytes=runtime.settings.max_body_bytes)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def parse_iso_utc(value: str) -> datetime:
    """An ISO 8601 UTC timestamp ending in Z, as the API writes them."""
    assert value.endswith("Z"), value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert moment.utcoffset() == UTC.utcoffset(None)
    return moment
