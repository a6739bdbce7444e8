"""Which database and key file a command uses: named on stderr before it runs, and checked, so that a
command run in the wrong directory says so instead of quietly making a new, empty deployment, and a
bad or unreachable database is one line naming the setting, not a traceback."""

import logging
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, pool, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from emrtasks.config import Settings

DATABASE_SETTING = "EMRTASKS_DATABASE_URL"
KEY_FILE_SETTING = "EMRTASKS_KEY_FILE"
KEY_SETTING = "EMRTASKS_ENCRYPTION_KEY"
_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
_FORMS = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST:PORT/DATABASE"
# SQLSTATE classes that mean "cannot reach or may not use this database": connection exceptions,
# bad authorization, no such database, and a server shutting down.
_REFUSALS = ("08", "28", "3D", "57P")


class Unusable(Exception):
    """The database or key file cannot be used as configured; the message is one line for the operator."""


@dataclass(frozen=True)
class Target:
    """The database and key file of this run, as the settings name them."""

    url: URL
    key_file: Path | None  # None: the key comes from EMRTASKS_ENCRYPTION_KEY

    @property
    def shown_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL and an in-memory SQLite database."""
        name = self.url.database
        if not self.url.drivername.startswith("sqlite") or not name or name == ":memory:":
            return None
        return None if name.startswith("file:") else Path(name)

    def database(self) -> str:
        """The URL, password masked, and a relative SQLite file's full path."""
        if self.sqlite_file is not None and not self.sqlite_file.is_absolute():
            return f"{self.shown_url} (file {self.sqlite_file.resolve()})"
        return self.shown_url

    def describe(self) -> str:
        database = self.database()
        key = f"key file {self.key_file.resolve()}" if self.key_file else f"key from {KEY_SETTING}"
        return f"emrtasks: database {database}, {key}"


def target_of(settings: Settings) -> Target:
    """The target the settings name; `Unusable` when the database URL is not one we can use."""
    try:
        url = make_url(settings.database_url)
    except sa_exc.ArgumentError:
        raise Unusable(f"{DATABASE_SETTING} is not a database URL; use {_FORMS}") from None
    if url.drivername not in _DRIVERS:
        raise Unusable(
            f"{DATABASE_SETTING} uses the driver '{url.drivername}', which emrtasks does not; use {_FORMS}"
        )
    return Target(url, None if settings.encryption_key else Path(settings.key_file))


def announce(target: Target, *, as_log: bool = False) -> None:
    """On stderr, as a plain line; `as_log` (EMRTASKS_LOG_FORMAT=json): as one of the log's lines, so
    every line a process writes there reads as JSON."""
    if as_log:
        logging.getLogger("emrtasks.cli").info("%s", target.describe())
    else:
        print(target.describe(), file=sys.stderr)


async def check(target: Target, command: str, *, creates: bool) -> None:
    """`Unusable`, with one line saying why and which setting to change, when `command` cannot run on
    the target: the database cannot be reached, or it is new (no SQLite file, no tables) or the key
    file is missing and `command` may not make them (`creates`: serve, worker, db upgrade, demo)."""
    path = target.sqlite_file
    if path is not None and not path.exists():
        if not creates:
            raise Unusable(_no_database(target, command, f"no database at {path.resolve()}"))
        if not path.resolve().parent.is_dir():
            raise Unusable(
                f"the database {target.shown_url} cannot be made: the directory {path.resolve().parent} "
                f"does not exist (check {DATABASE_SETTING})"
            )
        return  # a new deployment: its key file is made with it
    if not creates and target.key_file is not None and not target.key_file.exists():
        raise Unusable(_no_key_file(target, command))
    migrated = await _probe(target)
    if not migrated and not creates:
        raise Unusable(
            _no_database(target, command, f"the database {target.database()} has no emrtasks tables")
        )


def _no_database(target: Target, command: str, found: str) -> str:
    return (
        f"{found} ({DATABASE_SETTING} is {target.shown_url}, the current directory is {Path.cwd()}); "
        f"`{command}` does not create one: run it in the directory of the service's database or set "
        f"{DATABASE_SETTING} to it (`emrtasks db upgrade` makes one)"
    )


def _no_key_file(target: Target, command: str) -> str:
    assert target.key_file is not None
    return (
        f"no key file at {target.key_file.resolve()} ({KEY_FILE_SETTING}; the current directory is "
        f"{Path.cwd()}); `{command}` does not create one: run it in the directory of the service's key "
        f"file or set {KEY_FILE_SETTING} (or {KEY_SETTING}) to the service's key"
    )


async def _probe(target: Target) -> bool:
    """Whether the database was ever migrated (has emrtasks tables); `Unusable` naming why when it
    cannot be reached or refuses us."""
    engine = create_async_engine(target.url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            return await _migrated(conn)
    except Exception as error:
        reason = _refusal(error)
        if reason is None:
            raise
        raise Unusable(
            f"the database {target.shown_url} cannot be used: {reason} (check {DATABASE_SETTING})"
        ) from None
    finally:
        await engine.dispose()


async def _migrated(conn: AsyncConnection) -> bool:
    try:
        await conn.execute(text("SELECT version_num FROM alembic_version"))
    except sa_exc.DBAPIError:  # no such table: nothing was ever migrated here
        return False
    return True


def _refusal(error: BaseException) -> str | None:
    """The driver's one-line reason when `error` means the database is unreachable or refused us."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, OSError | sqlite3.OperationalError):
            return _first_line(seen)
        state = str(getattr(seen, "sqlstate", None) or "")
        if state.startswith(_REFUSALS):
            return _first_line(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


def _first_line(error: BaseException) -> str:
    text_of = str(error).strip().splitlines()
    return text_of[0] if text_of else type(error).__name__
