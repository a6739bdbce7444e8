"""Migration 0012 seals every encrypted value again, bound to its table, row and column (its
downgrade gives the unbound v1 form back); a ciphertext copied to another row is refused; a
deleted webhook endpoint keeps no secret."""

import json

import pytest
from alembic import command
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, update

from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import adapters, audit, keys, webhooks
from emrtasks.storage import crypto, db, migrate, tables
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.storage.connections import get_connection


async def _alembic(runtime, verb: str, revision: str) -> None:
    async with runtime.engine.connect() as conn:
        config = lambda sync: migrate.alembic_config(sync, runtime.ctx.cipher)  # noqa: E731
        await conn.run_sync(lambda sync: getattr(command, verb)(config(sync), revision))
        await conn.commit()


async def _sealed_values(runtime) -> dict[tuple[str, str, str], str]:
    found = {}
    async with runtime.engine.connect() as conn:
        for table_name, key, columns in (
            ("connections", "id", ("credentials",)),
            ("webhook_endpoints", "id", ("secret", "previous_secret")),
            ("signing_keys", "kid", ("private_key",)),
            ("deployment_apps", "emr", ("config",)),
        ):
            table = tables.metadata.tables[table_name]
            for row in (await conn.execute(select(table))).mappings():
                for column in columns:
                    if row[column]:
                        found[(table_name, row[key], column)] = row[column]
    return found


async def _seed(runtime, tenant) -> dict[str, str]:
    """One encrypted value of each kind, written as the service writes them."""
    cipher, now = runtime.ctx.cipher, runtime.ctx.clock()
    await keys.create_key(runtime.engine, cipher, "ES384", now)
    async with db.write(runtime.engine) as conn:
        where = adapters.credentials_at(tenant.connection_a)
        await conn.execute(
            update(tables.connections)
            .where(tables.connections.c.id == tenant.connection_a)
            .values(credentials=cipher.encrypt(json.dumps({"password": "pw-a"}), where))
        )
        for endpoint_id, secret in (("wh_a", "whsec_a"), ("wh_b", "whsec_b")):
            await stored_webhooks.insert_endpoint(
                conn,
                endpoint_id=endpoint_id,
                client_id=tenant.client_id,
                url=f"https://{endpoint_id}.example.com/hook",
                secret=cipher.encrypt(secret, webhooks.secret_at(endpoint_id, "secret")),
                now=now,
            )
        await conn.execute(
            tables.deployment_apps.insert().values(
                emr="drchrono",
                config=cipher.encrypt(
                    json.dumps({"client_secret": "app"}),
                    crypto.Where("deployment_apps", "drchrono", "config"),
                ),
                updated_at=now,
            )
        )
    return {"wh_a": "whsec_a", "wh_b": "whsec_b"}


async def test_the_migration_seals_v1_values_again_bound_to_their_place(runtime, tenant):
    await _seed(runtime, tenant)
    cipher = runtime.ctx.cipher
    await _alembic(runtime, "downgrade", "0011")
    legacy = await _sealed_values(runtime)
    assert len(legacy) == 5
    assert all(value.startswith("v1:") for value in legacy.values())

    await migrate.upgrade(runtime.engine, cipher)
    resealed = await _sealed_values(runtime)
    assert resealed.keys() == legacy.keys()
    for (table, row, column), value in resealed.items():
        assert value.startswith("v2:"), (table, column)
        assert cipher.decrypt(value, crypto.Where(table, row, column)) == cipher.decrypt(
            legacy[(table, row, column)], crypto.Where(table, row, column)
        )
    # And the service reads them where it uses them.
    async with db.read(runtime.engine) as conn:
        connection = await get_connection(conn, tenant.connection_a)
    assert connection is not None
    assert runtime.ctx.adapters.config_of(connection)["password"] == "pw-a"
    ring = keys.KeyRing(runtime.engine, cipher, publish_seconds=0, refresh_seconds=0)
    assert (await ring.current()).private_pem.startswith("-----BEGIN PRIVATE KEY-----")


async def test_a_migration_without_the_key_refuses_to_run_rather_than_skip_secrets(runtime, tenant):
    await _seed(runtime, tenant)
    await _alembic(runtime, "downgrade", "0011")
    with pytest.raises(RuntimeError, match="encryption key"):
        await migrate.upgrade(runtime.engine, None)
    await migrate.upgrade(runtime.engine, runtime.ctx.cipher)


async def test_a_webhook_secret_copied_to_another_endpoint_is_refused(runtime, tenant):
    await _seed(runtime, tenant)
    endpoints = tables.webhook_endpoints
    async with db.write(runtime.engine) as conn:
        stolen = (await conn.execute(select(endpoints.c.secret).where(endpoints.c.id == "wh_a"))).scalar_one()
        await conn.execute(update(endpoints).where(endpoints.c.id == "wh_b").values(secret=stolen))
    with pytest.raises(InvalidTag):
        runtime.ctx.cipher.decrypt(stolen, webhooks.secret_at("wh_b", "secret"))


async def test_a_deleted_endpoint_keeps_no_secret(runtime, tenant):
    await _seed(runtime, tenant)
    client = domain_tasks.Client(id=tenant.client_id, name="t")
    await webhooks.rotate_secret(
        runtime.ctx, audit.as_client(client.id), client, "wh_a"
    )  # a previous secret too
    await webhooks.delete(runtime.ctx, audit.as_client(client.id), client, "wh_a")
    endpoints = tables.webhook_endpoints
    async with db.read(runtime.engine) as conn:
        row = (await conn.execute(select(endpoints).where(endpoints.c.id == "wh_a"))).mappings().one()
    assert row["status"] == "deleted"
    assert row["secret"] == ""
    assert row["previous_secret"] is None
