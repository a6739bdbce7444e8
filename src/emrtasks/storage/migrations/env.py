"""Alembic environment: runs on the connection that `storage.migrate` hands over (async engines included)."""

from alembic import context

from emrtasks.storage import tables

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=tables.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
