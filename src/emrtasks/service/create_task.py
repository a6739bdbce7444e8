"""The `create_task` job: resolve the patient, write the task in the EMR with our task id as marker, settle.

A retry after an attempt that may have reached the EMR (a lost reply, a crash, a stopped worker)
first looks the task up by marker; only a certain "absent" lets the create run again. Settling writes
the task's outcome, the job's state and the event in one transaction, fenced on the job's attempt.
"""

import functools
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from emrtasks.domain import directory, ids, outcomes, states
from emrtasks.domain import tasks as domain_tasks
from emrtasks.emr import base
from emrtasks.queue import jobs, lease, retry
from emrtasks.service import adapters as service_adapters
from emrtasks.service import login_required, webhooks
from emrtasks.service.context import Context, Policy
from emrtasks.storage import connections, db
from emrtasks.storage import settle as stored_settle
from emrtasks.storage import tasks as stored_tasks
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import events

log = logging.getLogger("emrtasks.create_task")


@dataclass(frozen=True)
class _Attempt:
    outcome: outcomes.Outcome
    settled_by_lookup: bool = False
    """The outcome came from the marker lookup, not from a create."""
    may_have_written: bool = False
    """A RetryLater that leaves the earlier write in doubt: the next attempt must look first."""


async def run_create_task(ctx: Context, job: jobs.Job) -> None:
    async with db.read(ctx.engine) as conn:
        found = await connections.get_task_and_connection(conn, job.task_id or "")
    task, connection = found if found else (None, None)
    if task is None or connection is None:
        log.error("job %s refers to a missing task or connection", job.id)
        async with db.write(ctx.engine) as conn:
            await jobs.finish(conn, job, jobs.FAILED, now=ctx.clock(), error_code="MISSING_TASK")
        return
    try:
        if lease.crashed_out(job.attempts, job.max_attempts):
            # Every attempt since the limit died before settling (a crash, an adapter that cannot
            # be built): stop, and leave it for a person, since an earlier attempt may have written.
            attempt = _Attempt(outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _CRASHES), settled_by_lookup=True)
        else:
            attempt = await _attempt(ctx, job, task, connection)
        now = ctx.clock()
        decision = _decide(attempt, job, policy=ctx.policy, now=now, rng=ctx.rng)
        await _record(ctx, job, task, connection, decision, now)
    except lease.LeaseLost:
        log.warning("job %s attempt %d lost its lease; result discarded", job.id, job.attempts)


async def _attempt(
    ctx: Context, job: jobs.Job, task: stored_tasks.TaskRow, connection: domain_tasks.Connection
) -> _Attempt:
    if connection.status == domain_tasks.CONNECTION_LOGIN_REQUIRED and not job.reconcile:
        return _Attempt(outcomes.Rejected(outcomes.LOGIN_REQUIRED, _LOGIN_TEXT))
    adapter = ctx.adapters.for_connection(connection)
    await ctx.limiter.wait(connection.id, service_adapters.rate_per_second(connection))
    try:
        if job.reconcile:
            found = await _look_up(adapter, task, job)
            if found is not None:
                return found
        patient = await resolve_patient(adapter, task.patient_mrn)
        if isinstance(patient, outcomes.Rejected):
            return _Attempt(patient)
        request = stored_tasks.to_request(task)
        if not await jobs.still_held(ctx.engine, job, now=ctx.clock()):
            raise lease.LeaseLost  # another worker has the job now; it will look before writing
        return _Attempt(await adapter.create_task(request, patient, marker=task.id))
    except outcomes.AdapterError as exc:
        return _Attempt(exc.outcome)


async def _look_up(adapter: base.Adapter, task: stored_tasks.TaskRow, job: jobs.Job) -> _Attempt | None:
    if not adapter.rules.finds_by_marker:
        return _Attempt(outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _NO_LOOKUP), True)
    if lease.crashed_out(job.attempts, job.max_attempts):
        return _Attempt(outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, _CRASHES), True)
    try:
        found = await find_written(adapter, task)
    except outcomes.AdapterError as exc:
        found = (
            exc.outcome
            if isinstance(exc.outcome, outcomes.RetryLater)
            else outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, exc.outcome.description)
        )
    if isinstance(found, outcomes.Absent):
        return None
    if isinstance(found, outcomes.RetryLater):
        return _Attempt(found, may_have_written=True)
    return _Attempt(found, settled_by_lookup=True)


async def find_written(adapter: base.Adapter, task: stored_tasks.TaskRow) -> outcomes.Lookup:
    """The EMR's record of this task, looked up by its id as marker; in the patient's chart where the
    EMR lists records only per patient. Raises `outcomes.AdapterError` when a read fails."""
    if not isinstance(adapter, base.FindsInChart):
        return await adapter.find_task(task.id)
    patient = await resolve_patient(adapter, task.patient_mrn)
    if isinstance(patient, outcomes.Rejected):  # the chart cannot be found again: nothing is certain
        return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, f"Cannot look the task up: {patient.description}")
    return await adapter.find_task_in_chart(task.id, patient)


async def resolve_patient(adapter: base.Adapter, mrn: str) -> directory.Patient | outcomes.Rejected:
    """Exactly one patient with this MRN, never the first of several."""
    found = [p for p in await adapter.search_patients(mrn) if p.mrn == mrn]
    if not found:
        return outcomes.Rejected(
            outcomes.PATIENT_NOT_FOUND,
            f"Patient not found for MRN {mrn}. Please check the patient MRN and try again.",
        )
    if len(found) > 1:
        return outcomes.Rejected(
            outcomes.PATIENT_AMBIGUOUS,
            f"{len(found)} patients share MRN {mrn}. Please resolve the duplicate in the EMR.",
        )
    return found[0]


@dataclass(frozen=True)
class SettleDecision:
    """What one attempt makes of its task and job, decided without I/O; `_record` writes it."""

    status: states.TaskStatus | None
    """The task's final status (`created`, `failed`, `unknown`); None: the job runs again."""
    reasons: tuple[dict[str, str], ...] = ()
    emr_task_id: str | None = None
    retry_at: datetime | None = None
    reconcile: bool = False
    """The next attempt looks the task up by marker before writing (an earlier one may have)."""
    refund_attempt: bool = False
    """The EMR's budget ran out: this attempt does not count against `max_attempts`."""
    hold_group: bool = False
    """The EMR asked this connection to slow down: its other queued jobs wait until `retry_at` too."""
    error_code: str | None = None
    error: str | None = None


def _decide(
    attempt: _Attempt,
    job: jobs.Job,
    *,
    policy: Policy,
    now: datetime,
    rng: random.Random,
) -> SettleDecision:
    """The settling of one attempt as a value: pure, its randomness and clock passed in."""
    outcome = attempt.outcome
    last = job.attempts >= job.max_attempts
    if isinstance(outcome, outcomes.Created):
        return SettleDecision(domain_tasks.CREATED, emr_task_id=outcome.emr_task_id)
    if isinstance(outcome, outcomes.Rejected):
        reason = {"code": outcome.code, "description": outcome.description}
        return SettleDecision(domain_tasks.FAILED, (reason,), error_code=outcome.code)
    if isinstance(outcome, outcomes.RetryLater) and (not last or outcome.budget):
        return _retry(job, outcome, policy, now, rng, reconcile=attempt.may_have_written)
    if isinstance(outcome, outcomes.RetryLater) and not attempt.may_have_written:
        reason = {"code": outcomes.EMR_UNAVAILABLE, "description": _gave_up(job, outcome)}
        return SettleDecision(domain_tasks.FAILED, (reason,), error_code=outcomes.EMR_UNAVAILABLE)
    if isinstance(outcome, outcomes.Unknown) and not (last or attempt.settled_by_lookup):
        return _retry(job, outcome, policy, now, rng, reconcile=True)
    description = f"{_UNKNOWN_TEXT} {outcome.description}"
    reason = {"code": outcomes.OUTCOME_UNKNOWN, "description": description}
    return SettleDecision(domain_tasks.UNKNOWN, (reason,), error_code=outcomes.OUTCOME_UNKNOWN)


def _retry(
    job: jobs.Job,
    outcome: outcomes.RetryLater | outcomes.Unknown,
    policy: Policy,
    now: datetime,
    rng: random.Random,
    *,
    reconcile: bool,
) -> SettleDecision:
    retry_after = outcome.retry_after if isinstance(outcome, outcomes.RetryLater) else None
    budget = isinstance(outcome, outcomes.RetryLater) and outcome.budget
    delay = retry.backoff_seconds(
        job.attempts,
        base=policy.retry_base_seconds,
        cap=policy.retry_max_seconds,
        retry_after=retry_after,
        rng=rng,
    )
    if budget and retry_after is not None:
        delay = retry_after  # the budget refills then, not before: no cap, no jitter
    return SettleDecision(
        None,
        retry_at=now + timedelta(seconds=delay),
        reconcile=reconcile,
        refund_attempt=budget,
        hold_group=bool(retry_after and job.group_key),
        error_code=outcome.code,
        error=outcome.description,
    )


_JOB_STATE = {
    domain_tasks.CREATED: jobs.SUCCEEDED,
    domain_tasks.FAILED: jobs.FAILED,
    domain_tasks.UNKNOWN: jobs.UNKNOWN,
}


async def _record(
    ctx: Context,
    job: jobs.Job,
    task: stored_tasks.TaskRow,
    connection: domain_tasks.Connection,
    decision: SettleDecision,
    now: datetime,
) -> None:
    """Write a decision: the job moved (fenced on its attempt), and for a final status the task's
    outcome, its event and the event's deliveries, all in one transaction."""
    if decision.status is None:
        await ctx.relaxed_writer.run(functools.partial(_write_retry, job, decision, now))
        return
    event_id = ids.new_id("evt")
    body = _event_body(job, task, connection, decision, event_id, now)
    trace_context = ctx.telemetry.trace_context()  # this attempt's span: the deliveries continue it
    reasons = list(decision.reasons) or None

    settled = stored_settle.Settled(
        job_id=job.id,
        attempts=job.attempts,
        job_state=_JOB_STATE[decision.status],
        error_code=decision.error_code,
        task_id=task.id,
        status=decision.status,
        emr_task_id=decision.emr_task_id,
        failure_reason=events.failure_reason(reasons) if reasons else None,
        reasons=reasons,
        event={
            "id": event_id,
            "client_id": connection.client_id,
            "connection_id": connection.id,
            "type": _event_type(decision),
            "job_id": job.id,
            "task_id": task.id,
            "body": events.serialize(body),
            "created_at": now,
        },
    )
    fanned = webhooks.deliveries(ctx, now, trace_context)
    login_lost = decision.error_code == outcomes.LOGIN_REQUIRED

    async def work(conn: DbConnection) -> None:
        if not await stored_settle.settle(conn, settled, fanned, now):
            raise lease.LeaseLost
        if login_lost:
            await login_required.record(ctx, conn, connection.id, now)  # its event once per break

    # One statement on PostgreSQL (storage/settle.py), unless a broken login is recorded with it.
    await ctx.relaxed_writer.run(work, one_statement=not login_lost)
    ctx.wake()  # its webhook deliveries are due now


async def _write_retry(job: jobs.Job, decision: SettleDecision, now: datetime, conn: DbConnection) -> None:
    assert decision.retry_at is not None
    if not await jobs.reschedule(
        conn,
        job,
        run_at=decision.retry_at,
        now=now,
        reconcile=decision.reconcile,
        error_code=decision.error_code,
        error=decision.error,
        refund_attempt=decision.refund_attempt,
    ):
        raise lease.LeaseLost
    if decision.hold_group and job.group_key:
        await jobs.defer_group(conn, job.group_key, decision.retry_at)


def _event_type(decision: SettleDecision) -> str:
    if decision.status == domain_tasks.CREATED:
        return events.TASK_CREATED
    return events.TASK_FAILED if decision.status == domain_tasks.FAILED else events.TASK_UNKNOWN


def _event_body(
    job: jobs.Job,
    task: stored_tasks.TaskRow,
    connection: domain_tasks.Connection,
    decision: SettleDecision,
    event_id: str,
    now: datetime,
) -> dict[str, Any]:
    if decision.status == domain_tasks.CREATED:
        assert decision.emr_task_id is not None
        data = events.task_created_data(vars(task), decision.emr_task_id)
    else:
        data = events.task_failed_data(vars(task), list(decision.reasons))
    return events.envelope(
        event_id=event_id,
        event_type=_event_type(decision),
        reference_id=connection.reference_id,
        job_id=job.id,
        created=now,
        data=data,
    )


def _gave_up(job: jobs.Job, outcome: outcomes.RetryLater) -> str:
    return f"The EMR was unavailable after {job.attempts} attempts. {outcome.description}"


_LOGIN_TEXT = "The EMR login for this connection has expired. Please link the account again."
_NO_LOOKUP = "This EMR cannot look a task up by marker, so a retry could write it twice."
_CRASHES = "Workers stopped repeatedly while running this task."
_UNKNOWN_TEXT = "The EMR may or may not have created this task; check the EMR before sending it again."
