from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from emrtasks.storage import tables


async def test_migrating_an_empty_database_gives_exactly_the_tables_in_code(runtime):
    def differences(sync_conn):
        return compare_metadata(MigrationContext.configure(sync_conn), tables.metadata)

    async with runtime.engine.connect() as conn:
        diff = await conn.run_sync(differences)
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert diff == []
    assert names == {t.name for t in tables.metadata.sorted_tables} | {"alembic_version"}


async def test_upgrading_twice_changes_nothing(runtime):
    from emrtasks.storage import migrate

    await migrate.upgrade(runtime.engine)
    async with runtime.engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), tables.metadata))
    assert diff == []


def test_the_recorded_head_is_alembics_head():
    from alembic.script import ScriptDirectory

    from emrtasks.storage import migrate

    config = migrate.alembic_config(None)  # type: ignore[arg-type]
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD
