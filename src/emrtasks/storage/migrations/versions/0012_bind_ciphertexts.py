"""Bind every encrypted value to its table, row and column: seal v1 values again as v2

Every value encrypted at rest (storage/crypto.py) was sealed without associated data, so a
ciphertext copied to another row or column decrypted there. This seals each one again with its
place as associated data. The encryption key comes from `storage.migrate.upgrade(cipher=...)`;
a database with no encrypted value needs none.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from emrtasks.storage import crypto

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every encrypted column: (table, its primary key, the columns).
SEALED = (
    ("connections", "id", ("credentials",)),
    ("webhook_endpoints", "id", ("secret", "previous_secret")),
    ("signing_keys", "kid", ("private_key",)),
    ("link_tokens", "id", ("access_token", "oauth_session")),
    ("public_tokens", "id", ("access_token",)),
    ("deployment_apps", "emr", ("config",)),
)


def upgrade() -> None:
    _reseal(lambda cipher, value, where: cipher.encrypt(cipher.decrypt(value, where), where), "v1:")


def downgrade() -> None:
    _reseal(lambda cipher, value, where: cipher.encrypt_legacy(cipher.decrypt(value, where)), "v2:")


def _reseal(change: object, prefix: str) -> None:
    bind = op.get_bind()
    cipher: crypto.Cipher | None = context.config.attributes.get("cipher")
    for table_name, key, columns in SEALED:
        table = sa.table(table_name, sa.column(key), *(sa.column(c) for c in columns))
        wanted = sa.or_(*(table.c[c].like(f"{prefix}%") for c in columns))
        rows = bind.execute(sa.select(table).where(wanted)).mappings().all()
        for row in rows:
            if cipher is None:
                raise RuntimeError(
                    "migration 0012 re-encrypts secrets: run it with the encryption key "
                    "(emrtasks db upgrade, with EMRTASKS_ENCRYPTION_KEY or EMRTASKS_KEY_FILE set)"
                )
            values = {
                c: change(cipher, row[c], crypto.Where(table_name, str(row[key]), c))  # type: ignore[operator]
                for c in columns
                if row[c] and str(row[c]).startswith(prefix)
            }
            bind.execute(sa.update(table).where(table.c[key] == row[key]).values(**values))
