"""Connection secrets: encrypted at rest, and rotated ones (DrChrono's refresh tokens) stored again so
a restart does not spend a used token."""

import dataclasses
import json

import httpx
from sqlalchemy import select

from emrtasks.service import admin
from emrtasks.storage import connections, db, tables
from tests.conftest import make_tenant
from tests.contract import harness
from tests.contract.cases.drchrono import CASE
from tests.contract.fakes import drchrono as fake_drchrono


async def test_emr_secrets_are_stored_encrypted(runtime, tenant):
    created = await admin.create_connection(
        runtime.ctx,
        client_id=tenant.client_id,
        emr="drchrono",
        rules=None,
        reference_id=None,
        settings=CASE.config("https://drchrono.example"),
    )
    async with db.read(runtime.engine) as conn:
        row = (
            (
                await conn.execute(
                    select(tables.connections).where(tables.connections.c.id == created.connection_id)
                )
            )
            .mappings()
            .one()
        )
    assert fake_drchrono.CLIENT_SECRET not in json.dumps(row["settings"]) + (row["credentials"] or "")
    assert fake_drchrono.FIRST_REFRESH_TOKEN not in (row["credentials"] or "")
    assert row["credentials"].startswith("v2:")
    assert "client_secret" not in row["settings"] and "refresh_token" not in row["settings"]


async def test_a_rotated_refresh_token_is_stored_for_the_next_process(runtime):
    tenant = await make_tenant(runtime)
    fake = CASE.make_fake()
    http = httpx.AsyncClient(transport=harness.FakeTransport(fake), base_url=harness.BASE_URL)
    runtime.ctx.adapters.deps = dataclasses.replace(runtime.ctx.adapters.deps, http=http)
    created = await admin.create_connection(
        runtime.ctx,
        client_id=tenant.client_id,
        emr="drchrono",
        rules=None,
        reference_id=None,
        settings=CASE.config(harness.BASE_URL),
    )
    async with db.read(runtime.engine) as conn:
        connection = await connections.get_connection(conn, created.connection_id)
    adapter = runtime.ctx.adapters.for_connection(connection)
    await adapter.list_users()  # the first call spends the linked refresh token
    async with db.read(runtime.engine) as conn:
        stored = await connections.get_connection(conn, created.connection_id)
    secrets = runtime.ctx.adapters.config_of(stored)
    assert secrets["refresh_token"] != fake_drchrono.FIRST_REFRESH_TOKEN
    assert secrets["refresh_token"] == adapter.token.credentials()["refresh_token"]
    await http.aclose()
