"""Retry delays as values: exponential backoff with ±20 % jitter, bounded, honouring an EMR's Retry-After."""

import random


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before attempt `attempt + 1`, given that attempt number `attempt` (1-based) just failed."""
    delay = min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))
    delay *= (rng or random).uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return float(min(delay, cap * 1.2))
