"""The one place that wires settings to the engine, adapters, the service context and the worker."""

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.config import Settings
from emrtasks.emr import base
from emrtasks.queue import worker as queue_worker
from emrtasks.service import adapters, create_task, tasks
from emrtasks.service.context import Context, Policy
from emrtasks.storage import db, migrate
from emrtasks.storage import sandbox as sandbox_store

log = logging.getLogger("emrtasks")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    ctx: Context
    worker: queue_worker.Worker | None


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Client libraries log full URLs, and a URL can carry an MRN.
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_context(settings: Settings, engine: AsyncEngine) -> Context:
    deps = base.AdapterDeps(sandbox_store=sandbox_store.SandboxStore(engine))
    policy = Policy(
        task_max_attempts=settings.task_max_attempts,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        auth_cache_seconds=settings.auth_cache_seconds,
    )
    return Context(
        engine=engine,
        adapters=adapters.Adapters(deps, settings.directory_cache_seconds),
        policy=policy,
    )


def build_worker(settings: Settings, ctx: Context) -> queue_worker.Worker:
    handlers = {tasks.CREATE_TASK: functools.partial(create_task.run_create_task, ctx)}
    return queue_worker.Worker(
        ctx.engine,
        handlers,
        clock=ctx.clock,
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.worker_poll_seconds,
        reaper_seconds=settings.reaper_interval_seconds,
    )


@asynccontextmanager
async def runtime(
    settings: Settings, *, run_migrations: bool = True, run_worker: bool = True
) -> AsyncIterator[Runtime]:
    """Engine (migrated), context and, if asked, a running worker; all stopped on exit."""
    engine = db.create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        synchronous=settings.sqlite_synchronous,
    )
    try:
        if run_migrations:
            await migrate.upgrade(engine)
        ctx = build_context(settings, engine)
        async with _worker(settings, ctx, run_worker) as worker:
            yield Runtime(settings, engine, ctx, worker)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _worker(
    settings: Settings, ctx: Context, enabled: bool
) -> AsyncIterator[queue_worker.Worker | None]:
    if not enabled:
        yield None
        return
    worker = build_worker(settings, ctx)
    ctx.wake = worker.wake
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop, settings.worker_grace_seconds))
    log.info("worker %s started (concurrency %d)", worker.worker_id, settings.worker_concurrency)
    try:
        yield worker
    finally:
        stop.set()
        await running
