"""Helpers of the console's tests: an app with the console mounted, operators, signing in, and the CSRF
token a page carries."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select

from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.service import operators
from emrtasks.storage import db, tables
from emrtasks.web import console as web_console

PASSWORD = "correct horse battery"


@asynccontextmanager
async def console_app(
    runtime: bootstrap.Runtime, policy: operators.SessionPolicy | None = None
) -> AsyncIterator[Any]:
    app = create_app(runtime.ctx)
    web_console.install(app, b"k" * 32, policy or operators.SessionPolicy())
    yield app


@asynccontextmanager
async def browser(app: Any, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, as one person's browser."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def make_operator(runtime: bootstrap.Runtime, email: str, role: str = operators.ADMIN) -> str:
    created = await operators.create_operator(runtime.ctx, email, PASSWORD, role)
    return str(created["operator_id"])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/console/login")
    return await client.post(
        "/console/login", data={"email": email, "password": password, "csrf": csrf_of(page.text)}
    )


async def audit_rows(runtime: bootstrap.Runtime, action: str) -> list[dict[str, Any]]:
    async with db.read(runtime.engine) as conn:
        query = select(tables.audit_events).where(tables.audit_events.c.action == action)
        return [dict(r) for r in (await conn.execute(query)).mappings()]
