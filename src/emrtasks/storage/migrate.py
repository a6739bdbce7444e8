"""Bring a database to the newest schema with Alembic, on an async engine; safe to run on every start."""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

    from emrtasks.storage import crypto

_SCRIPTS = Path(__file__).parent / "migrations"
# Any fixed number: serialises concurrent upgrades from several processes on PostgreSQL.
_LOCK_KEY = 7_306_425_118
# The newest revision in migrations/versions (a test keeps it equal to Alembic's head): a database
# already there is left alone without loading Alembic, which keeps every process's start fast.
HEAD = "0014"


def alembic_config(connection: Connection, cipher: "crypto.Cipher | None" = None) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    config.attributes["cipher"] = cipher  # for migrations that re-encrypt (0012)
    return config


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        try:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception:  # no alembic_version table yet: an empty database
            return None


async def upgrade(engine: AsyncEngine, cipher: "crypto.Cipher | None" = None) -> None:
    if await current_revision(engine) == HEAD:
        return
    from alembic import command

    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_lock({_LOCK_KEY})"))
            await conn.commit()
        try:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync, cipher), "head"))
            await conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"))
                await conn.commit()
