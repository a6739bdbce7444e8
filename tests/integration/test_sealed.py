"""A start's key check (storage/sealed.py): which keys open a database's secrets, on both databases."""

from datetime import UTC, datetime

from emrtasks import bootstrap
from emrtasks.service import keys
from emrtasks.storage import crypto, db, sealed, tables


async def _seal(rt: bootstrap.Runtime, cipher: crypto.Cipher, emr: str) -> None:
    where = crypto.Where("deployment_apps", emr, "config")
    async with db.write(rt.engine) as conn:
        await conn.execute(
            tables.deployment_apps.insert(),
            {
                "emr": emr,
                "config": cipher.encrypt('{"client_id": "app"}', where),
                "updated_at": datetime.now(UTC),
            },
        )


async def test_any_key_opens_a_database_with_nothing_sealed(runtime):
    assert await sealed.opens(runtime.engine, crypto.Cipher(crypto.parse_key(crypto.new_key())))


async def test_only_the_sealing_key_opens_the_secrets(runtime):
    await _seal(runtime, runtime.ctx.cipher, "drchrono")
    assert await sealed.opens(runtime.engine, runtime.ctx.cipher)
    assert not await sealed.opens(runtime.engine, crypto.Cipher(crypto.parse_key(crypto.new_key())))


async def test_one_damaged_value_does_not_stop_a_start(runtime):
    await _seal(runtime, runtime.ctx.cipher, "canvas")  # deployment_apps: the first found of its column
    other = crypto.Where("connections", "conn_x", "credentials")
    async with db.write(runtime.engine) as conn:
        await conn.execute(
            tables.deployment_apps.update().where(tables.deployment_apps.c.emr == "canvas"),
            {"config": runtime.ctx.cipher.encrypt("{}", other)},  # sealed for another place: cannot open
        )
    assert not await sealed.opens(runtime.engine, runtime.ctx.cipher)  # the only sample fails
    await keys.create_key(runtime.engine, runtime.ctx.cipher, "ES384", datetime.now(UTC))  # another kind
    assert await sealed.opens(runtime.engine, runtime.ctx.cipher)  # another kind opens: the key is right
