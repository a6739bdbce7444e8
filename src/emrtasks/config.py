"""Settings: one object read from `EMRTASKS_*` environment variables (and `.env`), built once at start-up."""

from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMRTASKS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./emrtasks.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    db_pool_size: int = Field(
        default=20, ge=1, description="Database connections per process (a fixed pool)."
    )
    sqlite_synchronous: str = Field(
        default="FULL",
        description="SQLite synchronous pragma for what is acknowledged: FULL survives a power loss.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted body.")
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a verified credential is trusted without a lookup."
    )
    emr_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long an EMR call may take before it counts as unanswered."
    )
    directory_cache_seconds: float = Field(
        default=300.0, ge=0, description="How long an EMR's users and call types are cached."
    )
    bench_routes: bool = Field(
        default=False,
        description="Serve POST /v1/bench/noop, the no-op baseline for benchmarks (never in production).",
    )
    access_log: bool = Field(default=True, description="Log each request (path only, no query).")
    log_level: str = Field(
        default="INFO",
        description="DEBUG, INFO, WARNING or ERROR; alembic names the migrations it runs at DEBUG only.",
    )

    idempotency_ttl_seconds: float = Field(
        default=86400.0, ge=3600, description="How long an Idempotency-Key is remembered (at least an hour)."
    )
    worker_concurrency: int = Field(default=16, ge=1, description="Jobs one worker runs at once.")
    job_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job not heartbeaten for this long is reclaimed (keep it above the EMR timeout).",
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="Fallback poll when no wake-up arrives (other processes)."
    )
    reaper_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often expired leases are looked for."
    )
    worker_grace_seconds: float = Field(
        default=10.0, ge=0, description="On shutdown, how long running jobs may take to finish."
    )
    task_max_attempts: int = Field(
        default=8, ge=1, description="Attempts at a task's EMR write before it fails."
    )
    retry_base_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; doubles each attempt, with jitter."
    )
    webhook_allow_insecure: bool = Field(
        default=False, description="Accept http:// webhook URLs (local development and tests only)."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback and private addresses (local development and tests only).",
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, description="A delivery not answered 2xx within this is a failed attempt."
    )
    webhook_retry_schedule: str = Field(
        default="0,5,300,1800,7200,18000,36000,36000",
        description="Seconds before each delivery attempt (the first, then each retry), ±20 % jitter.",
    )
    webhook_endpoint_concurrency: int = Field(
        default=4, ge=1, description="Deliveries in flight to one endpoint at once."
    )
    webhook_disable_after_seconds: float = Field(
        default=432000.0, gt=0, description="An endpoint whose every attempt failed this long is disabled."
    )
    webhook_secret_overlap_seconds: float = Field(
        default=86400.0, ge=0, description="After a rotation, the old secret also signs for this long."
    )
    encryption_key: str | None = Field(
        default=None,
        description="Base64 of 32 random bytes; encrypts webhook secrets at rest. Unset: key_file is used.",
    )
    key_file: str = Field(
        default="./emrtasks.key", description="Where the encryption key is kept (created if missing)."
    )
    signing_key_publish_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="A new signing key is in the JWKS this long before it signs (older keys sign meanwhile).",
    )
    signing_key_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How often a process reads the signing keys again (keys create/retire reach it).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where clients and clinics reach this service: Link URLs and the OAuth redirect URI.",
    )
    max_header_bytes: int = Field(
        default=32_768, ge=1024, description="Largest request head (request line and headers); larger: 431."
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's head must arrive within this of its first byte; else 408.",
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request's body must arrive within this of its head; else 408."
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, description="An idle connection (new, or after an answer) is closed after this."
    )
    max_connections: int = Field(
        default=1000, ge=1, description="Open connections per API process; past it, new ones get 503."
    )
    reuse_port: bool = Field(
        default=False,
        description="serve shares its port with other serve processes (SO_REUSEPORT), as --reuse-port does.",
    )
    retry_max_seconds: float = Field(
        default=600.0, ge=0, description="Longest retry delay, before ±20 % jitter."
    )
    rate_limit_client_per_second: float = Field(
        default=1000.0,
        ge=0,
        description="Requests per second one client app may make, its connections together (0: no limit).",
    )
    rate_limit_connection_per_second: float = Field(
        default=200.0, ge=0, description="Requests per second one EMR connection may take (0: no limit)."
    )
    rate_limit_burst_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A rate limit's burst: an idle caller may send this many seconds' worth at once.",
    )
    webhook_max_per_client: int = Field(
        default=10, ge=1, description="Webhook URLs one client app may register."
    )
    webhook_recover_max_events: int = Field(
        default=10000, ge=1, description="Events one recover call schedules; the answer says where to go on."
    )
    console_session_idle_seconds: float = Field(
        default=1800.0, gt=0, description="A console session unused this long ends (sign in again)."
    )
    console_session_max_seconds: float = Field(
        default=43200.0, gt=0, description="A console session ends this long after sign-in, however used."
    )
    browser_path: str = Field(
        default="/usr/bin/chromium",
        description="The Chromium (or Chrome) binary that screen-driving adapters (gnuhealth_web) run.",
    )
    screen_evidence_dir: str = Field(
        default="./screen-evidence",
        description="Where a failed screen-driving step's screenshot and page text are kept, encrypted.",
    )
    screen_evidence_seconds: float = Field(
        default=604800.0, gt=0, description="Screen evidence older than this is deleted (7 days)."
    )

    metrics_address: str | None = Field(
        default=None,
        description="host:port serving GET /metrics (Prometheus), apart from the API; unset: no metrics.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EMRTASKS_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP base URL for traces (or OTEL_EXPORTER_OTLP_ENDPOINT); unset: no traces.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text, or json: one JSON object per line with the request's and job's ids.",
    )

    @field_validator("metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        _host, sep, port = value.strip().rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError("metrics_address must be host:port (e.g. 127.0.0.1:9464)")
        return value.strip()

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint must be an http:// or https:// URL (OTLP over HTTP)")
        return value.strip()

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        delays = [float(part) for part in value.split(",") if part.strip()]
        if not delays or any(d < 0 for d in delays):
            raise ValueError("webhook_retry_schedule must list one or more delays in seconds, >= 0")
        return value

    def retry_schedule(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())
