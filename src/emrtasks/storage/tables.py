"""Every table, in code. Migrations must produce exactly these (a test compares them)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = 40

clients = Table(
    "clients",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

connections = Table(
    "connections",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False, index=True),
    Column("emr", String(40), nullable=False),
    Column("rules", String(40), nullable=False),
    Column("reference_id", String(255)),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False),
    Column("connection_id", String(_ID), ForeignKey("connections.id"), nullable=False),
    Column("job_id", String(_ID), nullable=False),
    Column("status", String(20), nullable=False),
    Column("description", Text, nullable=False),
    Column("patient_mrn", String(255), nullable=False),
    Column("subject", Text),
    Column("assignee_user_id", String(255)),
    Column("phone_call_type_id", String(255)),
    Column("notify_list", JSON, nullable=False),
    Column("emr_task_id", String(255)),
    Column("failure_reason", Text),
    Column("reasons", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "connection_id", "created_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("connection_id", String(_ID)),
    Column("task_id", String(_ID)),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UTCDateTime, nullable=False),
    Column("lease_expires_at", UTCDateTime),
    Column("locked_by", String(80)),
    Column("reconcile", Boolean, nullable=False),
    Column("last_error_code", String(40)),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index(None, "state", "run_at"),
    Index(None, "task_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False),
    Column("connection_id", String(_ID), ForeignKey("connections.id"), nullable=False),
    Column("type", String(60), nullable=False),
    Column("job_id", String(_ID)),
    Column("task_id", String(_ID)),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "client_id", "created_at"),
    Index(None, "job_id"),
)

# The built-in sandbox EMR's own records: an external system's state, kept apart from ours.
sandbox_emr_tasks = Table(
    "sandbox_emr_tasks",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("connection_id", String(_ID), nullable=False),
    Column("marker", String(255), nullable=False),
    Column("record", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "connection_id", "marker"),
)
