"""Bring a database to the newest schema with Alembic, on an async engine; safe to run on every start."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPTS = Path(__file__).parent / "migrations"
# Any fixed number: serialises concurrent upgrades from several processes on PostgreSQL.
_LOCK_KEY = 7_306_425_118


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_lock({_LOCK_KEY})"))
            await conn.commit()
        try:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            await conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"))
                await conn.commit()
