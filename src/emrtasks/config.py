"""Settings: one object read from `EMRTASKS_*` environment variables (and `.env`), built once at start-up."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMRTASKS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./emrtasks.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections per process (PostgreSQL).")
    sqlite_synchronous: str = Field(
        default="FULL", description="SQLite synchronous pragma: FULL survives power loss."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted body.")
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a verified credential is trusted without a lookup."
    )
    directory_cache_seconds: float = Field(
        default=300.0, ge=0, description="How long an EMR's users and call types are cached."
    )
    access_log: bool = Field(default=True, description="Log each request (path only, no query).")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    worker_concurrency: int = Field(default=16, ge=1, description="Jobs one worker runs at once.")
    job_lease_seconds: float = Field(
        default=30.0, gt=0, description="A running job not heartbeaten for this long is reclaimed."
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
    retry_max_seconds: float = Field(
        default=600.0, ge=0, description="Longest retry delay, before ±20 % jitter."
    )
