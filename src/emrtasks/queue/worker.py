"""The worker: claims due jobs up to its concurrency, runs their handlers, keeps leases alive, reaps dead
ones.

It sleeps until woken (a new job in this process, a finished slot) or until the next job is due, with a
fallback poll for jobs enqueued by other processes. Handlers own their job's result; a handler that
raises leaves its job to be retried with reconciliation, since its EMR call may have happened.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.queue import jobs, retry
from emrtasks.storage import db

log = logging.getLogger("emrtasks.worker")

Handler = Callable[[jobs.Job], Awaitable[None]]
# A job whose handler keeps raising is given up this many attempts past its limit; handlers settle
# their own jobs before that (a task as unknown, a delivery as failed).
_GIVE_UP_AFTER = 10
Clock = Callable[[], datetime]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        *,
        clock: Clock,
        concurrency: int,
        lease_seconds: float,
        poll_seconds: float,
        reaper_seconds: float,
        worker_id: str | None = None,
        housekeeping: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._engine = engine
        self._handlers = handlers
        self._clock = clock
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._reaper_every = reaper_seconds
        self.worker_id = worker_id or new_worker_id()
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], jobs.Job] = {}
        self._housekeeping = housekeeping

    def wake(self) -> None:
        """Tell the worker a job may be due now (called after a commit in this process)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, grace_seconds: float = 10.0) -> None:
        helpers = [
            asyncio.create_task(self._every(self._reaper_every, self._reap, stop)),
            asyncio.create_task(self._every(self._lease / 3, self._heartbeat, stop)),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._step(stopping)
        finally:
            stopping.cancel()
            await self._drain(grace_seconds)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _step(self, stopping: asyncio.Task[bool]) -> None:
        try:
            claimed, free = await self._claim()
            # Only an empty claim asks when the next job is due: after a busy one, the jobs just
            # started wake the loop as they finish, which saves a query per loop under load.
            timeout = await self._idle_timeout() if not claimed and free > 0 else self._poll
        except Exception:  # the database may be restarting: back off and try again
            log.exception("claiming jobs failed")
            timeout = self._poll
        if timeout > 0:
            waiter = asyncio.create_task(self._wake.wait())
            await asyncio.wait({waiter, stopping}, timeout=timeout, return_when="FIRST_COMPLETED")
            waiter.cancel()

    async def _claim(self) -> tuple[list[jobs.Job], int]:
        free = self._concurrency - len(self._running)
        self._wake.clear()
        if free <= 0:
            return [], 0
        claimed = await jobs.claim(
            self._engine,
            worker_id=self.worker_id,
            limit=free,
            lease_seconds=self._lease,
            now=self._clock(),
        )
        for job in claimed:
            task = asyncio.create_task(self._run_job(job))
            self._running[task] = job
            task.add_done_callback(self._job_done)
        return claimed, free

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()

    async def _idle_timeout(self) -> float:
        if self._wake.is_set():
            return 0.0
        due = await jobs.next_run_at(self._engine)
        if due is None:
            return self._poll
        wait = (due - self._clock()).total_seconds()
        # Due jobs the claim left behind belong to full groups: wait for a job to finish (a wake-up),
        # not spin claiming nothing.
        return self._poll if wait <= 0 else min(self._poll, wait)

    async def _run_job(self, job: jobs.Job) -> None:
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s (%s) attempt %d raised", job.id, job.kind, job.attempts)
            await self._retry_after_crash(job, exc)

    async def _retry_after_crash(self, job: jobs.Job, exc: Exception) -> None:
        delay = retry.backoff_seconds(job.attempts, base=1.0, cap=300.0)
        now = self._clock()
        try:
            async with db.write(self._engine) as conn:
                if job.attempts >= job.max_attempts + _GIVE_UP_AFTER:  # handlers give up sooner
                    await jobs.finish(conn, job, jobs.FAILED, now=now, error_code="CRASHED")
                    return
                await jobs.reschedule(
                    conn,
                    job,
                    run_at=now + timedelta(seconds=delay),
                    now=now,
                    reconcile=True,
                    error_code="INTERNAL_ERROR",
                    error=type(exc).__name__,
                )
        except Exception:  # the lease will expire and the reaper will return the job
            log.exception("could not reschedule job %s", job.id)

    async def _reap(self) -> None:
        count = await jobs.reap(self._engine, now=self._clock())
        if count:
            log.warning("reclaimed %d job(s) whose lease expired", count)
            self._wake.set()
        for chore in self._housekeeping:
            await chore()

    async def _heartbeat(self) -> None:
        await jobs.extend_leases(
            self._engine,
            list(self._running.values()),
            worker_id=self.worker_id,
            lease_seconds=self._lease,
            now=self._clock(),
        )

    async def _every(
        self, seconds: float, action: Callable[[], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                await action()
            except Exception:
                log.exception("periodic %s failed", getattr(action, "__name__", "action"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _drain(self, grace_seconds: float) -> None:
        """Let running jobs finish within the grace period, then release the rest for another worker."""
        if not self._running:
            return
        _done, pending = await asyncio.wait(set(self._running), timeout=grace_seconds)
        unfinished = [self._running[task] for task in pending if task in self._running]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for job in unfinished:
            await self._release(job)

    async def _release(self, job: jobs.Job) -> None:
        # Its EMR call may have been in flight when cancelled: whoever takes it next reconciles first.
        now = self._clock()
        try:
            async with db.write(self._engine) as conn:
                await jobs.reschedule(
                    conn,
                    job,
                    run_at=now,
                    now=now,
                    reconcile=True,
                    error_code="WORKER_STOPPED",
                    error="The worker stopped before the job finished.",
                )
        except Exception:
            log.exception("could not release job %s; its lease will expire", job.id)
