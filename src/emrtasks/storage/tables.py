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
    UniqueConstraint,
    false,
    text,
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
    # Credential lifecycle (docs/security.md): the secret a rotation replaced, good until its overlap
    # ends; disabled and deleted clients are refused (a deleted one keeps its row for the history).
    Column("previous_secret_hash", String(64)),
    Column("previous_secret_expires_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
    Column("deleted_at", UTCDateTime),
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
    Column("credentials", Text),  # encrypted JSON (storage.crypto)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Credential lifecycle: the access token a rotation replaced, until its overlap ends; disabled and
    # deleted connections are refused whatever their status.
    Column("previous_token_hash", String(64), index=True),
    Column("previous_token_expires_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
    Column("deleted_at", UTCDateTime),
)

# One row: bumped in every transaction that disables, deletes or rotates a credential, so every
# process drops its cached credentials within a second (service/auth.py polls it; PostgreSQL also
# announces it with NOTIFY).
credential_changes = Table(
    "credential_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", Integer, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

# Each connection's EMR directory as last fetched: users and phone call types (or their equivalent).
emr_directories = Table(
    "emr_directories",
    metadata,
    Column("connection_id", String(_ID), ForeignKey("connections.id"), primary_key=True),
    Column("users", JSON, nullable=False),
    Column("call_types", JSON, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
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
    # Jobs sharing a group (a webhook endpoint, later an EMR connection) run at most group_limit at once.
    Column("group_key", String(_ID)),
    Column("group_limit", Integer),
    # The W3C traceparent of whoever queued the job (only while tracing is on): a worker in another
    # process continues that trace.
    Column("trace_context", String(64)),
    Index(None, "state", "run_at"),
    Index(None, "task_id"),
    Index(None, "group_key", "state"),
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

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("disabled_reason", Text),
    # Signing secrets, encrypted (storage.crypto): the current one, and the one it replaced
    # until its overlap ends.
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", UTCDateTime),
    Column("failing_since", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # A client's URL once, among the endpoints not deleted: two registrations racing on two
    # processes cannot both succeed.
    Index(
        "uq_webhook_endpoints_client_id_url_live",
        "client_id",
        "url",
        unique=True,
        postgresql_where=text("status <> 'deleted'"),
        sqlite_where=text("status <> 'deleted'"),
    ),
)

# One row per (event, endpoint): where that event stands with that endpoint.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("event_id", String(_ID), ForeignKey("events.id"), nullable=False),
    Column("endpoint_id", String(_ID), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("client_id", String(_ID), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("job_id", String(_ID)),
    # A resend was asked for while an attempt was running: one more follows that attempt.
    Column("resend_requested", Boolean, nullable=False, server_default=false()),
    Column("last_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "endpoint_id"),
    Index(None, "endpoint_id", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("delivery_id", String(_ID), ForeignKey("deliveries.id"), nullable=False),
    Column("event_id", String(_ID), nullable=False),
    Column("endpoint_id", String(_ID), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("duration_ms", Integer, nullable=False),
    Column("response_body", Text),
    Column("error", Text),
    Index(None, "event_id"),
    Index(None, "delivery_id"),
)

# Idempotency-Key records of POST /v1/tasks, per client and connection; pruned after expires_at.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("client_id", String(_ID), nullable=False),
    Column("connection_id", String(_ID), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    UniqueConstraint("client_id", "connection_id", "key"),
    Index(None, "expires_at"),
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

# Vendors' call budgets (emr/base.RateLimit), one row per scope (a DrChrono API application, an eCW
# practice): the calls used in the fixed window that started at window_start. Shared by every process.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("scope_key", String(512), primary_key=True),
    Column("window_start", UTCDateTime, nullable=False),
    Column("used", Integer, nullable=False),
)

# The deployment's keys for signing JWTs (SMART Backend Services client assertions). The public half
# is served at /.well-known/jwks.json until the key is retired; the private half is encrypted
# (storage.crypto), never stored in clear.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(100), primary_key=True),
    Column("alg", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_key", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime),
    Index(None, "status", "created_at"),
)

# Link (docs/api.md): where a client's pages may embed Link and receive its messages.
client_origins = Table(
    "client_origins",
    metadata,
    Column("client_id", String(_ID), ForeignKey("clients.id"), primary_key=True),
    Column("origin", String(255), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# One Link session: made by `POST /v1/link/token/create`, found by the hash of its `lt_...` token.
link_tokens = Table(
    "link_tokens",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False, index=True),
    Column("user_id", String(255), nullable=False),
    Column("org_id", String(255), nullable=False),
    Column("emr", String(40)),
    Column("instance_domain", String(255)),
    Column("reference_id", String(255)),
    Column("callback_url", Text),
    # Update mode: the connection to repair and its access token (encrypted), answered again on exchange.
    Column("connection_id", String(_ID), ForeignKey("connections.id")),
    Column("access_token", Text),
    Column("tries", Integer, nullable=False),
    # An OAuth round trip under way: the hash of its `state`, and its PKCE verifier and the clinic's
    # values (encrypted JSON).
    Column("oauth_state_hash", String(64), unique=True),
    Column("oauth_session", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

# What Link hands back: a `pt_...` token good once, for 10 minutes, for the client of its link token.
public_tokens = Table(
    "public_tokens",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("link_token_id", String(_ID), ForeignKey("link_tokens.id"), nullable=False, index=True),
    Column("client_id", String(_ID), ForeignKey("clients.id"), nullable=False),
    Column("connection_id", String(_ID), ForeignKey("connections.id"), nullable=False),
    # The connection's access token, encrypted, until the exchange answers it; then wiped.
    Column("access_token", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

# The deployment's own app at each EMR vendor (client id and secret, ...), shared by every clinic;
# encrypted JSON, set with `emrtasks apps set`.
deployment_apps = Table(
    "deployment_apps",
    metadata,
    Column("emr", String(40), primary_key=True),
    Column("config", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The audit trail (HIPAA 164.312(b)): who did what to which ids, from where, and how it ended. Never PHI:
# ids, action names and outcomes only (docs/security.md).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_type", String(20), nullable=False),
    Column("actor_id", String(255)),
    Column("client_id", String(_ID)),
    Column("connection_id", String(_ID)),
    Column("action", String(60), nullable=False),
    Column("targets", JSON, nullable=False),
    Column("source_address", String(64)),
    Column("request_id", String(128)),
    Column("outcome", String(20), nullable=False),
    Index(None, "at"),
    Index(None, "client_id", "at"),
    Index(None, "action", "at"),
)

# People who use the operator console (/console): an email, an Argon2id hash of their password, a role
# (`viewer` reads, `admin` also acts). Disabled operators keep their row (the audit trail names them).
operators = Table(
    "operators",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    Column("last_login_at", UTCDateTime),
)

# One signed-in console session, found by the hash of its cookie's random token (never stored in
# clear). It ends when idle too long (last_seen_at), at expires_at whatever its use, or at sign-out.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("operator_id", String(_ID), ForeignKey("operators.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
)
