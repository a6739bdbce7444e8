"""Where secrets are sealed (storage/crypto.py), and whether a key opens them.

The key lives outside the database (a key file, or `EMRTASKS_ENCRYPTION_KEY`). Started with another
key (a lost key file made anew, another deployment's key) the service would run and then fail every
task, webhook and Link login that needs a secret. So every start tries its key on a few sealed values
first (`opens`): one per sealed column, the first found.
"""

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import crypto, db

# Every column that holds sealed values: (table, its primary key, the columns). Migration 0012 keeps a
# copy of its own (a migration does not change with the code after it).
SEALED = (
    ("connections", "id", ("credentials",)),
    ("webhook_endpoints", "id", ("secret", "previous_secret")),
    ("signing_keys", "kid", ("private_key",)),
    ("link_tokens", "id", ("access_token", "oauth_session")),
    ("public_tokens", "id", ("access_token",)),
    ("deployment_apps", "emr", ("config",)),
)


def _first_sealed(table_name: str, key: str, column: str) -> sa.Select[tuple[object, object]]:
    table = sa.table(table_name, sa.column(key), sa.column(column))
    return sa.select(table.c[key], table.c[column]).where(table.c[column].is_not(None)).limit(1)


_SAMPLES = tuple(
    (table_name, column, db.hot(_first_sealed(table_name, key, column)))
    for table_name, key, columns in SEALED
    for column in columns
)


async def samples(engine: AsyncEngine) -> list[tuple[crypto.Where, str]]:
    """A sealed value of each sealed column that holds any, with its place."""
    found: list[tuple[crypto.Where, str]] = []
    async with db.read(engine) as conn:
        for table_name, column, statement in _SAMPLES:
            row = (await conn.execute(statement)).first()
            if row is not None and row[1]:
                found.append((crypto.Where(table_name, str(row[0]), column), str(row[1])))
    return found


async def opens(engine: AsyncEngine, cipher: crypto.Cipher) -> bool:
    """Whether `cipher` opens this database's secrets: true when it opens any sample (one damaged value
    does not stop a deployment), or when nothing is sealed yet (any key will do)."""
    found = await samples(engine)
    return not found or any(_opens(cipher, where, value) for where, value in found)


def _opens(cipher: crypto.Cipher, where: crypto.Where, value: str) -> bool:
    try:
        cipher.decrypt(value, where)
    except (InvalidTag, ValueError):
        return False
    return True
