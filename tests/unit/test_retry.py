"""`backoff_seconds`: exponential growth, ±20 % jitter, a cap, and an EMR's Retry-After."""

import itertools
import random

import pytest

from emrtasks.queue import retry


class FixedJitter:
    """An rng whose jitter factor is chosen by the test."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


def backoff(attempt: int, *, factor: float = 1.0, **kwargs: float | None) -> float:
    options: dict[str, float | None] = {"base": 1.0, "cap": 300.0, **kwargs}
    return retry.backoff_seconds(attempt, rng=FixedJitter(factor), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 64.0), (7, 128.0)],
    ids=lambda v: str(v),
)
def test_delay_doubles_with_each_attempt(attempt: int, expected: float) -> None:
    assert backoff(attempt, base=2.0, cap=1000.0) == expected


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempt_below_one_waits_the_base_delay(attempt: int) -> None:
    assert backoff(attempt, base=2.0) == 2.0


def test_jitter_is_drawn_between_80_and_120_percent() -> None:
    rng = FixedJitter(1.0)
    retry.backoff_seconds(3, base=1.0, cap=300.0, rng=rng)
    assert rng.calls == [(0.8, 1.2)]


@pytest.mark.parametrize(("factor", "expected"), [(0.8, 6.4), (1.2, 9.6)], ids=["low", "high"])
def test_jitter_scales_the_delay(factor: float, expected: float) -> None:
    assert backoff(4, factor=factor) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", range(1, 9))
def test_seeded_jitter_stays_within_twenty_percent(attempt: int) -> None:
    rng = random.Random(attempt)
    nominal = 0.5 * 2 ** (attempt - 1)
    delays = [retry.backoff_seconds(attempt, base=0.5, cap=1000.0, rng=rng) for _ in range(200)]
    assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
    assert len(set(delays)) == len(delays)  # really jittered, not a constant factor
    assert min(delays) < nominal < max(delays)


def test_same_seed_gives_the_same_delays() -> None:
    first, second = random.Random(7), random.Random(7)
    run_a = [retry.backoff_seconds(n, base=1.0, cap=60.0, rng=first) for n in range(1, 10)]
    run_b = [retry.backoff_seconds(n, base=1.0, cap=60.0, rng=second) for n in range(1, 10)]
    assert run_a == run_b


def test_seeded_delays_grow_exponentially_until_the_cap() -> None:
    rng = random.Random(1234)
    delays = [retry.backoff_seconds(n, base=1.0, cap=1000.0, rng=rng) for n in range(1, 10)]
    # With ±20 % jitter, doubling always outgrows the previous attempt (1.2 x < 0.8 x 2).
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))


@pytest.mark.parametrize("attempt", [10, 11, 20, 60])
def test_delay_is_capped_before_jitter(attempt: int) -> None:
    assert backoff(attempt, cap=300.0) == 300.0
    assert backoff(attempt, cap=300.0, factor=0.8) == pytest.approx(240.0)
    assert backoff(attempt, cap=300.0, factor=1.2) == pytest.approx(360.0)


def test_seeded_delays_past_the_cap_stay_within_its_jitter_band() -> None:
    rng = random.Random(99)
    delays = [retry.backoff_seconds(n, base=1.0, cap=30.0, rng=rng) for n in range(6, 200)]
    assert all(24.0 <= d <= 36.0 for d in delays)


def test_very_high_attempt_is_still_capped() -> None:
    assert backoff(2000, cap=300.0) == 300.0


def test_retry_after_longer_than_backoff_is_honoured() -> None:
    assert backoff(1, retry_after=30.0) == 30.0
    assert backoff(1, retry_after=30.0, factor=1.2) == 30.0


def test_backoff_longer_than_retry_after_wins() -> None:
    assert backoff(7, retry_after=10.0) == 64.0


def test_retry_after_beyond_the_cap_is_held_to_the_cap() -> None:
    assert backoff(1, cap=60.0, retry_after=3600.0) == 60.0
    assert backoff(1, cap=60.0, retry_after=3600.0, factor=0.8) == 60.0


def test_retry_after_never_pushes_past_the_jittered_cap() -> None:
    rng = random.Random(5)
    delays = [retry.backoff_seconds(n, base=1.0, cap=60.0, retry_after=1e9, rng=rng) for n in range(1, 20)]
    assert all(60.0 <= d <= 72.0 for d in delays)


def test_zero_retry_after_changes_nothing() -> None:
    assert backoff(3, retry_after=0.0) == 4.0


def test_result_is_a_float() -> None:
    assert type(retry.backoff_seconds(1, base=1, cap=10, rng=FixedJitter(1))) is float  # type: ignore[arg-type]


def test_default_rng_also_stays_within_jitter() -> None:
    delays = [retry.backoff_seconds(3, base=1.0, cap=100.0) for _ in range(100)]
    assert all(3.2 <= d <= 4.8 for d in delays)
