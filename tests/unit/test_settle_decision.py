"""Settling a create-task attempt as a value: every outcome, on an early or the last attempt, decided
without I/O, its jitter and clock passed in."""

from datetime import UTC, datetime, timedelta

import pytest

from emrtasks.domain import outcomes
from emrtasks.queue import jobs
from emrtasks.service import create_task
from emrtasks.service.context import Policy

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = Policy(retry_base_seconds=2.0, retry_max_seconds=600.0)
Attempt = create_task._Attempt


class FixedJitter:
    """An rng whose jitter factor is chosen by the test."""

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def uniform(self, low: float, high: float) -> float:
        return self.factor


def job(attempts: int, *, max_attempts: int = 8, group_key: str | None = "conn_1") -> jobs.Job:
    return jobs.Job(
        id="job_1", kind="create_task", attempts=attempts, max_attempts=max_attempts, group_key=group_key
    )


def decide(attempt: Attempt, attempts: int = 1, **kwargs: object) -> create_task.SettleDecision:
    return create_task._decide(
        attempt,
        job(attempts, **kwargs),  # type: ignore[arg-type]
        policy=POLICY,
        now=NOW,
        rng=FixedJitter(),  # type: ignore[arg-type]
    )


REJECTED = outcomes.Rejected(outcomes.PATIENT_NOT_FOUND, "No such patient.")
BUSY = outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, "503 from the EMR.")
SLOW_DOWN = outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, "Too many.", retry_after=120)
BUDGET = outcomes.RetryLater(outcomes.EMR_RATE_LIMITED, "Budget spent.", retry_after=900, budget=True)
LOST = outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, "The reply was lost.")


@pytest.mark.parametrize(
    ("attempt", "attempts", "status", "error_code"),
    [
        (Attempt(outcomes.Created("emr-7")), 1, "created", None),
        (Attempt(outcomes.Created("emr-7")), 8, "created", None),
        (Attempt(REJECTED), 1, "failed", outcomes.PATIENT_NOT_FOUND),
        (Attempt(BUSY), 8, "failed", outcomes.EMR_UNAVAILABLE),
        (Attempt(BUSY, may_have_written=True), 8, "unknown", outcomes.OUTCOME_UNKNOWN),
        (Attempt(LOST), 8, "unknown", outcomes.OUTCOME_UNKNOWN),
        (Attempt(LOST, settled_by_lookup=True), 1, "unknown", outcomes.OUTCOME_UNKNOWN),
    ],
)
def test_a_final_outcome_settles_the_task_with_its_status_and_code(
    attempt: Attempt, attempts: int, status: str, error_code: str | None
) -> None:
    decision = decide(attempt, attempts)
    assert (decision.status, decision.error_code, decision.retry_at) == (status, error_code, None)
    assert [r["code"] for r in decision.reasons] == ([error_code] if error_code else [])


def test_a_created_task_carries_the_emrs_id() -> None:
    assert decide(Attempt(outcomes.Created("emr-7"))).emr_task_id == "emr-7"


def test_giving_up_on_an_unavailable_emr_says_how_many_attempts_were_made() -> None:
    [reason] = decide(Attempt(BUSY), 8).reasons
    assert reason["description"].startswith("The EMR was unavailable after 8 attempts.")


def test_an_unknown_outcome_tells_the_client_to_check_the_emr() -> None:
    [reason] = decide(Attempt(LOST), 8).reasons
    assert "check the EMR before sending it again" in reason["description"]
    assert reason["description"].endswith("The reply was lost.")


@pytest.mark.parametrize(
    ("attempt", "reconcile"),
    [
        (Attempt(BUSY), False),
        (Attempt(BUSY, may_have_written=True), True),
        (Attempt(LOST), True),
    ],
)
def test_an_early_transient_outcome_retries_with_backoff_looking_first_when_a_write_may_have_happened(
    attempt: Attempt, reconcile: bool
) -> None:
    decision = decide(attempt, 3)
    assert decision.status is None
    assert decision.retry_at == NOW + timedelta(seconds=8)  # 2 s doubled twice, no jitter
    assert (decision.reconcile, decision.refund_attempt, decision.hold_group) == (reconcile, False, False)
    assert decision.error_code == attempt.outcome.code
    assert decision.error == attempt.outcome.description


def test_the_jitter_comes_from_the_rng_passed_in() -> None:
    decision = create_task._decide(
        Attempt(BUSY),
        job(3),
        policy=POLICY,
        now=NOW,
        rng=FixedJitter(1.2),  # type: ignore[arg-type]
    )
    assert decision.retry_at == NOW + timedelta(seconds=8 * 1.2)


def test_an_emrs_retry_after_holds_the_connections_other_jobs_too() -> None:
    decision = decide(Attempt(SLOW_DOWN), 1)
    assert decision.retry_at == NOW + timedelta(seconds=120)
    assert decision.hold_group


def test_a_retry_after_without_a_group_holds_only_this_job() -> None:
    assert not decide(Attempt(SLOW_DOWN), 1, group_key=None).hold_group


def test_a_spent_budget_waits_exactly_for_its_refill_even_past_the_cap_and_on_the_last_attempt() -> None:
    decision = decide(Attempt(BUDGET), 8)
    assert decision.status is None
    assert decision.retry_at == NOW + timedelta(seconds=900)
    assert decision.refund_attempt


def test_deciding_writes_nothing_and_is_repeatable() -> None:
    first, second = decide(Attempt(SLOW_DOWN), 2), decide(Attempt(SLOW_DOWN), 2)
    assert first == second
