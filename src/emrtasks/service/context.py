"""What every use case needs, built once by bootstrap: the engine, the clock, adapters, the retry policy."""

import asyncio
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import emrtasks
from emrtasks.service import adapters as service_adapters
from emrtasks.service import limits, throttle
from emrtasks.service import telemetry as service_telemetry
from emrtasks.storage import crypto, db
from emrtasks.webhooks import http1, ssrf


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Policy:
    task_max_attempts: int = 8
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    auth_cache_seconds: float = 5.0
    idempotency_ttl_seconds: float = 24 * 3600
    public_url: str = "http://127.0.0.1:8000"
    """Where clients and clinics reach us: the Link URL and the OAuth redirect URI start with it."""


@dataclass(frozen=True)
class WebhookPolicy:
    allow_insecure: bool = False
    allow_private: bool = False
    timeout_seconds: float = 15.0
    schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    """Delay before each attempt: the first is immediate, then each retry's (Svix's schedule)."""
    endpoint_concurrency: int = 4
    disable_after_seconds: float = 5 * 24 * 3600
    rotation_overlap_seconds: float = 24 * 3600
    user_agent: str = f"emrtasks/{emrtasks.__version__}"
    """The User-Agent every webhook attempt is sent with."""
    max_endpoints: int = 10
    """Webhook URLs one client may register: each event fans out to every one."""
    recover_max_events: int = 10_000
    """Events one recover call schedules (one transaction); the answer says where to continue."""


@dataclass
class Context:
    engine: AsyncEngine
    adapters: service_adapters.Adapters
    cipher: crypto.Cipher
    webhook_client: http1.Client
    policy: Policy = field(default_factory=Policy)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    resolver: ssrf.Resolver = ssrf.system_resolver
    limiter: limits.RateLimiter = field(default_factory=limits.RateLimiter)
    request_limits: throttle.RequestLimits = field(default_factory=throttle.RequestLimits)
    """Requests per second per client and per connection (off unless configured)."""
    telemetry: service_telemetry.Telemetry = service_telemetry.NONE
    """Metrics and traces of EMR calls, webhook attempts and jobs (observes nothing unless switched on)."""
    rng: random.Random = field(default_factory=random.Random)
    """The jitter of retry delays: a seeded one makes a run's schedule repeatable."""
    writer: db.GroupCommitter = field(init=False)
    """Hot write paths commit through it, many callers per transaction: what we acknowledge."""
    relaxed_writer: db.GroupCommitter = field(init=False)
    """The same, for writes a crash may undo because a retry redoes them (outcomes, attempts)."""

    _background: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.writer = db.GroupCommitter(self.engine)
        self.relaxed_writer = db.GroupCommitter(self.engine, durable=False)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run cleanup that must not hold up the answer (a reference is kept until it ends)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    clock: Callable[[], datetime] = utc_now
    wake: Callable[[], None] = lambda: None
    """Called after a job is committed, so an in-process worker starts it at once."""
    auth_cache: dict[tuple[str, str], tuple[float, object]] = field(default_factory=dict)
    auth_generation: int | None = None
    """The credential change generation the cache was filled under (service/auth.py)."""
    auth_generation_checked_until: float = 0.0
