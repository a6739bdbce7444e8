"""What every use case needs, built once by bootstrap: the engine, the clock, adapters, the retry policy."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.service import adapters as service_adapters


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Policy:
    task_max_attempts: int = 8
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    auth_cache_seconds: float = 5.0


@dataclass
class Context:
    engine: AsyncEngine
    adapters: service_adapters.Adapters
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = utc_now
    wake: Callable[[], None] = lambda: None
    """Called after a job is committed, so an in-process worker starts it at once."""
    auth_cache: dict[tuple[str, str], tuple[float, object]] = field(default_factory=dict)
