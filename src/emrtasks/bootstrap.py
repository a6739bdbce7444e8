"""The one place that wires settings to the engine, adapters, the service context and the worker."""

import asyncio
import functools
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.config import Settings
from emrtasks.emr import base, screens
from emrtasks.observability import logs as observability_logs
from emrtasks.observability import metrics as observability_metrics
from emrtasks.observability import server as metrics_server
from emrtasks.observability import telemetry as observability_telemetry
from emrtasks.queue import notify
from emrtasks.queue import worker as queue_worker
from emrtasks.service import (
    adapters,
    auth,
    create_task,
    keys,
    retention,
    screen_evidence,
    tasks,
    throttle,
    webhook_delivery,
    webhooks,
)
from emrtasks.service import telemetry as service_telemetry
from emrtasks.service.context import Context, Policy, WebhookPolicy
from emrtasks.storage import credentials, crypto, db, migrate, sealed
from emrtasks.storage import sandbox as stored_sandbox
from emrtasks.webhooks import http1

if TYPE_CHECKING:  # OpenTelemetry is loaded only when traces are on
    from emrtasks.observability import traces

log = logging.getLogger("emrtasks")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    ctx: Context
    worker: queue_worker.Worker | None
    telemetry: observability_telemetry.Telemetry | None = None
    """Metrics and tracing of this process (serve and worker only), None when both are off."""


def configure_logging(settings: Settings) -> None:
    if settings.log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(observability_logs.JsonFormatter(_trace_ids(settings)))
        logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    else:
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    # Client libraries log full URLs, and a URL can carry an MRN.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # alembic names each plugin it sets up and each migration it runs, at INFO, on every fresh start:
    # worth reading only when debugging.
    debugging = settings.log_level.upper() == "DEBUG"
    logging.getLogger("alembic").setLevel(logging.DEBUG if debugging else logging.WARNING)


def _trace_ids(settings: Settings) -> observability_logs.TraceIds | None:
    if not settings.otlp_endpoint:
        return None
    from emrtasks.observability import traces  # OpenTelemetry is loaded only when traces are on

    return traces.current_ids


def load_cipher(settings: Settings) -> crypto.Cipher:
    return crypto.Cipher(load_key(settings))


def form_key(settings: Settings) -> bytes:
    """The key that signs the Link pages' CSRF tokens: derived from the encryption key, so every
    process of a deployment accepts the forms of every other, and nothing new needs keeping."""
    return hmac.new(load_key(settings), b"emrtasks link forms", hashlib.sha256).digest()


def load_key(settings: Settings) -> bytes:
    """The key from EMRTASKS_ENCRYPTION_KEY, else from the key file, made on first start."""
    return _open_key(settings)[0]


def _open_key(settings: Settings) -> tuple[bytes, bool]:
    """The key, and whether this call made its key file."""
    if settings.encryption_key:
        return crypto.parse_key(settings.encryption_key), False
    path = Path(settings.key_file)
    made = False
    if not path.exists():
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(crypto.new_key() + "\n")
            log.warning("created the encryption key file %s: back it up with the database", path)
            made = True
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a key file made by hand, or by an older version, readable by others
    return crypto.parse_key(path.read_text()), made


class WrongKey(Exception):
    """The encryption key does not open the secrets of the database; the message is one line for the
    operator."""


async def _check_key(settings: Settings, engine: AsyncEngine, cipher: crypto.Cipher, made: bool) -> None:
    """Refuse to start with a key that cannot open the database's secrets."""
    if not await sealed.opens(engine, cipher):
        raise _wrong_key(settings, made)


def _wrong_key(settings: Settings, made: bool) -> WrongKey:
    """The refusal; a key file made by this very start is removed again: the one to restore from the
    backup goes there."""
    path = Path(settings.key_file).resolve()
    if made:
        path.unlink(missing_ok=True)
        return WrongKey(
            f"there is no key file at {path} (EMRTASKS_KEY_FILE), and the database holds secrets sealed "
            "with a key: restore the key file from the backup made with the database, or set "
            "EMRTASKS_ENCRYPTION_KEY to that key (a new key would not open them)"
        )
    where = "EMRTASKS_ENCRYPTION_KEY" if settings.encryption_key else f"the key file {path}"
    return WrongKey(
        f"the encryption key ({where}) does not open the secrets this database holds: it is not the "
        "key they were sealed with; use the deployment's own key (restore it from the backup made "
        "with the database)"
    )


def webhook_policy(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(
        allow_insecure=settings.webhook_allow_insecure,
        allow_private=settings.webhook_allow_private,
        timeout_seconds=settings.webhook_timeout_seconds,
        schedule=settings.retry_schedule(),
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        disable_after_seconds=settings.webhook_disable_after_seconds,
        rotation_overlap_seconds=settings.webhook_secret_overlap_seconds,
        max_endpoints=settings.webhook_max_per_client,
        recover_max_events=settings.webhook_recover_max_events,
    )


def build_context(
    settings: Settings,
    engine: AsyncEngine,
    webhook_client: http1.Client,
    emr_http: httpx.AsyncClient,
    telemetry: service_telemetry.Telemetry = service_telemetry.NONE,
) -> Context:
    cipher = load_cipher(settings)
    signer = key_ring(settings, engine, cipher)
    screens.use_browser(settings.browser_path)
    evidence = screen_evidence.Keeper(
        Path(settings.screen_evidence_dir), cipher, settings.screen_evidence_seconds
    )
    deps = base.AdapterDeps(
        sandbox_store=stored_sandbox.SandboxStore(engine),
        http=emr_http,
        signer=signer,
        keep_evidence=evidence.keep,
    )
    policy = Policy(
        task_max_attempts=settings.task_max_attempts,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        auth_cache_seconds=settings.auth_cache_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        public_url=settings.public_url.rstrip("/"),
    )
    return Context(
        engine=engine,
        adapters=adapters.Adapters(deps, cipher, engine, settings.directory_cache_seconds, telemetry),
        cipher=cipher,
        webhook_client=webhook_client,
        policy=policy,
        webhooks=webhook_policy(settings),
        request_limits=throttle.RequestLimits(
            client_per_second=settings.rate_limit_client_per_second,
            connection_per_second=settings.rate_limit_connection_per_second,
            burst_seconds=settings.rate_limit_burst_seconds,
        ),
        telemetry=telemetry,
    )


def key_ring(settings: Settings, engine: AsyncEngine, cipher: crypto.Cipher) -> keys.KeyRing:
    """The deployment's signing keys, as adapters borrow them (SMART Backend Services)."""
    return keys.KeyRing(
        engine,
        cipher,
        publish_seconds=settings.signing_key_publish_seconds,
        refresh_seconds=settings.signing_key_refresh_seconds,
    )


def build_worker(
    settings: Settings, ctx: Context, tracing: "traces.Tracing | None" = None
) -> queue_worker.Worker:
    handlers: dict[str, queue_worker.Handler] = {
        tasks.CREATE_TASK: functools.partial(create_task.run_create_task, ctx),
        webhooks.DELIVER_WEBHOOK: functools.partial(webhook_delivery.run_delivery, ctx),
    }
    for kind, handler in handlers.items():
        handlers[kind] = observability_logs.with_job_context(handler)
        if tracing is not None:
            handlers[kind] = tracing.traced_handler(kind, handlers[kind])
    return queue_worker.Worker(
        ctx.engine,
        handlers,
        clock=ctx.clock,
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.worker_poll_seconds,
        reaper_seconds=settings.reaper_interval_seconds,
        housekeeping=[
            functools.partial(tasks.prune_idempotency_keys, ctx),
            functools.partial(retention.prune_expired, ctx),
        ],
    )


def build_telemetry(settings: Settings, engine: AsyncEngine) -> observability_telemetry.Telemetry | None:
    """Metrics if EMRTASKS_METRICS_ADDRESS is set, traces if an OTLP endpoint is; None if neither."""
    metrics = None
    if settings.metrics_address:
        metrics = observability_metrics.Metrics(
            engine, disable_after_seconds=settings.webhook_disable_after_seconds
        )
    tracing = None
    if settings.otlp_endpoint:
        from emrtasks.observability import traces  # OpenTelemetry is loaded only when traces are on

        tracing = traces.Tracing(settings.otlp_endpoint, os.environ.get("OTEL_SERVICE_NAME") or "emrtasks")
    if metrics is None and tracing is None:
        return None
    return observability_telemetry.Telemetry(metrics, tracing)


@asynccontextmanager
async def runtime(
    settings: Settings, *, run_migrations: bool = True, run_worker: bool = True, observe: bool = False
) -> AsyncIterator[Runtime]:
    """Engine (migrated), context and, if asked, a running worker; all stopped on exit. `observe`
    (serve and worker): metrics and traces as the settings ask."""
    engine = db.create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        synchronous=settings.sqlite_synchronous,
    )
    telemetry = build_telemetry(settings, engine) if observe else None
    tracing = telemetry.tracing if telemetry else None
    # Webhooks: no proxies (a proxy would connect to addresses the SSRF guard never saw), no
    # redirects followed; see webhooks/http1.py.
    webhook_client = http1.Client() if tracing is None else _traced_webhook_client(tracing)
    # EMR calls: a generous read timeout (EMRs are slow), a short connect timeout (a refused
    # connection is safe to retry; a read timeout after sending is not).
    emr_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.emr_timeout_seconds, connect=5.0), transport=_emr_transport(tracing)
    )
    try:
        key, made = _open_key(settings)
        cipher = crypto.Cipher(key)
        if run_migrations:
            try:
                await migrate.upgrade(engine, cipher)
            except InvalidTag:  # migration 0012 reseals older secrets: this key cannot open them
                await _check_key(settings, engine, cipher, made)
                raise
            await db.after_migrations(engine)
        await _check_key(settings, engine, cipher, made)
        ctx = build_context(settings, engine, webhook_client, emr_http, telemetry or service_telemetry.NONE)
        _warn_about_unsafe_settings(settings)
        async with _metrics(settings, telemetry), _worker(settings, ctx, run_worker, tracing) as worker:
            yield Runtime(settings, engine, ctx, worker, telemetry)
    finally:
        await webhook_client.aclose()
        await emr_http.aclose()
        await db.dispose(engine)
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # exports the last spans


def _traced_webhook_client(tracing: "traces.Tracing") -> http1.Client:
    from emrtasks.observability import traces

    return traces.TracedWebhookClient(tracing)


def _emr_transport(tracing: "traces.Tracing | None") -> httpx.AsyncBaseTransport | None:
    if tracing is None:
        return None
    from emrtasks.observability import traces

    return traces.TracedTransport(httpx.AsyncHTTPTransport(), tracing)


@asynccontextmanager
async def _metrics(
    settings: Settings, telemetry: observability_telemetry.Telemetry | None
) -> AsyncIterator[None]:
    """GET /metrics on EMRTASKS_METRICS_ADDRESS while the process runs."""
    if telemetry is None or telemetry.metrics is None or not settings.metrics_address:
        yield
        return
    async with metrics_server.serving(settings.metrics_address, telemetry.metrics.exposition):
        yield


def _warn_about_unsafe_settings(settings: Settings) -> None:
    if settings.webhook_allow_private:
        log.warning(
            "EMRTASKS_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private addresses "
            "(for local development and tests only)"
        )
    if settings.webhook_allow_insecure:
        log.warning("EMRTASKS_WEBHOOK_ALLOW_INSECURE is on: http:// webhook URLs are accepted")


@asynccontextmanager
async def _worker(
    settings: Settings, ctx: Context, enabled: bool, tracing: "traces.Tracing | None" = None
) -> AsyncIterator[queue_worker.Worker | None]:
    if not enabled:
        yield None
        return
    worker = build_worker(settings, ctx, tracing)
    ctx.wake = worker.wake
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop, settings.worker_grace_seconds))]
    if ctx.engine.dialect.name == "postgresql":
        running.append(asyncio.create_task(notify.Listener(settings.database_url, worker.wake).run(stop)))
    log.info("worker %s started (concurrency %d)", worker.worker_id, settings.worker_concurrency)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.gather(*running)


@asynccontextmanager
async def credential_changes(settings: Settings, ctx: Context) -> AsyncIterator[None]:
    """While serving on PostgreSQL: a disabled, deleted or rotated credential announced by any
    process (NOTIFY) empties this process's credential cache at once. Polling the generation
    (service/auth.py) covers a lost listener connection, and SQLite."""
    if ctx.engine.dialect.name != "postgresql":
        yield
        return
    stop = asyncio.Event()
    listener = notify.Listener(settings.database_url, lambda: auth.forget_all(ctx), credentials.CHANNEL)
    running = asyncio.create_task(listener.run(stop))
    try:
        yield
    finally:
        stop.set()
        await running
