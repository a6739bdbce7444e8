"""When a failed delivery is retried, and when the endpoint heals or is disabled: `retry_delay`, `_decide`."""

import random
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emrtasks.domain import states
from emrtasks.queue.jobs import Job
from emrtasks.service.context import WebhookPolicy
from emrtasks.service.webhook_delivery import _decide, retry_delay
from emrtasks.storage import webhooks as stored_webhooks
from emrtasks.webhooks.delivery import Result

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
POLICY = WebhookPolicy()
SCHEDULE = POLICY.schedule
FIVE_DAYS = timedelta(seconds=POLICY.disable_after_seconds)


class FixedJitter:
    """An rng whose jitter factor is chosen by the test."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


def result(status: int | None, retry_after: float | None = None) -> Result:
    error = None if status is not None and 200 <= status < 300 else f"HTTP {status}"
    return Result(status, 12, None, error, retry_after)


def ctx(rng: Any = None, **policy: Any) -> Any:
    """The decision's context: the webhook policy and the rng its jitter comes from."""
    return types.SimpleNamespace(webhooks=WebhookPolicy(**policy), rng=rng or random.Random())


def job(attempts: int) -> Job:
    return Job(id="job_1", kind="deliver_webhook", attempts=attempts, max_attempts=8)


def endpoint(failing_since: datetime | None = None) -> stored_webhooks.Endpoint:
    return stored_webhooks.Endpoint(
        id="whe_1",
        client_id="cli_1",
        url="https://hooks.example.com/",
        status=states.EndpointStatus.ACTIVE,
        disabled_reason=None,
        secret="sealed",
        previous_secret=None,
        previous_secret_expires_at=None,
        failing_since=failing_since,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def no_jitter() -> FixedJitter:
    return FixedJitter(1.0)


def test_default_schedule_is_svix_eight_attempts() -> None:
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize("step", [5.0, 300.0, 1800.0, 36000.0])
def test_retry_delay_stays_within_twenty_percent_of_the_step(step: float) -> None:
    rng = random.Random(1234)
    delays = [retry_delay(step, result(500), rng) for _ in range(500)]
    assert all(0.8 * step <= d <= 1.2 * step for d in delays)
    assert min(delays) < 0.85 * step  # the jitter spreads over the whole band
    assert max(delays) > 1.15 * step


def test_retry_delay_draws_its_jitter_between_0_8_and_1_2() -> None:
    rng = FixedJitter(1.1)
    assert retry_delay(300, result(500), rng) == pytest.approx(330.0)  # type: ignore[arg-type]
    assert rng.calls == [(0.8, 1.2)]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_larger_than_the_delay_is_honoured(status: int) -> None:
    assert retry_delay(300, result(status, retry_after=500), FixedJitter(1.0)) == 500  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_capped_at_twice_the_step(status: int) -> None:
    delay = retry_delay(300, result(status, retry_after=86400), FixedJitter(1.2))  # type: ignore[arg-type]
    assert delay == 600


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_smaller_than_the_delay_is_ignored(status: int) -> None:
    delay = retry_delay(300, result(status, retry_after=10), FixedJitter(0.9))  # type: ignore[arg-type]
    assert delay == pytest.approx(270.0)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_with_a_seeded_rng_stays_between_the_delay_and_twice_the_step(status: int) -> None:
    rng = random.Random(7)
    for retry_after in (0.0, 4.0, 6.0, 9.0, 10.0, 11.0, 1000.0):
        delay = retry_delay(5, result(status, retry_after=retry_after), rng)
        assert 4.0 <= delay <= 10.0
        if retry_after <= 10.0:
            assert delay >= retry_after


def test_a_500_with_retry_after_ignores_it() -> None:
    assert retry_delay(300, result(500, retry_after=1000), FixedJitter(1.0)) == 300  # type: ignore[arg-type]


def test_a_429_without_retry_after_uses_the_jittered_step() -> None:
    assert retry_delay(300, result(429), FixedJitter(0.8)) == pytest.approx(240.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_decide_2xx_is_success_and_finishes_the_job(status: int) -> None:
    decision = _decide(ctx(), job(1), endpoint(), result(status), NOW)
    assert decision.delivery_status == "success"
    assert decision.job_state == "succeeded"
    assert decision.retry_at is None
    assert decision.endpoint_changes is None
    assert decision.error_code is None


def test_decide_2xx_clears_failing_since_when_it_was_set() -> None:
    decision = _decide(ctx(), job(3), endpoint(failing_since=NOW - timedelta(hours=2)), result(200), NOW)
    assert decision.delivery_status == "success"
    assert decision.job_state == "succeeded"
    assert decision.endpoint_changes == {"failing_since": None}


def test_decide_410_disables_the_endpoint_with_a_reason() -> None:
    decision = _decide(ctx(), job(1), endpoint(), result(410), NOW)
    assert decision.delivery_status == "failed"
    assert decision.job_state == "failed"
    assert decision.retry_at is None
    assert decision.error_code == "ENDPOINT_GONE"
    assert decision.endpoint_changes == {
        "status": "disabled",
        "disabled_reason": "The endpoint answered 410 Gone.",
    }


@pytest.mark.parametrize("failing_for", [FIVE_DAYS, FIVE_DAYS + timedelta(hours=1), timedelta(days=30)])
def test_decide_a_failure_after_five_days_of_failures_disables_the_endpoint(failing_for: timedelta) -> None:
    decision = _decide(ctx(), job(2), endpoint(failing_since=NOW - failing_for), result(500), NOW)
    assert decision.delivery_status == "failed"
    assert decision.job_state == "failed"
    assert decision.error_code == "ENDPOINT_FAILING"
    assert decision.endpoint_changes == {
        "status": "disabled",
        "disabled_reason": "Every attempt failed for 5 days.",
    }


def test_decide_a_failure_just_under_five_days_is_retried(no_jitter: FixedJitter) -> None:
    failing_since = NOW - FIVE_DAYS + timedelta(seconds=1)
    decision = _decide(ctx(no_jitter), job(2), endpoint(failing_since=failing_since), result(500), NOW)
    assert decision.delivery_status == "pending"
    assert decision.job_state is None
    assert decision.retry_at == NOW + timedelta(seconds=SCHEDULE[2])
    assert decision.endpoint_changes is None  # failing_since stays where it was


def test_decide_a_timeout_counts_as_a_failure_for_disabling() -> None:
    decision = _decide(ctx(), job(2), endpoint(failing_since=NOW - FIVE_DAYS), result(None), NOW)
    assert decision.endpoint_changes is not None
    assert decision.endpoint_changes["status"] == "disabled"


def test_decide_the_first_failure_sets_failing_since_to_now(no_jitter: FixedJitter) -> None:
    decision = _decide(ctx(no_jitter), job(1), endpoint(), result(500), NOW)
    assert decision.delivery_status == "pending"
    assert decision.job_state is None
    assert decision.endpoint_changes == {"failing_since": NOW}
    assert decision.retry_at == NOW + timedelta(seconds=SCHEDULE[1])


@pytest.mark.parametrize("attempts", range(1, len(SCHEDULE)))
def test_decide_a_failure_is_retried_after_the_next_step_of_the_schedule(
    attempts: int, no_jitter: FixedJitter
) -> None:
    decision = _decide(ctx(no_jitter), job(attempts), endpoint(), result(503), NOW)
    assert decision.delivery_status == "pending"
    assert decision.job_state is None
    assert decision.retry_at == NOW + timedelta(seconds=SCHEDULE[attempts])
    assert no_jitter.calls == [(0.8, 1.2)]


@pytest.mark.parametrize("attempts", range(1, len(SCHEDULE)))
def test_decide_the_retry_time_is_within_jitter_of_the_step(attempts: int) -> None:
    decision = _decide(ctx(), job(attempts), endpoint(), result(500), NOW)
    assert decision.retry_at is not None
    step = SCHEDULE[attempts]
    assert NOW + timedelta(seconds=0.8 * step) <= decision.retry_at <= NOW + timedelta(seconds=1.2 * step)


def test_decide_a_retry_honours_retry_after_up_to_twice_the_step(no_jitter: FixedJitter) -> None:
    decision = _decide(ctx(no_jitter), job(2), endpoint(), result(429, retry_after=450), NOW)
    assert decision.retry_at == NOW + timedelta(seconds=450)
    capped = _decide(ctx(no_jitter), job(2), endpoint(), result(429, retry_after=10_000), NOW)
    assert capped.retry_at == NOW + timedelta(seconds=600)


def test_decide_a_redirect_is_a_failure_that_is_retried(no_jitter: FixedJitter) -> None:
    decision = _decide(ctx(no_jitter), job(1), endpoint(), result(302), NOW)
    assert decision.delivery_status == "pending"
    assert decision.retry_at == NOW + timedelta(seconds=5)


def test_decide_a_failure_on_the_last_attempt_exhausts_the_delivery() -> None:
    decision = _decide(ctx(), job(len(SCHEDULE)), endpoint(), result(500), NOW)
    assert decision.delivery_status == "failed"
    assert decision.job_state == "failed"
    assert decision.retry_at is None
    assert decision.error_code == "EXHAUSTED"
    assert decision.endpoint_changes == {"failing_since": NOW}


def test_decide_exhaustion_follows_a_custom_schedule_length() -> None:
    policy = ctx(schedule=(0, 1, 2))
    assert _decide(policy, job(2), endpoint(NOW), result(500), NOW).job_state is None
    exhausted = _decide(policy, job(3), endpoint(NOW), result(500), NOW)
    assert exhausted.job_state == "failed"
    assert exhausted.error_code == "EXHAUSTED"
    assert exhausted.endpoint_changes is None


def test_decide_disable_after_follows_the_policy() -> None:
    policy = ctx(disable_after_seconds=2 * 86400)
    decision = _decide(policy, job(2), endpoint(NOW - timedelta(days=2)), result(500), NOW)
    assert decision.endpoint_changes == {
        "status": "disabled",
        "disabled_reason": "Every attempt failed for 2 days.",
    }
